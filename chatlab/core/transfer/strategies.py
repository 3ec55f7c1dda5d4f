"""Sending strategies: *when* bytes may leave (SleepPaced, FixedWindow, AdaptiveWindow)."""

from __future__ import annotations

from collections import deque
from typing import ClassVar, NamedTuple

from ..protocol import CHUNK_PREFIX, MAX_PAYLOAD

KiB = 1024
MiB = 1024 * KiB
DEFAULT_CHUNK_SIZE = 64 * KiB
# A FileChunk's payload is an 8-byte offset followed by the data.
MAX_CHUNK_SIZE = MAX_PAYLOAD - CHUNK_PREFIX.size



# --------------------------------------------------------------------------
# Sending strategies.
#
# A strategy decides *when* bytes may leave; the OutgoingTransfer decides
# *which* bytes.  The transfer asks `allowance(now)` (how many bytes may be
# sent right now), reports every chunk with `on_sent` and every cumulative
# ack with `on_ack`, and asks `wake_at(now)` when it should ask again if no
# ack arrives in between.  One strategy object serves one transfer.
#
# Round-trip time: the receiver acks cumulatively ("N bytes are written").
# When an ack newly covers the end of a chunk, now minus that chunk's send
# time is one RTT sample.  Its lowest value is the base RTT, the RTT with
# empty queues; RTT minus base RTT is the queueing delay.
# --------------------------------------------------------------------------


class TraceRow(NamedTuple):
    """One row of a strategy's trace, recorded on every send and every ack.

    ``bytes_sent`` and ``bytes_acked`` are file offsets (so a resumed transfer
    starts above zero), which is what a tcptrace-style time-sequence plot
    wants.  ``rtt`` is the sample taken at this ack, or ``None``.
    """

    time: float
    bytes_sent: int
    bytes_acked: int
    window_bytes: int
    rtt: float | None


class SendStrategy:
    """Base class: tracks bytes sent and acked, RTT samples and the trace.

    Subclasses say how much may be in flight (:meth:`allowance`) and may react
    to RTT samples (:meth:`_on_ack`).

    Attributes:
        chunk_size: the size of a full chunk, in bytes.
        sent: file offset just past the last byte sent.
        acked: file offset the receiver has acknowledged (cumulative).
        rtt: the latest RTT sample in seconds, or ``None``.
        base_rtt: the lowest RTT sample so far, or ``None``.
        trace: one :class:`TraceRow` per send and per ack.
    """

    name: ClassVar[str] = "base"

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be between 1 and {MAX_CHUNK_SIZE} bytes, got {chunk_size}")
        self.chunk_size = chunk_size
        self.sent = 0
        self.acked = 0
        self.rtt: float | None = None
        self.base_rtt: float | None = None
        self.trace: list[TraceRow] = []
        self._send_times: deque[tuple[int, float]] = deque()  # (end offset of a chunk, time it was sent)

    @property
    def in_flight(self) -> int:
        """Bytes sent but not yet acknowledged."""
        return self.sent - self.acked

    @property
    def window_bytes(self) -> int:
        """How many bytes this strategy lets be in flight at once."""
        raise NotImplementedError

    def start(self, now: float, offset: int = 0) -> None:
        """Begin sending at file ``offset`` (non-zero when the receiver resumes).

        Args:
            now: the current time, in seconds.
            offset: bytes the receiver already has; they count as sent and acked.
        """
        self.sent = self.acked = offset
        self._record(now, None)

    def allowance(self, now: float) -> int:
        """How many bytes may be sent at ``now`` (0: wait for an ack or for :meth:`wake_at`)."""
        return max(0, self.window_bytes - self.in_flight)

    def wake_at(self, now: float) -> float | None:
        """When to ask :meth:`allowance` again if no ack arrives first.

        Returns:
            A time (possibly ``<= now``, meaning "already"), or ``None`` when
            only an ack can let more bytes go.
        """
        return None

    def on_sent(self, now: float, offset: int, length: int) -> None:
        """Record that ``length`` bytes at file ``offset`` were handed to the network."""
        self.sent = max(self.sent, offset + length)
        self._send_times.append((offset + length, now))
        self._record(now, None)

    def on_ack(self, now: float, acked: int) -> None:
        """Record a cumulative ack: the receiver has the first ``acked`` bytes.

        Duplicate or older acks are ignored here; :class:`OutgoingTransfer`
        is the one that checks the peer's acks make sense.
        """
        if acked <= self.acked:
            return
        newly_acked = acked - self.acked
        self.acked = acked
        # The last chunk whose end this ack covers gives the RTT sample.
        sample: float | None = None
        while self._send_times and self._send_times[0][0] <= acked:
            sample = now - self._send_times.popleft()[1]
        if sample is not None:
            self.rtt = sample
            self.base_rtt = sample if self.base_rtt is None else min(self.base_rtt, sample)
        self._on_ack(now, newly_acked, sample)
        self._record(now, sample)

    def _on_ack(self, now: float, newly_acked: int, rtt: float | None) -> None:
        """Hook for subclasses: react to ``newly_acked`` bytes and an RTT sample (or ``None``)."""

    def _record(self, now: float, rtt: float | None) -> None:
        self.trace.append(TraceRow(now, self.sent, self.acked, self.window_bytes, rtt))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} chunk={self.chunk_size} window={self.window_bytes} in_flight={self.in_flight}>"


class SleepPaced(SendStrategy):
    """The seed's approach: send one chunk, wait ``pause`` seconds, repeat.

    It ignores acks entirely (they are only traced), so its speed is at most
    ``chunk_size / pause`` whatever the link can do, and when the link is
    slower than that, the surplus waits in queues.  It has no window; its
    trace records ``chunk_size``, the bytes it releases per pause.

    Args:
        chunk_size: bytes per chunk.
        pause: seconds between two chunks.
    """

    name = "sleep"

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE, pause: float = 0.01) -> None:
        if pause < 0:
            raise ValueError(f"pause must be >= 0 seconds, got {pause}")
        super().__init__(chunk_size)
        self.pause = pause
        self._next_send = float("-inf")

    @property
    def window_bytes(self) -> int:
        return self.chunk_size

    def allowance(self, now: float) -> int:
        return self.chunk_size if now >= self._next_send else 0

    def wake_at(self, now: float) -> float | None:
        return self._next_send

    def on_sent(self, now: float, offset: int, length: int) -> None:
        self._next_send = now + self.pause
        super().on_sent(now, offset, length)


class FixedWindow(SendStrategy):
    """At most ``chunks`` full chunks sent and not yet acknowledged.

    Args:
        chunks: the window, in chunks.
        chunk_size: bytes per chunk.
    """

    name = "fixed"

    def __init__(self, chunks: int = 8, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if chunks < 1:
            raise ValueError(f"a window needs at least 1 chunk, got {chunks}")
        super().__init__(chunk_size)
        self.chunks = chunks

    @property
    def window_bytes(self) -> int:
        return self.chunks * self.chunk_size


class AdaptiveWindow(SendStrategy):
    """A delay-based window, after TCP Vegas and LEDBAT (RFC 6817).

    The theory, once.  With a window of W bytes and a round-trip time RTT,
    the sender moves W / RTT bytes per second.  While the link is not full,
    a bigger W means more speed and RTT stays at its floor, the *base RTT*.
    Once the link is full, a bigger W only lengthens a queue somewhere
    (a socket buffer, the server's queue), and RTT grows by the time a byte
    waits in it: the *queueing delay*, RTT - base RTT.  So:

    * slow start: grow W by half of every acked byte (W grows by half each
      round trip; TCP doubles, but a delay-based sender should not overshoot
      by a whole window) until the queueing delay passes half the target;
      then cut W by base/RTT, which removes the queue slow start just built
      (Vegas' estimate);
    * then, on every ack, move W towards the target like LEDBAT::

          off_target = (target - queueing_delay) / target    # 1 .. 0 .. negative
          W += gain * off_target * newly_acked * chunk_size / W

      about ``gain`` chunks per round trip up while there is no queue,
      down when the queue is over target (never more than half W per round
      trip, as RFC 6817 asks);
    * W stays between ``min_chunks`` and ``max_chunks`` chunks;
    * the chunk size follows the measured rate, W / RTT: a chunk is what the
      path moves in ``chunk_time`` (1 ms), at most a quarter of W, never below
      the starting ``chunk_size`` nor above ``max_chunk_size``.  That is the bandwidth-delay
      product of a 1 ms path: on loopback (base RTT about 1 ms, hundreds of
      MB/s) chunks reach 252 KiB, and the per-frame costs (a header, a few
      Python calls per hop, an ack) become eight times rarer than with 32 KiB;
      on a slow link, even a long one, chunks stay at 32 KiB, so a chat line
      never waits more than about a millisecond of link time behind one chunk.

    The target is ``max(target_delay, target_fraction * base_rtt)``: a few
    milliseconds on a fast link, a fraction of the RTT on a slow one.  Chunks
    are 32 KiB by default, half the other strategies' size: a chat line may
    have to wait behind one chunk per hop, and finer steps let the window
    settle closer to the target.  The
    current RTT is the lowest of the last ``filter_samples`` samples, so one
    late ack (a disk hiccup at the receiver) does not count as a queue.  The
    base RTT is the lowest sample of the whole transfer (LEDBAT forgets old
    minimums after some minutes, to follow route changes; a file transfer in
    a lab is short enough not to bother).

    Args:
        chunk_size: bytes per chunk.
        initial_chunks: W at the start, in chunks.
        min_chunks: W never goes below this many chunks.
        max_chunks: W never goes above this many chunks.
        target_delay: queueing delay aimed at, in seconds.
        target_fraction: or this fraction of the base RTT, if larger.
        gain: chunks of growth per round trip when there is no queue.
        slow_start_growth: in slow start, W grows by this fraction of each acked byte.
        filter_samples: how many recent RTT samples the current RTT is the minimum of.
        max_chunk_size: the largest chunk (default: the most a 256 KiB frame
            holds, rounded down to 4 KiB); pass ``chunk_size`` to keep chunks fixed.
        chunk_time: seconds of the measured rate one chunk may hold.
    """

    name = "adaptive"

    def __init__(
        self,
        chunk_size: int = DEFAULT_CHUNK_SIZE // 2,
        *,
        initial_chunks: float = 4,
        min_chunks: float = 2,
        max_chunks: float = 128,
        target_delay: float = 0.005,
        target_fraction: float = 0.1,
        gain: float = 1.0,
        filter_samples: int = 4,
        slow_start_growth: float = 0.5,
        max_chunk_size: int | None = None,
        chunk_time: float = 0.001,
    ) -> None:
        super().__init__(chunk_size)
        self.base_chunk_size = chunk_size
        largest = MAX_CHUNK_SIZE // (4 * KiB) * (4 * KiB)
        self.max_chunk_size = max(chunk_size, min(max_chunk_size if max_chunk_size is not None else largest,
                                                  MAX_CHUNK_SIZE))
        if chunk_time < 0:
            raise ValueError("chunk_time must be >= 0")
        self.chunk_time = chunk_time
        if not 1 <= min_chunks <= initial_chunks <= max_chunks:
            raise ValueError("need 1 <= min_chunks <= initial_chunks <= max_chunks")
        if target_delay <= 0 or target_fraction < 0 or gain <= 0 or filter_samples < 1:
            raise ValueError("target_delay and gain must be > 0, target_fraction >= 0, filter_samples >= 1")
        self.min_window = min_chunks * chunk_size
        self.max_window = max_chunks * chunk_size
        self.target_delay = target_delay
        self.target_fraction = target_fraction
        self.gain = gain
        self.slow_start_growth = slow_start_growth
        self.slow_start = True
        self._window = float(initial_chunks * chunk_size)
        self._recent: deque[float] = deque(maxlen=filter_samples)

    @property
    def window_bytes(self) -> int:
        return int(self._window)

    @property
    def target(self) -> float:
        """The queueing delay aimed at, in seconds."""
        return max(self.target_delay, self.target_fraction * (self.base_rtt or 0.0))

    @property
    def queueing_delay(self) -> float | None:
        """Current RTT (filtered) minus base RTT, in seconds; ``None`` before the first sample."""
        if not self._recent or self.base_rtt is None:
            return None
        return min(self._recent) - self.base_rtt

    def _on_ack(self, now: float, newly_acked: int, rtt: float | None) -> None:
        if rtt is None:
            return
        self._recent.append(rtt)
        queueing = self.queueing_delay
        assert queueing is not None and self.base_rtt is not None
        target = self.target
        if self.slow_start:
            if queueing > target / 2:
                # A queue has built up: leave slow start and shrink the window
                # by base/current, which drains about what slow start queued.
                self.slow_start = False
                self._window *= self.base_rtt / min(self._recent)
            else:
                self._window += self.slow_start_growth * newly_acked
        else:
            off_target = (target - queueing) / target
            # Summed over one round trip this changes W by gain*off_target chunks;
            # bound the decrease to half a window per round trip.
            off_target = max(off_target, -self._window / (2 * self.gain * self.base_chunk_size))
            self._window += self.gain * off_target * newly_acked * self.base_chunk_size / self._window
        self._window = min(max(self._window, self.min_window), self.max_window)
        rate = self._window / max(min(self._recent), 1e-6)  # bytes per second the window moves at the current RTT
        # At most a quarter of the window, so that chunks keep flowing while acks come back (and a
        # chunk bigger than the window could never be sent at all).
        chunk = min(rate * self.chunk_time, self._window / 4) // (4 * KiB) * (4 * KiB)  # whole pages
        self.chunk_size = int(min(max(chunk, self.base_chunk_size), self.max_chunk_size))


STRATEGIES: dict[str, type[SendStrategy]] = {
    SleepPaced.name: SleepPaced,
    FixedWindow.name: FixedWindow,
    AdaptiveWindow.name: AdaptiveWindow,
}


def make_strategy(name: str, **kwargs: float) -> SendStrategy:
    """Build a fresh strategy by name, as the CLI's ``--strategy`` flag does.

    Args:
        name: ``"sleep"``, ``"fixed"`` or ``"adaptive"``.
        **kwargs: passed to the class, e.g. ``pause=0.05`` or ``chunks=16``.

    Returns:
        A new strategy object (one per transfer: it keeps that transfer's state).

    Raises:
        ValueError: unknown name, or a bad parameter value.
    """
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}") from None
    return cls(**kwargs)  # type: ignore[arg-type]
