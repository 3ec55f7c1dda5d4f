"""A chat load generator: many raw connections speaking chatlab's protocol from one process.

Used by the fan-out benchmark (one room, N clients, every message delivered
to all) against chatlab's server and the asyncio reference alike.

How it measures, cheaply enough to keep up with a server on the other core:

* every client says HELLO with a nickname of the same width, so every CHAT
  frame of the run has the same length ``L``; the clients that only listen
  count bytes (deliveries = bytes / L) and never decode anything;
* a few clients are *senders*: each keeps ``window`` of its own messages in
  flight (sent, not yet echoed back to it: the server delivers a message to
  its sender too), splits what it receives into frames, and reads the send
  timestamp and the sender at the fixed places where the protocol's own
  encoder puts them (the first frame is decoded in full with
  ``protocol.decode_message`` to check those places): one latency sample per
  frame a sender receives, a few microseconds cheaper than decoding each;
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
        traffic = _Traffic(self, min(senders, self.n), window)
        start = time.monotonic()
        measure_from = start + warmup
        end = measure_from + seconds
        traffic.fill_windows(end)
        t0, cpu0, sent_at_start = measure_from, time.process_time(), 0
        measuring = False
        while (now := time.monotonic()) < end:
            if not measuring and now >= measure_from:  # the warm-up is over: count from here
                measuring = True
                traffic.listen_bytes = traffic.sender_frames = 0
                traffic.latencies.clear()
                t0, cpu0, sent_at_start = now, time.process_time(), traffic.sent
            traffic.turn(end)
        elapsed = time.monotonic() - t0
        cpu = time.process_time() - cpu0
        deliveries = traffic.listen_bytes // traffic.frame_len + traffic.sender_frames
        return FanoutResult(self.n, traffic.senders, elapsed, deliveries, traffic.sent - sent_at_start,
                            traffic.latencies, driver_cpu=cpu / elapsed if elapsed else 0.0,
                            setup_seconds=self.setup_seconds, errors=(self.errors + traffic.errors)[:5])

    def close(self) -> None:
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.socks.clear()
        self.poller.close()


class _Traffic:
    """The messages of one :meth:`Crowd.run`: the senders' windows, the bytes and frames counted, the latencies.

    Listeners only count bytes; a sender reads the send time and the sender of each CHAT frame at
    the offsets :func:`chat_frame_length` finds in a frame made by the protocol's own encoder, and
    the first frame each sender receives is decoded in full (:func:`protocol.decode_message`) to
    check those offsets.
    """

    def __init__(self, crowd: Crowd, senders: int, window: int) -> None:
        self.crowd, self.senders, self.window = crowd, senders, window
        self.frame_len, self.ts_offset = chat_frame_length()
        self.nicks = [NICK_FMT.format(i).encode() for i in range(senders)]
        sample = p.encode(p.ChatMessage(ROOM, NICK_FMT.format(0), _text(0, 0), False))[p.HEADER_SIZE:]
        self.sender_offset = sample.index(self.nicks[0]) if senders else 0
        self.decoders = [p.FrameDecoder() for _ in range(senders)]
        self.checked = [False] * senders
        self.outstanding = [0] * senders
        self.seq = self.sent = self.listen_bytes = self.sender_frames = 0
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def send(self, i: int) -> None:
        self.seq += 1
        try:
            self.crowd.socks[i].send(p.encode(p.Say(_text(self.seq, time.perf_counter_ns()))))
        except (BlockingIOError, InterruptedError):
            return  # a full send buffer: the server is not reading us; try on the next echo
        self.outstanding[i] += 1
        self.sent += 1

    def fill_windows(self, end: float) -> None:
        for i in range(self.senders):
            self._refill(i, end)

    def _refill(self, i: int, end: float) -> None:
        while self.outstanding[i] < self.window and time.monotonic() < end:
            self.send(i)

    def turn(self, end: float) -> None:
        """One poll: count what the listeners got, time what the senders got, and send again."""
        crowd = self.crowd
        socks, by_fd, senders = crowd.socks, crowd.by_fd, self.senders
        for fd, _ in crowd.poller.poll(0.05):
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
                crowd.poller.unregister(fd)
            elif i >= senders:
                self.listen_bytes += len(data)
            else:
                self._on_sender_data(i, data)
                self._refill(i, end)

    def _on_sender_data(self, i: int, data: bytes) -> None:
        dec = self.decoders[i]
        dec.feed(data)
        t_now = time.perf_counter_ns()
        mine, ts, who = self.nicks[i], self.ts_offset, self.sender_offset
        chat, latencies = p.FrameType.CHAT, self.latencies
        for frame in dec:
            if frame.type is not chat:
                continue
            payload = frame.payload
            if not self.checked[i]:
                self._check_offsets(frame)
                self.checked[i] = True
            self.sender_frames += 1
            latencies.append((t_now - int(payload[ts:ts + 20])) / 1e6)
            if payload[who:who + 6] == mine:
                self.outstanding[i] -= 1

    def _check_offsets(self, frame: p.Frame) -> None:
        """The fixed offsets agree with the protocol's decoder on this frame (or the run reports an error)."""
        message = p.decode_message(frame)
        payload = frame.payload
        if not (isinstance(message, p.ChatMessage)
                and message.sender.encode() == payload[self.sender_offset:self.sender_offset + 6]
                and message.text.split()[-1].encode() == payload[self.ts_offset:self.ts_offset + 20]):
            self.errors.append(f"a CHAT frame is not laid out as the load generator expects: {message}")
