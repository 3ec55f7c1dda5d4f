"""What a :class:`~chatlab.client.Client` hands to its user: events, and the queue they wait in.

The client's reader thread turns frames into events and :meth:`EventQueue.put`
them; the user's thread takes them with ``Client.wait_for`` (which is
:meth:`EventQueue.take`).  Events of other kinds stay queued, in arrival
order, for later calls: a test can wait for a ``FileReceived`` while chat lines
keep arriving, and read those afterwards.

Besides the protocol's own messages (``ChatMessage``, ``Notice``...), the
client adds the events below, which no frame carries as such.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import ConnectionClosed

MAX_BACKLOG = 100_000  # events kept for wait_for before the oldest are dropped


@dataclass(frozen=True)
class Disconnected:
    """The connection ended; ``reason`` says how.  Always the last event."""

    reason: str


@dataclass(frozen=True)
class FileStarted:
    """We accepted a file and it is coming: into ``path`` (a ``.part`` until it is complete).

    ``resumed_from`` is the bytes an earlier, interrupted transfer of the same
    file left in its ``.part`` (0 for a fresh start); only the rest is sent.
    """

    sender: str
    name: str
    path: Path
    size: int
    resumed_from: int


@dataclass(frozen=True)
class FileReceived:
    """A file arrived complete, its SHA-256 checked, at ``path``."""

    sender: str
    name: str
    path: Path
    size: int
    sha256: str
    seconds: float


@dataclass(frozen=True)
class FileFailed:
    """A file we were receiving did not arrive; ``reason`` says why.  Its ``.part`` is kept for a resume."""

    sender: str
    name: str
    reason: str


@dataclass(frozen=True)
class DirectFallback:
    """A file we send with ``via="direct"`` goes through the server instead; ``reason`` says why.

    The transfer itself goes on (resume and SHA-256 check as on the direct path);
    this only tells the user which way the bytes take.
    """

    to: str
    name: str
    reason: str


class EventQueue:
    """Events in arrival order; any thread may take the oldest one that matches what it waits for.

    Thread-safe.  Once :meth:`close` is called (the connection ended), takers
    still get the events already queued, then :class:`ConnectionClosed`.

    Args:
        owner: named in error messages (the client's nick).
        max_backlog: events kept before the oldest are dropped (counted in :attr:`dropped`).
    """

    def __init__(self, owner: str = "", max_backlog: int = MAX_BACKLOG) -> None:
        self.owner = owner
        self.max_backlog = max_backlog
        self.dropped = 0
        self._events: list[tuple[int, Any]] = []  # (sequence number, event), oldest first
        self._numbers = itertools.count()
        self._cond = threading.Condition()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, event: Any) -> None:
        with self._cond:
            self._events.append((next(self._numbers), event))
            if len(self._events) > self.max_backlog:
                del self._events[0]
                self.dropped += 1
            self._cond.notify_all()

    def close(self) -> None:
        """No more events will come: wake every taker (they drain what is queued, then give up)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def mark(self) -> int:
        """A point in time: ``take(..., since=mark)`` ignores the events queued before it.

        A request takes a mark before it sends, so an old answer to an
        earlier request is not mistaken for the answer to this one.
        """
        with self._cond:
            return next(self._numbers)

    def take(self, match: Callable[[Any], bool], timeout: float, *, since: int = -1,
             consume: bool = True, what: str = "an event") -> Any:
        """The oldest event after ``since`` that ``match`` accepts; removed unless ``consume`` is false.

        Raises:
            TimeoutError: nothing matched within ``timeout`` seconds.
            ConnectionClosed: the queue is closed and nothing queued matches.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index, (number, event) in enumerate(self._events):
                    if number > since and match(event):
                        if consume:
                            del self._events[index]
                        return event
                if self._closed:
                    raise ConnectionClosed(f"{self.owner}: the connection is closed; no {what} will come")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self.owner}: no {what} within {timeout:g} s")
                self._cond.wait(remaining)

    def remove(self, event: Any) -> None:
        """Remove this very event (compared by identity) if it is still queued."""
        with self._cond:
            self._events = [(n, e) for n, e in self._events if e is not event]

    def drain(self) -> list[Any]:
        """Remove and return every queued event."""
        with self._cond:
            events = [e for _, e in self._events]
            self._events.clear()
        return events

    def __len__(self) -> int:
        with self._cond:
            return len(self._events)
