"""Reading exactly ``n`` bytes from a blocking socket: the one :func:`recv_exact` of the package.

``recv(n)`` returns *up to* ``n`` bytes (notebook 04): whatever has arrived.  A
program that talks to one peer and may block (a thread per client, the direct
path's handshake and digest) needs exactly ``n``, and a clear answer when the peer
closes before they come.  :func:`recv_exact` follows asyncio's
``StreamReader.readexactly``: all ``n`` bytes, or an
:class:`~chatlab.errors.IncompleteReadError` carrying the bytes that did arrive.

The chat server and client never use it: they feed whatever ``recv()`` returns to a
:class:`~chatlab.core.protocol.FrameDecoder`.  The exercises and notebook 04 keep
their own copy on purpose: students write it.
"""

from __future__ import annotations

import socket
import threading

from .errors import IncompleteReadError

__all__ = ["recv_exact"]


def recv_exact(sock: socket.socket, n: int, stop: threading.Event | None = None) -> bytes:
    """Read exactly ``n`` bytes from ``sock``, however many ``recv()`` calls that takes.

    Args:
        sock: a blocking socket (with or without a timeout).
        n: how many bytes to read.
        stop: if given, checked before each ``recv()``; ``sock`` should then have a short
            timeout, which is not an error but a chance to look at ``stop`` (a server
            thread that must notice it is stopping).

    Returns:
        The ``n`` bytes.

    Raises:
        IncompleteReadError: the peer closed first; ``.partial`` holds the bytes read,
            ``.expected`` is ``n`` (it is also an :class:`EOFError`, like asyncio's).
        ConnectionAbortedError: ``stop`` was set before ``n`` bytes arrived.
        TimeoutError: ``sock``'s timeout expired (only without ``stop``).
        OSError: the connection failed (reset by the peer, ...).
    """
    data = bytearray()
    while len(data) < n:
        if stop is not None and stop.is_set():
            raise ConnectionAbortedError("stopping")
        try:
            chunk = sock.recv(n - len(data))
        except TimeoutError:
            if stop is None:
                raise
            continue
        if not chunk:
            raise IncompleteReadError(bytes(data), n)
        data += chunk
    return bytes(data)
