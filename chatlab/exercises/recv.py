"""Exercise for notebook 04: ``recv_exact(sock, n)``, checked on real sockets.

``sock.recv(n)`` returns *at most* ``n`` bytes: whatever the kernel had
buffered when it was called, up to ``n``.  The student writes ``recv_exact(sock, n)``,
which returns exactly ``n`` bytes or raises if the peer closes the connection first, and
checks it with::

    from chatlab.exercises.recv import check_recv_exact
    check_recv_exact(recv_exact)

The checker runs it on a real TCP connection over loopback (port 0, so never a
fixed port) under hostile conditions: a 1-byte trickle, more bytes buffered
than asked for, a message arriving in two parts with the next message glued
to the second, a peer closing mid-message, ``n = 0`` and a message much
bigger than the socket buffers.  Every socket has a timeout and the student's
function runs under a deadline, so a broken solution fails a case instead of
hanging the notebook.

The helpers here (:func:`tcp_pair`, :func:`wait_until_buffered`,
:func:`send_in_pieces`, :func:`sending_in_background`) are what notebooks 03
and 04 use to make byte-stream behaviour happen the same way on every run.
"""

from __future__ import annotations

import contextlib
import select
import socket
import sys
import threading
import time
from typing import Any, Callable, Iterator

from ..i18n import _
from ._report import Report, returned, run_cases, student, where

__all__ = [
    "check_recv_exact",
    "tcp_pair",
    "wait_until_buffered",
    "send_in_pieces",
    "sending_in_background",
    "call_with_deadline",
    "DeadlineExceeded",
]


# --------------------------------------------------------------------------
# Socket helpers shared by the notebooks and the checker
# --------------------------------------------------------------------------


@contextlib.contextmanager
def tcp_pair(timeout: float = 2.0, rcvbuf: int | None = None) -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected pair of TCP sockets on 127.0.0.1: ``(client, server)``.

    The listener binds port 0 (the OS picks a free port) and is closed as soon
    as the connection is accepted.  Both sockets get ``timeout`` (so no call
    blocks forever) and ``TCP_NODELAY`` (so small sends are not held back by
    Nagle's algorithm), and both are closed when the ``with`` block ends, even
    if it fails.  ``rcvbuf`` sets the server side's receive buffer size
    (``SO_RCVBUF``, set before the connection exists so that it applies from
    the start), to bound how much one ``recv()`` can ever return.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        if rcvbuf is not None:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(timeout)
        client = socket.create_connection(listener.getsockname(), timeout=timeout)
        try:
            server, _address = listener.accept()
        except BaseException:
            client.close()
            raise
    with client, server:
        for sock in (client, server):
            sock.settimeout(timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        yield client, server


def wait_until_buffered(sock: socket.socket, n: int, timeout: float = 2.0) -> None:
    """Wait until at least ``n`` bytes sit in ``sock``'s receive buffer, without reading them.

    Uses ``recv(n, MSG_PEEK)``, which copies buffered bytes but leaves them in
    the kernel.  The notebooks call this before a ``recv()`` whose result they
    print, so "what had arrived when recv() was called" is the same on every
    run.  Raises ``TimeoutError`` if the bytes do not arrive in time.
    """
    deadline = time.monotonic() + timeout
    old_timeout = sock.gettimeout()
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(_("fewer than {n} bytes arrived within {timeout} s").format(n=n, timeout=timeout))
            sock.settimeout(left)
            peeked = sock.recv(n, socket.MSG_PEEK)
            if len(peeked) >= n:
                return
            if not peeked:  # the peer closed: no more bytes will come
                raise EOFError(
                    _("the peer closed the connection with {got} of {n} bytes buffered").format(got=len(peeked), n=n)
                )
            time.sleep(0.001)
    finally:
        sock.settimeout(old_timeout)


def send_in_pieces(sock: socket.socket, data: bytes, piece: int = 1, delay: float = 0.005) -> None:
    """Send ``data`` in ``piece``-byte sends, sleeping ``delay`` seconds after each."""
    for start in range(0, len(data), piece):
        sock.sendall(data[start : start + piece])
        if delay:
            time.sleep(delay)


@contextlib.contextmanager
def sending_in_background(
    sock: socket.socket, data: bytes, piece: int = 1, delay: float = 0.005, close: bool = False
) -> Iterator[threading.Thread]:
    """Send ``data`` from a background thread while the ``with`` body receives.

    With ``close=True`` the sender shuts down its side of the connection after
    the last byte (the receiver then sees ``b''``, an orderly end of stream).
    Errors in the thread (the receiver gave up and closed) are swallowed: the
    thread never prints, as output from threads lands in unpredictable
    notebook cells.  On exit the thread is unblocked and joined.
    """

    def run() -> None:
        try:
            send_in_pieces(sock, data, piece, delay)
            if close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    thread = threading.Thread(target=run, name="chatlab-sender", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        thread.join(0.5 + len(data) / max(piece, 1) * delay)
        if thread.is_alive():  # blocked in sendall(): the receiver stopped reading
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            thread.join(2.0)


# --------------------------------------------------------------------------
# Running a student's function without letting it hang the notebook
# --------------------------------------------------------------------------


class DeadlineExceeded(AssertionError):
    """The student's function did not return in time (an endless loop, most likely)."""


class _Stop(BaseException):
    """Raised inside the student's code by the trace function; BaseException so
    that an ``except Exception`` in the student's loop does not swallow it."""


def call_with_deadline(seconds: float, fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn(*args)`` in a worker thread and return its result or raise its exception.

    A trace function stops the student's Python code once ``seconds`` have
    passed, so an endless loop (``while len(data) < n: data += sock.recv(...)``
    after the peer closed) becomes a :class:`DeadlineExceeded` failure instead of
    a thread spinning for the rest of the session.  Code blocked inside a C
    call (``recv()`` without a timeout) cannot be stopped that way: the
    checker's sockets all have timeouts for that reason.
    """
    deadline = time.monotonic() + seconds
    outcome: dict[str, Any] = {}

    def trace(frame: Any, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise _Stop
        return trace

    def run() -> None:
        sys.settrace(trace)
        try:
            outcome["value"] = fn(*args)
        except _Stop:
            outcome["stopped"] = True
        except BaseException as exc:  # handed to the calling thread below
            outcome["error"] = exc
        finally:
            sys.settrace(None)

    worker = threading.Thread(target=run, name="chatlab-exercise", daemon=True)
    worker.start()
    worker.join(seconds + 1.0)
    if worker.is_alive() or outcome.get("stopped"):
        raise DeadlineExceeded(_("did not return within {seconds:g} s").format(seconds=seconds))
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# --------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------


def _as_bytes(got: Any) -> bytes:
    assert isinstance(got, (bytes, bytearray, memoryview)), returned(got, "bytes")
    return bytes(got)


def _when_read(sock: socket.socket, then: Callable[[], None], timeout: float) -> threading.Thread:
    """Call ``then()`` from a thread as soon as ``sock``'s receive buffer is empty (someone read it all)."""

    def run() -> None:
        deadline = time.monotonic() + timeout
        with contextlib.suppress(OSError, ValueError):
            while time.monotonic() < deadline:
                readable, _writable, _errors = select.select([sock], [], [], 0)
                if not readable:
                    then()
                    return
                time.sleep(0.002)

    thread = threading.Thread(target=run, name="chatlab-sender", daemon=True)
    thread.start()
    return thread


def _read_rest(sock: socket.socket, n: int) -> bytes:
    """The checker's own careful read: up to ``n`` bytes, stopping at timeout or end of stream."""
    data = bytearray()
    with contextlib.suppress(TimeoutError, OSError):
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                break
            data += chunk
    return bytes(data)


def check_recv_exact(recv_exact: Callable[[socket.socket, int], bytes], *, timeout: float = 1.0,
                     show: bool = True) -> Report:
    """Run ``recv_exact(sock, n)`` on real loopback sockets under hostile conditions.

    ``timeout`` is each socket's timeout; the student's function gets one more
    second before it counts as stuck in a loop.  Prints one line per case
    (unless ``show=False``) and returns the :class:`Report`, true when every
    case passes.
    """

    recv_exact = student(recv_exact)

    def call(sock: socket.socket, n: int) -> bytes:
        try:
            return _as_bytes(call_with_deadline(timeout + 1.0, recv_exact, sock, n))
        except TimeoutError as exc:
            raise AssertionError(
                _(
                    "recv() timed out{where}: it waited for bytes that were never sent (socket timeout {timeout:g} s)"
                ).format(where=where(exc, [recv_exact]), timeout=timeout)
            ) from None
        except EOFError as exc:
            raise AssertionError(
                _(
                    "raised {error}{where} while the peer was still connected and sending: recv() returning"
                    " fewer bytes than asked is normal, it returns what has arrived so far; only b'' means"
                    " the peer closed"
                ).format(error=type(exc).__name__, where=where(exc, [recv_exact]))
            ) from None

    def exactly_n_in_one_send() -> str:
        data = b"0123456789"
        with tcp_pair(timeout) as (client, server):
            client.sendall(data)
            wait_until_buffered(server, len(data), timeout)
            got = call(server, len(data))
        assert got == data, _("asked for {n} bytes, got {got}: {data!r}").format(n=len(data), got=len(got), data=got)
        return _("{n} bytes").format(n=len(data))

    def one_byte_trickle() -> str:
        data = b"a message sent one byte at a time"
        with tcp_pair(timeout) as (client, server), sending_in_background(client, data, piece=1, delay=0.003):
            got = call(server, len(data))
        assert len(got) == len(data), _(
            "returned {got} of {n} bytes while the peer was still connected and sending: recv(n) returned"
            " fewer bytes than asked, because one recv() returns what has arrived so far (at most n);"
            " keep calling it until you have n bytes"
        ).format(got=len(got), n=len(data))
        assert got == data, _(
            "the right number of bytes, but not the bytes sent, in order ({data!r}): each piece goes after"
            " the ones before it"
        ).format(data=got)
        return _("{n} one-byte sends").format(n=len(data))

    def more_than_n_buffered() -> str:
        first, second = b"FIRST-10by", b"the next message"
        with tcp_pair(timeout) as (client, server):
            client.sendall(first + second)
            wait_until_buffered(server, len(first + second), timeout)
            got = call(server, len(first))
            rest = _read_rest(server, len(second))
        assert len(got) <= len(first), _(
            "returned {got} bytes but only {n} were asked for: the extra bytes belong to the next message"
        ).format(got=len(got), n=len(first))
        assert got == first, _("asked for {n} bytes, got {got}: {data!r}").format(n=len(first), got=len(got), data=got)
        assert rest == second, _(
            "returned the right {n} bytes, but {lost} of the {after} bytes after them were consumed and lost:"
            " never recv() more than you still need (a buffered sock.makefile() reads ahead too)"
        ).format(n=len(first), lost=len(second) - len(rest), after=len(second))
        return _("took {n}, left {rest} for the next read").format(n=len(first), rest=len(second))

    def next_message_right_behind() -> str:
        # The message arrives in two parts, and the next message comes glued to
        # the second part: the second recv() must ask only for what is missing.
        first, second = b"FIRST-10by", b"the next message"
        part = 4
        with tcp_pair(timeout) as (client, server):
            client.sendall(first[:part])
            wait_until_buffered(server, part, timeout)
            sender = _when_read(server, lambda: client.sendall(first[part:] + second), timeout)
            try:
                got = call(server, len(first))
            finally:
                sender.join(timeout)
            rest = _read_rest(server, len(second))
        assert len(got) <= len(first), _(
            "returned {got} bytes for n = {n}: the first recv() brought {part} bytes, and the"
            " next one took the rest of the message plus the start of the next message;"
            " a later recv() may only ask for the bytes still missing"
        ).format(got=len(got), n=len(first), part=part)
        assert got == first, _("asked for {n} bytes, got {got}: {data!r}").format(n=len(first), got=len(got), data=got)
        assert rest == second, _(
            "returned the right {n} bytes, but {lost} bytes of the next message"
            " were consumed and lost: never recv() more than you still need"
        ).format(n=len(first), lost=len(second) - len(rest))
        return _("{part} + {rest} bytes, the next message left in place").format(part=part, rest=len(first) - part)

    def peer_closes_mid_message() -> str:
        sent, n = b"01234", 10
        with tcp_pair(timeout) as (client, server):
            client.sendall(sent)
            wait_until_buffered(server, len(sent), timeout)
            client.close()  # orderly close (FIN) after half the message
            try:
                returned_value = call_with_deadline(timeout + 1.0, recv_exact, server, n)
            except DeadlineExceeded as exc:
                raise AssertionError(
                    _(
                        "{error}: after the peer closes, recv() returns b'' at once, every time;"
                        " a loop that does not check for b'' never ends"
                    ).format(error=exc)
                ) from None
            except TimeoutError as exc:
                raise AssertionError(
                    _(
                        "recv() timed out{where}: after the peer closes, recv() returns b''"
                        " at once; waiting for more bytes means b'' was not noticed"
                    ).format(where=where(exc, [recv_exact]))
                ) from None
            except EOFError as exc:  # what the docstring asks for (asyncio.IncompleteReadError is one)
                return _("raised {error}").format(error=type(exc).__qualname__)
            except ConnectionError as exc:
                raise AssertionError(
                    _(
                        "raised {error}{where}, but the docstring asks for EOFError: the peer closed the"
                        " connection in order (a FIN: recv() returned b''), which is the end of the stream,"
                        " not a broken connection; the caller catches EOFError to tell one from the other"
                    ).format(error=type(exc).__name__, where=where(exc, [recv_exact]))
                ) from None
            except Exception as exc:
                raise AssertionError(
                    _(
                        "raised {error}{where}: when recv() returns b'' before n bytes came, raise EOFError,"
                        " as the docstring asks, so that the caller can tell the end of the stream from a bug"
                    ).format(error=type(exc).__name__, where=where(exc, [recv_exact]))
                ) from None
        if returned_value is None:
            raise AssertionError(
                _(
                    "returned None when the peer closed after {got} of {n} bytes: raise EOFError instead"
                    " (recv() returned b'': no more bytes will come, and a caller would take None for a message)"
                ).format(got=len(sent), n=n)
            )
        got = _as_bytes(returned_value)
        raise AssertionError(
            _(
                "returned {got} of {n} bytes ({data!r}) instead of raising when the peer closed: raise EOFError"
                " when recv() returns b'' before n bytes came, or the caller takes half a message for a whole one"
            ).format(got=len(got), n=n, data=got)
        )

    def n_is_zero() -> str:
        with tcp_pair(timeout) as (client, server):
            got = call(server, 0)
        assert got == b"", _("returned {data!r} for n = 0").format(data=got)
        return "b''"

    def big_message() -> str:
        data = bytes(range(256)) * 4096  # 1 MiB: far more than one recv() returns
        # A small receive buffer: at most a fraction of the message can be waiting when recv() is called.
        with tcp_pair(timeout, rcvbuf=64 * 1024) as (client, server), sending_in_background(
            client, data, piece=len(data), delay=0
        ):
            try:
                got = call(server, len(data))
            except DeadlineExceeded as exc:
                raise AssertionError(
                    _("{error}: an endless loop, or recv() with a tiny size (ask for everything still missing)").format(
                        error=exc
                    )
                ) from None
        assert len(got) == len(data), (
            _(
                "returned {got} of the {n} bytes asked for while the peer was still connected and sending:"
                " one recv() returns what has arrived so far, so keep calling it until you have them all"
            ).format(got=len(got), n=len(data))
            if len(got) < len(data)
            else _("returned more than the {n} bytes asked for").format(n=len(data))
        )
        assert got == data, _("the bytes came back in the wrong order or corrupted")
        return _("{n} bytes").format(n=len(data))

    cases = [
        (_("exactly n in one send"), exactly_n_in_one_send),
        (_("1-byte trickle"), one_byte_trickle),
        (_("more than n buffered"), more_than_n_buffered),
        (_("message in two parts, the next one right behind"), next_message_right_behind),
        (_("peer closes mid-message"), peer_closes_mid_message),
        (_("n = 0"), n_is_zero),
        (_("1 MiB message"), big_message),
    ]
    return run_cases("check_recv_exact", cases, show=show, student_fns=[recv_exact])
