"""Reference solution for notebook 11's exercise (kept out of the package: see tests/exercises/test_exercises.py)."""

from __future__ import annotations

import socket
import ssl


def connect_tls(host: str, port: int, cafile: str) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=cafile)  # CERT_REQUIRED and check_hostname=True
    sock = socket.create_connection((host, port), timeout=5)
    try:
        return context.wrap_socket(sock, server_hostname=host)  # SNI, and the name the certificate must match
    except BaseException:
        sock.close()
        raise
