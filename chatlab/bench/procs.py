"""Helper processes for the benchmarks: ``python -m chatlab.bench.procs KIND [options]``.

Servers and receivers run in their own processes so that the load generator
or the sender does not share an interpreter (and its GIL) with them.  Each
helper prints one JSON line when it is ready (``{"port": ..., "pid": ...}``),
answers one JSON line per command read from stdin, and exits at EOF.

Kinds:

* ``server``: a chatlab :class:`~chatlab.Server` (flood control off, limits
  raised), its loop instrumented to count iterations.  Commands: ``stats``,
  ``reset`` (zero ``peak_queued`` and the peak RSS).  Start it with
  :func:`chatlab.bench.common.server_child` (the one way the benchmarks run a
  server in a child process).
* ``asyncio``: the reference asyncio chat server (:mod:`chatlab.bench.asyncio_ref`).
* ``receiver``: a chatlab :class:`~chatlab.Client` that accepts every file
  into ``--dir`` and prints a JSON line for each one that arrives.
* ``netem``: a :class:`~chatlab.netem.LinkEmulator` in front of ``--port``.
* ``sink``: a plain socket receiver with no protocol: reads until EOF
  (optionally into a file), then answers one byte so the sender can time it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..server import SELECTORS
from .common import proc_status, raise_nofile_limit


def say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def reset_peak_rss() -> bool:
    """Zero VmHWM (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _stdin_lines(handler: Any) -> None:
    for line in sys.stdin:
        command = line.strip()
        if command:
            handler(command)


# ------------------------------------------------------------------ server


def run_server(args: argparse.Namespace) -> int:
    from ..server import Server

    raise_nofile_limit()
    server = Server(
        args.host, 0, selector=args.selector, flood_limit=None, max_clients=args.max_clients,
        max_rooms=args.max_clients + 10, ping_interval=args.ping_interval, ping_timeout=2 * args.ping_interval,
        hello_timeout=min(3600.0, 2 * args.ping_interval), relay_high_water=args.high_water, max_queue=args.max_queue,
        backlog=args.backlog,
    )
    counters = {"iterations": 0, "select_cpu": 0.0, "loop_cpu": 0.0}  # loop_cpu: the loop thread's CPU time so far
    if args.time_select:
        # The CPU time spent inside select() and in the loop: wrap the selector's select() (the loop calls
        # it once per iteration).  Only when asked: on a virtual machine the two thread_time() calls per
        # turn cost the server about 8 % of its CPU under fan-out load (a py-spy profile of bench irc).
        selector = server.selector  # public for instrumentation like this
        original = selector.select

        def counted_select(timeout: float | None = None) -> Any:
            t0 = time.thread_time()
            events = original(timeout)
            t1 = time.thread_time()
            counters["select_cpu"] += t1 - t0
            counters["loop_cpu"] = t1
            counters["iterations"] += 1
            return events

        selector.select = counted_select  # type: ignore[method-assign]
    server.start()
    say({"port": server.address[1], "pid": os.getpid(), "selector": args.selector})

    def handle(command: str) -> None:
        if command == "stats":
            times = os.times()
            if not args.time_select:
                counters["iterations"] = server.turns
            say({**proc_status(), "cpu": times.user + times.system, **counters,
                 "peak_queued": server.peak_queued, "queued_bytes": server.queued_bytes,
                 "connections": server.connection_count, "nicks": len(server.nicks), "turns": server.turns,
                 "fds": _open_fds(), "summary": server.summary()})
        elif command == "reset":
            server.peak_queued = 0
            say({"reset": reset_peak_rss(), **proc_status()})
        else:
            say({"error": f"unknown command {command!r}"})

    try:
        _stdin_lines(handle)
    finally:
        server.stop()
    return 0


def _open_fds() -> int:
    """Descriptors this process has open now (-1 where /proc is not there)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


# ----------------------------------------------------------------- asyncio


def run_asyncio(args: argparse.Namespace) -> int:
    from .asyncio_ref import ReferenceServer

    raise_nofile_limit()

    async def main() -> None:
        ref = ReferenceServer()
        srv = await asyncio.start_server(ref.handle, args.host, 0, backlog=4096)
        port = srv.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def handle(command: str) -> None:
            if command == "stats":
                times = os.times()
                say({**proc_status(), "cpu": times.user + times.system, "connections": len(ref.writers)})
            else:
                say({"error": f"unknown command {command!r}"})

        def reader() -> None:
            _stdin_lines(lambda c: loop.call_soon_threadsafe(handle, c))
            loop.call_soon_threadsafe(lambda: None if done.done() else done.set_result(None))

        threading.Thread(target=reader, daemon=True).start()
        say({"port": port, "pid": os.getpid(), "selector": "asyncio"})
        async with srv:
            await done

    asyncio.run(main())
    return 0


# ---------------------------------------------------------------- receiver


def run_receiver(args: argparse.Namespace) -> int:
    from ..client import Client, Disconnected, FileFailed, FileReceived

    directory = Path(args.dir)
    client = Client.connect((args.host, args.port), nick=args.nick, download_dir=directory)
    stop = threading.Event()
    say({"pid": os.getpid(), "nick": client.nick})

    def reader() -> None:
        for _ in sys.stdin:
            pass
        stop.set()

    threading.Thread(target=reader, daemon=True).start()
    try:
        while not stop.is_set():
            try:
                # Take every event, not only the file events: the chat lines the sender's probes
                # broadcast would otherwise pile up, and each wake-up would scan all of them
                # (this process's CPU, stolen from receiving the file).
                event = client.next_event(timeout=0.2)
            except TimeoutError:
                continue
            if not isinstance(event, (FileReceived, FileFailed, Disconnected)):
                continue
            if isinstance(event, FileReceived):
                say({"event": "received", "path": str(event.path), "size": event.size, "sha256": event.sha256,
                     "seconds": event.seconds, "t": time.monotonic()})
            elif isinstance(event, FileFailed):
                say({"event": "failed", "reason": event.reason})
            else:
                say({"event": "disconnected", "reason": event.reason})
                return 1
    finally:
        client.close()
    return 0


# -------------------------------------------------------------------- sink


def _exit_at_eof() -> None:
    """Exit this helper when the parent closes our stdin (or dies)."""
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()


def run_sink(args: argparse.Namespace) -> int:
    """Receive one connection's bytes until EOF (into a file or nowhere), answer b"k", repeat."""
    listener = socket.create_server((args.host, 0))
    say({"port": listener.getsockname()[1], "pid": os.getpid()})
    _exit_at_eof()
    buf = bytearray(1024 * 1024)
    view = memoryview(buf)
    while True:
        conn, _ = listener.accept()
        with conn:
            header = conn.recv(4096, socket.MSG_PEEK)  # a first line may name the output file
            out = None
            if header.startswith(b"FILE "):
                line = b""
                while not line.endswith(b"\n"):
                    line += conn.recv(1)
                out = open(line[5:-1].decode(), "wb")
            total = 0
            while True:
                n = conn.recv_into(buf)
                if not n:
                    break
                total += n
                if out is not None:
                    out.write(view[:n])
            if out is not None:
                out.close()
            conn.sendall(b"k")
            say({"event": "received", "bytes": total})


# ------------------------------------------------------------------- netem


def run_netem(args: argparse.Namespace) -> int:
    """A :class:`~chatlab.netem.LinkEmulator` in its own process (the sender's link)."""
    from ..netem import LinkEmulator, LinkProfile

    profile = LinkProfile(delay=args.delay_ms / 1000, rate=args.rate_mbit * 1e6 / 8 if args.rate_mbit > 0 else None,
                          queue_bytes=int(args.queue_kb * 1024))
    with LinkEmulator((args.host, args.port), profile) as link:
        say({"port": link.address[1], "pid": os.getpid(), "profile": profile.describe()})

        def handle(command: str) -> None:
            s = link.stats
            say({"bytes_up": s.bytes_up, "bytes_down": s.bytes_down, "buffered": s.buffered,
                 "connections": s.connections})

        _stdin_lines(handle)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatlab.bench.procs")
    kinds = parser.add_subparsers(dest="kind", required=True)
    s = kinds.add_parser("server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--selector", default="select", choices=list(SELECTORS))
    s.add_argument("--max-clients", type=int, default=20000)
    s.add_argument("--high-water", type=int, default=1024 * 1024)
    s.add_argument("--max-queue", type=int, default=64 * 1024 * 1024)
    s.add_argument("--backlog", type=int, default=128)
    s.add_argument("--ping-interval", type=float, default=3600.0, help="keepalive (the timeout is twice this)")
    s.add_argument("--time-select", type=int, default=0, help="1: time select() and the loop (bench scaling)")
    s.set_defaults(run=run_server)
    a = kinds.add_parser("asyncio")
    a.add_argument("--host", default="127.0.0.1")
    a.set_defaults(run=run_asyncio)
    r = kinds.add_parser("receiver")
    r.add_argument("--host", default="127.0.0.1")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--nick", default="bob")
    r.add_argument("--dir", required=True)
    r.set_defaults(run=run_receiver)
    sk = kinds.add_parser("sink")
    sk.add_argument("--host", default="127.0.0.1")
    sk.set_defaults(run=run_sink)
    n = kinds.add_parser("netem")
    n.add_argument("--host", default="127.0.0.1")
    n.add_argument("--port", type=int, required=True)
    n.add_argument("--delay-ms", type=float, default=20.0)
    n.add_argument("--rate-mbit", type=float, default=50.0)
    n.add_argument("--queue-kb", type=float, default=256.0)
    n.set_defaults(run=run_netem)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
