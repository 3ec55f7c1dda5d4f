"""Server 1 of 4: blocking, one client at a time.

The simplest server there is: ``accept()`` a client, serve it until it
leaves, then ``accept()`` the next.  Every call blocks, so while it serves
one client, a second one waits in the listen backlog and hears nothing:
correct for one client, useless for a chat room.
"""

from __future__ import annotations

import socket
import threading

from ..core import protocol as p
from ..errors import ProtocolError
from ..streams import recv_exact


def serve(listener: socket.socket, stop: threading.Event) -> None:
    """Relay every frame a client sends back to it (it is the whole room)."""
    listener.settimeout(0.1)  # wake up now and then to look at ``stop``
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn:
            serve_one(conn, stop)


def serve_one(conn: socket.socket, stop: threading.Event) -> None:
    """Read whole frames from one client and send each one back."""
    try:
        conn.settimeout(0.1)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a chat line must not wait for Nagle
    except OSError:
        return  # already gone before we got to it
    while not stop.is_set():
        try:
            header = recv_exact(conn, p.HEADER_SIZE, stop)
            length = p.parse_header(header).length
            conn.sendall(header + recv_exact(conn, length, stop))
        except (EOFError, OSError, ProtocolError):
            return  # the client left (or spoke garbage): serve the next one
