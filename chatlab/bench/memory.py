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
from typing import Any

from ..core import protocol as p
from ..client import Client
from ..core.transfer import DEFAULT_CHUNK_SIZE
from .common import (
    MiB,
    Child,
    Scenario,
    human_bytes,
    iter_progress,
    make_file,
    parse_rate,
    parse_size,
    proc_status,
    pyplot,
    table,
    write_csv,
    save_figure,
)

HIGH_WATER = 1024 * 1024  # the server's default relay_high_water
FRAME = p.HEADER_SIZE + p.CHUNK_PREFIX.size + DEFAULT_CHUNK_SIZE  # one full chunk frame
SLACK = 8 * MiB  # what the interpreter may allocate besides the queue (decoder buffer, allocator, caches)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=parse_size, default=None, help="file size (default 32MiB; --quick 4MiB; the claim: 1GiB)")
    parser.add_argument("--rate", type=parse_rate, default=parse_rate("4MB/s"), help="the receiver's read rate (default 4MB/s)")
    parser.add_argument("--strategies", default="sleep,fixed,adaptive", help="which strategies (default sleep,fixed,adaptive)")
    parser.add_argument("--high-water", type=parse_size, default=HIGH_WATER, help="the server's relay_high_water (default 1MiB)")


class SlowReceiver(threading.Thread):
    """A raw client that accepts one file and reads it at ``rate`` bytes/s."""

    def __init__(self, address: tuple[str, int], nick: str, rate: float) -> None:
        super().__init__(name=f"slow-{nick}", daemon=True)
        self.sock = socket.create_connection(address, timeout=30)
        self.nick = nick
        self.rate = rate
        self.decoder = p.FrameDecoder()
        self.received = 0
        self.sha256 = ""
        self.ok: bool | None = None
        self.error = ""
        self.sock.sendall(p.encode(p.Hello(nick)))
        self._expect(p.Welcome)

    def _frames(self, limit: int = 65536) -> list[p.Frame]:
        data = self.sock.recv(limit)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.decoder.feed(data)
        return list(self.decoder)

    def _expect(self, kind: type) -> Any:
        while True:
            for frame in self._frames():
                m = p.decode_message(frame)
                if isinstance(m, kind):
                    return m

    def run(self) -> None:
        try:
            offer: p.FileOffer = self._expect(p.FileOffer)
            sid = offer.stream_id
            self.sock.sendall(p.encode(p.FileAccept(sid, 0)))
            digest = hashlib.sha256()
            started = time.monotonic()
            step = 0.01
            while True:
                # Token bucket: by now we may have read rate * elapsed bytes.
                allowed = int(self.rate * (time.monotonic() - started)) - self.received - self.decoder.buffered
                if allowed < 4096:
                    time.sleep(step)
                    continue
                acks = []
                for frame in self._frames(min(allowed, 65536)):
                    if frame.type is p.FrameType.FILE_CHUNK:
                        data = frame.payload[p.CHUNK_PREFIX.size:]
                        digest.update(data)
                        self.received += len(data)
                        acks.append(p.encode(p.FileAck(sid, self.received)))
                    elif frame.type is p.FrameType.FILE_DONE:
                        self.sha256 = digest.hexdigest()
                        # the digest comes with the offer, or at the end with the sender's FILE_DONE
                        expected = offer.sha256 or p.decode_message(frame).sha256  # type: ignore[union-attr]
                        self.ok = self.sha256 == expected and self.received == offer.size
                        self.sock.sendall(b"".join(acks) + p.encode(p.FileDone(sid)))
                        return
                    elif frame.type is p.FrameType.FILE_CANCEL:
                        raise RuntimeError(f"the sender cancelled: {p.decode_message(frame)}")
                if acks:
                    self.sock.sendall(b"".join(acks))
        except Exception as exc:  # noqa: BLE001 - reported by the benchmark
            self.ok = False
            self.error = f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        self.sock.close()


def run(args: argparse.Namespace, out_dir: Path) -> Scenario:
    size = args.size or (4 * MiB if args.quick else 32 * MiB)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    high_water = args.high_water
    bound = high_water + FRAME
    sc = Scenario("memory", "Memory: relaying to a slow receiver")
    runs = []
    for strategy in strategies:
        if strategy == "sleep" and size >= 4 * 4 * MiB:  # the pressure case twice: the peak must not depend on the size
            runs.append((strategy, size // 4))
        runs.append((strategy, size))
    est = sum(n for _, n in runs) / args.rate
    print(f"memory: {human_bytes(size)} to a receiver reading {args.rate / 1e6:g} MB/s, strategies {', '.join(strategies)} "
          f"(about {est:.0f} s); relay_high_water {human_bytes(high_water)}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="chatlab-bench-memory-"))
    rows: list[dict[str, Any]] = []
    timelines: dict[str, list[tuple[float, float]]] = {}
    files: dict[int, Path] = {}
    try:
        for n in sorted({n for _, n in runs}):
            files[n] = make_file(work / f"file-{n}.bin", n)
        with Child("server", "--selector", "select", "--high-water", str(high_water)) as server:
            for k, (strategy, n) in enumerate(iter_progress(runs, "memory", total=len(runs), enabled=args.progress)):
                reset = server.ask("reset")
                time.sleep(0.05)
                baseline = proc_status(server.pid).get("VmRSS", 0)
                receiver = SlowReceiver(server.address, f"slow{k}", args.rate)
                timeline: list[tuple[float, float]] = []
                with Client.connect(server.address, nick=f"sender{k}") as sender:
                    t0 = time.monotonic()
                    transfer = sender.send_file(files[n], to=receiver.nick, strategy=strategy)
                    receiver.start()
                    while receiver.is_alive():
                        timeline.append((time.monotonic() - t0, proc_status(server.pid).get("VmRSS", 0) / 1024))
                        receiver.join(0.1)
                    seconds = time.monotonic() - t0
                    try:
                        transfer.wait(30)
                    except Exception as exc:  # noqa: BLE001
                        receiver.error = receiver.error or f"sender: {exc}"
                receiver.close()
                stats = server.ask("stats")
                hwm = stats.get("VmHWM", 0)
                row = {
                    "strategy": strategy, "file_bytes": n, "receiver_mb_per_s": args.rate / 1e6,
                    "achieved_mb_per_s": receiver.received / seconds / 1e6 if seconds else None,
                    "seconds": seconds, "peak_queued": stats["peak_queued"], "queue_bound": bound,
                    "within_queue_bound": stats["peak_queued"] <= bound,
                    "baseline_rss_mib": baseline / 1024, "peak_rss_mib": hwm / 1024,
                    "rss_growth_mib": (hwm - baseline) / 1024 if reset.get("reset") else None,
                    "rss_growth_bound_mib": (bound + SLACK) / MiB,
                    "verified": "sha256 in receiver" if receiver.ok else f"FAILED {receiver.error}",
                }
                row["within_rss_bound"] = row["rss_growth_mib"] is not None and row["rss_growth_mib"] <= row["rss_growth_bound_mib"]
                rows.append(row)
                timelines[f"{strategy}, {human_bytes(n)}"] = timeline
    finally:
        for f in files.values():
            f.unlink(missing_ok=True)
        try:
            work.rmdir()
        except OSError:
            pass
    sc.rows = rows
    print()
    table(rows, [("strategy", "strategy"), ("file_bytes", "file bytes"), ("achieved_mb_per_s", "MB/s"),
                 ("peak_queued", "peak queued B"), ("queue_bound", "bound B"), ("rss_growth_mib", "RSS growth MiB"),
                 ("peak_rss_mib", "peak RSS MiB"), ("verified", "verified")])
    worst_q = max(rows, key=lambda r: r["peak_queued"])
    sc.verdict("server queue stays within relay_high_water + one frame, whatever the file size",
               all(r["within_queue_bound"] for r in rows),
               f"worst {worst_q['peak_queued']:,} B ({worst_q['strategy']}, {human_bytes(worst_q['file_bytes'])}) "
               f"<= {bound:,} B" if worst_q["within_queue_bound"] else f"{worst_q['peak_queued']:,} B > {bound:,} B",
               "" if all(r["within_queue_bound"] for r in rows) else "the relay's backpressure let the queue grow past the mark")
    growth = [r for r in rows if r["rss_growth_mib"] is not None]
    if growth:
        worst = max(growth, key=lambda r: r["rss_growth_mib"])
        ok = all(r["within_rss_bound"] for r in growth)
        sc.verdict("server peak RSS growth stays within that bound + 8 MiB of interpreter slack",
                   ok, f"worst +{worst['rss_growth_mib']:.1f} MiB ({worst['strategy']}, {human_bytes(worst['file_bytes'])} file) "
                   f"vs {worst['rss_growth_bound_mib']:.1f} MiB",
                   "" if ok else "the server's memory grew with the transfer")
    else:
        sc.verdict("server peak RSS growth stays within that bound + 8 MiB of interpreter slack", None, "no VmHWM reset",
                   "this kernel does not let a process reset its peak RSS (/proc/self/clear_refs)")
    bad = [r for r in rows if not str(r["verified"]).startswith("sha256")]
    if bad:
        sc.notes.append(f"{len(bad)} transfer(s) did not verify: " + "; ".join(str(r["verified"]) for r in bad))
    sc.notes += [
        f"The bound is the design's promise: the server stops reading a sender while its receiver's queue holds more than "
        f"relay_high_water ({human_bytes(high_water)}), so at most one more frame ({FRAME:,} B) gets in.",
        "RSS is the server process's resident memory (VmRSS / VmHWM); 8 MiB of slack covers the decoder's buffer and "
        "the allocator keeping freed memory. The kernel's socket buffers are not in it.",
        "The full claim is a 1 GiB file: python -m chatlab bench memory --size 1GiB (at 4 MB/s that is 4.5 min per strategy).",
    ]
    sc.files.append(write_csv(out_dir / "memory.csv", rows))
    sc.files.append(plot(timelines, rows, out_dir / "memory.png"))
    return sc


def plot(timelines: dict[str, list[tuple[float, float]]], rows: list[dict[str, Any]], path: Path) -> Path:
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, tl in timelines.items():
        if tl:
            a1.plot([t for t, _ in tl], [m for _, m in tl], label=name)
    if rows:
        base = min(r["baseline_rss_mib"] for r in rows)
        a1.axhline(base + rows[0]["rss_growth_bound_mib"], color="k", ls="--", lw=1, label="bound (from the lowest baseline)")
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
