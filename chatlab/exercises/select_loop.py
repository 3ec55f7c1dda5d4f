"""Exercise for notebook 02: one step of a select() chat loop.

The student writes::

    def serve_step(listener, clients, outbox, timeout) -> None:
        ...

One call makes one ``select()`` call (``select.select`` or a ``selectors``
selector) with ``timeout`` and handles what it reports:

* ``listener`` readable: ``accept()`` the new connection, make it non-blocking,
  append it to ``clients`` and give it an empty ``outbox[conn] = bytearray()``;
* a client readable: ``recv()`` what arrived and append it to the outbox of
  *every* connected client, the sender included (a chat room shows you your own
  line); ``b''`` (the peer closed) or a reset means: close it, remove it from
  ``clients`` and ``outbox``;
* a client writable: ``send()`` as much of its outbox as the kernel takes and
  keep the rest for later.  Ask ``select()`` about writability *only* for
  clients whose outbox is not empty: an idle socket is always writable, so
  asking anyway turns the loop into a 100%-CPU busy loop.

:func:`check_select_step` drives a student's ``serve_step`` from real loopback
clients under hostile conditions and prints which cases pass.  Every call runs
in a worker thread with a deadline, so a ``serve_step`` that blocks (a blocking
``sendall`` to a client that does not read, say) is reported, not waited for.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
import threading
import time
import traceback
from typing import Any, Callable

from ..i18n import N_, _
from ._report import NotWrittenYet, Report, describe_error, run_cases, student

HOST = "127.0.0.1"
STEP_GRACE = 1.5  # seconds a step may take beyond its own timeout before it counts as blocked
CASE_DEADLINE = 5.0  # seconds a case may pump steps waiting for data to arrive
QUICK_DEADLINE = 1.5  # seconds to accept a connection, or to remove a closed client

ServeStep = Callable[[socket.socket, list, dict, float], Any]


class StepBlocked(AssertionError):
    """serve_step did not return in time; the harness must not call it again."""


class _GaveUp(AssertionError):
    """What a case waited for did not happen before its deadline (a case may say why)."""


def _hint(exc: BaseException) -> str:
    """What an exception from serve_step usually means, in terms of the idea it misses."""
    if isinstance(exc, BlockingIOError):
        return _(
            "a non-blocking socket raises BlockingIOError instead of waiting: the kernel had no bytes to give"
            " or no room to take more right now, which is normal; try again at a later step"
        )
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return _("the peer is gone without a goodbye: that is an end of the connection, like b''")
    if isinstance(exc, ValueError) and "-1" in str(exc) or isinstance(exc, OSError) and exc.errno == errno.EBADF:
        return _("a closed socket is still in a list handed to select(): a client you close must leave clients too")
    if isinstance(exc, KeyError) and exc.args and getattr(exc.args[0], "fileno", lambda: 0)() == -1:
        return _(
            "outbox has no entry for a socket closed earlier in this same step: select() made its lists"
            " before that, so they can still hold a client you have dropped"
        )
    if isinstance(exc, KeyError):
        return _("outbox has no entry for that socket: every client in clients needs one, from accept() on")
    return ""


class _Peer:
    """A checker-side client: a non-blocking socket plus what it has received and still has to send."""

    def __init__(self, port: int, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # a small receive window makes a slow reader back up quickly
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(2.0)
        self.sock.connect((HOST, port))
        self.sock.setblocking(False)
        self.received = bytearray()
        self.to_send = bytearray()
        self.reading = True
        self.eof = False

    def service(self) -> None:
        if self.to_send:
            try:
                sent = self.sock.send(self.to_send[:65536])
                del self.to_send[:sent]
            except BlockingIOError:
                pass
        while self.reading and not self.eof:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                break
            if not data:
                self.eof = True
            self.received += data

    def close(self, reset: bool = False) -> None:
        if reset:  # SO_LINGER on, 0 s: close() sends RST instead of FIN
            fmt = "hh" if sys.platform == "win32" else "ii"
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack(fmt, 1, 0))
            except OSError:
                pass
        self.sock.close()


class _Harness:
    """A listener, the student's ``clients``/``outbox``, and checker-side peers."""

    def __init__(self, serve_step: ServeStep) -> None:
        self.serve_step = student(serve_step)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # accepted sockets inherit a small send buffer, so data for a slow reader
        # backs up into the outbox instead of vanishing into megabytes of kernel buffer
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        self.listener.bind((HOST, 0))
        self.listener.listen(16)
        self.listener.setblocking(False)  # a stray accept() raises instead of hanging
        self.port = self.listener.getsockname()[1]
        self.clients: list[socket.socket] = []
        self.outbox: dict[socket.socket, Any] = {}
        self.peers: list[_Peer] = []
        self.calls = 0

    # -- driving the student's code -----------------------------------------
    def step(self, timeout: float = 0.0) -> None:
        outcome: dict[str, BaseException] = {}

        def run() -> None:
            try:
                self.serve_step(self.listener, self.clients, self.outbox, timeout)
            except BaseException as exc:  # reported in the checker's thread
                outcome["exc"] = exc

        worker = threading.Thread(target=run, name="serve_step", daemon=True)
        worker.start()
        worker.join(timeout + STEP_GRACE)
        self.calls += 1
        if worker.is_alive():
            frame = sys._current_frames().get(worker.ident or -1)
            last = traceback.extract_stack(frame)[-1] if frame is not None else None
            if last is not None and (last.filename.endswith("selectors.py") or "select(" in (last.line or "")):
                raise StepBlocked(
                    _(
                        "serve_step(timeout={timeout}) did not return within {seconds:g} s: it is still waiting in"
                        " select(){where}. Pass select() the timeout serve_step was given (None, or no timeout,"
                        " waits until something happens, which may be never)"
                    ).format(timeout=timeout, seconds=timeout + STEP_GRACE,
                             where=_(" (line {line})").format(line=last.lineno))
                )
            raise StepBlocked(
                _(
                    "serve_step(timeout={timeout}) did not return within {seconds:g} s: something"
                    " blocked; a call on a blocking socket waits for a peer that may never read or write"
                ).format(timeout=timeout, seconds=timeout + STEP_GRACE)
            )
        if "exc" in outcome:
            exc = outcome["exc"]
            if isinstance(exc, NotWrittenYet):
                raise exc
            hint = _hint(exc)
            raise AssertionError(
                _("serve_step raised {error}").format(error=describe_error(exc, [self.serve_step]))
                + (_(": {hint}").format(hint=hint) if hint else "")
            )

    def connect(self, count: int = 1, rcvbuf: int | None = None) -> list[_Peer]:
        new = [_Peer(self.port, rcvbuf) for _number in range(count)]
        self.peers += new
        want = len(self.clients) + count
        self.pump(
            lambda: len(self.clients) >= want,
            _("{count} new connection(s) accepted").format(count=count),
            deadline=QUICK_DEADLINE,
        )
        assert len(self.clients) == want, _("expected {want} clients after accepting, found {found}").format(
            want=want, found=len(self.clients)
        )
        assert self.listener not in self.clients, _("the listening socket ended up in clients")
        return new

    def pump(self, done: Callable[[], bool], what: str, deadline: float = CASE_DEADLINE) -> None:
        """Alternate serve_step(timeout=0.01) with the peers' own sends and receives until ``done()``."""
        end = time.monotonic() + deadline
        while True:
            for peer in self.peers:
                peer.service()
            if done():
                return
            if time.monotonic() > end:
                raise _GaveUp(_("gave up after {seconds:g} s waiting for: {what}").format(seconds=deadline, what=what))
            self.step(0.01)

    def expect(self, peers: list[_Peer], expected: bytes, what: str) -> None:
        """Pump until every peer in ``peers`` has received exactly ``expected``.

        Fails at once when a peer receives bytes that ``expected`` does not start
        with (duplicated, lost or reordered data), instead of waiting out the deadline.
        """

        def done() -> bool:
            for peer in peers:
                got = bytes(peer.received)
                if not expected.startswith(got):
                    at = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), len(expected))
                    raise AssertionError(
                        _(
                            "waiting for {what}: a client received {got} bytes that differ from the"
                            " {n} expected from byte {at} on: bytes were lost or sent twice. send() takes only"
                            " part of a big outbox and returns how many bytes it took: remove exactly those"
                            " from the outbox (del outbox[sock][:sent]) and keep the rest for the next step"
                        ).format(what=what, got=len(got), n=len(expected), at=at)
                    )
            return all(len(peer.received) == len(expected) for peer in peers)

        self.pump(done, what)

    def removed(self, count: int, what: str, why: str) -> None:
        """Pump until ``clients`` is down to ``count`` sockets; ``why`` says how serve_step can tell."""
        try:
            self.pump(lambda: len(self.clients) == count, what, deadline=QUICK_DEADLINE)
        except _GaveUp as exc:
            raise AssertionError(_("{error}: {why}").format(error=exc, why=why)) from None

    def server_side(self, peer: _Peer) -> socket.socket:
        """The socket in ``clients`` that is the other end of ``peer``."""
        mine = peer.sock.getsockname()
        for conn in self.clients:
            try:
                if conn.getpeername() == mine:
                    return conn
            except OSError:
                continue
        raise AssertionError(_("no socket in clients is connected to this client"))

    def queued(self, sock: socket.socket) -> int:
        value = self.outbox.get(sock)
        return len(value) if value is not None else 0

    def close(self) -> None:
        for peer in self.peers:
            peer.close()
        for sock in list(self.clients) + list(self.outbox):
            try:
                sock.close()
            except Exception:
                pass
        try:  # wakes a student thread stuck in accept() on Linux
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()


def _case(serve_step: ServeStep, body: Callable[[_Harness], str | None]) -> Callable[[], str | None]:
    def run() -> str | None:
        harness = _Harness(serve_step)
        try:
            return body(harness)
        finally:
            harness.close()

    return run


def _accepts(h: _Harness) -> str:
    h.connect(1)
    conn = h.clients[0]
    assert isinstance(conn, socket.socket), (
        _("clients should hold sockets, found {type}").format(type=type(conn).__name__))
    assert conn.gettimeout() == 0.0, _(
        "the accepted socket is blocking: one call on it that has to wait (a client that does not read)"
        " would stop the whole loop, and every other client with it"
    )
    return ""


def _echoes(h: _Harness) -> str:
    (peer,) = h.connect(1)
    peer.to_send += b"hello, room\n"
    h.expect([peer], b"hello, room\n", _("the sender to get its own line back (a chat room shows a line to"
                                         " everyone in it)"))
    h.step(0.01)
    h.step(0.01)
    peer.service()
    assert bytes(peer.received) == b"hello, room\n", _(
        "the client received more than it sent: {data!r}; the bytes send() took must leave"
        " the outbox, or the next step sends them again"
    ).format(data=bytes(peer.received))
    assert h.queued(h.clients[0]) == 0, _(
        "everything was delivered but the outbox is not empty: the bytes send() reports as sent must leave it"
    )
    return ""


def _several(h: _Harness) -> str:
    peers = h.connect(3)  # three clients knock at once; one accept per readable listener is enough
    lines = [f"line {i} from client {i}\n".encode() for i in range(3)]
    for i, peer in enumerate(peers):
        peer.to_send += lines[i]
        expected = b"".join(lines[: i + 1])
        h.expect(peers, expected, _("every client to receive line {i}").format(i=i))
    return ""


def _timed_step(h: _Harness, timeout: float) -> float:
    start = time.monotonic()
    h.step(timeout)
    return time.monotonic() - start


def _uses_the_timeout(h: _Harness) -> str:
    # no client yet: select() has nothing to report, so it returns when its timeout runs out, never earlier
    for timeout in (0.4, 0.2):
        took = _timed_step(h, timeout)
        assert took >= timeout * 0.9, _(
            "serve_step(timeout={timeout}) returned after {took:.3f} s with nothing to do: select() was not given"
            " the timeout serve_step got (a timeout of 0, or a number of your own, instead of timeout)"
        ).format(timeout=timeout, took=took)
    # a short timeout must not wait long: tried a few times, as a loaded machine may be late once
    tries = [_timed_step(h, 0.02) for _try in range(3)]
    assert min(tries) < 0.3, _(
        "serve_step(timeout=0.02) took {took:.2f} s with nothing to do: select() waited a timeout of its own,"
        " not the one serve_step got"
    ).format(took=min(tries))
    (peer,) = h.connect(1)
    timeout = 2.0
    timer = threading.Timer(0.1, lambda: peer.sock.send(b"wake up\n"))
    timer.start()
    try:
        took = _timed_step(h, timeout)
    finally:
        timer.cancel()
        timer.join()
    assert took < timeout / 2, _(
        "serve_step(timeout={timeout}) took {took:.2f} s although a line arrived after 0.1 s: select() returns"
        " as soon as a socket is readable, so let it do the waiting (no time.sleep() before a select() that polls)"
    ).format(timeout=timeout, took=took)
    h.expect([peer], b"wake up\n", _("the line to come back to its sender"))
    return ""


def _waits_when_idle(h: _Harness) -> str:
    (peer,) = h.connect(2)[:1]
    peer.to_send += b"ping\n"
    h.expect(h.peers, b"ping\n", _("the line to reach both clients"))
    window, timeout = 0.3, 0.1
    calls = 0
    start = time.monotonic()
    while time.monotonic() - start < window:
        h.step(timeout)
        calls += 1
    # an honest step sleeps in select() until the timeout: about window/timeout = 3 calls
    if calls > 10:  # a busy loop: is it the timeout, or writability? Ask again with no client to write to
        clients, outbox = h.clients, h.outbox
        h.clients, h.outbox = [], {}
        try:
            took = _timed_step(h, timeout)
        finally:
            h.clients, h.outbox = clients, outbox
        assert took >= timeout * 0.9, _(
            "{calls} calls returned within {window} s with nothing to do, a busy loop: select() was not given the"
            " timeout serve_step got (with no client at all, serve_step(timeout={timeout}) returned after"
            " {took:.3f} s)"
        ).format(calls=calls, window=window, timeout=timeout, took=took)
    assert calls <= 10, _(
        "{calls} calls returned within {window} s with nothing to do, a busy loop: an idle socket is"
        " always writable, so asking select() whether it is makes select() return at once, every time"
    ).format(calls=calls, window=window)
    return ""


def _closes_mid_stream(h: _Harness) -> str:
    quitter, stayer = h.connect(2)
    server_side = h.server_side(quitter)
    quitter.to_send += b"half a li"  # a line cut off mid-stream ...
    h.pump(lambda: not quitter.to_send, _("the partial line to be sent"))
    quitter.reading = False
    quitter.close()  # ... then FIN
    h.peers.remove(quitter)
    h.expect([stayer], b"half a li", _("the closed client's last bytes to reach the other client"))
    h.removed(1, _("the closed client to be removed"),
              _("a client that closed stays readable, and recv() returns b'' for it every time: b'' is how a peer says"
                " it closed, and the end of that client"))
    assert server_side not in h.outbox, _("the closed client is still a key of outbox (its queue would grow forever)")
    assert server_side.fileno() == -1, _("the closed client was removed but its socket is still open (a file"
                                         " descriptor leaks)")
    return ""


def _reset(h: _Harness) -> str:
    rude, stayer = h.connect(2)
    rude_conn = h.server_side(rude)
    rude.to_send += b"bye"
    h.expect([stayer], b"bye", _("the line to reach the other client"))
    rude.reading = False
    rude.close(reset=True)  # RST: recv() raises ConnectionResetError instead of returning b''
    h.peers.remove(rude)
    h.removed(1, _("the reset client to be removed"),
              _("recv() on a connection the peer reset raises ConnectionResetError: that is an end too, like b''"))
    assert rude_conn.fileno() == -1, _("the reset client was removed but its socket is still open (a file descriptor"
                                       " leaks): close it, as for b''")
    stayer.to_send += b"still here\n"
    h.expect([stayer], b"byestill here\n", _("the remaining client to keep working"))
    return ""


def _vanishes_with_queue(h: _Harness) -> str:
    (sleeper,) = h.connect(1, rcvbuf=4096)
    (talker,) = h.connect(1)
    sleeper_conn = h.server_side(sleeper)
    sleeper.reading = False  # stops reading: its outbox on the server grows
    payload = os.urandom(512 * 1024)
    talker.to_send += payload
    h.expect([talker], payload, _("the talker's data to come back to it while the other client sleeps"))
    h.pump(lambda: h.queued(sleeper_conn) > 0, _("output to queue up for the sleeping client"), deadline=QUICK_DEADLINE)
    sleeper.close(reset=True)  # gone, with output still queued for it: readable AND writable now
    h.peers.remove(sleeper)
    h.removed(1, _("the vanished client to be removed"),
              _("a client that vanished makes send() and recv() fail: either one is the end of that client"))
    assert sleeper_conn.fileno() == -1, _("the vanished client was removed but its socket is still open (a file"
                                          " descriptor leaks): close it")
    return ""


def _send_fails(h: _Harness) -> str:
    broken, talker = h.connect(2)
    broken_conn = h.server_side(broken)
    broken.reading = False
    broken_conn.shutdown(socket.SHUT_WR)  # from now on send() on it fails (EPIPE), while recv() has nothing to say
    talker.to_send += b"anyone there?\n"
    h.expect([talker], b"anyone there?\n", _("the line to come back to its sender"))
    h.removed(1, _("the client whose send() failed to be removed"),
              _("send() on that client raises an OSError (BrokenPipeError here): it is gone, remove it and close it"))
    assert broken_conn not in h.outbox, _("the client whose send() failed is still a key of outbox")
    assert broken_conn.fileno() == -1, _("the client whose send() failed was removed but its socket is still open"
                                         " (a file descriptor leaks): close it, as for b''")
    return ""


def _slow_reader(h: _Harness) -> str:
    (slow,) = h.connect(1, rcvbuf=4096)
    sender, fast = h.connect(2)
    slow.reading = False
    payload = os.urandom(1024 * 1024)
    sender.to_send += payload
    h.expect([fast, sender], payload, _("1 MiB to reach the reading clients while one client does not read"))
    slow.reading = True
    h.expect([slow], payload, _("the slow reader to catch up once it reads"))
    h.pump(lambda: all(h.queued(c) == 0 for c in h.clients), _("every outbox to drain"))
    return ""


def check_select_step(serve_step: ServeStep, show: bool = True, only: str | None = None) -> Report:
    """Drive ``serve_step(listener, clients, outbox, timeout)`` through hostile cases.

    Prints one PASS/FAIL line per case (unless ``show=False``) and returns the
    :class:`~chatlab.exercises.Report`; ``bool(report)`` is True when all pass.
    ``only="slow reader"`` runs just the cases whose name contains that text
    (the English name, or the name in the current language).
    """
    cases = [
        (N_("accepts a new client and makes it non-blocking"), _accepts),
        (N_("echoes a line back to its sender"), _echoes),
        (N_("several clients at once: everyone gets every line"), _several),
        (N_("select() waits the timeout given, and wakes when a line arrives"), _uses_the_timeout),
        (N_("idle clients: waits for the timeout, no busy loop"), _waits_when_idle),
        (N_("a client closing mid-stream is removed, its last bytes delivered"), _closes_mid_stream),
        (N_("a client resetting the connection is removed"), _reset),
        (N_("a client vanishing with output queued for it"), _vanishes_with_queue),
        (N_("a client whose send() fails is removed and closed"), _send_fails),
        (N_("a slow reader delays no one and catches up later"), _slow_reader),
    ]
    chosen = [
        (_(name), _case(serve_step, body)) for name, body in cases if only is None or only in name or only in _(name)
    ]
    if not chosen:
        raise ValueError(_("no case name contains {only!r}").format(only=only))
    return run_cases("check_select_step", chosen, show=show, student_fns=[serve_step])
