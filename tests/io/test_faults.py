"""Faults mid-transfer: kill -9 the receiver or the sender, or restart the server.

Each time: the other side gets a clear error, nothing in the download directory looks
complete (only ``NAME.part``), and sending the same file again resumes from the
``.part`` (``start_offset > 0``) and finishes with the right SHA-256.  The killed side
runs in a child process (``sys.executable -c ...`` with the chatlab client API) so that
SIGKILL ends it the hard way: no QUIT, no cleanup, only the kernel closing its socket.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import chatlab

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

SIZE = 4_000_000  # at one 64 KiB chunk every 20 ms: about 1.3 s, time enough to pull the plug

RECEIVER = """
import sys, time, chatlab
client = chatlab.Client.connect((sys.argv[1], int(sys.argv[2])), nick="bob", download_dir=sys.argv[3])
print("ready", flush=True)
time.sleep(60)
"""

SENDER = """
import sys, time, chatlab
client = chatlab.Client.connect((sys.argv[1], int(sys.argv[2])), nick="alice")
client.send_file(sys.argv[3], to="bob", strategy="sleep", pause=0.02)
print("sending", flush=True)
time.sleep(60)
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def child(code: str, *args: object) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() in ("ready", "sending"), f"the child did not start: {line!r}"
    return proc


def kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


def wait_for_part(part: Path, at_least: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not (part.exists() and part.stat().st_size >= at_least):
        assert time.monotonic() < deadline, f"the transfer never got going ({part})"
        time.sleep(0.01)


def only_the_part_is_left(inbox: Path, name: str) -> int:
    """Nothing complete-looking: the directory holds NAME.part only. Returns its size."""
    assert sorted(p.name for p in inbox.iterdir() if not p.name.startswith(".")) == [name + ".part"]
    return (inbox / (name + ".part")).stat().st_size


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = tmp_path / "movie.bin"
    source.write_bytes(os.urandom(SIZE))
    return source, inbox


def resume_and_check(alice: chatlab.Client, bob: chatlab.Client, source: Path, inbox: Path, kept: int) -> None:
    resumed = alice.send_file(source, to="bob")
    stats = resumed.wait(timeout=30)
    assert resumed.outgoing.start_offset == kept > 0  # it went on from the .part, not from zero
    assert stats.bytes == SIZE - kept
    received = bob.wait_for(chatlab.FileReceived, timeout=10)
    assert received.path == inbox / source.name and sha256(received.path) == sha256(source)
    assert sorted(p.name for p in inbox.iterdir()) == [source.name]


def test_kill_9_the_receiver_then_resume(server, connect, files):
    source, inbox = files
    alice = connect("alice")
    bob_process = child(RECEIVER, *server.address, inbox)
    try:
        transfer = alice.send_file(source, to="bob", strategy="sleep", pause=0.02)
        wait_for_part(inbox / "movie.bin.part", 500_000)
        kill(bob_process)
        with pytest.raises(chatlab.TransferError, match="bob disconnected"):
            transfer.wait(timeout=10)
    finally:
        kill(bob_process)
    kept = only_the_part_is_left(inbox, "movie.bin")
    assert 0 < kept < SIZE
    bob = connect("bob", download_dir=inbox)
    resume_and_check(alice, bob, source, inbox, kept)


def test_kill_9_the_sender_then_resume(server, connect, files):
    source, inbox = files
    bob = connect("bob", download_dir=inbox)
    alice_process = child(SENDER, *server.address, source)
    try:
        wait_for_part(inbox / "movie.bin.part", 500_000)
        kill(alice_process)
        failed = bob.wait_for(chatlab.FileFailed, timeout=10)
    finally:
        kill(alice_process)
    assert failed.name == "movie.bin" and "alice disconnected" in failed.reason
    kept = only_the_part_is_left(inbox, "movie.bin")
    assert 0 < kept < SIZE
    alice = connect("alice")
    resume_and_check(alice, bob, source, inbox, kept)


def test_restart_the_server_mid_transfer_then_resume(files):
    source, inbox = files
    first = chatlab.Server(port=0, flood_limit=None).start()
    port = first.address[1]
    try:
        with chatlab.Client.connect(first.address, nick="alice") as alice, \
             chatlab.Client.connect(first.address, nick="bob", download_dir=inbox) as bob:  # fmt: skip
            transfer = alice.send_file(source, to="bob", strategy="sleep", pause=0.02)
            wait_for_part(inbox / "movie.bin.part", 500_000)
            first.stop()
            with pytest.raises(chatlab.TransferError, match="connection ended: closed by the server"):
                transfer.wait(timeout=10)
            failed = bob.wait_for(chatlab.FileFailed, timeout=10)
            assert failed.name == "movie.bin" and "connection ended" in failed.reason
            assert isinstance(bob.wait_for(chatlab.Disconnected, timeout=5), chatlab.Disconnected)
    finally:
        first.stop()
    kept = only_the_part_is_left(inbox, "movie.bin")
    assert 0 < kept < SIZE
    # The server closed its side first, so its old connections sit in TIME_WAIT: SO_REUSEADDR lets it rebind.
    with chatlab.Server(port=port, flood_limit=None) as second, \
         chatlab.Client.connect(second.address, nick="alice") as alice, \
         chatlab.Client.connect(second.address, nick="bob", download_dir=inbox) as bob:  # fmt: skip
        resume_and_check(alice, bob, source, inbox, kept)


def test_a_part_that_was_tampered_with_never_becomes_a_complete_looking_file(server, connect, files):
    """Resume trusts the .part's bytes; the SHA-256 at the end is what catches a wrong one."""
    source, inbox = files
    alice, bob = connect("alice"), connect("bob", download_dir=inbox)
    part = inbox / "movie.bin.part"
    data = bytearray(source.read_bytes()[:1_000_000])
    data[123_456] ^= 0xFF  # one flipped bit, as a disk or a killed writer might leave
    part.write_bytes(bytes(data))
    with pytest.raises(chatlab.TransferError):
        alice.send_file(source, to="bob").wait(timeout=30)
    failed = bob.wait_for(chatlab.FileFailed, timeout=10)
    assert "SHA-256" in failed.reason or "sha256" in failed.reason.lower()
    assert list(inbox.iterdir()) == []  # the bad .part is gone, and nothing took the real name
    again = alice.send_file(source, to="bob")
    again.wait(timeout=30)
    assert again.outgoing.start_offset == 0
    assert sha256(bob.wait_for(chatlab.FileReceived, timeout=10).path) == sha256(source)
