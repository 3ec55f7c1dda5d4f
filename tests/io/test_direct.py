"""The direct path: ``send_file(..., via="direct")``, its token, its fallback, resume and verification.

Every address is loopback, every port is chosen by the OS, every client, link
emulator and socket is closed by a fixture or a ``with``.  No timing is asserted.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import chatlab
from chatlab.addresses import format_address, parse_address
from chatlab.client import direct
from chatlab.core import protocol as p
from chatlab.events import DirectFallback, FileStarted
from chatlab.netem import LinkEmulator, LinkProfile
from chatlab.streams import recv_exact


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_file(directory: Path, name: str, size: int) -> Path:
    path = directory / name
    path.write_bytes(os.urandom(size))
    return path


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def traced_server() -> Iterator[tuple[chatlab.Server, list[p.FrameType]]]:
    """A server that records the type of every frame it receives (to see whether chunks went through it)."""
    kinds: list[p.FrameType] = []
    with chatlab.Server(port=0, flood_limit=None,
                        on_frame=lambda d, who, f: kinds.append(f.type) if d == "in" else None) as srv:
        yield srv, kinds


@pytest.fixture
def clients(traced_server: tuple[chatlab.Server, list[p.FrameType]]) -> Iterator[Callable[..., chatlab.Client]]:
    server, _ = traced_server
    opened: list[chatlab.Client] = []

    def connect(nick: str, address: Any = None, **kwargs: Any) -> chatlab.Client:
        client = chatlab.Client.connect(address or server.address, nick=nick, **kwargs)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


@pytest.fixture
def emulators() -> Iterator[list[LinkEmulator]]:
    """Link emulators a test starts; all closed at the end."""
    started: list[LinkEmulator] = []
    yield started
    for link in started:
        link.close()


@pytest.fixture
def thread_errors() -> Iterator[list[threading.ExceptHookArgs]]:
    """Every exception that ends a thread during the test (there must be none)."""
    seen: list[threading.ExceptHookArgs] = []
    previous = threading.excepthook
    threading.excepthook = seen.append
    yield seen
    threading.excepthook = previous


# ------------------------------------------------------------- the token


def dropped(sock: socket.socket) -> bool:
    """Did the other end close this connection (a FIN, or a reset when it left our bytes unread),
    once its greeting (nonce and proof) is read?"""
    try:
        while data := sock.recv(4096):
            if len(data) > direct.NONCE_SIZE + direct.PROOF_SIZE:
                return False
        return True
    except ConnectionResetError:
        return True


def test_a_token_is_good_once_and_proved_without_being_sent():
    token = direct.new_token()
    assert direct.valid_token(token) and token != direct.new_token()
    hello = direct.receiver_hello(token)
    assert token.encode() not in hello and len(hello) == direct.NONCE_SIZE + direct.PROOF_SIZE
    answer = direct.sender_answer(token, hello)
    assert answer is not None and token.encode() not in answer
    assert direct.sender_answer(direct.new_token(), hello) is None  # a receiver without the token: no answer
    assert direct.sender_answer(token, b"garbage from some local service") is None
    ticket, nonce = direct.OneTimeToken(token), hello[: direct.NONCE_SIZE]
    assert not ticket.claim(b"\0" * direct.PROOF_SIZE, nonce) and not ticket.claim(b"", nonce)
    assert ticket.claim(answer, nonce)
    assert not ticket.claim(answer, nonce)  # replayed


def greeted(sock: socket.socket) -> bytes:
    return recv_exact(sock, direct.NONCE_SIZE + direct.PROOF_SIZE)


def test_listener_drops_a_wrong_proof_at_once_and_a_replayed_one_too():
    token = direct.new_token()
    listener = direct.DirectListener("127.0.0.1", token)
    accepted: list[socket.socket | None] = []
    waiter = threading.Thread(target=lambda: accepted.append(listener.accept(timeout=10)))
    waiter.start()
    try:
        with socket.create_connection(listener.address, timeout=5) as intruder:
            greeted(intruder)
            intruder.sendall(b"f" * direct.PROOF_SIZE)
            assert dropped(intruder)  # closed on us, before anything was written anywhere
        with socket.create_connection(listener.address, timeout=5) as sender:
            hello = greeted(sender)
            answer = direct.sender_answer(token, hello)
            sender.sendall(answer)
            waiter.join(10)
            assert accepted and accepted[0] is not None
            accepted[0].close()
        assert listener.refused == 1
        # A proof again, on the same listener: refused too (the token is used; the listener is still open here).
        replay_result: list[socket.socket | None] = []
        again = threading.Thread(target=lambda: replay_result.append(listener.accept(timeout=1.0)))
        again.start()
        with socket.create_connection(listener.address, timeout=5) as replay:
            replay.sendall(direct.sender_answer(token, greeted(replay)))
            assert dropped(replay)
        again.join(10)
        assert replay_result == [None] and listener.refused == 2
    finally:
        listener.close()
        waiter.join(10)


def test_silent_connections_do_not_hold_up_the_real_sender():
    """Issue 20, item 5: eight silent connections used to cost the real sender 16 s."""
    token = direct.new_token()
    listener = direct.DirectListener("127.0.0.1", token)
    accepted: list[socket.socket | None] = []
    waiter = threading.Thread(target=lambda: accepted.append(listener.accept(timeout=10)))
    waiter.start()
    silent = [socket.create_connection(listener.address, timeout=5) for _ in range(8)]
    try:
        started = time.monotonic()
        with socket.create_connection(listener.address, timeout=5) as sender:
            sender.sendall(direct.sender_answer(token, greeted(sender)))
            waiter.join(10)
            assert accepted and accepted[0] is not None
            accepted[0].close()
        assert time.monotonic() - started < 1.5
    finally:
        for sock in silent:
            sock.close()
        listener.close()
        waiter.join(10)


def test_a_sender_writes_nothing_to_a_port_that_cannot_prove_the_token(clients, tmp_path, inbox):
    """Issue 20, item 4: aimed at a service that answers garbage (or nothing), the sender writes zero bytes."""
    alice, bob = clients("alice"), clients("bob", download_dir=inbox)
    decoy = socket.create_server(("127.0.0.1", 0))
    received = bytearray()

    def serve_decoy() -> None:
        conn, _ = decoy.accept()
        with conn:
            conn.settimeout(5)
            conn.sendall(b"220 a local service says hello, with no proof at all\r\n" + b"x" * 64)
            try:
                while data := conn.recv(65536):
                    received.extend(data)
            except OSError:
                pass

    thread = threading.Thread(target=serve_decoy, daemon=True)
    thread.start()
    bob.advertise_direct = lambda address: ("127.0.0.1", decoy.getsockname()[1])  # bob names the decoy's port
    source = make_file(tmp_path, "f.bin", 200_000)
    try:
        transfer = alice.send_file(source, to="bob", via="direct")
        transfer.wait(timeout=30)
        thread.join(10)
        assert bytes(received) == b""  # neither a token nor a byte of the file
        assert transfer.via == "server"  # it fell back, and the file arrived through the server
        assert bob.wait_for(chatlab.FileReceived, timeout=10).path.read_bytes() == source.read_bytes()
    finally:
        decoy.close()


@pytest.mark.parametrize("text", ["localhost:80", "127.0.0.1", "127.0.0.1:0", "[::1]:70000", ""])
def test_only_ip_literal_addresses_are_used(text):
    with pytest.raises(ValueError):
        parse_address(text, default_host=None, ip_only=True)  # what the sender reads from a FILE_ACCEPT
    assert parse_address(format_address(("::1", 4000)), default_host=None, ip_only=True) == ("::1", 4000)


# ------------------------------------------------------ over loopback


def test_direct_over_loopback_skips_the_server(traced_server, clients, tmp_path, inbox):
    server, kinds = traced_server
    alice, bob = clients("alice"), clients("bob", download_dir=inbox)
    source = make_file(tmp_path, "big.bin", 3_000_000)
    transfer = alice.send_file(source, to="bob", via="direct")
    alice.say("chatting meanwhile")
    assert bob.wait_for(chatlab.ChatMessage, timeout=10).text == "chatting meanwhile"
    stats = transfer.wait(timeout=60)
    received = bob.wait_for(chatlab.FileReceived, timeout=10)
    assert transfer.via == "direct" and stats.bytes == source.stat().st_size
    assert received.sha256 == sha256(source) and received.path.read_bytes() == source.read_bytes()
    assert p.FrameType.FILE_CHUNK not in kinds  # not one chunk went through the server
    assert p.FrameType.FILE_ACK in kinds and p.FrameType.FILE_DONE in kinds  # progress and the end did
    assert not [e for e in alice.drain() if isinstance(e, DirectFallback)]


def test_via_server_stays_the_default(traced_server, clients, tmp_path, inbox):
    _, kinds = traced_server
    alice, bob = clients("alice"), clients("bob", download_dir=inbox)
    source = make_file(tmp_path, "f.bin", 300_000)
    transfer = alice.send_file(source, to="bob")
    transfer.wait(timeout=30)
    assert transfer.via == "server" and p.FrameType.FILE_CHUNK in kinds
    assert bob.wait_for(chatlab.FileReceived, timeout=10).sha256 == sha256(source)
    with pytest.raises(ValueError):
        alice.send_file(source, to="bob", via="carrier pigeon")


def test_a_wrong_token_on_the_receivers_port_changes_nothing(clients, tmp_path, inbox):
    alice, bob = clients("alice"), clients("bob", download_dir=inbox)
    intruders: list[socket.socket] = []

    def advertise(address: tuple[str, int]) -> tuple[str, int]:
        intruder = socket.create_connection(address, timeout=5)  # first in the listener's queue
        intruder.sendall(b"0" * direct.PROOF_SIZE + b"evil bytes that must never reach the file")
        intruders.append(intruder)
        return address

    bob.advertise_direct = advertise
    source = make_file(tmp_path, "f.bin", 500_000)
    transfer = alice.send_file(source, to="bob", via="direct")
    transfer.wait(timeout=30)
    try:
        assert transfer.via == "direct"
        assert bob.wait_for(chatlab.FileReceived, timeout=10).path.read_bytes() == source.read_bytes()
        assert intruders and dropped(intruders[0])
    finally:
        for s in intruders:
            s.close()


# ---------------------------------------------------------- fallback


def closed_port() -> tuple[str, int]:
    """A loopback address where nothing listens (bound by us, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[:2]


def test_falls_back_to_the_server_when_the_receiver_cannot_be_reached(traced_server, clients, tmp_path, inbox):
    _, kinds = traced_server
    alice, bob = clients("alice"), clients("bob", download_dir=inbox)
    bob.advertise_direct = lambda address: closed_port()
    source = make_file(tmp_path, "f.bin", 400_000)
    transfer = alice.send_file(source, to="bob", via="direct")
    transfer.wait(timeout=30)
    fallback = alice.wait_for(DirectFallback, timeout=5)
    assert (fallback.to, fallback.name) == ("bob", "f.bin") and "through the server" in fallback.reason
    assert transfer.via == "server" and transfer.fallback_reason == fallback.reason
    assert p.FrameType.FILE_CHUNK in kinds
    assert bob.wait_for(chatlab.FileReceived, timeout=10).sha256 == sha256(source)


def test_falls_back_when_the_receiver_offers_no_direct_path(clients, tmp_path, inbox):
    alice, bob = clients("alice"), clients("bob", download_dir=inbox)
    bob.accept_direct = False  # an older client, or one behind a firewall
    source = make_file(tmp_path, "f.bin", 100_000)
    transfer = alice.send_file(source, to="bob", via="direct")
    transfer.wait(timeout=30)
    assert "no address" in alice.wait_for(DirectFallback, timeout=5).reason
    assert bob.wait_for(chatlab.FileReceived, timeout=10).path.read_bytes() == source.read_bytes()


# ------------------------------------------------- resume and verification


def test_resume_on_the_direct_path(clients, tmp_path, inbox):
    alice, bob = clients("alice"), clients("bob", download_dir=inbox)
    source = make_file(tmp_path, "f.bin", 1_000_000)
    (inbox / "f.bin.part").write_bytes(source.read_bytes()[:400_000])  # an earlier transfer stopped here
    transfer = alice.send_file(source, to="bob", via="direct")
    stats = transfer.wait(timeout=30)
    started = bob.wait_for(FileStarted, timeout=5)
    assert started.resumed_from == transfer.resumed_from == 400_000
    assert transfer.via == "direct" and stats.bytes == 600_000
    received = bob.wait_for(chatlab.FileReceived, timeout=10)
    assert received.path.read_bytes() == source.read_bytes() and received.sha256 == sha256(source)


def test_a_stale_part_fails_verification_on_the_direct_path(clients, tmp_path, inbox):
    alice, bob = clients("alice"), clients("bob", download_dir=inbox)
    source = make_file(tmp_path, "f.bin", 500_000)
    (inbox / "f.bin.part").write_bytes(os.urandom(200_000))  # same name, other bytes
    transfer = alice.send_file(source, to="bob", via="direct")
    with pytest.raises(chatlab.TransferError, match="SHA-256"):
        transfer.wait(timeout=30)
    assert transfer.via == "direct"
    assert "SHA-256" in bob.wait_for(chatlab.FileFailed, timeout=10).reason
    assert not (inbox / "f.bin").exists() and not (inbox / "f.bin.part").exists()  # nothing complete-looking left
    again = alice.send_file(source, to="bob", via="direct")  # from scratch now
    again.wait(timeout=30)
    assert bob.wait_for(chatlab.FileReceived, timeout=10).path.read_bytes() == source.read_bytes()


# ------------------------------------------------------- through netem


def test_direct_through_the_link_emulator(traced_server, clients, emulators, tmp_path, inbox):
    server, kinds = traced_server
    link = LinkProfile(delay=0.005, rate=4e6, split=True, seed=7, max_segment=4096, split_gap=0.0)
    chat_link = LinkEmulator(server.address, link).start()
    emulators.append(chat_link)
    alice = clients("alice", chat_link.address)
    bob = clients("bob", chat_link.address, download_dir=inbox)
    direct_links: list[LinkEmulator] = []

    def through_a_link(address: tuple[str, int]) -> tuple[str, int]:
        emulator = LinkEmulator(address, link).start()
        emulators.append(emulator)
        direct_links.append(emulator)
        return emulator.address[0], emulator.address[1]

    bob.advertise_direct = through_a_link
    source = make_file(tmp_path, "f.bin", 600_000)
    transfer = alice.send_file(source, to="bob", via="direct")
    transfer.wait(timeout=60)
    assert transfer.via == "direct" and p.FrameType.FILE_CHUNK not in kinds
    assert bob.wait_for(chatlab.FileReceived, timeout=10).path.read_bytes() == source.read_bytes()
    assert direct_links and direct_links[0].stats.bytes_up >= source.stat().st_size


# --------------------------------------------- either side closing mid-transfer


@pytest.mark.parametrize("who_closes", ["sender", "receiver"])
def test_closing_mid_transfer_ends_cleanly(clients, emulators, tmp_path, inbox, thread_errors, who_closes):
    alice, bob = clients("alice"), clients("bob", download_dir=inbox)

    def slow_link(address: tuple[str, int]) -> tuple[str, int]:  # so the transfer is surely still going
        emulator = LinkEmulator(address, LinkProfile(rate=1e6)).start()
        emulators.append(emulator)
        return emulator.address[0], emulator.address[1]

    bob.advertise_direct = slow_link
    source = make_file(tmp_path, "f.bin", 8_000_000)
    transfer = alice.send_file(source, to="bob", via="direct")
    bob.wait_for(FileStarted, timeout=10)
    deadline = time.monotonic() + 20
    while not (inbox / "f.bin.part").exists() or (inbox / "f.bin.part").stat().st_size < 100_000:
        assert time.monotonic() < deadline, "no bytes arrived over the direct connection"
        time.sleep(0.05)
    (alice if who_closes == "sender" else bob).close()
    with pytest.raises(chatlab.TransferError):
        transfer.wait(timeout=20)
    if who_closes == "sender":
        failed = bob.wait_for(chatlab.FileFailed, timeout=20)
        assert failed.name == "f.bin"
        time.sleep(0.2)  # a cancel bob sent back for a transfer already over would come back as an error by now
        assert not [e for e in bob.drain() if isinstance(e, p.ErrorMessage)]
    assert (inbox / "f.bin.part").exists() and not (inbox / "f.bin").exists()  # kept for a resume
    alice.close()
    bob.close()
    assert thread_errors == []


def test_the_terminal_sends_direct_and_shows_a_fallback(clients, tmp_path, inbox):
    from chatlab.terminal import TerminalSession, format_event

    alice, bob = clients("alice"), clients("bob", download_dir=inbox)
    bob.advertise_direct = lambda address: closed_port()
    source = make_file(tmp_path, "f.bin", 50_000)
    lines: list[str] = []
    TerminalSession(alice, lines.append).handle_line(f"/send {source} bob --direct")
    bob.wait_for(chatlab.FileReceived, timeout=20)
    fallback = alice.wait_for(DirectFallback, timeout=5)
    shown = format_event(fallback, "alice")
    assert shown is not None and "'f.bin' to bob" in shown and "through the server" in shown
