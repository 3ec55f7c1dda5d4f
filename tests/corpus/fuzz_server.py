"""Coverage-guided fuzzing of the chat core's input handling with atheris (optional; not run by pytest).

    python -m pip install atheris
    python tests/corpus/fuzz_server.py -max_total_time=300

Drives the sans-I/O core directly, with no socket: each input's bytes go through
the codec the server would pick (``chatlab.core.codecs.sniff``) into
``chatlab.core.chatroom.ChatRoom`` and its file relay, exactly as the server's loop
feeds them, and the outputs land in in-memory inboxes (``Harness`` from
``tests/core/test_chatroom.py``).  libFuzzer sees the coverage of ``chatlab.core.codecs``,
``chatlab.core.chatroom``, ``chatlab.core.relay`` and ``chatlab.core.protocol``.  The first byte of
an input says whether it follows a good HELLO (odd) or starts the connection (even);
the rest is what the client sends.  It is seeded with the ``*.hex`` corpus beside this
file.  Any exception that escapes is a finding: minimise it, and add it here as a new
``.hex`` entry with the answer it must get (README.md).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from chatlab.core import chatroom, codecs, relay  # noqa: F401  (instrumented for coverage)
    from chatlab.core import protocol as p

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "core"), str(HERE.parent / "io")]
from test_chatroom import Harness  # noqa: E402  (the in-memory loop)
from test_fuzz import ENTRIES  # noqa: E402  (the .hex parser)

HARNESS = Harness(flood_limit=None)
BYSTANDER = HARNESS.join("alice")


def one_input(data: bytes) -> None:
    if not data:
        return
    session = HARNESS.connect()
    payload = (p.encode(p.Hello("mallory")) if data[0] & 1 else b"") + data[1:]
    codec = codecs.sniff(payload[: codecs.SNIFF_BYTES])
    if codec is not None:
        HARNESS.feed_bytes(session, codec, payload)
    HARNESS.apply(HARNESS.room.disconnect(session, "end of input"))
    del HARNESS.inbox[session]
    HARNESS.closed.pop(session, None)
    HARNESS.take(BYSTANDER)
    assert [s.nick for s in HARNESS.room.nicks.values()] == ["alice"]  # the fuzzed client left no trace
    assert HARNESS.room.relay.count(BYSTANDER) == (0, 0)
    assert BYSTANDER not in HARNESS.closed


def main() -> None:
    args = sys.argv
    if not any(not a.startswith("-") for a in args[1:]):  # no corpus directory given: seed one from the .hex files
        seeds = Path(tempfile.mkdtemp(prefix="chatlab-fuzz-"))
        for entry in ENTRIES:
            if len(entry.data) < 20_000:
                (seeds / entry.name).write_bytes((b"H" if entry.after == "hello" else b"S") + entry.data)
        args = [args[0], str(seeds), *args[1:]]
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
