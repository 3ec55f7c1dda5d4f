"""Notebook 08's exercise: the asyncio broadcast room (same body as in the notebook)."""

from __future__ import annotations

import asyncio

from chatlab import protocol as p
from chatlab.errors import ProtocolError


async def handle_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, room: set) -> None:
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(p.HEADER_SIZE)
            length = p.parse_header(header).length  # raises on a bad magic byte, version, type or size
            payload = await reader.readexactly(length)
            for member in room:
                member.write(header + payload)
    except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
        pass
    finally:
        room.discard(writer)
        writer.close()
