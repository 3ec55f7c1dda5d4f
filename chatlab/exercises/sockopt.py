"""Exercise for notebook 01: a listening socket that can restart on its own port.

The student writes ``make_listener(port, host="127.0.0.1") -> socket.socket``:
a TCP socket with ``SO_REUSEADDR`` switched on *before* ``bind()``, bound to
``(host, port)`` and listening.  :func:`check_make_listener` then restarts it
on the same port right after a connection was left in TIME_WAIT, which is
exactly what fails (``EADDRINUSE``) when the option is missing or set too late.

Windows is different: there ``SO_REUSEADDR`` lets a second socket bind a port
that a live socket is still using, TIME_WAIT does not block a restart anyway,
and Python's own ``socket.create_server`` leaves the option off.  The checker
follows that: on Windows it does not require the option, and it fails a
listener that lets a second one take its live port.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from typing import Callable

from ..i18n import _
from ._report import Report, returned, run_cases, student, where

HOST = "127.0.0.1"
TIMEOUT = 2.0  # seconds; every blocking call the checker makes has one

MakeListener = Callable[..., socket.socket]


def errno_name(exc: OSError) -> str:
    """``EADDRINUSE`` for an ``OSError`` with that errno (the name, not the number, which differs by OS)."""
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))


def leave_time_wait(listener: socket.socket) -> None:
    """Make one connection to ``listener`` and leave it in TIME_WAIT on the listener's port.

    The *server* side closes first (the side that closes first goes to
    TIME_WAIT); the client reads the end of stream and closes too, so the
    server's socket passes FIN_WAIT_2 and lands in TIME_WAIT.
    """
    port = listener.getsockname()[1]
    listener.settimeout(TIMEOUT)
    with socket.create_connection((HOST, port), timeout=TIMEOUT) as client:
        conn, _addr = listener.accept()
        conn.close()  # the server closes first ...
        if client.recv(16) != b"":  # ... the client sees end of stream ...
            raise AssertionError(_("the client expected end of stream"))
    time.sleep(0.05)  # ... and closes: let the last ACK land, the server side is now in TIME_WAIT


def _call(make_listener: MakeListener, port: int) -> socket.socket:
    try:
        sock = make_listener(port)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, getattr(errno, "WSAEOPNOTSUPP", -1)):
            raise AssertionError(
                _(
                    "{error} {errno}{where}: only a stream (TCP) socket can listen() for connections;"
                    " a datagram (UDP) socket has no connections"
                ).format(error=type(exc).__name__, errno=errno_name(exc), where=where(exc, [make_listener]))
            ) from None
        raise
    if not isinstance(sock, socket.socket):
        raise AssertionError(returned(sock, _("a listening socket"), "make_listener"))
    if sock.fileno() == -1:
        raise AssertionError(
            _(
                "make_listener returned a socket that is already closed"
                " (a `with` block closes its socket when the function returns from inside it)"
            )
        )
    accepting = getattr(socket, "SO_ACCEPTCONN", None)
    if accepting is not None and sock.type == socket.SOCK_STREAM:
        try:
            listening = sock.getsockopt(socket.SOL_SOCKET, accepting)
        except OSError:  # not every OS answers this question
            listening = 1
        if not listening:
            sock.close()
            raise AssertionError(
                _(
                    "make_listener returned a socket that does not listen: a bound socket accepts connections"
                    " only once it listens"
                )
            )
    return sock


def _free_port() -> int:
    """A port nobody listens on right now (the OS picks it; it is free again once closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _bind_fails(make_listener: MakeListener, port: int, when: str) -> socket.socket:
    try:
        return _call(make_listener, port)
    except OSError as exc:
        raise AssertionError(
            _(
                "{when}: make_listener({port}) raised {error} {errno}{where}: bind() refuses a port that a"
                " connection in TIME_WAIT still uses, unless the socket was told, before bind(), that reusing"
                " such an address is fine"
            ).format(when=when, port=port, error=type(exc).__name__, errno=errno_name(exc),
                     where=where(exc, [make_listener]))
        ) from None


def check_make_listener(make_listener: MakeListener, show: bool = True) -> Report:
    """Check a student's ``make_listener(port)``; prints one line per case and returns the Report."""

    make_listener = student(make_listener)

    def listens() -> str:
        wanted = _free_port()
        with _call(make_listener, wanted) as sock:
            assert sock.type == socket.SOCK_STREAM, _("the socket should be a TCP (SOCK_STREAM) socket")
            host, port = sock.getsockname()[:2]
            assert port != 0, _("the socket is not bound to a port: a listener needs an address (bind) first")
            assert port == wanted, _("make_listener({wanted}) listens on port {port}: use the port it is given").format(
                wanted=wanted, port=port
            )
            assert host == HOST, (
                _(
                    "bound to {host!r}, not the host given ({given!r}):"
                    " {host!r} accepts connections from every network this machine is on"
                ).format(host=host, given=HOST)
                if host in ("0.0.0.0", "::")
                else _("bound to {host!r}, not the host given ({given!r})").format(host=host, given=HOST)
            )
            sock.settimeout(TIMEOUT)
            try:
                with socket.create_connection((HOST, port), timeout=TIMEOUT):
                    conn, _address = sock.accept()
                    conn.close()
            except OSError as exc:
                raise AssertionError(
                    _(
                        "could not connect and accept: {error} {message}: a bound socket accepts"
                        " connections only once it listens"
                    ).format(error=type(exc).__name__, message=exc)
                ) from None
        return ""

    def option_on() -> str:
        with _call(make_listener, 0) as sock:
            reuse = sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        if os.name == "nt":
            return ""  # on Windows leaving it off is right (see the module docstring)
        # BSD/macOS report the option's bit (4) rather than 1: any non-zero value means on
        assert reuse, _(
            "getsockopt(SOL_SOCKET, SO_REUSEADDR) reads 0: the option is off. Switch it on with"
            " setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1): level SOL_SOCKET (not IPPROTO_TCP), value 1"
            " (0 switches it off), before bind()"
        )
        return ""

    def restart_after_time_wait() -> str:
        sock = _call(make_listener, 0)
        port = sock.getsockname()[1]
        try:
            for attempt in (_("first restart"), _("second restart")):
                leave_time_wait(sock)
                sock.close()
                sock = _bind_fails(
                    make_listener, port, _("{attempt} with a connection in TIME_WAIT").format(attempt=attempt)
                )
                got = sock.getsockname()[1]
                assert got == port, _("{attempt}: asked for port {port}, got {got}").format(
                    attempt=attempt, port=port, got=got
                )
        finally:
            sock.close()
        return ""

    def live_port_refused() -> str:
        with _call(make_listener, 0) as first:
            port = first.getsockname()[1]
            try:
                second = _call(make_listener, port)
            except OSError:
                return ""  # EADDRINUSE (or WSAEACCES under SO_EXCLUSIVEADDRUSE on Windows)
            second.close()
            hint = (
                _(" (on Windows SO_REUSEADDR allows that: leave it off there)")
                if os.name == "nt"
                else _(" (an option that lets several sockets share one port is on)")
            )
            raise AssertionError(_("a second listener took a port a live listener still holds") + hint)

    cases = [
        (_("returns a bound, listening TCP socket"), listens),
        (_("SO_REUSEADDR is on (POSIX; off is right on Windows)"), option_on),
        (_("restarts twice on its port with connections in TIME_WAIT"), restart_after_time_wait),
        (_("a port a live listener holds is still refused"), live_port_refused),
    ]
    return run_cases("check_make_listener", cases, show=show, student_fns=[make_listener])
