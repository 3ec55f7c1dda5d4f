"""Server 2 of 4: one thread per client.

Each client gets a thread that blocks in ``recv()`` for it alone, so two
clients no longer wait for each other.  The room (the set of connected
sockets) is shared by every thread, so it needs a lock: without one, a
thread could iterate over the set while another adds to it ("Set changed
size during iteration"), and two threads calling ``sendall()`` on the same
socket at once could interleave their frames' bytes.  Holding the lock for
the whole broadcast also means one client that stops reading (a full send
buffer) blocks every sender: the price of the simple version.
"""

from __future__ import annotations

import socket
import threading

from ..core import protocol as p
from ..errors import ProtocolError
from ..streams import recv_exact


def serve(listener: socket.socket, stop: threading.Event) -> None:
    """Accept clients and start a thread for each; the room is a locked set."""
    room: set[socket.socket] = set()
    room_lock = threading.Lock()
    threads = []
    listener.settimeout(0.1)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.settimeout(0.1)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a chat line must not wait for Nagle
        with room_lock:
            room.add(conn)
        thread = threading.Thread(target=serve_client, args=(conn, room, room_lock, stop), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()


def serve_client(conn: socket.socket, room: set[socket.socket], room_lock: threading.Lock,
                 stop: threading.Event) -> None:
    """One client's thread: read a frame, send it to everyone in the room."""
    try:
        while True:
            header = recv_exact(conn, p.HEADER_SIZE, stop)
            frame = header + recv_exact(conn, p.parse_header(header).length, stop)
            with room_lock:  # one broadcast at a time: frames never interleave
                for member in room:
                    try:
                        member.sendall(frame)
                    except OSError:
                        pass  # that member is leaving; its own thread cleans up
    except (EOFError, OSError, ProtocolError):
        pass
    finally:
        with room_lock:
            room.discard(conn)
        conn.close()
