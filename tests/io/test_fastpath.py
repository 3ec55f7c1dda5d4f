"""The relayed path, faster: hashing while reading, big payloads received in place, chunks that grow with the rate.

All sans-I/O (no socket, no clock): bytes fed by hand, time passed in.
"""

from __future__ import annotations

import hashlib
import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatlab.core import protocol as p
from chatlab.core.transfer import (
    AdaptiveWindow,
    ChecksumMismatch,
    IncomingTransfer,
    OutgoingTransfer,
    TransferProtocolError,
    file_reader,
)
from chatlab.core.transfer.strategies import KiB

# ------------------------------------------------ big payloads received in place


def recv_like(decoder: p.FrameDecoder, stream: bytes, cuts: list[int]) -> list[p.Frame]:
    """Deliver ``stream`` as a socket would, in pieces, using payload_buffer() whenever it offers one."""
    frames: list[p.Frame] = []
    pos, cut = 0, iter(cuts)
    while pos < len(stream):
        piece = max(1, next(cut, 65536))
        view = decoder.payload_buffer()
        if view is not None:
            n = min(piece, len(view), len(stream) - pos)
            view[:n] = stream[pos : pos + n]
            decoder.received(n)
        else:
            n = min(piece, len(stream) - pos)
            decoder.feed(stream[pos : pos + n])
        pos += n
        frames.extend(decoder)
    return frames


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.sampled_from([0, 5, 70_000, 200_000]), min_size=1, max_size=5),
       cuts=st.lists(st.integers(1, 150_000), max_size=40))
def test_payload_buffer_gives_the_same_frames_as_feed(sizes, cuts):
    messages: list[p.Message] = []
    for i, size in enumerate(sizes):
        messages.append(p.FileChunk(1, i, os.urandom(size)) if size else p.Say(f"line {i}"))
    stream = b"".join(p.encode(m) for m in messages)
    frames = recv_like(p.FrameDecoder(), stream, cuts)
    assert [p.decode_message(f) for f in frames] == messages
    plain = p.FrameDecoder()
    plain.feed(stream)
    assert [bytes(f.payload) for f in plain] == [bytes(f.payload) for f in frames]


def test_a_big_payload_is_received_into_its_own_buffer():
    data = os.urandom(100_000)
    stream = p.encode(p.FileChunk(3, 0, data)) + p.encode(p.Say("after"))
    decoder = p.FrameDecoder()
    decoder.feed(stream[:1000])  # the header and the payload's first bytes
    assert decoder.next_frame() is None
    view = decoder.payload_buffer()
    assert view is not None and len(view) == 8 + 100_000 - (1000 - p.HEADER_SIZE)
    view[:] = stream[1000 : 1000 + len(view)]
    decoder.received(len(view))
    decoder.feed(stream[1000 + len(view) :])
    chunk, say = list(decoder)
    assert isinstance(chunk.payload, bytearray)  # the very buffer the bytes were received into
    assert p.decode_message(chunk) == p.FileChunk(3, 0, data) and p.decode_message(say) == p.Say("after")
    assert decoder.buffered == 0


def test_small_frames_never_get_a_payload_buffer():
    decoder = p.FrameDecoder()
    decoder.feed(p.encode(p.Say("x" * 1000))[:20])
    assert decoder.next_frame() is None and decoder.payload_buffer() is None


# ----------------------------------------------------- hashing while reading


def test_the_sender_hashes_while_reading_and_sends_the_digest_at_the_end():
    data = os.urandom(300_000)
    t = OutgoingTransfer(1, len(data), "", file_reader(io.BytesIO(data)),
                         AdaptiveWindow(max_chunks=1000, initial_chunks=1000))
    assert t.offer("bob", "f.bin").sha256 == ""
    out = t.handle(0.0, p.FileAccept(1, 0))
    assert b"".join(m.data for m in out if isinstance(m, p.FileChunk)) == data
    assert out[-1] == p.FileDone(1, hashlib.sha256(data).hexdigest()) and t.sha256 == out[-1].sha256


def test_a_resume_hashes_the_prefix_the_receiver_already_has(tmp_path):
    data = os.urandom(200_000)
    (tmp_path / "f.bin.part").write_bytes(data[:70_000])
    sender = OutgoingTransfer(1, len(data), "", file_reader(io.BytesIO(data)),
                              AdaptiveWindow(max_chunks=1000, initial_chunks=1000))
    receiver = IncomingTransfer(p.FileOffer(1, "alice", "f.bin", len(data), ""), tmp_path)
    accept = receiver.accept()
    assert accept.offset == 70_000
    for message in sender.handle(0.0, accept):
        receiver.handle(message)
    assert receiver.done and (tmp_path / "f.bin").read_bytes() == data


def test_the_receiver_needs_a_digest_from_somewhere_and_one_story(tmp_path):
    data = b"x" * 1000
    good = hashlib.sha256(data).hexdigest()

    def receiver(offered: str) -> IncomingTransfer:
        t = IncomingTransfer(p.FileOffer(1, "alice", "f.bin", len(data), offered), tmp_path, overwrite=True,
                             resume=False)
        t.accept()
        t.handle(p.FileChunk(1, 0, data))
        return t

    with pytest.raises(TransferProtocolError, match="no SHA-256"):
        receiver("").handle(p.FileDone(1))
    with pytest.raises(TransferProtocolError, match="not the one offered"):
        receiver(good).handle(p.FileDone(1, "0" * 64))
    with pytest.raises(ChecksumMismatch):
        receiver("").handle(p.FileDone(1, "0" * 64))
    assert receiver("").handle(p.FileDone(1, good)) == [p.FileDone(1)]


def test_new_fields_are_left_out_when_unused_so_old_frames_stay_byte_identical():
    assert p.encode(p.FileDone(3)) == p.pack_header(p.FrameType.FILE_DONE, 0, 3)
    assert b"token" not in p.encode(p.FileOffer(1, "bob", "f", 1, "ab" * 32))
    assert b"direct" not in p.encode(p.FileAccept(1, 0))
    frame = p.FrameDecoder()
    frame.feed(p.encode(p.FileAccept(1, 5, "127.0.0.1:4000")))
    assert p.decode_message(next(iter(frame))) == p.FileAccept(1, 5, "127.0.0.1:4000")


# ------------------------------------------------------- chunks follow the rate


def run_window(rtt: float, rate: float, seconds: float = 2.0) -> AdaptiveWindow:
    """A crude fluid model: acks come back one RTT (plus the queue) after each chunk."""
    w = AdaptiveWindow()
    now, queue_until = 0.0, 0.0
    w.start(now)
    pending: list[tuple[float, int]] = []
    while now < seconds:
        while w.allowance(now) >= w.chunk_size:
            queue_until = max(queue_until, now) + w.chunk_size / rate
            w.on_sent(now, w.sent, w.chunk_size)
            pending.append((queue_until + rtt, w.sent))
        due, acked = pending.pop(0)
        now = max(now, due)
        w.on_ack(now, acked)
    return w


def test_chunks_grow_on_a_fast_short_path_and_stay_small_on_a_slow_long_one():
    fast = run_window(rtt=0.001, rate=500e6)
    slow = run_window(rtt=0.040, rate=6.25e6, seconds=10.0)
    assert fast.chunk_size > 128 * KiB
    assert fast.chunk_size <= p.MAX_PAYLOAD - p.CHUNK_PREFIX.size
    assert slow.chunk_size == 32 * KiB


@settings(max_examples=80, deadline=None)
@given(rtts=st.lists(st.floats(0.0002, 0.2), min_size=1, max_size=200))
def test_a_chunk_always_fits_in_the_window(rtts):
    """A chunk bigger than the window could never be sent: the transfer would stall (it once did)."""
    w = AdaptiveWindow()
    now = 0.0
    w.start(now)
    for rtt in rtts:
        length = w.chunk_size
        assert length <= w.window_bytes
        w.on_sent(now, w.sent, length)
        now += rtt
        w.on_ack(now, w.sent)
        assert w.chunk_size <= w.window_bytes and w.allowance(now) >= w.chunk_size  # nothing in flight: it may go


# ------------------------------------------------------ hashing beside the reader


def test_background_sha256_matches_hashlib_in_order_and_ends_its_thread():
    import threading

    from chatlab.hashing import BackgroundSha256

    pieces = [os.urandom(n) for n in (10, 70_000, 5, 300_000, 64 * 1024, 1)]
    digest = BackgroundSha256()
    for piece in pieces:
        digest.update(memoryview(piece))
    assert digest.hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()
    before = {t for t in threading.enumerate() if t.name == "chatlab-sha256"}
    digest.close()
    for thread in before:
        thread.join(5)
        assert not thread.is_alive()


def test_background_sha256_reports_a_failure_instead_of_a_thread_traceback():
    from chatlab.errors import TransferError
    from chatlab.hashing import BackgroundSha256

    digest = BackgroundSha256()
    digest.update(b"x" * 100_000)
    released = memoryview(bytearray(100_000))
    released.release()
    digest.update(released)  # hashing it fails in the thread
    with pytest.raises(TransferError, match="hashing the file failed"):
        digest.hexdigest()
    digest.close()
