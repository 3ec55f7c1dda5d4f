"""Probes of check_priority_writer (notebook 07) kept apart from its cases: what one send call carries,
and thread switches forced inside the student's code."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from ..core import protocol as p

__all__ = ["Batches", "code_files", "switching_often"]


class Batches:
    """Follows the frame boundaries of the bytes the writer sends, and notes the most file chunks that
    one call (a sendall(), a send(), a sendmsg()) was offered: more than one is a batch, and a chat line
    queued while it goes out waits behind all of it."""

    def __init__(self) -> None:
        self.skip = 0  # bytes of the current frame still to come
        self.header = b""  # the part of a header that came in the previous call
        self.most_chunks = 0

    def _walk(self, data: bytes, consume: bool) -> int:
        skip, header, pos, chunks = self.skip, self.header, 0, 0
        while pos < len(data):
            if skip:
                step = min(skip, len(data) - pos)
                skip -= step
                pos += step
                continue
            take = data[pos:pos + p.HEADER_SIZE - len(header)]
            header += take
            pos += len(take)
            if len(header) < p.HEADER_SIZE:
                break
            magic, _version, kind, _flags, _stream, length = p.HEADER.unpack(header)
            if magic != p.MAGIC:  # not a frame boundary: the reader reports the cut frame
                skip, header = 1 << 62, b""
                break
            chunks += kind == p.FrameType.FILE_CHUNK
            skip, header = length, b""
        if consume:
            self.skip, self.header = skip, header
        return chunks

    def sent(self, offered: Any, taken: int | None = None) -> None:
        data = bytes(memoryview(offered).cast("B")) if not isinstance(offered, bytes) else offered
        self.most_chunks = max(self.most_chunks, self._walk(data, consume=False))
        self._walk(data if taken is None else data[:taken], consume=True)


def code_files(writer_class: Any) -> set[str]:
    """The files the writer class's own methods were compiled from (a notebook cell's, a module's)."""
    files = set()
    for klass in getattr(writer_class, "__mro__", (writer_class,)):
        if klass is object:
            continue
        for value in vars(klass).values():
            value = getattr(value, "fget", value)  # a property's getter
            code = getattr(getattr(value, "__func__", value), "__code__", None)
            if code is not None:
                files.add(code.co_filename)
    return files


@contextlib.contextmanager
def switching_often(files: set[str], seed: int) -> Any:
    """Meanwhile, in the calling thread, a pause between the bytecode instructions of the code in ``files``
    now and then: another thread runs there, as it may on any Python (a thread switch can happen between
    reading a shared counter and writing it back; CPython 3.11 rarely does it, free-threaded Python does)."""
    import dis
    import random
    import sys

    chance = random.Random(seed)
    stores = {code for code, name in enumerate(dis.opname) if name.startswith("STORE_")}

    def instruction(frame: Any, event: str, arg: Any) -> Any:
        if event == "opcode":
            code = frame.f_code.co_code
            if frame.f_lasti < len(code) and code[frame.f_lasti] in stores and chance.random() < 0.5:
                time.sleep(0.002)  # between computing a value and storing it: others run meanwhile
            elif chance.random() < 0.3:
                time.sleep(0)  # hands the GIL over
        return instruction

    def call(frame: Any, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code.co_filename in files:
            frame.f_trace_opcodes = True
            return instruction
        return None

    sys.settrace(call)
    try:
        yield
    finally:
        sys.settrace(None)
