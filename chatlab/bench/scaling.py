"""``bench scaling``: idle connections 10 -> 1,000 (-> 5,000): loop cost and memory per connection.

For each selector a fresh chatlab server process is started, and idle
clients are added step by step (each says HELLO and moves to a room of its
own, so that nobody's arrival is announced to thousands of others).  At
each step one more client plays ping-pong with the server (``--pings``
round trips, one at a time) while we read the server's counters: CPU
seconds per loop iteration, the part of it spent inside ``select()`` /
``poll()`` / ``epoll()``, the round-trip time, and the server's resident
memory per connection.  ``select()`` cannot watch descriptors at or above
FD_SETSIZE (1024): the server refuses such connections with a message,
and this benchmark reports where that happened.
"""

from __future__ import annotations

import argparse
import socket
import time
from pathlib import Path
from typing import Any

from ..core import protocol as p
from ..server import FD_SETSIZE, SELECTORS
from ..stats import percentile
from .common import (
    Child,
    Scenario,
    iter_progress,
    pyplot,
    raise_nofile_limit,
    save_figure,
    server_child,
    table,
    write_csv,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--counts", default=None,
                        help="idle connection counts (default 10,100,1000,5000; --quick 10,100,1100)")
    parser.add_argument("--selectors", default=",".join(SELECTORS),
                        help=f"which selectors (default {','.join(SELECTORS)})")
    parser.add_argument("--pings", type=int, default=None, help="ping round trips per step (default 400; --quick 100)")


class Idle:
    """Idle registered clients, each in a room of its own."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.socks: list[socket.socket] = []
        self.refused: str | None = None

    def grow(self, target: int, batch: int = 50) -> None:
        while len(self.socks) < target and self.refused is None:
            pending: list[tuple[int, socket.socket]] = []
            for _ in range(min(batch, target - len(self.socks) - len(pending))):
                i = len(self.socks) + len(pending)
                try:
                    s = socket.create_connection(self.address, timeout=10)
                except OSError as exc:
                    self.refused = f"connect failed at connection {i + 1}: {exc}"
                    break
                s.sendall(p.encode(p.Hello(f"i{i:05d}")) + p.encode(p.Join(f"r{i:05d}")))
                pending.append((i, s))
            for i, s in pending:
                problem = wait_joined(s, f"r{i:05d}")
                if problem is None:
                    self.socks.append(s)
                else:
                    s.close()
                    if self.refused is None:
                        self.refused = f"connection {i + 1} refused: {problem}"
            if self.refused is not None:
                # Free two descriptors on the server so that the ping probe can still get in.
                for s in self.socks[-2:]:
                    s.close()
                del self.socks[-2:]
                time.sleep(0.3)
                break

    def close(self) -> None:
        for s in self.socks:
            s.close()
        self.socks.clear()


def wait_joined(s: socket.socket, room: str) -> str | None:
    """Read until ``s`` is in ``room``; None then, or why it was refused."""
    decoder = p.MessageDecoder()
    while True:
        for m in decoder:
            if isinstance(m, p.ErrorMessage):
                return f"{m.code}: {m.text}"
            if isinstance(m, p.Notice) and m.kind == "join" and m.room == room:
                return None
        try:
            data = s.recv(65536)
        except OSError as exc:
            return f"connection broken: {exc}"
        if not data:
            return "the server closed the connection"
        decoder.feed(data)


def ping_pong(address: tuple[str, int], n: int) -> list[float]:
    """``n`` PING -> PONG round trips from a fresh registered client, in ms."""
    with socket.create_connection(address, timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(p.encode(p.Hello("probe")) + p.encode(p.Join("probe-room")))
        problem = wait_joined(s, "probe-room")
        if problem:
            raise RuntimeError(f"the probe client was refused: {problem}")
        decoder = p.MessageDecoder()
        rtts = []
        for token in range(1, n + 1):
            t0 = time.perf_counter()
            s.sendall(p.encode(p.Ping(token)))
            while True:
                got = next((m for m in decoder if isinstance(m, p.Pong) and m.token == token), None)
                if got is not None:
                    break
                data = s.recv(65536)
                if not data:
                    raise RuntimeError("the server closed the probe connection")
                decoder.feed(data)
            rtts.append((time.perf_counter() - t0) * 1000)
        s.sendall(p.encode(p.Quit("done")))
    return rtts


COLUMNS = [("selector", "selector"), ("target", "asked"), ("connections", "open"),
           ("cpu_us_per_iteration", "CPU us/loop iteration"), ("select_cpu_us_per_call", "of it in select"),
           ("rtt_p50_ms", "ping p50 ms"), ("rtt_p99_ms", "ping p99 ms"), ("kib_per_connection", "KiB/conn (RSS)"),
           ("rss_mib", "server RSS MiB")]


def run(args: argparse.Namespace, out_dir: Path) -> Scenario:
    counts = [int(x) for x in (args.counts or ("10,100,1100" if args.quick else "10,100,1000,5000")).split(",")]
    selectors = [s.strip() for s in args.selectors.split(",") if s.strip()]
    pings = args.pings or (100 if args.quick else 400)
    limit = raise_nofile_limit()
    sc = Scenario("scaling", "Scaling: idle connections")
    print(f"scaling: {', '.join(map(str, counts))} idle connections per selector, {pings} ping round trips at each "
          f"step; open-file limit {limit}", flush=True)
    rows: list[dict[str, Any]] = []
    stops: dict[str, str] = {}
    for selector in iter_progress(selectors, "scaling", enabled=args.progress):
        mine, stop = _climb(selector, counts, pings)
        rows += mine
        if stop:
            stops[selector] = stop
    sc.rows = rows
    print()
    table(rows, COLUMNS)
    for text in stops.values():
        print(f"  {text}")
    _verdicts(sc, rows, stops, selectors)
    sc.notes += [
        "CPU per loop iteration = the loop thread's CPU time / loop iterations while one client plays ping-pong "
        "and the rest are idle (about one iteration per ping: the PING is read and the PONG sent at the end of the "
        "same turn; servers before the end-of-turn flush took two).",
        "select() and poll() hand the kernel every descriptor on every call, so their cost grows with the number of "
        "connections even when only one is active; epoll's does not.",
        "Memory per connection is the growth of the server's resident set (Python objects, buffers) divided by the "
        "connections; the kernel's socket buffers are not in it.",
    ]
    sc.files.append(write_csv(out_dir / "scaling.csv", rows))
    sc.files.append(plot(rows, out_dir / "scaling.png"))
    return sc


def _climb(selector: str, counts: list[int], pings: int) -> tuple[list[dict[str, Any]], str]:
    """One server, idle connections added step by step; the rows, and where it stopped ("" if it did not)."""
    rows: list[dict[str, Any]] = []
    with server_child(selector, time_select=1) as server:
        base = server.ask("stats")
        idle = Idle(server.address)
        try:
            for count in counts:
                idle.grow(count)
                rows.append(_step(server, idle, selector, count, pings, base))
                if idle.refused:
                    return rows, f"{selector} stopped at {len(idle.socks):,} connections: {idle.refused}"
        finally:
            server.close()
            idle.close()
    return rows, ""


def _per(delta: float, iterations: int) -> float | None:
    return delta / iterations * 1e6 if iterations else None


def _step(server: Child, idle: Idle, selector: str, count: int, pings: int, base: dict[str, Any]) -> dict[str, Any]:
    """Ping-pong with ``len(idle.socks)`` idle connections open: one row."""
    have = len(idle.socks)
    before = server.ask("stats")
    t0 = time.perf_counter()
    rtts = ping_pong(server.address, pings)
    wall = time.perf_counter() - t0
    after = server.ask("stats")
    iterations = after["iterations"] - before["iterations"]
    loop_cpu = after["loop_cpu"] - before["loop_cpu"]
    return {
        "selector": selector, "target": count, "connections": have, "reached": have >= count,
        "cpu_us_per_iteration": _per(loop_cpu, iterations),
        "select_cpu_us_per_call": _per(after["select_cpu"] - before["select_cpu"], iterations),
        "iterations_per_ping": iterations / pings,
        "rtt_p50_ms": percentile(rtts, 50), "rtt_p99_ms": percentile(rtts, 99),
        "server_cpu_share": loop_cpu / wall if wall else None,
        "rss_mib": after["VmRSS"] / 1024,
        "kib_per_connection": (after["VmRSS"] - base["VmRSS"]) / have if have else None,
        "note": idle.refused or "",
    }


def _verdicts(sc: Scenario, rows: list[dict[str, Any]], stops: dict[str, str], selectors: list[str]) -> None:
    target = "select() stops at FD_SETSIZE with a clear message, not a crash"
    sel = [r for r in rows if r["selector"] == "select"]
    if sel:
        top = max(r["connections"] for r in sel)
        if "select" in stops:
            sc.verdict(target, "server-full" in stops["select"],
                       f"stopped at {top:,} connections (FD_SETSIZE {FD_SETSIZE})", stops["select"].split(": ", 1)[1])
        else:
            sc.verdict(target, None, f"reached {top:,} connections",
                       f"ask for more than {FD_SETSIZE} (e.g. --counts 10,100,1000,5000) to see the limit")
    for selector in selectors:
        mine = [r for r in rows if r["selector"] == selector and r["cpu_us_per_iteration"]]
        if len(mine) >= 2:
            lo, hi = mine[0], mine[-1]
            sc.info(f"{selector}: loop cost from {lo['connections']:,} to {hi['connections']:,} connections",
                    f"{lo['cpu_us_per_iteration']:.0f} -> {hi['cpu_us_per_iteration']:.0f} us CPU per iteration "
                    f"({hi['cpu_us_per_iteration'] / lo['cpu_us_per_iteration']:.1f}x), "
                    f"{hi['kib_per_connection']:.1f} KiB RSS per connection")


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for selector in dict.fromkeys(r["selector"] for r in rows):
        mine = [r for r in rows if r["selector"] == selector]
        a1.plot([r["connections"] for r in mine], [r["cpu_us_per_iteration"] for r in mine], marker="o", label=selector)
        a2.plot([r["connections"] for r in mine], [r["kib_per_connection"] for r in mine], marker="o", label=selector)
    for ax in (a1, a2):
        ax.axvline(FD_SETSIZE, color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("idle connections")
        ax.legend(fontsize=8)
    a1.text(FD_SETSIZE, a1.get_ylim()[1] if rows else 1, " FD_SETSIZE", va="top", fontsize=8, color="grey")
    a1.set_yscale("log")
    a1.set_ylabel("server CPU per loop iteration, us (log)")
    a1.set_title("cost of one loop iteration")
    a2.set_ylabel("server RSS growth per connection, KiB")
    a2.set_title("memory per connection")
    return save_figure(fig, path)
