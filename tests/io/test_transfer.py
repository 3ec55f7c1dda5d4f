"""File transfers over real sockets: client -> server -> client, while chat goes on."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

import chatlab
from chatlab.core import protocol as p
from chatlab.netem import LinkEmulator, LinkProfile

STRATEGIES = {"sleep": {"pause": 0.0005}, "fixed": {"chunks": 8}, "adaptive": {}}


def make_file(directory: Path, name: str, size: int, seed: int = 1) -> Path:
    path = directory / name
    path.write_bytes(os.urandom(size) if size > 4096 else bytes((i * seed) % 251 for i in range(size)))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    (tmp_path / "inbox").mkdir()
    return tmp_path / "inbox"


@pytest.mark.parametrize("size", [0, 1, 65535, 65537, 200_001])
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_files_arrive_bit_identical(connect, tmp_path, inbox, size, strategy):
    alice, bob = connect("alice"), connect("bob", download_dir=inbox)
    source = make_file(tmp_path, "data.bin", size)
    stats = alice.send_file(source, to="bob", strategy=strategy, **STRATEGIES[strategy]).wait(timeout=30)
    got = bob.wait_for(chatlab.FileReceived, timeout=10)
    assert got.path == inbox / "data.bin" and got.size == size and got.sender == "alice"
    assert got.path.read_bytes() == source.read_bytes()
    assert stats.bytes == size
    assert not list(inbox.glob("*.part"))


def test_tens_of_megabytes_while_chatting(connect, tmp_path, inbox):
    alice, bob = connect("alice"), connect("bob", download_dir=inbox)
    source = make_file(tmp_path, "big.bin", 24 * 1024 * 1024 + 3)
    transfer = alice.send_file(source, to="bob")
    for i in range(20):
        alice.say(f"chat {i}")
    texts = [bob.wait_for(chatlab.ChatMessage, timeout=10).text for _ in range(20)]
    assert texts == [f"chat {i}" for i in range(20)]
    transfer.wait(timeout=60)
    assert sha256(bob.wait_for(chatlab.FileReceived, timeout=10).path) == sha256(source)


def test_two_transfers_at_once_in_both_directions(connect, tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    alice = connect("alice", download_dir=tmp_path / "a")
    bob = connect("bob", download_dir=tmp_path / "b")
    to_bob = [make_file(tmp_path, f"to_bob_{i}.bin", 3_000_000 + i) for i in range(2)]
    to_alice = make_file(tmp_path, "to_alice.bin", 2_000_000)
    transfers = [alice.send_file(f, to="bob") for f in to_bob] + [bob.send_file(to_alice, to="alice", strategy="fixed")]
    bob.say("chatting meanwhile")
    assert alice.wait_for(chatlab.ChatMessage, timeout=10).text == "chatting meanwhile"
    for t in transfers:
        t.wait(timeout=60)
    received = {bob.wait_for(chatlab.FileReceived, timeout=10).name for _ in range(2)}
    assert received == {"to_bob_0.bin", "to_bob_1.bin"}
    assert sha256(alice.wait_for(chatlab.FileReceived, timeout=10).path) == sha256(to_alice)


def test_offer_without_download_dir_waits_for_the_user(connect, tmp_path, inbox):
    alice, bob = connect("alice"), connect("bob")
    source = make_file(tmp_path, "notes.txt", 1000)
    first = alice.send_file(source, to="bob")
    offer = bob.wait_for(chatlab.FileOffer, timeout=5)
    # No SHA-256 in the offer: the sender hashes while reading, and the digest comes with its FILE_DONE.
    assert (offer.peer, offer.name, offer.size, offer.sha256) == ("alice", "notes.txt", 1000, "")
    bob.reject_file(offer, "not now")
    with pytest.raises(chatlab.TransferError, match="not now"):
        first.wait(timeout=5)
    second = alice.send_file(source, to="bob")
    bob.accept_file(bob.wait_for(chatlab.FileOffer, timeout=5), inbox)
    second.wait(timeout=10)
    assert (inbox / "notes.txt").read_bytes() == source.read_bytes()
    assert bob.wait_for(chatlab.FileReceived, timeout=5).sha256 == sha256(source)


def test_sending_to_nobody_fails_clearly(connect, tmp_path):
    alice = connect("alice")
    with pytest.raises(chatlab.TransferError, match="ghost"):
        alice.send_file(make_file(tmp_path, "x.bin", 10), to="ghost").wait(timeout=5)


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "C:\\x.txt", "CON", "nul.txt", "..", ""])
def test_hostile_file_names_are_refused(connect, tmp_path, inbox, name):
    alice, bob = connect("alice"), connect("bob", download_dir=inbox)
    transfer = alice.send_file(make_file(tmp_path, "x.bin", 100), to="bob", name=name)
    with pytest.raises(chatlab.TransferError):
        transfer.wait(timeout=5)
    assert bob.wait_for(chatlab.FileFailed, timeout=5).name == name
    assert list(inbox.iterdir()) == [] and not (tmp_path / "escape.txt").exists()


def test_existing_file_is_not_overwritten(connect, tmp_path, inbox):
    (inbox / "a.txt").write_text("mine")
    alice, bob = connect("alice"), connect("bob", download_dir=inbox)
    alice.send_file(make_file(tmp_path, "a.txt", 50), to="bob").wait(timeout=10)
    assert bob.wait_for(chatlab.FileReceived).path.name == "a (1).txt"
    assert (inbox / "a.txt").read_text() == "mine"


def test_receiver_disconnects_mid_transfer_then_resume_finishes(server, connect, tmp_path, inbox):
    alice = connect("alice")
    bob = connect("bob", download_dir=inbox)
    source = make_file(tmp_path, "movie.bin", 4_000_000)
    # One 64 KiB chunk every 20 ms: about 5 s in all, so there is time to pull the plug.
    transfer = alice.send_file(source, to="bob", strategy="sleep", pause=0.02)
    part = inbox / "movie.bin.part"
    deadline = time.monotonic() + 10
    while not (part.exists() and part.stat().st_size >= 500_000):
        assert time.monotonic() < deadline, "the transfer never got going"
        time.sleep(0.01)
    bob.close()
    assert "connection ended" in bob.wait_for(chatlab.FileFailed, timeout=5).reason  # bob is told too
    with pytest.raises(chatlab.TransferError, match="bob disconnected"):
        transfer.wait(timeout=10)
    assert not (inbox / "movie.bin").exists()  # nothing that looks complete
    kept = part.stat().st_size
    assert 0 < kept < 4_000_000

    bob = connect("bob", download_dir=inbox)
    resumed = alice.send_file(source, to="bob", strategy="adaptive")
    stats = resumed.wait(timeout=30)
    assert resumed.outgoing.start_offset == kept  # it did not start from zero
    assert stats.bytes == 4_000_000 - kept
    assert sha256(bob.wait_for(chatlab.FileReceived, timeout=10).path) == sha256(source)
    assert not part.exists()


def test_sender_disconnect_tells_the_receiver_and_leaves_only_a_part(connect, tmp_path, inbox):
    alice, bob = connect("alice"), connect("bob", download_dir=inbox)
    alice.send_file(make_file(tmp_path, "f.bin", 3_000_000), to="bob", strategy="sleep", pause=0.02)
    deadline = time.monotonic() + 10
    while not (inbox / "f.bin.part").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    alice.close()
    failed = bob.wait_for(chatlab.FileFailed, timeout=10)
    assert "alice disconnected" in failed.reason
    assert not (inbox / "f.bin").exists() and (inbox / "f.bin.part").exists()


def test_a_sender_that_ignores_its_window_cannot_grow_the_server(tmp_path):
    """A raw sender blasts chunks at a receiver that stops reading: the server stops reading the sender."""
    high_water = 256 * 1024
    with chatlab.Server(port=0, flood_limit=None, relay_high_water=high_water) as server:
        sender = socket.create_connection(server.address, timeout=5)
        receiver = socket.create_connection(server.address, timeout=5)
        try:
            receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            decoder = p.MessageDecoder()

            def expect(sock: socket.socket, kind: type) -> p.Message:
                while True:
                    for message in decoder:
                        if isinstance(message, kind):
                            return message
                    decoder.feed(sock.recv(65536))

            receiver.sendall(p.encode(p.Hello("slowpoke")))
            expect(receiver, p.Welcome)
            sender.sendall(p.encode(p.Hello("blaster"))
                           + p.encode(p.FileOffer(1, "slowpoke", "x.bin", 10**9, "0" * 64)))
            offer = expect(receiver, p.FileOffer)
            receiver.sendall(p.encode(p.FileAccept(offer.stream_id, 0)))  # ...and never read again

            chunk = p.encode_chunk(1, 0, bytes(65536))
            pushed, stop = 0, threading.Event()

            def blast() -> None:
                nonlocal pushed
                sender.settimeout(0.5)
                try:
                    while not stop.is_set() and pushed < 200 * len(chunk):  # ~13 MB, ignoring every window
                        sender.sendall(chunk)
                        pushed += len(chunk)
                except OSError:
                    pass  # blocked: the server stopped reading us, as it should

            thread = threading.Thread(target=blast)
            thread.start()
            thread.join(15)
            stop.set()
            thread.join(5)
            # The server queued at most the high-water mark plus one frame for the receiver...
            assert server.peak_queued <= high_water + len(chunk) + 4096
            # ...while the sender pushed far more than that: the rest waits in kernel buffers, not in the server.
            assert pushed > 2 * high_water
        finally:
            sender.close()
            receiver.close()


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_strategy_through_the_link_emulator_with_resplitting(server, tmp_path, inbox, strategy):
    profile = LinkProfile(delay=0.002, rate=20e6, split=True, seed=7, max_segment=3000)
    with LinkEmulator(server.address, profile) as link, \
         chatlab.Client.connect(link.address, nick="alice") as alice, \
         chatlab.Client.connect(link.address, nick="bob", download_dir=inbox) as bob:  # fmt: skip
        source = make_file(tmp_path, "net.bin", 700_001)
        transfer = alice.send_file(source, to="bob", strategy=strategy, **STRATEGIES[strategy])
        alice.say("over the emulated link")
        assert bob.wait_for(chatlab.ChatMessage, timeout=10).text == "over the emulated link"
        transfer.wait(timeout=60)
        assert sha256(bob.wait_for(chatlab.FileReceived, timeout=10).path) == sha256(source)


def test_the_readme_example_with_the_shipped_sample(connect, inbox):
    sample = Path(__file__).resolve().parents[2] / "data" / "sample.bin"
    alice, bob = connect("alice"), connect("bob", download_dir=inbox)
    t = alice.send_file(sample, to="bob", strategy="adaptive")
    stats = t.wait(timeout=60)
    got = bob.wait_for(chatlab.FileReceived, timeout=60)
    assert (got.size, got.sha256, stats.bytes) == (sample.stat().st_size, sha256(sample), sample.stat().st_size)
