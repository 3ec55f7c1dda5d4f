"""Reference solutions for the exercises of notebooks 03 (framing) and 04 (recv).

Try the exercises before reading these.  Each one passes its checker::

    from chatlab.exercises.framing import check_framing
    from chatlab.exercises.recv import check_recv_exact
    check_framing(encode_frame, decode_frames)
    check_recv_exact(recv_exact)
"""

from __future__ import annotations

import socket

from chatlab.core.protocol import HEADER_SIZE, Frame, FrameType, parse_header
from chatlab.core.protocol import MAX_PAYLOAD as CHATLAB_MAX_PAYLOAD
from chatlab.exercises.framing import HEADER, MAX_PAYLOAD

__all__ = ["encode_frame", "decode_frames", "recv_exact", "read_frame"]


# -- notebook 03: a length-prefixed format (kind u8, length u16, payload) ----


def encode_frame(kind: int, payload: bytes) -> bytes:
    """One frame: a 3-byte header (kind, big-endian length) and the payload."""
    if not 0 <= kind <= 0xFF:
        raise ValueError(f"kind {kind} does not fit in one byte")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a payload of {len(payload)} bytes does not fit the 16-bit length field (max {MAX_PAYLOAD})")
    return HEADER.pack(kind, len(payload)) + bytes(payload)


def decode_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Remove every complete frame from the front of ``buffer`` and return them in order.

    The bytes of an unfinished frame stay in ``buffer``, to be completed by the
    next ``recv()``.  Walks the buffer with an index and deletes the consumed
    bytes once at the end, rather than once per frame.
    """
    frames = []
    start = 0
    while len(buffer) - start >= HEADER.size:  # at least a whole header?
        kind, length = HEADER.unpack_from(buffer, start)
        end = start + HEADER.size + length
        if len(buffer) < end:  # the payload is not all here yet
            break
        frames.append((kind, bytes(buffer[start + HEADER.size : end])))
        start = end
    del buffer[:start]
    return frames


# -- notebook 04: recv() returns at most n bytes; recv_exact returns exactly n


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Receive exactly ``n`` bytes from ``sock``.

    Raises:
        EOFError: the peer closed the connection before ``n`` bytes arrived
            (asyncio's ``readexactly()`` raises ``IncompleteReadError``, an
            ``EOFError`` too).
        TimeoutError: the socket's timeout expired while waiting.
    """
    data = bytearray()
    while len(data) < n:
        # Never ask for more than is still missing: the bytes after this
        # message belong to the next one and must stay in the kernel buffer.
        chunk = sock.recv(min(n - len(data), 1 << 16))
        if not chunk:  # b'': the peer closed, no more bytes will ever come
            raise EOFError(f"peer closed the connection after {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)


def read_frame(sock: socket.socket, max_payload: int = CHATLAB_MAX_PAYLOAD) -> Frame:
    """Read one chatlab frame from a blocking socket: the 12-byte header, then its payload.

    The header is checked (magic, version, type, size) before a single payload
    byte is read, so a peer announcing 4 GiB gets ``FrameTooLarge``.
    """
    header = parse_header(recv_exact(sock, HEADER_SIZE), max_payload)
    payload = recv_exact(sock, header.length)
    return Frame(FrameType(header.type), header.flags, header.stream_id, payload)
