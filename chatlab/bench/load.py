"""``python -m chatlab bench load``: many clients, nothing lost; slow and dead peers.

Two kinds of measurement, both against a real chatlab server on loopback:

* **Load** (:func:`run_load`).  ``clients`` raw non-blocking sockets, driven by
  one selector loop in this process (no thread per client, so a thousand are
  cheap), join rooms of ``room_size`` and each send ``messages`` chat lines.
  Every line carries its sender, a sequence number and the time it was sent,
  so each receiver checks that it got every line of its room exactly once and
  in each sender's order, and the latency of each delivery is known.  Each
  client keeps at most ``window`` of its own lines unconfirmed (its own echo
  confirms one): a closed loop, so the figures measure the server, not a
  queue the generator built up in front of it.  The server runs in a child
  process by default (its own interpreter, its own core) or in a thread.

* **Slow and dead peers** (:func:`run_slow_peers`).  Two well-behaved "probe"
  clients measure chat latency (one says, the other hears) before and while
  a misbehaving peer is connected, and we time how long the server takes to
  drop it and why:

  - *never-reader*: joins the room and never reads again; whispers fill its
    queue until it passes ``max_queue``;
  - *slowloris*: sends its HELLO one byte at a time (dropped by
    ``hello_timeout``), and a registered one trickles a frame that never
    completes (dropped by the ping timeout);
  - *vanished*: a client behind a proxy that freezes: no FIN, no RST, nothing
    more in either direction, as when a laptop's Wi-Fi drops (dropped by the
    keepalive ping).

Run ``python -m chatlab bench load --help`` for the options; ``--quick`` runs
small sizes in about twenty seconds.  A CSV of every row goes to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..core import protocol as p
from ..client import Client
from ..server import FD_SETSIZE, FloodLimit, Server, normalize_name
from .common import expected_warnings, resolve_out

CHAT, NOTICE, PING, ERROR, WELCOME = (int(t) for t in (p.FrameType.CHAT, p.FrameType.NOTICE, p.FrameType.PING,
                                                      p.FrameType.ERROR, p.FrameType.WELCOME))
MS = 1e-6  # nanoseconds -> milliseconds


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def raise_nofile_limit(needed: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards the hard limit; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = hard if hard == resource.RLIM_INFINITY else min(hard, max(needed, soft))
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft


def available_backends() -> list[str]:
    return [name for name in ("select", "poll", "epoll") if hasattr(selectors, name.capitalize() + "Selector")]


# ======================================================================
# Where the server runs: a thread of this process, or a child process
# ======================================================================


def server_options(clients: int, backend: str, **extra: Any) -> dict[str, Any]:
    """Server options for a load run: no flood limit, room for everyone."""
    options: dict[str, Any] = {
        "selector": backend,
        "flood_limit": None,
        "max_clients": clients + 16,
        "max_rooms": clients + 16,
        "backlog": min(max(clients, 128), 4096),
    }
    options.update(extra)
    return options


class ServerProcess:
    """A chatlab server in a child Python process (its own GIL, its own core).

    Closing stdin stops it; it then prints one JSON line of statistics
    (``peak_queued``, ``max_rss_kb``), read by :meth:`stop`.
    """

    def __init__(self, options: dict[str, Any], timeout: float = 20.0) -> None:
        code = "from chatlab.bench.load import _serve_child; _serve_child()"
        self.proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(options)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("the server process did not start")
        host, port = json.loads(line)["address"]
        self.address: tuple[str, int] = (host, port)
        self.stats: dict[str, Any] = {}

    def stop(self) -> dict[str, Any]:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            try:
                self.proc.stdin.close()
                line = self.proc.stdout.readline()
                self.stats = json.loads(line) if line.strip() else {}
                self.proc.wait(10)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        return self.stats

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _serve_child() -> None:
    """The child side of :class:`ServerProcess`."""
    options = json.loads(sys.argv[1])
    if isinstance(options.get("flood_limit"), list):  # JSON has no FloodLimit: [rate, burst]
        options["flood_limit"] = FloodLimit(*options["flood_limit"])
    raise_nofile_limit(options.get("max_clients", 0) * 2 + 64)
    server = Server(port=0, **options)
    print(json.dumps({"address": list(server.address)}), flush=True)
    server.start()
    sys.stdin.read()  # until the parent closes our stdin (or dies)
    server.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"peak_queued": server.peak_queued, "max_rss_kb": rss}), flush=True)


# ======================================================================
# The load generator
# ======================================================================


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
        self.decoder = p.FrameDecoder()
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
        self.rate = rate  # lines per second from all clients together; None: each sends its next as soon as its window allows
        self.selector = selectors.DefaultSelector()
        self.peers: list[_Peer] = []
        self.latencies_ns: list[int] = []
        self.errors: list[str] = []
        self.forged = self.misrouted = self.duplicates = self.out_of_order = 0
        self.delivered = 0  # distinct deliveries
        self.refused = 0
        self.sending = False
        self.last_progress = time.monotonic()

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
            for frame in peer.decoder:
                kind = frame.type
                if kind == CHAT:
                    self._on_chat(peer, json.loads(frame.payload), now)
                elif kind == NOTICE:
                    notice = json.loads(frame.payload)
                    if notice.get("kind") == "join" and notice.get("nick") == peer.nick and notice.get("room") == peer.room:
                        peer.joined = True
                elif kind == PING:
                    self._write(peer, p.encode(p.Pong(json.loads(frame.payload or b"{}").get("token", 0))))
                elif kind == ERROR:
                    self.errors.append(f"{peer.nick}: {json.loads(frame.payload).get('text')}")
        except p.RemoteProtocolError as exc:
            self._drop(peer, f"garbage from the server: {exc}")

    def _on_chat(self, peer: _Peer, message: dict[str, Any], now: int) -> None:
        sender_text, seq_text, sent_text = message["text"].split(":", 3)[:3]
        sender, seq = int(sender_text), int(seq_text)
        self.latencies_ns.append(now - int(sent_text))
        if message["sender"] != f"u{sender}":
            self.forged += 1
        if message["room"] != peer.room or self.room_of(sender) != peer.room:
            self.misrouted += 1
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
        self.last_progress = time.monotonic()
        if sender == peer.index:
            peer.echoed += 1
            if self.rate is None:
                self._send_more(peer)

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
        issued, turn, total = 0, 0, len(live) * self.messages
        expected = self.expected
        while self.delivered < expected:
            if self.rate is not None and issued < total:
                # Open loop: lines leave at ``rate`` per second, the clients taking turns.
                due = min(total, int(self.rate * (time.monotonic() - start)) + 1)
                tries = 0
                while issued < due and tries < len(live):
                    peer = live[turn % len(live)]
                    turn += 1
                    before = peer.sent
                    self._send_more(peer, 1)
                    if peer.sent > before:
                        issued, tries = issued + 1, 0
                    else:
                        tries += 1
            self._poll(0.001 if self.rate is not None and issued < total else 0.05)
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


def run_load(clients: int = 200, messages: int = 20, room_size: int = 10, backend: str = "select", *,
             server: str = "process", window: int = 4, text_size: int = 0, rate: float | None = None,
             connect_timeout: float = 60.0, idle_timeout: float = 15.0) -> LoadResult:
    """One load run against a fresh server.  See the module docstring."""
    raise_nofile_limit(clients * (2 if server == "thread" else 1) + 256)
    result = LoadResult(backend, server, clients, room_size, messages, window, rate or 0.0)
    options = server_options(clients, backend)
    host: Server | ServerProcess = Server(port=0, **options).start() if server == "thread" else ServerProcess(options)
    generator = LoadGenerator(host.address, clients, room_size, messages, window, text_size, idle_timeout, rate)
    try:
        result.connect_s = generator.connect_all(connect_timeout)
        result.refused = generator.refused
        result.seconds = generator.run()
        result.sent = sum(peer.sent for peer in generator.peers)
    finally:
        generator.close()
        if isinstance(host, Server):
            host.stop()
            result.peak_queued = host.peak_queued
            result.server_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        else:
            stats = host.stop()
            result.peak_queued = int(stats.get("peak_queued", 0))
            result.server_rss_mb = float(stats.get("max_rss_kb", 0)) / 1024
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
        result.p50_ms = percentile(latencies, 50) * MS
        result.p99_ms = percentile(latencies, 99) * MS
        result.max_ms = max(latencies) * MS
    return result


# ======================================================================
# Slow and dead peers
# ======================================================================


def _read_message(sock: socket.socket, decoder: p.MessageDecoder, kind: type, timeout: float = 5.0) -> p.Message:
    deadline = time.monotonic() + timeout
    while True:
        for message in decoder:
            if isinstance(message, kind):
                return message
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed while waiting for {kind.__name__}")
        decoder.feed(data)


class Probe:
    """Two well-behaved clients in one room: ``a`` says, ``b`` hears; each sample is one line's latency."""

    def __init__(self, address: tuple[str, int], room: str = "probe") -> None:
        self.a = Client.connect(address, nick="probe_a")
        try:
            self.b = Client.connect(address, nick="probe_b")
        except BaseException:
            self.a.close()
            raise
        self.room = room
        self.count = 0
        if room:
            self.a.join(room)
            self.b.join(room)

    def latencies(self, samples: int = 40, timeout: float = 5.0) -> list[float]:
        """Seconds from ``a.say`` to ``b`` receiving it, one per sample."""
        out: list[float] = []
        for _ in range(samples):
            self.count += 1
            text = f"probe {self.count}"
            start = time.perf_counter()
            self.a.say(text)
            self.b.wait_for(p.ChatMessage, timeout, predicate=lambda m, t=text: m.text == t)  # type: ignore[misc]
            out.append(time.perf_counter() - start)
        self.a.drain()
        return out

    def quit_notice(self, nick: str, timeout: float) -> p.Notice | None:
        """The ``quit`` notice for ``nick`` that ``b`` saw (waiting up to ``timeout``), or None."""
        try:
            notice: p.Notice = self.b.wait_for(p.Notice, timeout, predicate=lambda n: n.kind == "quit" and n.nick == nick)
        except TimeoutError:
            return None
        return notice

    def close(self) -> None:
        self.a.close()
        self.b.close()


class NeverReader:
    """A client that joins ``room`` and never reads again; :meth:`fill` whispers to it until its queue grows."""

    def __init__(self, address: tuple[str, int], room: str, nick: str = "sloth") -> None:
        self.nick = nick
        self.sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_STREAM)
        # A small receive buffer, set before connect() so the window is small from the start:
        # the server's sends to us stop being absorbed by our kernel almost at once.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(5)
        self.sock.connect(address)
        decoder = p.MessageDecoder()
        self.sock.sendall(p.encode(p.Hello(nick)))
        welcome = _read_message(self.sock, decoder, p.Welcome)
        if normalize_name(welcome.room) != normalize_name(room):  # type: ignore[union-attr]
            self.sock.sendall(p.encode(p.Join(room)))
        while True:  # read until we are in the room, then never again
            notice = _read_message(self.sock, decoder, p.Notice)
            if notice.kind == "join" and notice.nick == nick and normalize_name(notice.room) == normalize_name(room):  # type: ignore[union-attr]
                break
        self.started = time.monotonic()
        self.talker = Client.connect(address, nick=f"{nick}_friend")

    def whisper(self, count: int, size: int = 1900) -> None:
        text = "w" * size
        for _ in range(count):
            self.talker.whisper(self.nick, text)

    def fill(self, server: Server, queued: int, timeout: float = 20.0) -> bool:
        """Whisper until the server holds at least ``queued`` bytes for us (or we are dropped)."""
        deadline = time.monotonic() + timeout
        while server.queued_bytes < queued and self.nick in server.nicks and time.monotonic() < deadline:
            self.whisper(16)
            time.sleep(0.002)
            self.talker.drain()  # the talker's own copies of its whispers
        return server.queued_bytes >= queued

    def overflow(self, server: Server, timeout: float = 30.0) -> bool:
        """Whisper until the server drops us; True if it did."""
        deadline = time.monotonic() + timeout
        while self.nick in server.nicks and time.monotonic() < deadline:
            self.whisper(16)
            time.sleep(0.002)
            self.talker.drain()
        return self.nick not in server.nicks

    def close(self) -> None:
        self.talker.close()
        self.sock.close()


class Slowloris:
    """Sends ``data`` one byte every ``interval`` seconds in a thread, until the server closes the connection."""

    def __init__(self, address: tuple[str, int], data: bytes, interval: float, prefix: bytes = b"", wait_for: type | None = None) -> None:
        self.sock = socket.create_connection(address, timeout=5)
        self.decoder = p.MessageDecoder()
        if prefix:
            self.sock.sendall(prefix)
            if wait_for is not None:
                _read_message(self.sock, self.decoder, wait_for)
        self.data, self.interval = data, interval
        self.errors: list[str] = []
        self.dropped_after: float | None = None
        self.bytes_sent = 0
        self._stop = threading.Event()
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, name="slowloris", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.sock.settimeout(self.interval)
        try:
            for byte in self.data:
                if self._stop.is_set():
                    return
                self.sock.sendall(bytes([byte]))
                self.bytes_sent += 1
                deadline = time.monotonic() + self.interval
                while (left := deadline - time.monotonic()) > 0:  # read what the server says meanwhile
                    self.sock.settimeout(left)
                    try:
                        data = self.sock.recv(65536)
                    except socket.timeout:
                        break
                    if not data:
                        raise ConnectionResetError("closed")
                    self.decoder.feed(data)
                    self.errors += [m.text for m in self.decoder if isinstance(m, p.ErrorMessage)]
        except (OSError, p.RemoteProtocolError):
            self.dropped_after = time.monotonic() - self.started

    def wait(self, timeout: float) -> float | None:
        self.thread.join(timeout)
        return self.dropped_after

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self.thread.join(5)


class FreezableProxy:
    """A one-connection TCP relay that can *freeze*: it stops moving bytes either way and keeps both sockets open.

    To the server, a frozen client is one that vanished without a FIN or an
    RST: the connection looks established and nothing more ever comes.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self.frozen = threading.Event()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = [self.listener]
        self.thread = threading.Thread(target=self._run, name="freezable-proxy", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.listener.settimeout(10)
        try:
            client, _ = self.listener.accept()
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            return
        self._sockets += [client, upstream]
        peer = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as selector:
            for sock in (client, upstream):
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
            while not self._stop.is_set() and not self.frozen.is_set():
                for key, _ in selector.select(0.05):
                    source = key.fileobj
                    assert isinstance(source, socket.socket)
                    try:
                        data = source.recv(65536)
                        if not data:
                            return
                        peer[source].setblocking(True)
                        peer[source].sendall(data)
                        peer[source].setblocking(False)
                    except OSError:
                        return
        self._stop.wait()  # frozen: hold both sockets open, move nothing

    def freeze(self) -> None:
        self.frozen.set()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        for sock in self._sockets:
            sock.close()


@dataclass
class SlowPeerResult:
    """One misbehaving peer: how long until the server dropped it, why, and the others' latency meanwhile."""

    scenario: str
    detail: str
    dropped: bool = False
    dropped_after_s: float = float("nan")
    reason: str = ""
    baseline_p50_ms: float = float("nan")
    baseline_p99_ms: float = float("nan")
    during_p50_ms: float = float("nan")
    during_p99_ms: float = float("nan")
    peak_queued: int = 0
    max_queue: int = 0

    def row(self) -> dict[str, Any]:
        return asdict(self)


def _ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1e3


def run_slow_peers(scenarios: Sequence[str] = ("never-reader", "slowloris", "vanished"), *, backend: str = "select",
                   max_queue: int = 1024 * 1024, hello_timeout: float = 3.0, ping_interval: float = 2.0,
                   ping_timeout: float = 3.0, trickle_interval: float = 1.0, samples: int = 50) -> list[SlowPeerResult]:
    """Each scenario on a fresh server (in a thread, so its queues can be watched).  See the module docstring."""
    results: list[SlowPeerResult] = []
    options: dict[str, Any] = dict(selector=backend, flood_limit=None, max_queue=max_queue, hello_timeout=hello_timeout,
                                   ping_interval=ping_interval, ping_timeout=ping_timeout)
    patience = hello_timeout + ping_interval + ping_timeout + 10
    why = "this peer misbehaves on purpose, and dropping it is what the scenario measures"
    for scenario in scenarios:
        with expected_warnings("chatlab.server", ("dropping ", "refusing a connection"), why), \
                expected_warnings("chatlab.core.chatroom", ("dropping ",), why), \
                Server(port=0, **options) as server:
            probe = Probe(server.address)
            try:
                probe.latencies(10)  # warm up
                baseline = probe.latencies(samples)
                if scenario == "never-reader":
                    results.append(_never_reader(server, probe, baseline, samples, patience))
                elif scenario == "slowloris":
                    results.extend(_slowloris(server, probe, baseline, samples, trickle_interval, patience))
                elif scenario == "vanished":
                    results.append(_vanished(server, probe, baseline, samples, patience))
                else:
                    raise ValueError(f"unknown scenario {scenario!r}")
            finally:
                probe.close()
    return results


def _result(scenario: str, detail: str, baseline: list[float], during: list[float]) -> SlowPeerResult:
    return SlowPeerResult(scenario, detail, baseline_p50_ms=_ms(baseline, 50), baseline_p99_ms=_ms(baseline, 99),
                          during_p50_ms=_ms(during, 50), during_p99_ms=_ms(during, 99))


def _never_reader(server: Server, probe: Probe, baseline: list[float], samples: int, patience: float) -> SlowPeerResult:
    sloth = NeverReader(server.address, probe.room)
    try:
        sloth.fill(server, server.max_queue // 2)  # stuck, with half its allowance queued: every line to the room joins it
        during = probe.latencies(samples)
        result = _result("never-reader", f"stops reading; whispers fill its queue (max_queue {server.max_queue:,} B)",
                         baseline, during)
        result.dropped = sloth.overflow(server, patience)
        result.dropped_after_s = time.monotonic() - sloth.started
        notice = probe.quit_notice(sloth.nick, 5)
        result.reason = notice.text if notice else ""
        result.peak_queued, result.max_queue = server.peak_queued, server.max_queue
        return result
    finally:
        sloth.close()


def _slowloris(server: Server, probe: Probe, baseline: list[float], samples: int, interval: float,
               patience: float) -> list[SlowPeerResult]:
    hello = p.encode(p.Hello("loris"))
    registered = p.encode(p.Hello("loris2")) + p.encode(p.Join(probe.room))
    never_done = p.pack_header(p.FrameType.SAY, 1000) + b'{"text":"' + b"z" * 990  # 1,012 bytes: never completes
    lorises = [
        ("before HELLO", Slowloris(server.address, hello, interval), "loris"),
        ("after HELLO", Slowloris(server.address, never_done, interval, prefix=registered, wait_for=p.Welcome), "loris2"),
    ]
    try:
        during = probe.latencies(samples)
        results = []
        for detail, loris, nick in lorises:
            result = _result("slowloris", f"{detail}: 1 byte every {interval:g} s", baseline, during)
            dropped_after = loris.wait(patience)
            result.dropped = dropped_after is not None
            result.dropped_after_s = dropped_after if dropped_after is not None else float("nan")
            notice = probe.quit_notice(nick, 2) if nick == "loris2" else None
            result.reason = notice.text if notice else "; ".join(loris.errors)
            result.peak_queued, result.max_queue = server.peak_queued, server.max_queue
            results.append(result)
        return results
    finally:
        for _, loris, _ in lorises:
            loris.close()


def _vanished(server: Server, probe: Probe, baseline: list[float], samples: int, patience: float) -> SlowPeerResult:
    proxy = FreezableProxy(server.address)
    ghost: Client | None = None
    try:
        ghost = Client.connect(proxy.address, nick="ghost")
        ghost.join(probe.room)
        proxy.freeze()
        frozen_at = time.monotonic()
        during = probe.latencies(samples)
        result = _result("vanished", "behind a proxy that freezes: no FIN, no RST, no bytes", baseline, during)
        notice = probe.quit_notice("ghost", patience)
        result.dropped = notice is not None
        result.dropped_after_s = time.monotonic() - frozen_at if notice else float("nan")
        result.reason = notice.text if notice else ""
        result.peak_queued, result.max_queue = server.peak_queued, server.max_queue
        return result
    finally:
        proxy.close()
        if ghost is not None:
            ghost.close()


# ======================================================================
# The command line
# ======================================================================

LOAD_COLUMNS = [
    ("backend", "backend"), ("clients", "clients"), ("room_size", "room"), ("offered", "offered"),
    ("sent", "sent"), ("expected", "expected"), ("received", "received"), ("lost", "lost"),
    ("duplicates", "dup"), ("out_of_order", "ooo"), ("forged", "forged"), ("misrouted", "misr"),
    ("msgs_per_s", "msgs/s"), ("deliveries_per_s", "deliv/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
    ("connect_s", "connect s"),
]
SLOW_COLUMNS = [
    ("scenario", "scenario"), ("detail", "detail"), ("dropped_after_s", "dropped after s"),
    ("baseline_p50_ms", "base p50 ms"), ("during_p50_ms", "during p50 ms"), ("during_p99_ms", "during p99 ms"),
    ("peak_queued", "peak queued B"), ("reason", "reason"),
]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], width: int = 80) -> str:
    cells = [[h for _, h in columns]] + [[_cell(row.get(k, ""))[:width] for k, _ in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) if i and c[:1].isdigit() else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _plans(args: argparse.Namespace) -> Iterator[tuple[str, int, int, float | None]]:
    """(backend, clients, lines per client, rate): for each backend a closed-loop run, then one at a fixed rate."""
    for backend in args.backend:
        clients = args.clients or (args.select_clients if backend == "select" else args.epoll_clients)
        yield backend, clients, args.messages, None
        if args.rate > 0:
            yield backend, clients, args.rate_messages, args.rate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chatlab bench load", description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer lines and shorter timeouts: about 15 s in all (default sizes: about 45 s)")
    parser.add_argument("--backend", nargs="+", default=None, choices=["select", "poll", "epoll"],
                        help="server backends to load (default: select and epoll where available)")
    parser.add_argument("--clients", type=int, default=0, help="clients for every backend (default: 200 select, 1000 others)")
    parser.add_argument("--messages", type=int, default=None, help="lines each client sends, as fast as its window allows "
                        "(default 50; 10 with --quick)")
    parser.add_argument("--rate", type=float, default=1000.0, help="lines/s offered by all clients together in the "
                        "second run of each backend, about half of what select() sustains on two cores: its latency "
                        "is the one to quote (default 1000; 0 skips it)")
    parser.add_argument("--room-size", type=int, default=20, help="clients per room (default 20)")
    parser.add_argument("--window", type=int, default=4, help="a client's lines in flight at once (default 4)")
    parser.add_argument("--text-size", type=int, default=0, help="extra characters in each line")
    parser.add_argument("--server", choices=["process", "thread"], default="process",
                        help="run the server in a child process (default; its own core) or in a thread of this one")
    parser.add_argument("--no-slow", action="store_true", help="skip the slow-peer scenarios")
    parser.add_argument("--no-load", action="store_true", help="skip the load runs")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the CSV files (default: a new folder in the system's temporary folder;"
                             " --out data/bench refreshes the committed results)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.out = resolve_out(args.out)
    args.backend = args.backend or [b for b in ("select", "epoll") if b in available_backends()]
    args.select_clients, args.epoll_clients = 200, 1000
    args.messages = args.messages or (10 if args.quick else 50)
    args.rate_messages = 2 if args.quick else 10
    status = 0
    print(f"chatlab bench load: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {sys.platform}; "
          f"select() takes descriptors below {FD_SETSIZE}; server in a {args.server}", flush=True)
    if not args.no_load:
        rows = []
        for backend, clients, messages, rate in _plans(args):
            how = f"at {rate:,.0f} lines/s" if rate else f"as fast as a window of {args.window} allows"
            print(f"load: {clients} clients on {backend}, rooms of {args.room_size}, {messages} lines each, {how} ...", flush=True)
            result = run_load(clients, messages, args.room_size, backend, server=args.server, window=args.window,
                              text_size=args.text_size, rate=rate)
            row = result.row()
            row["offered"] = f"{rate:,.0f}/s" if rate else "max"
            rows.append(row)
            if not result.ok:
                status = 1
                print(f"  NOT OK: {result.error_texts[:3]}", flush=True)
        print("\n" + format_table(rows, LOAD_COLUMNS))
        print("offered: 'max' = each client sends its next line once one of its last "
              f"{args.window} came back (throughput; latency is then mostly queueing), or a fixed rate for all "
              "(the latency to quote).\nlost, dup, ooo (out of order), forged and misr (misrouted) must be 0: "
              + ("they are." if status == 0 else "THEY ARE NOT."))
        print(f"CSV: {write_csv(args.out / 'load.csv', rows)}")
    if not args.no_slow:
        quick = args.quick
        print("\nslow and dead peers (a server in a thread; latency = one line from probe_a to probe_b) ...", flush=True)
        slow = run_slow_peers(backend=args.backend[0], max_queue=512 * 1024 if quick else 2 * 1024 * 1024,
                              hello_timeout=2.0 if quick else 5.0, ping_interval=1.0 if quick else 3.0,
                              ping_timeout=2.0 if quick else 5.0, trickle_interval=0.5 if quick else 1.0,
                              samples=50 if quick else 200)
        rows = [r.row() for r in slow]
        print("\n" + format_table(rows, SLOW_COLUMNS))
        if not all(r.dropped for r in slow):
            status = 1
            print("NOT OK: a misbehaving peer was not dropped")
        print(f"CSV: {write_csv(args.out / 'slow_peers.csv', rows)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
