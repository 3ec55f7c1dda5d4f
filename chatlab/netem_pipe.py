"""The pipeline of one proxied TCP connection, for :mod:`chatlab.netem`.

:class:`_Direction` is one direction of a connection (source socket -> bounded
queue -> token bucket -> wire delay -> splitter -> destination socket) and
:class:`_Connection` pairs two of them with the client and target sockets.
:class:`chatlab.netem.LinkEmulator` owns the sockets, the selector loop and the
listening socket; it drives these objects from its one thread.  The constants
below are re-exported by :mod:`chatlab.netem` (``netem.BURST_SECONDS``, ...).
"""

from __future__ import annotations

import collections
import os
import random
import selectors
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .netem import LinkProfile

RECV_SIZE = 64 * 1024  # most bytes taken from a socket in one recv()
# Resume reading a source only once its queue has this much room (or is
# empty, for tiny queues).  Without it, a full queue that drains a few bytes
# at a time makes the loop spin on "readable, read 100 bytes, full again",
# the emulator's version of TCP's silly window syndrome.
READ_LOW_WATER = 16 * 1024
PACKET = 1448  # a typical TCP segment: the token bucket releases data in units of about this
BURST_SECONDS = 0.020  # token bucket depth, in seconds of traffic at the configured rate
MIN_BURST = 16 * 1024  # ... but never less than this many bytes


def _rng(seed: int | None, stream: str) -> random.Random:
    """A random generator for one direction of one connection.

    Args:
        seed: the profile's seed, or ``None`` for an unpredictable generator.
        stream: which connection and direction, e.g. ``"1/up"``.  Every
            stream gets its own sequence, so the traffic in one direction
            (or on another connection) does not change the cuts in this one.

    Returns:
        The generator.
    """
    return random.Random() if seed is None else random.Random(f"{seed}/{stream}")


class _Direction:
    """One direction of one proxied connection: ``src`` -> queue -> wire -> splitter -> ``dst``.

    Only the loop thread touches it.  ``pump()`` moves bytes along the
    pipeline; socket errors propagate as :class:`OSError` and the caller
    tears the whole connection down.
    """

    def __init__(self, src: socket.socket, dst: socket.socket, profile: LinkProfile, rng: random.Random,
                 now: float) -> None:
        self.src = src
        self.dst = dst
        self.profile = profile
        self.rng = rng
        self.queue = bytearray()  # read from src, waiting for the token bucket
        # (arrival time, data); None is the FIN
        self.wire: collections.deque[tuple[float, bytes | None]] = collections.deque()
        self.wire_bytes = 0
        self.outbuf = bytearray()  # arrived at the far end, not yet written to dst
        self.eof = False  # src sent its FIN
        self.fin_on_wire = False
        self.fin_arrived = False
        self.shut = False  # FIN passed on to dst: this direction is finished
        self.write_blocked = False  # dst's kernel buffer is full: wait for EVENT_WRITE
        self.next_write = 0.0  # splitter: no write before this time
        self.delivered = 0
        self.burst = 0.0 if profile.rate is None else max(MIN_BURST, profile.rate * BURST_SECONDS)
        self.tokens = self.burst  # a token bucket starts full
        self.refilled = now

    @property
    def held(self) -> int:
        """Bytes held for this direction: queue + wire + splitter."""
        return len(self.queue) + self.wire_bytes + len(self.outbuf)

    def wants_read(self) -> bool:
        """Whether to read from ``src``: not after its FIN, and only while the queue has room."""
        room = self.profile.queue_bytes - len(self.queue)
        return not self.eof and room >= min(READ_LOW_WATER, self.profile.queue_bytes)

    def read(self) -> None:
        """Read what ``src`` has into the queue, never more than the room left in it."""
        room = self.profile.queue_bytes - len(self.queue)
        try:
            data = self.src.recv(min(room, RECV_SIZE))
        except (BlockingIOError, InterruptedError):
            return  # spurious wake-up: nothing to read after all
        if data:
            self.queue += data
        else:
            self.eof = True

    def _in_flight_room(self) -> int:
        return self.profile.max_in_flight - self.wire_bytes - len(self.outbuf)

    def pump(self, now: float) -> None:
        """Move bytes along the pipeline as far as the clock and the sockets allow.

        Args:
            now: the current :func:`time.perf_counter` time.
        """
        self._transmit(now)
        self._arrive(now)
        self._write(now)
        # 4. Pass the FIN on once everything sent before it has been written.
        if self.fin_arrived and not self.outbuf and not self.shut:
            self.dst.shutdown(socket.SHUT_WR)
            self.shut = True

    def _transmit(self, now: float) -> None:
        """1. Transmit from the queue onto the wire, as fast as the token bucket allows."""
        p = self.profile
        n = min(len(self.queue), self._in_flight_room())
        if p.rate is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.refilled) * p.rate)
            self.refilled = now
            n = min(n, int(self.tokens))
        if n > 0:
            chunk = bytes(self.queue[:n])
            del self.queue[:n]
            if p.rate is not None:
                self.tokens -= n
            self.wire.append((now + p.delay, chunk))
            self.wire_bytes += n
        if self.eof and not self.queue and not self.fin_on_wire:
            self.wire.append((now + p.delay, None))  # the FIN queues up behind the data
            self.fin_on_wire = True

    def _arrive(self, now: float) -> None:
        """2. Whatever has spent ``delay`` on the wire has arrived.

        The deque is in sending order and the delay is constant, so order is kept.
        """
        while self.wire and self.wire[0][0] <= now:
            _sent, arrived = self.wire.popleft()
            if arrived is None:
                self.fin_arrived = True
            else:
                self.outbuf += arrived
                self.wire_bytes -= len(arrived)

    def _write(self, now: float) -> None:
        """3. Write what arrived to ``dst``: all of it, or one random piece when splitting."""
        if not self.outbuf or self.write_blocked or now < self.next_write:
            return
        n = len(self.outbuf)
        if self.profile.split:
            n = self.rng.randint(1, min(n, self.profile.max_segment))
        try:
            sent = self.dst.send(self.outbuf[:n])
        except (BlockingIOError, InterruptedError):
            sent = 0
        del self.outbuf[:sent]
        self.delivered += sent
        if sent < n:
            self.write_blocked = True  # kernel buffer full: resume on EVENT_WRITE
        if self.profile.split:
            self.next_write = now + self.profile.split_gap

    def deadline(self) -> float | None:
        """When ``pump()`` next has something to do that no socket event will announce.

        Returns:
            A :func:`time.perf_counter` time, or ``None`` if only I/O can make progress.
        """
        times = []
        if self.wire:
            times.append(self.wire[0][0])  # next arrival
        if self.outbuf and not self.write_blocked:
            times.append(self.next_write)  # splitter pause ends
        room = self._in_flight_room()
        if self.profile.rate is not None and self.queue and room > 0:
            # Tokens for the next packet (or for all that is queued, if less).
            need = min(len(self.queue), room, PACKET) - self.tokens
            times.append(self.refilled + max(need, 0.0) / self.profile.rate)
        return min(times) if times else None


class _Connection:
    """A proxied connection: a client socket, a target socket and a :class:`_Direction` each way."""

    def __init__(self, number: int, client: socket.socket, server: socket.socket, up: LinkProfile, down: LinkProfile,
                 now: float) -> None:
        self.client = client
        self.server = server
        self.connecting = True  # the target connection is not established yet
        self.up = _Direction(client, server, up, _rng(up.seed, f"{number}/up"), now)
        self.down = _Direction(server, client, down, _rng(down.seed, f"{number}/down"), now)

    @property
    def done(self) -> bool:
        """Both FINs have been passed on: the pair can be closed."""
        return self.up.shut and self.down.shut

    def interest(self, sock: socket.socket) -> int:
        """Which selector events to watch on ``sock`` (one of our two sockets).

        Args:
            sock: ``self.client`` or ``self.server``.

        Returns:
            A mask of ``selectors.EVENT_READ`` / ``EVENT_WRITE``, possibly 0.
        """
        if self.connecting:  # a non-blocking connect() finishes with "writable"
            return selectors.EVENT_WRITE if sock is self.server else 0
        reading = self.up if sock is self.client else self.down  # direction that reads sock
        writing = self.down if sock is self.client else self.up  # direction that writes sock
        mask = 0
        if reading.wants_read():
            mask |= selectors.EVENT_READ
        if writing.write_blocked:
            mask |= selectors.EVENT_WRITE
        return mask

    def on_event(self, sock: socket.socket, mask: int) -> None:
        """Handle a selector event on one of our sockets.

        Args:
            sock: the socket the event is for.
            mask: the events that fired.

        Raises:
            OSError: the connection failed (refused, reset, ...).
        """
        if self.connecting:
            if sock is self.server and mask & selectors.EVENT_WRITE:
                err = self.server.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, os.strerror(err))
                self.connecting = False
            return
        if mask & selectors.EVENT_READ:
            (self.up if sock is self.client else self.down).read()
        if mask & selectors.EVENT_WRITE:
            (self.down if sock is self.client else self.up).write_blocked = False

    def pump(self, now: float) -> None:
        """Pump both directions (nothing until the target connection is up).

        Args:
            now: the current :func:`time.perf_counter` time.
        """
        if not self.connecting:
            self.up.pump(now)
            self.down.pump(now)

    def deadline(self) -> float | None:
        """The earlier of the two directions' deadlines, or ``None``."""
        if self.connecting:
            return None
        times = [t for t in (self.up.deadline(), self.down.deadline()) if t is not None]
        return min(times) if times else None
