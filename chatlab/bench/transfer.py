"""``bench transfer``: how fast a file moves, against the physical limit, nc, rsync and magic-wormhole.

On loopback, each method moves the same file and is timed the same way.  The
headline rows, run in turns (rep 1 of each, then rep 2...) so that the load
of the moment hits them alike:

* the tools a user would pick instead (:mod:`chatlab.bench.peers`): plain
  **nc** (no check at all), **nc through socat** (a relay in C), **nc +
  sha256sum on both ends** in the same pipelines (the careful user),
  **rsync** to a local daemon (``--whole-file``, ``--checksum`` off and on)
  and **magic-wormhole** with its own mailbox server and transit relay
  (direct and relayed transit); each skipped, with the reason, when missing;
* **chatlab direct**: ``send_file(via="direct")``: the offer through a chatlab
  server, the bytes over a second connection straight to the receiver
  (``socket.sendfile`` -> ``recv_into``); sender, server and receiver are
  three processes;
* **chatlab via server, adaptive**: client -> chatlab server -> client, every
  one its own process;
* **chatlab via server, one process**: the same with the server and both
  clients in this one process (the notebook case: one GIL for all three).

Around them: a plain ``sendall`` loop (memory -> discard) and
``socket.sendfile`` file -> file, the most Python gets through a socket, and
the ``sleep`` and ``fixed`` strategies through the server.

Every chatlab row is file on disk to file on disk, SHA-256 verified by the
receiving chatlab client (the sender hashes while it reads: no pass over the
file before the offer).  Seconds are wall time from the sending call to the
receiver's confirmation; the median of ``--reps`` runs.  While each chatlab
transfer runs, the sender says a short chat line every ``--probe-ms`` and
waits for the server's echo: that round trip is the chat RTT.  The CPU time
each process used is recorded per run, and where a goal is not met, one more
run is profiled with py-spy (when installed) and the busiest functions printed.

Then the same strategies go through the link emulator (the sender's link:
``--rate-mbit``, ``--rtt-ms``) to the server, and the output says how close
each comes to the link rate and what its chat RTT does meanwhile.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..client import Client
from ..core.protocol import ChatMessage
from ..events import FileReceived
from ..server import Server
from ..stats import median, percentile
from .common import (
    Child,
    MiB,
    Scenario,
    human_bytes,
    iter_progress,
    make_file,
    parse_size,
    proc_cpu_seconds,
    pyplot,
    save_figure,
    table,
    write_csv,
)
from .peers import (
    NC,
    NC_SHA,
    PEERS,
    RSYNC,
    RSYNC_SUM,
    SOCAT,
    WORMHOLE,
    WORMHOLE_RELAY,
    Peer,
    Result,
)
from .probes import ChatProbe
from .profiling import profile_run, py_spy

STRATEGIES = ("sleep", "fixed", "adaptive")
DIRECT, RELAYED, ONE_PROCESS = "chatlab direct", "chatlab via server, adaptive", "chatlab via server, one process"
HEADLINE = (NC, SOCAT, NC_SHA, RSYNC, RSYNC_SUM, WORMHOLE, WORMHOLE_RELAY, DIRECT, RELAYED, ONE_PROCESS)
GOALS = {DIRECT: 0.9, RELAYED: 0.5, ONE_PROCESS: 0.3}  # x plain nc
PEER_KEYS = {NC: "nc", SOCAT: "socat", NC_SHA: "nc-sha256", RSYNC: "rsync", RSYNC_SUM: "rsync", WORMHOLE: "wormhole",
             WORMHOLE_RELAY: "wormhole"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=parse_size, default=None,
                        help="file size on loopback (default 256MiB; --quick 32MiB)")
    parser.add_argument("--sleep-size", type=parse_size, default=None,
                        help="file size for the sleep strategy, which is slow by design (default 8MiB; --quick 2MiB)")
    parser.add_argument("--reps", type=int, default=None,
                        help="runs per method; the median counts (default 3; --quick 1)")
    parser.add_argument("--netem-size", type=parse_size, default=None,
                        help="file size through the link emulator (default 24MiB; --quick 4MiB)")
    parser.add_argument("--rate-mbit", type=float, default=50.0, help="emulated link rate (default 50 Mbit/s)")
    parser.add_argument("--rtt-ms", type=float, default=40.0, help="emulated round-trip time (default 40 ms)")
    parser.add_argument("--no-netem", action="store_true", help="skip the link-emulator part")
    parser.add_argument("--probe-ms", type=float, default=10.0,
                        help="one chat probe every this many ms during transfers (default 10)")
    parser.add_argument("--peers", default="nc,socat,nc-sha256,rsync,wormhole",
                        help="the other tools to time beside chatlab (default nc,socat,nc-sha256,rsync,wormhole)")
    parser.add_argument("--no-profile", dest="profile", action="store_false",
                        help="no py-spy profile of an extra run where a goal is not met")


def _defaults(args: argparse.Namespace) -> None:
    quick = args.quick
    if args.size is None:
        args.size = 32 * MiB if quick else 256 * MiB
    if args.sleep_size is None:
        args.sleep_size = 2 * MiB if quick else 8 * MiB
    if args.reps is None:
        args.reps = 1 if quick else 3
    if args.netem_size is None:
        args.netem_size = 4 * MiB if quick else 24 * MiB


def sha256_path(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------- the methods


def time_raw(sink: Child, size: int) -> float:
    """A plain sendall loop from memory; the sink discards and answers one byte at EOF."""
    block = memoryview(os.urandom(1 * MiB))
    with socket.create_connection(sink.address) as s:
        t0 = time.perf_counter()
        left = size
        while left > 0:
            n = min(left, len(block))
            s.sendall(block[:n])
            left -= n
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        seconds = time.perf_counter() - t0
    sink.read()
    return seconds


def time_sendfile(sink: Child, source: Path, target: Path) -> float:
    with socket.create_connection(sink.address) as s, open(source, "rb") as f:
        t0 = time.perf_counter()
        s.sendall(f"FILE {target}\n".encode())
        s.sendfile(f)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        seconds = time.perf_counter() - t0
    sink.read()
    return seconds


def time_chatlab(client: Client, to: str, receiver: Child | Client, source: Path, strategy: str, probe_interval: float,
                 timeout: float, via: str = "server", cpu_pids: dict[str, int | str] | None = None) -> dict[str, Any]:
    """One chatlab transfer with chat probes; returns seconds (wall and engine), chat RTTs, the receiver's report.

    ``receiver`` is a receiver process, or a client in this process (the one-process case).
    ``cpu_pids`` names the processes whose CPU seconds this run used are recorded.
    """
    cpu_before = {name: proc_cpu_seconds(pid) or 0.0 for name, pid in (cpu_pids or {}).items()}
    with ChatProbe(client, probe_interval) as probe:
        t0 = time.perf_counter()
        transfer = client.send_file(source, to=to, strategy=strategy, via=via)
        stats = transfer.wait(timeout)
        seconds = time.perf_counter() - t0
    cpu = {f"cpu_{name}": (proc_cpu_seconds(pid) or 0.0) - cpu_before[name] for name, pid in (cpu_pids or {}).items()}
    if isinstance(receiver, Client):
        event = receiver.wait_for(FileReceived, timeout=30)
        report = {"event": "received", "path": str(event.path), "sha256": event.sha256}
    else:
        report = receiver.read(timeout=30)
    if report.get("event") != "received":
        raise RuntimeError(f"the receiver reported {report}")
    path = Path(report["path"])
    try:
        path.unlink()
    except OSError:
        pass
    return {"seconds": seconds, "engine_seconds": stats.seconds, "bytes": stats.bytes, "sha256": report["sha256"],
            "rtts": probe.rtts_ms, "lost": probe.lost, "trace": transfer.trace, "via": transfer.via, **cpu}


# ----------------------------------------------------------------- run


class TransferBench:
    """One ``bench transfer`` run: the files, the processes and the rows, measured step by step."""

    def __init__(self, args: argparse.Namespace, out_dir: Path) -> None:
        self.args, self.out_dir = args, out_dir
        self.size, self.reps, self.probe = args.size, args.reps, args.probe_ms / 1000
        self.work = Path(tempfile.mkdtemp(prefix="chatlab-bench-transfer-"))
        self.big = make_file(self.work / "big.bin", self.size)
        self.small = make_file(self.work / "small.bin", min(args.sleep_size, self.size))
        self.digests = {self.big: sha256_path(self.big), self.small: sha256_path(self.small)}
        self.inbox = self.work / "inbox"
        self.inbox.mkdir()
        self.rows: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.profiles: dict[str, str] = {}
        wanted = {w.strip() for w in args.peers.split(",") if w.strip()}
        self.peers = [peer for peer in PEERS if PEER_KEYS[peer.name] in wanted]
        self.skipped = {peer.name: why for peer in self.peers if (why := peer.missing())}
        self.server: Child | None = None
        self.receiver: Child | None = None
        self.alice: Client | None = None
        self.local_server: Server | None = None
        self.local: list[Client] = []
        ready = len(self.peers) - len(self.skipped)
        steps = 2 * self.reps + (2 + len(STRATEGIES)) * self.reps + ready * self.reps
        self._step = iter(iter_progress(range(steps), "transfer", total=steps, enabled=args.progress))

    def tick(self) -> None:
        next(self._step, None)

    def row(self, method: str, nbytes: int, times: list[float], verified: str, **extra: Any) -> dict[str, Any]:
        secs = median(times) or float("nan")
        r = {"method": method, "path": "loopback", "bytes": nbytes, "reps": len(times), "seconds": secs,
             "mb_per_s": nbytes / secs / 1e6 if secs else None, "verified": verified, **extra}
        self.rows.append(r)
        return r

    def copy_checked(self, copy: Callable[[Path], Any]) -> tuple[Any, bool]:
        """One copy of the big file to a target, checked by SHA-256 afterwards and removed."""
        target = self.work / "copy.out"
        try:
            result = copy(target)
            ok = sha256_path(target) == self.digests[self.big]
        finally:
            target.unlink(missing_ok=True)
        self.tick()
        return result, ok

    def chatlab_row(self, method: str, source: Path, runs: list[dict[str, Any]]) -> None:
        nbytes = source.stat().st_size
        ok = all(r["sha256"] == self.digests[source] and r["bytes"] == nbytes for r in runs)
        rtts = [x for r in runs for x in r["rtts"]]
        engine = median([r["engine_seconds"] for r in runs]) or float("nan")
        cpu = _median_cpu(runs)
        self.row(method, nbytes, [r["seconds"] for r in runs], "sha256 by receiver" if ok else "MISMATCH",
                 engine_mb_per_s=nbytes / engine / 1e6 if engine else None,
                 chat_p50_ms=percentile(rtts, 50), chat_p99_ms=percentile(rtts, 99), chat_samples=len(rtts),
                 chat_lost=sum(r["lost"] for r in runs), via=",".join(sorted({r["via"] for r in runs})), **cpu)

    # -- the steps ------------------------------------------------------

    def baselines(self) -> None:
        """raw sendall (memory -> discard) and socket.sendfile (file -> file)."""
        with Child("sink") as sink:
            times = []
            for _ in range(self.reps):
                times.append(time_raw(sink, self.size))
                self.tick()
            self.row("raw sendall (memory -> discard)", self.size, times, "n/a (no file)")
            copies = [self.copy_checked(lambda target: time_sendfile(sink, self.big, target)) for _ in range(self.reps)]
            self.row("socket.sendfile (file -> file)", self.size, [c[0] for c in copies],
                     "sha256 after" if all(c[1] for c in copies) else "MISMATCH")

    def start(self) -> None:
        """The chatlab processes: a server, a receiver, and alice here; a one-process server and two clients."""
        self.server = Child("server", "--selector", "select")
        self.receiver = Child("receiver", "--port", str(self.server.port), "--dir", str(self.inbox), "--nick", "bob")
        self.alice = Client.connect(self.server.address, nick="alice")
        self.local_server = Server(port=0, flood_limit=None).start()  # the one-process case: all three in here
        self.local.append(Client.connect(self.local_server.address, nick="bob", download_dir=self.inbox))
        self.local.append(Client.connect(self.local_server.address, nick="alice"))

    def runners(self) -> dict[str, Callable[[], dict[str, Any]]]:
        assert self.server is not None and self.receiver is not None and self.alice is not None
        alice, receiver, big, probe = self.alice, self.receiver, self.big, self.probe
        pids: dict[str, int | str] = {"sender": os.getpid(), "server": self.server.pid, "receiver": receiver.pid}
        timeout = 60 + self.size / 1e6
        return {
            DIRECT: lambda: time_chatlab(alice, "bob", receiver, big, "adaptive", probe, timeout, via="direct",
                                         cpu_pids=pids),
            RELAYED: lambda: time_chatlab(alice, "bob", receiver, big, "adaptive", probe, timeout, cpu_pids=pids),
            ONE_PROCESS: lambda: time_chatlab(self.local[1], "bob", self.local[0], big, "adaptive", probe, timeout,
                                              cpu_pids={"process": "self"}),
        }

    def headline(self) -> None:
        """The peers and chatlab's three headline rows, in turns: rep 1 of each, then rep 2..."""
        copies: dict[str, list[tuple[Result, bool]]] = {peer.name: [] for peer in self.peers}
        runs: dict[str, list[dict[str, Any]]] = {DIRECT: [], RELAYED: [], ONE_PROCESS: []}
        runners = self.runners()
        for _ in range(self.reps):
            for peer in self.peers:
                if peer.name not in self.skipped:
                    copies[peer.name].append(self.peer_copy(peer))
            for method, runner in runners.items():
                runs[method].append(runner())
                self.tick()
        for peer in self.peers:
            self.peer_row(peer.name, copies[peer.name])
        for method, done in runs.items():
            self.chatlab_row(method, self.big, done)

    def peer_copy(self, peer: Peer) -> tuple[Result, bool]:
        def copy(target: Path) -> Result:
            return peer.run(self.big, target, self.digests[self.big])

        result: tuple[Result, bool] = self.copy_checked(copy)
        return result

    def peer_row(self, name: str, copies: list[tuple[Result, bool]]) -> None:
        if name in self.skipped:
            self.notes.append(f"{name} skipped: {self.skipped[name]}.")
            self.rows.append({"method": name, "path": "loopback", "bytes": self.size, "reps": 0,
                              "verified": f"skipped: {self.skipped[name]}"})
            return
        ok = all(c[1] and c[0].verified != "MISMATCH" for c in copies)
        self.row(name, self.size, [c[0].seconds for c in copies], copies[0][0].verified if ok else "MISMATCH")

    def strategies(self) -> None:
        """The sleep and fixed strategies through the server (sleep on the small file: it is slow by design)."""
        assert self.server is not None and self.receiver is not None and self.alice is not None
        pids: dict[str, int | str] = {"sender": os.getpid(), "server": self.server.pid, "receiver": self.receiver.pid}
        for strategy in ("sleep", "fixed"):
            source = self.small if strategy == "sleep" else self.big
            runs = []
            for _ in range(self.reps):
                runs.append(time_chatlab(self.alice, "bob", self.receiver, source, strategy, self.probe,
                                         60 + source.stat().st_size / 1e6, cpu_pids=pids))
                self.tick()
            self.chatlab_row(f"chatlab via server, {strategy}", source, runs)

    def rate(self, method: str) -> float | None:
        return next((r.get("mb_per_s") for r in self.rows if r["method"] == method and r["path"] == "loopback"), None)

    def profile_misses(self) -> None:
        """Where a chatlab row misses its goal, py-spy samples one more run of it."""
        nc_rate = self.rate(NC)
        if not (nc_rate and self.args.profile):
            return
        if py_spy() is None:
            self.notes.append("py-spy is not installed (pip install py-spy, the bench extra): the rows that miss "
                              "their goal are not profiled.")
            return
        assert self.server is not None and self.receiver is not None
        runners = self.runners()
        for method, goal in GOALS.items():
            rate = self.rate(method)
            if rate is None or rate / nc_rate >= goal:
                continue
            spied = {"process": os.getpid()} if method == ONE_PROCESS else \
                {"sender": os.getpid(), "receiver": self.receiver.pid,
                 **({} if method == DIRECT else {"server": self.server.pid})}
            name = method.replace("chatlab ", "").replace(", ", "-").replace(" ", "-")
            path = self.out_dir / f"transfer-profile-{name}.txt"
            self.profiles[method] = profile_run(runners[method], spied, self.size / rate / 1e6 * 1.5, path)
            path.write_text(f"{method}: py-spy, one more run\n{self.profiles[method]}\n")

    def close(self) -> None:
        for client in [self.alice, *self.local]:
            if client is not None:
                client.close()
        if self.local_server is not None:
            self.local_server.stop()
        for child in (self.receiver, self.server):
            if child is not None:
                child.close()
        shutil.rmtree(self.work, ignore_errors=True)


def _median_cpu(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """Each process's CPU seconds, the median over the runs."""
    keys = [k for k in runs[0] if k.startswith("cpu_")] if runs else []
    return {k: median([r[k] for r in runs]) for k in keys}


def run(args: argparse.Namespace, out_dir: Path) -> Scenario:
    _defaults(args)
    sc = Scenario("transfer", "File transfer: chatlab vs the physical limit, nc, rsync and magic-wormhole")
    bench = TransferBench(args, out_dir)
    print(f"transfer: {human_bytes(args.size)} file on loopback, file to file, median of {args.reps} run(s); "
          f"the sleep strategy moves {human_bytes(bench.small.stat().st_size)} (it is slow by design)", flush=True)
    netem_rows: list[dict[str, Any]] = []
    traces: dict[str, Any] = {}
    try:
        bench.baselines()
        bench.start()
        bench.headline()
        bench.strategies()
        bench.profile_misses()
        if not args.no_netem:
            netem_rows, traces = run_netem(args, bench.work, bench.inbox, bench.probe)
            bench.rows.extend(netem_rows)
    finally:
        bench.close()
    rows = bench.rows
    by = _ratios(rows)
    sc.rows = rows
    _print_tables(by, rows, netem_rows, bench.profiles, args)
    _verdicts(sc, by, netem_rows, args, bench.profiles)
    sc.notes += bench.notes + NOTES
    sc.errors += [f"{r['method']} ({r['path']}): the copy is not the file"
                  for r in rows if r.get("verified") == "MISMATCH"]
    sc.files.append(write_csv(out_dir / "transfer.csv", rows))
    sc.files.append(plot(rows, netem_rows, traces, args, out_dir / "transfer.png"))
    return sc


def _ratios(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each loopback row's ratio to raw sendall and to plain nc; the loopback rows by method."""
    by = {r["method"]: r for r in rows if r["path"] == "loopback"}
    raw = by.get("raw sendall (memory -> discard)", {}).get("mb_per_s")
    nc_rate = by.get(NC, {}).get("mb_per_s")
    for r in by.values():
        if r.get("mb_per_s"):
            r["ratio_to_raw"] = r["mb_per_s"] / raw if raw else None
            r["ratio_to_nc"] = r["mb_per_s"] / nc_rate if nc_rate else None
    return by


def _print_tables(by: dict[str, dict[str, Any]], rows: list[dict[str, Any]], netem_rows: list[dict[str, Any]],
                  profiles: dict[str, str], args: argparse.Namespace) -> None:
    print()
    headline_rows = [dict(by[m], goal=f">= {GOALS[m]:g}x nc" if m in GOALS else "") for m in HEADLINE if m in by]
    table(headline_rows, [("method", "side by side, loopback, file to file"), ("mb_per_s", "MB/s"),
                          ("ratio_to_nc", "x nc"), ("goal", "goal"), ("cpu_sender", "CPU s sender"),
                          ("cpu_server", "CPU s server"), ("cpu_receiver", "CPU s receiver"),
                          ("cpu_process", "CPU s (one process)"), ("verified", "verified")])
    for method, summary in profiles.items():
        print(f"\nWhy {method} misses its goal: py-spy, one more run, the functions each process was in most")
        print(summary)
    print()
    table([r for r in rows if r["path"] == "loopback"],
          [("method", "loopback, file to file"), ("mb_per_s", "MB/s"), ("ratio_to_raw", "x raw"),
           ("ratio_to_nc", "x nc"),
           ("engine_mb_per_s", "MB/s accept->done"), ("chat_p50_ms", "chat p50 ms"), ("chat_p99_ms", "chat p99 ms"),
           ("verified", "verified")])
    if netem_rows:
        print()
        table(netem_rows, [("method", f"through the link emulator ({args.rate_mbit:g} Mbit/s, {args.rtt_ms:g} ms RTT)"),
                           ("mb_per_s", "MB/s"), ("link_fraction", "x link rate"), ("chat_p50_ms", "chat p50 ms"),
                           ("chat_p99_ms", "chat p99 ms"), ("chat_p99_over_rtt", "p99 / RTT"),
                           ("verified", "verified")])


NOTES = [
    ("Seconds are wall time from the send call to the receiver's confirmation; for chatlab that includes the "
     "sender's SHA-256 (made while reading, no pre-pass) and the receiver's SHA-256, fsync and rename."),
    ("'chatlab direct' is send_file(via='direct'): offer and answer through the server, the bytes over a second "
     "connection (sendfile -> recv_into); 'CPU s' columns are each process's CPU time for one run (median)."),
    ("Via the server, three Python processes (sender, server, receiver) share two cores; nc is two C processes, "
     "three with socat in the middle; the careful nc user runs six (two nc, two tee, two sha256sum)."),
    ("magic-wormhole's time includes its code exchange and connection set-up (about a second at any size); it runs "
     "in a network namespace with only loopback up, with its own mailbox server and transit relay."),
    ("The sleep strategy is run on a smaller file: with its default pause (10 ms per 64 KiB chunk) it cannot go "
     "faster than 6.5 MB/s, whatever the link; that is the point it makes."),
]


def run_netem(args: argparse.Namespace, work: Path, inbox: Path,
              probe: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each strategy through the server, the sender behind an emulated link."""
    rows: list[dict[str, Any]] = []
    traces: dict[str, Any] = {}
    link_rate = args.rate_mbit * 1e6 / 8
    rtt = args.rtt_ms / 1000
    source = make_file(work / "netem.bin", args.netem_size)
    digest = sha256_path(source)
    try:
        with Child("server", "--selector", "select") as server, \
                Child("netem", "--port", str(server.port), "--delay-ms", str(args.rtt_ms / 2),
                      "--rate-mbit", str(args.rate_mbit)) as link, \
                Child("receiver", "--port", str(server.port), "--dir", str(inbox), "--nick", "bob") as receiver:
            for strategy in iter_progress(STRATEGIES, f"transfer through {args.rate_mbit:g} Mbit/s, {args.rtt_ms:g} ms",
                                          enabled=args.progress):
                # A fresh connection per strategy: nothing queued from the previous one.
                with Client.connect(link.address, nick=f"alice_{strategy}") as alice:
                    idle = []
                    for _ in range(5):  # the chat RTT with no transfer: the link's own
                        t0 = time.perf_counter()
                        alice.say("idle")
                        alice.wait_for(ChatMessage, timeout=5, predicate=lambda m: m.text == "idle")
                        idle.append((time.perf_counter() - t0) * 1000)
                    r = time_chatlab(alice, "bob", receiver, source, strategy, probe, 120 + args.netem_size / 1e5)
                engine_rate = r["bytes"] / r["engine_seconds"] if r["engine_seconds"] else 0.0
                p99 = percentile(r["rtts"], 99)
                rows.append({"method": f"chatlab via server, {strategy}",
                             "path": f"netem {args.rate_mbit:g}Mbit/{args.rtt_ms:g}ms",
                             "bytes": r["bytes"], "reps": 1, "seconds": r["engine_seconds"],
                             "mb_per_s": engine_rate / 1e6,
                             "link_fraction": engine_rate / link_rate, "idle_chat_rtt_ms": median(idle),
                             "chat_p50_ms": percentile(r["rtts"], 50), "chat_p99_ms": p99,
                             "chat_p99_over_rtt": p99 / (rtt * 1000) if p99 else None, "chat_samples": len(r["rtts"]),
                             "chat_lost": r["lost"],
                             "verified": "sha256 by receiver" if r["sha256"] == digest else "MISMATCH"})
                traces[strategy] = r["trace"]
    finally:
        source.unlink(missing_ok=True)
    return rows, traces




WHY_NOT = {
    DIRECT: "both ends hash the file (SHA-256, in threads beside sendfile() and recv_into) and the receiver writes "
            "through Python and fsyncs before it renames; nc does none of that, and on two shared cores those passes "
            "compete with the copying itself (docs/PERFORMANCE.md)",
    RELAYED: "every byte crosses three Python processes on two cores and is hashed twice; nc hashes nothing",
    ONE_PROCESS: "server, sender and receiver share one interpreter: one GIL for the framing, the relay, both hashes "
                 "and the writes",
}
OTHER_TOOLS = (RSYNC, RSYNC_SUM, WORMHOLE, WORMHOLE_RELAY)
WHY_BEHIND = ("rsync moves the bytes in C and checks them with a cheap whole-file checksum (xxh128 where both ends "
              "have it), where chatlab hashes with SHA-256 on both ends: on two shared cores the hashing is what "
              "chatlab's CPU goes to (docs/PERFORMANCE.md, where each microsecond per MB goes)")


def _rate(by: dict[str, dict[str, Any]], method: str) -> float | None:
    rate: float | None = by.get(method, {}).get("mb_per_s")
    return rate


def _verdicts(sc: Scenario, by: dict[str, dict[str, Any]], netem_rows: list[dict[str, Any]],
              args: argparse.Namespace, profiles: dict[str, str]) -> None:
    nc_rate = _rate(by, NC)
    for method, goal in GOALS.items():
        _goal_verdict(sc, method, goal, _rate(by, method), nc_rate, method in profiles, args)
    socat_rate, relayed = _rate(by, SOCAT), _rate(by, RELAYED)
    if relayed is not None:
        sc.verdict(f"{RELAYED} >= {SOCAT}", None if socat_rate is None else relayed >= socat_rate,
                   f"{relayed:.0f} vs {socat_rate or 0:.0f} MB/s"
                   + (f" = {relayed / socat_rate:.2f}x" if socat_rate else ""),
                   "socat is not measured here (not installed, or left out with --peers)" if socat_rate is None else
                   "" if relayed >= socat_rate else "socat relays in C without framing, acks or hashing")
    _ahead_verdicts(sc, by)
    careful, direct = _rate(by, NC_SHA), _rate(by, DIRECT)
    if careful and direct:
        sc.info(f"{DIRECT} (verifies as it goes) vs {NC_SHA}",
                f"{direct:.0f} vs {careful:.0f} MB/s = {direct / careful:.2f}x")
    _chat_verdict(sc, by.get(RELAYED, {}))
    _netem_verdicts(sc, netem_rows, args)


def _ahead_verdicts(sc: Scenario, by: dict[str, dict[str, Any]]) -> None:
    """chatlab direct and relayed against the fastest of rsync and magic-wormhole in this run."""
    tools = {m: r for m in OTHER_TOOLS if (r := _rate(by, m))}
    best = max(tools, key=lambda m: tools[m], default=None)
    for method in (DIRECT, RELAYED):
        rate = _rate(by, method)
        if rate is None:
            continue
        target = f"{method} ahead of rsync and magic-wormhole"
        if best is None:
            sc.verdict(target, None, f"{rate:.0f} MB/s", "rsync and magic-wormhole were not measured (see the notes)")
            continue
        sc.verdict(target, rate > tools[best],
                   f"{rate:.0f} MB/s vs {best} {tools[best]:.0f} MB/s = {rate / tools[best]:.2f}x",
                   "" if rate > tools[best] else WHY_BEHIND if best.startswith("rsync") else WHY_NOT[method])


def _goal_verdict(sc: Scenario, method: str, goal: float, rate: float | None, nc_rate: float | None, profiled: bool,
                  args: argparse.Namespace) -> None:
    target = f"{method} >= {goal:g}x nc (loopback, file to file)"
    if nc_rate is None:
        sc.verdict(target, None, f"{rate or 0:.0f} MB/s",
                   "plain nc was not measured (not OpenBSD netcat, not installed or left out with --peers): "
                   "nothing to compare with")
        return
    if rate is None:
        return
    ratio = rate / nc_rate
    why = "" if ratio >= goal else WHY_NOT[method]
    if why and profiled:
        why += "; the py-spy profile of one more run is printed above and saved next to the CSV"
    elif why and args.profile and py_spy() is None:
        why += "; no profile (py-spy is not installed)"
    sc.verdict(target, ratio >= goal, f"{rate:.0f} MB/s vs nc {nc_rate:.0f} MB/s = {ratio:.2f}x", why)


def _chat_verdict(sc: Scenario, adaptive: dict[str, Any]) -> None:
    p99 = adaptive.get("chat_p99_ms")
    if p99 is None:
        return
    sc.verdict("chat p99 during a loopback transfer < 10 ms", p99 < 10.0,
               f"p50 {adaptive['chat_p50_ms']:.1f} ms, p99 {p99:.1f} ms "
               f"({adaptive['chat_samples']} probes, adaptive via server)",
               "" if p99 < 10 else "the chat line waits behind the chunks already in the kernel's socket buffers "
               "and in the server's queue to the receiver; the priority writer only orders what is still in the client")


def _netem_verdicts(sc: Scenario, netem_rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    for r in netem_rows:
        if not r["method"].endswith("adaptive"):
            sc.info(f"{r['method'].split(', ')[-1]} through the link",
                    f"{r['link_fraction'] * 100:.0f}% of the link rate, chat p99 {r['chat_p99_ms']:.0f} ms"
                    if r["chat_p99_ms"] else "no chat samples")
            continue
        frac = r["link_fraction"]
        sc.verdict(f"adaptive through a {args.rate_mbit:g} Mbit/s, {args.rtt_ms:g} ms link >= 90% of the link rate",
                   frac >= 0.9, f"{frac * 100:.1f}% ({r['mb_per_s']:.2f} of {args.rate_mbit / 8:.2f} MB/s)",
                   "" if frac >= 0.9 else "the window grows one chunk per RTT after slow start; a short file spends "
                   "a good part of its time ramping up")
        near, p99 = 1.5 * args.rtt_ms, r["chat_p99_ms"]
        sc.verdict(f"chat p99 over that link stays near the RTT (<= 1.5 x {args.rtt_ms:g} ms)",
                   p99 is not None and p99 <= near,
                   f"p50 {r['chat_p50_ms']:.0f} ms, p99 {p99:.0f} ms (idle {r['idle_chat_rtt_ms']:.0f} ms)" if p99 else
                   "no chat samples", "" if p99 and p99 <= near else
                   "the chat line queues behind file bytes in the sender's socket buffer and the link's queue")


def plot(rows: list[dict[str, Any]], netem_rows: list[dict[str, Any]], traces: dict[str, Any], args: argparse.Namespace,
         path: Path) -> Path:
    plt = pyplot()
    ncols = 3 if netem_rows else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6.5 * ncols, 5.5), squeeze=False)
    _plot_loopback(axes[0][0], [r for r in rows if r["path"] == "loopback" and r.get("mb_per_s")], args)
    if netem_rows:
        _plot_netem_chat(axes[0][1], netem_rows, args)
        _plot_netem_progress(axes[0][2], traces)
    return save_figure(fig, path)


def _plot_loopback(ax: Any, loop: list[dict[str, Any]], args: argparse.Namespace) -> None:
    values = [r["mb_per_s"] for r in loop]
    colors = ["#999999" if not r["method"].startswith("chatlab") else "#1f77b4" if "direct" in r["method"]
              else "#d62728" for r in loop]
    ax.barh(range(len(loop)), values, color=colors)
    ax.set_yticks(range(len(loop)), [r["method"] for r in loop], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("MB/s (log scale)")
    ax.set_title(f"loopback, {human_bytes(args.size)} file to file")
    for i, r in enumerate(loop):
        label = f" {r['mb_per_s']:.0f} MB/s" + (f", {r['ratio_to_nc']:.2f}x nc" if r.get("ratio_to_nc") else "")
        ax.text(r["mb_per_s"], i, label, va="center", fontsize=7)
    if values:
        ax.set_xlim(right=max(values) * 20)


def _plot_netem_chat(ax: Any, netem_rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    labels = [r["method"].split(", ")[-1] for r in netem_rows]
    x = range(len(netem_rows))
    ax.bar([i - 0.2 for i in x], [r["chat_p50_ms"] or 0 for r in netem_rows], width=0.4, label="chat p50")
    ax.bar([i + 0.2 for i in x], [r["chat_p99_ms"] or 0 for r in netem_rows], width=0.4, label="chat p99")
    ax.axhline(args.rtt_ms, color="k", ls="--", lw=1, label=f"RTT {args.rtt_ms:g} ms")
    ax.set_xticks(list(x), [f"{lab}\n{r['link_fraction'] * 100:.0f}% of link" for lab, r in zip(labels, netem_rows)])
    ax.set_yscale("log")
    ax.set_ylabel("chat round trip, ms (log)")
    ax.set_title(f"through {args.rate_mbit:g} Mbit/s, {args.rtt_ms:g} ms RTT")
    ax.legend(fontsize=8)


def _plot_netem_progress(ax: Any, traces: dict[str, Any]) -> None:
    for name, trace in traces.items():
        if trace:
            t0 = trace[0].time
            ax.plot([row.time - t0 for row in trace], [row.bytes_acked / MiB for row in trace], label=name)
    ax.set_xlabel("seconds since accept")
    ax.set_ylabel("MiB acknowledged")
    ax.set_title("progress through the emulated link")
    ax.legend(fontsize=8)
