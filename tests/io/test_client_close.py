"""Closing a client at any moment of a file transfer ends it cleanly (issue 10, item 1).

Closing either side while chunks are flowing used to crash the receiver's
reader thread (``_dispatch -> _send_ack -> _put -> ConnectionClosed``) and skip
its clean-up.  Here each side is closed at many random moments while every
thread's uncaught exceptions are recorded: there must be none, every file must
be closed, and each side must learn how the transfer ended, as a typed event
or error with a reason.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import chatlab
from chatlab.client import CLOSED_BY_US

ROUNDS = 50
SIZE = 8_000_000  # at loopback speed this takes tens of ms, so the random moments land before, during and after


def open_files_under(*paths: Path) -> list[str]:
    """Files under ``paths`` that this process still has open (from /proc/self/fd, Linux only)."""
    prefixes = [str(path.resolve()) for path in paths]
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (the listing's own fd, for one)
            continue
        if any(target.startswith(prefix) for prefix in prefixes):
            names.append(target)
    return names


@pytest.fixture
def thread_crashes(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every exception that escapes any thread while the test runs (threading.excepthook's arguments)."""
    crashes: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", crashes.append)
    return crashes


def check_receiver_events(events: list[Any]) -> None:
    """Every file the receiver started ended with FileReceived or FileFailed; Disconnected comes last."""
    assert events and isinstance(events[-1], chatlab.Disconnected), events
    started = [e for e in events if isinstance(e, chatlab.FileStarted)]
    ended = [e for e in events if isinstance(e, (chatlab.FileReceived, chatlab.FileFailed))]
    assert len(ended) == len(started), events
    for failed in (e for e in ended if isinstance(e, chatlab.FileFailed)):
        assert failed.reason, failed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="open files are counted through /proc")
@pytest.mark.parametrize("closing", ["receiver", "sender"])
def test_closing_either_side_at_random_moments_of_a_transfer(server, tmp_path, thread_crashes, closing):
    rng = random.Random(10)  # reproducible moments
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(SIZE))
    outcomes: set[str] = set()
    for round_ in range(ROUNDS):
        inbox = tmp_path / f"inbox{round_}"
        inbox.mkdir()
        alice = chatlab.Client.connect(server.address, nick=f"alice{round_}")
        bob = chatlab.Client.connect(server.address, nick=f"bob{round_}", download_dir=inbox)
        try:
            transfer = alice.send_file(source, to=bob.nick, strategy="fixed", chunks=16)
            time.sleep(rng.uniform(0, 0.06))
            closed, other = (bob, alice) if closing == "receiver" else (alice, bob)
            closed.close()

            # The side we closed says so, in its own words (not "closed by the server").
            assert closed.end_reason == CLOSED_BY_US
            if closing == "receiver":
                events = bob.drain()
                check_receiver_events(events)
                failures = [e for e in events if isinstance(e, chatlab.FileFailed)]
                assert all(CLOSED_BY_US in e.reason for e in failures), failures
            # The sender's transfer ends either way: delivered, or a TransferError that says why.
            try:
                transfer.wait(timeout=30)
                outcomes.add("delivered")
            except chatlab.TransferError as exc:
                assert transfer.reason and transfer.reason in str(exc)
                outcomes.add("failed")
            if closing == "sender":
                # The offer always goes out before the QUIT, so bob started receiving; he hears how it
                # ended (received, or failed with the reason) while still connected.
                ended = bob.events.take(lambda e: isinstance(e, (chatlab.FileReceived, chatlab.FileFailed)),
                                        timeout=10, consume=False, what="the end of the transfer")
                assert isinstance(ended, chatlab.FileReceived) or alice.nick in ended.reason, ended
        finally:
            alice.close()
            bob.close()
        if closing == "sender":
            check_receiver_events(bob.drain())
        assert open_files_under(inbox, source) == []  # every .part and the source are closed
        assert thread_crashes == []
        nicks = {alice.nick, bob.nick}
        assert not [t.name for t in threading.enumerate() if t.name.rpartition("-")[2] in nicks]  # both threads ended
    assert "failed" in outcomes  # the moments did land mid-transfer (not only after it)


def test_a_connection_lost_while_closing_is_reported_as_ours(connect, tmp_path):
    """bob's own close is never reported as "closed by the server", even though the server closes after QUIT."""
    bob = connect("bob", download_dir=tmp_path)
    bob.close()
    assert bob.end_reason == CLOSED_BY_US
    assert isinstance(bob.wait_for(chatlab.Disconnected, timeout=1), chatlab.Disconnected)
    with pytest.raises(chatlab.ConnectionClosed):
        bob.say("too late")
