"""A blocking, notebook-friendly chat client.

Two threads per client, each owning one direction of the socket:

* the **reader** receives bytes, decodes frames and turns them into events
  (small dataclasses) on a queue that :meth:`Client.wait_for` reads;
* the **writer** is the only code that ever sends on the socket.  Everything
  to send goes through its priority queue: control frames first, then chat,
  then file chunks.  One writer per socket is why no lock is needed around
  ``sendall`` (the seed wondered whether one was), and the priority is why a
  chat line never waits behind megabytes of file data queued in this process.
"""

from __future__ import annotations

import itertools
import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Union

from . import protocol as p
from .errors import ConnectionBroken, ConnectionClosed, NickError, ProtocolError, ServerError

log = logging.getLogger("chatlab.client")

Address = Union[tuple[str, int], str]

# Writer priorities: lower goes first.
CONTROL, CHAT, FILE = 0, 1, 2
MAX_BACKLOG = 100_000  # events kept for wait_for before the oldest are dropped


@dataclass(frozen=True)
class Disconnected:
    """The connection ended; ``reason`` says how.  Always the last event."""

    reason: str


def parse_address(address: Address) -> tuple[str, int]:
    """Accept ``("host", port)`` or ``"host:port"`` (``"[::1]:port"`` for IPv6)."""
    if isinstance(address, str):
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"expected HOST:PORT, got {address!r}")
        return host.strip("[]") or "127.0.0.1", int(port)
    return address[0], int(address[1])


class Client:
    """One chat connection.  Create it with :meth:`connect`; close it with ``with``.

    Example::

        with chatlab.Client.connect(server.address, nick="alice") as alice:
            alice.say("hello")
            reply = alice.wait_for(chatlab.ChatMessage, timeout=2)
    """

    def __init__(self, sock: socket.socket, decoder: p.FrameDecoder, welcome: p.Welcome) -> None:
        self._sock = sock
        self._decoder = decoder
        self.nick = welcome.nick
        self.room = welcome.room
        self.motd = welcome.motd
        self.address: tuple[str, int] = sock.getpeername()[:2]
        self._events: list[tuple[int, Any]] = []  # (sequence number, event)
        self._event_seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped_events = 0
        self._outq: queue.PriorityQueue[tuple[int, int, bytes | None]] = queue.PriorityQueue()
        self._out_seq = itertools.count()
        self._reader = threading.Thread(target=self._read_loop, name=f"chatlab-reader-{self.nick}", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name=f"chatlab-writer-{self.nick}", daemon=True)
        self._reader.start()
        self._writer.start()

    # ------------------------------------------------------------ connecting

    @classmethod
    def connect(cls, address: Address, nick: str, *, password: str = "", timeout: float = 5.0) -> Client:
        """Connect, introduce ourselves as ``nick`` and wait for the welcome.

        Raises:
            NickError: the server refused the nickname (taken, reserved, malformed).
            ServerError: the server refused the connection (e.g. it is full).
            ConnectionBroken: nothing answered at ``address``, or not in time.
        """
        host, port = parse_address(address)
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise ConnectionBroken(f"could not connect to {host}:{port}: {exc.strerror or exc}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(p.encode(p.Hello(nick, password)))
            decoder = p.FrameDecoder()
            welcome = cls._await_welcome(sock, decoder, timeout)
            sock.settimeout(None)  # from now on the reader thread blocks in recv()
            return cls(sock, decoder, welcome)
        except BaseException:
            sock.close()
            raise

    @staticmethod
    def _await_welcome(sock: socket.socket, decoder: p.FrameDecoder, timeout: float) -> p.Welcome:
        deadline = time.monotonic() + timeout
        while True:
            for frame in decoder:
                message = p.decode_message(frame)
                if isinstance(message, p.Welcome):
                    return message
                if isinstance(message, p.ErrorMessage):
                    error = NickError if message.code.startswith(("nick", "bad-nick")) else ServerError
                    raise error(message.code, message.text)
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except socket.timeout:
                raise ConnectionBroken(f"no welcome from the server within {timeout:g} s") from None
            except OSError as exc:
                raise ConnectionBroken(f"connection failed during the handshake: {exc}") from exc
            if not data:
                raise ConnectionClosed("the server closed the connection during the handshake")
            decoder.feed(data)

    # ------------------------------------------------------------- chatting

    def say(self, text: str) -> None:
        """Send ``text`` to everyone in my current room."""
        self._send(p.Say(text))

    def action(self, text: str) -> None:
        """An IRC-style ``/me`` action: ``* alice waves``."""
        self._send(p.Say(text, action=True))

    def whisper(self, to: str, text: str) -> None:
        """A private message that only ``to`` (and I) receive."""
        self._send(p.Whisper(to, text))

    def join(self, room: str, password: str = "", timeout: float = 5.0) -> None:
        """Move to ``room`` and return once the server confirms it.

        Raises:
            ServerError: the server refused (bad name, wrong password, too many rooms...).
            TimeoutError: no answer within ``timeout`` seconds.
        """
        since = self._mark()
        self._send(p.Join(room, password))
        answer = self._wait(
            lambda e: (isinstance(e, p.Notice) and e.kind == "join" and e.nick == self.nick) or isinstance(e, p.ErrorMessage),
            timeout, since, consume=False, what=f"confirmation of joining {room!r}",
        )
        if isinstance(answer, p.ErrorMessage):
            self._consume(answer)
            raise ServerError(answer.code, answer.text)

    def leave(self, timeout: float = 5.0) -> None:
        """Leave my room for the server's default room."""
        since = self._mark()
        self._send(p.Leave())
        self._wait(lambda e: isinstance(e, p.Notice) and e.kind == "join" and e.nick == self.nick,
                   timeout, since, consume=False, what="confirmation of leaving")

    def who(self, timeout: float = 5.0) -> p.WhoReply:
        """Ask who is online; returns a :class:`WhoReply` (``users``: nick -> room, ``rooms``: room -> size)."""
        since = self._mark()
        self._send(p.Who())
        reply: p.WhoReply = self._wait(lambda e: isinstance(e, p.WhoReply), timeout, since, what="an answer to WHO")
        return reply

    def send_raw(self, data: bytes) -> None:
        """Send bytes exactly as given, framing or not (tests and notebooks use it to misbehave)."""
        self._put(CONTROL, data)

    # ---------------------------------------------------------------- events

    def wait_for(self, kind: type | tuple[type, ...], timeout: float = 5.0,
                 predicate: Callable[[Any], bool] | None = None) -> Any:
        """Return (and remove) the oldest event of type ``kind`` that matches ``predicate``.

        Events of other types stay queued for later calls.

        Raises:
            TimeoutError: nothing matching arrived within ``timeout`` seconds.
            ConnectionClosed: the connection ended and nothing matching is left.
        """
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        return self._wait(lambda e: isinstance(e, kind) and (predicate is None or predicate(e)), timeout, what=name)

    def next_event(self, timeout: float = 5.0) -> Any:
        """Return (and remove) the oldest event of any type."""
        return self._wait(lambda e: True, timeout, what="any event")

    def drain(self) -> list[Any]:
        """Return and remove every event received so far."""
        with self._cond:
            events = [e for _, e in self._events]
            self._events.clear()
        return events

    def _mark(self) -> int:
        with self._cond:
            return next(self._event_seq)

    def _consume(self, event: Any) -> None:
        with self._cond:
            self._events = [(s, e) for s, e in self._events if e is not event]

    def _wait(self, match: Callable[[Any], bool], timeout: float, since: int = -1,
              consume: bool = True, what: str = "an event") -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index, (seq, event) in enumerate(self._events):
                    if seq > since and match(event):
                        if consume:
                            del self._events[index]
                        return event
                if self._closed:
                    raise ConnectionClosed(f"{self.nick}: the connection is closed; no {what} will come")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self.nick}: no {what} within {timeout:g} s")
                self._cond.wait(remaining)

    def _deliver(self, event: Any) -> None:
        with self._cond:
            self._events.append((next(self._event_seq), event))
            if len(self._events) > MAX_BACKLOG:
                del self._events[0]
                self.dropped_events += 1
            self._cond.notify_all()

    # ------------------------------------------------------ the two threads

    def _send(self, message: p.Message) -> None:
        self._put(CHAT, p.encode(message))

    def _put(self, priority: int, data: bytes | None) -> None:
        if self._closed and data is not None:
            raise ConnectionClosed(f"{self.nick}: the connection is closed")
        self._outq.put((priority, next(self._out_seq), data))

    def _write_loop(self) -> None:
        while True:
            _, _, data = self._outq.get()
            if data is None:
                return
            try:
                self._sock.sendall(data)
            except OSError as exc:
                self._finish(f"send failed: {exc.strerror or exc}")
                return

    def _read_loop(self) -> None:
        reason = "closed by the server"
        try:
            self._dispatch()  # frames that came with the welcome
            while True:
                data = self._sock.recv(65536)
                if not data:
                    break
                self._decoder.feed(data)
                self._dispatch()
        except ProtocolError as exc:
            reason = f"protocol error from the server: {exc}"
        except OSError as exc:
            reason = "closed" if self._closed else f"connection broken: {exc.strerror or exc}"
        self._finish(reason)

    def _dispatch(self) -> None:
        for frame in self._decoder:
            message = p.decode_message(frame)
            if isinstance(message, p.Ping):
                self._put(CONTROL, p.encode(p.Pong(message.token)))
                continue
            if isinstance(message, p.Notice) and message.kind == "join" and message.nick == self.nick:
                self.room = message.room
            self._deliver(message)

    def _finish(self, reason: str) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
        self._deliver(Disconnected(reason))
        self._outq.put((CONTROL, -1, None))  # wake the writer so it exits

    # -------------------------------------------------------------- closing

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, reason: str = "") -> None:
        """Say goodbye, stop both threads and close the socket.  Safe to call twice."""
        if not self._closed:
            self._put(CHAT, p.encode(p.Quit(reason)))  # after any chat already queued
            self._put(FILE + 1, None)  # stop the writer once everything before it is sent
            self._writer.join(2.0)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._reader.join(2.0)
        self._writer.join(2.0)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"in {self.room}"
        return f"<chatlab.Client {self.nick} {state}>"
