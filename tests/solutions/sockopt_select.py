"""Reference solutions for the exercises of notebooks 01 (setsockopt) and 02 (select).

Try the exercises before reading these.  Each function passes its checker:
``check_make_listener(make_listener)`` and ``check_select_step(serve_step)``.
"""

from __future__ import annotations

import os
import select
import socket

__all__ = ["make_listener", "serve_step"]


def make_listener(port: int, host: str = "127.0.0.1") -> socket.socket:
    """A listening TCP socket on ``(host, port)`` that can restart at once on the same port.

    ``setsockopt(level, optname, value)``: level ``SOL_SOCKET`` (an option of the
    socket layer itself), optname ``SO_REUSEADDR``, value ``1`` (on).  It must come
    before ``bind()``: ``bind()`` is where the kernel refuses a port that still has
    connections in TIME_WAIT.  Not on Windows, where the option would let another
    socket take a port in use, and TIME_WAIT does not block a restart anyway
    (``socket.create_server`` makes the same choice).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if os.name != "nt":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()
    except BaseException:
        sock.close()
        raise
    return sock


def _drop(sock: socket.socket, clients: list, outbox: dict) -> None:
    clients.remove(sock)
    outbox.pop(sock, None)
    sock.close()


def serve_step(listener: socket.socket, clients: list, outbox: dict, timeout: float) -> None:
    """One turn of a select() chat loop: accept, read and broadcast, write what is queued."""
    # Watch for writing only the clients with something queued: an idle socket is
    # always writable, and select() would return at once, forever (a busy loop).
    want_write = [c for c in clients if outbox.get(c)]
    readable, writable, _ = select.select([listener, *clients], want_write, [], timeout)

    for sock in readable:
        if sock is listener:  # readable listener: a connection is waiting in the accept queue
            try:
                conn, _addr = listener.accept()
            except (BlockingIOError, ConnectionAbortedError):
                continue  # it went away between select() and accept()
            conn.setblocking(False)
            clients.append(conn)
            outbox[conn] = bytearray()
            continue
        if sock not in clients:
            continue
        try:
            data = sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:  # ConnectionResetError and friends: the peer is gone
            data = b""
        if not data:  # readable but b'': the peer closed the connection
            _drop(sock, clients, outbox)
            continue
        for client in clients:  # broadcast, the sender included
            outbox[client] += data

    for sock in writable:
        if sock not in clients:  # dropped while reading, in this same step
            continue
        try:
            sent = sock.send(outbox[sock])
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:  # BrokenPipeError, ConnectionResetError: the peer is gone
            _drop(sock, clients, outbox)
            continue
        del outbox[sock][:sent]  # keep what the kernel did not take, for the next step
