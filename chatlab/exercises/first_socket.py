"""Exercise for notebook 00: a blocking echo server that serves one client.

The student writes ``serve_one_echo(listener) -> int``: accept one connection
on a listening socket the checker made, send back every byte the client sends
until the client closes its side (``recv()`` returns ``b''``), close the
connection, and return how many bytes were echoed.

:func:`check_echo_server` plays the client from a thread, on real loopback
sockets: a short line, a message that arrives in pieces, a megabyte of binary
data, a client that sends nothing, a client that waits for each echo before it
says more (a store-and-forward or line-buffered server never answers it), and a
client that stays silent for a while (a timeout is not the end of the stream).
The listening socket it hands over is a real socket whose ``accept()`` returns
a connection that notes what is done with it: its ``send()`` takes at most
:data:`SEND_AT_MOST` bytes per call (``send()`` may always take fewer than it is
given), and a connection shut down but never closed is seen.  The student's
function runs under a deadline, so an endless loop fails a case instead of
hanging the notebook.
"""

from __future__ import annotations

import gc
import os
import select
import socket
import struct
import threading
import time
import warnings
import weakref
from typing import Any, Callable

from ..i18n import _
from ._report import Report, run_cases, where
from .recv import DeadlineExceeded, call_with_deadline

HOST = "127.0.0.1"
TIMEOUT = 2.0  # seconds: every socket of the checker has this timeout
SEND_AT_MOST = 1000  # the most one send() on the student's connection takes (see _Conn.send)
ECHO_WAIT = 1.0  # seconds an interactive client waits for the echo of what it sent
SILENCE = 2.5  # seconds a client stays silent in the middle of the conversation
MAX_SILENCE = 8.0  # ... or longer than the timeout the server set on its connection, up to this
# A timeout the server sets on its connection (or a select() on it) lasts at most this long here: a
# server that takes a timeout for the end of the stream then shows it within the client's silence,
# whatever timeout it chose, and a correct one only loops a few more times.
SHORT_TIMEOUT = 0.5
MAX_WOULD_BLOCK = 100  # recv() calls that found nothing on a non-blocking connection: more is a polling loop

ServeOneEcho = Callable[[socket.socket], Any]
Sender = Callable[[socket.socket, "Session"], None]


class _Stats:
    """What the student's code did with the connection it accepted (kept apart from the socket,
    so that a connection the student dropped can still be garbage-collected)."""

    def __init__(self) -> None:
        self.received = 0  # bytes recv() returned
        self.sent_back = 0  # bytes send()/sendall() took
        self.short_sends = 0  # send() calls that took fewer bytes than offered
        self.recv_sizes: list[int] = []  # the sizes asked of recv()
        self.timeouts: list[float | None] = []  # settimeout() calls (as shortened: see SHORT_TIMEOUT)
        self.would_block = 0  # recv() calls that raised BlockingIOError (nothing to read, non-blocking)
        self.selected_timeouts: list[float] = []  # the timeouts of select() calls on the connection
        self.shut_down = False


class _Conn(socket.socket):
    """The accepted connection the student gets: a real socket that notes what is done with it.

    ``send()`` takes at most :data:`SEND_AT_MOST` bytes per call.  It may always take fewer
    bytes than offered (a non-blocking socket, a full buffer, a signal, some systems), and
    returns how many it took; a loopback connection almost never shows it, so this one does.
    """

    stats: _Stats

    def settimeout(self, value: float | None) -> None:
        if value is not None and value > SHORT_TIMEOUT:
            value = SHORT_TIMEOUT
        self.stats.timeouts.append(value)
        super().settimeout(value)

    def recv(self, bufsize: int, *flags: int) -> bytes:
        self.stats.recv_sizes.append(bufsize)
        try:
            data = super().recv(bufsize, *flags)
        except BlockingIOError:
            self.stats.would_block += 1
            raise
        self.stats.received += len(data)
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self.stats.recv_sizes.append(nbytes or len(memoryview(buffer)))
        try:
            n = super().recv_into(buffer, nbytes, flags)
        except BlockingIOError:
            self.stats.would_block += 1
            raise
        self.stats.received += n
        return n

    def send(self, data: Any, *flags: int) -> int:
        try:
            view = memoryview(data).cast("B")
        except TypeError:
            return super().send(data, *flags)  # not bytes: let socket.send() say so
        n = super().send(view[:SEND_AT_MOST], *flags)
        self.stats.sent_back += n
        if n < len(view):
            self.stats.short_sends += 1
        return n

    def sendall(self, data: Any, *flags: int) -> None:
        super().sendall(data, *flags)
        self.stats.sent_back += len(memoryview(data).cast("B"))

    def shutdown(self, how: int) -> None:
        self.stats.shut_down = True
        super().shutdown(how)


class _Listener(socket.socket):
    """The listening socket handed to the student: ``accept()`` returns a :class:`_Conn`."""

    stats: _Stats
    accepted: list[weakref.ref[_Conn]]

    accept_timed_out = False

    def accept(self) -> tuple[socket.socket, Any]:
        try:
            fd, address = self._accept()  # type: ignore[attr-defined]
        except socket.timeout:
            self.accept_timed_out = True
            raise
        conn = _Conn(self.family, self.type, self.proto, fileno=fd)
        conn.stats = self.stats
        if socket.getdefaulttimeout() is None and self.gettimeout():
            conn.setblocking(True)  # as socket.accept() does
        elif conn.gettimeout():  # socket.setdefaulttimeout(): a timeout all the same
            conn.settimeout(conn.gettimeout())
        self.accepted.append(weakref.ref(conn))
        return conn, address


def send_pieces(*pieces: bytes, pause: float = 0.0) -> Sender:
    """A client that sends ``pieces`` (``pause`` seconds apart), then closes its sending side."""

    def send(sock: socket.socket, session: Session) -> None:
        for i, piece in enumerate(pieces):
            if i and pause:
                time.sleep(pause)  # each piece arrives on its own, as on a slow network
            sock.sendall(piece)
        session.shut_at = time.monotonic()
        sock.shutdown(socket.SHUT_WR)  # "I am done sending": the server's recv() returns b''

    return send


def talk(*pieces: bytes, pause: float = 0.0) -> Sender:
    """A client that waits for the echo of each piece before it sends the next (as a chat does),
    stays silent ``pause`` seconds after the first piece, then closes its sending side."""

    def send(sock: socket.socket, session: Session) -> None:
        total = 0
        for i, piece in enumerate(pieces):
            if i == 1 and pause:
                # Silent for longer than any timeout the server set on its connection (up to a limit).
                timeouts = [t for t in session.stats.timeouts if t is not None]
                time.sleep(min(max([pause] + [t + 0.5 for t in timeouts]), MAX_SILENCE))
                if session.eof_at is not None:
                    return  # the server already closed: nothing more to say
            sock.sendall(piece)
            total += len(piece)
            deadline = time.monotonic() + ECHO_WAIT
            while len(session.received) < total and session.eof_at is None and time.monotonic() < deadline:
                time.sleep(0.005)
            if len(session.received) < total:
                session.unanswered.append(piece)
        session.shut_at = time.monotonic()
        sock.shutdown(socket.SHUT_WR)

    return send


class Session:
    """One run of the student's server against one scripted client."""

    def __init__(self, serve: ServeOneEcho, script: Sender, seconds: float = 3.0,
                 client_timeout: float = TIMEOUT) -> None:
        self.client_timeout = client_timeout
        self.stats = _Stats()
        self.listener = _Listener(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.stats = self.stats
        self.listener.accepted = []
        self.listener.bind((HOST, 0))
        self.listener.listen()
        self.listener.settimeout(TIMEOUT)  # an accept() with nobody coming gives up
        self.port = self.listener.getsockname()[1]
        self.received = bytearray()
        self.eof_at: float | None = None  # when the client saw the server's end of stream
        self.shut_at: float | None = None  # when the client closed its sending side
        self.unanswered: list[bytes] = []  # pieces a talking client waited for in vain
        self.client_error: BaseException | None = None  # from reading
        self.send_error: BaseException | None = None  # from sending
        self.returned: Any = None
        self.unclosed: list[str] = []  # ResourceWarnings about sockets the student left open
        self.still_open = 0  # accepted connections the student still holds, open
        self.serve = serve
        self.script = script
        self.seconds = seconds

    def run(self) -> None:
        serve, script, seconds = self.serve, self.script, self.seconds
        client = threading.Thread(target=self._client, args=(script,), name="chatlab-echo-client", daemon=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            client.start()
            original_select = select.select
            stats = self.stats

            def shortened_select(rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None) -> Any:
                if timeout is not None and timeout > SHORT_TIMEOUT and any(isinstance(s, _Conn) for s in rlist):
                    stats.selected_timeouts.append(timeout)
                    timeout = SHORT_TIMEOUT
                return original_select(rlist, wlist, xlist, timeout)

            select.select = shortened_select
            try:
                self.returned = call_with_deadline(seconds, serve, self.listener)
            except BaseException:
                # Closing the listener resets a connection nobody accepted, so the
                # client stops waiting at once (an unsolved stub fails fast).
                self.listener.close()
                raise
            finally:
                select.select = original_select
                client.join(self.client_timeout + 1.0)
                gc.collect()  # a socket nobody closed is closed (and reported) when it is collected
                # Noted on every path: a connection the student's code left open when it raised is still
                # held by the exception's traceback, so it is seen here.
                self.unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
                for ref in self.listener.accepted:
                    conn = ref()
                    if conn is not None and conn.fileno() != -1:
                        self.still_open += 1

    def _client(self, script: Sender) -> None:
        try:
            with socket.create_connection((HOST, self.port), timeout=self.client_timeout) as sock:

                def send() -> None:
                    try:
                        script(sock, self)
                    except OSError as exc:  # the server closed early: what came back tells why
                        self.send_error = exc

                # Send and read at once: a client that sent 1 MiB before reading would
                # fill both directions' buffers and wait for the server forever.
                sender = threading.Thread(target=send, name="chatlab-echo-sender", daemon=True)
                sender.start()
                try:
                    while data := sock.recv(65536):
                        self.received += data
                    self.eof_at = time.monotonic()
                finally:
                    sender.join(TIMEOUT + SILENCE + ECHO_WAIT * 2)
        except ConnectionResetError:
            self.eof_at = time.monotonic()  # the server closed with data unread: what came back so far tells why
        except BaseException as exc:  # reported by the case that looks at it
            self.client_error = exc

    def closed_early(self) -> bool:
        """The server ended the connection before the client had closed its side."""
        return self.eof_at is not None and (self.shut_at is None or self.eof_at < self.shut_at)

    def left_connection_open(self) -> bool:
        mine = f"laddr=('{HOST}', {self.port})"
        return self.still_open > 0 or any(mine in message and "family" in message for message in self.unclosed)

    def close(self) -> None:
        for ref in self.listener.accepted:
            conn = ref()
            if conn is not None:
                conn.close()
        self.listener.close()


class _ResetSession(Session):
    """A client that sends a line, reads its echo, then resets the connection (an RST, not a FIN):
    the server's next recv() raises ConnectionResetError."""

    LINE = b"going away\n"

    def _client(self, script: Sender) -> None:
        try:
            with socket.create_connection((HOST, self.port), timeout=self.client_timeout) as sock:
                sock.sendall(self.LINE)
                while len(self.received) < len(self.LINE):
                    data = sock.recv(4096)
                    if not data:
                        break
                    self.received += data
                # Linger on, with a timeout of 0: close() then sends an RST and drops the connection.
                linger = struct.pack("hh" if os.name == "nt" else "ii", 1, 0)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.shut_at = time.monotonic()
        except BaseException as exc:  # reported by the case that looks at it
            self.client_error = exc


class _TookTooLong(AssertionError):
    """A case waited for its whole time limit: the cases after it are not run (each would wait too)."""


def _session(serve: ServeOneEcho, script: Sender, patient: bool = False) -> Session:
    """Run one session; a server that gives up, raises or loops forever fails with a hint.

    ``patient``: the client talks (waits for echoes, stays silent a while), so it and the
    server get more time."""
    if patient:
        session = Session(serve, script, 3.0 + MAX_SILENCE + 3 * ECHO_WAIT, TIMEOUT + MAX_SILENCE + 3 * ECHO_WAIT)
    else:
        session = Session(serve, script)
    try:
        session.run()
        return session
    except NotImplementedError:
        session.close()
        name = getattr(serve, "__name__", "serve_one_echo")
        raise AssertionError(
            _(
                "not written yet: {name}() still raises NotImplementedError (write its body, then run this again)"
            ).format(name=name)
        ) from None
    except DeadlineExceeded:
        session.close()
        sizes = session.stats.recv_sizes
        if sizes and max(sizes) <= 16 and session.stats.received > 1000:
            raise _TookTooLong(
                _("still echoing when the time was up: recv({n}) returns at most {n} byte(s) per call, so"
                  " a megabyte takes a million calls; ask for a few KiB at a time (recv(4096))").format(n=max(sizes))
            ) from None
        raise _TookTooLong(
            _("still running long after the client closed its side: recv() returning b'' means "
              "the peer will send nothing more, so the echo loop must end there")) from None
    except socket.timeout as exc:
        session.close()
        if not session.listener.accept_timed_out:
            raise AssertionError(
                _("{error}{where}: a recv() with a timeout gave up while the client was silent but still"
                  " connected. Silence is not the end of the stream: only recv() returning b'' says the client"
                  " is done (no timeout on an echo server's recv())").format(
                    error=type(exc).__name__, where=where(exc, [serve]))
            ) from None
        raise _TookTooLong(_("accept() waited for a client that never came: each client is accepted once, "
                             "then the conversation goes on over the socket accept() returned")) from None
    except UnicodeError as exc:
        session.close()
        raise AssertionError(
            _("{error}{where}: the client sent bytes that are not text in any encoding; an echo server sends"
              " back the bytes it received as they are, with no .decode() or .encode()").format(
                error=type(exc).__name__, where=where(exc, [serve]))
        ) from None


def _expect_echo(session: Session, sent: bytes) -> None:
    if session.client_error is not None:
        error = session.client_error
        if isinstance(error, socket.timeout):
            raise _TookTooLong(
                _("the client waited for the end of the echo and it never came: close the connection "
                  "when the client has closed its side"))
        raise AssertionError(
            _("the client's connection failed: {error}: {message}").format(error=type(error).__name__, message=error)
        )
    got = bytes(session.received)
    if got != sent:
        raise AssertionError(_("sent {sent}, got back {got}").format(sent=_show(sent), got=_show(got))
                             + _why(session, sent, got))


def _expect_no_polling(session: Session) -> None:
    if session.stats.would_block > MAX_WOULD_BLOCK:
        raise AssertionError(
            _(
                "while the client was silent, your server called recv() {n} times on a non-blocking connection"
                " that had nothing to read (BlockingIOError): it polls, and keeps a CPU busy doing nothing."
                " A blocking recv() (the default) waits without using the CPU"
            ).format(n=session.stats.would_block)
        )


def _show(data: bytes) -> str:
    return repr(data) if len(data) <= 40 else _("{n:,} bytes").format(n=len(data))


def _why(session: Session, sent: bytes, got: bytes) -> str:
    stats = session.stats
    if stats.short_sends and stats.received >= len(sent) and len(got) < len(sent):
        return _(": your server received all {n:,} bytes but sent back {back:,}. send() returns how many bytes it"
                 " took, which may be fewer than it was given (here it took at most {most} at a time, as a busy"
                 " or non-blocking socket may), and the rest was never sent: use sendall(), which loops until"
                 " every byte is sent").format(n=len(sent), back=len(got), most=SEND_AT_MOST)
    if got and sent.startswith(got) and stats.received < len(sent):
        return _(": only the beginning came back, and your server stopped reading after {n} bytes while the"
                 " client was still sending. One recv() returns whatever has arrived so far, not the whole"
                 " message, and fewer bytes than asked for is not the end: keep reading until recv() returns"
                 " b''").format(n=stats.received)
    return _(": not the same bytes. An echo server sends back exactly the bytes it received, unchanged "
             "(bytes are not text: no decoding, no encoding, no stripping)")


def check_echo_server(serve_one_echo: ServeOneEcho, show: bool = True) -> Report:
    """Check a student's ``serve_one_echo(listener)``; prints one line per case and returns the Report."""

    def one_line() -> str:
        session = _session(serve_one_echo, send_pieces(b"hello\n"))
        session.close()
        _expect_echo(session, b"hello\n")
        return _("b'hello\\n' came back")

    def in_pieces() -> str:
        pieces = [b"one ", b"two ", b"three"]
        session = _session(serve_one_echo, send_pieces(*pieces, pause=0.1))
        session.close()
        _expect_echo(session, b"".join(pieces))
        return _("3 pieces, 0.1 s apart")

    def a_megabyte() -> str:
        data = os.urandom(1 << 20)  # binary, not text: most of it is not valid UTF-8
        session = _session(serve_one_echo, send_pieces(data))
        session.close()
        _expect_echo(session, data)
        return _("1 MiB of random bytes, intact and in order")

    def nothing_sent() -> str:
        session = _session(serve_one_echo, send_pieces())  # connects, closes its side at once
        session.close()
        _expect_echo(session, b"")
        return ""

    def returns_count() -> str:
        session = _session(serve_one_echo, send_pieces(b"12345", b"6789", pause=0.05))
        session.close()
        _expect_echo(session, b"123456789")
        assert session.returned == 9, _(
            "returned {value!r}: return how many bytes were echoed, in all (9 here)").format(value=session.returned)
        return _("returned 9")

    def closes_connection() -> str:
        session = _session(serve_one_echo, send_pieces(b"bye\n"))
        session.close()
        if session.left_connection_open():
            if session.stats.shut_down:
                raise AssertionError(_(
                    "the accepted connection was shut down but never closed: shutdown() only sends the FIN,"
                    " the socket keeps its file descriptor until close() (a server that does this for every"
                    " client runs out of them); close it when the client is done, e.g. with `with conn:`"))
            raise AssertionError(_(
                "the accepted connection was never closed (Python closed it only when it was garbage-"
                "collected): close it when the client is done, e.g. with `with conn:`"))
        return ""

    def closes_after_a_reset() -> str:
        session = _ResetSession(serve_one_echo, send_pieces())
        outcome = _("returned {value!r}")
        try:
            session.run()
            outcome = outcome.format(value=session.returned)
        except OSError as exc:  # the reset, let through to the caller: fine, if the connection is closed
            outcome = _("let {error} through").format(error=type(exc).__name__)
        except NotImplementedError:
            name = getattr(serve_one_echo, "__name__", "serve_one_echo")
            raise AssertionError(_("not written yet: {name}() still raises NotImplementedError (write its body,"
                                   " then run this again)").format(name=name)) from None
        except DeadlineExceeded:
            raise AssertionError(_("still running long after the client reset the connection: recv() raised"
                                   " ConnectionResetError (or returned b''), and nothing more will come")) from None
        finally:
            session.close()
        if session.left_connection_open():
            raise AssertionError(_(
                "the client reset the connection (the server's recv() or send() raised ConnectionResetError)"
                " and the accepted connection was left open: it is closed only when the client ends normally."
                " Close it on every path: `with conn:` (or try/finally) closes it even when an exception leaves"
                " the loop; an `except Exception: pass` that swallows the error does not close it either"))
        return _("closed after the reset ({outcome})").format(outcome=outcome)

    def answers_at_once() -> str:
        pieces = [b"no newline yet", b" and more\n", b"the end"]
        session = _session(serve_one_echo, talk(*pieces), patient=True)
        session.close()
        _expect_echo(session, b"".join(pieces))
        if session.unanswered:
            raise AssertionError(_(
                "the client sent {piece!r} and nothing came back within {seconds:g} s, though the client"
                " was still connected: your server waited (for the end of the stream, or for a newline)"
                " before echoing. Send back what each recv() returned at once: a client that waits for the"
                " answer before it says more, as a chat does, would wait forever").format(
                    piece=session.unanswered[0], seconds=ECHO_WAIT))
        return _("each piece came back before the next was sent")

    def silent_client() -> str:
        pieces = [b"hello, ", b"are you still there?"]
        session = _session(serve_one_echo, talk(*pieces, pause=SILENCE), patient=True)
        session.close()
        if session.closed_early():
            if any(t is not None for t in session.stats.timeouts):
                why = _("your server set a timeout on the connection (settimeout(), or socket.setdefaulttimeout())"
                        " and took the timeout for the end: a timeout means 'nothing has arrived yet', not 'the"
                        " client is done'")
            elif session.stats.selected_timeouts:
                why = _("select() with a timeout of {seconds:g} s returned nothing and your server took that for"
                        " the end: an empty select() means 'nothing has arrived yet', not 'the client is"
                        " done'").format(seconds=session.stats.selected_timeouts[0])
            elif session.stats.would_block:
                why = _("a non-blocking recv() that found nothing (BlockingIOError), or a clock measuring the"
                        " quiet, means 'nothing has arrived yet', not 'the client is done'")
            else:
                why = _("a select() or a recv() that found nothing for a while means 'nothing has arrived"
                        " yet', not 'the client is done'")
            raise AssertionError(_(
                "the server closed the connection while the client was silent for a few seconds but still"
                " connected: {why}. Only recv() returning b'' says the client closed its side").format(why=why))
        _expect_echo(session, b"".join(pieces))
        _expect_no_polling(session)
        return _("{seconds:g} s of silence, then more").format(seconds=SILENCE)

    def listener_stays_open() -> str:
        session = _session(serve_one_echo, send_pieces(b"next, please"))
        try:
            assert session.listener.fileno() != -1, _(
                "the listening socket was closed: it belongs to the caller, who may want to serve "
                "the next client with it")
            with socket.create_connection((HOST, session.port), timeout=TIMEOUT):
                conn, _addr = session.listener.accept()
                conn.close()
        finally:
            session.close()
        return _("the next client can still connect")

    first_too_long: list[str] = []

    def unless_stuck(name: str, case: Callable[[], str]) -> Callable[[], str]:
        def run() -> str:
            if first_too_long:
                raise AssertionError(
                    _("not run: fix {case!r} first (it waited for its whole time limit)").format(case=first_too_long[0])
                )
            try:
                return case()
            except _TookTooLong:
                first_too_long.append(name)
                raise

        return run

    cases = [
        (_("echoes one line"), one_line),
        (_("a message that arrives in pieces"), in_pieces),
        (_("1 MiB of binary data"), a_megabyte),
        (_("a client that sends nothing"), nothing_sent),
        (_("returns how many bytes it echoed"), returns_count),
        (_("closes the connection it accepted"), closes_connection),
        (_("closes the connection when the client resets it"), closes_after_a_reset),
        (_("echoes each piece at once (a client that waits for the answer)"), answers_at_once),
        (_("a client silent for a while is still connected"), silent_client),
        (_("leaves the listening socket open"), listener_stays_open),
    ]
    return run_cases("check_echo_server", [(name, unless_stuck(name, case)) for name, case in cases], show=show)
