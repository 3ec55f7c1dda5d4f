"""Exercise for notebook 00: a blocking echo server that serves one client.

The student writes ``serve_one_echo(listener) -> int``: accept one connection
on a listening socket the checker made, send back every byte the client sends
until the client closes its side (``recv()`` returns ``b''``), close the
connection, and return how many bytes were echoed.

:func:`check_echo_server` plays the client from a thread, on real loopback
sockets: a short line, a message that arrives in pieces, a megabyte of binary
data, a client that sends nothing.  The student's function runs under a
deadline, so an endless loop fails a case instead of hanging the notebook.
"""

from __future__ import annotations

import gc
import os
import socket
import threading
import time
import warnings
from typing import Any, Callable

from ._report import Report, run_cases
from .recv import DeadlineExceeded, call_with_deadline

HOST = "127.0.0.1"
TIMEOUT = 2.0  # seconds: every socket of the checker has this timeout

ServeOneEcho = Callable[[socket.socket], Any]
Sender = Callable[[socket.socket], None]


def _read_to_end(sock: socket.socket, into: bytearray) -> None:
    """Append everything the server sends to ``into`` until it closes the connection."""
    while True:
        data = sock.recv(65536)
        if not data:
            return
        into += data


def send_pieces(*pieces: bytes, pause: float = 0.0) -> Sender:
    """A client that sends ``pieces`` (``pause`` seconds apart), then closes its sending side."""

    def send(sock: socket.socket) -> None:
        for i, piece in enumerate(pieces):
            if i and pause:
                time.sleep(pause)  # each piece arrives on its own, as on a slow network
            sock.sendall(piece)
        sock.shutdown(socket.SHUT_WR)  # "I am done sending": the server's recv() returns b''

    return send


class Session:
    """One run of the student's server against one scripted client."""

    def __init__(self, serve: ServeOneEcho, script: Sender, seconds: float = 3.0) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((HOST, 0))
        self.listener.listen()
        self.listener.settimeout(TIMEOUT)  # an accept() with nobody coming gives up
        self.port = self.listener.getsockname()[1]
        self.client_port = 0
        self.received = bytearray()
        self.client_error: BaseException | None = None  # from reading
        self.send_error: BaseException | None = None  # from sending
        self.returned: Any = None
        self.unclosed: list[str] = []  # ResourceWarnings about sockets the student left open
        client = threading.Thread(target=self._client, args=(script,), name="chatlab-echo-client", daemon=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            client.start()
            try:
                self.returned = call_with_deadline(seconds, serve, self.listener)
            except BaseException:
                # Closing the listener resets a connection nobody accepted, so the
                # client stops waiting at once (an unsolved stub fails fast).
                self.listener.close()
                raise
            finally:
                client.join(TIMEOUT + 1.0)
                gc.collect()  # a socket nobody closed is closed (and reported) when it is collected
        self.unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]

    def _client(self, script: Sender) -> None:
        try:
            with socket.create_connection((HOST, self.port), timeout=TIMEOUT) as sock:
                self.client_port = sock.getsockname()[1]

                def send() -> None:
                    try:
                        script(sock)
                    except OSError as exc:  # the server closed early: what came back tells why
                        self.send_error = exc

                # Send and read at once: a client that sent 1 MiB before reading would
                # fill both directions' buffers and wait for the server forever.
                sender = threading.Thread(target=send, name="chatlab-echo-sender", daemon=True)
                sender.start()
                try:
                    _read_to_end(sock, self.received)
                finally:
                    sender.join(TIMEOUT)
        except ConnectionResetError:
            pass  # the server closed with data unread: what came back so far tells why
        except BaseException as exc:  # reported by the case that looks at it
            self.client_error = exc

    def left_connection_open(self) -> bool:
        return any(f"{self.client_port})" in message and "raddr" in message for message in self.unclosed)

    def close(self) -> None:
        self.listener.close()


class _TookTooLong(AssertionError):
    """A case waited for its whole time limit: the cases after it are not run (each would wait too)."""


def _session(serve: ServeOneEcho, script: Sender) -> Session:
    """Run one session; a server that gives up, raises or loops forever fails with a hint."""
    try:
        return Session(serve, script)
    except NotImplementedError:
        name = getattr(serve, "__name__", "serve_one_echo")
        raise AssertionError(f"not written yet: {name}() still raises NotImplementedError "
                             "(write its body, then run this again)") from None
    except DeadlineExceeded:
        raise _TookTooLong(
            "still running long after the client closed its side: recv() returning b'' means "
            "the peer will send nothing more, so the echo loop must end there") from None
    except socket.timeout:
        raise _TookTooLong("accept() waited for a client that never came: each client is accepted once, "
                           "then the conversation goes on over the socket accept() returned") from None


def _expect_echo(session: Session, sent: bytes) -> None:
    if session.client_error is not None:
        error = session.client_error
        if isinstance(error, socket.timeout):
            raise _TookTooLong(
                "the client waited for the end of the echo and it never came: close the connection "
                "when the client has closed its side")
        raise AssertionError(f"the client's connection failed: {type(error).__name__}: {error}")
    got = bytes(session.received)
    if got != sent:
        raise AssertionError(f"sent {_show(sent)}, got back {_show(got)}" + _why(sent, got))


def _show(data: bytes) -> str:
    return repr(data) if len(data) <= 40 else f"{len(data):,} bytes"


def _why(sent: bytes, got: bytes) -> str:
    if got and sent.startswith(got):
        return (": only the beginning came back. One recv() returns whatever has arrived so far, "
                "not the whole message: keep reading until recv() returns b''")
    return (": not the same bytes. An echo server sends back exactly the bytes it received, unchanged "
            "(bytes are not text: no decoding, no encoding)")


def check_echo_server(serve_one_echo: ServeOneEcho, show: bool = True) -> Report:
    """Check a student's ``serve_one_echo(listener)``; prints one line per case and returns the Report."""

    def one_line() -> str:
        session = _session(serve_one_echo, send_pieces(b"hello\n"))
        session.close()
        _expect_echo(session, b"hello\n")
        return "b'hello\\n' came back"

    def in_pieces() -> str:
        pieces = [b"one ", b"two ", b"three"]
        session = _session(serve_one_echo, send_pieces(*pieces, pause=0.1))
        session.close()
        _expect_echo(session, b"".join(pieces))
        return "3 pieces, 0.1 s apart"

    def a_megabyte() -> str:
        data = os.urandom(1 << 20)  # binary, not text: most of it is not valid UTF-8
        session = _session(serve_one_echo, send_pieces(data))
        session.close()
        _expect_echo(session, data)
        return "1 MiB of random bytes, intact and in order"

    def nothing_sent() -> str:
        session = _session(serve_one_echo, send_pieces())  # connects, closes its side at once
        session.close()
        _expect_echo(session, b"")
        return ""

    def returns_count() -> str:
        session = _session(serve_one_echo, send_pieces(b"12345", b"6789", pause=0.05))
        session.close()
        _expect_echo(session, b"123456789")
        assert session.returned == 9, (
            f"returned {session.returned!r}: return how many bytes were echoed, in all (9 here)")
        return "returned 9"

    def closes_connection() -> str:
        session = _session(serve_one_echo, send_pieces(b"bye\n"))
        session.close()
        assert not session.left_connection_open(), (
            "the accepted connection was never closed (Python closed it only when it was garbage-"
            "collected): close it when the client is done, e.g. with `with conn:`")
        return ""

    def listener_stays_open() -> str:
        session = _session(serve_one_echo, send_pieces(b"next, please"))
        try:
            assert session.listener.fileno() != -1, (
                "the listening socket was closed: it belongs to the caller, who may want to serve "
                "the next client with it")
            with socket.create_connection((HOST, session.port), timeout=TIMEOUT):
                conn, _addr = session.listener.accept()
                conn.close()
        finally:
            session.close()
        return "the next client can still connect"

    first_too_long: list[str] = []

    def unless_stuck(name: str, case: Callable[[], str]) -> Callable[[], str]:
        def run() -> str:
            if first_too_long:
                raise AssertionError(f"not run: fix {first_too_long[0]!r} first (it waited for its whole time limit)")
            try:
                return case()
            except _TookTooLong:
                first_too_long.append(name)
                raise

        return run

    cases = [
        ("echoes one line", one_line),
        ("a message that arrives in pieces", in_pieces),
        ("1 MiB of binary data", a_megabyte),
        ("a client that sends nothing", nothing_sent),
        ("returns how many bytes it echoed", returns_count),
        ("closes the connection it accepted", closes_connection),
        ("leaves the listening socket open", listener_stays_open),
    ]
    return run_cases("check_echo_server", [(name, unless_stuck(name, case)) for name, case in cases], show=show)
