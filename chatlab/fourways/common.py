"""What the four servers share: reading exactly n bytes from a blocking socket."""

from __future__ import annotations

import socket
import threading


def recv_exact(conn: socket.socket, n: int, stop: threading.Event) -> bytes:
    """Read exactly ``n`` bytes (``recv()`` may return fewer; notebook 04).

    ``conn`` has a short timeout so that the loop can look at ``stop``.

    Raises:
        EOFError: the peer closed before ``n`` bytes arrived.
        ConnectionError: the server is stopping (or the peer reset).
    """
    data = bytearray()
    while len(data) < n:
        if stop.is_set():
            raise ConnectionAbortedError("server stopping")
        try:
            chunk = conn.recv(n - len(data))
        except TimeoutError:
            continue
        if not chunk:
            raise EOFError(f"peer closed after {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)
