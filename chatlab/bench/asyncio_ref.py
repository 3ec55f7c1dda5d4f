"""The reference the fan-out benchmark compares chatlab's server against.

What a Python programmer would write today for a chat room: ``asyncio``
streams, one coroutine per client, ``writer.write()`` to every member of
the room.  It speaks the same wire protocol as chatlab (frames decoded and
encoded with :mod:`chatlab.core.protocol`), so the very same load generator
drives both servers, and it does the same work per message: decode the
SAY, encode one CHAT frame, queue those bytes to every member.

It has none of chatlab's guarantees (no flood control, no per-client queue
limit, no nick rules beyond uniqueness, no rooms other than one): it is the
simple, fast baseline, not a replacement.  Run it with
``python -m chatlab.bench.procs asyncio`` (the benchmarks do).
"""

from __future__ import annotations

import asyncio

from ..core import protocol as p
from ..errors import ProtocolError

ROOM = "lobby"


class ReferenceServer:
    """One room; every client that says HELLO is in it."""

    def __init__(self) -> None:
        self.writers: dict[str, asyncio.StreamWriter] = {}

    def broadcast(self, data: bytes) -> None:
        for writer in list(self.writers.values()):
            writer.write(data)  # asyncio tries to send at once; the rest waits in the transport's buffer

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nick = None
        try:
            while True:
                header = p.parse_header(await reader.readexactly(p.HEADER_SIZE))
                payload = await reader.readexactly(header.length) if header.length else b""
                message = p.decode_message(p.Frame(p.FrameType(header.type), header.flags, header.stream_id, payload))
                if isinstance(message, p.Hello) and nick is None:
                    if message.nick in self.writers:
                        writer.write(p.encode(p.ErrorMessage("nick-taken", f"{message.nick} is taken")))
                        break
                    nick = message.nick
                    self.writers[nick] = writer
                    writer.write(p.encode(p.Welcome(nick, ROOM, "")))
                    self.broadcast(p.encode(p.Notice("join", f"{nick} joined {ROOM}", nick, ROOM)))
                elif nick is None:
                    break
                elif isinstance(message, p.Say):
                    self.broadcast(p.encode(p.ChatMessage(ROOM, nick, message.text, message.action)))
                elif isinstance(message, p.Ping):
                    writer.write(p.encode(p.Pong(message.token)))
                elif isinstance(message, p.Quit):
                    break
                await writer.drain()  # the usual back-pressure idiom: wait while *our* buffer is too full
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
            pass
        finally:
            if nick is not None and self.writers.get(nick) is writer:
                del self.writers[nick]
                self.broadcast(p.encode(p.Notice("quit", f"{nick} quit", nick, ROOM)))
            writer.close()
