"""A simulated link: sending strategies on a fake clock (notebook 06's exercise).

:func:`simulate_transfer` sends a file with any :class:`~chatlab.core.transfer.SendStrategy`
over a bottleneck (a FIFO queue, a rate, a round-trip delay) and reports a
:class:`SimulatedRun`.  No sockets, no threads, no real time: a run of thousands of
chunks takes milliseconds and gives the same numbers on every machine, which is
what the exercise checkers of notebook 06 (:mod:`chatlab.exercises.strategy`) need.

This module and what it imports (:mod:`.links`, :mod:`.results`,
:mod:`chatlab.core.transfer`) load no socket, client, server or link emulator.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from ..core.transfer import SendStrategy, TraceRow
from ..stats import percentile
from .links import Link, get_link

__all__ = ["FRAME_OVERHEAD", "SimulatedRun", "simulate_transfer"]

FRAME_OVERHEAD = 20  # bytes a FileChunk frame adds to its data: the 12-byte header and the 8-byte offset


@dataclass
class SimulatedRun:
    """What :func:`simulate_transfer` saw: one transfer of ``file_bytes`` over a simulated link.

    Attributes:
        link: the link's name.
        file_bytes: the file size.
        bytes_acked: what the receiver had acknowledged at the end.
        seconds: simulated time from the first send to the last ack (or to the end of the run).
        stalled: the run ended with bytes left and nothing scheduled: the strategy allowed no
            full chunk and had no ack or wake-up to wait for, so it would wait forever.
        timed_out: the run hit ``time_limit`` before every byte was acknowledged.
        queue_delays: per chunk, ``(time it was sent, seconds it waited in the link's queue)``:
            the time a chat line sent at that moment would have waited too.
        trace: the strategy's own :class:`~chatlab.core.transfer.TraceRow` rows.
        link_rate: the link rate in bytes per second.
        error: the exception the strategy raised, if any (the run stops there).
    """

    link: str
    file_bytes: int
    bytes_acked: int = 0
    seconds: float = 0.0
    stalled: bool = False
    timed_out: bool = False
    queue_delays: list[tuple[float, float]] = field(default_factory=list)
    trace: list[TraceRow] = field(default_factory=list)
    link_rate: float = 0.0
    error: BaseException | None = None

    @property
    def completed(self) -> bool:
        return self.bytes_acked >= self.file_bytes and self.error is None

    @property
    def mb_per_s(self) -> float:
        """Whole-transfer throughput in MB/s (10**6 bytes per second)."""
        return self.bytes_acked / self.seconds / 1e6 if self.seconds > 0 else 0.0

    def steady_mb_per_s(self, skip: float = 1 / 3) -> float:
        """Throughput after the first ``skip`` of the run (start-up excluded), in MB/s."""
        acks = [(row.time, row.bytes_acked) for row in self.trace]
        if len(acks) < 2 or self.seconds <= 0:
            return 0.0
        t0, t1 = acks[0][0], acks[0][0] + self.seconds
        cut = t0 + skip * (t1 - t0)
        before = max((acked for t, acked in acks if t <= cut), default=0)
        after = max(acked for _, acked in acks)
        return (after - before) / (t1 - cut) / 1e6 if t1 > cut else 0.0

    def queue_ms(self, q: float = 0.5, skip: float = 1 / 3) -> float | None:
        """The ``q``-quantile of the queueing delay in ms, chunks sent after the first ``skip`` of the run."""
        if not self.queue_delays:
            return None
        t0 = self.queue_delays[0][0]
        cut = t0 + skip * self.seconds
        late = [d for t, d in self.queue_delays if t >= cut] or [d for _, d in self.queue_delays]
        value = percentile(late, 100 * q)
        return None if value is None else value * 1000



class _Simulation:
    """One transfer on the simulated link: the strategy, the bottleneck, the acks on their way, the clock."""

    def __init__(self, strategy: SendStrategy, rate: float, one_way: float, run: SimulatedRun) -> None:
        self.strategy = strategy
        self.rate = rate
        self.one_way = one_way
        self.run = run
        self.acks: list[tuple[float, int, int]] = []  # (time the ack reaches the sender, order, cumulative bytes)
        self.order = 0
        self.busy_until = 0.0  # when the bottleneck finishes the bytes already queued
        self.woken_for: float | None = None
        self.now = 0.0

    def send_allowed(self) -> None:
        """Send every full chunk the strategy allows now (as OutgoingTransfer does)."""
        strategy, file_bytes = self.strategy, self.run.file_bytes
        while strategy.sent < file_bytes:
            length = min(strategy.chunk_size, file_bytes - strategy.sent)
            if strategy.allowance(self.now) < length:
                return
            offset = strategy.sent
            strategy.on_sent(self.now, offset, length)
            start = max(self.now, self.busy_until)
            self.run.queue_delays.append((self.now, start - self.now))
            self.busy_until = start + (length + FRAME_OVERHEAD) / self.rate
            self.order += 1
            heapq.heappush(self.acks, (self.busy_until + 2 * self.one_way, self.order, offset + length))
            if strategy.sent <= offset:  # on_sent did not move it: avoid sending the same bytes forever
                raise RuntimeError("on_sent() did not advance strategy.sent")

    def advance(self) -> bool:
        """Move the clock to the strategy's wake-up or the next ack, whichever is first; False if neither is due."""
        wake = self.strategy.wake_at(self.now)
        if wake is not None and wake != self.woken_for and (not self.acks or wake < self.acks[0][0]):
            self.woken_for = wake
            self.now = max(self.now, wake)
        elif self.acks:
            self.now, _, acked = heapq.heappop(self.acks)
            self.strategy.on_ack(self.now, acked)
        else:
            return False
        return True

    def play(self, limit: float, max_events: int) -> None:
        """Run events until every byte is acked, the run stalls, or ``limit`` or ``max_events`` is reached."""
        run = self.run
        self.strategy.start(self.now)
        for _ in range(max_events):
            self.send_allowed()
            if self.strategy.acked >= run.file_bytes:
                return
            if not self.advance():
                run.stalled = True
                return
            if self.now > limit:
                run.timed_out = True
                return
        run.timed_out = True  # max_events went by without an end: a strategy that wakes itself up without sending


def simulate_transfer(
    strategy: SendStrategy,
    link: str | Link,
    file_bytes: int,
    *,
    time_limit: float | None = None,
    max_events: int = 200_000,
) -> SimulatedRun:
    """Send a ``file_bytes`` file with ``strategy`` over a simulated link, on a fake clock.

    The model is the one of ``tests/core/test_transfer_core.py``, without files: a
    bottleneck of the link's rate with an unbounded FIFO queue in front, then
    half the RTT of delay; the receiver acks each chunk as it arrives, and the
    ack takes the other half of the RTT back.  The sender behaves as
    :class:`~chatlab.core.transfer.OutgoingTransfer` does: it sends full chunks
    (the last one may be shorter) while ``allowance(now)`` lets a whole one
    go, and asks again on every ack and at ``wake_at(now)``.  No sockets, no
    threads, no real time: a run of thousands of chunks takes milliseconds and
    gives the same numbers on every machine.

    An exception raised by the strategy ends the run; it is kept in ``.error``.

    Args:
        strategy: a fresh strategy (it keeps one transfer's state).
        link: an emulated :class:`Link` or its name, e.g. ``"50mbit-40ms"`` (not ``"loopback"``).
        file_bytes: the file size.
        time_limit: simulated seconds before the run is stopped (default: 5 times the
            time the link needs for the file, plus a second).

    Returns:
        A :class:`SimulatedRun`.
    """
    link = get_link(link)
    rate = link.rate
    if rate is None:
        raise ValueError("simulate_transfer needs a link with a rate, e.g. '50mbit-40ms'")
    limit = time_limit if time_limit is not None else 5 * file_bytes / rate + 1.0
    run = SimulatedRun(link.name, file_bytes, link_rate=rate)
    simulation = _Simulation(strategy, rate, link.rtt_ms / 2000, run)
    try:
        simulation.play(limit, max_events)
    except Exception as exc:  # the strategy's own code failed: report it, as a checker needs to
        run.error = exc
    run.bytes_acked = min(strategy.acked, file_bytes)
    run.seconds = simulation.now
    run.trace = list(strategy.trace)
    return run
