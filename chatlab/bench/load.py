"""``bench load``: many clients, nothing lost; slow and dead peers dropped without slowing the others.

Two kinds of measurement, both against a real chatlab server on loopback:

* **Load** (:func:`run_load`).  ``clients`` raw non-blocking sockets, driven by
  one selector loop in this process (no thread per client, so a thousand are
  cheap), join rooms of ``room_size`` and each send ``messages`` chat lines.
  Every line carries its sender, a sequence number and the time it was sent,
  so each receiver checks that it got every line of its room exactly once and
  in each sender's order, and the latency of each delivery is known.  Each
  client keeps at most ``window`` of its own lines unconfirmed (its own echo
  confirms one): a closed loop, so the figures measure the server, not a
  queue the generator built up in front of it.  A second run per backend
  offers a fixed rate instead (``--rate``): its latency is the one to quote.
  The server runs in a child process by default (its own interpreter, its
  own core: :func:`~chatlab.bench.common.server_child`) or in a thread.

* **Slow and dead peers** (:mod:`chatlab.bench.slowpeers`): a never-reader,
  two slowloris peers and a vanished one; how long the server takes to drop
  each, and the chat latency of the others meanwhile.

A line lost, duplicated, out of order, forged or misrouted, or a bad peer
not dropped, is an error: the command exits with status 1.  ``--quick`` runs
small sizes in about twenty seconds.  Files: ``load.csv``, ``slow_peers.csv``.
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..core import protocol as p
from ..server import FD_SETSIZE, SELECTORS, Server
from ..stats import percentile
from .common import Child, Scenario, available_selectors, raise_nofile_limit, server_child, table, write_csv
from .slowpeers import run_slow_peers

MS = 1e-6  # nanoseconds -> milliseconds


@dataclass
class LoadResult:
    """What one load run measured.  ``lost``, ``duplicates``, ``out_of_order``,
    ``forged``, ``misrouted`` and ``errors`` must all be 0."""

    backend: str
    server: str  # "process" or "thread"
    clients: int
    room_size: int
    messages: int  # per client
    window: int
    rate: float = 0.0  # offered lines/s (0: as fast as the window allows)
    sent: int = 0
    expected: int = 0  # deliveries: every member of a room gets every line said in it, its own included
    received: int = 0  # distinct deliveries
    lost: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    forged: int = 0  # a line whose sender field is not the nick that sent it
    misrouted: int = 0  # a line delivered outside its room
    errors: int = 0  # ERROR frames the server sent
    refused: int = 0  # clients that never got in
    connect_s: float = 0.0
    seconds: float = 0.0  # from the first line sent to the last delivery
    msgs_per_s: float = 0.0  # lines sent per second
    deliveries_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    peak_queued: int = 0
    server_rss_mb: float = 0.0
    driver_cpu: float = 0.0  # this process's CPU share while sending (the server's too when it runs in a thread)
    error_texts: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.refused == 0 and self.sent == self.clients * self.messages and not (
            self.lost or self.duplicates or self.out_of_order or self.forged or self.misrouted or self.errors)

    def row(self) -> dict[str, Any]:
        row = asdict(self)
        row["error_texts"] = "; ".join(self.error_texts[:3])
        return row


class _Peer:
    __slots__ = ("index", "nick", "room", "sock", "decoder", "out", "writing", "connected", "joined",
                 "sent", "echoed", "next_seq", "ahead", "closed")

    def __init__(self, index: int, room: str, sock: socket.socket) -> None:
        self.index = index
        self.nick = f"u{index}"
        self.room = room
        self.sock = sock
        self.decoder = p.MessageDecoder()
        self.out = bytearray()
        self.writing = False
        self.connected = False
        self.joined = False
        self.sent = 0
        self.echoed = 0
        self.next_seq: dict[int, int] = {}  # sender index -> next sequence number expected
        self.ahead: dict[int, set[int]] = {}  # sender index -> numbers that came early
        self.closed = False


class LoadGenerator:
    """``clients`` raw sockets in one selector loop.  Use :func:`run_load`."""

    def __init__(self, address: tuple[str, int], clients: int, room_size: int, messages: int, window: int = 4,
                 text_size: int = 0, idle_timeout: float = 15.0, rate: float | None = None) -> None:
        self.address = address
        self.clients = clients
        self.room_size = max(1, room_size)
        self.messages = messages
        self.window = max(1, window)
        self.padding = "x" * max(0, text_size)
        self.idle_timeout = idle_timeout
        self.rate = rate  # lines/s from all clients together; None: each sends its next once its window allows
        self.selector = selectors.DefaultSelector()
        self.peers: list[_Peer] = []
        self.latencies_ns: list[int] = []
        self.errors: list[str] = []
        self.forged = self.misrouted = self.duplicates = self.out_of_order = 0
        self.delivered = 0  # distinct deliveries
        self.refused = 0
        self.last_progress = time.monotonic()
        self.handlers: dict[type, Callable[[_Peer, Any, int], None]] = {
            p.ChatMessage: self._on_chat, p.Notice: self._on_notice, p.Ping: self._on_ping,
            p.ErrorMessage: self._on_error,
        }

    def room_of(self, index: int) -> str:
        return f"r{index // self.room_size}"

    def members(self, room_number: int) -> int:
        return max(0, min(self.room_size, self.clients - room_number * self.room_size))

    @property
    def expected(self) -> int:
        rooms = (self.clients + self.room_size - 1) // self.room_size
        return sum(self.members(r) ** 2 * self.messages for r in range(rooms))

    # -- sockets ---------------------------------------------------------

    def _interest(self, peer: _Peer) -> int:
        return selectors.EVENT_READ | (selectors.EVENT_WRITE if peer.out or not peer.connected else 0)

    def _write(self, peer: _Peer, data: bytes) -> None:
        peer.out += data
        if peer.connected:
            self._flush(peer)

    def _flush(self, peer: _Peer) -> None:
        if peer.out and not peer.closed:
            try:
                sent = peer.sock.send(peer.out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._drop(peer, f"send failed: {exc}")
                return
            del peer.out[:sent]
        want = bool(peer.out)
        if want != peer.writing and not peer.closed:
            peer.writing = want
            self.selector.modify(peer.sock, self._interest(peer), peer)

    def _drop(self, peer: _Peer, why: str) -> None:
        if not peer.closed:
            peer.closed = True
            if not peer.joined:
                self.refused += 1
            self.errors.append(f"{peer.nick}: {why}")
            self.selector.unregister(peer.sock)
            peer.sock.close()

    def connect_all(self, timeout: float = 60.0) -> float:
        """Connect every client, introduce it and move it to its room; returns the seconds it took."""
        start = time.monotonic()
        for index in range(self.clients):
            sock = socket.socket(socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = _Peer(index, self.room_of(index), sock)
            self.peers.append(peer)
            sock.connect_ex(self.address)
            peer.writing = True
            self.selector.register(sock, self._interest(peer), peer)
            if index % 64 == 63:  # let the server accept as we go, so its listen queue never overflows
                self._poll(0)
        deadline = start + timeout
        while any(not (peer.joined or peer.closed) for peer in self.peers):
            if time.monotonic() > deadline:
                for peer in self.peers:
                    if not peer.joined:
                        self._drop(peer, "not in its room in time")
                break
            self._poll(0.05)
        return time.monotonic() - start

    def _poll(self, timeout: float) -> None:
        for key, mask in self.selector.select(timeout):
            peer: _Peer = key.data
            if peer.closed:
                continue
            if not peer.connected and mask & selectors.EVENT_WRITE:
                error = peer.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    self._drop(peer, f"connect failed: {os.strerror(error)}")
                    continue
                peer.connected = True
                hello = p.encode(p.Hello(peer.nick)) + p.encode(p.Join(peer.room))  # pipelined: lobby stays empty
                self._write(peer, hello)
                continue
            if mask & selectors.EVENT_READ:
                self._read(peer)
            if mask & selectors.EVENT_WRITE and not peer.closed:
                self._flush(peer)

    def _read(self, peer: _Peer) -> None:
        try:
            data = peer.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._drop(peer, f"recv failed: {exc}")
            return
        if not data:
            self._drop(peer, "closed by the server")
            return
        peer.decoder.feed(data)
        now = time.monotonic_ns()
        try:
            for message in peer.decoder:
                handler = self.handlers.get(type(message))
                if handler is not None:
                    handler(peer, message, now)
        except p.RemoteProtocolError as exc:
            self._drop(peer, f"garbage from the server: {exc}")

    def _on_notice(self, peer: _Peer, notice: p.Notice, now: int) -> None:
        if notice.kind == "join" and notice.nick == peer.nick and notice.room == peer.room:
            peer.joined = True

    def _on_ping(self, peer: _Peer, ping: p.Ping, now: int) -> None:
        self._write(peer, p.encode(p.Pong(ping.token)))

    def _on_error(self, peer: _Peer, error: p.ErrorMessage, now: int) -> None:
        self.errors.append(f"{peer.nick}: {error.text}")

    def _on_chat(self, peer: _Peer, message: p.ChatMessage, now: int) -> None:
        # The text is the generator's own: "SENDER:SEQ:SENT_NS:padding" (see _send_more).
        sender_text, seq_text, sent_text = message.text.split(":", 3)[:3]
        sender, seq = int(sender_text), int(seq_text)
        self.latencies_ns.append(now - int(sent_text))
        if message.sender != f"u{sender}":
            self.forged += 1
        if message.room != peer.room or self.room_of(sender) != peer.room:
            self.misrouted += 1
        self._check_order(peer, sender, seq)
        self.last_progress = time.monotonic()
        if sender == peer.index:
            peer.echoed += 1
            if self.rate is None:
                self._send_more(peer)

    def _check_order(self, peer: _Peer, sender: int, seq: int) -> None:
        """Count line ``seq`` of ``sender`` as delivered, duplicated or early."""
        expected = peer.next_seq.get(sender, 0)
        if seq == expected:
            expected += 1
            ahead = peer.ahead.get(sender)
            while ahead and expected in ahead:
                ahead.discard(expected)
                expected += 1
            peer.next_seq[sender] = expected
            self.delivered += 1
        elif seq < expected or seq in peer.ahead.get(sender, ()):
            self.duplicates += 1
        else:
            self.out_of_order += 1
            peer.ahead.setdefault(sender, set()).add(seq)
            self.delivered += 1

    def _send_more(self, peer: _Peer, most: int | None = None) -> None:
        batch = bytearray()
        most = self.window if most is None else most
        while peer.sent < self.messages and peer.sent - peer.echoed < self.window and most > 0:
            most -= 1
            text = f"{peer.index}:{peer.sent}:{time.monotonic_ns()}:{self.padding}"
            batch += p.encode(p.Say(text))
            peer.sent += 1
        if batch:
            self._write(peer, bytes(batch))

    def run(self) -> float:
        """Every client sends its lines; returns when all are delivered or nothing moved for ``idle_timeout``."""
        start = time.monotonic()
        self.last_progress = start
        live = [peer for peer in self.peers if not peer.closed]
        if self.rate is None:
            for peer in live:
                self._send_more(peer)
        pacer = _Pacer(live, self.rate, self.messages, start) if self.rate is not None else None
        expected = self.expected
        while self.delivered < expected:
            busy = pacer is not None and pacer.issue(self._send_more)
            self._poll(0.001 if busy else 0.05)
            if time.monotonic() - self.last_progress > self.idle_timeout:
                break
        return time.monotonic() - start

    def close(self) -> None:
        for peer in self.peers:
            if not peer.closed:
                peer.closed = True
                try:
                    self.selector.unregister(peer.sock)
                except (KeyError, ValueError):
                    pass
                peer.sock.close()
        self.selector.close()




class _Pacer:
    """Open loop: lines leave at ``rate`` per second in all, the clients taking turns."""

    def __init__(self, live: list[_Peer], rate: float, messages: int, start: float) -> None:
        self.live, self.rate, self.start = live, rate, start
        self.total = len(live) * messages
        self.issued = self.turn = 0

    def issue(self, send_more: Callable[[_Peer, int], None]) -> bool:
        """Send the lines due by now; True while some are still to come (poll briefly)."""
        if self.issued >= self.total:
            return False
        due = min(self.total, int(self.rate * (time.monotonic() - self.start)) + 1)
        tries = 0
        while self.issued < due and tries < len(self.live):  # a peer with a full window is skipped
            peer = self.live[self.turn % len(self.live)]
            self.turn += 1
            before = peer.sent
            send_more(peer, 1)
            if peer.sent > before:
                self.issued, tries = self.issued + 1, 0
            else:
                tries += 1
        return self.issued < self.total


# ======================================================================
# One load run
# ======================================================================


class _Host:
    """The server under load: in a thread of this process, or in a child process of its own."""

    def __init__(self, where: str, clients: int, backend: str) -> None:
        limits: dict[str, Any] = {"max_clients": clients + 16, "backlog": min(max(clients, 128), 4096)}  # room for all
        self.server: Server | None = None
        self.child: Child | None = None
        if where == "thread":
            self.server = Server(port=0, selector=backend, flood_limit=None, max_rooms=clients + 16, **limits).start()
            self.address = self.server.address
        else:
            self.child = server_child(backend, **limits)
            self.address = self.child.address

    def stop(self) -> tuple[int, float]:
        """Stop the server; returns (peak bytes queued, peak RSS in MiB)."""
        if self.server is not None:
            self.server.stop()
            return self.server.peak_queued, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        assert self.child is not None
        try:
            stats = self.child.ask("stats", timeout=10)
        except (RuntimeError, TimeoutError):  # it died: the generator has said why
            stats = {}
        finally:
            self.child.close()
        return int(stats.get("peak_queued", 0)), float(stats.get("VmHWM", 0)) / 1024


def run_load(clients: int = 200, messages: int = 20, room_size: int = 10, backend: str = "select", *,
             server: str = "process", window: int = 4, text_size: int = 0, rate: float | None = None,
             connect_timeout: float = 60.0, idle_timeout: float = 15.0) -> LoadResult:
    """One load run against a fresh server (``server``: "process" or "thread").  See the module docstring."""
    raise_nofile_limit(clients * (2 if server == "thread" else 1) + 256)
    result = LoadResult(backend, server, clients, room_size, messages, window, rate or 0.0)
    host = _Host(server, clients, backend)
    generator = LoadGenerator(host.address, clients, room_size, messages, window, text_size, idle_timeout, rate)
    try:
        result.connect_s = generator.connect_all(connect_timeout)
        result.refused = generator.refused
        cpu0 = time.process_time()
        result.seconds = generator.run()
        result.driver_cpu = (time.process_time() - cpu0) / result.seconds if result.seconds > 0 else 0.0
        result.sent = sum(peer.sent for peer in generator.peers)
    finally:
        generator.close()
        peak_queued, rss_mib = host.stop()
    result.peak_queued, result.server_rss_mb = peak_queued, rss_mib
    _tally(result, generator)
    return result


def _tally(result: LoadResult, generator: LoadGenerator) -> None:
    """Fill ``result`` from what the generator counted."""
    result.expected = generator.expected
    result.received = generator.delivered
    result.lost = result.expected - result.received
    result.duplicates, result.out_of_order = generator.duplicates, generator.out_of_order
    result.forged, result.misrouted = generator.forged, generator.misrouted
    result.error_texts = generator.errors
    result.errors = len(generator.errors) - result.refused
    if result.seconds > 0:
        result.msgs_per_s = result.sent / result.seconds
        result.deliveries_per_s = result.received / result.seconds
    latencies = generator.latencies_ns
    if latencies:
        result.p50_ms = (percentile(latencies, 50) or 0.0) * MS
        result.p99_ms = (percentile(latencies, 99) or 0.0) * MS
        result.max_ms = max(latencies) * MS


# ======================================================================
# The scenario: python -m chatlab bench load
# ======================================================================

LOAD_COLUMNS = [
    ("backend", "backend"), ("clients", "clients"), ("room_size", "room"), ("offered", "offered"),
    ("sent", "sent"), ("expected", "expected"), ("received", "received"), ("lost", "lost"),
    ("duplicates", "dup"), ("out_of_order", "ooo"), ("forged", "forged"), ("misrouted", "misr"),
    ("msgs_per_s", "msgs/s"), ("deliveries_per_s", "deliv/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
    ("driver_cpu", "gen CPU"), ("connect_s", "connect s"),
]
SLOW_COLUMNS = [
    ("scenario", "scenario"), ("detail", "detail"), ("dropped_after_s", "dropped after s"),
    ("baseline_p50_ms", "base p50 ms"), ("during_p50_ms", "during p50 ms"), ("during_p99_ms", "during p99 ms"),
    ("peak_queued", "peak queued B"), ("reason", "reason"),
]
SELECT_CLIENTS, OTHER_CLIENTS = 200, 1000  # select() stops at FD_SETSIZE; the others go on


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", nargs="+", default=None, choices=list(SELECTORS),
                        help="server backends to load (default: select and epoll where available)")
    parser.add_argument("--clients", type=int, default=0,
                        help=f"clients for every backend (default: {SELECT_CLIENTS} select, {OTHER_CLIENTS:,} others)")
    parser.add_argument("--messages", type=int, default=None,
                        help="lines each client sends, as fast as its window allows (default 50; 10 with --quick)")
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="lines/s offered by all clients together in the second run of each backend, about half "
                             "of what select() sustains on two cores: its latency is the one to quote (default 1000; "
                             "0 skips it)")
    parser.add_argument("--room-size", type=int, default=20, help="clients per room (default 20)")
    parser.add_argument("--window", type=int, default=4, help="a client's lines in flight at once (default 4)")
    parser.add_argument("--text-size", type=int, default=0, help="extra characters in each line")
    parser.add_argument("--server", choices=["process", "thread"], default="process",
                        help="run the server in a child process (default; its own core) or in a thread of this one")
    parser.add_argument("--no-slow", action="store_true", help="skip the slow-peer scenarios")
    parser.add_argument("--no-load", action="store_true", help="skip the load runs")


def run(args: argparse.Namespace, out: Path) -> Scenario:
    sc = Scenario("load", "Reliability under load")
    backends = args.backend or [b for b in ("select", "epoll") if b in available_selectors()]
    print(f"load: {os.cpu_count()} CPUs; select() takes descriptors below {FD_SETSIZE}; "
          f"server in a {args.server}", flush=True)
    if not args.no_load:
        _load_runs(sc, args, backends, out)
    if not args.no_slow:
        _slow_peers(sc, args, backends[0], out)
    return sc


def _plans(args: argparse.Namespace, backends: list[str]) -> Iterator[tuple[str, int, int, float | None]]:
    """(backend, clients, lines per client, rate): for each backend a closed-loop run, then one at a fixed rate."""
    messages = args.messages or (10 if args.quick else 50)
    for backend in backends:
        clients = args.clients or (SELECT_CLIENTS if backend == "select" else OTHER_CLIENTS)
        yield backend, clients, messages, None
        if args.rate > 0:
            yield backend, clients, 2 if args.quick else 10, args.rate


def _load_runs(sc: Scenario, args: argparse.Namespace, backends: list[str], out: Path) -> None:
    rows = []
    for backend, clients, messages, rate in _plans(args, backends):
        offered = f"at {rate:,.0f} lines/s" if rate else f"as fast as a window of {args.window} allows"
        print(f"load: {clients} clients on {backend}, rooms of {args.room_size}, {messages} lines each, {offered} ...",
              flush=True)
        result = run_load(clients, messages, args.room_size, backend, server=args.server, window=args.window,
                          text_size=args.text_size, rate=rate)
        row = result.row()
        row["offered"] = f"{rate:,.0f}/s" if rate else "max"
        rows.append(row)
        target = f"{clients:,} clients on {backend} ({row['offered']}): every line once, in order, to its room only"
        measured = (f"{result.received:,} of {result.expected:,} deliveries; lost {result.lost}, dup "
                    f"{result.duplicates}, ooo {result.out_of_order}, forged {result.forged}, misrouted "
                    f"{result.misrouted}, refused {result.refused}")
        sc.verdict(target, result.ok, measured, "" if result.ok else "; ".join(result.error_texts[:3]))
        if not result.ok:
            sc.errors.append(f"{target}: {measured}")
        if rate:
            sc.info(f"latency at {rate:,.0f} lines/s offered, {clients:,} clients on {backend}",
                    f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms")
    print()
    table(rows, LOAD_COLUMNS)
    sc.rows += rows
    sc.notes.append(f"offered: 'max' = each client sends its next line once one of its last {args.window} came back "
                    "(throughput; latency is then mostly queueing), or a fixed rate for all (the latency to quote). "
                    "lost, dup, ooo (out of order), forged and misr (misrouted) must be 0. 'gen CPU' is the load "
                    "generator's share of a core (it decodes every frame with the protocol's decoder): near 1, "
                    "'max' is partly its limit, not the server's.")
    sc.files.append(write_csv(out / "load.csv", rows))


def _slow_peers(sc: Scenario, args: argparse.Namespace, backend: str, out: Path) -> None:
    quick = args.quick
    print("\nslow and dead peers (a server in a thread; latency = one line from probe_a to probe_b) ...", flush=True)
    slow = run_slow_peers(backend=backend, max_queue=512 * 1024 if quick else 2 * 1024 * 1024,
                          hello_timeout=2.0 if quick else 5.0, ping_interval=1.0 if quick else 3.0,
                          ping_timeout=2.0 if quick else 5.0, trickle_interval=0.5 if quick else 1.0,
                          samples=50 if quick else 200)
    rows = [r.row() for r in slow]
    print()
    table(rows, SLOW_COLUMNS)
    for r in slow:
        target = f"{r.scenario} ({r.detail}) is dropped"
        measured = f"after {r.dropped_after_s:.1f} s" if r.dropped else "not dropped"
        sc.verdict(target, r.dropped, measured, r.reason)
        if not r.dropped:
            sc.errors.append(f"{target}: {measured}")
    sc.files.append(write_csv(out / "slow_peers.csv", rows))
