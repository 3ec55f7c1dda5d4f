"""``bench chat``: chat round trips during a transfer, priority writer vs FIFO writer.

The sender's link goes through the link emulator (``--rate-mbit``,
``--rtt-ms``), where a file sender's bytes really pile up.  While the file
goes out, the sender says a line every ``--probe-ms`` and times the server's
echo.  With the priority writer (chatlab's client) a chat frame goes before
any file chunk still waiting in the client; with the FIFO writer
(``Client(priority_writer=False)``, the naive design) it waits behind them.
The window strategies decide how many chunks can be waiting: ``fixed`` with
a large window (``--chunks``) shows the difference most, ``adaptive`` keeps
few chunks waiting either way.  A third writer row, ``priority, no unsent
limit``, connects with ``unsent_limit=None``: the kernel may then queue
megabytes of file data, ahead of which no writer can put a chat line.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from ..client import Client
from ..core.protocol import ChatMessage
from ..stats import median, percentile
from .common import (
    Child,
    MiB,
    Scenario,
    iter_progress,
    make_file,
    parse_size,
    pyplot,
    save_figure,
    server_child,
    table,
    write_csv,
)
from .transfer import ChatProbe, sha256_path

WRITERS = ("priority", "fifo", "priority, no unsent limit")
STRATEGIES = ("fixed", "adaptive")
COLUMNS = [("strategy", "strategy"), ("writer", "writer"), ("idle_rtt_ms", "idle RTT ms"),
           ("chat_p50_ms", "chat p50 ms"), ("chat_p99_ms", "chat p99 ms"), ("chat_max_ms", "max ms"),
           ("samples", "probes"), ("link_fraction", "x link rate")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=parse_size, default=None, help="file size (default 12MiB; --quick 3MiB)")
    parser.add_argument("--rate-mbit", type=float, default=50.0, help="the sender's link rate (default 50 Mbit/s)")
    parser.add_argument("--rtt-ms", type=float, default=40.0, help="the sender's link round trip (default 40 ms)")
    parser.add_argument("--chunks", type=int, default=32,
                        help="window of the fixed strategy, in 64 KiB chunks (default 32)")
    parser.add_argument("--probe-ms", type=float, default=20.0, help="one chat probe every this many ms (default 20)")


def run(args: argparse.Namespace, out_dir: Path) -> Scenario:
    size = args.size or (3 * MiB if args.quick else 12 * MiB)
    sc = Scenario("chat", "Chat during a transfer: priority writer vs FIFO writer")
    cases = [(strategy, writer) for strategy in STRATEGIES for writer in WRITERS]
    print(f"chat: {size / MiB:g} MiB through a {args.rate_mbit:g} Mbit/s, {args.rtt_ms:g} ms link; a chat probe every "
          f"{args.probe_ms:g} ms; fixed window {args.chunks} chunks", flush=True)
    work = Path(tempfile.mkdtemp(prefix="chatlab-bench-chat-"))
    inbox = work / "inbox"
    inbox.mkdir()
    source = make_file(work / "file.bin", size)
    rows: list[dict[str, Any]] = []
    samples: dict[str, list[float]] = {}
    try:
        with server_child("select") as server, \
                Child("netem", "--port", str(server.port), "--delay-ms", str(args.rtt_ms / 2),
                      "--rate-mbit", str(args.rate_mbit)) as link, \
                Child("receiver", "--port", str(server.port), "--dir", str(inbox), "--nick", "bob") as receiver:
            run_one = _Case(args, link, receiver, source, sha256_path(source))
            for k, (strategy, writer) in enumerate(iter_progress(cases, "chat", total=len(cases),
                                                                 enabled=args.progress)):
                row, rtts = run_one(k, strategy, writer)
                rows.append(row)
                samples[f"{strategy}, {writer}"] = rtts
    finally:
        source.unlink(missing_ok=True)
        for f in inbox.iterdir():
            f.unlink()
        inbox.rmdir()
        work.rmdir()
    sc.rows = rows
    print()
    table(rows, COLUMNS)
    _compare(sc, rows)
    sc.notes += [
        "The chat RTT is the sender's own line coming back from the server, so it crosses the emulated link twice; "
        "'idle RTT' is the same with no transfer running.",
        "The priority writer orders only what is still in the client. Chunks already handed to the kernel and to "
        "the link's queue are ahead of the chat line either way: the window strategy bounds those. chatlab's client "
        "keeps at most 128 KiB unsent in the kernel (TCP_NOTSENT_LOWAT, Linux and macOS), so most released chunks "
        "still wait in the client, where chat overtakes them; 'no unsent limit' shows the OS default, where the "
        "kernel takes megabytes and the priority writer has nothing left to reorder.",
    ]
    sc.files.append(write_csv(out_dir / "chat.csv", rows))
    sc.files.append(plot(samples, args, out_dir / "chat.png"))
    return sc


class _Case:
    """One (strategy, writer) case: a fresh sender through the link, idle RTTs, then the transfer with probes."""

    def __init__(self, args: argparse.Namespace, link: Child, receiver: Child, source: Path, digest: str) -> None:
        self.args, self.link, self.receiver, self.source, self.digest = args, link, receiver, source, digest

    def __call__(self, k: int, strategy: str, writer: str) -> tuple[dict[str, Any], list[float]]:
        args = self.args
        limit = {"unsent_limit": None} if writer.endswith("no unsent limit") else {}
        options = {"chunks": args.chunks} if strategy == "fixed" else {}
        with Client.connect(self.link.address, nick=f"alice{k}", priority_writer=writer.startswith("priority"),
                            **limit) as alice:  # type: ignore[arg-type]
            idle = idle_rtts(alice)
            with ChatProbe(alice, args.probe_ms / 1000) as probe:
                transfer = alice.send_file(self.source, to="bob", strategy=strategy, **options)
                stats = transfer.wait(120 + self.source.stat().st_size / 1e5)
        report = self.receiver.read(30)
        Path(report.get("path", self.source.parent / "none")).unlink(missing_ok=True)
        rtts = probe.rtts_ms
        row = {
            "strategy": strategy + (f" ({args.chunks} chunks)" if strategy == "fixed" else ""), "writer": writer,
            "link": f"{args.rate_mbit:g} Mbit/s, {args.rtt_ms:g} ms", "idle_rtt_ms": median(idle),
            "chat_p50_ms": percentile(rtts, 50), "chat_p99_ms": percentile(rtts, 99),
            "chat_max_ms": max(rtts) if rtts else None, "samples": len(rtts), "lost": probe.lost,
            "mb_per_s": stats.mb_per_s, "link_fraction": stats.mb_per_s * 1e6 / (args.rate_mbit * 1e6 / 8),
            "verified": "sha256 by receiver" if report.get("sha256") == self.digest else f"FAILED {report}",
        }
        return row, rtts


def idle_rtts(client: Client, n: int = 5) -> list[float]:
    """``n`` chat round trips (ms) with nothing else going on: the link's own."""
    idle = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.say("idle")
        client.wait_for(ChatMessage, timeout=5, predicate=lambda m: m.text == "idle")
        idle.append((time.perf_counter() - t0) * 1000)
    return idle


def _compare(sc: Scenario, rows: list[dict[str, Any]]) -> None:
    for strategy in STRATEGIES:
        pr = next(r for r in rows if r["strategy"].startswith(strategy) and r["writer"] == "priority")
        for other in WRITERS[1:]:
            ot = next(r for r in rows if r["strategy"].startswith(strategy) and r["writer"] == other)
            if pr["chat_p99_ms"] and ot["chat_p99_ms"]:
                sc.info(f"{pr['strategy']}: chat p99, chatlab's priority writer vs {other}",
                        f"{pr['chat_p99_ms']:.0f} ms vs {ot['chat_p99_ms']:.0f} ms "
                        f"({ot['chat_p99_ms'] / pr['chat_p99_ms']:.1f}x)")


def plot(samples: dict[str, list[float]], args: argparse.Namespace, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name, values in samples.items():
        if values:
            data = sorted(values)
            ax.plot(data, [(i + 1) / len(data) for i in range(len(data))], label=name,
                    ls="-" if "priority" in name else "--", lw=1 if "no unsent limit" in name else 2)
    ax.axvline(args.rtt_ms, color="k", ls=":", lw=1, label=f"link RTT {args.rtt_ms:g} ms")
    ax.set_xscale("log")
    ax.set_xlabel("chat round trip during the transfer, ms (log)")
    ax.set_ylabel("fraction of probes")
    ax.set_title(f"chat during a transfer, {args.rate_mbit:g} Mbit/s, {args.rtt_ms:g} ms")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
