"""Server 4 of 4: ``asyncio`` streams, one coroutine per client.

Reads like the threaded server (``await reader.readexactly(...)`` where it
had ``recv_exact``), runs like the selector server: one thread, one event
loop, and underneath it the very same ``selectors`` module.  ``await``
marks the only places where a coroutine can pause, so the room needs no
lock: nothing else runs between two awaits.  ``writer.write()`` never
blocks; it queues bytes in the transport, like the selector server's outbox.
"""

from __future__ import annotations

import asyncio
import socket
import threading

from ..core import protocol as p
from ..errors import ProtocolError


async def handle_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        room: set[asyncio.StreamWriter]) -> None:
    """One client's coroutine: read a frame, queue it to everyone in the room."""
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle waits
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(p.HEADER_SIZE)
            payload = await reader.readexactly(p.parse_header(header).length)
            for member in room:
                if not member.is_closing():  # its connection broke on an earlier write: asyncio would only log
                    member.write(header + payload)
    except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
        pass  # the client left, mid-frame or not, or spoke garbage
    finally:
        room.discard(writer)
        writer.close()


async def main(listener: socket.socket, stop: threading.Event) -> None:
    room: set[asyncio.StreamWriter] = set()
    server = await asyncio.start_server(lambda r, w: handle_client(r, w, room), sock=listener)
    async with server:
        while not stop.is_set():
            await asyncio.sleep(0.1)
        for writer in list(room):
            writer.close()


def serve(listener: socket.socket, stop: threading.Event) -> None:
    """Run the event loop in this thread until ``stop`` is set."""
    asyncio.run(main(listener, stop))
