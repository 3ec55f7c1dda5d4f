"""Issue 20: what one client can do to a class server, and what it no longer can.

Each test is one numbered item of the issue (``item N``), written so that it failed
on the code before the fix.  They run real loopback servers on port 0.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import chatlab
from chatlab.core import chatroom as core
from chatlab.core import protocol as p
from chatlab.core.chatroom import ChatRoom, FloodLimit, Session, Settings
from conftest import RawPeer

REPO = Path(__file__).resolve().parents[2]


def wait_until(check, timeout: float = 5.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (this one by default), from /proc or os.times()."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(seconds: float = 1.0, pid: int | None = None) -> float:
    """CPU seconds used per second of wall time while we wait."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds


def raw_frames(peer: RawPeer, kind: type, timeout: float = 10.0) -> list[p.Message]:
    """Read ``peer`` until a ``kind`` message arrives (file chunks and all on the way)."""
    peer.sock.settimeout(timeout)
    got: list[p.Message] = []
    while not any(isinstance(m, kind) for m in got):
        data = peer.sock.recv(1 << 20)
        if not data:
            break
        peer.decoder.feed(data)
        got.extend(peer.decoder)
    return got


# ----------------------------------------------------------------- item 1


@pytest.mark.skipif(sys.platform == "win32", reason="RST on close with unread data is the Unix behaviour")
def test_item1_a_connection_reset_while_closing_is_reaped_and_the_loop_does_not_spin():
    with chatlab.Server(port=0, flood_limit=None) as server, chatlab.Client.connect(server.address, nick="bob") as bob:
        mallory = socket.socket()
        mallory.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        mallory.connect(server.address)
        try:
            mallory.sendall(p.encode(p.Hello("mallory")))
            line = "x" * 1000
            for _ in range(4500):  # the kernel takes ~3 MB first (3,000 lines on the machine)
                bob.send(p.Say(line))
            assert wait_until(lambda: server.queued_bytes > 500_000, 10), "mallory's queue never filled"
            mallory.sendall(p.encode(p.Quit("bye")))  # the server starts closing, with her queue full...
            time.sleep(0.2)
        finally:
            mallory.close()  # ...and she closes with unread data: the server's next send gets a reset
        assert wait_until(lambda: server.connection_count == 1, 6), "the closing connection was never reaped"
        assert idle_cpu(1.0) < 0.3, "the loop spins with nobody to serve"
        assert bob.who().users == {"bob": "lobby"}


def test_item1_a_closing_connection_that_never_reads_is_closed_after_a_deadline():
    with chatlab.Server(port=0, flood_limit=None) as server, chatlab.Client.connect(server.address, nick="bob") as bob:
        mallory = socket.socket()
        mallory.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        mallory.connect(server.address)
        try:
            mallory.sendall(p.encode(p.Hello("mallory")))
            for _ in range(4500):  # the kernel takes ~3 MB first (3,000 lines on the machine)
                bob.send(p.Say("y" * 1000))
            assert wait_until(lambda: server.queued_bytes > 500_000, 10)
            mallory.sendall(p.encode(p.Quit("bye")))  # closing, but she reads nothing more and keeps the socket
            assert wait_until(lambda: server.connection_count == 1, chatlab.server.CLOSE_FLUSH_TIMEOUT + 3)
        finally:
            mallory.close()


# ----------------------------------------------------------------- item 2

CHILD = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    import chatlab
    server = chatlab.Server(port=0, max_clients=200, flood_limit=None, selector="poll")
    print(server.address[1], bool(getattr(server, "warning", None)), flush=True)
    server.serve_forever()
""")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads a child's CPU time from /proc")
def test_item2_past_the_descriptor_limit_clients_are_refused_not_left_hanging_and_nothing_spins():
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    socks: list[socket.socket] = []
    try:
        port_text, warned = child.stdout.readline().split()
        for _ in range(80):  # 64 descriptors: past ~55 clients there are none left
            sock = socket.create_connection(("127.0.0.1", int(port_text)), timeout=5)
            sock.sendall(p.encode(p.Hello(f"u{len(socks)}")))
            socks.append(sock)
        answers = {"welcome": 0, "server-full": 0}
        for sock in socks:  # each gets an answer: served or refused, none hangs
            decoder = p.MessageDecoder()
            while True:
                data = sock.recv(65536)
                assert data, "closed without a word"
                decoder.feed(data)
                messages = list(decoder)
                if any(isinstance(m, p.Welcome) for m in messages):
                    answers["welcome"] += 1
                    break
                errors = [m for m in messages if isinstance(m, p.ErrorMessage)]
                if errors:
                    assert errors[0].code == "server-full"
                    answers["server-full"] += 1
                    break
        assert answers["welcome"] >= 40 and answers["server-full"] >= 10, answers
        assert idle_cpu(1.5, child.pid) < 0.3, "the loop spins at the descriptor limit"
        assert warned == "True", "no warning that ulimit -n is below --max-clients"
    finally:
        for sock in socks:
            sock.close()
        child.kill()
        child.wait(5)
        child.stdout.close()


# ----------------------------------------------------------------- item 3


def test_item3_a_stalled_receiver_holds_back_only_file_frames_and_its_transfer_is_cancelled(tmp_path):
    payload = tmp_path / "big.bin"
    payload.write_bytes(os.urandom(30 * 1024 * 1024))
    with chatlab.Server(port=0, flood_limit=None, ping_interval=0.5, ping_timeout=1.5) as server, \
            chatlab.Client.connect(server.address, nick="alice") as alice, \
            chatlab.Client.connect(server.address, nick="bob") as bob:
        mallory = socket.socket()
        mallory.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        mallory.connect(server.address)
        stop = threading.Event()

        def pong_blindly() -> None:  # mallory answers pings without reading anything
            while not stop.wait(0.3):
                try:
                    mallory.sendall(p.encode(p.Pong(0)))
                except OSError:
                    return

        try:
            mallory.sendall(p.encode(p.Hello("mallory")))
            peer = RawPeer.__new__(RawPeer)
            peer.sock, peer.decoder = mallory, p.MessageDecoder()
            peer.expect(p.Welcome)  # registered before alice offers
            transfer = alice.send_file(payload, to="mallory", strategy="sleep")
            offer = peer.expect(p.FileOffer)
            mallory.sendall(p.encode(p.FileAccept(offer.stream_id)))
            pinger = threading.Thread(target=pong_blindly, daemon=True)
            pinger.start()
            time.sleep(1.0)  # alice has pushed far more than mallory's buffers and the server's mark hold
            said = time.monotonic()
            alice.say("still here?")
            line = bob.wait_for(p.ChatMessage, timeout=5)
            assert line.text == "still here?" and time.monotonic() - said < 2.0, "alice's chat waited behind her file"
            with pytest.raises(chatlab.TransferError, match="taken nothing"):
                transfer.wait(timeout=10)
            assert alice.who().users.keys() == {"alice", "bob", "mallory"}  # nobody dropped, alice least of all
            stop.set()
            pinger.join(2)
            got = raw_frames(peer, p.FileCancel, timeout=10)
            assert any(isinstance(m, p.FileCancel) and "taken nothing" in m.reason for m in got)
        finally:
            stop.set()
            mallory.close()


def test_item3_the_core_cancels_both_sides_of_a_stalled_pair():
    room = ChatRoom(Settings(flood_limit=None))
    alice, bob = Session(peer="127.0.0.1:1"), Session(peer="127.0.0.1:2")
    for session, nick in ((alice, "alice"), (bob, "bob")):
        room.connect(session, 0.0)
        room.handle(core.Received(session, p.Hello(nick)), 0.0)
    offer = room.handle(core.Received(alice, frame(p.FileOffer(1, "bob", "f.bin", 10, "ab" * 32))), 0.0)
    sid = offer[0].message.stream_id
    room.handle(core.Received(bob, frame(p.FileAccept(sid))), 0.0)
    outputs = room.handle(core.Stalled(alice, bob, 1.5), 1.5)
    cancels = {(out.to.nick, out.message.stream_id) for out in outputs if isinstance(out.message, p.FileCancel)}
    assert cancels == {("alice", 1), ("bob", sid)}
    assert room.relay.count(alice) == (0, 0)


# ----------------------------------------------------------------- item 4


def frame(message: p.Message) -> p.Frame:
    data = p.encode(message)
    header = p.parse_header(data, len(data))
    return p.Frame(p.FrameType(header.type), header.flags, header.stream_id, data[p.HEADER_SIZE:])


def test_item4_the_server_stamps_the_receivers_own_address_on_a_direct_accept(server, raw):
    alice, mallory = raw("alice"), raw("mallory")
    alice.send(p.FileOffer(1, "mallory", "f.bin", 10, "ab" * 32, "0123456789abcdef" * 2))
    offer = mallory.expect(p.FileOffer)
    mallory.send(p.FileAccept(offer.stream_id, 0, f"10.9.8.7:{server.address[1]}"))  # aimed elsewhere
    accept = alice.expect(p.FileAccept)
    host = mallory.sock.getsockname()[0]  # mallory's address as the server sees it
    assert accept.direct == f"{host}:{server.address[1]}"


def test_item4_a_direct_accept_without_a_port_costs_the_receiver():
    room = ChatRoom(Settings(flood_limit=None))
    alice, bob = Session(peer="127.0.0.1:1"), Session(peer="127.0.0.1:2")
    for session, nick in ((alice, "alice"), (bob, "bob")):
        room.connect(session, 0.0)
        room.handle(core.Received(session, p.Hello(nick)), 0.0)
    offer = frame(p.FileOffer(1, "bob", "f", 1, "ab" * 32, "ab" * 16))
    sid = room.handle(core.Received(alice, offer), 0.0)[0].message.stream_id
    outputs = room.handle(core.Received(bob, frame(p.FileAccept(sid, 0, "somewhere"))), 0.0)
    assert any(isinstance(out.message, p.ErrorMessage) and out.to is bob for out in outputs if hasattr(out, "message"))


# ----------------------------------------------------------------- item 6


def test_item6_one_sender_cannot_take_all_of_a_receivers_slots(server, raw):
    raw("bob")
    mallory, alice = raw("mallory"), raw("alice")
    for sid in range(1, 33):
        mallory.send(p.FileOffer(sid, "bob", f"f{sid}.bin", 10, "ab" * 32))
    mallory.send(p.Ping(1))
    replies = raw_frames(mallory, p.Pong)
    from chatlab.core.relay import MAX_PER_PAIR
    assert sum(isinstance(m, p.FileReject) for m in replies) == 32 - MAX_PER_PAIR
    alice.send(p.FileOffer(1, "bob", "homework.pdf", 10, "ab" * 32))
    alice.send(p.Ping(2))
    assert not any(isinstance(m, p.FileReject) for m in raw_frames(alice, p.Pong))  # alice can still send to bob


def test_item6_offers_and_transfers_that_make_no_progress_expire():
    room = ChatRoom(Settings(flood_limit=None, offer_timeout=30, transfer_idle_timeout=20))
    alice, bob = Session(peer="127.0.0.1:1"), Session(peer="127.0.0.1:2")
    for session, nick in ((alice, "alice"), (bob, "bob")):
        room.connect(session, 0.0)
        room.handle(core.Received(session, p.Hello(nick)), 0.0)
    room.handle(core.Received(alice, frame(p.FileOffer(1, "bob", "never-answered", 10, "ab" * 32))), 0.0)
    offer = frame(p.FileOffer(2, "bob", "accepted-then-idle", 10, "ab" * 32))
    sid = room.handle(core.Received(alice, offer), 0.0)[0].message.stream_id
    room.handle(core.Received(bob, frame(p.FileAccept(sid))), 1.0)
    assert room.relay.count(alice) == (2, 0)
    assert not [o for o in room.handle(core.Tick(), 15.0) if isinstance(getattr(o, "message", None), p.FileCancel)]
    cancelled = [o for o in room.handle(core.Tick(), 25.0) if isinstance(getattr(o, "message", None), p.FileCancel)]
    assert {(o.to.nick, o.message.stream_id) for o in cancelled} == {("alice", 2), ("bob", sid)}
    cancelled = [o for o in room.handle(core.Tick(), 31.0) if isinstance(getattr(o, "message", None), p.FileCancel)]
    assert {o.to.nick for o in cancelled} == {"alice", "bob"} and room.relay.count(alice) == (0, 0)


# ----------------------------------------------------------------- item 7


def test_item7_an_irc_client_refused_by_a_full_server_reads_the_refusal_not_a_reset():
    with chatlab.Server(port=0, max_clients=1) as server, chatlab.Client.connect(server.address, nick="alice"):
        for _ in range(5):
            sock = socket.create_connection(server.address, timeout=5)
            try:
                sock.sendall(b"NICK carol\r\nUSER carol 0 * :Carol\r\n")  # speaks first, as IRC clients do
                time.sleep(0.1)
                sock.sendall(b"JOIN #lobby\r\n")
                received = b""
                while True:
                    data = sock.recv(65536)  # ConnectionResetError here is the bug
                    if not data:
                        break
                    received += data
                assert b"server-full" in received
            finally:
                sock.close()


# ----------------------------------------------------------------- item 8


def burst(room: ChatRoom, session: Session, lines: int, now: float = 0.0) -> tuple[list, float]:
    """Say ``lines`` lines as fast as flood control lets them in, the server's way: a paused
    line is handed back when its pause ends.  Returns every output and the time at the end."""
    everything: list = []
    pending = [p.Say(f"line {i}") for i in range(lines)]
    for _ in range(100 * lines):
        if not pending:
            break
        outputs = room.receive(session, pending[0], now)
        everything += outputs
        pause = next((o for o in outputs if isinstance(o, core.Pause)), None)
        if pause is None:
            pending.pop(0)
        else:
            now = pause.until + 1e-6
    assert not pending, "flood control never let the burst through"
    return everything, now


def flood_notices(outputs: list) -> int:
    return sum(isinstance(getattr(o, "message", None), p.Notice) and o.message.kind == "flood" for o in outputs)


def test_item8_one_burst_earns_one_flood_notice():
    room = ChatRoom(Settings(flood_limit=FloodLimit(rate=5, burst=10)))
    alice = Session(peer="127.0.0.1:1")
    room.connect(alice, 0.0)
    room.receive(alice, p.Hello("alice"), 0.0)
    outputs, now = burst(room, alice, 60)
    assert sum(isinstance(o, core.Pause) for o in outputs) > 10
    assert flood_notices(outputs) == 1
    outputs, _ = burst(room, alice, 20, now + 60)  # after a calm minute, a new burst is told again, once
    assert flood_notices(outputs) == 1


def test_item8_irc_clients_too_are_told_once_per_burst():
    with chatlab.Server(port=0, flood_limit=FloodLimit(rate=20, burst=5)) as server:
        sock = socket.create_connection(server.address, timeout=10)
        try:
            lines = b"".join(b"PRIVMSG #lobby :line %d\r\n" % i for i in range(60))
            sock.sendall(b"NICK ann\r\nUSER ann 0 * :Ann\r\n" + lines + b"PING :end\r\n")
            received = b""
            while b"PONG" not in received:
                data = sock.recv(65536)
                assert data
                received += data
        finally:
            sock.close()
    assert received.count(b"faster than") == 1


def test_a_pause_names_the_message_it_holds():
    room = ChatRoom(Settings(flood_limit=FloodLimit(rate=5, burst=1)))
    alice = Session(peer="127.0.0.1:1")
    room.connect(alice, 0.0)
    room.handle(core.Received(alice, p.Hello("alice")), 0.0)
    room.handle(core.Received(alice, p.Say("one")), 0.0)
    outputs = room.handle(core.Received(alice, p.Say("two")), 0.0)
    pause = next(o for o in outputs if isinstance(o, core.Pause))
    assert pause.held == p.Say("two")  # the server hands this back: no position to guess


# ----------------------------------------------------------------- item 9


def test_item9_a_preset_password_on_the_default_room_is_refused_at_start():
    with pytest.raises(ValueError, match="default room"):
        chatlab.Server(port=0, room_passwords={"LOBBY": "pw"})
    from chatlab.cli import main
    assert main(["server", "--port", "0", "--room-password", "lobby=pw"]) == 2


# ----------------------------------------------------------------- the class saw


def test_server_accepts_v_after_the_verb_and_says_so_in_its_help(capsys):
    from chatlab.cli import build_parser
    args = build_parser().parse_args(["server", "-v", "--port", "0"])
    assert args.verbose == 1
    assert build_parser().parse_args(["-v", "server", "-vv"]).verbose >= 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["server", "--help"])
    assert "-v" in capsys.readouterr().out


def test_ctrl_c_on_the_server_prints_a_one_line_summary(tmp_path):
    import signal
    child = subprocess.Popen([sys.executable, "-m", "chatlab", "server", "--port", "0"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        first = child.stdout.readline()
        port = int(first.split(" (")[0].rsplit(":", 1)[1])
        with chatlab.Client.connect(("127.0.0.1", port), nick="alice") as alice:
            alice.say("hello")
            alice.who()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert "stopped: 1 connections served (at most 1 at once)" in out and "messages" in out, (out, err)
    assert "Traceback" not in err


# ----------------------------------------------------------------- the client's files (items 6 and the class)


def test_the_api_creates_its_download_dir(server, tmp_path):
    downloads = tmp_path / "fresh" / "downloads"  # a fresh clone has no such folder
    source = tmp_path / "sample.bin"
    source.write_bytes(os.urandom(20_000))
    with chatlab.Client.connect(server.address, nick="bob", download_dir=downloads) as bob, \
            chatlab.Client.connect(server.address, nick="alice") as alice:
        alice.send_file(source, to="bob").wait(timeout=10)
        received = bob.wait_for(chatlab.FileReceived, timeout=10)
    assert received.path.read_bytes() == source.read_bytes()


def test_offers_that_send_nothing_leave_no_part_files(server, raw, tmp_path):
    with chatlab.Client.connect(server.address, nick="bob", download_dir=tmp_path) as bob:
        mallory = raw("mallory")
        for sid in range(1, 5):
            mallory.send(p.FileOffer(sid, "bob", f"junk{sid}.bin", 10**6, "ab" * 32))
        for _ in range(4):
            mallory.expect(p.FileAccept)  # bob's auto-accept said yes to each
        assert bob.who().users  # a round trip: every offer was handled
    assert list(tmp_path.iterdir()) == []


def test_an_offer_of_the_same_name_from_another_sender_does_not_touch_a_part(server, raw, tmp_path):
    data = os.urandom(10_000)
    with chatlab.Client.connect(server.address, nick="bob", download_dir=tmp_path) as bob:
        alice = raw("alice")
        alice.send(p.FileOffer(1, "bob", "homework.pdf", len(data), ""))
        sid = alice.expect(p.FileAccept).stream_id
        alice.sock.sendall(p.encode(p.FileChunk(sid, 0, data[:4000])))
        assert wait_until(lambda: (tmp_path / "homework.pdf.part").exists()
                          and (tmp_path / "homework.pdf.part").stat().st_size == 4000)
        alice.close()  # alice's laptop dies: her .part stays for a resume
        assert wait_until(lambda: "alice" not in bob.who().users)
        mallory = raw("mallory")
        mallory.send(p.FileOffer(1, "bob", "homework.pdf", len(data), ""))  # same name, same size
        accept = mallory.expect(p.FileAccept)
        assert accept.offset == 0  # mallory does not resume alice's bytes...
        mallory.sock.sendall(p.encode(p.FileChunk(accept.stream_id, 0, b"x" * 100)))
        mallory.send(p.Ping(1))
        mallory.expect(p.Pong)
        assert bob.who().users
    assert (tmp_path / "homework.pdf.part").read_bytes() == data[:4000]  # ...nor truncate them


# ----------------------------------------------------------------- class mode for notebooks


def test_class_mode_keeps_scripted_characters_in_the_students_own_room(server, monkeypatch):
    import chatlab.teach
    monkeypatch.setenv(chatlab.teach.SERVER_ENV, f"{server.address[0]}:{server.address[1]}")
    with chatlab.Client.connect(server.address, nick="teacher") as teacher, chatlab.teach.lab_server() as lab:
        assert lab.shared
        with lab.connect("alice") as alice, lab.connect("bob") as bob:
            assert alice.nick != "alice" and alice.nick.startswith("alice_")
            assert alice.room == bob.room == lab.room() != "lobby"
            alice.say("lunch?")
            assert bob.wait_for(chatlab.ChatMessage, timeout=5).text == "lunch?"
        with pytest.raises(TimeoutError):  # the lobby heard none of it: no joins, no lines, no quits
            teacher.wait_for((chatlab.ChatMessage, chatlab.Notice), timeout=0.5,
                             predicate=lambda m: getattr(m, "sender", getattr(m, "nick", "")) != "teacher")
        with chatlab.teach.lab_server(own=True) as own:  # a cell that reads the server's memory gets its own
            assert not own.shared and own.server is not None and own.address != server.address
            with own.connect("alice") as alice:
                assert alice.nick == "alice" and own.server.nicks == ["alice"]


def test_a_scripted_character_goes_to_its_room_without_passing_through_the_lobby(server):
    with chatlab.Client.connect(server.address, nick="teacher") as teacher, \
            chatlab.Client.connect(server.address, nick="bob", room="#ana-3f9c") as bob:
        assert bob.room == "#ana-3f9c"
        with pytest.raises(TimeoutError):  # the lobby heard nothing of bob
            teacher.wait_for(chatlab.Notice, timeout=0.5, predicate=lambda n: n.nick == "bob")


# ----------------------------------------------------------------- the class-day bench


@pytest.mark.slow
def test_bench_classday_loses_nothing_and_leaves_nothing_behind(tmp_path):
    import argparse

    from chatlab.bench import classday
    parser = argparse.ArgumentParser()
    classday.add_arguments(parser)
    args = parser.parse_args(["--students", "8"])
    args.quick, args.progress, args.out = True, False, tmp_path
    sc = classday.run(args, tmp_path)
    row = sc.rows[0]
    assert row["lost"] == 0 and row["reordered"] == 0 and row["lines_said"] > 0
    assert row["fds_end"] == row["fds_start"] and row["connections_end"] == 0
    assert {v.status for v in sc.verdicts} == {"PASS"}, [v.line() for v in sc.verdicts]
