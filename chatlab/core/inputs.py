"""What the I/O layer feeds :meth:`chatlab.core.chatroom.ChatRoom.handle`, one event at a time.

The way h11's ``receive_data``/``next_event`` works: the server turns everything
that happens to a connection into one of these named events and hands it to the
core's one entry; the core answers with named outputs.  Sans-I/O: no socket here.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Union


class Received(NamedTuple):
    """Input: ``session`` sent ``item`` (a decoded message, or a transfer frame)."""

    session: Any
    item: Any  # p.Message | p.Frame


class Malformed(NamedTuple):
    """Input: ``session``'s bytes could not be decoded (``text`` says why): it is dropped."""

    session: Any
    text: str


class Gone(NamedTuple):
    """Input: ``session``'s connection ended (it quit, broke, or was closed) for ``reason``."""

    session: Any
    reason: str


class Stalled(NamedTuple):
    """Input: ``receiver`` has taken nothing for a while and ``sender``'s file frames wait for it."""

    sender: Any
    receiver: Any
    seconds: float


class Tick(NamedTuple):
    """Input: the clock moved (keepalive, offer expiry)."""


Event = Union[Received, Malformed, Gone, Stalled, Tick]


__all__ = ["Received", "Malformed", "Gone", "Stalled", "Tick", "Event"]
