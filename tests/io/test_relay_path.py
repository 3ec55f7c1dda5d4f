"""The relayed data path per chunk: acks held while bytes wait, a chunk's rest read in its turn, gathered sends."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

import chatlab
from chatlab.client.sending import chunk_head
from chatlab.client.threads import Threads
from chatlab.core import protocol as p
from chatlab.core.transfer import FixedWindow


class Raw:
    """A chatlab client spoken by hand over a plain socket (the test decides every byte and when)."""

    def __init__(self, address: tuple[str, int], nick: str) -> None:
        self.sock = socket.create_connection(address, timeout=5)
        self.decoder = p.MessageDecoder()
        self.sock.sendall(p.encode(p.Hello(nick)))
        self.expect(p.Welcome)

    def expect(self, kind: type, timeout: float = 5.0) -> p.Message:
        deadline = time.monotonic() + timeout
        while True:
            for message in self.decoder:
                if isinstance(message, kind):
                    return message
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(f"closed while waiting for {kind.__name__}")
            self.decoder.feed(data)

    def close(self) -> None:
        self.sock.close()


def test_a_busy_receiver_acks_once_per_ack_every_bytes_not_once_per_chunk(tmp_path: Path):
    """64 chunks of 64 KiB sent in one go: they wait in bob's socket, so bob's acks are held
    until ack_every bytes are unacknowledged (the last one goes before his FileDone)."""
    chunk, count = 64 * 1024, 64
    data = os.urandom(chunk * count)
    with chatlab.Server(port=0, flood_limit=None) as server, \
            chatlab.Client.connect(server.address, nick="bob", download_dir=tmp_path) as bob:
        bob.ack_every = 256 * 1024
        alice = Raw(server.address, "alice")
        try:
            alice.sock.sendall(p.encode(p.FileOffer(1, "bob", "f.bin", len(data), hashlib.sha256(data).hexdigest())))
            alice.expect(p.FileAccept)
            frames = b"".join(p.encode_chunk(1, i * chunk, data[i * chunk:(i + 1) * chunk]) for i in range(count))
            alice.sock.sendall(frames + p.encode(p.FileDone(1)))
            acks = []
            while True:
                message = alice.expect((p.FileAck, p.FileDone))  # type: ignore[arg-type]
                if isinstance(message, p.FileDone):
                    break
                acks.append(message.received)
            received = bob.wait_for(chatlab.FileReceived, timeout=10)
        finally:
            alice.close()
    assert received.path.read_bytes() == data
    assert acks == sorted(acks) and acks[-1] == len(data)
    assert len(acks) <= count // 2, f"{len(acks)} acks for {count} chunks"


def test_a_window_smaller_than_ack_every_never_waits_for_a_held_ack(server, connect, tmp_path: Path):
    """One 4 KiB chunk in flight at a time: each ack must go as soon as bob has nothing more to read."""
    source = tmp_path / "f.bin"
    source.write_bytes(os.urandom(300 * 1024))
    inbox = tmp_path / "in"
    bob = connect("bob", download_dir=inbox)
    alice = connect("alice")
    assert 4096 < bob.ack_every
    started = time.monotonic()
    transfer = alice.send_file(source, to="bob", strategy=FixedWindow(chunks=1, chunk_size=4096))
    transfer.wait(timeout=20)
    assert time.monotonic() - started < 20
    assert bob.wait_for(chatlab.FileReceived, timeout=10).path.read_bytes() == source.read_bytes()
    assert len(transfer.trace) > 2 * (300 // 4)  # a send and an ack per chunk: no ack was skipped


def test_a_chunk_that_arrives_in_pieces_is_forwarded_whole_and_what_follows_is_read(server):
    """The server reads a chunk's rest in the turn its header came, or later as it comes; once the
    chunk is whole it reads small frames again (a chat line right behind it is answered)."""
    alice, bob = Raw(server.address, "alice"), Raw(server.address, "bob")
    try:
        data = os.urandom(200_000)
        alice.sock.sendall(p.encode(p.FileOffer(1, "bob", "f.bin", len(data), "0" * 64)))
        offer = bob.expect(p.FileOffer)
        bob.sock.sendall(p.encode(p.FileAccept(offer.stream_id, 0)))
        alice.expect(p.FileAccept)
        frame = p.encode_chunk(1, 0, data)
        for piece in (frame[:100], frame[100:70_000], frame[70_000:150_000], frame[150_000:]):
            alice.sock.sendall(piece)
            time.sleep(0.15)  # the server sees each piece on its own
        alice.sock.sendall(p.encode(p.Say("right behind the chunk")))
        chunk = bob.expect(p.FileChunk)
        assert chunk.offset == 0 and bytes(chunk.data) == data
        said = alice.expect(p.ChatMessage, timeout=3)
        assert said.text == "right behind the chunk"
    finally:
        alice.close()
        bob.close()


def test_a_sender_gone_in_the_middle_of_a_chunk_is_noticed_at_once(server):
    """While the server waits for the rest of a chunk, the sender's end of file is noticed."""
    alice, bob = Raw(server.address, "alice"), Raw(server.address, "bob")
    try:
        alice.sock.sendall(p.encode(p.FileOffer(1, "bob", "f.bin", 10**6, "0" * 64)))
        offer = bob.expect(p.FileOffer)
        bob.sock.sendall(p.encode(p.FileAccept(offer.stream_id, 0)))
        alice.expect(p.FileAccept)
        alice.sock.sendall(p.encode_chunk(1, 0, os.urandom(200_000))[:50_000])
        time.sleep(0.2)
        started = time.monotonic()
        alice.close()
        cancel = bob.expect(p.FileCancel, timeout=3)
        assert "alice disconnected" in cancel.reason
        assert time.monotonic() - started < 2
    finally:
        alice.close()
        bob.close()


@pytest.mark.parametrize("split", [False, True])
def test_a_chunk_is_sent_as_header_and_data_without_joining_them(split: bool):
    """The writer's gathered send: every byte arrives in order, also when sendmsg() takes only part."""
    a, b = socket.socketpair()
    try:
        if split:  # a small buffer and a timeout: sendmsg returns after a part, the rest goes after it
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * 1024)
            a.settimeout(5)
        writer = Threads.__new__(Threads)
        writer._sock = a  # type: ignore[attr-defined]
        head, data = chunk_head(7, 123, 250_000), os.urandom(250_000)
        got = bytearray()

        def read() -> None:
            while len(got) < len(head) + len(data) + 4:
                piece = b.recv(65536)
                if not piece:
                    return
                got.extend(piece)

        reader = threading.Thread(target=read)
        reader.start()
        writer._send_frame((head, data))
        writer._send_frame(b"tail")
        reader.join(10)
        assert bytes(got) == head + data + b"tail"
        frame = p.FrameDecoder()
        frame.feed(head + data)
        message = p.decode_message(next(iter(frame)))
        assert isinstance(message, p.FileChunk) and message.offset == 123 and bytes(message.data) == data
    finally:
        a.close()
        b.close()
