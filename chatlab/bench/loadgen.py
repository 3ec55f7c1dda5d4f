"""A chat load generator: many raw connections speaking chatlab's protocol from one process.

Used by the fan-out benchmark (one room, N clients, every message delivered
to all) against chatlab's server and the asyncio reference alike.

How it measures, cheaply enough to keep up with a server on the other core:

* every client says HELLO with a nickname of the same width, so every CHAT
  frame of the run has the same length ``L``; the clients that only listen
  count bytes (deliveries = bytes / L) and never decode anything;
* a few clients are *senders*: each keeps ``window`` of its own messages in
  flight (sent, not yet echoed back to it: the server delivers a message to
  its sender too), decodes every frame it receives, and reads the send
  timestamp embedded at a fixed place in the text: one latency sample per
  frame a sender receives;
* the measurement starts after a warm-up, once the join notices of the
  set-up have all been read, and lasts a fixed time.
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass, field

from ..core import protocol as p

NICK_FMT = "c{:05d}"
ROOM = "lobby"


def _text(seq: int, t_ns: int) -> str:
    return f"{seq:010d} {t_ns:020d}"


def chat_frame_length(nick: str = NICK_FMT.format(0)) -> tuple[int, int]:
    """(length of a CHAT frame of this run, offset of the timestamp within its payload)."""
    text = _text(0, 0)
    frame = p.encode(p.ChatMessage(ROOM, nick, text, False))
    payload = frame[p.HEADER_SIZE:]
    offset = payload.index(text.encode()) + 11
    return len(frame), offset


class Poller:
    """epoll where there is one, poll elsewhere: fd -> events."""

    def __init__(self) -> None:
        self.epoll = hasattr(select, "epoll")
        self._p = select.epoll() if self.epoll else select.poll()
        self._in = select.EPOLLIN if self.epoll else select.POLLIN

    def register(self, fd: int) -> None:
        self._p.register(fd, self._in)

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        if self.epoll:
            return self._p.poll(timeout)
        return self._p.poll(timeout * 1000)

    def unregister(self, fd: int) -> None:
        self._p.unregister(fd)

    def close(self) -> None:
        if hasattr(self._p, "close"):
            self._p.close()


@dataclass
class FanoutResult:
    clients: int
    senders: int
    seconds: float
    deliveries: int
    sent: int
    latencies_ms: list[float] = field(default_factory=list)
    driver_cpu: float = 0.0
    setup_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    lost: int = 0  # lines a member should have had and did not (the IRC load generator counts them)

    @property
    def deliveries_per_s(self) -> float:
        return self.deliveries / self.seconds if self.seconds else 0.0


class Crowd:
    """N connected clients in one room, driven from this process."""

    def __init__(self, address: tuple[str, int], clients: int, connect_timeout: float = 30.0) -> None:
        self.address = address
        self.n = clients
        self.socks: list[socket.socket] = []
        self.poller = Poller()
        self.by_fd: dict[int, int] = {}
        started = time.monotonic()
        self.errors: list[str] = []
        try:
            for i in range(clients):
                s = socket.create_connection(address, timeout=connect_timeout)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.sendall(p.encode(p.Hello(NICK_FMT.format(i))))
                s.setblocking(False)
                self.socks.append(s)
                self.by_fd[s.fileno()] = i
                self.poller.register(s.fileno())
                if i % 25 == 24:
                    self.drain(0.0)  # read join notices as we go, so no queue grows without bound
            self.drain_until_quiet(0.3, limit=max(10.0, clients * 0.05))
        except BaseException:
            self.close()
            raise
        self.setup_seconds = time.monotonic() - started

    def drain(self, timeout: float) -> int:
        got = 0
        for fd, _ in self.poller.poll(timeout):
            try:
                data = self.socks[self.by_fd[fd]].recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                self.errors.append(f"client {self.by_fd[fd]}: {exc}")
                continue
            got += len(data)
        return got

    def drain_until_quiet(self, quiet: float, limit: float) -> None:
        deadline = time.monotonic() + limit
        last = time.monotonic()
        while time.monotonic() - last < quiet and time.monotonic() < deadline:
            if self.drain(0.05):
                last = time.monotonic()

    def run(self, senders: int, window: int, seconds: float, warmup: float) -> FanoutResult:
        """Send from ``senders`` clients, ``window`` messages each in flight, for ``seconds`` after ``warmup``."""
        senders = min(senders, self.n)
        frame_len, ts_offset = chat_frame_length()
        nick_bytes = [NICK_FMT.format(i).encode() for i in range(senders)]
        sender_off = p.encode(p.ChatMessage(ROOM, NICK_FMT.format(0), _text(0, 0), False))[p.HEADER_SIZE:].index(nick_bytes[0])
        decoders = [p.FrameDecoder() for _ in range(senders)]
        outstanding = [0] * senders
        seq = 0
        sent = 0
        listen_bytes = 0
        sender_frames = 0
        latencies: list[float] = []
        socks = self.socks
        by_fd = self.by_fd
        chat_type = p.FrameType.CHAT
        perf_ns = time.perf_counter_ns

        def send(i: int) -> None:
            nonlocal seq, sent
            seq += 1
            try:
                socks[i].send(p.encode(p.Say(_text(seq, perf_ns()))))
            except (BlockingIOError, InterruptedError):
                return  # a full send buffer: the server is not reading us; try on the next echo
            outstanding[i] += 1
            sent += 1

        start = time.monotonic()
        measure_from = start + warmup
        end = measure_from + seconds
        measuring = False
        cpu0 = 0.0
        for i in range(senders):
            for _ in range(window):
                send(i)
        while True:
            now = time.monotonic()
            if not measuring and now >= measure_from:
                measuring = True
                listen_bytes = sender_frames = 0
                latencies.clear()
                sent_at_start = sent
                cpu0 = time.process_time()
                t0 = now
            if now >= end:
                break
            for fd, _ in self.poller.poll(0.05):
                i = by_fd[fd]
                try:
                    data = socks[i].recv(1 << 20)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    self.errors.append(f"client {i}: {exc}")
                    continue
                if not data:
                    self.errors.append(f"client {i}: the server closed the connection")
                    self.poller.unregister(fd)
                    continue
                if i >= senders:
                    listen_bytes += len(data)
                    continue
                dec = decoders[i]
                dec.feed(data)
                t_now = perf_ns()
                mine = nick_bytes[i]
                for frame in dec:
                    if frame.type is not chat_type:
                        continue
                    payload = frame.payload
                    sender_frames += 1
                    latencies.append((t_now - int(payload[ts_offset:ts_offset + 20])) / 1e6)
                    if payload[sender_off:sender_off + 6] == mine:
                        outstanding[i] -= 1
                while outstanding[i] < window and time.monotonic() < end:
                    send(i)
        elapsed = time.monotonic() - t0
        cpu = time.process_time() - cpu0
        deliveries = listen_bytes // frame_len + sender_frames
        return FanoutResult(self.n, senders, elapsed, deliveries, sent - sent_at_start, latencies,
                            driver_cpu=cpu / elapsed if elapsed else 0.0, setup_seconds=self.setup_seconds,
                            errors=self.errors[:5])

    def close(self) -> None:
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.socks.clear()
        self.poller.close()
