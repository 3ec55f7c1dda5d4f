"""Tests for chatlab.transfer: strategies, sender and receiver, with a fake clock.

No sockets and no real time: every call gets ``now`` from the test, and a
small discrete-event simulator (:func:`run_loopback`) links an
OutgoingTransfer to an IncomingTransfer through a simulated link with a
one-way delay and a rate cap, so queueing delay builds exactly as the link
model says.
"""

from __future__ import annotations

import hashlib
import io

import pytest

from chatlab.errors import RemoteProtocolError, TransferError
from chatlab.protocol import FileAccept, FileAck, FileCancel, FileChunk, FileDone, FileOffer, FileReject
from chatlab.transfer import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    AdaptiveWindow,
    FixedWindow,
    OutgoingTransfer,
    SendStrategy,
    SleepPaced,
    TransferProtocolError,
    TransferState,
    file_reader,
    make_strategy,
    sha256_file,
)

# --------------------------------------------------------------------------
# Strategies on their own
# --------------------------------------------------------------------------


def send_allowed(s: SendStrategy, now: float) -> list[tuple[int, int]]:
    """Send every full chunk the strategy allows at ``now``; return (offset, length) of each."""
    sent = []
    while s.allowance(now) >= s.chunk_size:
        offset = s.sent
        s.on_sent(now, offset, s.chunk_size)
        sent.append((offset, s.chunk_size))
    return sent


def round_trip(s: SendStrategy, now: float, rtt: float) -> float:
    """One round: send what the window allows at ``now``, every chunk acked ``rtt`` later."""
    chunks = send_allowed(s, now)
    for offset, length in chunks:
        s.on_ack(now + rtt, offset + length)
    return now + rtt


def test_make_strategy_by_name() -> None:
    assert isinstance(make_strategy("sleep"), SleepPaced)
    assert isinstance(make_strategy("fixed", chunks=3), FixedWindow)
    assert make_strategy("fixed", chunks=3).window_bytes == 3 * DEFAULT_CHUNK_SIZE
    assert isinstance(make_strategy("adaptive"), AdaptiveWindow)
    assert make_strategy("sleep", pause=0.5).pause == 0.5  # type: ignore[attr-defined]
    assert make_strategy("adaptive") is not make_strategy("adaptive")  # one per transfer
    with pytest.raises(ValueError, match="sleep, fixed, adaptive"):
        make_strategy("fast")


def test_default_chunk_fits_in_a_frame() -> None:
    assert DEFAULT_CHUNK_SIZE == 64 * 1024
    assert MAX_CHUNK_SIZE + 8 == 256 * 1024
    with pytest.raises(ValueError):
        FixedWindow(chunk_size=MAX_CHUNK_SIZE + 1)
    with pytest.raises(ValueError):
        FixedWindow(chunks=0)
    with pytest.raises(ValueError):
        SleepPaced(pause=-1)
    with pytest.raises(ValueError):
        AdaptiveWindow(min_chunks=4, initial_chunks=2)


def test_sleep_paced_sends_one_chunk_per_pause_and_ignores_acks() -> None:
    s = SleepPaced(chunk_size=1000, pause=0.1)
    s.start(0.0)
    assert s.allowance(0.0) == 1000
    s.on_sent(0.0, 0, 1000)
    assert s.allowance(0.0) == 0
    assert s.wake_at(0.0) == pytest.approx(0.1)
    s.on_ack(0.01, 1000)  # an ack changes nothing
    assert s.allowance(0.05) == 0
    assert s.wake_at(0.05) == pytest.approx(0.1)
    assert s.allowance(0.1) == 1000
    # No ack at all: it keeps going, one chunk per pause.
    for i in range(1, 10):
        now = 0.1 * i
        assert s.allowance(now) == 1000
        s.on_sent(now, 1000 * i, 1000)
        assert s.allowance(now + 0.099) == 0
    assert s.in_flight == 9000


def test_fixed_window_allowance() -> None:
    s = FixedWindow(chunks=4, chunk_size=1000)
    s.start(0.0)
    assert len(send_allowed(s, 0.0)) == 4
    assert s.allowance(0.0) == 0
    assert s.wake_at(0.0) is None  # only an ack can open it
    s.on_ack(0.1, 1000)
    assert s.allowance(0.1) == 1000
    s.on_ack(0.2, 4000)
    assert s.allowance(0.2) == 4000


def test_rtt_samples_come_from_the_chunk_an_ack_newly_covers() -> None:
    s = FixedWindow(chunks=4, chunk_size=1000)
    s.start(0.0)
    for i in range(4):
        s.on_sent(0.01 * i, 1000 * i, 1000)  # sent at 0.00, 0.01, 0.02, 0.03
    s.on_ack(0.5, 500)  # covers no chunk end: no sample
    assert s.rtt is None and s.trace[-1].rtt is None
    s.on_ack(0.5, 2000)  # newly covers the chunk sent at 0.01
    assert s.rtt == pytest.approx(0.49)
    s.on_ack(0.6, 2000)  # a duplicate: ignored
    assert len([row for row in s.trace if row.rtt is not None]) == 1
    s.on_ack(0.7, 4000)  # covers chunks sent at 0.02 and 0.03: the later one counts
    assert s.rtt == pytest.approx(0.67)
    assert s.base_rtt == pytest.approx(0.49)
    last = s.trace[-1]
    assert (last.time, last.bytes_sent, last.bytes_acked, last.window_bytes) == (0.7, 4000, 4000, 4000)


def test_start_at_an_offset_counts_those_bytes_as_acked() -> None:
    s = FixedWindow(chunks=2, chunk_size=1000)
    s.start(3.0, offset=5000)
    assert (s.sent, s.acked, s.in_flight) == (5000, 5000, 0)
    assert s.trace == [(3.0, 5000, 5000, 2000, None)]


def test_adaptive_window_doubles_per_rtt_while_rtt_is_flat() -> None:
    s = AdaptiveWindow(chunk_size=1000, initial_chunks=2, max_chunks=1000)
    s.start(0.0)
    windows = [s.window_bytes]
    now = 0.0
    for _ in range(6):
        now = round_trip(s, now, 0.05)
        windows.append(s.window_bytes)
    assert windows == [2000, 4000, 8000, 16000, 32000, 64000, 128000]
    assert s.slow_start
    assert s.queueing_delay == 0


def test_adaptive_window_is_bounded() -> None:
    s = AdaptiveWindow(chunk_size=1000, initial_chunks=2, max_chunks=10)
    s.start(0.0)
    now = 0.0
    for _ in range(10):
        now = round_trip(s, now, 0.05)
    assert s.window_bytes == 10000
    assert max(row.window_bytes for row in s.trace) == 10000
    for _ in range(50):  # a huge queue for a long time: never below the minimum
        now = round_trip(s, now, 5.0)
    assert s.window_bytes == s.min_window == 1000


def test_adaptive_window_shrinks_when_queueing_delay_builds_and_grows_again() -> None:
    s = AdaptiveWindow(chunk_size=1000, initial_chunks=2, max_chunks=1000, target_delay=0.01, target_fraction=0)
    s.start(0.0)
    now = 0.0
    for _ in range(4):  # slow start, flat RTT of 50 ms: 2 -> 32 chunks
        now = round_trip(s, now, 0.05)
    peak = s.window_bytes
    assert peak == 32000
    # Queueing delay of 40 ms, four times the target: leave slow start, shrink.
    rows_before = len(s.trace)
    for _ in range(5):
        now = round_trip(s, now, 0.09)
    assert not s.slow_start
    windows = [row.window_bytes for row in s.trace[rows_before:] if row.rtt is not None]
    # The RTT filter (lowest of the last 4 samples) notices the queue on the
    # 4th late ack (3 acks still grow the window); from then on it only shrinks.
    top = windows.index(max(windows))
    assert top == 2
    assert all(b <= a for a, b in zip(windows[top:], windows[top + 1 :]))
    assert s.window_bytes < peak / 4
    low = s.window_bytes
    # The queue drains (RTT back at base): linear growth, about a chunk per RTT.
    for _ in range(10):
        now = round_trip(s, now, 0.05)
    assert low + 8000 <= s.window_bytes <= low + 11000
    assert not s.slow_start  # slow start happens once


def test_adaptive_window_holds_steady_at_the_target_delay() -> None:
    s = AdaptiveWindow(chunk_size=1000, initial_chunks=8, max_chunks=1000, target_delay=0.01, target_fraction=0)
    s.start(0.0)
    now = round_trip(s, 0.0, 0.05)  # base RTT 50 ms
    s.slow_start = False
    now = round_trip(s, now, 0.06)  # let the RTT filter forget the 50 ms samples
    before = s.window_bytes
    for _ in range(5):
        now = round_trip(s, now, 0.06)  # queueing delay exactly on target
    assert s.window_bytes == before


def test_adaptive_target_scales_with_base_rtt() -> None:
    s = AdaptiveWindow(target_delay=0.005, target_fraction=0.25)
    assert s.target == 0.005  # no RTT sample yet
    s.start(0.0)
    s.on_sent(0.0, 0, s.chunk_size)
    s.on_ack(0.2, s.chunk_size)
    assert s.target == pytest.approx(0.05)


# --------------------------------------------------------------------------
# The sender on its own
# --------------------------------------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sender_for(data: bytes, strategy: SendStrategy, stream_id: int = 7) -> OutgoingTransfer:
    return OutgoingTransfer(stream_id, len(data), sha(data), lambda offset, n: data[offset : offset + n], strategy)


def test_sender_call_sequence() -> None:
    data = bytes(range(256)) * 100  # 25600 bytes: 2 full chunks of 10000 and one of 5600
    t = sender_for(data, FixedWindow(chunks=2, chunk_size=10000))
    assert t.offer("bob", "x.bin") == FileOffer(7, "bob", "x.bin", 25600, sha(data))
    assert t.messages_to_send(0.0) == []  # nothing before the receiver accepts
    out = t.handle(1.0, FileAccept(7, 0))
    assert [(m.offset, len(m.data)) for m in out if isinstance(m, FileChunk)] == [(0, 10000), (10000, 10000)]
    assert t.handle(1.1, FileAck(7, 10000)) == [FileChunk(7, 20000, data[20000:])] + [FileDone(7)]
    assert t.wake_at(1.1) is None
    assert t.handle(1.2, FileAck(7, 20000)) == []
    assert t.handle(1.3, FileAck(7, 25600)) == []
    assert not t.done
    assert t.handle(1.3, FileDone(7)) == []
    assert t.done and t.state is TransferState.DONE
    stats = t.stats()
    assert (stats.bytes, stats.seconds) == (25600, pytest.approx(0.3))
    assert stats.mb_per_s == pytest.approx(25600 / 0.3 / 1e6)


def test_sender_of_an_empty_file_sends_only_done() -> None:
    t = sender_for(b"", FixedWindow())
    assert t.handle(0.0, FileAccept(7, 0)) == [FileDone(7)]
    t.handle(0.1, FileDone(7))
    assert t.done and t.stats().bytes == 0


def test_sender_resumes_at_the_receivers_offset() -> None:
    data = b"abcdefghij" * 10
    t = sender_for(data, FixedWindow(chunks=100, chunk_size=30))
    out = t.handle(0.0, FileAccept(7, 45))
    assert [m.offset for m in out if isinstance(m, FileChunk)] == [45, 75]
    assert b"".join(m.data for m in out if isinstance(m, FileChunk)) == data[45:]
    t.handle(0.1, FileAck(7, 100))
    t.handle(0.1, FileDone(7))
    assert t.stats().bytes == 55  # only this session's bytes


def test_sleep_paced_sender_needs_a_wake_up() -> None:
    t = sender_for(b"x" * 3000, SleepPaced(chunk_size=1000, pause=0.5))
    assert len(t.handle(0.0, FileAccept(7, 0))) == 1
    assert t.wake_at(0.0) == 0.5
    assert t.handle(0.2, FileAck(7, 1000)) == []  # an ack does not speed it up
    assert t.messages_to_send(0.4) == []
    assert [type(m) for m in t.messages_to_send(0.5)] == [FileChunk]
    assert [type(m) for m in t.messages_to_send(1.0)] == [FileChunk, FileDone]
    assert t.wake_at(1.0) is None  # everything is out


@pytest.mark.parametrize(
    "acks, match",
    [
        ([20, 10], "went backwards"),
        ([40], "only 30 were sent"),
    ],
)
def test_sender_refuses_bad_acks(acks: list[int], match: str) -> None:
    t = sender_for(b"x" * 100, FixedWindow(chunks=3, chunk_size=10))
    t.handle(0.0, FileAccept(7, 0))
    with pytest.raises(TransferProtocolError, match=match) as info:
        for received in acks:
            t.handle(0.1, FileAck(7, received))
    assert isinstance(info.value, RemoteProtocolError) and isinstance(info.value, TransferError)
    assert t.failed and match in t.reason
    assert t.handle(0.2, FileAck(7, 30)) == []  # a failed transfer ignores late messages
    assert t.cancel(str(info.value)) == FileCancel(7, str(info.value))


def test_sender_refuses_out_of_order_answers() -> None:
    t = sender_for(b"x" * 100, FixedWindow())
    with pytest.raises(TransferProtocolError, match="before FileAccept"):
        t.handle(0.0, FileAck(7, 0))
    t = sender_for(b"x" * 100, FixedWindow())
    with pytest.raises(TransferProtocolError, match="resume at byte 101"):
        t.handle(0.0, FileAccept(7, 101))
    t = sender_for(b"x" * 100, FixedWindow(chunks=1, chunk_size=10))
    t.handle(0.0, FileAccept(7, 0))
    with pytest.raises(TransferProtocolError, match="after acking 0 of 100"):
        t.handle(0.0, FileDone(7))
    with pytest.raises(ValueError, match="stream 8"):
        sender_for(b"", FixedWindow()).handle(0.0, FileAccept(8, 0))


def test_sender_reject_and_cancel() -> None:
    t = sender_for(b"x" * 100, FixedWindow())
    assert t.handle(0.0, FileReject(7, "no thanks")) == []
    assert t.failed and t.reason == "receiver rejected the transfer: no thanks"
    t = sender_for(b"x" * 100, FixedWindow(chunks=1, chunk_size=10))
    t.handle(0.0, FileAccept(7, 0))
    assert t.cancel("user pressed ^C") == FileCancel(7, "user pressed ^C")
    assert t.failed and t.messages_to_send(1.0) == [] and t.wake_at(1.0) is None


def test_sender_notices_a_file_that_shrank() -> None:
    t = OutgoingTransfer(7, 100, sha(b""), lambda offset, n: b"x" * min(n, 50 - offset), FixedWindow(chunks=10, chunk_size=20))
    with pytest.raises(TransferError, match="changed while it was being sent"):
        t.handle(0.0, FileAccept(7, 0))
    assert t.failed


def test_sender_checks_its_arguments() -> None:
    with pytest.raises(ValueError):
        OutgoingTransfer(1, -1, sha(b""), lambda o, n: b"")
    with pytest.raises(ValueError):
        OutgoingTransfer(1, 0, "not a hash", lambda o, n: b"")
    assert isinstance(OutgoingTransfer(1, 0, sha(b"").upper(), lambda o, n: b"").strategy, AdaptiveWindow)


def test_file_helpers() -> None:
    data = bytes(range(256)) * 5000
    f = io.BytesIO(data)
    assert sha256_file(f, block_size=1000) == sha(data)
    read = file_reader(f)
    assert read(1000, 10) == data[1000:1010]
    assert read(len(data) - 3, 10) == data[-3:]
