"""Exercise for notebook 03: a length-prefixed framing of your own.

The format is chatlab's header cut down to its essence::

     0        1        2        3
    +--------+--------+--------+--- - - -
    |  kind  |  length (u16)   | payload (length bytes) ...
    +--------+--------+--------+--- - - -

``kind`` is one unsigned byte and ``length`` an unsigned 16-bit number in
network byte order (big-endian), so the header is ``struct.Struct("!BH")``,
3 bytes, and a payload holds at most 65535 bytes.  The student writes::

    def encode_frame(kind: int, payload: bytes) -> bytes: ...
    def decode_frames(buffer: bytearray) -> list[tuple[int, bytes]]: ...

``decode_frames`` removes every *complete* frame from the front of
``buffer`` and returns them as ``(kind, payload)`` pairs, in order; the bytes
of an unfinished frame stay in ``buffer`` for the next call.  A receiver then
reads as ``buffer += sock.recv(4096); for kind, payload in decode_frames(buffer): ...``

:func:`check_framing` feeds the student's functions what TCP really
delivers: 1-byte trickles, ten frames stuck together, half a frame then the
rest, empty and maximum-size payloads.  It is pure (no sockets), so it is
fast and its report is the same on every run.
"""

from __future__ import annotations

import struct
from typing import Any, Callable

from ._report import Report, differ, returned, run_cases, student, where
from .recv import DeadlineExceeded, call_with_deadline

__all__ = ["HEADER", "HEADER_SIZE", "MAX_PAYLOAD", "check_framing"]

HEADER = struct.Struct("!BH")  # kind (u8), payload length (u16, big-endian)
HEADER_SIZE = HEADER.size  # 3
MAX_PAYLOAD = 0xFFFF  # the largest number a u16 holds

Frame = tuple[int, bytes]


def _spec(kind: int, payload: bytes) -> bytes:
    """The format, as the checker understands it (used to build the streams it feeds)."""
    return HEADER.pack(kind, len(payload)) + payload


def _show(frame: Any, limit: int = 24) -> str:
    """A short repr of a frame: long payloads are cut, so failure details stay one line."""
    if isinstance(frame, tuple) and len(frame) == 2 and isinstance(frame[1], bytes) and len(frame[1]) > limit:
        return f"({frame[0]!r}, {frame[1][:limit]!r}... {len(frame[1])} bytes)"
    return repr(frame)


def _show_all(frames: list[Any]) -> str:
    return "[" + ", ".join(_show(f) for f in frames) + "]"


def _exc_name(exc: BaseException) -> str:
    """``ValueError``, but ``struct.error`` rather than a bare ``error``."""
    cls = type(exc)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__name__}"


def _left_over(buffer: bytearray, where: str = "") -> str:
    return (
        f"{where}{len(buffer)} bytes were left in the buffer after the last whole frame: the bytes of a frame"
        " that was returned must leave the buffer, or the next call returns it again"
    )


def _normalise(result: Any) -> list[Frame]:
    if not isinstance(result, (list, tuple)):
        raise AssertionError(returned(result, "a list of (kind, payload) pairs, empty when no frame is complete", "decode_frames"))
    frames = []
    for item in result:
        ok = isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], (bytes, bytearray, memoryview))
        assert ok, f"decode_frames must return (kind, payload) pairs, got {item!r}"
        frames.append((int(item[0]), bytes(item[1])))
    return frames


def check_framing(
    encode_frame: Callable[[int, bytes], bytes],
    decode_frames: Callable[[bytearray], list[Frame]],
    *,
    timeout: float = 2.0,
    show: bool = True,
) -> Report:
    """Check ``encode_frame`` and ``decode_frames`` against the format above.

    Each call of the student's code runs under a ``timeout``-second deadline,
    so an endless ``while`` loop fails its case instead of hanging the
    notebook.  Prints one line per case (unless ``show=False``) and returns the
    :class:`Report`, true when every case passes.
    """

    encode_frame = student(encode_frame)
    decode_frames = student(decode_frames)

    def enc(kind: int, payload: bytes) -> bytes:
        got = call_with_deadline(timeout, encode_frame, kind, payload)
        assert isinstance(got, (bytes, bytearray)), returned(got, "bytes", "encode_frame")
        return bytes(got)

    def dec(buffer: bytearray) -> list[Frame]:
        try:
            return _normalise(call_with_deadline(timeout, decode_frames, buffer))
        except DeadlineExceeded as exc:
            raise AssertionError(
                f"decode_frames {exc}: a loop that never removes bytes from the buffer runs forever"
            ) from None

    def wire_format() -> str:
        want = b"\x01\x00\x02hi"
        got = enc(1, b"hi")
        assert got == want, (
            f"encode_frame(1, b'hi'): {differ(got, want)}"
            " (kind as 1 byte, then the payload's length as 2 bytes in network byte order, big-endian)"
        )
        return repr(got)

    def round_trip() -> str:
        frames = [(0, b""), (1, b"hello"), (255, "你好".encode()), (42, b"line 1\nline 2\n"), (3, bytes(range(256)))]
        for kind, payload in frames:
            buffer = bytearray(enc(kind, payload))
            got = dec(buffer)
            assert got == [(kind, payload)], (
                f"decode_frames(encode_frame{_show((kind, payload))}) gave {_show_all(got)}"
                + (f" [{differ(got, [(kind, payload)])}]" if _show_all(got) == _show_all([(kind, payload)]) else "")
            )
            assert not buffer, _left_over(buffer)
        return f"{len(frames)} frames, kinds 0 to 255"

    def empty_payload() -> str:
        data = enc(7, b"")
        header_only = b"\x07\x00\x00"
        assert data == header_only, f"encode_frame(7, b''): {differ(data, header_only)}"
        buffer = bytearray(data)
        got = dec(buffer)
        assert got == [(7, b"")], (
            f"decoding {data!r}: {differ(got, [(7, b'')])}"
            + (" (a frame with an empty payload is complete as soon as its 3-byte header is there)" if not got else "")
        )
        assert not buffer, _left_over(buffer)
        return "3 bytes, header only"

    def max_size_payload() -> str:
        payload = bytes(i % 251 for i in range(MAX_PAYLOAD))
        try:
            data = enc(9, payload)
        except struct.error as exc:
            raise AssertionError(
                f"struct.error: {exc}{where(exc, [encode_frame])}: {MAX_PAYLOAD} is the largest length,"
                " and a 16-bit field holds it only as an unsigned number"
            ) from None
        assert data == _spec(9, payload), (
            f"encode_frame(9, <{MAX_PAYLOAD} bytes>) gave {len(data)} bytes starting {data[:3]!r}, "
            f"expected {HEADER_SIZE + MAX_PAYLOAD} bytes starting {_spec(9, payload)[:3]!r}"
        )
        buffer = bytearray(_spec(9, payload))
        got = dec(buffer)
        assert got == [(9, payload)], f"decoding a {MAX_PAYLOAD}-byte payload gave {_show_all(got)}"
        assert not buffer, _left_over(buffer)
        return f"{MAX_PAYLOAD} bytes"

    def oversized_payload() -> str:
        try:
            data = call_with_deadline(timeout, encode_frame, 1, bytes(MAX_PAYLOAD + 1))
        except DeadlineExceeded:
            raise
        except Exception as exc:  # ValueError is best; struct.error from pack() will do
            return f"raised {_exc_name(exc)}"
        if not isinstance(data, (bytes, bytearray)):
            raise AssertionError(returned(data, "an exception", "encode_frame") + f" (for a {MAX_PAYLOAD + 1}-byte payload)")
        raise AssertionError(
            f"encode_frame accepted a {MAX_PAYLOAD + 1}-byte payload and returned {len(data)} bytes: "
            "the 16-bit length field cannot say how long it is, so refuse it"
        )

    def half_then_rest() -> str:
        frame = _spec(5, b"half and half")
        for cut in (1, 2, 3, 8):  # inside the header, header only, header + part of the payload
            buffer = bytearray(frame[:cut])
            first = dec(buffer)
            assert first == [], (
                f"after {cut} of {len(frame)} bytes it returned {_show_all(first)}: "
                "a frame is complete only when all `length` payload bytes are there"
            )
            assert bytes(buffer) == frame[:cut], (
                f"after {cut} of {len(frame)} bytes the buffer holds {bytes(buffer)!r}: "
                "keep the bytes of an unfinished frame for the next call"
            )
            buffer += frame[cut:]
            second = dec(buffer)
            assert second == [(5, b"half and half")], (
                f"cut after byte {cut}: once the rest arrived it returned {_show_all(second)}"
            )
            assert not buffer, _left_over(buffer, f"cut after byte {cut}: ")
        return "cut after bytes 1, 2, 3 and 8"

    def one_byte_trickle() -> str:
        frames = [(1, b"hi"), (2, b""), (3, b"three")]
        stream = b"".join(_spec(*f) for f in frames)
        expected, end = [], 0
        for f in frames:
            end += HEADER_SIZE + len(f[1])
            expected.append((end, f))
        buffer = bytearray()
        got: list[Any] = []
        for i in range(len(stream)):
            buffer += stream[i : i + 1]
            got.extend((i + 1, f) for f in dec(buffer))
        for k, (at, frame) in enumerate(got):
            if k >= len(expected):
                raise AssertionError(f"after byte {at} of {len(stream)} it returned an extra frame {_show(frame)}")
            want_at, want = expected[k]
            if frame in [f for _, f in got[:k]] and frame != want:
                raise AssertionError(
                    f"after byte {at} of {len(stream)} it returned {_show(frame)} a second time: the bytes of a"
                    " frame that was returned must leave the buffer"
                )
            if frame == want and at > want_at:
                empty = " (its payload is empty: the header alone completes it)" if not want[1] else ""
                raise AssertionError(
                    f"{_show(frame)} came out only after byte {at} of {len(stream)}, but it was complete after"
                    f" byte {want_at}{empty}: return a frame as soon as its last byte is in the buffer"
                )
            assert (at, frame) == (want_at, want), (
                f"after byte {at} of {len(stream)} it returned {_show(frame)}; "
                f"expected {_show(want)}, complete after byte {want_at}"
                + (f" [{differ(frame, want)}]" if _show(frame) == _show(want) else "")
            )
        assert len(got) == len(expected), (
            f"only {len(got)} of {len(expected)} frames came out; missing {_show(expected[len(got)][1])}"
        )
        assert not buffer, _left_over(buffer)
        return f"{len(frames)} frames from {len(stream)} one-byte pieces"

    def ten_stuck_together() -> str:
        frames = [(k, f"message {k}".encode()) for k in range(10)]
        frames[4] = (4, b"")
        frames[7] = (7, b"has a\nnewline")
        buffer = bytearray(b"".join(_spec(*f) for f in frames))
        got = dec(buffer)
        if len(got) == 1 and got[0] == frames[0]:
            raise AssertionError(
                "got only the first of 10 frames from one call: return every complete frame in the buffer"
            )
        assert got == frames, (
            f"got {len(got)} frame(s) instead of 10"
            + (f", the first {_show(got[0])}" if got else "")
            + (f"; expected {_show(frames[0])}" if got and got[0] != frames[0] else "")
        )
        assert not buffer, _left_over(buffer)
        return "10 frames from one call"

    cases = [
        ("wire format", wire_format),
        ("round trip", round_trip),
        ("empty payload", empty_payload),
        ("max-size payload", max_size_payload),
        ("oversized payload refused", oversized_payload),
        ("half a frame, then the rest", half_then_rest),
        ("1-byte trickle", one_byte_trickle),
        ("ten frames stuck together", ten_stuck_together),
    ]
    return run_cases("check_framing", cases, show=show, student_fns=[encode_frame, decode_frames])
