"""The harness of :func:`chatlab.exercises.check_broadcast_handler`: the student's coroutine
serving real loopback clients on an event loop of its own, and the probes that watch that loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import struct
import threading
import time
from typing import Any, Awaitable, Callable

from ..i18n import _
from ._report import NotWrittenYet

HOST = "127.0.0.1"
WAIT = 1.0  # seconds to wait for something that should arrive
MAX_QUEUED = 256 * 1024  # bytes waiting for one member beyond which it is dropped
SERVER_SNDBUF = 32 * 1024  # small kernel send buffers, so that a member that never reads backs up quickly
HEARTBEAT = 0.005  # seconds between two wake-ups of the checker's task on the student's event loop
MAX_STALL = 0.3  # the loop may go this long without running that task (a loaded machine is slow, not blocked)
ROOM_DEADLINE = 5.0  # seconds for the never-reading case's frames to go round (the reference: about 0.3 s)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, set], Awaitable[None]]


class _Room:
    """The student's handler behind asyncio.start_server, on a loop in a thread."""

    def __init__(self, handle_client: Handler) -> None:
        self.handle_client = handle_client
        self.room: set[Any] = set()
        self.errors: list[BaseException] = []
        self.loop = asyncio.new_event_loop()
        # Anything the loop would print (an exception in a callback) is recorded instead.
        self.loop.set_exception_handler(lambda loop, ctx: self.errors.append(ctx.get("exception")
                                                                             or RuntimeError(ctx["message"])))
        self.listener = socket.socket()
        # Accepted sockets inherit this (and a fixed size stops the kernel's autotuning), so a client
        # that never reads fills its kernel buffers after tens of KiB, not megabytes.
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SERVER_SNDBUF)
        self.listener.bind((HOST, 0))
        self.listener.listen(16)
        self.address = self.listener.getsockname()[:2]
        self.sockets: list[socket.socket] = []
        self.writers: list[asyncio.StreamWriter] = []  # every client's writer, in the order they came
        self.finished: set[asyncio.StreamWriter] = set()  # the writers whose handler has returned
        self.longest_stall = 0.0  # the longest the loop went without running its heartbeat, in seconds
        self.peak_buffered: dict[Any, int] = {}  # the most bytes seen waiting in each writer's transport
        self.tasks: dict[Any, asyncio.Task] = {}  # each writer's handler task
        self.slept = 0  # time.sleep() calls made on the loop's thread
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        if not ready.wait(5):
            raise RuntimeError("the checker's event loop did not start")

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:  # small kernel buffers on every OS (not all copy the listener's to accepted sockets)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SERVER_SNDBUF)
            # No Nagle: a handler that writes a header and its payload separately is not held 40 ms
            # for the peer's delayed ACK on every frame (correct, only slower, and not what is tested).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.writers.append(writer)
        task = asyncio.current_task()
        if task is not None:
            self.tasks[writer] = task
        try:
            await self.handle_client(reader, writer, self.room)
        except Exception as exc:  # the student's bug, shown in the hints; never a traceback
            self.errors.append(exc)
            writer.close()
        finally:
            self.finished.add(writer)

    async def _heartbeat(self) -> None:
        """Wake up every few milliseconds; a late wake-up means something blocked the loop."""
        while True:
            before = time.monotonic()
            await asyncio.sleep(HEARTBEAT)
            self.longest_stall = max(self.longest_stall, time.monotonic() - before - HEARTBEAT)
            for writer in self.writers:
                try:
                    size = writer.transport.get_write_buffer_size()
                except Exception:  # a transport torn down
                    continue
                if size > self.peak_buffered.get(writer, 0):
                    self.peak_buffered[writer] = size

    def stall(self) -> float:
        """The longest stall of the loop since the last call, in seconds."""
        stall, self.longest_stall = self.longest_stall, 0.0
        return stall

    def unclosed(self) -> list[asyncio.StreamWriter]:
        """Writers out of the room (dropped, or their client left) that nobody closed."""
        def check() -> list[asyncio.StreamWriter]:
            return [w for w in self.writers if w not in self.room and w in self.finished | self.dropped()
                    and not w.transport.is_closing()]
        return asyncio.run_coroutine_threadsafe(_call(check), self.loop).result(2)

    def released(self, writer: asyncio.StreamWriter) -> bool:
        """True once ``writer``'s socket is really closed (not just closing, with bytes still buffered)."""
        def check() -> bool:
            sock = writer.get_extra_info("socket")
            return sock is None or sock.fileno() == -1
        return asyncio.run_coroutine_threadsafe(_call(check), self.loop).result(2)

    def awaiting(self, writer: asyncio.StreamWriter) -> list[str]:
        """The names of the coroutines ``writer``'s handler is suspended in, outermost first."""
        def chain() -> list[str]:
            task = self.tasks.get(writer)
            names: list[str] = []
            coro: Any = task.get_coro() if task is not None and not task.done() else None
            while coro is not None and len(names) < 50:
                code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
                if code is not None:
                    names.append(code.co_name)
                coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
            return names
        try:
            return asyncio.run_coroutine_threadsafe(_call(chain), self.loop).result(2)
        except Exception:
            return []

    def stuck_in(self) -> str:
        """A hint naming what a handler is stuck waiting for, when that names the mistake."""
        if any("wait_closed" in self.awaiting(writer) for writer in list(self.writers)):
            return _(
                "; the sender's coroutine is stuck in await member.wait_closed() on a dropped member: a"
                " transport closes only once its buffer is flushed, and a member that never reads never"
                " flushes; do not wait for a dropped member (member.transport.abort() closes it at once)"
            )
        return ""

    def dropped(self) -> set[asyncio.StreamWriter]:
        return {w for w in self.writers if w not in self.room and w not in self.finished}

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._serve_one, sock=self.listener))
        heartbeat = self.loop.create_task(self._heartbeat())
        ready.set()
        try:
            self.loop.run_forever()
        finally:
            server.close()
            heartbeat.cancel()
            for writer in self.writers:  # what the student left open, closed now
                if not writer.transport.is_closing():
                    try:
                        writer.transport.abort()
                    except Exception:  # a transport already half torn down
                        pass
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.run_until_complete(asyncio.sleep(0.05))
            self.loop.close()

    def room_size(self) -> int:
        async def size() -> int:
            return len(self.room)
        try:
            return asyncio.run_coroutine_threadsafe(size(), self.loop).result(2)
        except concurrent.futures.TimeoutError:
            raise AssertionError(_("the event loop did not answer for 2 s: something in your coroutine blocks"
                                   " (a plain socket call or time.sleep() instead of an await)")) from None

    def client(self, rcvbuf: int | None = None) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect(): the window is agreed in the handshake
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(2)
        sock.connect(self.address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sockets.append(sock)
        return sock

    def settle(self, members: int) -> None:
        """Wait until ``members`` clients are in the room (connect() returns before accept)."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.room_size() >= members:
                return
            if self.errors and isinstance(self.errors[0], NotImplementedError):
                break  # an unsolved exercise: no need to wait
            time.sleep(0.01)
        if self.errors and isinstance(self.errors[0], NotImplementedError):
            raise NotWrittenYet(getattr(self.handle_client, "__name__", "handle_client"))
        raise AssertionError(
            _(
                "{members} client(s) connected but the room holds {writers} writer(s):"
                " does your coroutine add its own writer to the room before it starts reading?"
            ).format(members=members, writers=self.room_size())
            + self.blame()
        )

    def blame(self) -> str:
        if not self.errors:
            return ""
        exc = self.errors[0]
        why = ""
        if isinstance(exc, (TimeoutError, BlockingIOError)):
            why = _("; a blocking socket call inside a coroutine stalls every client: await reader.readexactly()")
        elif isinstance(exc, struct.error):
            why = _("; a header was cut short: reader.read(n) returns at most n bytes, reader.readexactly(n)"
                    " waits for all n")
        elif isinstance(exc, RuntimeError) and "changed size during iteration" in str(exc):
            why = _("; the room changed while you looped over it (a member was dropped): loop over a copy, list(room)")
        return _(" (your handler raised {error}: {message}{why})").format(error=type(exc).__name__,
                                                                          message=exc, why=why)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.listener.close()


async def _call(fn: Callable[[], Any]) -> Any:
    return fn()


class _SleepProbe:
    """While active, count the time.sleep() calls made on one thread (the event loop's)."""

    def __init__(self, room: _Room) -> None:
        self.room = room
        self.original = time.sleep
        handler = room.handle_client
        # The student's own `from time import sleep` too.
        self.namespace: dict[str, Any] = getattr(getattr(handler, "__wrapped__", handler), "__globals__", {})
        self.names = [name for name, value in self.namespace.items() if value is time.sleep]

    def __enter__(self) -> _SleepProbe:
        original, room, loop_thread = self.original, self.room, self.room.thread.ident

        def sleep(seconds: float) -> None:
            if threading.get_ident() == loop_thread:
                room.slept += 1
            original(seconds)

        time.sleep = sleep  # type: ignore[assignment]
        for name in self.names:
            self.namespace[name] = sleep
        return self

    def __exit__(self, *exc_info: Any) -> None:
        time.sleep = self.original
        for name in self.names:
            self.namespace[name] = self.original
