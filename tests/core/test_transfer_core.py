"""Tests for chatlab.core.transfer: strategies, sender and receiver, with a fake clock.

No sockets and no real time: every call gets ``now`` from the test, and a
small discrete-event simulator (:func:`run_loopback`) links an
OutgoingTransfer to an IncomingTransfer through a simulated link with a
one-way delay and a rate cap, so queueing delay builds exactly as the link
model says.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import itertools
import os
import random
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatlab.core.protocol import (
    FileAccept,
    FileAck,
    FileCancel,
    FileChunk,
    FileDone,
    FileOffer,
    FileReject,
    MessageDecoder,
    encode,
)
from chatlab.core.transfer import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    AdaptiveWindow,
    ChecksumMismatch,
    FixedWindow,
    IncomingTransfer,
    MiB,
    OutgoingTransfer,
    PartFile,
    SendStrategy,
    SleepPaced,
    TransferProtocolError,
    TransferState,
    UnsafeFileName,
    file_reader,
    free_path,
    make_strategy,
    safe_filename,
    sha256_file,
)
from chatlab.errors import LocalProtocolError, RemoteProtocolError, TransferError

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


def test_adaptive_window_grows_by_half_per_rtt_while_rtt_is_flat() -> None:
    s = AdaptiveWindow(chunk_size=1000, initial_chunks=2, max_chunks=1000)
    s.start(0.0)
    windows = [s.window_bytes]
    now = 0.0
    for _ in range(4):
        now = round_trip(s, now, 0.05)
        windows.append(s.window_bytes)
    assert windows == [2000, 3000, 4500, 6500, 9500]  # only whole chunks go: a 4500-byte window sends 4
    assert s.slow_start


def test_adaptive_window_doubles_per_rtt_with_tcp_like_growth() -> None:
    s = AdaptiveWindow(chunk_size=1000, initial_chunks=2, max_chunks=1000, slow_start_growth=1.0)
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
    assert s.window_bytes == s.min_window == 2000  # two chunks by default


def test_adaptive_window_shrinks_when_queueing_delay_builds_and_grows_again() -> None:
    s = AdaptiveWindow(chunk_size=1000, initial_chunks=2, max_chunks=1000, target_delay=0.01, target_fraction=0,
                       slow_start_growth=1.0)
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


def test_each_side_refuses_messages_meant_for_the_other(tmp_path: Path) -> None:
    t = sender_for(b"abc", FixedWindow())
    with pytest.raises(TransferProtocolError, match="a sender does not expect FileChunk"):
        t.handle(0.0, FileChunk(7, 0, b"abc"))
    assert t.failed
    r = IncomingTransfer(offer_for(b"abc"), tmp_path)
    r.accept()
    with pytest.raises(TransferProtocolError, match="a receiver does not expect FileAck"):
        r.handle(FileAck(7, 3))
    assert r.failed
    with pytest.raises(ValueError, match="FileChunk for stream 8 given to transfer 7"):
        r.handle(FileChunk(8, 0, b"abc"))


def test_sender_reject_and_cancel() -> None:
    t = sender_for(b"x" * 100, FixedWindow())
    assert t.handle(0.0, FileReject(7, "no thanks")) == []
    assert t.failed and t.reason == "no thanks"
    t = sender_for(b"x" * 100, FixedWindow(chunks=1, chunk_size=10))
    t.handle(0.0, FileAccept(7, 0))
    assert t.cancel("user pressed ^C") == FileCancel(7, "user pressed ^C")
    assert t.failed and t.messages_to_send(1.0) == [] and t.wake_at(1.0) is None


def test_sender_notices_a_file_that_shrank() -> None:
    def read(offset: int, n: int) -> bytes:
        return b"x" * min(n, 50 - offset)  # the file is only 50 bytes now

    t = OutgoingTransfer(7, 100, sha(b""), read, FixedWindow(chunks=10, chunk_size=20))
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


# --------------------------------------------------------------------------
# File names
# --------------------------------------------------------------------------

HOSTILE_NAMES = [
    "../x",
    "/etc/passwd",
    "C:\\x",
    "c:x",
    "\\\\server\\share\\x",
    "CON",
    "nul.txt",
    "Com1.tar.gz",
    "lpt9",
    "",
    ".",
    "..",
    "...",
    "a/../../b",
    "a\\..\\b",
    "x/",
    "a\x00b",
    "line\nbreak",
    "evil\u202egnp.exe",
    "report.pdf.",
    "report.pdf ",
    "file:stream",
    "what?.txt",
    "x" * 201,
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_file_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafeFileName, match="refusing file name") as info:
        safe_filename(name)
    assert isinstance(info.value, TransferError)
    assert info.value.name == name and info.value.reason


@pytest.mark.parametrize(
    "name, saved_as",
    [
        ("report.pdf", "report.pdf"),
        ("x/y.txt", "y.txt"),  # directories are stripped...
        ("x\\y.txt", "y.txt"),  # ...either kind of separator
        ("./notes.md", "notes.md"),
        (".bashrc", ".bashrc"),
        ("console.log", "console.log"),  # only the exact device names are reserved
        ("Ünïcödé 文件.txt", "Ünïcödé 文件.txt"),
        ("x" * 200, "x" * 200),
    ],
)
def test_fine_file_names_pass(name: str, saved_as: str) -> None:
    assert safe_filename(name) == saved_as


@given(st.text(max_size=40))
def test_a_safe_name_never_leaves_the_download_directory(name: str) -> None:
    try:
        saved = safe_filename(name)
    except UnsafeFileName:
        return
    assert saved and "/" not in saved and "\\" not in saved and saved not in (".", "..")
    root = Path("/downloads")
    assert (root / saved).parent == root


def test_free_path_picks_a_new_name(tmp_path: Path) -> None:
    assert free_path(tmp_path, "a.txt") == tmp_path / "a.txt"
    (tmp_path / "a.txt").touch()
    (tmp_path / "a (1).txt").touch()
    assert free_path(tmp_path, "a.txt") == tmp_path / "a (2).txt"
    (tmp_path / ".rc").touch()
    assert free_path(tmp_path, ".rc") == tmp_path / ".rc (1)"
    (tmp_path / "noext").touch()
    assert free_path(tmp_path, "noext") == tmp_path / "noext (1)"


# --------------------------------------------------------------------------
# The receiver on its own
# --------------------------------------------------------------------------


def offer_for(data: bytes, name: str = "data.bin", stream_id: int = 7) -> FileOffer:
    return FileOffer(stream_id, "alice", name, len(data), sha(data))


def test_receiver_call_sequence(tmp_path: Path) -> None:
    data = b"hello, world"
    with IncomingTransfer(offer_for(data), tmp_path) as t:
        assert t.accept() == FileAccept(7, 0)
        assert t.part_path == tmp_path / "data.bin.part" and not t.part_path.exists()  # not before the first byte
        assert t.handle(FileChunk(7, 0, data[:5])) == [FileAck(7, 5)]
        assert t.part_path.exists()
        assert t.handle(FileChunk(7, 5, data[5:])) == [FileAck(7, 12)]
        assert not (tmp_path / "data.bin").exists()  # not before it is verified
        assert t.handle(FileDone(7)) == [FileDone(7)]
        assert t.done and t.path == tmp_path / "data.bin" and t.received == 12
    assert t.path.read_bytes() == data
    assert os.listdir(tmp_path) == ["data.bin"]
    assert t.handle(FileChunk(7, 12, b"late")) == []  # after the end: ignored


def test_receiver_of_an_empty_file(tmp_path: Path) -> None:
    t = IncomingTransfer(offer_for(b"", "empty"), tmp_path)
    t.accept()
    assert t.handle(FileDone(7)) == [FileDone(7)]
    assert (tmp_path / "empty").read_bytes() == b""


@pytest.mark.parametrize(
    "chunks, match",
    [
        ([FileChunk(7, 0, b"abc"), FileChunk(7, 2, b"cde")], "chunk at byte 2, expected byte 3"),
        ([FileChunk(7, 0, b"abc"), FileChunk(7, 6, b"ghi")], "chunk at byte 6, expected byte 3"),
        ([FileChunk(7, 0, b"abc"), FileChunk(7, 3, b"")], "empty chunk"),
        ([FileChunk(7, 0, b"abcdefghijk")], "ends at byte 11 of a 10-byte file"),
        ([FileChunk(7, 0, b"abc"), FileDone(7)], "done after 3 of 10 bytes"),
    ],
)
def test_receiver_refuses_protocol_errors_and_keeps_good_bytes(tmp_path: Path, chunks: list[Any], match: str) -> None:
    t = IncomingTransfer(offer_for(b"abcdefghij"), tmp_path)
    t.accept()
    with pytest.raises(TransferProtocolError, match=match):
        for chunk in chunks:
            t.handle(chunk)
    assert t.failed and match in t.reason
    assert not (tmp_path / "data.bin").exists()
    if t.received:
        assert t.part_path.read_bytes() == b"abc"[: t.received]  # kept, for a resume
    else:
        assert not t.part_path.exists()  # no good byte ever came: no .part at all
    assert t.cancel(t.reason) == FileCancel(7, t.reason)


def test_receiver_refuses_chunks_before_accept(tmp_path: Path) -> None:
    t = IncomingTransfer(offer_for(b"abc"), tmp_path)
    with pytest.raises(TransferProtocolError, match="before FileAccept"):
        t.handle(FileChunk(7, 0, b"abc"))
    with pytest.raises(LocalProtocolError):
        t.accept()  # it has failed
    assert os.listdir(tmp_path) == []


def test_receiver_refuses_a_hostile_offer_before_touching_the_disk(tmp_path: Path) -> None:
    with pytest.raises(UnsafeFileName):
        IncomingTransfer(offer_for(b"x", "../../etc/passwd"), tmp_path)
    with pytest.raises(TransferProtocolError, match="SHA-256"):
        IncomingTransfer(FileOffer(1, "a", "x", 1, "abc"), tmp_path)
    with pytest.raises(TransferProtocolError, match="-1 bytes"):
        IncomingTransfer(FileOffer(1, "a", "x", -1, sha(b"")), tmp_path)
    assert os.listdir(tmp_path) == []


def test_bad_sha256_leaves_no_complete_looking_file(tmp_path: Path) -> None:
    t = IncomingTransfer(FileOffer(7, "alice", "data.bin", 3, sha(b"xyz")), tmp_path)
    t.accept()
    t.handle(FileChunk(7, 0, b"abc"))
    with pytest.raises(ChecksumMismatch, match="SHA-256 mismatch") as info:
        t.handle(FileDone(7))
    assert isinstance(info.value, TransferError)
    assert t.failed and os.listdir(tmp_path) == []  # neither data.bin nor data.bin.part


def test_receiver_never_overwrites_unless_asked(tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(b"precious")
    for overwrite, expected in [(False, "data (1).bin"), (True, "data.bin")]:
        t = IncomingTransfer(offer_for(b"new"), tmp_path, overwrite=overwrite)
        t.accept()
        t.handle(FileChunk(7, 0, b"new"))
        t.handle(FileDone(7))
        assert t.path == tmp_path / expected and t.path.read_bytes() == b"new"
        if not overwrite:
            assert (tmp_path / "data.bin").read_bytes() == b"precious"


def test_cancel_keeps_or_removes_the_part_file(tmp_path: Path) -> None:
    t = IncomingTransfer(offer_for(b"abcdef"), tmp_path)
    t.accept()
    t.handle(FileChunk(7, 0, b"abc"))
    assert t.handle(FileCancel(7, "sender quit")) == []
    assert t.failed and t.reason == "sender cancelled the transfer: sender quit"
    assert t.part_path.read_bytes() == b"abc"
    t = IncomingTransfer(offer_for(b"abcdef"), tmp_path)
    assert t.accept() == FileAccept(7, 3)  # resumes from the kept bytes
    assert t.cancel("no space", keep_part=False) == FileCancel(7, "no space")
    assert os.listdir(tmp_path) == []


def test_resume_from_a_part_file(tmp_path: Path) -> None:
    data = os.urandom(1000)
    (tmp_path / "data.bin.part").write_bytes(data[:333])
    t = IncomingTransfer(offer_for(data), tmp_path)
    assert t.accept() == FileAccept(7, 333)
    assert t.handle(FileChunk(7, 333, data[333:])) == [FileAck(7, 1000)]
    t.handle(FileDone(7))
    assert t.path is not None and t.path.read_bytes() == data


def test_a_part_file_that_cannot_belong_is_started_over(tmp_path: Path) -> None:
    (tmp_path / "data.bin.part").write_bytes(b"x" * 50)  # longer than the offered file
    t = IncomingTransfer(offer_for(b"short"), tmp_path)
    assert t.accept() == FileAccept(7, 0)
    t.handle(FileChunk(7, 0, b"sh"))  # started over at the first byte
    assert t.part_path.read_bytes() == b"sh"
    t.close()
    t = IncomingTransfer(offer_for(b"short"), tmp_path, resume=False)
    assert t.accept() == FileAccept(7, 0)


def test_part_file_refuses_to_write_through_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"")
    (tmp_path / "data.bin.part").symlink_to(victim)
    t = IncomingTransfer(offer_for(b"abc"), tmp_path)
    with pytest.raises(TransferError, match="symbolic link"):
        t.accept()
    assert t.failed and victim.read_bytes() == b""


def test_part_file_on_its_own(tmp_path: Path) -> None:
    part = PartFile(tmp_path, "p.txt", 6)
    part.append(b"abc")
    part.append(b"def")
    assert part.offset == 6 and part.hexdigest() == sha(b"abcdef")
    assert part.commit(sha(b"abcdef").upper()) == tmp_path / "p.txt"
    assert part.closed and (tmp_path / "p.txt").read_bytes() == b"abcdef"


# --------------------------------------------------------------------------
# Sender and receiver linked in memory, through a simulated link
# --------------------------------------------------------------------------


@dataclass
class Link:
    """A one-way path: a bottleneck of ``rate`` bytes/s with a FIFO queue in front, then ``delay`` seconds.

    ``queue_delays`` records how long each message waited in the queue: the
    delay a chat frame sent at that moment would have waited too.
    """

    rate: float = float("inf")
    delay: float = 0.010
    busy_until: float = 0.0
    queue_delays: list[float] = field(default_factory=list)

    def arrival(self, now: float, nbytes: int) -> float:
        start = max(now, self.busy_until)
        self.queue_delays.append(start - now)
        self.busy_until = start + nbytes / self.rate
        return self.busy_until + self.delay


def run_loopback(
    sender: OutgoingTransfer, receiver: IncomingTransfer, link: Link, *, max_events: int = 100_000
) -> float:
    """Run a whole transfer on a fake clock, as a driver on each side would; return when it ended.

    Every message is encoded to bytes and decoded again on the far side, so
    the transfer objects talk real chatlab frames.  Acks travel back with
    the same one-way delay but no rate cap.  A TransferError on either side
    is answered with that side's cancel(), as a driver does.
    """
    events: list[tuple[float, int, str, bytes]] = []
    order = itertools.count()  # keeps messages with equal times in sending order
    decoders = {"sender": MessageDecoder(), "receiver": MessageDecoder()}
    woken_for: float | None = None

    def to_receiver(now: float, messages: list[Any]) -> None:
        for message in messages:
            data = encode(message)
            heapq.heappush(events, (link.arrival(now, len(data)), next(order), "receiver", data))

    def to_sender(now: float, messages: list[Any]) -> None:
        for message in messages:
            heapq.heappush(events, (now + link.delay, next(order), "sender", encode(message)))

    to_sender(0.0, [receiver.accept()])
    now = 0.0
    for _ in range(max_events):
        if not events:
            return now
        now, _, where, data = heapq.heappop(events)
        if where == "wake":
            to_receiver(now, sender.messages_to_send(now))
        else:
            decoders[where].feed(data)
            for message in decoders[where]:
                if where == "receiver":
                    try:
                        to_sender(now, receiver.handle(message))
                    except TransferError as exc:
                        to_sender(now, [receiver.cancel(str(exc))])
                else:
                    try:
                        to_receiver(now, sender.handle(now, message))
                    except TransferError as exc:
                        to_receiver(now, [sender.cancel(str(exc))])
        wake = sender.wake_at(now)
        if wake is not None and wake != woken_for:  # one timer per wake-up time
            woken_for = wake
            heapq.heappush(events, (max(wake, now), next(order), "wake", b""))
    raise AssertionError("the transfer did not end")


def transfer_file(
    tmp_path: Path, data: bytes, strategy: SendStrategy, link: Link | None = None, name: str = "file.bin"
) -> tuple[OutgoingTransfer, IncomingTransfer]:
    """Send ``data`` from a real file in tmp_path/out to tmp_path/in through ``link``."""
    (tmp_path / "out").mkdir(parents=True, exist_ok=True)
    (tmp_path / "in").mkdir(parents=True, exist_ok=True)
    source = tmp_path / "out" / name
    source.write_bytes(data)
    with open(source, "rb") as f:
        sender = OutgoingTransfer(42, len(data), sha256_file(f), file_reader(f), strategy)
        receiver = IncomingTransfer(sender.offer("bob", name), tmp_path / "in")
        run_loopback(sender, receiver, link or Link())
    return sender, receiver


def in_flight(trace: list[Any]) -> list[int]:
    return [row.bytes_sent - row.bytes_acked for row in trace]


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 3 * MiB + 17])
@pytest.mark.parametrize("strategy", ["sleep", "fixed", "adaptive"])
def test_files_arrive_bit_identical(tmp_path: Path, size: int, strategy: str) -> None:
    data = random.Random(size).randbytes(size)
    sender, receiver = transfer_file(tmp_path, data, make_strategy(strategy))
    assert sender.done and receiver.done, (sender.reason, receiver.reason)
    assert (tmp_path / "in" / "file.bin").read_bytes() == data
    assert os.listdir(tmp_path / "in") == ["file.bin"]  # no .part left behind
    assert sender.stats().bytes == size


def test_sleep_paced_sends_one_chunk_per_pause_whatever_the_acks_say(tmp_path: Path) -> None:
    data = bytes(40 * 1000)
    sender, _ = transfer_file(tmp_path, data, SleepPaced(chunk_size=1000, pause=0.03), Link(delay=0.2))
    sends = [row for row, before in zip(sender.trace[1:], sender.trace) if row.bytes_sent > before.bytes_sent]
    assert len(sends) == 40
    assert all(b.time - a.time == pytest.approx(0.03) for a, b in zip(sends, sends[1:]))
    # The RTT is 0.4 s: acks or not, 14 chunks go out before the first ack is back.
    assert max(in_flight(sender.trace)) == 14000


def test_fixed_window_never_exceeds_its_window(tmp_path: Path) -> None:
    data = bytes(100 * 1000 + 1)
    sender, _ = transfer_file(tmp_path, data, FixedWindow(chunks=5, chunk_size=1000), Link(rate=1e6, delay=0.01))
    assert max(in_flight(sender.trace)) == 5000  # full, never over


def test_adaptive_window_fills_the_link_without_a_standing_queue(tmp_path: Path) -> None:
    """The lesson of notebook 06, in numbers: same link, fixed vs adaptive window."""
    rate, delay = 10e6, 0.020  # 10 MB/s, 40 ms round trip: about 7 chunks in flight fill it
    data = bytes(12 * MiB)
    results = {}
    for name, strategy in [("fixed", FixedWindow(chunks=64)), ("adaptive", AdaptiveWindow())]:
        link = Link(rate=rate, delay=delay)
        sender, receiver = transfer_file(tmp_path / name, data, strategy, link)
        assert sender.done and receiver.done
        late_queue = link.queue_delays[len(link.queue_delays) // 2 :]  # after start-up
        results[name] = (sender.stats().mb_per_s, statistics.median(late_queue))
    fixed_speed, fixed_queue = results["fixed"]
    adaptive_speed, adaptive_queue = results["adaptive"]
    assert fixed_speed > 0.9 * rate / 1e6 and adaptive_speed > 0.8 * rate / 1e6  # both fill the link...
    assert fixed_queue > 0.3  # ...but 64 chunks keep a third of a second of data queued,
    assert adaptive_queue < 0.03  # while the adaptive window keeps the queue near its target.


def test_adaptive_window_trace_grows_then_settles(tmp_path: Path) -> None:
    sender, _ = transfer_file(tmp_path, bytes(12 * MiB), AdaptiveWindow(), Link(rate=10e6, delay=0.020))
    strategy = sender.strategy
    assert isinstance(strategy, AdaptiveWindow)
    windows = [row.window_bytes for row in sender.trace]
    assert windows[0] == 2 * DEFAULT_CHUNK_SIZE
    assert max(windows) >= 400_000  # slow start found the link's size (10 MB/s x 40 ms)...
    assert not strategy.slow_start  # ...and a queue ended it
    settled = windows[len(windows) // 2 :]
    assert 5 * DEFAULT_CHUNK_SIZE < min(settled) and max(settled) < 16 * DEFAULT_CHUNK_SIZE
    rtts = [row.rtt for row in sender.trace if row.rtt is not None]
    assert strategy.base_rtt == min(rtts)


def test_interrupted_transfer_resumes_from_the_part_file(tmp_path: Path) -> None:
    data = random.Random(1).randbytes(MiB + 12345)
    inbox = tmp_path / "in"
    inbox.mkdir()
    read = lambda offset, n: data[offset : offset + n]  # noqa: E731
    # First attempt: the connection drops after some chunks.
    sender = OutgoingTransfer(1, len(data), sha(data), read, FixedWindow(chunks=4))
    receiver = IncomingTransfer(sender.offer("bob", "big.bin"), inbox)
    chunks = sender.handle(0.0, receiver.accept())
    assert len(chunks) == 4
    for chunk in chunks[:3]:
        receiver.handle(chunk)
    receiver.close()  # disconnect: the .part stays
    assert receiver.failed and (inbox / "big.bin.part").stat().st_size == 3 * DEFAULT_CHUNK_SIZE
    # Second attempt, new objects and a new stream id: it continues from the .part.
    sender = OutgoingTransfer(2, len(data), sha(data), read, AdaptiveWindow())
    receiver = IncomingTransfer(sender.offer("bob", "big.bin"), inbox)
    run_loopback(sender, receiver, Link())
    assert sender.done and receiver.done
    assert sender.start_offset == receiver.start_offset == 3 * DEFAULT_CHUNK_SIZE
    assert sender.stats().bytes == len(data) - 3 * DEFAULT_CHUNK_SIZE
    assert sender.trace[0].bytes_sent == 3 * DEFAULT_CHUNK_SIZE
    assert (inbox / "big.bin").read_bytes() == data and os.listdir(inbox) == ["big.bin"]


def test_a_wrong_part_file_fails_the_hash_and_is_removed(tmp_path: Path) -> None:
    data = b"the real file" * 1000
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "file.bin.part").write_bytes(b"something else")  # same name, other content
    sender = OutgoingTransfer(1, len(data), sha(data), lambda o, n: data[o : o + n], FixedWindow())
    receiver = IncomingTransfer(sender.offer("bob", "file.bin"), inbox)
    run_loopback(sender, receiver, Link())
    assert receiver.failed and "SHA-256 mismatch" in receiver.reason
    assert sender.failed and "SHA-256 mismatch" in sender.reason  # told by the receiver's FileCancel
    assert os.listdir(inbox) == []  # a retry starts from zero and succeeds
    sender = OutgoingTransfer(2, len(data), sha(data), lambda o, n: data[o : o + n], FixedWindow())
    receiver = IncomingTransfer(sender.offer("bob", "file.bin"), inbox)
    run_loopback(sender, receiver, Link())
    assert receiver.done and (inbox / "file.bin").read_bytes() == data


def test_a_lying_sender_leaves_nothing_behind(tmp_path: Path) -> None:
    data = b"x" * 100_000
    sender = OutgoingTransfer(1, len(data), sha(b"other"), lambda o, n: data[o : o + n], AdaptiveWindow())
    receiver = IncomingTransfer(sender.offer("bob", "file.bin"), tmp_path)
    run_loopback(sender, receiver, Link())
    assert receiver.failed and sender.failed
    assert os.listdir(tmp_path) == []
