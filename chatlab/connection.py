"""The server's sockets, one class each: a client :class:`Connection` (its queue, its
sending) and the :class:`Listener` (accepting, the descriptor limit, refusals).

:mod:`chatlab.server` runs the loop over them; the rules are the core's.  Two ways
a busy server used to hurt itself here, each handled once:

* **Descriptors run out** (``ulimit -n`` below ``--max-clients``).  ``accept()``
  then fails with ``EMFILE`` while the connection stays in the listen queue, so
  the listener stays readable and the loop spins.  :class:`Listener` keeps one
  spare descriptor: at ``EMFILE`` it closes the spare, accepts the connection,
  refuses it in one frame, and opens the spare again (the classic trick of
  libev and nginx).  If even that fails, it stops watching the listener for a
  moment instead of spinning.  :func:`check_descriptor_limit` warns at start,
  after raising the soft limit where it may.
* **A refusal that arrives as a reset.**  Closing a socket whose peer already
  sent bytes (an IRC client's ``NICK``/``USER``) makes the kernel send RST, and
  the peer may lose the refusal we wrote.  A :class:`Refusal` shuts down writing,
  reads and discards what comes for a moment, then closes.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import selectors
import socket
import ssl
import sys
import time
from collections import deque
from typing import Any, NamedTuple

from .core import protocol as p
from .core.chatroom import Session
from .core.codecs import Codec, Event
from .tls import TlsError, TlsLayer, looks_like_tls

log = logging.getLogger("chatlab.server")

SELECTORS: dict[str, str] = {"select": "SelectSelector", "poll": "PollSelector", "epoll": "EpollSelector"}
# select() takes file descriptors below FD_SETSIZE only (1024 on Linux and
# macOS); Windows counts sockets instead, 512 in CPython's build.
FD_SETSIZE = 512 if sys.platform == "win32" else 1024
HAVE_SENDMSG = hasattr(socket.socket, "sendmsg")
MAX_GATHER = 256  # buffers per sendmsg() (Linux takes up to 1,024)
JOIN_BELOW = 16 * 1024  # a queue this small is joined and sent with send() rather than gathered by sendmsg()


def beyond_select(sock: socket.socket, watched: int) -> bool:
    """Would select() refuse ``sock``, with ``watched`` sockets already in its sets?"""
    if sys.platform == "win32":
        return watched >= FD_SETSIZE  # Windows handles are not small numbers; its limit is a count
    return sock.fileno() >= FD_SETSIZE


class Connection(Session):
    """One client socket: the chat session (nick, room...) plus what the loop needs."""

    def __init__(self, sock: socket.socket, peer: str, now: float) -> None:
        super().__init__(now, peer=peer)
        self.sock = sock
        self.codec: Codec | None = None  # chosen from the first bytes (codecs.sniff)
        self.first_bytes = b""  # kept until there are enough to sniff
        self.outbox: deque[bytes | memoryview] = deque()
        self.queued = 0  # bytes in outbox
        self.drained_at = now  # when bytes last left the outbox (a receiver that takes nothing stalls)
        self.held: Event | None = None  # decoded, but waiting for flood tokens
        self.paused_until = 0.0  # flood control: not read before this time
        self.parked: deque[p.Frame] = deque()  # file frames waiting for a receiver's queue to drain
        self.parked_bytes = 0
        self.blocked_by: Connection | None = None  # backpressure: the receiver whose queue is full
        self.blocking: set[Connection] = set()  # senders waiting on our queue
        self.closing: str | None = None  # reason; close once the outbox is flushed
        self.close_by = 0.0  # ... or at this time, whichever comes first
        self.events = 0  # the selector events we currently ask for
        self.tls: TlsLayer | None = None  # set when the first bytes were a TLS ClientHello
        self.tls_checked = False  # whether the first bytes were looked at for TLS yet
        self.tls_failed = ""  # why its TLS failed, if it did

    def append(self, parts: tuple[bytes, ...]) -> None:
        """Queue ``parts`` to be sent (the loop flushes at the end of its turn); over TLS, encrypted."""
        if self.tls is not None:  # the outbox of a TLS connection holds ciphertext
            parts = (self.tls.encrypt(b"".join(parts)),)
        self.append_raw(parts)

    def append_raw(self, parts: tuple[bytes, ...]) -> None:
        """Queue bytes as they are (for TLS: records already made)."""
        if not self.outbox:
            self.drained_at = time.monotonic()  # the stall clock starts when there is something to take
        for part in parts:
            if part:
                self.outbox.append(part)
                self.queued += len(part)

    def send_queued(self) -> None:
        """Send what the kernel takes now, many frames per ``sendmsg()``; raises ``OSError`` if broken."""
        if 0 < len(self.outbox) <= MAX_GATHER and self._send_all():
            return  # fan-out's common case: the whole queue in one call
        while self.outbox:
            # Windows has no sendmsg: there the frames are joined into one buffer first.
            batch = list(itertools.islice(self.outbox, 256))
            wanted = sum(len(part) for part in batch)
            try:
                sent = self.sock.sendmsg(batch) if HAVE_SENDMSG else self.sock.send(b"".join(batch))
            except (BlockingIOError, InterruptedError):
                return
            self.queued -= sent
            self.drained_at = time.monotonic()
            unaccounted = sent
            while unaccounted:
                head = self.outbox[0]
                if unaccounted < len(head):
                    self.outbox[0] = memoryview(head)[unaccounted:]
                    break
                unaccounted -= len(head)
                self.outbox.popleft()
            if sent < wanted:
                return  # the kernel's buffer is full: wait for EVENT_WRITE

    def send_at_once(self, data: bytes | memoryview, now: float) -> bytes | memoryview:
        """One ``send()`` of ``data`` while nothing is queued (fan-out's common case): what the kernel did
        not take, to be queued (``b""``: it all went).  Raises ``OSError`` if the socket is broken."""
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            return data
        if sent == len(data):
            self.drained_at = now
            return b""
        return memoryview(data)[sent:]  # the rest waits for EVENT_WRITE

    def _send_all(self) -> bool:
        """The whole queue in one call (``queued`` is its size: no sum, no loop over its parts when it all
        goes); True if it all went.  Lines under :data:`JOIN_BELOW` are joined for one ``send()``, cheaper
        than a gather list; file chunks are gathered by ``sendmsg()``, not copied."""
        outbox = self.outbox
        try:
            if len(outbox) == 1:
                sent = self.sock.send(outbox[0])
            elif self.queued <= JOIN_BELOW or not HAVE_SENDMSG:
                sent = self.sock.send(b"".join(outbox))
            else:
                sent = self.sock.sendmsg(outbox)
        except (BlockingIOError, InterruptedError):
            return False
        self.drained_at = time.monotonic()
        if sent == self.queued:
            outbox.clear()
            self.queued = 0
            return True
        self.queued -= sent
        while sent:
            head = outbox[0]
            if sent < len(head):
                outbox[0] = memoryview(head)[sent:]
                break
            sent -= len(head)
            outbox.popleft()
        return False

    def end_tls(self) -> None:
        """Before the socket closes: over TLS, a close_notify alert (best effort, and only when nothing
        is left half-sent).  A bare end of file would look like a cut connection: Python raises
        ``SSLEOFError`` and ``openssl s_client`` says "unexpected eof"."""
        if self.tls is None or self.outbox:
            return
        try:
            self.sock.send(self.tls.close_notify())
        except OSError:
            pass  # the peer is gone already: nothing to tell it

    def plaintext(self, data: bytes, context: ssl.SSLContext | None) -> bytes | None:
        """Bytes from ``recv()`` -> what the codec reads: a connection whose first bytes are a TLS
        ClientHello (``16 03``) gets a :class:`~chatlab.tls.TlsLayer`, and from then on its bytes are
        decrypted here, while the handshake's own records are queued to go back.  ``None`` when its
        TLS failed (a bad handshake or record, or TLS to a server without a certificate): the reason
        is in ``tls_failed``, and logged.
        """
        try:
            return self._plaintext(data, context)
        except TlsError as exc:
            self.tls_failed = str(exc)
            log.warning("%s: %s", self.peer, exc)
            return None

    def _plaintext(self, data: bytes, context: ssl.SSLContext | None) -> bytes:
        if not self.tls_checked:
            start = self.first_bytes + data
            verdict = looks_like_tls(start)
            if verdict is None:  # one byte 0x16: wait for the next
                self.first_bytes = start
                return b""
            self.tls_checked = True
            if not verdict:
                return data  # plain: the codec sniff goes on with first_bytes + data
            if context is None:
                raise TlsError("a TLS client, but this server has no certificate (start it with --tls-cert/--tls-key)")
            self.first_bytes, self.tls, data = b"", TlsLayer.server(context), start
        if self.tls is None:
            return data
        try:
            return self.tls.receive(data)
        finally:
            self.append_raw((self.tls.data_to_send(),))  # handshake records, or the alert that says why

    def park(self, frame: p.Frame) -> None:
        self.parked.append(frame)
        self.parked_bytes += len(frame.payload)

    def unpark(self) -> p.Frame:
        frame = self.parked.popleft()
        self.parked_bytes -= len(frame.payload)
        return frame

REFUSAL_DRAIN = 2.0  # seconds a refused connection may take to read its refusal and close
# Seconds (at least: until the loop's next tick) the listener is not watched when even the spare did not help.
PAUSE_ON_EMFILE = 0.1
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
DESCRIPTORS_PER_SERVER = 16  # the listener, the wake-up pair, the spare, the selector, logs...


def check_descriptor_limit(max_clients: int) -> str | None:
    """Raise the soft descriptor limit to fit ``max_clients`` where allowed; a warning if it still does not."""
    try:
        import resource
    except ImportError:  # Windows: no such limit per process
        return None
    needed = max_clients + DESCRIPTORS_PER_SERVER
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning("descriptor limit %d is below what max_clients %d needs (%d)", soft, max_clients, needed)
        return (f"this process may open {soft} descriptors (ulimit -n), fewer than --max-clients {max_clients} needs"
                f" ({needed}): clients past {max(soft - DESCRIPTORS_PER_SERVER, 0)} will be refused as server-full;"
                f" raise it with 'ulimit -n {needed}' or lower --max-clients")
    return None


class Refusal(NamedTuple):
    """A refused connection, draining: registered with the selector until its peer closes or ``until``."""

    sock: socket.socket
    until: float


class Listener:
    """The listening socket and what comes in through it: admitted connections and refusals.

    It registers itself (and each refusal it is draining) with the server's
    ``selector``; the server calls :meth:`admit` when the listener is readable,
    :meth:`drain` for a refusal's event and :meth:`tick` once in a while.
    """

    def __init__(self, host: str, port: int, backlog: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if sys.platform != "win32":
                # Before bind(): rebind at once even while old connections sit in TIME_WAIT.
                # (Windows rebinds past TIME_WAIT anyway, and there SO_REUSEADDR would let
                # another program steal a port in use; socket.create_server skips it too.)
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, port))
            self.sock.listen(backlog)
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise
        self.selector: selectors.BaseSelector | None = None  # set by watch()
        self.refusals: set[Refusal] = set()  # refused connections reading their refusal
        self._spare: int | None = None
        self._open_spare()
        self.paused_until = 0.0  # not watched before this time (descriptors ran out)

    def watch(self, selector: selectors.BaseSelector) -> None:
        self.selector = selector
        selector.register(self.sock, selectors.EVENT_READ, None)

    def _open_spare(self) -> None:
        if self._spare is None:
            try:
                self._spare = os.open(os.devnull, os.O_RDONLY)
            except OSError:
                self._spare = None

    def admit(self, now: float, clients: int, max_clients: int, use_select: bool) -> tuple[socket.socket, str] | None:
        """Accept one connection; ``(socket, "host:port")`` to serve, or ``None`` (none, or refused here)."""
        accepted = self._accept(now)
        if accepted is None:
            return None
        sock, addr = accepted
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # chat lines must not wait for Nagle
        if use_select and beyond_select(sock, clients + len(self.refusals) + 2):
            # select() cannot watch this descriptor; refuse it rather than crash the loop.
            refusal = refuse(sock, "server-full", f"select() is limited to {FD_SETSIZE} descriptors; run the server"
                                                  " with --selector epoll", now)
            if refusal is not None:  # cannot be watched: drained once, closed
                drain(refusal.sock)
                sock.close()
            return None
        if clients >= max_clients:
            refusal = refuse(sock, "server-full", f"the server already has {max_clients} clients", now)
            if refusal is not None and self.selector is not None:
                self.refusals.add(refusal)
                self.selector.register(sock, selectors.EVENT_READ, refusal)
            return None
        return sock, f"{addr[0]}:{addr[1]}"

    def _accept(self, now: float) -> tuple[socket.socket, tuple] | None:
        try:
            return self.sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return None
        except OSError as exc:
            if exc.errno not in OUT_OF_DESCRIPTORS:
                return None
        # Out of descriptors: free the spare, take the connection off the queue, refuse it.
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None
            try:
                sock, _addr = self.sock.accept()
            except OSError:
                sock = None
            if sock is not None:
                sock.setblocking(False)
                refusal = refuse(sock, "server-full", "the server is out of file descriptors (ulimit -n);"
                                                      " try again later", now)
                if refusal is not None:
                    drain(refusal.sock)
                    sock.close()
            self._open_spare()
        if self._spare is None and self.selector is not None:  # not even that: stop watching for a moment
            self.paused_until = now + PAUSE_ON_EMFILE
            self.selector.unregister(self.sock)
        return None

    def on_refusal(self, refusal: Refusal) -> None:
        """A refused connection is readable: drop what it sent; close it once it closed."""
        if drain(refusal.sock):
            self._end(refusal)

    def tick(self, now: float) -> None:
        """Close refusals past their time; watch the listener again after a pause."""
        for refusal in [r for r in self.refusals if now >= r.until]:
            self._end(refusal)
        if self.paused_until and now >= self.paused_until and self.selector is not None:
            self.paused_until = 0.0
            self.selector.register(self.sock, selectors.EVENT_READ, None)

    def _end(self, refusal: Refusal) -> None:
        self.refusals.discard(refusal)
        if self.selector is not None:
            self.selector.unregister(refusal.sock)
        refusal.sock.close()

    def close(self) -> None:
        for refusal in list(self.refusals):
            self._end(refusal)
        self.sock.close()
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None


def open_sockets(host: str, port: int,
                 config: Any) -> tuple[selectors.BaseSelector, Listener, socket.socket, socket.socket]:
    """The server's own sockets: its selector, the listener, and a socket pair that lets another
    thread wake the loop (select() takes sockets only on Windows), all registered."""
    if config.selector not in SELECTORS or not hasattr(selectors, SELECTORS[config.selector]):
        available = [name for name, cls in SELECTORS.items() if hasattr(selectors, cls)]
        raise ValueError(f"selector {config.selector!r} is not available here; choose one of {available}")
    selector: selectors.BaseSelector = getattr(selectors, SELECTORS[config.selector])()
    listener = Listener(host, port, config.backlog)
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    listener.watch(selector)
    selector.register(wake_r, selectors.EVENT_READ, None)
    if config.selector == "select" and any(beyond_select(sock, 0) for sock in (listener.sock, wake_r)):
        # Without this check the loop's first select() raises in its thread and the server dies silently.
        selector.close()
        for sock in (wake_r, wake_w):
            sock.close()
        listener.close()
        raise ValueError(f"select() is limited to descriptors below {FD_SETSIZE} and this process already uses "
                         "more; use selector='epoll' (or 'poll')")
    return selector, listener, wake_r, wake_w


def refuse(sock: socket.socket, code: str, text: str, now: float) -> Refusal | None:
    """Send one ``ERROR`` frame and half-close; a :class:`Refusal` to drain, or ``None`` if closed already."""
    log.warning("refusing a connection: %s", text)
    try:
        sock.send(p.encode(p.ErrorMessage(code, text)))  # a small frame fits any empty send buffer
        sock.shutdown(socket.SHUT_WR)  # our FIN follows the refusal; what the peer sends is read and dropped
    except OSError:
        sock.close()
        return None
    return Refusal(sock, now + REFUSAL_DRAIN)


def drain(sock: socket.socket) -> bool:
    """Read and drop what is waiting on ``sock`` (a refused peer, the wake-up pair); ``True`` once it closed."""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


__all__ = ["Connection", "Listener", "Refusal", "refuse", "drain", "check_descriptor_limit", "beyond_select",
           "FD_SETSIZE", "SELECTORS", "open_sockets"]
