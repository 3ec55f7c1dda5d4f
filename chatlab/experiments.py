"""The measurements behind notebooks 06 and 07, shared with the benchmarks.

Notebook 06 asks how fast a file goes with each sending strategy, notebook 07
how long a chat line waits while a file is being sent.  Both answers come from
real transfers: a :class:`chatlab.Server` on a free loopback port, a sender
``alice`` and a receiver ``bob``, and (except on plain loopback) a
:class:`chatlab.netem.LinkEmulator` on alice's side, so her bytes cross a link
with a rate and a round-trip time like a real one::

    alice --[ LinkEmulator: rate, delay, queue ]--> server --> bob (loopback)
          <-------------- acks, chat echoes ------------------

Stable API (the benchmark code imports these; names and fields do not change):

Links
    ``Link(name, mbit, rtt_ms)``, ``LINKS`` (name -> Link), ``get_link(name_or_link)``
    (also parses ``"20mbit-20ms"``), ``QUICK_LINKS``, ``FULL_LINKS``.
One transfer
    ``measure_transfer(strategy, link, *, seconds, ...) -> TransferResult``
    (``.row``: a :class:`TransferRow`, ``.trace``: the strategy's TraceRows).
Sweeps (each returns a list of :class:`TransferRow`; defaults: the ``QUICK`` grid)
    ``sleep_sweep(links, pauses_ms, chunk_sizes, *, seconds, time_limit)`` -- SleepPaced,
    pause x chunk size;
    ``window_sweep(links, windows, chunk_size, *, seconds, time_limit)`` -- FixedWindow,
    window sizes;
    ``adaptive_runs(links, *, seconds, time_limit) -> (rows, trace_points)`` --
    AdaptiveWindow and its trace as :class:`TracePoint` rows.
    ``Settings``, ``QUICK`` and ``FULL``: the two grids ``run_all`` uses.
Chat while sending
    ``chat_latency(link, configs, file_bytes, interval) -> (summaries, samples)``:
    chat round-trip time during a transfer for each :class:`ChatConfig` in
    ``CHAT_CONFIGS`` (no transfer; FIFO writer; priority writer with the OS's
    unbounded kernel queue and with chatlab's unsent limit; the adaptive window;
    a second connection for the file).
TCP alone and a simulated link (notebook 06)
    ``measure_sendall(link, file_bytes) -> SendallResult``: one ``sendall()`` of a file on a
    plain TCP connection of its own through the emulator (the baseline: TCP's own flow control).
    ``simulate_transfer(strategy, link, file_bytes) -> SimulatedRun``: any
    :class:`~chatlab.core.transfer.SendStrategy` on a simulated bottleneck (a FIFO queue, a rate, a
    round-trip delay) on a fake clock: milliseconds per run, the same numbers everywhere; the
    exercise checkers of notebook 06 use it.
Summaries, files, figures
    ``summary_rows(sleep, window, adaptive)`` picks the settings of the summary figure;
    ``write_csv(rows, path)``, ``read_csv(path, RowClass)``, ``CSV_FILES``;
    ``Results`` and ``load_results(directory)``;
    ``plot_sleep_sweep``, ``plot_window_sweep``, ``plot_adaptive_trace``,
    ``plot_summary``, ``plot_chat_latency``, ``plot_chat_timeline`` (each returns a Figure),
    ``save_figures(results, out_dir)``;
    ``run_all(out_dir, quick=False, progress=print) -> Results`` runs everything
    and writes every CSV and PNG into ``out_dir``.

From a shell: ``python -m chatlab.experiments data`` (``--quick`` for a short
run, about a minute) re-measures on your own machine and rewrites the CSV
files and figures in ``data/``; ``--replot`` only redraws the figures from the
CSV files already there.

Units: sizes in bytes, throughput in MB/s (10**6 bytes per second, what
``TransferStats.mb_per_s`` reports; 1 Mbit/s is 0.125 MB/s), times in
milliseconds in the rows, seconds in arguments.

Everything here is timing: expect different numbers on every run and every
machine, and more noise on a busy one.  The shapes of the curves are the
lesson, not the third digit.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import math
import os
import re
import socket
import sys
import tempfile
import threading
import time
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .client import UNSENT_LIMIT, Client, FileFailed
from .errors import ChatlabError, TransferError
from .netem import LinkEmulator, LinkProfile
from .core.protocol import ChatMessage
from .server import Server
from .core.transfer import AdaptiveWindow, FixedWindow, SendStrategy, SleepPaced, TraceRow, make_strategy

__all__ = [
    "KiB", "MiB", "Link", "LINKS", "QUICK_LINKS", "FULL_LINKS", "get_link",
    "TransferRow", "TracePoint", "TransferResult", "measure_transfer",
    "sleep_sweep", "window_sweep", "adaptive_runs", "summary_rows",
    "ChatConfig", "CHAT_CONFIGS", "ChatSummary", "ChatSample", "chat_latency", "CHAT_LINK",
    "write_csv", "read_csv", "CSV_FILES", "FIGURE_FILES", "Results", "load_results",
    "plot_sleep_sweep", "plot_window_sweep", "plot_adaptive_trace", "plot_summary",
    "plot_chat_latency", "plot_chat_timeline", "save_figures", "run_all", "main",
    "SUMMARY_SLEEP", "SUMMARY_WINDOW", "UNSENT_LIMIT", "HAS_UNSENT_LIMIT", "CHUNK",
    "Settings", "QUICK", "FULL", "SimulatedRun", "simulate_transfer", "SendallResult", "measure_sendall",
]  # fmt: skip

KiB = 1024
MiB = 1024 * KiB

# --------------------------------------------------------------------------
# Links
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------


@dataclass
class TransferRow:
    """One transfer: its settings, its throughput and how long its chunks waited.

    ``rtt_*_ms`` are the sender's RTT samples: from the moment the strategy
    released a chunk to the ack that covered it.  Above the link's own RTT
    (``link_rtt_ms``) that time is queueing: in the sender's process, the
    kernel's buffers, the link's queue.  A chat line sent behind those chunks
    waits about as long.  ``completed`` is false when the run hit its time
    limit; throughput is then bytes acked so far over the time so far.
    """

    experiment: str  # "sleep", "window", "adaptive" (or anything a caller chooses)
    link: str
    link_mbit: float | None
    link_rtt_ms: float
    strategy: str  # "sleep", "fixed", "adaptive"
    chunk_size: int
    pause_ms: float | None  # SleepPaced only
    window_chunks: int | None  # FixedWindow only
    file_bytes: int
    bytes_acked: int
    seconds: float
    mb_per_s: float
    completed: bool
    rtt_min_ms: float | None
    rtt_p50_ms: float | None
    rtt_max_ms: float | None
    max_in_flight: int  # most bytes released but not acked at once
    mean_window: float | None  # AdaptiveWindow: mean window in bytes over the transfer
    peak_server_queue: int  # the server's largest per-client queue, bytes

    @property
    def link_mb_per_s(self) -> float | None:
        return None if self.link_mbit is None else self.link_mbit / 8

    @property
    def setting(self) -> str:
        """A short label for plots: ``'64 KiB / 10 ms'``, ``'8 x 16 KiB'``, ``'adaptive'``."""
        if self.strategy == "sleep":
            return f"{self.chunk_size // KiB} KiB / {self.pause_ms:g} ms"
        if self.strategy == "fixed":
            return f"{self.window_chunks} x {self.chunk_size // KiB} KiB"
        return self.strategy


@dataclass
class TracePoint:
    """One row of an AdaptiveWindow trace, for time-sequence plots (times in seconds from accept)."""

    link: str
    time: float
    bytes_sent: int
    bytes_acked: int
    window_bytes: int
    rtt_ms: float | None


@dataclass
class TransferResult:
    """What :func:`measure_transfer` returns: the summary row and the raw trace."""

    row: TransferRow
    trace: list[TraceRow] = field(default_factory=list)


def _percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile (0..1) by linear interpolation, or ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _sig(value: float) -> float:
    """Six significant digits: what the CSV files keep, so rows read back equal the rows written."""
    return float(f"{value:.6g}")


def _sig_or_none(value: float | None) -> float | None:
    return None if value is None else _sig(value)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else _sig(seconds * 1000)


# --------------------------------------------------------------------------
# Running one transfer
# --------------------------------------------------------------------------

# Whether this OS can bound the unsent bytes in the kernel (Linux, macOS: yes;
# Windows: no).  Without it ``Client.connect(unsent_limit=...)`` changes nothing,
# and the kernel's send buffer (megabytes, autotuned) is a queue no writer can reorder.
HAS_UNSENT_LIMIT = hasattr(socket, "TCP_NOTSENT_LOWAT")


class _Workspace:
    """A temporary directory with random source files (one per size) and fresh download directories."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self._files: dict[int, Path] = {}
        self._runs = 0

    def file(self, size: int) -> Path:
        if size not in self._files:
            path = self.root / f"source-{size}.bin"
            with open(path, "wb") as f:
                remaining = size
                while remaining:
                    block = os.urandom(min(remaining, 1 * MiB))
                    f.write(block)
                    remaining -= len(block)
            self._files[size] = path
        return self._files[size]

    def download_dir(self) -> Path:
        self._runs += 1
        path = self.root / f"downloads-{self._runs}"
        path.mkdir()
        return path


@contextlib.contextmanager
def _workspace(workspace: _Workspace | None) -> Iterator[_Workspace]:
    if workspace is not None:
        yield workspace
        return
    with tempfile.TemporaryDirectory(prefix="chatlab-experiments-") as root:
        yield _Workspace(root)


@dataclass
class _Setup:
    server: Server
    alice: Client  # chats and sends the file
    sender: Client  # sends the file: alice (over the direct path with second_connection)
    bob: Client  # receives the file, on plain loopback


@contextlib.contextmanager
def _chat_setup(
    link: Link,
    workspace: _Workspace,
    *,
    priority_writer: bool = True,
    second_connection: bool = False,
    unsent_limit: int | None = UNSENT_LIMIT,
    on_frame: Callable[..., None] | None = None,
) -> Iterator[_Setup]:
    """Server, optional link emulator on alice's side, alice, bob.  Everything closes on exit.

    ``priority_writer`` and ``unsent_limit`` go to ``Client.connect`` for alice.  With
    ``second_connection`` the file takes the direct path (``send_file(via="direct")``, option 1):
    bob's listener is put behind a link emulator of its own with alice's link profile, so the
    file's bytes cross the same kind of link as her chat, in a queue of their own.
    """
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(Server(port=0, flood_limit=None, on_frame=on_frame))
        address = server.address
        profile = link.profile()
        if profile is not None:
            address = stack.enter_context(LinkEmulator(server.address, profile)).address
        bob = stack.enter_context(Client.connect(server.address, nick="bob", download_dir=workspace.download_dir()))
        options: dict[str, Any] = {"priority_writer": priority_writer, "unsent_limit": unsent_limit}
        alice = stack.enter_context(Client.connect(address, nick="alice", **options))
        if second_connection and profile is not None:
            direct_links: list[LinkEmulator] = []

            def close_direct_links() -> None:
                for emulator in direct_links:
                    emulator.close()

            stack.callback(close_direct_links)

            def through_alices_link(listening: tuple[str, int]) -> tuple[str, int]:
                emulator = LinkEmulator(listening, profile).start()
                direct_links.append(emulator)
                return emulator.address[0], emulator.address[1]

            bob.advertise_direct = through_alices_link
        yield _Setup(server, alice, alice, bob)


def _stop_sender_first(setup: _Setup) -> None:
    """End an unfinished transfer from the sender's side and let bob hear of it before anyone else closes.

    Closing bob while chunks are still arriving races his reader thread; once
    the sender is gone the server cancels the stream, bob reports a
    :class:`~chatlab.client.FileFailed`, and nothing more arrives for him.
    """
    setup.sender.close()
    with contextlib.suppress(TimeoutError, ChatlabError):
        setup.bob.wait_for(FileFailed, timeout=2.0)


def _strategy(strategy: str | SendStrategy, options: dict[str, float]) -> SendStrategy:
    return make_strategy(strategy, **options) if isinstance(strategy, str) else strategy


def _row_from_transfer(
    experiment: str, link: Link, strategy: SendStrategy, file_bytes: int, transfer: Any, completed: bool,
    peak_queue: int,
) -> TransferResult:
    trace = list(transfer.trace)
    stats = transfer.stats
    rtts = [r.rtt for r in trace if r.rtt is not None]
    t0 = trace[0].time if trace else 0.0
    mean_window: float | None = None
    if isinstance(strategy, AdaptiveWindow) and len(trace) > 1:
        # time-weighted mean of the window over the transfer
        area = sum(a.window_bytes * (b.time - a.time) for a, b in zip(trace, trace[1:]))
        span = trace[-1].time - t0
        mean_window = area / span if span > 0 else float(trace[-1].window_bytes)
    row = TransferRow(
        experiment=experiment,
        link=link.name,
        link_mbit=link.mbit,
        link_rtt_ms=link.rtt_ms,
        strategy=strategy.name,
        chunk_size=strategy.chunk_size,
        pause_ms=strategy.pause * 1000 if isinstance(strategy, SleepPaced) else None,
        window_chunks=strategy.chunks if isinstance(strategy, FixedWindow) else None,
        file_bytes=file_bytes,
        bytes_acked=stats.bytes,
        seconds=_sig(stats.seconds),
        mb_per_s=_sig(stats.mb_per_s),
        completed=completed,
        rtt_min_ms=_ms(min(rtts)) if rtts else None,
        rtt_p50_ms=_ms(_percentile(rtts, 0.5)),
        rtt_max_ms=_ms(max(rtts)) if rtts else None,
        max_in_flight=max((r.bytes_sent - r.bytes_acked for r in trace), default=0),
        mean_window=_sig_or_none(mean_window),
        peak_server_queue=peak_queue,
    )
    return TransferResult(row, trace)


def measure_transfer(
    strategy: str | SendStrategy,
    link: str | Link = "loopback",
    *,
    seconds: float = 1.0,
    file_bytes: int | None = None,
    time_limit: float | None = None,
    experiment: str = "transfer",
    priority_writer: bool = True,
    unsent_limit: int | None = UNSENT_LIMIT,
    workspace: _Workspace | None = None,
    **strategy_options: float,
) -> TransferResult:
    """Send one file from alice to bob over ``link`` and measure it.

    Args:
        strategy: ``"sleep"``, ``"fixed"``, ``"adaptive"`` or a fresh strategy object.
        link: a :class:`Link` or its name.
        seconds: size the file to keep the link busy this long (ignored with ``file_bytes``).
        file_bytes: the file size in bytes.
        time_limit: stop the transfer after this many seconds (default ``2 * seconds + 1``);
            the row then says ``completed=False`` and reports what was acked so far.
        experiment: the ``experiment`` column of the row.
        priority_writer: alice's writer: priority (chat first) or FIFO.
        unsent_limit: the most bytes alice's kernel holds unsent (``Client.connect``'s
            option: 128 KiB by default, ``None`` for the OS default of megabytes).
        **strategy_options: e.g. ``pause=0.01``, ``chunks=8``, ``chunk_size=16384``.

    Returns:
        A :class:`TransferResult`: ``.row`` (a :class:`TransferRow`) and ``.trace``.

    Raises:
        TransferError: the transfer failed (rejected, connection broken).
    """
    link = get_link(link)
    strat = _strategy(strategy, strategy_options)
    size = file_bytes if file_bytes is not None else link.file_bytes(seconds)
    limit = time_limit if time_limit is not None else 2 * seconds + 1.0
    with _workspace(workspace) as ws:
        source = ws.file(size)
        with _chat_setup(link, ws, priority_writer=priority_writer, unsent_limit=unsent_limit) as setup:
            transfer = setup.sender.send_file(source, to="bob", strategy=strat)
            try:
                transfer.wait(timeout=limit)
                completed = True
            except TimeoutError:
                completed = False
                _stop_sender_first(setup)
            return _row_from_transfer(experiment, link, strat, size, transfer, completed, setup.server.peak_queued)


# --------------------------------------------------------------------------
# Sweeps
# --------------------------------------------------------------------------

SLEEP_PAUSES_MS = (0, 1, 2, 5, 10, 20, 50)
SLEEP_PAUSES_MS_QUICK = (0, 1, 5, 20)
SLEEP_CHUNKS = (16 * KiB, 64 * KiB)
WINDOWS = (1, 2, 4, 8, 16, 32, 64)
WINDOWS_QUICK = (1, 2, 4, 8, 16, 64)
CHUNK = 16 * KiB  # the chunk size of the window sweep (SleepPaced and FixedWindow default to 64 KiB)
# The settings the summary figure compares: the seed's way (a 16 KiB chunk, then
# a fixed pause), a window of 16 KiB chunks guessed once, and the adaptive window
# with AdaptiveWindow's defaults (32 KiB chunks).
SUMMARY_SLEEP = {"chunk_size": CHUNK, "pause_ms": 5.0}
SUMMARY_WINDOW = {"chunk_size": CHUNK, "window_chunks": 8}


@dataclass(frozen=True)
class Settings:
    """The grid of one run: which links, pauses, windows, how long each transfer lasts."""

    links: tuple[str, ...]
    pauses_ms: tuple[float, ...]
    sleep_chunks: tuple[int, ...]
    windows: tuple[int, ...]
    seconds: float  # each file keeps its link busy about this long
    time_limit: float  # a transfer still running after this many seconds is stopped and counted so far
    chat_link: str
    chat_file_bytes: int


QUICK = Settings(QUICK_LINKS, SLEEP_PAUSES_MS_QUICK, SLEEP_CHUNKS, WINDOWS_QUICK, 0.6, 1.2, CHAT_LINK, 4 * MiB)
FULL = Settings(FULL_LINKS, SLEEP_PAUSES_MS, SLEEP_CHUNKS, WINDOWS, 1.5, 3.0, CHAT_LINK, 4 * MiB)

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def sleep_sweep(
    links: Iterable[str | Link] = QUICK_LINKS,
    pauses_ms: Iterable[float] = SLEEP_PAUSES_MS_QUICK,
    chunk_sizes: Iterable[int] = SLEEP_CHUNKS,
    *,
    seconds: float = QUICK.seconds,
    time_limit: float | None = QUICK.time_limit,
    progress: Progress = _quiet,
) -> list[TransferRow]:
    """SleepPaced over every link x chunk size x pause.  One :class:`TransferRow` each."""
    rows = []
    with _workspace(None) as ws:
        for link in map(get_link, links):
            for chunk in chunk_sizes:
                for pause in pauses_ms:
                    result = measure_transfer(
                        SleepPaced(chunk, pause / 1000), link, seconds=seconds, time_limit=time_limit,
                        experiment="sleep", workspace=ws,
                    )
                    rows.append(result.row)
                    progress(_describe(result.row))
    return rows


def window_sweep(
    links: Iterable[str | Link] = QUICK_LINKS,
    windows: Iterable[int] = WINDOWS_QUICK,
    chunk_size: int = CHUNK,
    *,
    seconds: float = QUICK.seconds,
    time_limit: float | None = QUICK.time_limit,
    progress: Progress = _quiet,
) -> list[TransferRow]:
    """FixedWindow over every link x window (in chunks of ``chunk_size``).  One :class:`TransferRow` each."""
    rows = []
    with _workspace(None) as ws:
        for link in map(get_link, links):
            for window in windows:
                result = measure_transfer(
                    FixedWindow(window, chunk_size), link, seconds=seconds, time_limit=time_limit,
                    experiment="window", workspace=ws,
                )
                rows.append(result.row)
                progress(_describe(result.row))
    return rows


def adaptive_runs(
    links: Iterable[str | Link] = QUICK_LINKS,
    *,
    seconds: float = QUICK.seconds,
    time_limit: float | None = QUICK.time_limit,
    chunk_size: int | None = None,
    progress: Progress = _quiet,
    **options: float,
) -> tuple[list[TransferRow], list[TracePoint]]:
    """One AdaptiveWindow transfer per link: its rows and its whole trace (times from the accept).

    ``chunk_size`` (default: AdaptiveWindow's own, 32 KiB) and ``options`` go to
    :class:`AdaptiveWindow` (``max_chunks=``, ``target_delay=`` ...).
    """
    rows: list[TransferRow] = []
    points: list[TracePoint] = []
    with _workspace(None) as ws:
        for link in map(get_link, links):
            if chunk_size is not None:
                options["chunk_size"] = chunk_size
            strategy = AdaptiveWindow(**options)  # type: ignore[arg-type]
            result = measure_transfer(
                strategy, link, seconds=seconds, time_limit=time_limit, experiment="adaptive", workspace=ws
            )
            rows.append(result.row)
            t0 = result.trace[0].time if result.trace else 0.0
            points.extend(
                TracePoint(link.name, _sig(r.time - t0), r.bytes_sent, r.bytes_acked, r.window_bytes, _ms(r.rtt))
                for r in result.trace
            )
            progress(_describe(result.row))
    return rows, points


def summary_rows(
    sleep: Sequence[TransferRow], window: Sequence[TransferRow], adaptive: Sequence[TransferRow]
) -> list[TransferRow]:
    """Per link, the rows the summary figure compares: SUMMARY_SLEEP, SUMMARY_WINDOW and the adaptive run."""
    out = []
    for row in sleep:
        if row.chunk_size == SUMMARY_SLEEP["chunk_size"] and row.pause_ms == SUMMARY_SLEEP["pause_ms"]:
            out.append(row)
    for row in window:
        if row.chunk_size == SUMMARY_WINDOW["chunk_size"] and row.window_chunks == SUMMARY_WINDOW["window_chunks"]:
            out.append(row)
    out.extend(adaptive)
    return out


def _describe(row: TransferRow) -> str:
    rtt = "" if row.rtt_p50_ms is None else f", chunk RTT p50 {row.rtt_p50_ms:.0f} ms"
    done = "" if row.completed else " (time limit)"
    return f"{row.link:12s} {row.strategy:8s} {row.setting:16s} {row.mb_per_s:7.2f} MB/s{rtt}{done}"


# --------------------------------------------------------------------------
# Chat while sending
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatConfig:
    """How alice sends a file while she chats (notebook 07).

    Attributes:
        name: a short id for CSV files.
        label: the legend text.
        writer: ``"priority"`` (chat before released file chunks) or ``"fifo"`` (in order).
        strategy: ``"fixed"``, ``"adaptive"``, ``"sleep"``, or ``"none"`` (no transfer: the baseline).
        options: strategy options as ``(name, value)`` pairs.
        second_connection: option 1: the file goes over a second connection, the direct
            path from alice to bob (``send_file(via="direct")``); chat keeps the first.
        unsent_limit: ``Client.connect(unsent_limit=...)`` for alice's connection(s): the
            most bytes her kernel holds unsent (``TCP_NOTSENT_LOWAT``); ``None``: the OS
            default, which lets the kernel queue megabytes.
    """

    name: str
    label: str
    writer: str = "priority"
    strategy: str = "fixed"
    options: tuple[tuple[str, float], ...] = ()
    second_connection: bool = False
    unsent_limit: int | None = UNSENT_LIMIT


BIG_WINDOW = (("chunks", 64),)  # 64 x 64 KiB = 4 MiB: the whole file released at once
CHAT_CONFIGS: tuple[ChatConfig, ...] = (
    ChatConfig("idle", "no transfer", strategy="none"),
    ChatConfig("fifo", "FIFO writer, big window", writer="fifo", options=BIG_WINDOW),
    ChatConfig("priority-no-limit", "priority writer, big window, OS default kernel queue",
               options=BIG_WINDOW, unsent_limit=None),
    ChatConfig("priority", f"priority writer, big window, {UNSENT_LIMIT // KiB} KiB unsent limit",
               options=BIG_WINDOW),
    ChatConfig("adaptive", "priority writer, adaptive window", strategy="adaptive"),
    ChatConfig("second-connection", "option 1: the direct path (a second connection to bob)", options=BIG_WINDOW,
               second_connection=True),
)  # fmt: skip


@dataclass
class ChatSummary:
    """Chat round-trip times of one :class:`ChatConfig` (one line of ``chat_latency.csv``)."""

    config: str
    label: str
    link: str
    link_rtt_ms: float
    writer: str
    strategy: str
    second_connection: bool
    unsent_limit: int | None  # in effect: None where the OS default applied (asked for, or no TCP_NOTSENT_LOWAT)
    pings: int
    lost: int  # no echo within the deadline
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    file_bytes: int
    mb_per_s: float | None  # the file's throughput meanwhile


@dataclass
class ChatSample:
    """One chat line: sent ``time`` seconds after the transfer began, echoed after ``rtt_ms``."""

    config: str
    time: float
    rtt_ms: float | None


class _Pinger:
    """alice says numbered lines and times the echo the server sends back to her."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.sent: dict[str, float] = {}
        self.arrived: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="chatlab-pinger", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        me = self.client.nick
        while not self._stop.is_set():
            try:
                message = self.client.wait_for(ChatMessage, timeout=0.1, predicate=lambda m: m.sender == me)
            except TimeoutError:
                continue
            except ChatlabError:  # the connection closed
                return
            self.arrived.setdefault(message.text, time.monotonic())

    def ping(self, n: int) -> None:
        text = f"ping {n}"
        self.sent[text] = time.monotonic()
        self.client.say(text)

    def wait_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrived) < len(self.sent) and time.monotonic() < deadline:
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1.0)


def _measure_chat(
    config: ChatConfig, link: Link, ws: _Workspace, file_bytes: int, interval: float, idle_seconds: float,
    time_limit: float,
) -> tuple[ChatSummary, list[ChatSample]]:
    with _chat_setup(
        link, ws, priority_writer=config.writer != "fifo", second_connection=config.second_connection,
        unsent_limit=config.unsent_limit,
    ) as setup:
        pinger = _Pinger(setup.alice)
        try:
            start = time.monotonic()
            transfer = None
            if config.strategy != "none":
                strategy = make_strategy(config.strategy, **dict(config.options))
                transfer = setup.sender.send_file(ws.file(file_bytes), to="bob", strategy=strategy,
                                                  via="direct" if config.second_connection else "server")
            n = 0
            while True:
                now = time.monotonic()
                if transfer is None and now - start >= idle_seconds:
                    break
                if transfer is not None and (transfer.done or transfer.failed or now - start >= time_limit):
                    break
                n += 1
                pinger.ping(n)
                time.sleep(interval)
            mb_per_s = None
            if transfer is not None:
                try:
                    mb_per_s = transfer.wait(timeout=max(0.1, time_limit - (time.monotonic() - start))).mb_per_s
                except (TimeoutError, TransferError):
                    mb_per_s = transfer.stats.mb_per_s
            pinger.wait_all(timeout=5.0)
        finally:
            pinger.stop()
    samples = []
    for text, sent_at in pinger.sent.items():
        arrived = pinger.arrived.get(text)
        rtt = None if arrived is None else _ms(arrived - sent_at)
        samples.append(ChatSample(config.name, _sig(sent_at - start), rtt))
    rtts = [s.rtt_ms for s in samples if s.rtt_ms is not None]
    summary = ChatSummary(
        config=config.name,
        label=config.label,
        link=link.name,
        link_rtt_ms=link.rtt_ms,
        writer=config.writer,
        strategy=config.strategy,
        second_connection=config.second_connection,
        unsent_limit=config.unsent_limit if HAS_UNSENT_LIMIT else None,
        pings=len(samples),
        lost=len(samples) - len(rtts),
        p50_ms=_sig_or_none(_percentile(rtts, 0.5)),
        p99_ms=_sig_or_none(_percentile(rtts, 0.99)),
        max_ms=max(rtts) if rtts else None,
        file_bytes=0 if transfer is None else file_bytes,
        mb_per_s=_sig_or_none(mb_per_s),
    )
    return summary, samples


def chat_latency(
    link: str | Link = CHAT_LINK,
    configs: Iterable[ChatConfig] = CHAT_CONFIGS,
    *,
    file_bytes: int = 4 * MiB,
    interval: float = 0.03,
    idle_seconds: float = 1.0,
    time_limit: float = 20.0,
    progress: Progress = _quiet,
) -> tuple[list[ChatSummary], list[ChatSample]]:
    """Chat round-trip time while alice sends ``file_bytes`` to bob, for each configuration.

    alice says ``ping N`` every ``interval`` seconds while the file is on its
    way, and times the echo of each line (the server sends a SAY back to its
    sender too).  Her chat crosses the same emulated link as the file, unless
    the file has a second connection (which, in the emulator, is a link of its
    own: see notebook 07 for what that means).

    Returns:
        One :class:`ChatSummary` per configuration, and every :class:`ChatSample`.
    """
    link = get_link(link)
    summaries: list[ChatSummary] = []
    samples: list[ChatSample] = []
    with _workspace(None) as ws:
        for config in configs:
            summary, config_samples = _measure_chat(config, link, ws, file_bytes, interval, idle_seconds, time_limit)
            summaries.append(summary)
            samples.extend(config_samples)
            rate = "" if summary.mb_per_s is None else f", file at {summary.mb_per_s:.2f} MB/s"
            p50, p99 = summary.p50_ms or 0, summary.p99_ms or 0
            progress(f"{config.name:22s} chat RTT p50 {p50:6.0f} ms, p99 {p99:6.0f} ms{rate}")
    return summaries, samples


# --------------------------------------------------------------------------
# TCP alone: one sendall() on its own connection (notebook 06's baseline)
# --------------------------------------------------------------------------


@dataclass
class SendallResult:
    """One ``sendall()`` of a whole file on a plain TCP connection of its own, through the link emulator.

    Attributes:
        link: the link's name.
        file_bytes: the file size.
        returned_s: seconds until ``sendall()`` returned: the kernel had taken the last byte.
        delivered_s: seconds until the receiver had read the last byte.
    """

    link: str
    file_bytes: int
    returned_s: float
    delivered_s: float

    @property
    def mb_per_s(self) -> float:
        """Throughput as the receiver saw it, in MB/s."""
        return self.file_bytes / self.delivered_s / 1e6 if self.delivered_s > 0 else 0.0


def measure_sendall(link: str | Link, file_bytes: int, *, timeout: float = 30.0) -> SendallResult:
    """Send ``file_bytes`` random bytes with one ``sendall()`` to a receiver that reads and discards them.

    No chatlab, no strategy, no framing: TCP's own flow control (the
    receiver's window) and the emulator's bounded queue are all that pace the
    sender.  The receiver runs in a thread of this process, so both times come
    from the same clock.
    """
    link = get_link(link)
    arrived: dict[str, float] = {}
    data = os.urandom(file_bytes)
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
        listener.settimeout(timeout)

        def receive() -> None:
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(timeout)
                    while conn.recv(1 << 16):
                        arrived["last"] = time.monotonic()
                    conn.sendall(b"ok")  # after the sender's FIN: everything was read

        receiver = threading.Thread(target=receive, name="chatlab-sendall-receiver", daemon=True)
        receiver.start()
        address = listener.getsockname()[:2]
        profile = link.profile()
        if profile is not None:
            address = stack.enter_context(LinkEmulator(address, profile)).address
        with socket.create_connection(address, timeout=timeout) as sock:
            start = time.monotonic()
            sock.sendall(data)
            returned = time.monotonic() - start
            sock.shutdown(socket.SHUT_WR)
            sock.recv(2)  # the receiver's "ok": it has read everything
        receiver.join(timeout)
    if "last" not in arrived:
        raise ChatlabError("the receiver got nothing")
    return SendallResult(link.name, file_bytes, _sig(returned), _sig(arrived["last"] - start))


# --------------------------------------------------------------------------
# A simulated link: strategies on a fake clock (notebook 06's exercise)
# --------------------------------------------------------------------------

FRAME_OVERHEAD = 20  # bytes a FileChunk frame adds to its data: the 12-byte header and the 8-byte offset


@dataclass
class SimulatedRun:
    """What :func:`simulate_transfer` saw: one transfer of ``file_bytes`` over a simulated link.

    Attributes:
        link: the link's name.
        file_bytes: the file size.
        bytes_acked: what the receiver had acknowledged at the end.
        seconds: simulated time from the first send to the last ack (or to the end of the run).
        stalled: the run ended with bytes left and nothing scheduled: the strategy allowed no
            full chunk and had no ack or wake-up to wait for, so it would wait forever.
        timed_out: the run hit ``time_limit`` before every byte was acknowledged.
        queue_delays: per chunk, ``(time it was sent, seconds it waited in the link's queue)``:
            the time a chat line sent at that moment would have waited too.
        trace: the strategy's own :class:`~chatlab.core.transfer.TraceRow` rows.
        link_rate: the link rate in bytes per second.
        error: the exception the strategy raised, if any (the run stops there).
    """

    link: str
    file_bytes: int
    bytes_acked: int = 0
    seconds: float = 0.0
    stalled: bool = False
    timed_out: bool = False
    queue_delays: list[tuple[float, float]] = field(default_factory=list)
    trace: list[TraceRow] = field(default_factory=list)
    link_rate: float = 0.0
    error: BaseException | None = None

    @property
    def completed(self) -> bool:
        return self.bytes_acked >= self.file_bytes and self.error is None

    @property
    def mb_per_s(self) -> float:
        """Whole-transfer throughput in MB/s (10**6 bytes per second)."""
        return self.bytes_acked / self.seconds / 1e6 if self.seconds > 0 else 0.0

    def steady_mb_per_s(self, skip: float = 1 / 3) -> float:
        """Throughput after the first ``skip`` of the run (start-up excluded), in MB/s."""
        acks = [(row.time, row.bytes_acked) for row in self.trace]
        if len(acks) < 2 or self.seconds <= 0:
            return 0.0
        t0, t1 = acks[0][0], acks[0][0] + self.seconds
        cut = t0 + skip * (t1 - t0)
        before = max((acked for t, acked in acks if t <= cut), default=0)
        after = max(acked for _, acked in acks)
        return (after - before) / (t1 - cut) / 1e6 if t1 > cut else 0.0

    def queue_ms(self, q: float = 0.5, skip: float = 1 / 3) -> float | None:
        """The ``q``-quantile of the queueing delay in ms, chunks sent after the first ``skip`` of the run."""
        if not self.queue_delays:
            return None
        t0 = self.queue_delays[0][0]
        cut = t0 + skip * self.seconds
        late = [d for t, d in self.queue_delays if t >= cut] or [d for _, d in self.queue_delays]
        value = _percentile(late, q)
        return None if value is None else value * 1000


def simulate_transfer(
    strategy: SendStrategy,
    link: str | Link,
    file_bytes: int,
    *,
    time_limit: float | None = None,
    max_events: int = 200_000,
) -> SimulatedRun:
    """Send a ``file_bytes`` file with ``strategy`` over a simulated link, on a fake clock.

    The model is the one of ``tests/test_transfer_core.py``, without files: a
    bottleneck of the link's rate with an unbounded FIFO queue in front, then
    half the RTT of delay; the receiver acks each chunk as it arrives, and the
    ack takes the other half of the RTT back.  The sender behaves as
    :class:`~chatlab.core.transfer.OutgoingTransfer` does: it sends full chunks
    (the last one may be shorter) while ``allowance(now)`` lets a whole one
    go, and asks again on every ack and at ``wake_at(now)``.  No sockets, no
    threads, no real time: a run of thousands of chunks takes milliseconds and
    gives the same numbers on every machine.

    An exception raised by the strategy ends the run; it is kept in ``.error``.

    Args:
        strategy: a fresh strategy (it keeps one transfer's state).
        link: an emulated :class:`Link` or its name, e.g. ``"50mbit-40ms"`` (not ``"loopback"``).
        file_bytes: the file size.
        time_limit: simulated seconds before the run is stopped (default: 5 times the
            time the link needs for the file, plus a second).

    Returns:
        A :class:`SimulatedRun`.
    """
    import heapq

    link = get_link(link)
    rate = link.rate
    if rate is None:
        raise ValueError("simulate_transfer needs a link with a rate, e.g. '50mbit-40ms'")
    one_way = link.rtt_ms / 2000
    limit = time_limit if time_limit is not None else 5 * file_bytes / rate + 1.0
    run = SimulatedRun(link.name, file_bytes, link_rate=rate)
    acks: list[tuple[float, int, int]] = []  # (time the ack reaches the sender, order, cumulative bytes)
    order = 0
    busy_until = 0.0  # when the bottleneck finishes the bytes already queued
    woken_for: float | None = None
    now = 0.0
    try:
        strategy.start(now)
        for _ in range(max_events):
            # Send every full chunk the strategy allows now (as OutgoingTransfer does).
            while strategy.sent < file_bytes:
                length = min(strategy.chunk_size, file_bytes - strategy.sent)
                if strategy.allowance(now) < length:
                    break
                offset = strategy.sent
                strategy.on_sent(now, offset, length)
                start = max(now, busy_until)
                run.queue_delays.append((now, start - now))
                busy_until = start + (length + FRAME_OVERHEAD) / rate
                order += 1
                heapq.heappush(acks, (busy_until + 2 * one_way, order, offset + length))
                if strategy.sent <= offset:  # on_sent did not move it: avoid sending the same bytes forever
                    raise RuntimeError("on_sent() did not advance strategy.sent")
            if strategy.acked >= file_bytes:
                break
            wake = strategy.wake_at(now)
            if wake is not None and wake != woken_for and (not acks or wake < acks[0][0]):
                woken_for = wake
                now = max(now, wake)
            elif acks:
                now, _, acked = heapq.heappop(acks)
                strategy.on_ack(now, acked)
            else:
                run.stalled = True
                break
            if now > limit:
                run.timed_out = True
                break
        else:  # max_events went by without an end: a strategy that wakes itself up without sending
            run.timed_out = True
    except Exception as exc:  # the strategy's own code failed: report it, as a checker needs to
        run.error = exc
    run.bytes_acked = min(strategy.acked, file_bytes)
    run.seconds = now
    run.trace = list(strategy.trace)
    return run


# --------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------

CSV_FILES = {
    "sleep": "throughput_sleep.csv",
    "window": "throughput_window.csv",
    "adaptive": "throughput_adaptive.csv",
    "trace": "adaptive_trace.csv",
    "summary": "throughput_summary.csv",
    "chat": "chat_latency.csv",
    "chat_samples": "chat_latency_samples.csv",
}
FIGURE_FILES = {
    "sleep": "throughput_sleep.png",
    "window": "throughput_window.png",
    "trace": "adaptive_trace.png",
    "summary": "throughput_summary.png",
    "chat": "chat_latency.png",
    "chat_timeline": "chat_latency_timeline.png",
}


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_csv(rows: Iterable[Any], path: str | os.PathLike[str], row_class: type | None = None) -> Path:
    """Write dataclass rows (or dicts) to ``path`` as CSV; ``None`` becomes an empty cell.  Returns the path."""
    rows = list(rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if row_class is None and rows:
        row_class = type(rows[0])
    if row_class is not None and dataclasses.is_dataclass(row_class):
        names = [f.name for f in dataclasses.fields(row_class)]
    elif rows:
        names = list(rows[0])
    else:
        names = []
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            values = dataclasses.asdict(row) if dataclasses.is_dataclass(row) and not isinstance(row, type) else row
            writer.writerow([_format(values.get(name)) for name in names])
    return path


def _converter(hint: Any) -> Callable[[str], Any]:
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint

    def convert(text: str) -> Any:
        if text == "" and (optional or base is not str):
            return None
        if base is bool:
            return text.strip().lower() in ("true", "1", "yes")
        if base is int:
            return int(float(text))
        if base is float:
            return float(text)
        return text

    return convert


def read_csv(path: str | os.PathLike[str], row_class: type | None = None) -> list[Any]:
    """Read a CSV written by :func:`write_csv`: dataclass rows of ``row_class``, or dicts of strings."""
    with open(path, newline="", encoding="utf-8") as f:
        records = list(csv.DictReader(f))
    if row_class is None:
        return records
    hints = typing.get_type_hints(row_class)
    converters = {f.name: _converter(hints[f.name]) for f in dataclasses.fields(row_class)}
    return [row_class(**{name: conv(record.get(name, "")) for name, conv in converters.items()}) for record in records]


@dataclass
class Results:
    """Everything :func:`run_all` measures (or :func:`load_results` reads back)."""

    sleep: list[TransferRow] = field(default_factory=list)
    window: list[TransferRow] = field(default_factory=list)
    adaptive: list[TransferRow] = field(default_factory=list)
    trace: list[TracePoint] = field(default_factory=list)
    chat: list[ChatSummary] = field(default_factory=list)
    chat_samples: list[ChatSample] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)  # what run_all wrote

    @property
    def summary(self) -> list[TransferRow]:
        return summary_rows(self.sleep, self.window, self.adaptive)


_ROW_CLASSES = {
    "sleep": TransferRow, "window": TransferRow, "adaptive": TransferRow, "trace": TracePoint,
    "chat": ChatSummary, "chat_samples": ChatSample,
}  # fmt: skip


def load_results(directory: str | os.PathLike[str]) -> Results:
    """Read the CSV files of a previous :func:`run_all` from ``directory`` (missing files give empty lists)."""
    directory = Path(directory)
    results = Results()
    for key, row_class in _ROW_CLASSES.items():
        path = directory / CSV_FILES[key]
        if path.exists():
            setattr(results, key, read_csv(path, row_class))
    return results


# --------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------

COLORS = {"sleep": "tab:red", "fixed": "tab:blue", "adaptive": "tab:green"}


def _links_in(rows: Iterable[Any]) -> list[Link]:
    names: list[str] = []
    for row in rows:
        if row.link not in names:
            names.append(row.link)
    order = list(LINKS)
    names.sort(key=lambda n: order.index(n) if n in order else len(order))
    found = {}
    for row in rows:
        if isinstance(row, TransferRow):
            found[row.link] = Link(row.link, row.link_mbit, row.link_rtt_ms)
    return [found.get(n) or get_link(n) for n in names]


def _subplots(n: int, rows: int = 1, height: float = 3.2, width: float = 3.6, sharey: Any = False) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, n, figsize=(max(6.0, width * n), height * rows), squeeze=False, sharey=sharey)
    return fig, axes


def _link_line(ax: Any, link: Link) -> None:
    if link.mb_per_s is not None:
        ax.axhline(link.mb_per_s, color="black", linestyle="--", linewidth=1, label="link rate")


def _rtt_line(ax: Any, link: Link) -> None:
    if link.rtt_ms:
        ax.axhline(link.rtt_ms, color="black", linestyle=":", linewidth=1, label="link RTT")


def plot_sleep_sweep(rows: Sequence[TransferRow]) -> Any:
    """Throughput (top) and chunk RTT (bottom) against the pause, one column per link, one line per chunk size."""
    links = _links_in(rows)
    pauses = sorted({r.pause_ms or 0.0 for r in rows})
    fig, axes = _subplots(len(links), rows=2, height=2.8)
    for col, link in enumerate(links):
        top, bottom = axes[0][col], axes[1][col]
        for chunk in sorted({r.chunk_size for r in rows}):
            mine = (r for r in rows if r.link == link.name and r.chunk_size == chunk)
            series = sorted(mine, key=lambda r: r.pause_ms or 0)
            if not series:
                continue
            x = [pauses.index(r.pause_ms or 0.0) for r in series]  # evenly spaced: 0 has no place on a log axis
            top.plot(x, [r.mb_per_s for r in series], marker="o", label=f"{chunk // KiB} KiB chunks")
            bottom.plot(x, [r.rtt_p50_ms for r in series], marker="o", label=f"{chunk // KiB} KiB chunks")
        _link_line(top, link)
        _rtt_line(bottom, link)
        top.set_title(link.label, fontsize=10)
        for ax in (top, bottom):
            ax.set_xticks(range(len(pauses)))
            ax.set_xticklabels([f"{p:g}" for p in pauses])
            ax.set_ylim(bottom=0)
        bottom.set_xlabel("pause between chunks (ms)")
        if col == 0:
            top.set_ylabel("throughput (MB/s)")
            bottom.set_ylabel("chunk RTT, median (ms)")
        top.legend(fontsize=7)
        bottom.legend(fontsize=7)
    fig.suptitle("SleepPaced: too slow with long pauses; with short ones the link is full and a queue grows",
                 fontsize=11)
    fig.tight_layout()
    return fig


def plot_window_sweep(rows: Sequence[TransferRow]) -> Any:
    """Throughput (top) and chunk RTT (bottom) against the window, one column per link, the BDP marked."""
    links = _links_in(rows)
    fig, axes = _subplots(len(links), rows=2, height=2.8)
    for col, link in enumerate(links):
        top, bottom = axes[0][col], axes[1][col]
        series = sorted((r for r in rows if r.link == link.name), key=lambda r: r.window_chunks or 0)
        if not series:
            continue
        x = [(r.window_chunks or 0) * r.chunk_size / KiB for r in series]
        top.plot(x, [r.mb_per_s for r in series], marker="o", color=COLORS["fixed"], label="measured")
        bottom.plot(x, [r.rtt_p50_ms for r in series], marker="o", color=COLORS["fixed"], label="measured")
        if link.rate is not None and link.rtt_ms:
            # what a window of W bytes can carry: W per round trip, never more than the link
            xs = [x[0] * 2 ** (i / 8) for i in range(int(8 * math.log2(x[-1] / x[0])) + 1)]
            ideal = [min(w * KiB / (link.rtt_ms / 1000), link.rate) / 1e6 for w in xs]
            top.plot(xs, ideal, color="grey", linewidth=1, label="min(window / RTT, rate)")
            bdp = (link.bdp_bytes or 0) / KiB
            for ax in (top, bottom):
                ax.axvline(bdp, color="tab:orange", linestyle=":", linewidth=1.5, label=f"BDP {bdp:.0f} KiB")
        _link_line(top, link)
        _rtt_line(bottom, link)
        top.set_title(link.label, fontsize=10)
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            ax.set_xticks(x)
            ax.set_xticklabels([f"{v:g}" for v in x], fontsize=8)
            ax.set_ylim(bottom=0)
        bottom.set_xlabel("window (KiB)")
        top.legend(fontsize=7)
        if col == 0:
            top.set_ylabel("throughput (MB/s)")
            bottom.set_ylabel("chunk RTT, median (ms)")
    fig.suptitle("FixedWindow: throughput grows as window / RTT until the link is full, then only the queue grows",
                 fontsize=11)
    fig.tight_layout()
    return fig


def plot_adaptive_trace(points: Sequence[TracePoint], rows: Sequence[TransferRow] = (), link: str | None = None) -> Any:
    """A tcptrace-style time-sequence plot (bytes sent and acked over time) and the window and RTT beneath it."""
    names = [link] if link else list(dict.fromkeys(p.link for p in points))
    fig, axes = _subplots(len(names), rows=2, height=2.9)
    by_link = {r.link: r for r in rows}
    for col, name in enumerate(names):
        top, bottom = axes[0][col], axes[1][col]
        pts = [p for p in points if p.link == name]
        if not pts:
            continue
        t = [p.time for p in pts]
        top.step(t, [p.bytes_sent / 1e6 for p in pts], where="post", color="tab:blue", label="sent (released)")
        top.step(t, [p.bytes_acked / 1e6 for p in pts], where="post", color="tab:green", label="acked")
        the_link = get_link(name) if name in LINKS or _LINK_NAME.fullmatch(name) else None
        if the_link is not None and the_link.mb_per_s is not None:
            top.plot([0, t[-1]], [0, the_link.mb_per_s * t[-1]], color="black", linestyle="--", linewidth=1,
                     label="link rate")
        top.set_ylabel("file offset (MB)")
        top.set_title(the_link.label if the_link else name, fontsize=10)
        top.legend(fontsize=8, loc="upper left")
        bottom.plot(t, [p.window_bytes / KiB for p in pts], color="tab:purple", label="window (KiB)")
        if the_link is not None and the_link.bdp_bytes:
            bottom.axhline(the_link.bdp_bytes / KiB, color="tab:orange", linestyle=":", label="BDP (KiB)")
        bottom.set_ylabel("window (KiB)")
        bottom.set_xlabel("time (s)")
        rtt_ax = bottom.twinx()
        rt = [(p.time, p.rtt_ms) for p in pts if p.rtt_ms is not None]
        if rt:
            rtt_ax.plot([a for a, _ in rt], [b for _, b in rt], ".", color="tab:red", markersize=3, label="RTT (ms)")
        rtt_ax.set_ylabel("RTT (ms)", color="tab:red")
        rtt_ax.set_ylim(bottom=0)
        bottom.set_ylim(bottom=0)
        lines = bottom.get_legend_handles_labels()
        more = rtt_ax.get_legend_handles_labels()
        rtt_ax.set_ylim(top=rtt_ax.get_ylim()[1] * 1.45)  # head room: the points stay below the legend
        bottom.set_ylim(top=bottom.get_ylim()[1] * 1.45)
        bottom.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper right", ncol=3,
                      framealpha=0.9)
        row = by_link.get(name)
        if row is not None:
            top.text(0.98, 0.04, f"{row.mb_per_s:.2f} MB/s", transform=top.transAxes, ha="right", fontsize=9)
    fig.suptitle("AdaptiveWindow: slow start, then a window that holds the RTT near its floor", fontsize=11)
    fig.tight_layout()
    return fig


def plot_summary(rows: Sequence[TransferRow]) -> Any:
    """One panel per link: each strategy's throughput as a bar, the link rate as a line, the chunk RTT on the bar."""
    links = _links_in(rows)
    fig, axes = _subplots(len(links), rows=1, height=3.8, width=2.9)
    order = ["sleep", "fixed", "adaptive"]
    for col, link in enumerate(links):
        ax = axes[0][col]
        chosen = sorted((r for r in rows if r.link == link.name), key=lambda r: order.index(r.strategy))
        # one short item per line: side by side, "8 x 16 KiB" and "252 KiB chunks" ran together
        names = [f"adaptive\nchunks\n{r.chunk_size // KiB} KiB" if r.strategy == "adaptive"
                 else f"{r.strategy}\n" + str(r.setting).replace(" x ", " x\n", 1) for r in chosen]
        bars = ax.bar(range(len(chosen)), [r.mb_per_s for r in chosen], color=[COLORS[r.strategy] for r in chosen])
        top = max([r.mb_per_s for r in chosen] + [link.mb_per_s or 0]) * 1.3
        for bar, r in zip(bars, chosen):
            if r.rtt_p50_ms is not None:  # at the foot of the bar, clear of the link-rate line
                tall = bar.get_height() > top * 0.2
                ax.text(bar.get_x() + bar.get_width() / 2, top * 0.02 if tall else bar.get_height() + top * 0.02,
                        f"RTT\n{r.rtt_p50_ms:.0f} ms", ha="center", va="bottom", fontsize=8,
                        color="white" if tall else "black", fontweight="bold" if tall else "normal")
        _link_line(ax, link)
        ax.set_xticks(range(len(chosen)))
        ax.set_xticklabels(names, fontsize=7)
        ax.set_ylim(0, top or 1)
        ax.set_title(link.label, fontsize=10)
        if col == 0:
            ax.set_ylabel("throughput (MB/s)")
        if link.mb_per_s is not None:
            ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Throughput of each strategy against the link rate (dashed); median chunk RTT on each bar",
                 fontsize=11)
    fig.tight_layout()
    return fig


def plot_chat_latency(summaries: Sequence[ChatSummary]) -> Any:
    """Chat round-trip time during a transfer: p50 and p99 per configuration (log scale), link RTT marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.45 * len(summaries) + 1.4))
    ys = range(len(summaries))[::-1]
    for y, s in zip(ys, summaries):
        if s.p99_ms is not None:
            ax.barh(y, s.p99_ms, color="tab:orange", alpha=0.5, label="p99" if y == ys[0] else None)
        if s.p50_ms is not None:
            ax.barh(y, s.p50_ms, color="tab:blue", label="p50" if y == ys[0] else None)
            ax.text(s.p99_ms or s.p50_ms, y, f"  {s.p50_ms:.0f} / {s.p99_ms:.0f} ms", va="center", fontsize=8)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([s.label for s in summaries], fontsize=8)
    ax.set_xscale("log")
    rtt = summaries[0].link_rtt_ms if summaries else 0
    if rtt:
        ax.axvline(rtt, color="black", linestyle="--", linewidth=1, label=f"link RTT {rtt:g} ms")
    ax.set_xlabel("chat round-trip time while a file is sent (ms, log scale)")
    link = get_link(summaries[0].link).label if summaries else ""
    ax.set_title(f"Chatting while sending a file ({link})", fontsize=11)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_xlim(right=ax.get_xlim()[1] * 3)
    fig.tight_layout()
    return fig


TIMELINE_CONFIGS = ("fifo", "priority-no-limit", "priority", "adaptive", "second-connection")


def plot_chat_timeline(
    samples: Sequence[ChatSample], summaries: Sequence[ChatSummary] = (), configs: Sequence[str] | None = None
) -> Any:
    """Each chat line's round-trip time against when it was sent, one series per configuration.

    ``configs``: which configurations to draw (default: :data:`TIMELINE_CONFIGS`, those present).
    """
    import matplotlib.pyplot as plt

    labels = {s.config: s.label for s in summaries}
    present = list(dict.fromkeys(s.config for s in samples))
    names = list(configs) if configs is not None else [c for c in TIMELINE_CONFIGS if c in present] or present
    fig, ax = plt.subplots(figsize=(8, 4))
    for name in names:
        pts = [(s.time, s.rtt_ms) for s in samples if s.config == name and s.rtt_ms is not None]
        if pts:
            ax.plot([a for a, _ in pts], [b for _, b in pts], ".-", markersize=4, linewidth=0.8,
                    label=labels.get(name, name))
    ax.set_yscale("log")
    rtt = summaries[0].link_rtt_ms if summaries else 0
    if rtt:
        ax.axhline(rtt, color="black", linestyle="--", linewidth=1, label=f"link RTT {rtt:g} ms")
    ax.set_xlabel("time since the transfer started (s)")
    ax.set_ylabel("chat round-trip time (ms, log scale)")
    ax.set_title("Each chat line's round trip while the file is sent", fontsize=11)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------


def run_all(
    out_dir: str | os.PathLike[str], quick: bool = False, progress: Progress = print, figures: bool = True
) -> Results:
    """Run every experiment and write its CSV files (and PNG figures) into ``out_dir``.

    Args:
        out_dir: created if missing; files are named as in :data:`CSV_FILES` and :data:`FIGURE_FILES`.
        quick: the :data:`QUICK` grid (three links, fewer pauses and windows, shorter
            transfers: about a minute) instead of :data:`FULL` (five links, several minutes).
        progress: called with one line per measurement (``print`` by default).
        figures: also save the PNG figures.

    Returns:
        The :class:`Results`; ``results.files`` maps each key to the file written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = QUICK if quick else FULL
    results = Results()
    progress(f"SleepPaced sweep over {', '.join(s.links)}")
    results.sleep = sleep_sweep(s.links, s.pauses_ms, s.sleep_chunks, seconds=s.seconds, time_limit=s.time_limit,
                                progress=progress)
    progress("FixedWindow sweep")
    results.window = window_sweep(s.links, s.windows, seconds=s.seconds, time_limit=s.time_limit, progress=progress)
    progress("AdaptiveWindow")
    results.adaptive, results.trace = adaptive_runs(s.links, seconds=s.seconds, time_limit=s.time_limit,
                                                    progress=progress)
    progress(f"chat round-trip time during a transfer ({s.chat_link})")
    results.chat, results.chat_samples = chat_latency(s.chat_link, CHAT_CONFIGS, file_bytes=s.chat_file_bytes,
                                                      progress=progress)
    for key in _ROW_CLASSES:
        results.files[key] = write_csv(getattr(results, key), out / CSV_FILES[key], _ROW_CLASSES[key])
    results.files["summary"] = write_csv(results.summary, out / CSV_FILES["summary"], TransferRow)
    if figures:
        results.files.update(save_figures(results, out))
    progress("wrote " + ", ".join(sorted(p.name for p in results.files.values())))
    return results


def save_figures(results: Results, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Draw every figure of ``results`` and save it as PNG in ``out_dir`` (names in :data:`FIGURE_FILES`)."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # no display needed from a shell
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    drawings: dict[str, Callable[[], Any]] = {
        "sleep": lambda: plot_sleep_sweep(results.sleep),
        "window": lambda: plot_window_sweep(results.window),
        "trace": lambda: plot_adaptive_trace(results.trace, results.adaptive),
        "summary": lambda: plot_summary(results.summary),
        "chat": lambda: plot_chat_latency(results.chat),
        "chat_timeline": lambda: plot_chat_timeline(results.chat_samples, results.chat),
    }
    written = {}
    for key, draw in drawings.items():
        fig = draw()
        path = out / FIGURE_FILES[key]
        fig.savefig(path, dpi=100, metadata={"Software": None})
        plt.close(fig)
        written[f"{key}_png"] = path
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m chatlab.experiments [OUT_DIR] [--quick] [--no-figures] [--replot]``."""
    parser = argparse.ArgumentParser(
        prog="python -m chatlab.experiments",
        description="Measure the file-transfer strategies and chat latency; write CSV and PNG files.",
    )
    parser.add_argument("out_dir", nargs="?", default="data", help="where to write the files (default: data)")
    parser.add_argument("--quick", action="store_true", help="a short run (about a minute) instead of the full one")
    parser.add_argument("--no-figures", action="store_true", help="CSV files only")
    parser.add_argument("--replot", action="store_true", help="measure nothing: redraw the figures from the CSV files")
    args = parser.parse_args(argv)
    if args.replot:
        written = save_figures(load_results(args.out_dir), args.out_dir)
        print("wrote " + ", ".join(sorted(p.name for p in written.values())))
        return 0
    run_all(args.out_dir, quick=args.quick, figures=not args.no_figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
