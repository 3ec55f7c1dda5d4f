"""Server 3 of 4: one thread, non-blocking sockets and ``selectors`` (chatlab's design).

One loop asks the OS "which of these sockets can I use without waiting?"
and handles only those.  Nothing blocks, so a socket never waits for
another; each connection keeps its own decoder (bytes arrive split
anywhere) and its own outbox (``send()`` may take only part of it).  The
loop asks about writability only while an outbox is non-empty: an idle
socket is always writable, and asking anyway makes a busy loop.
"""

from __future__ import annotations

import selectors
import socket
import threading

from ..core import protocol as p
from ..errors import ProtocolError


class Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = p.FrameDecoder()
        self.outbox = bytearray()


def serve(listener: socket.socket, stop: threading.Event) -> None:
    """The event loop: accept, read, broadcast into outboxes, flush outboxes."""
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    room: dict[socket.socket, Connection] = {}

    def drop(conn: Connection) -> None:
        sel.unregister(conn.sock)
        del room[conn.sock]
        conn.sock.close()

    def want(conn: Connection) -> None:  # write interest only while there is something to send
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbox else 0)
        sel.modify(conn.sock, events, conn)

    try:
        while not stop.is_set():
            for key, events in sel.select(timeout=0.1):
                if key.data is None:  # the listener: a new client
                    sock, _ = listener.accept()
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no waiting for Nagle
                    room[sock] = Connection(sock)
                    sel.register(sock, selectors.EVENT_READ, room[sock])
                    continue
                conn = key.data
                if conn.sock not in room:
                    continue  # dropped earlier in this same turn
                try:
                    if events & selectors.EVENT_READ:
                        data = conn.sock.recv(65536)
                        if not data:
                            raise EOFError
                        conn.decoder.feed(data)
                        for frame in conn.decoder:
                            header = p.pack_header(frame.type, len(frame.payload), frame.stream_id, frame.flags)
                            raw = header + frame.payload
                            for member in room.values():
                                member.outbox += raw
                                want(member)
                    if events & selectors.EVENT_WRITE and conn.outbox:
                        sent = conn.sock.send(conn.outbox)
                        del conn.outbox[:sent]
                        want(conn)
                except (EOFError, OSError, ProtocolError):
                    drop(conn)
    finally:
        for conn in list(room.values()):
            drop(conn)
        sel.close()
