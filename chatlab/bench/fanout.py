"""``bench fanout``: one room of N clients, every message delivered to all.

For each N (10, 100, 500) and each server (chatlab with select, poll and
epoll; the reference asyncio server of :mod:`chatlab.bench.asyncio_ref`), a
fresh server process is started, N clients join from the load generator in
this process (:mod:`chatlab.bench.loadgen`), ``--senders`` of them keep
``--window`` messages each in flight, and for ``--seconds`` we count the
messages delivered per second and the latency from send to delivery (p50,
p99).  On a machine with two or more CPUs the server is pinned to one CPU
and the load generator to another, so they do not take turns on one core.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

from ..server import SELECTORS
from .common import (
    Child,
    Scenario,
    add_ratio,
    cpu_count,
    delivery_row,
    iter_progress,
    pin,
    pyplot,
    save_figure,
    server_child,
    table,
    write_csv,
)
from .loadgen import Crowd

SERVERS = (*SELECTORS, "asyncio")
COLUMNS = [("clients", "clients"), ("server", "server"), ("deliveries_per_s", "delivered/s"),
           ("ratio_to_asyncio", "x asyncio"), ("latency_p50_ms", "p50 ms"), ("latency_p99_ms", "p99 ms"),
           ("server_cpu", "server CPU"), ("driver_cpu", "loadgen CPU"),
           ("server_cpu_us_per_delivery", "server us/delivery"), ("setup_seconds", "join s")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", default=None,
                        help="comma-separated room sizes (default 10,100,500; --quick 10,100)")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"which servers (default {','.join(SERVERS)})")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per run (default 3; --quick 1)")
    parser.add_argument("--senders", type=int, default=10, help="clients that send (default 10)")
    parser.add_argument("--window", type=int, default=4, help="messages each sender keeps in flight (default 4)")


@contextlib.contextmanager
def pinned_apart() -> Iterator[set[int] | None]:
    """On two or more CPUs: this process (the load generator) on CPU 1 while the block runs; yields the
    CPUs for the server ({0}), or None on one CPU, where they share it."""
    if cpu_count() < 2:
        yield None
        return
    mine = os.sched_getaffinity(0)
    pin(0, {1})
    try:
        yield {0}
    finally:
        pin(0, mine)


def sizes(text: str) -> list[int]:
    """``"10,100,500"`` -> ``[10, 100, 500]``."""
    return [int(x) for x in text.split(",")]


def names(text: str) -> list[str]:
    """``"select, epoll"`` -> ``["select", "epoll"]``."""
    return [s.strip() for s in text.split(",") if s.strip()]


def run(args: argparse.Namespace, out_dir: Path) -> Scenario:
    counts = sizes(args.clients or ("10,100" if args.quick else "10,100,500"))
    servers = names(args.servers)
    seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else 3.0)
    warmup = 0.3 if args.quick else 0.5
    sc = Scenario("fanout", "Chat fan-out: one room of N clients")
    rows: list[dict[str, Any]] = []
    runs = [(n, s) for n in counts for s in servers]
    with pinned_apart() as server_cpus:
        where = "pinned to CPU 0, load generator to CPU 1" if server_cpus else "and load generator share one CPU"
        print(f"fanout: rooms of {', '.join(map(str, counts))} clients; {args.senders} senders x {args.window} "
              f"messages in flight; {seconds:g} s per run; server {where}", flush=True)
        for n, kind in iter_progress(runs, "fanout", total=len(runs), enabled=args.progress):
            child = Child("asyncio", cpus=server_cpus) if kind == "asyncio" else server_child(kind, cpus=server_cpus)
            rows.append(_measure(child, kind, n, args, seconds, warmup))
    add_ratio(rows, "ratio_to_asyncio", lambda r: r["selector"] == "asyncio")
    sc.rows = rows
    print()
    table(rows, COLUMNS)
    _verdicts(sc, rows)
    sc.notes += _notes(args, rows)
    sc.files.append(write_csv(out_dir / "fanout.csv", rows))
    sc.files.append(plot(rows, out_dir / "fanout.png"))
    return sc


def _measure(child: Child, kind: str, n: int, args: argparse.Namespace, seconds: float,
             warmup: float) -> dict[str, Any]:
    """One room of ``n`` clients against the server in ``child``; the row of the run."""
    with child:
        crowd = Crowd(child.address, n)
        try:
            cpu0 = child.cpu()
            result = crowd.run(args.senders, args.window, seconds, warmup)
            server_cpu = (child.cpu() - cpu0) / (result.seconds + warmup)
            rss = child.rss_kib()
        finally:
            child.close()  # stop the server first: n clients quitting one by one is not what we measure
            crowd.close()
    return {
        "clients": n, "server": "chatlab " + kind if kind != "asyncio" else "asyncio reference",
        "selector": kind, "messages_sent_per_s": result.sent / result.seconds if result.seconds else None,
        **delivery_row(result, server_cpu, rss),
    }


def _notes(args: argparse.Namespace, rows: list[dict[str, Any]]) -> list[str]:
    busy = [r for r in rows if r["driver_cpu"] and r["driver_cpu"] > 0.85]
    return [
        "Delivered/s counts every copy: one message to a room of N is N deliveries (the sender's own copy included).",
        "Latency is from the sender's send() to a sender's recv() of the copy, measured by the load generator; it "
        f"includes the load generator's own delays. With {args.senders} x {args.window} messages in flight the "
        "servers are saturated, so latency is mostly queueing (Little's law: in flight / throughput).",
        f"Two cores: the server has one, the load generator (also Python) the other. {len(busy)} of {len(rows)} runs "
        "had the load generator above 85% of its core, so there the figure is partly the load generator's limit; "
        "'server us/delivery' (server CPU seconds per delivery) is the fairer efficiency figure.",
        "'join s' is the set-up: N clients joining, each join announced to everyone already in the room "
        "(N^2/2 notices).",
    ]


def _verdicts(sc: Scenario, rows: list[dict[str, Any]]) -> None:
    for n in (100, 500):
        target = f"chatlab epoll >= asyncio reference at {n} clients"
        r = next((x for x in rows if x["clients"] == n and x["selector"] == "epoll"), {})
        if r.get("ratio_to_asyncio") is None:
            sc.verdict(target, None, "not measured", "run with --clients including this size and both servers")
            continue
        ok = r["ratio_to_asyncio"] >= 1.0
        ref = next(x for x in rows if x["clients"] == n and x["selector"] == "asyncio")
        sc.verdict(target, ok, f"{r['deliveries_per_s']:,.0f} vs {ref['deliveries_per_s']:,.0f} delivered/s = "
                               f"{r['ratio_to_asyncio']:.2f}x", "" if ok else _why_slower(r, ref))


def _why_slower(r: dict[str, Any], ref: dict[str, Any]) -> str:
    if r["server_cpu_us_per_delivery"] and ref["server_cpu_us_per_delivery"]:
        return (f"chatlab spends {r['server_cpu_us_per_delivery']:.1f} us of CPU per delivery vs asyncio's "
                f"{ref['server_cpu_us_per_delivery']:.1f}: queue, ask select() for writability, then send, where "
                "asyncio tries send() at once")
    return "see the table"


def plot(rows: list[dict[str, Any]], path: Path, reference: str = "asyncio", what: str = "messages",
         room: str = "clients in the room", title: str = "fan-out throughput") -> Path:
    """Deliveries/s and p99 latency against room size, one line per server; the reference dashed."""
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for server in dict.fromkeys(r["server"] for r in rows):
        mine = [r for r in rows if r["server"] == server]
        style = "--" if reference in server else "-"
        a1.plot([r["clients"] for r in mine], [r["deliveries_per_s"] for r in mine], style, marker="o", label=server)
        a2.plot([r["clients"] for r in mine], [r["latency_p99_ms"] or 0 for r in mine], style, marker="o", label=server)
    for axes in (a1, a2):
        axes.set_xscale("log")
        axes.set_xlabel(room)
        axes.legend(fontsize=8)
    a1.set_ylabel(f"{what} delivered per second")
    a1.set_title(title)
    a1.set_ylim(bottom=0)
    a2.set_yscale("log")
    a2.set_ylabel("p99 latency, ms (log)")
    a2.set_title("send -> delivery, p99 (saturated)")
    return save_figure(fig, path)
