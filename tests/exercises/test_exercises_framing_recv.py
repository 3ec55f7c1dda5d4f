"""The checkers of notebooks 03 and 04 pass the reference solutions and catch known bugs."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatlab.core.protocol import FrameType, Say, encode, pack_header
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


def failed(report) -> set[str]:
    return {r.name for r in report.results if not r.passed}


# -- check_framing ------------------------------------------------------------


def test_check_framing_passes_the_reference_solution():
    report = check_framing(encode_frame, decode_frames, show=False)
    assert report, report.summary()
    assert report.passed == len(report.results) == 10


# The classic wrong answers to notebook 03's exercise.  Each must fail the
# checker, in the cases named, with a hint that names the idea it misses.


def decode_one_recv_one_message(buffer):
    # Takes whatever is in the buffer for one whole frame: one recv() = one message.
    if len(buffer) < 3:
        return []
    kind, _length = struct.unpack("!BH", buffer[:3])
    payload = bytes(buffer[3:])
    buffer.clear()
    return [(kind, payload)]


def decode_only_first(buffer):
    # An `if` where a `while` belongs: one frame per call.
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


def decode_needs_more_than_a_header(buffer):
    # Off by one: `>` where `>=` belongs, so a frame with an empty payload waits for a byte too many.
    frames = []
    while len(buffer) > 3:
        kind, length = HEADER.unpack_from(buffer)
        if len(buffer) < 3 + length:
            break
        frames.append((kind, bytes(buffer[3 : 3 + length])))
        del buffer[: 3 + length]
    return frames


def decode_never_consumes(buffer):
    # Walks the buffer but never removes what it returned.
    frames, start = [], 0
    while len(buffer) - start >= 3:
        kind, length = HEADER.unpack_from(buffer, start)
        if len(buffer) < start + 3 + length:
            break
        frames.append((kind, bytes(buffer[start + 3 : start + 3 + length])))
        start += 3 + length
    return frames


def encode_with(fmt):
    def encode(kind, payload):
        return struct.pack(fmt, kind, len(payload)) + payload

    return encode


def decode_with(fmt):
    size = struct.calcsize(fmt)

    def decode(buffer):
        frames = []
        while len(buffer) >= size:
            kind, length = struct.unpack_from(fmt, buffer)
            if len(buffer) < size + length:
                break
            frames.append((kind, bytes(buffer[size : size + length])))
            del buffer[: size + length]
        return frames

    return decode


def encode_unchecked(kind, payload):
    # No size check: 65536 bytes wrap around to a length of 0.
    return bytes([kind]) + (len(payload) & 0xFFFF).to_bytes(2, "big") + payload


def encode_length_counts_the_header(kind, payload):
    return HEADER.pack(kind, len(payload) + 3) + payload


def encode_forgets_return(kind, payload):
    HEADER.pack(kind, len(payload)) + payload


def decode_payload_as_text(buffer):
    return [(kind, payload.decode("utf-8", "replace")) for kind, payload in decode_frames(buffer)]


def decode_rebinds_the_buffer(buffer):
    frames = []
    while len(buffer) >= 3:
        kind, length = HEADER.unpack_from(buffer)
        if len(buffer) < 3 + length:
            break
        frames.append((kind, bytes(buffer[3 : 3 + length])))
        buffer = buffer[3 + length :]  # BUG: a new bytearray; the caller's is never emptied
    return frames


def decode_slice_off_by_header(buffer):
    frames = []
    while len(buffer) >= 3:
        kind, length = HEADER.unpack_from(buffer)
        if len(buffer) < 3 + length:
            break
        frames.append((kind, bytes(buffer[3:length])))  # BUG: the end forgets the header's 3 bytes
        del buffer[: 3 + length]
    return frames


def decode_kind_as_bytes(buffer):
    return [(bytes([kind]), payload) for kind, payload in decode_frames(buffer)]  # BUG: b'\x01' is not 1


def encode_kind_as_text(kind, payload):
    return str(kind).encode() + len(payload).to_bytes(2, "big") + payload  # BUG: "1" is not the byte 1


# From a reviewer's attempts to fool the checker.
def fool_dec_clear_when_done(buffer):
    frames = []
    i = 0
    while i + 3 <= len(buffer):
        kind, length = struct.Struct("!BH").unpack_from(buffer, i)
        if i + 3 + length > len(buffer):
            break
        frames.append((kind, bytes(buffer[i + 3:i + 3 + length])))
        i += 3 + length
    if frames:
        buffer.clear()  # BUG: throws away the start of the next frame (should be del buffer[:i])
    return frames


def fool_enc_mask_kind(kind, payload):
    # BUG: kind 256 silently becomes 0, kind -1 becomes 255
    if len(payload) > 65535:
        raise ValueError("too long")
    return bytes([kind & 0xFF]) + len(payload).to_bytes(2, "big") + payload


def fool_enc_assert(kind, payload):
    assert len(payload) <= 65535  # BUG: validation with assert vanishes under python -O
    return struct.pack("!BH", kind, len(payload)) + payload


def fool_dec_one_pass_generator_style(buffer):
    # correct, unusual: memoryview walk, returns a tuple
    out = []
    pos = 0
    mv = memoryview(buffer)
    try:
        while len(mv) - pos >= 3:
            kind = mv[pos]
            length = int.from_bytes(mv[pos + 1:pos + 3], "big")
            if len(mv) - pos - 3 < length:
                break
            out.append((kind, mv[pos + 3:pos + 3 + length].tobytes()))
            pos += 3 + length
    finally:
        mv.release()
    del buffer[:pos]
    return tuple(out)


def fool_enc_kind_str_ok(kind, payload):
    return kind.to_bytes(1, "big") + struct.pack(">H", len(payload)) + bytes(payload)


def fool_dec_recursive(buffer):
    # correct, unusual: recursion
    if len(buffer) < 3:
        return []
    kind, length = struct.Struct("!BH").unpack_from(buffer)
    if len(buffer) < 3 + length:
        return []
    payload = bytes(buffer[3:3 + length])
    del buffer[:3 + length]
    return [(kind, payload)] + fool_dec_recursive(buffer)



FRAMING_WRONG_ANSWERS = [
    # (name, encode_frame, decode_frames, cases that must fail, words the hint must hold)
    ("one recv() is one message", encode_frame, decode_one_recv_one_message,
     {"half a frame, then the rest", "1-byte trickle", "ten frames stuck together"}, "complete only when"),
    ("an `if` instead of a `while`: one frame per call", encode_frame, decode_only_first,
     {"ten frames stuck together"}, "only the first of 10"),
    ("throws away an unfinished frame", encode_frame, decode_forgets_to_keep_partial,
     {"half a frame, then the rest", "1-byte trickle"}, "keep the bytes of an unfinished frame"),
    ("waits inside the loop for bytes that cannot come", encode_frame, decode_endless_loop,
     {"half a frame, then the rest", "1-byte trickle"}, "never removes bytes"),
    ("an empty payload waits for one byte too many", encode_frame, decode_needs_more_than_a_header,
     {"empty payload", "1-byte trickle", "round trip"}, "header alone completes it"),
    ("never removes returned frames from the buffer", encode_frame, decode_never_consumes,
     {"round trip", "empty payload", "max-size payload", "half a frame, then the rest", "1-byte trickle",
      "ten frames stuck together"}, "must leave the buffer"),
    ("little-endian length", encode_with("<BH"), decode_with("<BH"), {"wire format"}, "big-endian"),
    ("signed 16-bit length", encode_with("!Bh"), decode_with("!Bh"), {"max-size payload"}, "unsigned"),
    ("no size check", encode_unchecked, decode_frames, {"oversized payload refused"}, "16-bit length field"),
    ("the length counts the header too", encode_length_counts_the_header, decode_frames,
     {"wire format", "round trip", "empty payload", "max-size payload"}, "expected b'\\x01\\x00\\x02hi'"),
    ("forgets to return", encode_forgets_return, decode_frames,
     {"wire format", "round trip", "empty payload", "max-size payload"}, "did you forget to `return`"),
    ("payload decoded to text", encode_frame, decode_payload_as_text, {"round trip"}, "payloads are bytes"),
    ("buffer = buffer[n:] instead of del", encode_frame, decode_rebinds_the_buffer, {"round trip"},
     "buffer = buffer[n:] only makes a new one"),
    ("payload slice forgets the header", encode_frame, decode_slice_off_by_header, {"round trip"}, "gave"),
    ("kind written as text", encode_kind_as_text, decode_frames, {"wire format"}, "kind as 1 byte"),
    ("kind returned as bytes", encode_frame, decode_kind_as_bytes, {"round trip"}, "buffer[0:1] is bytes"),
    ("buffer.clear() drops the next frame's start", encode_frame, fool_dec_clear_when_done,
     {"whole frames, then part of the next"}, "buffer.clear()"),
    ("kind masked with & 0xFF", fool_enc_mask_kind, decode_frames, {"a kind outside 0..255 refused"}, "kind & 0xFF"),
    ("size checked with assert", fool_enc_assert, decode_frames, {"oversized payload refused"}, "python -O"),
]


@pytest.mark.parametrize("encode, decode", [(fool_enc_kind_str_ok, fool_dec_one_pass_generator_style),
                                            (encode_frame, fool_dec_recursive)])
def test_check_framing_passes_correct_answers_written_differently(encode, decode):
    report = check_framing(encode, decode, show=False)
    assert report.all_passed, report.summary()


@pytest.mark.parametrize("name, encode, decode, must_fail, hint", FRAMING_WRONG_ANSWERS,
                         ids=[row[0] for row in FRAMING_WRONG_ANSWERS])
def test_check_framing_fails_a_classic_wrong_answer(name, encode, decode, must_fail, hint):
    report = check_framing(encode, decode, timeout=0.5, show=False)
    assert not report
    assert failed(report) >= must_fail, report.summary()
    details = " | ".join(r.detail for r in report.results if r.name in must_fail)
    assert hint in details, report.summary()


def test_check_framing_catches_wrong_header_formats_on_the_wire_only():
    report = check_framing(encode_with("<BH"), decode_frames, show=False)
    assert failed(report) == {"wire format", "round trip"}
    if struct.calcsize("BH") != 3:  # native alignment adds a pad byte
        report = check_framing(encode_with("BH"), decode_frames, show=False)
        assert {"wire format", "empty payload"} <= failed(report)


def test_check_framing_stops_an_endless_loop_quickly():
    started = time.monotonic()
    report = check_framing(encode_frame, decode_endless_loop, timeout=0.2, show=False)
    assert failed(report) == {"half a frame, then the rest", "1-byte trickle", "whole frames, then part of the next"}
    assert all("did not return within 0.2 s" in r.detail for r in report.results if not r.passed)
    assert time.monotonic() - started < 10


def test_check_framing_reports_none_and_lookalike_values():
    report = check_framing(encode_frame, lambda buffer: None, show=False)
    assert "decode_frames returned None" in report.results[1].detail
    assert "forget to `return`" in report.results[1].detail

    def decode_returns_bytearray_kind(buffer):  # the pair's repr looks right, its types are not
        return [(kind, payload) for kind, payload in decode_frames(buffer)]

    assert check_framing(encode_frame, decode_returns_bytearray_kind, show=False)


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
    assert report.passed == len(report.results) == 8


# The classic wrong answers to notebook 04's exercise.  Each must fail the
# checker, in the cases named, with a hint that names the idea it misses.


def recv_once(sock, n):
    return sock.recv(n)


def recv_loop_without_eof_check(sock, n):
    data = b""
    while len(data) < n:
        data += sock.recv(1024)
    return data


def recv_n_every_time(sock, n):
    # Checks for b'' but asks for n bytes on every call (issue 10, item 2):
    # on a real socket it returned 15 bytes for n = 10.
    data = b""
    while len(data) < n:
        chunk = sock.recv(n)
        if not chunk:
            raise EOFError("the peer closed")
        data += chunk
    return data


def recv_too_much_then_slice(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError
        data += chunk
    return data[:n]


def recv_returns_short_at_eof(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break  # returns half a message as if it were whole
        data += chunk
    return data


def recv_checks_none(sock, n):
    # recv() never returns None: at end of stream it returns b''.
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if chunk is None:
            raise EOFError
        data += chunk
    return data


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


def recv_decodes_text(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data.decode("latin-1")


def recv_forgets_return(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk


def recv_raises_connection_error(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed")  # BUG: the docstring asks for EOFError
        data += chunk
    return data


def recv_returns_none_at_eof(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None  # BUG: the caller cannot tell None from a message
        data += chunk
    return data


def recv_raises_value_error(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ValueError("incomplete")  # BUG: not what the docstring asks
        data += chunk
    return data


def recv_short_read_is_eof(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if len(chunk) < n - len(data):  # BUG: a short recv() is not the end of the stream
            raise EOFError("short read")
        data += chunk
    return data


def recv_makefile_read(sock, n):
    data = sock.makefile("rb").read(n)  # BUG: the buffered reader reads ahead
    if len(data) < n:
        raise EOFError
    return data


def recv_into_overwrites(sock, n):
    buffer = bytearray(n)
    got = 0
    while got < n:
        k = sock.recv_into(buffer, n - got)  # BUG: always writes at the start of the buffer
        if not k:
            raise EOFError
        got += k
    return bytes(buffer)


def recv_returns_empty_at_eof(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return b""  # BUG: an empty message is still a message to the caller
        data += chunk
    return data


def recv_compares_with_str(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if chunk == "":  # BUG: b'' is not ''
            raise EOFError
        data += chunk
    return data


# From a reviewer's attempts to fool the checker.
def fool_w_timeout_returns_partial(sock, n):
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except socket.timeout:  # BUG: a timeout returns half a message as if it were whole
            return data
        if not chunk:
            raise EOFError("closed")
        data += chunk
    return data


def fool_w_timeout_is_eof(sock, n):
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except OSError:  # BUG: a timeout (or any error) reported as the peer closing
            raise EOFError("closed")
        if not chunk:
            raise EOFError("closed")
        data += chunk
    return data


def fool_w_blocks_forever(sock, n):
    sock.settimeout(None)  # BUG: removes the caller's timeout, for good
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("closed")
        data += chunk
    return data


def fool_w_busy_nonblocking(sock, n):
    sock.setblocking(False)  # BUG: spins the CPU waiting; leaves the caller's socket non-blocking
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except BlockingIOError:
            continue
        if not chunk:
            raise EOFError("closed")
        data += chunk
    return data


def fool_ok_makefile_unbuffered(sock, n):
    with sock.makefile("rb", buffering=0) as f:
        parts = []
        left = n
        while left:
            b = f.read(left)
            if not b:
                raise EOFError
            parts.append(b)
            left -= len(b)
    return b"".join(parts)


RECV_WRONG_ANSWERS = [
    # (name, recv_exact, cases that must fail, words the hint must hold)
    ("a single recv()", recv_once, {"1-byte trickle", "peer closes mid-message", "1 MiB message"},
     "one recv() returns what has arrived so far"),
    ("a timeout returns the partial message", fool_w_timeout_returns_partial,
     {"a silent peer: the socket's timeout raises TimeoutError"},
     "when the socket timed out"),
    ("a timeout taken for the end of the stream", fool_w_timeout_is_eof,
     {"a silent peer: the socket's timeout raises TimeoutError"},
     "a timeout is not the end of the stream"),
    ("settimeout(None)", fool_w_blocks_forever, {"exactly n in one send"}, "settimeout(None)"),
    ("setblocking(False)", fool_w_busy_nonblocking, {"exactly n in one send"}, "setblocking(False)"),
    ("a loop without a b'' check", recv_loop_without_eof_check, {"more than n buffered", "peer closes mid-message"},
     "returns b'' at once"),
    ("recv(n) on every call, not recv(n - len(data))", recv_n_every_time,
     {"message in two parts, the next one right behind"}, "only ask for the bytes still missing"),
    ("recv(4096) and slice", recv_too_much_then_slice,
     {"more than n buffered", "message in two parts, the next one right behind"}, "consumed and lost"),
    ("returns a short message at end of stream", recv_returns_short_at_eof, {"peer closes mid-message"},
     "instead of raising"),
    ("checks for None instead of b''", recv_checks_none, {"peer closes mid-message"}, "b''"),
    ("blocks when n is 0", recv_raises_on_zero, {"n = 0"}, "timed out"),
    ("returns str", recv_decodes_text, {"exactly n in one send", "1 MiB message"}, "returned str"),
    ("forgets to return", recv_forgets_return, {"exactly n in one send", "n = 0"}, "did you forget to `return`"),
    ("a single recv(n)", recv_once, {"1-byte trickle"}, "fewer bytes than asked"),
    ("ConnectionError where EOFError is asked", recv_raises_connection_error, {"peer closes mid-message"},
     "the docstring asks for EOFError"),
    ("returns None at end of stream", recv_returns_none_at_eof, {"peer closes mid-message"}, "raise EOFError instead"),
    ("ValueError at end of stream", recv_raises_value_error, {"peer closes mid-message"}, "raise EOFError"),
    ("a short recv() taken for end of stream", recv_short_read_is_eof, {"1-byte trickle"}, "only b'' means"),
    ("a buffered makefile().read(n)", recv_makefile_read, {"more than n buffered"}, "reads ahead"),
    ("recv_into() always at the start", recv_into_overwrites, {"1-byte trickle"}, "each piece goes after"),
    ("compares with '' instead of b''", recv_compares_with_str, {"peer closes mid-message"}, "b''"),
    ("returns b'' at end of stream", recv_returns_empty_at_eof, {"peer closes mid-message"}, "raise EOFError"),
]


def recv_exact_recursive(sock, n):
    if n == 0:
        return b""
    chunk = sock.recv(n)
    if not chunk:
        raise EOFError("closed")
    return chunk + recv_exact_recursive(sock, n - len(chunk))


def recv_exact_into(sock, n):
    buffer = bytearray(n)
    view = memoryview(buffer)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError(f"after {got} of {n}")
        got += k
    return bytes(buffer)


def recv_exact_chunks_list(sock, n):
    parts, left = [], n
    while left:
        part = sock.recv(min(left, 8192))
        if part == b"":
            raise EOFError
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def recv_exact_incomplete_read(sock, n):
    import asyncio

    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise asyncio.IncompleteReadError(data, n)  # an EOFError too
        data += chunk
    return data


@pytest.mark.parametrize("right",
                         [recv_exact_recursive, recv_exact_into, recv_exact_chunks_list, recv_exact_incomplete_read,
                          fool_ok_makefile_unbuffered])
def test_check_recv_exact_passes_a_correct_answer_written_differently(right):
    report = check_recv_exact(right, timeout=0.5, show=False)
    assert report.all_passed, report.summary()


@pytest.mark.parametrize("name, recv_exact_, must_fail, hint", RECV_WRONG_ANSWERS,
                         ids=[row[0] for row in RECV_WRONG_ANSWERS])
def test_check_recv_exact_fails_a_classic_wrong_answer(name, recv_exact_, must_fail, hint):
    report = check_recv_exact(recv_exact_, timeout=0.3, show=False)
    assert not report
    assert failed(report) >= must_fail, report.summary()
    details = " | ".join(r.detail for r in report.results if r.name in must_fail)
    assert hint in details, report.summary()


def test_check_recv_exact_names_the_students_line_not_the_librarys():
    def recv_exact_(sock, n):
        reader = sock.makefile("rb")
        return reader.read(n + 1)  # waits for a byte that never comes: TimeoutError inside socket.py

    report = check_recv_exact(recv_exact_, timeout=0.3, show=False)
    first_line = recv_exact_.__code__.co_firstlineno
    detail = {r.name: r.detail for r in report.results}["exactly n in one send"]
    assert f"(line {first_line + 2}, in recv_exact_)" in detail, detail


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
