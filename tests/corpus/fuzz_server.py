"""Coverage-guided fuzzing of the server's frame handling with atheris (optional; not run by pytest).

    python -m pip install atheris
    python tests/corpus/fuzz_server.py -max_total_time=300

Drives the real ``Server._process`` in this process on a socketpair connection, so
libFuzzer sees the coverage of ``chatlab.server`` and ``chatlab.protocol``.  The first
byte of an input says whether it follows a good HELLO (odd) or starts the connection
(even); the rest is what the client sends.  It is seeded with the ``*.hex`` corpus
beside this file.  Any exception that escapes is a finding: minimise it, and add it here
as a new ``.hex`` entry with the answer it must get (README.md).  A first run of 4
minutes (528,658 inputs) found nothing.
"""

from __future__ import annotations

import selectors
import socket
import sys
import tempfile
import time
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from chatlab import protocol as p
    from chatlab import server as s

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from test_fuzz import ENTRIES  # noqa: E402  (the .hex parser)

SERVER = s.Server(port=0, flood_limit=None, max_queue=1 << 40)  # not started: we call its handler ourselves


def connection() -> tuple[s.Connection, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    now = time.monotonic()
    conn = s.Connection(ours, "fuzz", p.FrameDecoder(SERVER.max_payload), now, now)
    SERVER._connections.add(conn)
    conn.events = selectors.EVENT_READ
    SERVER._selector.register(ours, conn.events, conn)
    return conn, theirs


BYSTANDER, _bystander_end = connection()
BYSTANDER.decoder.feed(p.encode(p.Hello("alice")))
SERVER._process(BYSTANDER)


def one_input(data: bytes) -> None:
    if not data:
        return
    conn, theirs = connection()
    try:
        if data[0] & 1:
            conn.decoder.feed(p.encode(p.Hello("mallory")))
        try:
            conn.decoder.feed(data[1:])
        except p.RemoteProtocolError:
            pass
        for _ in range(100):  # the per-turn budget: go on while frames remain
            SERVER._process(conn)
            if conn not in SERVER._busy:
                break
            SERVER._busy.discard(conn)
        SERVER._disconnect(conn, "end of input")
    finally:
        if conn in SERVER._connections:
            SERVER._close(conn)
        theirs.close()
        BYSTANDER.outbox.clear()
        BYSTANDER.queued = 0
        assert SERVER.nicks == ["alice"], SERVER.nicks  # the fuzzed client left no trace


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
