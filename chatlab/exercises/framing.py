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

from ..i18n import _
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
        return _("({kind!r}, {start!r}... {n} bytes)").format(kind=frame[0], start=frame[1][:limit], n=len(frame[1]))
    return repr(frame)


def _show_all(frames: list[Any]) -> str:
    return "[" + ", ".join(_show(f) for f in frames) + "]"


def _exc_name(exc: BaseException) -> str:
    """``ValueError``, but ``struct.error`` rather than a bare ``error``."""
    cls = type(exc)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__name__}"


def _left_over(buffer: bytearray, where: str = "") -> str:
    return _(
        "{where}{n} bytes were left in the buffer after the last whole frame: the bytes of a frame"
        " that was returned must leave the buffer, or the next call returns it again (del buffer[:n] changes"
        " the caller's bytearray; buffer = buffer[n:] only makes a new one inside your function)"
    ).format(where=where, n=len(buffer))


def _normalise(result: Any) -> list[Frame]:
    if not isinstance(result, (list, tuple)):
        raise AssertionError(
            returned(result, _("a list of (kind, payload) pairs, empty when no frame is complete"), "decode_frames")
        )
    frames = []
    for item in result:
        if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], str):
            raise AssertionError(
                _(
                    "decode_frames returned the payload as text ({item!r}): payloads are bytes, and may not be text"
                    " at all; leave them undecoded"
                ).format(item=item)
            )
        ok = isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], (bytes, bytearray, memoryview))
        assert ok, _("decode_frames must return (kind, payload) pairs, got {item!r}").format(item=item)
        if not isinstance(item[0], int):
            raise AssertionError(
                _(
                    "decode_frames returned the kind as {type} ({kind!r}): the kind is a number from 0 to 255"
                    " (struct.unpack gives an int, and so does buffer[0]; buffer[0:1] is bytes)"
                ).format(type=type(item[0]).__name__, kind=item[0])
            )
        frames.append((int(item[0]), bytes(item[1])))
    return frames


def _check_trickled(k: int, at: int, frame: Any, got: list[Any], expected: list[Any], n: int) -> None:
    """The ``k``-th frame out of a one-byte trickle (``n`` bytes), returned after byte ``at``."""
    if k >= len(expected):
        raise AssertionError(
            _("after byte {at} of {n} it returned an extra frame {frame}").format(at=at, n=n, frame=_show(frame))
        )
    want_at, want = expected[k]
    if frame in [f for _at, f in got[:k]] and frame != want:
        raise AssertionError(
            _(
                "after byte {at} of {n} it returned {frame} a second time: the bytes of a"
                " frame that was returned must leave the buffer"
            ).format(at=at, n=n, frame=_show(frame))
        )
    if frame == want and at > want_at:
        empty = _(" (its payload is empty: the header alone completes it)") if not want[1] else ""
        raise AssertionError(
            _(
                "{frame} came out only after byte {at} of {n}, but it was complete after"
                " byte {complete_at}{empty}: return a frame as soon as its last byte is in the buffer"
            ).format(frame=_show(frame), at=at, n=n, complete_at=want_at, empty=empty)
        )
    assert (at, frame) == (want_at, want), (
        _("after byte {at} of {n} it returned {frame}; expected {want}, complete after byte {complete_at}").format(
            at=at, n=n, frame=_show(frame), want=_show(want), complete_at=want_at
        )
        + (f" [{differ(frame, want)}]" if _show(frame) == _show(want) else "")
    )


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
                _("decode_frames {error}: a loop that never removes bytes from the buffer runs"
                  " forever").format(error=exc)
            ) from None

    def wire_format() -> str:
        want = b"\x01\x00\x02hi"
        got = enc(1, b"hi")
        assert got == want, _(
            "encode_frame(1, b'hi'): {difference}"
            " (kind as 1 byte, then the payload's length as 2 bytes in network byte order, big-endian)"
        ).format(difference=differ(got, want))
        return repr(got)

    def round_trip() -> str:
        frames = [(0, b""), (1, b"hello"), (255, "你好".encode()), (42, b"line 1\nline 2\n"), (3, bytes(range(256)))]
        for kind, payload in frames:
            buffer = bytearray(enc(kind, payload))
            got = dec(buffer)
            assert got == [(kind, payload)], (
                _("decode_frames(encode_frame{frame}) gave {got}").format(frame=_show((kind, payload)),
                                                                          got=_show_all(got))
                + (f" [{differ(got, [(kind, payload)])}]" if _show_all(got) == _show_all([(kind, payload)]) else "")
            )
            assert not buffer, _left_over(buffer)
        return _("{n} frames, kinds 0 to 255").format(n=len(frames))

    def empty_payload() -> str:
        data = enc(7, b"")
        header_only = b"\x07\x00\x00"
        assert data == header_only, _("encode_frame(7, b''): {difference}").format(difference=differ(data, header_only))
        buffer = bytearray(data)
        got = dec(buffer)
        assert got == [(7, b"")], (
            _("decoding {data!r}: {difference}").format(data=data, difference=differ(got, [(7, b"")]))
            + (_(" (a frame with an empty payload is complete as soon as its 3-byte header is there)")
               if not got else "")
        )
        assert not buffer, _left_over(buffer)
        return _("3 bytes, header only")

    def max_size_payload() -> str:
        payload = bytes(i % 251 for i in range(MAX_PAYLOAD))
        try:
            data = enc(9, payload)
        except struct.error as exc:
            raise AssertionError(
                _(
                    "struct.error: {message}{where}: {max} is the largest length,"
                    " and a 16-bit field holds it only as an unsigned number"
                ).format(message=exc, where=where(exc, [encode_frame]), max=MAX_PAYLOAD)
            ) from None
        assert data == _spec(9, payload), _(
            "encode_frame(9, <{max} bytes>) gave {n} bytes starting {start!r},"
            " expected {want} bytes starting {want_start!r}"
        ).format(max=MAX_PAYLOAD, n=len(data), start=data[:3], want=HEADER_SIZE + MAX_PAYLOAD,
                 want_start=_spec(9, payload)[:3])
        buffer = bytearray(_spec(9, payload))
        got = dec(buffer)
        assert got == [(9, payload)], _("decoding a {max}-byte payload gave {got}").format(max=MAX_PAYLOAD,
                                                                                           got=_show_all(got))
        assert not buffer, _left_over(buffer)
        return _("{n} bytes").format(n=MAX_PAYLOAD)

    def oversized_payload() -> str:
        try:
            data = call_with_deadline(timeout, encode_frame, 1, bytes(MAX_PAYLOAD + 1))
        except DeadlineExceeded:
            raise
        except Exception as exc:  # ValueError is best; struct.error from pack() will do
            return _("raised {error}").format(error=_exc_name(exc))
        if not isinstance(data, (bytes, bytearray)):
            raise AssertionError(
                returned(data, _("an exception"), "encode_frame")
                + _(" (for a {n}-byte payload)").format(n=MAX_PAYLOAD + 1)
            )
        raise AssertionError(
            _(
                "encode_frame accepted a {n}-byte payload and returned {got} bytes:"
                " the 16-bit length field cannot say how long it is, so refuse it"
            ).format(n=MAX_PAYLOAD + 1, got=len(data))
        )

    def half_then_rest() -> str:
        frame = _spec(5, b"half and half")
        for cut in (1, 2, 3, 8):  # inside the header, header only, header + part of the payload
            buffer = bytearray(frame[:cut])
            first = dec(buffer)
            assert first == [], _(
                "after {cut} of {n} bytes it returned {got}:"
                " a frame is complete only when all `length` payload bytes are there"
            ).format(cut=cut, n=len(frame), got=_show_all(first))
            assert bytes(buffer) == frame[:cut], _(
                "after {cut} of {n} bytes the buffer holds {held!r}: keep the bytes of an unfinished frame for"
                " the next call"
            ).format(cut=cut, n=len(frame), held=bytes(buffer))
            buffer += frame[cut:]
            second = dec(buffer)
            assert second == [(5, b"half and half")], _(
                "cut after byte {cut}: once the rest arrived it returned {got}"
            ).format(cut=cut, got=_show_all(second))
            assert not buffer, _left_over(buffer, _("cut after byte {cut}: ").format(cut=cut))
        return _("cut after bytes 1, 2, 3 and 8")

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
            _check_trickled(k, at, frame, got, expected, len(stream))
        assert len(got) == len(expected), _("only {got} of {n} frames came out; missing {frame}").format(
            got=len(got), n=len(expected), frame=_show(expected[len(got)][1])
        )
        assert not buffer, _left_over(buffer)
        return _("{frames} frames from {n} one-byte pieces").format(frames=len(frames), n=len(stream))

    def ten_stuck_together() -> str:
        frames = [(k, f"message {k}".encode()) for k in range(10)]
        frames[4] = (4, b"")
        frames[7] = (7, b"has a\nnewline")
        buffer = bytearray(b"".join(_spec(*f) for f in frames))
        got = dec(buffer)
        if len(got) == 1 and got[0] == frames[0]:
            raise AssertionError(
                _("got only the first of 10 frames from one call: return every complete frame in the buffer")
            )
        assert got == frames, (
            _("got {n} frame(s) instead of 10").format(n=len(got))
            + (_(", the first {frame}").format(frame=_show(got[0])) if got else "")
            + (_("; expected {frame}").format(frame=_show(frames[0])) if got and got[0] != frames[0] else "")
        )
        assert not buffer, _left_over(buffer)
        return _("10 frames from one call")

    cases = [
        (_("wire format"), wire_format),
        (_("round trip"), round_trip),
        (_("empty payload"), empty_payload),
        (_("max-size payload"), max_size_payload),
        (_("oversized payload refused"), oversized_payload),
        (_("half a frame, then the rest"), half_then_rest),
        (_("1-byte trickle"), one_byte_trickle),
        (_("ten frames stuck together"), ten_stuck_together),
    ]
    return run_cases("check_framing", cases, show=show, student_fns=[encode_frame, decode_frames])
