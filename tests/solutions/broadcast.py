"""Notebook 08's exercise: the asyncio broadcast room (same body as in the notebook)."""

from __future__ import annotations

import asyncio

from chatlab.core import protocol as p
from chatlab.errors import ProtocolError
from chatlab.exercises.broadcast import MAX_QUEUED


async def handle_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, room: set) -> None:
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(p.HEADER_SIZE)
            length = p.parse_header(header).length  # raises on a bad magic byte, version, type or size
            payload = await reader.readexactly(length)
            for member in list(room):
                if member.transport.get_write_buffer_size() > MAX_QUEUED:
                    room.discard(member)  # never reads: drop it rather than buffer without bound
                    member.transport.abort()  # close() would keep its buffer and socket until flushed: never
                else:
                    member.write(header + payload)
    except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
        pass
    finally:
        room.discard(writer)
        writer.close()
