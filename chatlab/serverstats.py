"""What can be read about a running :class:`chatlab.Server` (the base class of its reporting side).

Every property here is a snapshot, safe to read from another thread while the
loop runs; the tests, benchmarks and notebooks read them, the loop never does.
"""

from __future__ import annotations

import selectors
import threading
from typing import TYPE_CHECKING

from .core import protocol as p
from .units import format_size

if TYPE_CHECKING:
    from typing import Callable

    from .connection import Connection
    from .core.chatroom import ChatRoom, Settings


class ServerStats:
    """The counters and read-only views of a server (the loop in :mod:`chatlab.server` fills them)."""

    config: Settings
    room: ChatRoom
    _connections: set[Connection]
    _thread: threading.Thread | None
    _selector: selectors.BaseSelector
    served = 0  # connections accepted so far
    peak = 0  # the most connections at once
    messages = 0  # events handled by the core (chat lines, requests, file frames)
    relayed = 0  # file bytes forwarded
    on_frame: Callable[[str, str, p.Frame], None] | None

    def _trace(self, direction: str, who: str, item: p.Message | p.Frame) -> None:
        """The one place frames are reported to ``on_frame`` (notebook 05's frame log)."""
        if self.on_frame is None:
            return
        if not isinstance(item, p.Frame):
            data = p.encode(item)
            header = p.parse_header(data, len(data))
            item = p.Frame(p.FrameType(header.type), header.flags, header.stream_id, data[p.HEADER_SIZE :])
        self.on_frame(direction, who, item)


    @property
    def running(self) -> bool:
        """Is the loop's thread alive?  (A test's witness that hostile input did not kill it.)"""
        return self._thread is not None and self._thread.is_alive()

    @property
    def connection_count(self) -> int:
        """Connections open now, registered or not."""
        return len(self._connections)

    @property
    def nicks(self) -> list[str]:
        """Nicknames online now (a snapshot, safe to read from another thread)."""
        return sorted(s.nick for s in list(self.room.nicks.values()) if s.nick)

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting in all outgoing queues now."""
        return sum(c.queued for c in list(self._connections))

    @property
    def buffered_bytes(self) -> list[int]:
        """Bytes each connection has sent us that are not yet whole events (bounded by design)."""
        return [len(c.first_bytes) + getattr(c.codec, "buffered", 0) + c.parked_bytes for c in list(self._connections)]

    def transfers(self) -> dict[str, tuple[int, int]]:
        """``{nick: (transfers sending, transfers receiving)}`` relayed now."""
        return {s.name: self.room.relay.count(s) for s in list(self._connections) if s.nick}

    def summary(self) -> str:
        """One line for the end of a run: connections served, the peak, messages, file bytes relayed."""
        return (f"{self.served} connections served (at most {self.peak} at once), {self.messages} messages,"
                f" {format_size(self.relayed)} of files relayed")

    @property
    def max_queue(self) -> int:
        return self.config.max_queue

    @property
    def selector(self) -> selectors.BaseSelector:
        """The selector the loop waits in (public for instrumentation, e.g. the scaling bench)."""
        return self._selector


__all__ = ["ServerStats"]
