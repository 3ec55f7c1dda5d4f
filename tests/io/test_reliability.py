"""Impersonation and privacy, limits that protect, slow and dead peers.

A classroom server faces forty students at once, some of whom will try things on
purpose.  These tests play those students over real loopback sockets (port 0) and
check what the README promises: nobody speaks as or reads for somebody else, look-alike
names cannot collide, the limits refuse clearly instead of hanging, and a peer that
never reads, trickles bytes or vanishes is dropped with a reason without slowing
anybody else.  Timing checks compare against a baseline measured in the same test,
with generous factors.
"""

from __future__ import annotations

import hashlib
import os
import selectors
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chatlab
import chatlab.core.chatroom
import chatlab.server
from chatlab.bench.common import raise_nofile_limit, server_child
from chatlab.bench.slowpeers import FreezableProxy, NeverReader, Probe, Slowloris, run_slow_peers
from chatlab.core import protocol as p
from chatlab.core.chatroom import RESERVED_NICKS, normalize_name
from chatlab.core.relay import MAX_PER_PAIR
from chatlab.server import FD_SETSIZE
from conftest import RawPeer


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def slower_at_most(during: list[float], baseline: list[float], factor: float = 5.0, margin: float = 0.020) -> bool:
    """Median latency ``during`` within ``factor`` times the baseline's, plus ``margin`` seconds for noise."""
    return statistics.median(during) <= factor * statistics.median(baseline) + margin


# ============================================================ impersonation


def test_every_sender_field_is_filled_in_by_the_server(connect, raw):
    bob = connect("bob", download_dir=None)
    mallory = raw("mallory")
    mallory.send(p.Hello("bob"))  # a second HELLO, to become bob
    assert mallory.expect(p.ErrorMessage).code == "already-registered"
    mallory.send(p.Whisper("bob", "this is alice"))
    mallory.send(p.FileOffer(1, "bob", "homework.pdf", 10, "ab" * 32))
    forged = b'{"text":"hi","sender":"alice","nick":"alice"}'  # fields a SAY does not have: ignored
    mallory.sock.sendall(p.pack_header(p.FrameType.SAY, len(forged)) + forged)
    private = bob.wait_for(chatlab.PrivateMessage)
    offer = bob.wait_for(chatlab.FileOffer)
    line = bob.wait_for(chatlab.ChatMessage, predicate=lambda m: m.text == "hi")
    assert (private.sender, offer.peer, line.sender, line.room) == ("mallory", "mallory", "mallory", "lobby")
    assert sorted(bob.who().users) == ["bob", "mallory"]


def test_whispers_and_offers_reach_only_their_target_however_it_is_spelled(connect, tmp_path):
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    dave = connect("dave")
    dave.join("elsewhere")
    for spelling in ("BOB", "ｂｏｂ", "Bob", "𝐛𝐨𝐛"):
        alice.whisper(spelling, f"to {spelling}")
    (tmp_path / "f.txt").write_text("for bob only")
    alice.send_file(tmp_path / "f.txt", to="ＢＯＢ")
    got = [bob.wait_for(chatlab.PrivateMessage).text for _ in range(4)]
    assert got == ["to BOB", "to ｂｏｂ", "to Bob", "to 𝐛𝐨𝐛"]
    assert bob.wait_for(chatlab.FileOffer).name == "f.txt"
    alice.say("marker")
    dave.say("marker")
    for other in (carol, dave):
        other.wait_for(chatlab.ChatMessage, predicate=lambda m: m.text == "marker")
        assert not [e for e in other.drain() if isinstance(e, (chatlab.PrivateMessage, chatlab.FileOffer))]


def test_nobody_can_accept_cancel_or_read_someone_elses_transfer(server, connect, tmp_path):
    (tmp_path / "in").mkdir()
    alice, bob = connect("alice"), connect("bob", download_dir=tmp_path / "in")
    source = tmp_path / "secret.bin"
    source.write_bytes(os.urandom(1_000_000))
    transfer = alice.send_file(source, to="bob", strategy="sleep", pause=0.01)  # 16 chunks, ~0.2 s
    mallory = RawPeer(server.address, "mallory")
    try:
        attempts = []
        for sid in range(1, 5):  # the receiver's ids the server hands out, and the sender's own
            incoming = p.INCOMING_STREAM_BIT | sid
            attempts += [p.FileAccept(incoming, 0), p.FileReject(incoming, "no"), p.FileDone(incoming),
                         p.FileCancel(incoming, "mine"), p.FileCancel(sid, "mine"), p.FileDone(sid)]
        for message in attempts:
            mallory.send(message)
        mallory.sock.sendall(p.encode_chunk(1, 0, b"forged bytes")
                             + p.encode(p.FileAck(p.INCOMING_STREAM_BIT | 1, 10**6)))
        mallory.send(p.Ping(99))
        replies: list[p.Message] = []
        while not any(isinstance(m, p.Pong) for m in replies):
            mallory.decoder.feed(mallory.sock.recv(65536))
            replies.extend(mallory.decoder)
    finally:
        mallory.close()
    codes = [m.code for m in replies if isinstance(m, p.ErrorMessage)]
    assert codes == ["no-such-transfer"] * len(attempts)  # each refused; the stray chunk and ack dropped quietly
    assert not [m for m in replies if type(m).TYPE in p.TRANSFER_TYPES]  # saw nothing of it
    transfer.wait(timeout=20)
    received = bob.wait_for(chatlab.FileReceived, timeout=10)
    assert sha256(received.path) == sha256(source)


@pytest.mark.parametrize("answer", [
    p.pack_header(p.FrameType.FILE_ACCEPT, 1) + b"\xff",
    p.pack_header(p.FrameType.FILE_ACCEPT, 7) + b"[1,2,3]",
    p.pack_header(p.FrameType.FILE_ACK, 3) + b"\x00\x00\x01",
], ids=["accept-bad-utf8", "accept-json-array", "ack-3-bytes"])
def test_a_malformed_answer_costs_the_receiver_not_the_senders_connection(server, connect, tmp_path, answer):
    alice = connect("alice")
    (tmp_path / "f.bin").write_bytes(b"x" * 1000)
    mallory = RawPeer(server.address, "mallory")
    try:
        transfer = alice.send_file(tmp_path / "f.bin", to="mallory")
        offer = mallory.expect(p.FileOffer)
        if answer[2] == p.FrameType.FILE_ACK:
            mallory.send(p.FileAccept(offer.stream_id, 0))
        header = p.HEADER.unpack(answer[: p.HEADER_SIZE])
        mallory.sock.sendall(p.HEADER.pack(*header[:4], offer.stream_id, header[5]) + answer[p.HEADER_SIZE :])
        replies = mallory.messages_until_closed()
    finally:
        mallory.close()
    assert [m.code for m in replies if isinstance(m, p.ErrorMessage)][-1] == "protocol-error"
    with pytest.raises(chatlab.TransferError, match="mallory disconnected"):
        transfer.wait(timeout=5)
    assert not alice.closed
    alice.say("still here")
    assert alice.wait_for(chatlab.ChatMessage, predicate=lambda m: m.text == "still here")


# ==================================================================== names

FULLWIDTH = {c: chr(ord(c) + 0xFEE0) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"}
MATH_BOLD = {**{c: chr(0x1D41A + i) for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")},
             **{c: chr(0x1D400 + i) for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ")}}
CIRCLED = {c: chr(0x24D0 + i) for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}
DISGUISES = [str.upper, str.lower, str.swapcase, lambda c: FULLWIDTH.get(c, c), lambda c: MATH_BOLD.get(c, c),
             lambda c: CIRCLED.get(c, c)]


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[a-z][a-z0-9_-]{0,15}", fullmatch=True),
       st.lists(st.integers(0, len(DISGUISES) - 1), min_size=1))
def test_any_mix_of_case_fullwidth_bold_and_circled_letters_collides_with_the_plain_name(nick, choices):
    disguised = "".join(DISGUISES[choices[i % len(choices)]](c) for i, c in enumerate(nick))
    assert normalize_name(disguised) == normalize_name(nick)


@pytest.mark.parametrize("first, second", [
    ("alice", "𝐚𝐥𝐢𝐜𝐞"), ("alice", "ⓐⓛⓘⓒⓔ"), ("alice", "Ａlice"), ("office", "oﬃce"), ("strasse", "STRAẞE"),
    ("straße", "Strasse"), ("kelvin", "\u212aelvin"),  # U+212A KELVIN SIGN looks like K
], ids=["math-bold", "circled", "fullwidth-A", "ffi-ligature", "capital-sharp-s", "sharp-s", "kelvin-sign"])
def test_a_look_alike_of_a_nick_in_use_is_refused(connect, first, second):
    connect(first)
    with pytest.raises(chatlab.NickError) as info:
        connect(second)
    assert info.value.code == "nick-taken"


@pytest.mark.parametrize("nick", ["ADMIN", "𝐚𝐝𝐦𝐢𝐧", "Ｒｏｏｔ", "SERVER", "NickServ", "ⓔⓥⓔⓡⓨⓞⓝⓔ"])
def test_a_look_alike_of_a_reserved_nick_is_refused(connect, nick):
    with pytest.raises(chatlab.NickError) as info:
        connect(nick)
    assert info.value.code == "nick-reserved"


@pytest.mark.parametrize("nick",
                         ["ali\u200bce", "\u202eecila", "alice\u00ad", "ali\u2060ce", "alice\u200d", "al\u00a0ice"],
                         ids=["zero-width-space", "rtl-override", "soft-hyphen", "word-joiner",
                              "zero-width-joiner", "no-break-space"])
def test_invisible_and_bidi_characters_are_not_allowed_in_nicks(connect, nick):
    connect("alice")
    with pytest.raises(chatlab.NickError) as info:
        connect(nick)
    assert info.value.code == "bad-nick"


def test_reserved_nicks_are_stored_normalised():
    assert all(normalize_name(nick) == nick for nick in RESERVED_NICKS)


def test_look_alike_room_names_are_one_room_behind_one_password():
    with chatlab.Server(port=0, flood_limit=None, room_passwords={"class": "s3cret"}) as srv, \
         chatlab.Client.connect(srv.address, nick="teacher") as teacher, \
         chatlab.Client.connect(srv.address, nick="student") as student:  # fmt: skip
        teacher.join("class", "s3cret")
        for spelling in ("CLASS", "ｃｌａｓｓ", "Class", "𝐜𝐥𝐚𝐬𝐬"):
            with pytest.raises(chatlab.ServerError) as info:
                student.join(spelling)
            assert info.value.code == "bad-password", spelling
        with pytest.raises(chatlab.ServerError) as info:
            student.join("class\n")  # a trailing newline once made a separate look-alike room
        assert info.value.code == "bad-room"
        student.join("ｃｌａｓｓ", "s3cret")
        assert student.who().rooms == {"lobby": 0, "class": 2}
        student.say("in class")
        assert teacher.wait_for(chatlab.ChatMessage, predicate=lambda m: m.text == "in class").room == "class"


def test_room_passwords_are_compared_in_constant_time(monkeypatch):
    calls: list[tuple[bytes, bytes]] = []
    real = chatlab.core.chatroom.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(chatlab.core.chatroom.hmac, "compare_digest", spy)
    with chatlab.Server(port=0, room_passwords={"class": "s3cret"}) as srv, \
         chatlab.Client.connect(srv.address, nick="alice") as alice:  # fmt: skip
        with pytest.raises(chatlab.ServerError):
            alice.join("class", "s3crex")
        alice.join("class", "s3cret")
    assert calls == [(b"s3cret", b"s3crex"), (b"s3cret", b"s3cret")]


# =================================================================== limits


def test_names_and_lines_at_their_limits_pass_and_one_more_is_refused(connect):
    alice = connect("a" * 20)  # 20 characters: the longest nickname
    with pytest.raises(chatlab.NickError):
        connect("b" * 21)
    alice.join("r" * 32)
    with pytest.raises(chatlab.ServerError) as info:
        alice.join("r" * 33)
    assert info.value.code == "bad-room"
    alice.say("x" * 2000)
    assert len(alice.wait_for(chatlab.ChatMessage).text) == 2000


def test_max_rooms_refuses_a_new_room_but_not_an_existing_one():
    with chatlab.Server(port=0, flood_limit=None, max_rooms=3) as srv, \
         chatlab.Client.connect(srv.address, nick="alice") as alice, \
         chatlab.Client.connect(srv.address, nick="bob") as bob:  # fmt: skip
        alice.join("r1")
        bob.join("r2")  # lobby, r1, r2: full
        with pytest.raises(chatlab.ServerError) as info:
            alice.join("r3")
        assert info.value.code == "too-many-rooms"
        alice.join("r2")  # an existing room is fine; r1 is now empty and gone
        alice.join("r3")
        assert sorted(alice.who().rooms) == ["lobby", "r2", "r3"]


def test_a_full_server_refuses_at_once_even_when_full_of_silent_connections():
    with chatlab.Server(port=0, max_clients=5) as srv:
        silent = [socket.create_connection(srv.address) for _ in range(5)]  # never say HELLO
        try:
            deadline = time.monotonic() + 5
            while srv.connection_count < 5:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            started = time.monotonic()
            with pytest.raises(chatlab.ServerError) as info:
                chatlab.Client.connect(srv.address, nick="late", timeout=5)
            assert info.value.code == "server-full" and "5 clients" in info.value.text
            assert time.monotonic() - started < 2.0  # a clear refusal, not a hang until a timeout
            silent.pop().close()
            while srv.connection_count > 4:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            with chatlab.Client.connect(srv.address, nick="late") as late:
                assert late.nick == "late"
        finally:
            for sock in silent:
                sock.close()


@pytest.mark.skipif(sys.platform == "win32",
                    reason="Windows limits select() by a count of sockets, not descriptor numbers")
def test_select_refuses_what_it_cannot_watch_with_a_clear_error_and_epoll_does_not():
    needed = FD_SETSIZE + 64
    if raise_nofile_limit(needed) < needed:
        pytest.skip(f"cannot open {needed} descriptors here")
    with chatlab.Server(port=0, selector="select") as srv:
        epoll = chatlab.Server(port=0, selector="epoll").start() if hasattr(selectors, "EpollSelector") else None
        filler: list[socket.socket] = []
        try:
            while not filler or filler[-1].fileno() < FD_SETSIZE:  # the next accepted socket lands past FD_SETSIZE
                filler.append(socket.socket())
            with pytest.raises(chatlab.ServerError) as info:
                chatlab.Client.connect(srv.address, nick="alice")
            assert info.value.code == "server-full" and "select()" in info.value.text and "epoll" in info.value.text
            with pytest.raises(ValueError, match="select"):
                chatlab.Server(port=0, selector="select")  # its own sockets would be past the limit: refused at once
            if epoll is not None:
                with chatlab.Client.connect(epoll.address, nick="alice") as alice:
                    alice.say("epoll has no such limit")
                    assert alice.wait_for(chatlab.ChatMessage).text == "epoll has no such limit"
        finally:
            for sock in filler:
                sock.close()
            if epoll is not None:
                epoll.stop()
        with chatlab.Client.connect(srv.address, nick="bob") as bob:  # and the select server lives on
            assert bob.who().users == {"bob": "lobby"}


def test_offers_nobody_answers_cannot_pile_up_in_the_server(server, raw):
    raw("victim")  # online, but never answers an offer
    mallory = raw("mallory")
    offers = 200
    mallory.sock.sendall(b"".join(p.encode(p.FileOffer(i, "victim", f"f{i}.bin", 10**12, "ab" * 32))
                                  for i in range(1, offers + 1)))
    mallory.send(p.Ping(5))
    replies: list[p.Message] = []
    while not any(isinstance(m, p.Pong) for m in replies):
        mallory.decoder.feed(mallory.sock.recv(65536))
        replies.extend(mallory.decoder)
    rejects = [m for m in replies if isinstance(m, p.FileReject)]
    assert len(rejects) == offers - MAX_PER_PAIR  # one sender holds at most MAX_PER_PAIR of the victim's slots
    assert f"you have {MAX_PER_PAIR} transfers to victim offered or going already" in rejects[0].reason
    held = server.transfers()
    assert held == {"mallory": (MAX_PER_PAIR, 0), "victim": (0, MAX_PER_PAIR)}
    mallory.close()
    deadline = time.monotonic() + 5
    while any(receiving for _, receiving in server.transfers().values()):  # mallory gone: her relays went with her
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_every_kind_of_request_counts_against_the_flood_limit_and_none_is_lost():
    with chatlab.Server(port=0, flood_limit=chatlab.FloodLimit(rate=100, burst=5)) as srv, \
         chatlab.Client.connect(srv.address, nick="alice") as alice, \
         chatlab.Client.connect(srv.address, nick="bob") as bob:  # fmt: skip
        for i in range(10):  # 50 requests at 100/s after a burst of 5: about half a second
            alice.whisper("bob", f"w{i}")
            alice.send(p.Who())
            alice.send(p.Join(f"room{i}"))
            alice.send(p.Leave())
            alice.say(f"s{i}")
        assert alice.wait_for(chatlab.Notice, predicate=lambda n: n.kind == "flood")
        assert [bob.wait_for(chatlab.PrivateMessage).text for _ in range(10)] == [f"w{i}" for i in range(10)]
        for _ in range(10):
            alice.wait_for(p.WhoReply)
        assert [alice.wait_for(chatlab.ChatMessage).text for _ in range(10)] == [f"s{i}" for i in range(10)]
        assert srv.nicks == ["alice", "bob"]


def test_a_flood_of_tiny_frames_does_not_stall_the_others():
    """Before the per-turn budget, 64 KiB of PINGs held everyone up for ~20-80 ms; now a few ms at most."""
    with server_child() as srv:  # flood control off, in its own process, so this process's GIL does not blur it
        probe = Probe(srv.address)
        flooder = RawPeer(srv.address, "mallory")
        stop = threading.Event()

        def flood() -> None:
            blob = p.encode(p.Ping(1)) * 3000
            try:
                while not stop.is_set():
                    flooder.sock.sendall(blob)
            except OSError:
                pass

        def read_pongs() -> None:  # or the server drops mallory as a client that never reads
            try:
                while not stop.is_set() and flooder.sock.recv(1 << 20):
                    pass
            except OSError:
                pass

        def spaced(n: int) -> list[float]:
            out: list[float] = []
            for _ in range(n):
                out += probe.latencies(1)
                time.sleep(0.01)
            return out

        threads = [threading.Thread(target=flood), threading.Thread(target=read_pongs)]
        try:
            spaced(5)
            baseline = spaced(30)
            for thread in threads:
                thread.start()
            time.sleep(0.2)
            during = spaced(30)
        finally:
            stop.set()
            flooder.sock.settimeout(0.5)
            for thread in threads:
                thread.join(5)
            flooder.close()
            probe.close()
    print(f"\nprobe p50 {statistics.median(baseline) * 1e3:.2f} ms alone, "
          f"{statistics.median(during) * 1e3:.2f} ms during a PING flood")
    assert slower_at_most(during, baseline, factor=5, margin=0.010)


# ====================================================== slow and dead peers


def test_each_misbehaving_peer_is_dropped_with_a_reason_and_the_others_are_not_slowed():
    results = run_slow_peers(max_queue=256 * 1024, hello_timeout=1.0, ping_interval=0.5, ping_timeout=1.0,
                             trickle_interval=0.1, samples=30)
    assert [r.scenario for r in results] == ["never-reader", "slowloris", "slowloris", "vanished"]
    never, loris, loris2, ghost = results
    assert loris.detail.startswith("before HELLO") and loris2.detail.startswith("after HELLO")
    for r in results:
        print(f"\n{r.scenario} ({r.detail}): dropped after {r.dropped_after_s:.2f} s ({r.reason}); probe p50 "
              f"{r.baseline_p50_ms:.2f} ms alone, {r.during_p50_ms:.2f} ms with it", end="")
        assert r.dropped, r
        assert r.during_p50_ms <= 5 * r.baseline_p50_ms + 20, r
    assert "not reading: more than 262144 bytes" in never.reason
    assert never.peak_queued <= never.max_queue + 4096  # memory bounded: the cap plus at most one frame
    assert "no HELLO within 1 s" in loris.reason and 0.9 <= loris.dropped_after_s <= 3.5
    assert "ping timeout" in loris2.reason and 1.4 <= loris2.dropped_after_s <= 4.5  # interval + timeout (+ ticks)
    assert "ping timeout" in ghost.reason and 1.4 <= ghost.dropped_after_s <= 4.5


def test_a_room_with_a_client_that_never_reads_loses_nothing_for_the_others():
    max_queue = 128 * 1024
    with chatlab.Server(port=0, flood_limit=None, max_queue=max_queue) as srv, \
         chatlab.Client.connect(srv.address, nick="alice") as alice, \
         chatlab.Client.connect(srv.address, nick="bob") as bob:  # fmt: skip
        sloth = NeverReader(srv.address, "lobby")
        try:
            line = "y" * 1500
            sent, texts = 0, []
            while "sloth" in srv.nicks:  # bursts of 20 lines; bob reads each burst, sloth never does
                assert sent < 20_000, "the never-reader was never dropped"
                for _ in range(20):
                    alice.say(f"{sent} {line}")
                    sent += 1
                texts += [bob.wait_for(chatlab.ChatMessage, timeout=10).text for _ in range(20)]
                alice.drain()
            assert [t.split()[0] for t in texts] == [str(i) for i in range(sent)]  # every line, in order
            quit_notice = bob.wait_for(chatlab.Notice, predicate=lambda n: n.kind == "quit" and n.nick == "sloth")
            assert f"more than {max_queue} bytes" in quit_notice.text
            assert srv.peak_queued <= max_queue + 2048
            # Its queue went with it.  (Polled: another thread's counters are only a snapshot, and the
            # server may be between a send() and the bookkeeping after it.)
            deadline = time.monotonic() + 5
            while srv.queued_bytes >= 64 * 1024:
                assert time.monotonic() < deadline, srv.queued_bytes
                time.sleep(0.01)
        finally:
            sloth.close()


def test_all_three_at_once_do_not_slow_the_others_and_all_three_are_dropped():
    with chatlab.Server(port=0, flood_limit=None, max_queue=512 * 1024, hello_timeout=1.5, ping_interval=0.5,
                        ping_timeout=1.0) as srv:
        probe = Probe(srv.address)
        proxy = FreezableProxy(srv.address)
        sloth = loris = ghost = None
        try:
            probe.latencies(10)
            baseline = probe.latencies(40)
            sloth = NeverReader(srv.address, probe.room)
            assert sloth.fill(srv, 256 * 1024)
            loris = Slowloris(srv.address, p.encode(p.Hello("loris")), interval=0.1)
            ghost = chatlab.Client.connect(proxy.address, nick="ghost")
            ghost.join(probe.room)
            proxy.freeze()
            during = probe.latencies(40)
            print(f"\nprobe p50 {statistics.median(baseline) * 1e3:.2f} ms alone, "
                  f"{statistics.median(during) * 1e3:.2f} ms with a never-reader, a slowloris and a vanished peer")
            assert slower_at_most(during, baseline)
            assert probe.quit_notice("ghost", 10) is not None
            assert loris.wait(10) is not None
            assert sloth.overflow(srv, 20)
            assert srv.nicks == ["probe_a", "probe_b", "sloth_friend"]
        finally:
            for closeable in (sloth, loris, ghost, proxy):
                if closeable is not None:
                    closeable.close()
            probe.close()
