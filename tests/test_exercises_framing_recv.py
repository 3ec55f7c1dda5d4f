"""The checkers of notebooks 03 and 04 pass the reference solutions and catch known bugs."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatlab.errors import FrameTooLarge
from chatlab.exercises.framing import HEADER, MAX_PAYLOAD, check_framing
from chatlab.exercises.recv import (
    DeadlineExceeded,
    call_with_deadline,
    check_recv_exact,
    sending_in_background,
    tcp_pair,
    wait_until_buffered,
)
from solutions.framing_recv import decode_frames, encode_frame, read_frame, recv_exact
from chatlab.protocol import FrameType, Say, encode, pack_header


def failed(report) -> set[str]:
    return {r.name for r in report.results if not r.passed}


# -- check_framing ------------------------------------------------------------


def test_check_framing_passes_the_reference_solution():
    report = check_framing(encode_frame, decode_frames, show=False)
    assert report, report.summary()
    assert report.passed == len(report.results) == 8


def decode_one_recv_one_message(buffer):
    if len(buffer) < 3:
        return []
    kind, _length = struct.unpack("!BH", buffer[:3])
    payload = bytes(buffer[3:])
    buffer.clear()
    return [(kind, payload)]


def decode_only_first(buffer):
    if len(buffer) < 3:
        return []
    kind, length = HEADER.unpack_from(buffer)
    if len(buffer) < 3 + length:
        return []
    payload = bytes(buffer[3 : 3 + length])
    del buffer[: 3 + length]
    return [(kind, payload)]


def decode_forgets_to_keep_partial(buffer):
    frames = decode_frames(buffer)
    buffer.clear()  # throws away the start of the next frame
    return frames


def decode_endless_loop(buffer):
    frames = []
    while len(buffer) >= 3:
        kind, length = HEADER.unpack_from(buffer)
        if len(buffer) < 3 + length:
            continue  # BUG: waits for bytes that can only come from the next call
        frames.append((kind, bytes(buffer[3 : 3 + length])))
        del buffer[: 3 + length]
    return frames


def test_check_framing_catches_one_recv_one_message():
    report = check_framing(encode_frame, decode_one_recv_one_message, show=False)
    assert not report
    assert failed(report) == {"half a frame, then the rest", "1-byte trickle", "ten frames stuck together"}
    detail = {r.name: r.detail for r in report.results}
    assert "after byte 3 of 16" in detail["1-byte trickle"]


def test_check_framing_catches_a_decoder_returning_one_frame_per_call():
    report = check_framing(encode_frame, decode_only_first, show=False)
    assert failed(report) == {"ten frames stuck together"}
    assert "only the first of 10" in report.results[-1].detail


def test_check_framing_catches_a_decoder_dropping_a_partial_frame():
    report = check_framing(encode_frame, decode_forgets_to_keep_partial, show=False)
    assert failed(report) == {"half a frame, then the rest", "1-byte trickle"}


def test_check_framing_stops_an_endless_loop():
    started = time.monotonic()
    report = check_framing(encode_frame, decode_endless_loop, timeout=0.2, show=False)
    assert failed(report) == {"half a frame, then the rest", "1-byte trickle"}
    assert all("did not return" in r.detail for r in report.results if not r.passed)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "fmt, failures",
    [
        ("<BH", {"wire format", "round trip"}),  # little-endian length
        ("BH", {"wire format", "round trip", "empty payload", "max-size payload"}),  # native: a pad byte
        ("!Bh", {"max-size payload"}),  # signed length: 65535 does not fit
    ],
)
def test_check_framing_catches_wrong_header_formats(fmt, failures):
    def encode_wrong(kind, payload):
        return struct.pack(fmt, kind, len(payload)) + payload

    if fmt == "BH" and struct.calcsize("BH") == 3:
        pytest.skip("no padding on this platform")
    report = check_framing(encode_wrong, decode_frames, show=False)
    assert failed(report) == failures


def test_check_framing_requires_refusing_an_oversized_payload():
    def encode_unchecked(kind, payload):
        return bytes([kind]) + (len(payload) & 0xFFFF).to_bytes(2, "big") + payload

    report = check_framing(encode_unchecked, decode_frames, show=False)
    assert failed(report) == {"oversized payload refused"}


def test_check_framing_reports_a_bad_return_type():
    report = check_framing(encode_frame, lambda buffer: None, show=False)
    assert "returned None" in report.results[1].detail


@settings(max_examples=60, deadline=None)
@given(
    frames=st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=300)), max_size=8),
    cuts=st.lists(st.integers(0, 3000), max_size=10),
)
def test_reference_decode_frames_is_independent_of_where_the_stream_is_cut(frames, cuts):
    stream = b"".join(encode_frame(k, p) for k, p in frames)
    points = sorted({c for c in cuts if c < len(stream)} | {0, len(stream)})
    buffer, got = bytearray(), []
    for start, end in zip(points, points[1:]):
        buffer += stream[start:end]
        got.extend(decode_frames(buffer))
    assert got == frames
    assert not buffer


def test_reference_encode_frame_refuses_bad_values():
    with pytest.raises(ValueError):
        encode_frame(256, b"")
    with pytest.raises(ValueError):
        encode_frame(1, bytes(MAX_PAYLOAD + 1))


# -- check_recv_exact ---------------------------------------------------------


def test_check_recv_exact_passes_the_reference_solution():
    report = check_recv_exact(recv_exact, timeout=0.5, show=False)
    assert report, report.summary()
    assert report.passed == len(report.results) == 6


def recv_loop_without_eof_check(sock, n):
    data = b""
    while len(data) < n:
        data += sock.recv(1024)
    return data


def recv_once(sock, n):
    return sock.recv(n)


def recv_too_much_then_slice(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError
        data += chunk
    return data[:n]


def recv_raises_on_zero(sock, n):
    data = sock.recv(n) if n else sock.recv(1)
    if not data:
        raise EOFError
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def test_check_recv_exact_catches_the_loop_without_an_eof_check():
    report = check_recv_exact(recv_loop_without_eof_check, timeout=0.3, show=False)
    assert failed(report) == {"more than n buffered", "peer closes mid-message"}
    detail = {r.name: r.detail for r in report.results}
    assert "returned 26 bytes but only 10" in detail["more than n buffered"]
    assert "did not return within" in detail["peer closes mid-message"]


def test_check_recv_exact_catches_a_single_recv():
    report = check_recv_exact(recv_once, timeout=0.3, show=False)
    assert failed(report) == {"1-byte trickle", "peer closes mid-message", "1 MiB message"}
    detail = {r.name: r.detail for r in report.results}
    assert "returned 5 of 10 bytes" in detail["peer closes mid-message"]


def test_check_recv_exact_catches_reading_past_the_message():
    report = check_recv_exact(recv_too_much_then_slice, timeout=0.3, show=False)
    assert failed(report) == {"more than n buffered"}
    assert "consumed and lost" in report.results[2].detail


def test_check_recv_exact_catches_blocking_on_n_zero():
    report = check_recv_exact(recv_raises_on_zero, timeout=0.3, show=False)
    assert failed(report) == {"n = 0"}
    assert "timed out" in report.results[4].detail


# -- helpers ------------------------------------------------------------------


def test_call_with_deadline_returns_raises_and_stops_loops():
    assert call_with_deadline(1, lambda x: x + 1, 41) == 42
    with pytest.raises(KeyError):
        call_with_deadline(1, {}.__getitem__, "missing")

    def spin():
        while True:
            pass

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        call_with_deadline(0.2, spin)
    assert time.monotonic() - started < 2


def test_tcp_pair_and_wait_until_buffered():
    with tcp_pair(timeout=1) as (client, server):
        assert client.getpeername() == server.getsockname()
        client.sendall(b"abc")
        wait_until_buffered(server, 3, timeout=1)
        assert server.recv(1024) == b"abc"
        with pytest.raises(TimeoutError):
            wait_until_buffered(server, 1, timeout=0.1)
    assert client.fileno() == -1 and server.fileno() == -1


def test_read_frame_over_a_trickle_and_refuses_a_huge_header():
    stream = encode(Say(text="hello")) + pack_header(FrameType.SAY, 2**32 - 1)
    with tcp_pair(timeout=1) as (client, server), sending_in_background(client, stream, piece=3, delay=0):
        frame = read_frame(server)
        assert frame.type is FrameType.SAY and b"hello" in frame.payload
        with pytest.raises(FrameTooLarge):
            read_frame(server)


def test_recv_exact_raises_eoferror_when_the_peer_closes():
    with tcp_pair(timeout=1) as (client, server):
        client.sendall(b"12345")
        client.shutdown(socket.SHUT_WR)
        with pytest.raises(EOFError, match="after 5 of 10 bytes"):
            recv_exact(server, 10)
