"""Reference solution of notebook 00's exercise (the notebook holds the same code between its solution markers)."""

from __future__ import annotations

import socket


def serve_one_echo(listener: socket.socket) -> int:
    """Accept one client, send back every byte it sends until it closes its side, close, return the count."""
    conn, _address = listener.accept()
    echoed = 0
    with conn:  # closed on the way out, whatever happens
        while True:
            data = conn.recv(4096)
            if not data:  # b'': the client closed its side, nothing more will come
                break
            conn.sendall(data)  # sendall: send() may take only part of it
            echoed += len(data)
    return echoed
