"""The links the experiments measure on: plain loopback, or loopback through the link emulator.

A :class:`Link` is a name, a rate and a round-trip time; :func:`get_link` finds one by
name (``"50mbit-40ms"``) or parses any ``"<R>mbit-<T>ms"``.  Pure: this module loads no
socket (the emulator's :class:`~chatlab.netem.LinkProfile` is imported when asked for),
so the simulated link of :mod:`chatlab.experiments.simulation` can use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..netem import LinkProfile

__all__ = ["KiB", "MiB", "Link", "LINKS", "QUICK_LINKS", "FULL_LINKS", "CHAT_LINK", "MIN_FILE", "get_link",
           "is_link_name"]

KiB = 1024
MiB = 1024 * KiB

LOOPBACK_MB_PER_S = 100.0  # only to size files on plain loopback; never reported as a link rate
MIN_FILE = 256 * KiB


@dataclass(frozen=True)
class Link:
    """A network path to measure on: plain loopback, or loopback through the link emulator.

    Attributes:
        name: a short id used in CSV files, e.g. ``"50mbit-40ms"``.
        mbit: the bottleneck rate in Mbit/s, or ``None`` for plain loopback (no emulator).
        rtt_ms: the round-trip propagation delay in milliseconds (half of it each way).
    """

    name: str
    mbit: float | None
    rtt_ms: float = 0.0

    @property
    def emulated(self) -> bool:
        return self.mbit is not None

    @property
    def rate(self) -> float | None:
        """The link rate in bytes per second, or ``None`` on plain loopback."""
        return None if self.mbit is None else self.mbit * 1e6 / 8

    @property
    def mb_per_s(self) -> float | None:
        """The link rate in MB/s (the unit of every throughput here), or ``None``."""
        return None if self.mbit is None else self.mbit / 8

    @property
    def bdp_bytes(self) -> float | None:
        """Bandwidth-delay product: bytes in flight needed to keep the link busy."""
        return None if self.rate is None else self.rate * self.rtt_ms / 1000

    def profile(self) -> LinkProfile | None:
        """The emulator profile (the same both ways: one-way delay = RTT / 2), or ``None``."""
        if self.rate is None:
            return None
        from ..netem import LinkProfile  # here, not at the top: the emulator's module loads sockets

        return LinkProfile(delay=self.rtt_ms / 2000, rate=self.rate)

    def file_bytes(self, seconds: float, max_bytes: int = 16 * MiB) -> int:
        """A file size that keeps this link busy for about ``seconds``."""
        rate = self.rate if self.rate is not None else LOOPBACK_MB_PER_S * 1e6
        return int(min(max_bytes, max(MIN_FILE, rate * seconds)))

    @property
    def label(self) -> str:
        """``'loopback'`` or ``'10 Mbit/s, 40 ms RTT'``."""
        if self.mbit is None:
            return "loopback"
        return f"{self.mbit:g} Mbit/s, {self.rtt_ms:g} ms RTT"


def _make_links(*links: Link) -> dict[str, Link]:
    return {link.name: link for link in links}


LINKS: dict[str, Link] = _make_links(
    Link("loopback", None),
    Link("10mbit-5ms", 10, 5),
    Link("10mbit-40ms", 10, 40),
    Link("50mbit-5ms", 50, 5),
    Link("50mbit-40ms", 50, 40),
    Link("20mbit-20ms", 20, 20),
)
FULL_LINKS = ("loopback", "10mbit-5ms", "10mbit-40ms", "50mbit-5ms", "50mbit-40ms")
QUICK_LINKS = ("loopback", "10mbit-5ms", "50mbit-40ms")
CHAT_LINK = "20mbit-20ms"

_LINK_NAME = re.compile(r"(\d+(?:\.\d+)?)mbit-(\d+(?:\.\d+)?)ms")


def is_link_name(name: str) -> bool:
    """Whether :func:`get_link` knows ``name``: one of :data:`LINKS`, or of the form ``"<R>mbit-<T>ms"``."""
    return name in LINKS or _LINK_NAME.fullmatch(name) is not None



def get_link(link: str | Link) -> Link:
    """A :class:`Link` by name (``"loopback"``, ``"50mbit-40ms"``, any ``"<R>mbit-<T>ms"``), or itself."""
    if isinstance(link, Link):
        return link
    if link in LINKS:
        return LINKS[link]
    match = _LINK_NAME.fullmatch(link)
    if match is None:
        raise ValueError(f"unknown link {link!r}: use 'loopback' or '<rate>mbit-<rtt>ms', e.g. '20mbit-20ms'")
    return Link(link, float(match[1]), float(match[2]))
