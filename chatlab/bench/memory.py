"""``bench memory``: server memory while relaying a file to a slow receiver.

A chatlab client sends a file through a chatlab server (its own process) to
a receiver that reads only ``--rate`` bytes per second (a raw socket that
speaks the protocol, acks every chunk and checks the SHA-256 in memory).
The server must not store what the receiver cannot take yet: it stops
reading the sender while the receiver's queue is above ``relay_high_water``,
so the queue never holds more than ``relay_high_water`` plus one frame,
whatever the file size.  We sample the server's resident memory during the
relay, read its peak (VmHWM, reset before each run) and ``peak_queued``,
and compare them with that bound for each strategy.
"""

from __future__ import annotations

import argparse
import hashlib
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TypeVar

from ..client import Client
from ..core import protocol as p
from ..core.transfer import DEFAULT_CHUNK_SIZE
from .common import (
    Child,
    MiB,
    Scenario,
    human_bytes,
    iter_progress,
    make_file,
    parse_rate,
    parse_size,
    proc_status,
    pyplot,
    save_figure,
    server_child,
    table,
    write_csv,
)

HIGH_WATER = 1024 * 1024  # the server's default relay_high_water
FRAME = p.HEADER_SIZE + p.CHUNK_PREFIX.size + DEFAULT_CHUNK_SIZE  # one full chunk frame
M = TypeVar("M")
SLACK = 8 * MiB  # what the interpreter may allocate besides the queue (decoder buffer, allocator, caches)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=parse_size, default=None,
                        help="file size (default 32MiB; --quick 4MiB; the claim: 1GiB)")
    parser.add_argument("--rate", type=parse_rate, default=parse_rate("4MB/s"),
                        help="the receiver's read rate (default 4MB/s)")
    parser.add_argument("--strategies", default="sleep,fixed,adaptive",
                        help="which strategies (default sleep,fixed,adaptive)")
    parser.add_argument("--high-water", type=parse_size, default=HIGH_WATER,
                        help="the server's relay_high_water (default 1MiB)")


class SlowReceiver(threading.Thread):
    """A raw client that accepts one file and reads it at ``rate`` bytes/s."""

    def __init__(self, address: tuple[str, int], nick: str, rate: float) -> None:
        super().__init__(name=f"slow-{nick}", daemon=True)
        self.sock = socket.create_connection(address, timeout=30)
        self.nick = nick
        self.rate = rate
        self.decoder = p.MessageDecoder()
        self.received = 0
        self.sha256 = ""
        self.ok: bool | None = None
        self.error = ""
        self.sock.sendall(p.encode(p.Hello(nick)))
        self._expect(p.Welcome)

    def _messages(self, limit: int = 65536) -> list[p.Message]:
        data = self.sock.recv(limit)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.decoder.feed(data)
        return list(self.decoder)

    def _expect(self, kind: type[M]) -> M:
        while True:
            for m in self._messages():
                if isinstance(m, kind):
                    return m

    def run(self) -> None:
        try:
            offer = self._expect(p.FileOffer)
            self.sock.sendall(p.encode(p.FileAccept(offer.stream_id, 0)))
            self._receive(offer)
        except Exception as exc:  # noqa: BLE001 - reported by the benchmark
            self.ok = False
            self.error = f"{type(exc).__name__}: {exc}"

    def _receive(self, offer: p.FileOffer) -> None:
        sid = offer.stream_id
        digest = hashlib.sha256()
        started = time.monotonic()
        while True:
            # Token bucket: by now we may have read rate * elapsed bytes.
            allowed = int(self.rate * (time.monotonic() - started)) - self.received - self.decoder.frames.buffered
            if allowed < 4096:
                time.sleep(0.01)
                continue
            acks = []
            for m in self._messages(min(allowed, 65536)):
                if isinstance(m, p.FileChunk):
                    digest.update(m.data)
                    self.received += len(m.data)
                    acks.append(p.encode(p.FileAck(sid, self.received)))
                elif isinstance(m, p.FileDone):
                    self.sha256 = digest.hexdigest()
                    # the digest comes with the offer, or at the end with the sender's FILE_DONE
                    self.ok = self.sha256 == (offer.sha256 or m.sha256) and self.received == offer.size
                    self.sock.sendall(b"".join(acks) + p.encode(p.FileDone(sid)))
                    return
                elif isinstance(m, p.FileCancel):
                    raise RuntimeError(f"the sender cancelled: {m}")
            if acks:
                self.sock.sendall(b"".join(acks))

    def close(self) -> None:
        self.sock.close()


COLUMNS = [("strategy", "strategy"), ("file_bytes", "file bytes"), ("achieved_mb_per_s", "MB/s"),
           ("peak_queued", "peak queued B"), ("queue_bound", "bound B"), ("rss_growth_mib", "RSS growth MiB"),
           ("peak_rss_mib", "peak RSS MiB"), ("verified", "verified")]


def _runs(strategies: list[str], size: int) -> list[tuple[str, int]]:
    """(strategy, file size) for each run: the sleep strategy, the pressure case, also at a quarter of the size,
    to show that the peak does not depend on the size."""
    runs = []
    for strategy in strategies:
        if strategy == "sleep" and size >= 4 * 4 * MiB:
            runs.append((strategy, size // 4))
        runs.append((strategy, size))
    return runs


def run(args: argparse.Namespace, out_dir: Path) -> Scenario:
    size = args.size or (4 * MiB if args.quick else 32 * MiB)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    bound = args.high_water + FRAME
    sc = Scenario("memory", "Memory: relaying to a slow receiver")
    runs = _runs(strategies, size)
    est = sum(n for _, n in runs) / args.rate
    print(f"memory: {human_bytes(size)} to a receiver reading {args.rate / 1e6:g} MB/s, strategies "
          f"{', '.join(strategies)} (about {est:.0f} s); relay_high_water {human_bytes(args.high_water)}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="chatlab-bench-memory-"))
    rows: list[dict[str, Any]] = []
    timelines: dict[str, list[tuple[float, float]]] = {}
    files: dict[int, Path] = {}
    try:
        for n in sorted({n for _, n in runs}):
            files[n] = make_file(work / f"file-{n}.bin", n)
        with server_child("select", high_water=args.high_water) as server:
            for k, (strategy, n) in enumerate(iter_progress(runs, "memory", total=len(runs), enabled=args.progress)):
                row, timeline = _relay(server, k, strategy, files[n], args.rate, bound)
                rows.append(row)
                timelines[f"{strategy}, {human_bytes(n)}"] = timeline
    finally:
        for f in files.values():
            f.unlink(missing_ok=True)
        work.rmdir()  # empty now
    sc.rows = rows
    print()
    table(rows, COLUMNS)
    _verdicts(sc, rows, bound)
    sc.notes += [
        "The bound is the design's promise: the server stops reading a sender while its receiver's queue holds more "
        f"than relay_high_water ({human_bytes(args.high_water)}), so at most one more frame ({FRAME:,} B) gets in.",
        "RSS is the server process's resident memory (VmRSS / VmHWM); 8 MiB of slack covers the decoder's buffer and "
        "the allocator keeping freed memory. The kernel's socket buffers are not in it.",
        "The full claim is a 1 GiB file: python -m chatlab bench memory --size 1GiB (at 4 MB/s that is 4.5 min per "
        "strategy).",
    ]
    sc.files.append(write_csv(out_dir / "memory.csv", rows))
    sc.files.append(plot(timelines, rows, out_dir / "memory.png"))
    return sc


def _relay(server: Child, k: int, strategy: str, source: Path, rate: float,
           bound: int) -> tuple[dict[str, Any], list[tuple[float, float]]]:
    """One file through the server to a slow receiver: the row, and the server's RSS (MiB) against time."""
    reset = server.ask("reset")
    time.sleep(0.05)
    baseline = proc_status(server.pid).get("VmRSS", 0)
    receiver = SlowReceiver(server.address, f"slow{k}", rate)
    timeline: list[tuple[float, float]] = []
    with Client.connect(server.address, nick=f"sender{k}") as sender:
        t0 = time.monotonic()
        transfer = sender.send_file(source, to=receiver.nick, strategy=strategy)
        receiver.start()
        while receiver.is_alive():
            timeline.append((time.monotonic() - t0, proc_status(server.pid).get("VmRSS", 0) / 1024))
            receiver.join(0.1)
        seconds = time.monotonic() - t0
        try:
            transfer.wait(30)
        except Exception as exc:  # noqa: BLE001 - reported in the row
            receiver.error = receiver.error or f"sender: {exc}"
    receiver.close()
    stats = server.ask("stats")
    hwm = stats.get("VmHWM", 0)
    growth = (hwm - baseline) / 1024 if reset.get("reset") else None
    growth_bound = (bound + SLACK) / MiB
    row = {
        "strategy": strategy, "file_bytes": source.stat().st_size, "receiver_mb_per_s": rate / 1e6,
        "achieved_mb_per_s": receiver.received / seconds / 1e6 if seconds else None,
        "seconds": seconds, "peak_queued": stats["peak_queued"], "queue_bound": bound,
        "within_queue_bound": stats["peak_queued"] <= bound,
        "baseline_rss_mib": baseline / 1024, "peak_rss_mib": hwm / 1024,
        "rss_growth_mib": growth, "rss_growth_bound_mib": growth_bound,
        "verified": "sha256 in receiver" if receiver.ok else f"FAILED {receiver.error}",
        "within_rss_bound": growth is not None and growth <= growth_bound,
    }
    return row, timeline


def _verdicts(sc: Scenario, rows: list[dict[str, Any]], bound: int) -> None:
    worst_q = max(rows, key=lambda r: r["peak_queued"])
    within = all(r["within_queue_bound"] for r in rows)
    sc.verdict("server queue stays within relay_high_water + one frame, whatever the file size", within,
               f"worst {worst_q['peak_queued']:,} B ({worst_q['strategy']}, {human_bytes(worst_q['file_bytes'])}) "
               f"<= {bound:,} B" if worst_q["within_queue_bound"] else f"{worst_q['peak_queued']:,} B > {bound:,} B",
               "" if within else "the relay's backpressure let the queue grow past the mark")
    target = "server peak RSS growth stays within that bound + 8 MiB of interpreter slack"
    growth = [r for r in rows if r["rss_growth_mib"] is not None]
    if growth:
        worst = max(growth, key=lambda r: r["rss_growth_mib"])
        ok = all(r["within_rss_bound"] for r in growth)
        sc.verdict(target, ok, f"worst +{worst['rss_growth_mib']:.1f} MiB ({worst['strategy']}, "
                               f"{human_bytes(worst['file_bytes'])} file) vs {worst['rss_growth_bound_mib']:.1f} MiB",
                   "" if ok else "the server's memory grew with the transfer")
    else:
        sc.verdict(target, None, "no VmHWM reset",
                   "this kernel does not let a process reset its peak RSS (/proc/self/clear_refs)")
    bad = [r for r in rows if not str(r["verified"]).startswith("sha256")]
    if bad:
        sc.notes.append(f"{len(bad)} transfer(s) did not verify: " + "; ".join(str(r["verified"]) for r in bad))


def plot(timelines: dict[str, list[tuple[float, float]]], rows: list[dict[str, Any]], path: Path) -> Path:
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, tl in timelines.items():
        if tl:
            a1.plot([t for t, _ in tl], [m for _, m in tl], label=name)
    if rows:
        base = min(r["baseline_rss_mib"] for r in rows)
        a1.axhline(base + rows[0]["rss_growth_bound_mib"], color="k", ls="--", lw=1,
                   label="bound (from the lowest baseline)")
    a1.set_xlabel("seconds")
    a1.set_ylabel("server RSS, MiB")
    a1.set_title("server memory while relaying to a slow receiver")
    a1.set_ylim(bottom=0)
    a1.legend(fontsize=8)
    labels = [f"{r['strategy']}\n{human_bytes(r['file_bytes'])}" for r in rows]
    a2.bar(range(len(rows)), [r["peak_queued"] / MiB for r in rows], color="#1f77b4")
    if rows:
        a2.axhline(rows[0]["queue_bound"] / MiB, color="k", ls="--", lw=1, label="relay_high_water + one frame")
    a2.set_xticks(range(len(rows)), labels, fontsize=8)
    a2.set_ylabel("peak bytes queued to the receiver, MiB")
    a2.set_title("server queue peak vs bound")
    a2.legend(fontsize=8)
    return save_figure(fig, path)
