"""The file-transfer engine, without sockets: sending strategies, sender and receiver state.

Like :mod:`chatlab.protocol`, this module never imports ``socket``,
``threading`` or ``time``.  Every method that needs the time takes a
``now: float`` argument (seconds, from any monotonic clock), so the whole
engine runs the same under a real clock, a fake one in the tests, or a
simulated link in a notebook.  The only I/O here is on files, on the
receiving side (``NAME.part`` in the download directory).

The seed's question: "sleeping between sends works, but it is slow -- could
we adjust the speed dynamically, like TCP?"  Three answers, one interface
(:class:`SendStrategy`):

* :class:`SleepPaced` -- the seed's own approach: one chunk, a pause, repeat.
  It never listens to the receiver, so it is either slower than the link
  (pause too long) or it piles data up in queues (pause too short).
* :class:`FixedWindow` -- at most N chunks sent but not yet acknowledged.
  Acks clock the sender, but N has to be guessed: too small and the link
  idles, too large and the extra chunks sit in a queue.
* :class:`AdaptiveWindow` -- a delay-based window (TCP Vegas, LEDBAT): the
  smallest round-trip time seen is the empty-queue RTT; while RTTs stay near
  it, grow; when they rise, data is queueing somewhere, so shrink.  That
  fills the link without a standing queue, and chat frames sharing the
  connection never wait behind megabytes of file.

How a driver (the client's writer thread, a test, a notebook) uses it.

Sending::

    t = OutgoingTransfer(stream_id, size, sha256, read=file_reader(f),
                         strategy=make_strategy("adaptive"))
    send(t.offer(peer="bob", name="report.pdf"))
    # then, for every FileAccept / FileAck / FileDone / FileReject / FileCancel
    # frame with this stream id:
    for message in t.handle(now(), message):
        send(message)                        # FileChunk ... then one FileDone
    # and whenever t.wake_at(now()) comes due (SleepPaced's pause):
    for message in t.messages_to_send(now()):
        send(message)
    # t.done / t.failed say when it is over; t.stats(), t.trace for plots.

Receiving::

    t = IncomingTransfer(offer, download_dir)   # UnsafeFileName if the name is hostile
    send(t.accept())                            # FileAccept(offset=bytes already in NAME.part)
    # then, for every FileChunk / FileDone / FileCancel frame with this stream id:
    for message in t.handle(message):
        send(message)                           # a FileAck per chunk, a FileDone at the end
    # t.path is the finished file once t.done; t.close() on disconnect.

Either side: if ``handle`` raises :class:`TransferError`, the transfer is
over; send the peer ``t.cancel(str(exc))`` and tell the person why.  (A
peer that breaks the transfer protocol raises :class:`TransferProtocolError`,
which is also a :class:`~chatlab.errors.RemoteProtocolError`: catch
``TransferError`` first if only the one transfer should end, not the
connection.)  A hostile file name fails already in ``IncomingTransfer(...)``
with :class:`UnsafeFileName`: answer ``FileReject(offer.stream_id, str(exc))``.

Neither object is thread-safe: drive each from one thread, or hold a lock.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import unicodedata
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, ClassVar, NamedTuple

from .errors import LocalProtocolError, RemoteProtocolError, TransferError
from .protocol import (
    CHUNK_PREFIX,
    MAX_PAYLOAD,
    FileAccept,
    FileAck,
    FileCancel,
    FileChunk,
    FileDone,
    FileOffer,
    FileReject,
    Message,
)

KiB = 1024
MiB = 1024 * KiB
DEFAULT_CHUNK_SIZE = 64 * KiB
# A FileChunk's payload is an 8-byte offset followed by the data.
MAX_CHUNK_SIZE = MAX_PAYLOAD - CHUNK_PREFIX.size


# --------------------------------------------------------------------------
# Errors.  The base TransferError lives in chatlab.errors; these say which
# way a transfer went wrong.
# --------------------------------------------------------------------------


class TransferProtocolError(TransferError, RemoteProtocolError):
    """The peer broke the transfer protocol on one stream.

    A chunk at the wrong offset, an ack that goes backwards, a FileDone
    before every byte arrived.  It is a :class:`TransferError` (so a driver
    cancels this one transfer) *and* a :class:`RemoteProtocolError` (the
    peer is at fault), so either ``except`` clause catches it.
    """


class UnsafeFileName(TransferError):
    """The sender's file name is not safe to create in the download directory."""

    def __init__(self, name: str, reason: str) -> None:
        shown = name if len(name) <= 80 else name[:77] + "..."
        super().__init__(f"refusing file name {shown!r}: {reason}")
        self.name = name
        self.reason = reason


class ChecksumMismatch(TransferError):
    """Every byte arrived, but their SHA-256 is not the one the sender offered."""

    def __init__(self, name: str, expected: str, actual: str) -> None:
        super().__init__(f"{name}: SHA-256 mismatch (offered {expected[:16]}..., received {actual[:16]}...)")
        self.expected = expected
        self.actual = actual


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
    * W stays between ``min_chunks`` and ``max_chunks`` chunks.

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
    ) -> None:
        super().__init__(chunk_size)
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
            off_target = max(off_target, -self._window / (2 * self.gain * self.chunk_size))
            self._window += self.gain * off_target * newly_acked * self.chunk_size / self._window
        self._window = min(max(self._window, self.min_window), self.max_window)


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


# --------------------------------------------------------------------------
# The sender.
# --------------------------------------------------------------------------


def _check_stream(message: Message, stream_id: int) -> None:
    """A driver must route messages by stream id; passing the wrong one is its bug."""
    got = getattr(message, "stream_id", None)
    if got != stream_id:
        raise ValueError(f"{type(message).__name__} for stream {got} given to transfer {stream_id}")


class TransferState(enum.Enum):
    """Where a transfer is in its life.  DONE and FAILED are final."""

    OFFERED = "offered"  # the offer is out (sender) or in (receiver); no answer yet
    ACTIVE = "active"  # accepted: chunks and acks are flowing
    DONE = "done"  # every byte arrived and the SHA-256 matched
    FAILED = "failed"  # rejected, cancelled by either side, or broken; see .reason


@dataclass(frozen=True)
class TransferStats:
    """How fast a transfer went.  ``bytes`` counts this session only (not resumed bytes)."""

    bytes: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        """Throughput in megabytes (10**6 bytes) per second; 0.0 if no time passed."""
        return self.bytes / self.seconds / 1e6 if self.seconds > 0 else 0.0


SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")

ToReceiver = FileChunk | FileDone | FileCancel
"""What a sender sends once its offer is out."""


def sha256_file(file: BinaryIO, block_size: int = 1 * MiB) -> str:
    """The SHA-256 of a binary file object from its current position, read in blocks.

    Args:
        file: opened with ``"rb"``.
        block_size: bytes read at a time (the file is never read whole).

    Returns:
        The digest as 64 lowercase hex digits, as :class:`FileOffer` carries it.
    """
    digest = hashlib.sha256()
    while block := file.read(block_size):
        digest.update(block)
    return digest.hexdigest()


def file_reader(file: BinaryIO) -> Callable[[int, int], bytes]:
    """A ``read(offset, n)`` function over a binary file, for :class:`OutgoingTransfer`."""

    def read(offset: int, n: int) -> bytes:
        file.seek(offset)
        return file.read(n)

    return read


class _TransferLife:
    """What both sides of a transfer track: its stream, where it is, and why it failed."""

    def __init__(self, stream_id: int, size: int, sha256: str) -> None:
        self.stream_id = stream_id
        self.size = size
        self.sha256 = sha256.lower()
        self.state = TransferState.OFFERED
        self.reason = ""  # why it failed
        self.start_offset = 0  # bytes the receiver already had (a resume)

    @property
    def done(self) -> bool:
        """Every byte arrived and the SHA-256 matched."""
        return self.state is TransferState.DONE

    @property
    def failed(self) -> bool:
        """Rejected, cancelled or broken; :attr:`reason` says why."""
        return self.state is TransferState.FAILED

    def _fail(self, reason: str) -> None:
        if self.state is not TransferState.FAILED:
            self.state = TransferState.FAILED
            self.reason = reason


class OutgoingTransfer(_TransferLife):
    """The sender's side of one file transfer, sans-I/O.

    It never touches a socket or a clock: the driver passes ``now`` in,
    feeds it the receiver's messages with :meth:`handle` and sends whatever
    comes back.  It reads the file only through ``read(offset, n)``, so the
    driver owns the file (and closes it).  Which bytes go next is decided
    here; *when* they may go is the strategy's business.

    Args:
        stream_id: the transfer's stream id on the connection.
        size: the file's size in bytes.
        sha256: the file's SHA-256, 64 hex digits (see :func:`sha256_file`).
        read: ``read(offset, n)`` returns ``n`` bytes of the file from ``offset``
            (fewer only at the end of the file).
        strategy: decides when bytes may be sent; default ``AdaptiveWindow()``.

    Raises:
        ValueError: a negative size or a malformed SHA-256.
    """

    def __init__(
        self,
        stream_id: int,
        size: int,
        sha256: str,
        read: Callable[[int, int], bytes],
        strategy: SendStrategy | None = None,
    ) -> None:
        if size < 0:
            raise ValueError(f"file size must be >= 0, got {size}")
        if not SHA256_HEX.fullmatch(sha256):
            raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
        super().__init__(stream_id, size, sha256)
        self.strategy = strategy if strategy is not None else AdaptiveWindow()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._read = read
        self._done_sent = False

    # -- what the driver reads -------------------------------------------

    @property
    def sent(self) -> int:
        """File offset just past the last byte sent."""
        return self.strategy.sent

    @property
    def acked(self) -> int:
        """Bytes the receiver has confirmed writing."""
        return self.strategy.acked

    @property
    def trace(self) -> list[TraceRow]:
        """The strategy's trace: one row per chunk sent and per ack, for plots."""
        return self.strategy.trace

    def stats(self) -> TransferStats:
        """Bytes acked this session and the seconds from accept to the last ack (or to done)."""
        if self.started_at is None:
            return TransferStats(0, 0.0)
        end = self.finished_at
        if end is None:
            end = self.trace[-1].time if self.trace else self.started_at
        return TransferStats(self.acked - self.start_offset, end - self.started_at)

    # -- the driving interface -------------------------------------------

    def offer(self, peer: str, name: str) -> FileOffer:
        """The :class:`FileOffer` announcing this transfer to ``peer`` as ``name``."""
        return FileOffer(self.stream_id, peer, name, self.size, self.sha256)

    def handle(self, now: float, message: Message) -> list[ToReceiver]:
        """Feed one message from the receiver; return the messages to send next.

        Args:
            now: the current time, in seconds.
            message: a FileAccept, FileAck, FileDone, FileReject or FileCancel
                with this transfer's stream id.

        Returns:
            Chunks the strategy allows now, then a :class:`FileDone` once every
            byte is out; empty if nothing may be sent yet.

        Raises:
            TransferProtocolError: the receiver broke the protocol, or sent a
                message a sender does not expect (the transfer is then
                failed; send ``cancel(str(exc))``).
            ValueError: the message belongs to another stream (a driver bug).
        """
        _check_stream(message, self.stream_id)
        if self.state in (TransferState.DONE, TransferState.FAILED):
            return []  # acks and answers still in flight when it ended
        if isinstance(message, FileAccept):
            self.accept(now, message.offset)
        elif isinstance(message, FileAck):
            self.on_ack(now, message.received)
        elif isinstance(message, FileDone):
            self.on_done(now)
        elif isinstance(message, (FileReject, FileCancel)):
            verb = "rejected" if isinstance(message, FileReject) else "cancelled"
            self._fail(f"receiver {verb} the transfer" + (f": {message.reason}" if message.reason else ""))
        else:
            raise self._protocol_error(f"a sender does not expect {type(message).__name__}")
        return self.messages_to_send(now)

    def accept(self, now: float, offset: int = 0) -> None:
        """The receiver accepted, and already has the first ``offset`` bytes (resume).

        Raises:
            TransferProtocolError: not waiting for an answer, or ``offset`` outside the file.
        """
        if self.state is not TransferState.OFFERED:
            raise self._protocol_error(f"FileAccept while the transfer is {self.state.value}")
        if not 0 <= offset <= self.size:
            raise self._protocol_error(f"receiver asked to resume at byte {offset} of a {self.size}-byte file")
        self.state = TransferState.ACTIVE
        self.start_offset = offset
        self.started_at = now
        self.strategy.start(now, offset)

    def messages_to_send(self, now: float) -> list[ToReceiver]:
        """The chunks the strategy allows at ``now``, and a FileDone after the last one.

        Only full chunks go (the last one of the file may be shorter); a
        window with less than a chunk of room waits for the next ack.

        Raises:
            TransferError: ``read`` failed or returned too few bytes (the file
                changed while it was being sent); the transfer is then failed.
        """
        out: list[ToReceiver] = []
        if self.state is not TransferState.ACTIVE:
            return out
        strategy = self.strategy
        while strategy.sent < self.size:
            length = min(strategy.chunk_size, self.size - strategy.sent)
            if strategy.allowance(now) < length:
                break
            offset = strategy.sent
            try:
                data = self._read(offset, length)
            except OSError as exc:
                self._fail(f"cannot read the file at byte {offset}: {exc}")
                raise TransferError(self.reason) from exc
            if len(data) != length:
                self._fail(f"the file changed while it was being sent: read {len(data)} of {length} bytes at {offset}")
                raise TransferError(self.reason)
            out.append(FileChunk(self.stream_id, offset, data))
            strategy.on_sent(now, offset, length)
        if strategy.sent == self.size and not self._done_sent:
            self._done_sent = True
            out.append(FileDone(self.stream_id))
        return out

    def wake_at(self, now: float) -> float | None:
        """When to call :meth:`messages_to_send` again if no message arrives first.

        Returns:
            A time (``<= now`` means "now"), or ``None``: only a message
            from the receiver can let more bytes go (or all are out).
        """
        if self.state is not TransferState.ACTIVE or self._done_sent:
            return None
        return self.strategy.wake_at(now)

    def on_ack(self, now: float, received: int) -> None:
        """The receiver has written the first ``received`` bytes (cumulative).

        Raises:
            TransferProtocolError: an ack before FileAccept, one that goes
                backwards, or one for bytes never sent.
        """
        if self.state in (TransferState.DONE, TransferState.FAILED):
            return  # acks still in flight when it ended
        if self.state is not TransferState.ACTIVE:
            raise self._protocol_error("FileAck before FileAccept")
        if received < self.acked:
            raise self._protocol_error(f"ack went backwards from {self.acked} to {received} bytes")
        if received > self.sent:
            raise self._protocol_error(f"ack for {received} bytes, but only {self.sent} were sent")
        self.strategy.on_ack(now, received)

    def on_done(self, now: float) -> None:
        """The receiver wrote every byte and verified the SHA-256.

        Raises:
            TransferProtocolError: FileDone before every byte was acked.
        """
        if self.state is TransferState.FAILED:
            return
        if self.state is not TransferState.ACTIVE or self.acked != self.size:
            raise self._protocol_error(f"receiver said done after acking {self.acked} of {self.size} bytes")
        self.state = TransferState.DONE
        self.finished_at = now

    def cancel(self, reason: str = "cancelled by sender") -> FileCancel:
        """Give up on this transfer; returns the :class:`FileCancel` to send."""
        if self.state is not TransferState.DONE:
            self._fail(reason)
        return FileCancel(self.stream_id, reason)

    # -- internals ---------------------------------------------------------

    def _protocol_error(self, what: str) -> TransferProtocolError:
        self._fail(what)
        return TransferProtocolError(f"transfer {self.stream_id}: {what}")

    def __repr__(self) -> str:
        return (
            f"<OutgoingTransfer sid={self.stream_id} {self.state.value} "
            f"acked={self.acked}/{self.size} strategy={self.strategy.name}>"
        )


# --------------------------------------------------------------------------
# The receiver.  Never trust the sender's file name: it is chosen by a
# stranger, and "../../.bashrc" or "C:\\Windows\\win.ini" are names too.
# --------------------------------------------------------------------------

# Reserved by Windows in any directory, with any extension ("nul.txt" is NUL too).
WINDOWS_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in "123456789\u00b9\u00b2\u00b3"}
)
# Not allowed in file names on Windows; ':' would also open an NTFS alternate data stream.
WINDOWS_FORBIDDEN_CHARS = frozenset('<>:"|?*')
# Invisible characters that reorder text: "evil\u202egnp.exe" displays as "evilexe.png".
BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Most file systems allow 255 bytes; keep room for " (99)" and ".part".
MAX_NAME_BYTES = 200
PART_SUFFIX = ".part"


def safe_filename(name: str) -> str:
    """The name to save a received file under, or :class:`UnsafeFileName`.

    Directories are stripped, not kept: ``"photos/cat.jpg"`` (or
    ``"photos\\cat.jpg"``) is saved as ``"cat.jpg"`` in the download
    directory.  Anything that tries to leave the download directory is
    refused outright rather than repaired, because a sender that tries is
    either broken or hostile: a ``..`` component, an absolute path, a drive
    letter.  So is anything Windows would treat specially (device names such
    as ``CON`` or ``nul.txt``, the characters ``<>:"|?*``, a trailing dot or
    space), control and text-direction characters, an empty name or one of
    only dots, and a name longer than :data:`MAX_NAME_BYTES` bytes of UTF-8.
    The same rules apply on every OS, so a name is safe everywhere or nowhere.

    Args:
        name: the name from a :class:`FileOffer`.

    Returns:
        The last path component of ``name``, unchanged.

    Raises:
        UnsafeFileName: with the reason in its message.
    """
    if not name:
        raise UnsafeFileName(name, "the name is empty")
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Cs") or ch in BIDI_CONTROLS:
            raise UnsafeFileName(name, f"it contains the control or text-direction character U+{ord(ch):04X}")
    if name[0] in "/\\":
        raise UnsafeFileName(name, "it is an absolute path")
    if re.match(r"[A-Za-z]:", name):
        raise UnsafeFileName(name, "it starts with a drive letter")
    parts = re.split(r"[/\\]", name)
    if ".." in parts:
        raise UnsafeFileName(name, "'..' would leave the download directory")
    base = parts[-1]
    if not base.strip(". "):
        raise UnsafeFileName(name, "there is no file name in it" if not base else "it is only dots or spaces")
    for ch in base:
        if ch in WINDOWS_FORBIDDEN_CHARS:
            raise UnsafeFileName(name, f"{ch!r} is not allowed in file names on Windows")
    if base[-1] in ". ":
        raise UnsafeFileName(name, "it ends with a dot or a space, which Windows drops")
    device = base.split(".")[0].rstrip(" ")
    if device.upper() in WINDOWS_DEVICE_NAMES:
        raise UnsafeFileName(name, f"{device} is a device name on Windows, with any extension")
    if len(base.encode("utf-8")) > MAX_NAME_BYTES:
        raise UnsafeFileName(name, f"it is longer than {MAX_NAME_BYTES} bytes")
    return base


def free_path(directory: Path, name: str) -> Path:
    """``directory / name`` if nothing is there, else the first free ``name (1).ext``, ``name (2).ext`` ...

    As browsers do: ``report.pdf`` -> ``report (1).pdf``; ``.bashrc`` -> ``.bashrc (1)``.
    """
    path = directory / name
    if not os.path.lexists(path):
        return path
    stem, dot, ext = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
    n = 1
    while os.path.lexists(path := directory / f"{stem} ({n}){dot}{ext}"):
        n += 1
    return path


class PartFile:
    """``NAME.part`` in a directory: an append-only writer with a running SHA-256.

    The ``.part`` suffix means "not complete yet": nobody mistakes a broken
    download for the real file, and the bytes in it can be kept to resume.
    Only :meth:`commit`, after the SHA-256 matched, gives the file its real
    name.  The file is written chunk by chunk and never held in memory.

    Args:
        directory: the download directory (must exist).
        name: a name already checked by :func:`safe_filename`.
        size: the size the finished file will have.
        resume: keep the bytes of an existing ``NAME.part`` (re-reading them
            once to continue the SHA-256) instead of starting from zero.  A
            ``.part`` longer than ``size`` cannot belong to this file and is
            started over.  One from a different file of the same name is not
            detected here; the SHA-256 check at the end catches it.

    Raises:
        TransferError: the ``.part`` cannot be opened, or it is a symbolic link.
    """

    def __init__(self, directory: str | os.PathLike[str], name: str, size: int, *, resume: bool = True) -> None:
        self.directory = Path(directory)
        self.name = name
        self.size = size
        self.path = self.directory / (name + PART_SUFFIX)
        self.offset = 0  # bytes in the .part so far: what the receiver acks
        self._digest = hashlib.sha256()
        if self.path.is_symlink():  # appending through a link could write anywhere
            raise TransferError(f"{self.path} is a symbolic link; refusing to write through it")
        try:
            if resume and self.path.is_file() and self.path.stat().st_size <= size:
                with open(self.path, "rb") as old:
                    while block := old.read(1 * MiB):
                        self._digest.update(block)
                        self.offset += len(block)
                self._file = open(self.path, "ab")
            else:
                self._file = open(self.path, "wb")
        except OSError as exc:
            raise TransferError(f"cannot open {self.path}: {exc}") from exc

    @property
    def closed(self) -> bool:
        return self._file.closed

    def append(self, data: bytes) -> None:
        """Write ``data`` at the end and hand it to the OS (so a crash of this program loses nothing).

        Raises:
            TransferError: the write failed (disk full, ...).
        """
        try:
            self._file.write(data)
            self._file.flush()
        except OSError as exc:
            raise TransferError(f"cannot write {self.path}: {exc}") from exc
        self._digest.update(data)
        self.offset += len(data)

    def hexdigest(self) -> str:
        """The SHA-256 of every byte in the ``.part`` so far."""
        return self._digest.hexdigest()

    def commit(self, sha256: str, *, overwrite: bool = False) -> Path:
        """Verify the SHA-256, then give the file its real name.

        Args:
            sha256: the digest the sender offered.
            overwrite: replace an existing ``NAME``; otherwise the file is
                saved as the first free ``NAME (1).ext``, ``NAME (2).ext`` ...

        Returns:
            Where the finished file is.

        Raises:
            ChecksumMismatch: the ``.part`` is deleted (its bytes are wrong,
                and resuming from them could never succeed).
            TransferError: flushing or renaming failed.
        """
        actual = self.hexdigest()
        if actual != sha256.lower():
            self.discard()
            raise ChecksumMismatch(self.name, sha256.lower(), actual)
        try:
            # fsync before the rename: otherwise a power cut can leave a
            # renamed, complete-looking file whose data never reached the disk.
            os.fsync(self._file.fileno())
            self._file.close()
            target = self.directory / self.name if overwrite else free_path(self.directory, self.name)
            # os.replace is atomic: NAME is either absent or complete.  (Between
            # free_path and here another program could create NAME; fine for a lab.)
            os.replace(self.path, target)
        except OSError as exc:
            raise TransferError(f"cannot save {self.name}: {exc}") from exc
        return target

    def close(self) -> None:
        """Close the file and keep the ``.part`` (to resume later)."""
        self._file.close()

    def discard(self) -> None:
        """Close the file and delete the ``.part``."""
        self._file.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


ToSender = FileAck | FileDone
"""What a receiver sends in answer to the sender's chunks."""


class IncomingTransfer(_TransferLife):
    """The receiver's side of one file transfer: checks, writes and verifies.

    No sockets: the driver feeds it the sender's messages with :meth:`handle`
    and sends back what it returns.  Chunks are accepted only at the offset
    that comes next; each is written to ``NAME.part`` and acked with the
    total written so far.  When the sender's :class:`FileDone` arrives, the
    SHA-256 is checked and the file renamed to ``NAME`` (or ``NAME (1).ext``
    if ``NAME`` exists and ``overwrite`` is false), and a FileDone goes back.

    What happens to ``NAME.part`` when it does not end well: a bad SHA-256
    deletes it; everything else (the peer cancels, the connection drops,
    :meth:`close`, :meth:`cancel`, a protocol error) keeps it, so a later
    offer of the same name resumes from its bytes; ``cancel(keep_part=False)``
    deletes it.

    Args:
        offer: the sender's :class:`FileOffer`.
        directory: the download directory (must exist).
        overwrite: replace an existing file of the same name.
        resume: continue from an existing ``NAME.part``.

    Raises:
        UnsafeFileName: the offered name is hostile (answer with a
            :class:`FileReject` carrying ``str(exc)``).
        TransferProtocolError: a negative size or a malformed SHA-256.
    """

    def __init__(
        self,
        offer: FileOffer,
        directory: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        resume: bool = True,
    ) -> None:
        self.name = safe_filename(offer.name)
        if offer.size < 0:
            raise TransferProtocolError(f"transfer {offer.stream_id}: offered a file of {offer.size} bytes")
        if not SHA256_HEX.fullmatch(offer.sha256):
            raise TransferProtocolError(
                f"transfer {offer.stream_id}: offered SHA-256 {offer.sha256!r} is not 64 hex digits"
            )
        super().__init__(offer.stream_id, offer.size, offer.sha256)
        self.sender = offer.peer
        self.directory = Path(directory)
        self.overwrite = overwrite
        self.resume = resume
        self.path: Path | None = None  # the finished file, once done
        self._part: PartFile | None = None

    @property
    def received(self) -> int:
        """Bytes safely written so far (what the last FileAck said)."""
        if self.done:
            return self.size
        return self._part.offset if self._part is not None else 0

    @property
    def part_path(self) -> Path:
        """Where the unfinished bytes are."""
        return self.directory / (self.name + PART_SUFFIX)

    # -- the driving interface ---------------------------------------------

    def accept(self) -> FileAccept:
        """Open ``NAME.part`` and say where the sender should start.

        Returns:
            A :class:`FileAccept` whose ``offset`` is the bytes already in an
            existing ``.part`` (0 for a fresh transfer).

        Raises:
            TransferError: the ``.part`` cannot be opened.
            LocalProtocolError: the transfer was already accepted or has ended.
        """
        if self.state is not TransferState.OFFERED:
            raise LocalProtocolError(f"transfer {self.stream_id} is {self.state.value}, it cannot be accepted")
        try:
            self._part = PartFile(self.directory, self.name, self.size, resume=self.resume)
        except TransferError as exc:
            self._fail(str(exc))
            raise
        self.state = TransferState.ACTIVE
        self.start_offset = self._part.offset
        return FileAccept(self.stream_id, self._part.offset)

    def reject(self, reason: str = "") -> FileReject:
        """Say no to the offer; returns the :class:`FileReject` to send."""
        self._end(reason or "rejected", keep_part=True)
        return FileReject(self.stream_id, reason)

    def handle(self, message: Message) -> list[ToSender]:
        """Feed one message from the sender (FileChunk, FileDone or FileCancel); return what to send back.

        Returns:
            ``[FileAck]`` for a chunk, ``[FileDone]`` once the file is
            verified and saved, ``[]`` for a cancel or for messages that
            arrive after the transfer ended.

        Raises:
            TransferProtocolError: the sender broke the protocol, or sent a
                message a receiver does not expect.
            ChecksumMismatch: the bytes are not the offered file.
            TransferError: a disk error.  After any of these the transfer is
                failed: send ``cancel(str(exc))``.
            ValueError: the message belongs to another stream (a driver bug).
        """
        _check_stream(message, self.stream_id)
        if self.state in (TransferState.DONE, TransferState.FAILED):
            return []  # chunks still in flight when it ended
        if isinstance(message, FileChunk):
            return [self.receive(message)]
        if isinstance(message, FileDone):
            return [self.finish()]
        if not isinstance(message, FileCancel):
            raise self._protocol_error(f"a receiver does not expect {type(message).__name__}")
        self._end("sender cancelled the transfer" + (f": {message.reason}" if message.reason else ""), keep_part=True)
        return []

    def receive(self, chunk: FileChunk) -> FileAck:
        """Write one chunk; it must start exactly where the last one ended.

        Returns:
            The :class:`FileAck` to send: total bytes written so far.

        Raises:
            TransferProtocolError: before accept, at the wrong offset, empty,
                or past the offered size.
            TransferError: the write failed.
        """
        part = self._active_part("FileChunk")
        if chunk.offset != part.offset:
            raise self._protocol_error(f"chunk at byte {chunk.offset}, expected byte {part.offset}")
        if not chunk.data:
            raise self._protocol_error(f"empty chunk at byte {chunk.offset}")
        if chunk.offset + len(chunk.data) > self.size:
            end = chunk.offset + len(chunk.data)
            raise self._protocol_error(f"chunk ends at byte {end} of a {self.size}-byte file")
        try:
            part.append(chunk.data)
        except TransferError as exc:
            self._end(str(exc), keep_part=True)
            raise
        return FileAck(self.stream_id, part.offset)

    def finish(self) -> FileDone:
        """The sender says every byte is out: verify the SHA-256 and save the file.

        Returns:
            The :class:`FileDone` to send back.

        Raises:
            TransferProtocolError: bytes are missing.
            ChecksumMismatch: the ``.part`` is deleted; nothing complete-looking is left.
            TransferError: flushing or renaming failed.
        """
        part = self._active_part("FileDone")
        if part.offset != self.size:
            raise self._protocol_error(f"sender said done after {part.offset} of {self.size} bytes")
        try:
            self.path = part.commit(self.sha256, overwrite=self.overwrite)
        except TransferError as exc:
            self._fail(str(exc))  # commit already deleted or closed the .part
            raise
        self.state = TransferState.DONE
        return FileDone(self.stream_id)

    def cancel(self, reason: str = "cancelled by receiver", *, keep_part: bool = True) -> FileCancel:
        """Give up on this transfer; returns the :class:`FileCancel` to send.

        Args:
            reason: told to the sender.
            keep_part: keep ``NAME.part`` to resume later (it never looks complete).
        """
        if self.state is not TransferState.DONE:
            self._end(reason, keep_part=keep_part)
        return FileCancel(self.stream_id, reason)

    def close(self) -> None:
        """The connection is gone (or the program stops): close the file, keep the ``.part``."""
        if self.state in (TransferState.OFFERED, TransferState.ACTIVE):
            self._end("closed before the transfer finished", keep_part=True)

    def __enter__(self) -> IncomingTransfer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals ---------------------------------------------------------

    def _active_part(self, what: str) -> PartFile:
        if self.state is not TransferState.ACTIVE or self._part is None:
            raise self._protocol_error(f"{what} before FileAccept")
        return self._part

    def _end(self, reason: str, *, keep_part: bool) -> None:
        self._fail(reason)
        if self._part is not None:
            if keep_part:
                self._part.close()
            else:
                self._part.discard()

    def _protocol_error(self, what: str) -> TransferProtocolError:
        self._end(what, keep_part=True)  # the bytes written so far are still good
        return TransferProtocolError(f"transfer {self.stream_id}: {what}")

    def __repr__(self) -> str:
        return (
            f"<IncomingTransfer sid={self.stream_id} {self.name!r} {self.state.value} "
            f"received={self.received}/{self.size}>"
        )
