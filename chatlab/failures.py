"""Tools for notebook 09 (when connections fail): a peer that vanishes, a
listener that never answers, and TCP keepalive set the same way on every OS.

Everything stays on loopback (127.0.0.1): nothing here sends a packet off
the machine.
"""

from __future__ import annotations

import selectors
import socket
import struct
import sys
import threading
from typing import Any

__all__ = ["BlackHole", "full_backlog_listener", "set_keepalive", "keepalive_settings", "abort", "LINGER_RESET"]

Address = tuple[str, int]

# SO_LINGER on, timeout 0: close() discards unsent data and sends a RST instead of a FIN.
LINGER_RESET = struct.pack("ii", 1, 0)


def abort(sock: socket.socket) -> None:
    """Close ``sock`` with a RST (an abortive close) instead of the usual FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    sock.close()


def full_backlog_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A listener whose accept queue is full, so the next ``connect()`` gets no answer.

    ``listen(0)`` and one connection that is never ``accept()``ed fill the
    queue.  Linux and macOS then drop further SYNs (the client retries and
    its ``connect()`` times out); Windows answers them with a RST
    (``ConnectionRefusedError``).  Returns the listener and the connections
    holding the queue; close them all when done.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers: list[socket.socket] = []
    for _ in range(8):  # some systems let a few more than the backlog through
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.settimeout(0.3)
        try:
            probe.connect(listener.getsockname())
        except OSError:
            probe.close()
            break
        fillers.append(probe)
    return listener, fillers


class BlackHole:
    """A loopback TCP proxy to ``target`` that can *vanish*.

    Until :meth:`vanish` it forwards bytes both ways.  After it, it reads and
    discards everything from both sides, sends nothing and closes nothing:
    to the client its peer has gone without a FIN, like a host that lost
    power or a NAT box that forgot the connection.  (The proxy's kernel still
    acknowledges the bytes and answers TCP keepalive probes: a hung program
    looks exactly like this, and only an application-level ping notices.)
    """

    def __init__(self, target: Address) -> None:
        self.target = target
        self.vanished = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.setblocking(False)
        self.address: Address = self.listener.getsockname()[:2]
        self._stop = threading.Event()
        self._peers: dict[socket.socket, socket.socket] = {}
        self._thread = threading.Thread(target=self._run, name="chatlab-blackhole", daemon=True)
        self._thread.start()

    def vanish(self) -> None:
        """From now on, swallow everything and answer nothing."""
        self.vanished.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in list(self._peers):
            sock.close()
        self.listener.close()

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.05):
                    sock: Any = key.fileobj
                    if sock is self.listener:
                        self._accept(sel)
                        continue
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    other = self._peers.get(sock)
                    if self.vanished.is_set():
                        continue  # swallowed: no reply, no FIN, no RST
                    if not data or other is None:
                        self._forget(sel, sock)
                        continue
                    try:
                        other.sendall(data)  # small chat traffic: blocking sends are fine here
                    except OSError:
                        self._forget(sel, sock)
        finally:
            sel.close()

    def _accept(self, sel: selectors.BaseSelector) -> None:
        client, _ = self.listener.accept()
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        for a, b in ((client, upstream), (upstream, client)):
            a.setblocking(True)
            self._peers[a] = b
            sel.register(a, selectors.EVENT_READ)

    def _forget(self, sel: selectors.BaseSelector, sock: socket.socket) -> None:
        for s in (sock, self._peers.get(sock)):
            if s is not None and s in self._peers:
                sel.unregister(s)
                del self._peers[s]
                s.close()


def set_keepalive(sock: socket.socket, idle: int = 10, interval: int = 5, count: int = 3) -> str:
    """Turn on TCP keepalive: probe after ``idle`` s of silence, every ``interval`` s, give up after ``count``.

    The option names differ by OS; this sets whichever exist and says which.
    A dead peer is then noticed after about ``idle + interval * count`` s
    (instead of the default two hours and more).

    Returns:
        A short description of what was set.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    done = ["SO_KEEPALIVE=1"]
    if sys.platform == "win32" and hasattr(socket, "SIO_KEEPALIVE_VALS"):
        sock.ioctl(socket.SIO_KEEPALIVE_VALS, (1, idle * 1000, interval * 1000))  # type: ignore[attr-defined]
        done.append(f"SIO_KEEPALIVE_VALS=({idle * 1000} ms, {interval * 1000} ms)")
    # the idle time is TCP_KEEPIDLE on Linux and Windows, TCP_KEEPALIVE on macOS
    idle_option = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)
    for name, option, value in (
        ("TCP_KEEPIDLE" if hasattr(socket, "TCP_KEEPIDLE") else "TCP_KEEPALIVE", idle_option, idle),
        ("TCP_KEEPINTVL", getattr(socket, "TCP_KEEPINTVL", None), interval),
        ("TCP_KEEPCNT", getattr(socket, "TCP_KEEPCNT", None), count),
    ):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
            done.append(f"{name}={value}")
        except OSError:
            pass  # older Windows: only SIO_KEEPALIVE_VALS
    return ", ".join(done)


def keepalive_settings(sock: socket.socket) -> dict[str, int]:
    """Read back the keepalive options this OS has (names as in :func:`set_keepalive`)."""
    found = {"SO_KEEPALIVE": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)}
    for name in ("TCP_KEEPIDLE", "TCP_KEEPALIVE", "TCP_KEEPINTVL", "TCP_KEEPCNT"):
        option = getattr(socket, name, None)
        if option is None or (name == "TCP_KEEPALIVE" and hasattr(socket, "TCP_KEEPIDLE")):
            continue
        try:
            found[name] = sock.getsockopt(socket.IPPROTO_TCP, option)
        except OSError:
            pass
    return found
