"""Slow and dead peers: how long the server takes to drop each, and what the others' latency does meanwhile.

Part of ``python -m chatlab bench load`` (:mod:`chatlab.bench.load` runs it
after the load runs; ``--no-load`` runs it alone).  Two well-behaved "probe"
clients measure chat latency (one says, the other hears) before and while a
misbehaving peer is connected, and we time how long the server takes to drop
it and why:

- *never-reader*: joins the room and never reads again; whispers fill its
  queue until it passes ``max_queue``;
- *slowloris*: sends its HELLO one byte at a time (dropped by
  ``hello_timeout``), and a registered one trickles a frame that never
  completes (dropped by the ping timeout);
- *vanished*: a client behind a proxy that freezes: no FIN, no RST, nothing
  more in either direction, as when a laptop's Wi-Fi drops (dropped by the
  keepalive ping).

Each runs against a fresh server in a thread of this process, so that its
queues can be watched.  The peers are public: tests/io/test_reliability.py
uses them one by one.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence, TypeVar

from ..client import Client
from ..core import protocol as p
from ..core.chatroom import normalize_name
from ..server import Server
from ..stats import percentile
from .common import expected_warnings

SCENARIOS = ("never-reader", "slowloris", "vanished")


M = TypeVar("M")


def _read_message(sock: socket.socket, decoder: p.MessageDecoder, kind: type[M], timeout: float = 5.0) -> M:
    """The next message of type ``kind`` (the others are skipped)."""
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
            notice: p.Notice = self.b.wait_for(p.Notice, timeout,
                                               predicate=lambda n: n.kind == "quit" and n.nick == nick)
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
        if normalize_name(welcome.room) != normalize_name(room):
            self.sock.sendall(p.encode(p.Join(room)))
        while True:  # read until we are in the room, then never again
            notice = _read_message(self.sock, decoder, p.Notice)
            if notice.kind == "join" and notice.nick == nick and normalize_name(notice.room) == normalize_name(room):
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

    def __init__(self, address: tuple[str, int], data: bytes, interval: float, prefix: bytes = b"",
                 wait_for: type[p.Message] | None = None) -> None:
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
    """The ``q``-th percentile of ``values`` (seconds) in ms; NaN for no values (the result's fields are floats)."""
    value = percentile(values, q)
    return float("nan") if value is None else value * 1e3


@dataclass
class _Run:
    """What every scenario gets: the server, the probe, its latency before, and how long to wait."""

    server: Server
    probe: Probe
    baseline: list[float]
    samples: int
    patience: float
    trickle_interval: float


def run_slow_peers(scenarios: Sequence[str] = SCENARIOS, *, backend: str = "select",
                   max_queue: int = 1024 * 1024, hello_timeout: float = 3.0, ping_interval: float = 2.0,
                   ping_timeout: float = 3.0, trickle_interval: float = 1.0, samples: int = 50) -> list[SlowPeerResult]:
    """Each scenario on a fresh server (in a thread, so its queues can be watched).  See the module docstring.

    Raises:
        ValueError: a scenario not in :data:`SCENARIOS`.
    """
    unknown = [s for s in scenarios if s not in RUNNERS]
    if unknown:
        raise ValueError(f"unknown slow-peer scenario(s) {', '.join(map(repr, unknown))};"
                         f" known: {', '.join(SCENARIOS)}")
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
                results += RUNNERS[scenario](_Run(server, probe, baseline, samples, patience, trickle_interval))
            finally:
                probe.close()
    return results


def _result(scenario: str, detail: str, baseline: list[float], during: list[float]) -> SlowPeerResult:
    return SlowPeerResult(scenario, detail, baseline_p50_ms=_ms(baseline, 50), baseline_p99_ms=_ms(baseline, 99),
                          during_p50_ms=_ms(during, 50), during_p99_ms=_ms(during, 99))


def _never_reader(run: _Run) -> list[SlowPeerResult]:
    server, probe = run.server, run.probe
    sloth = NeverReader(server.address, probe.room)
    try:
        # stuck, with half its allowance queued: every line to the room joins it
        sloth.fill(server, server.max_queue // 2)
        during = probe.latencies(run.samples)
        result = _result("never-reader", f"stops reading; whispers fill its queue (max_queue {server.max_queue:,} B)",
                         run.baseline, during)
        result.dropped = sloth.overflow(server, run.patience)
        result.dropped_after_s = time.monotonic() - sloth.started
        notice = probe.quit_notice(sloth.nick, 5)
        result.reason = notice.text if notice else ""
        result.peak_queued, result.max_queue = server.peak_queued, server.max_queue
        return [result]
    finally:
        sloth.close()


def _slowloris(run: _Run) -> list[SlowPeerResult]:
    server, probe, interval = run.server, run.probe, run.trickle_interval
    hello = p.encode(p.Hello("loris"))
    registered = p.encode(p.Hello("loris2")) + p.encode(p.Join(probe.room))
    never_done = p.pack_header(p.FrameType.SAY, 1000) + b'{"text":"' + b"z" * 990  # 1,012 bytes: never completes
    lorises = [
        ("before HELLO", Slowloris(server.address, hello, interval), "loris"),
        ("after HELLO", Slowloris(server.address, never_done, interval, prefix=registered, wait_for=p.Welcome),
         "loris2"),
    ]
    try:
        during = probe.latencies(run.samples)
        results = []
        for detail, loris, nick in lorises:
            result = _result("slowloris", f"{detail}: 1 byte every {interval:g} s", run.baseline, during)
            dropped_after = loris.wait(run.patience)
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


def _vanished(run: _Run) -> list[SlowPeerResult]:
    server, probe = run.server, run.probe
    proxy = FreezableProxy(server.address)
    ghost: Client | None = None
    try:
        ghost = Client.connect(proxy.address, nick="ghost")
        ghost.join(probe.room)
        proxy.freeze()
        frozen_at = time.monotonic()
        during = probe.latencies(run.samples)
        result = _result("vanished", "behind a proxy that freezes: no FIN, no RST, no bytes", run.baseline, during)
        notice = probe.quit_notice("ghost", run.patience)
        result.dropped = notice is not None
        result.dropped_after_s = time.monotonic() - frozen_at if notice else float("nan")
        result.reason = notice.text if notice else ""
        result.peak_queued, result.max_queue = server.peak_queued, server.max_queue
        return [result]
    finally:
        proxy.close()
        if ghost is not None:
            ghost.close()


RUNNERS: dict[str, Callable[[_Run], list[SlowPeerResult]]] = {
    "never-reader": _never_reader, "slowloris": _slowloris, "vanished": _vanished,
}
