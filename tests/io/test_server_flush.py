"""The server's end-of-turn flush: one system call for the whole queue, and exact bookkeeping when the
kernel takes only part of it (issue 25's fan-out fast path)."""

from __future__ import annotations

import selectors
import socket
import time

import pytest

from chatlab.connection import JOIN_BELOW, Connection
from chatlab.core import protocol as p
from chatlab.server import Server


@pytest.fixture
def server_and_pair():
    server = Server(port=0)  # not started: the test drives _flush itself
    a, b = socket.socketpair()
    a.setblocking(False)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    conn = Connection(a, "test", time.monotonic())
    server._connections.add(conn)
    server._selector.register(a, selectors.EVENT_READ, conn)
    conn.events = selectors.EVENT_READ
    try:
        yield server, conn, b
    finally:
        server._connections.discard(conn)
        if conn.events:
            server._selector.unregister(a)
        a.close()
        b.close()
        server.stop()


def drain(sock: socket.socket) -> bytes:
    sock.setblocking(False)
    got = b""
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            return got
        if not chunk:
            return got
        got += chunk


def test_small_lines_go_out_in_one_call_and_the_queue_is_cleared(server_and_pair):
    server, conn, peer = server_and_pair
    lines = [f"line {i}\r\n".encode() for i in range(5)]
    for line in lines:
        server._queue(conn, line)
    assert conn.queued < JOIN_BELOW
    server._flush_dirty()
    assert conn.queued == 0 and not conn.outbox and conn.events == selectors.EVENT_READ
    assert drain(peer) == b"".join(lines)


def test_a_partial_send_keeps_exactly_the_unsent_tail_and_asks_for_write(server_and_pair):
    server, conn, peer = server_and_pair
    parts = [bytes([i]) * 100_000 for i in range(1, 5)]  # 400 kB: far more than the socket buffers hold
    for part in parts:
        server._queue(conn, part)
    server._flush_dirty()
    everything = b"".join(parts)
    assert 0 < conn.queued < len(everything)
    assert conn.queued == sum(len(x) for x in conn.outbox)
    assert conn.events == selectors.EVENT_READ | selectors.EVENT_WRITE  # the rest waits for writable
    received = b""
    deadline = time.monotonic() + 10
    while conn.outbox and time.monotonic() < deadline:
        received += drain(peer)
        server._flush(conn)
    received += drain(peer)
    assert received == everything  # nothing lost, nothing twice, in order
    assert conn.queued == 0 and conn.events == selectors.EVENT_READ


def test_a_broadcast_queues_the_same_bytes_for_every_binary_member(server_and_pair):
    server, conn, peer = server_and_pair
    others = [Connection(socket.socket(), f"other{i}", time.monotonic()) for i in range(3)]
    try:
        for other in others:
            server._connections.add(other)
        message = p.ChatMessage("lobby", "alice", "hello")
        server._broadcast([conn, *others], message)
        server._fan_out()  # the turn's end
        data = others[0].outbox[0]  # not in the selector: queued (a watched member is sent its bytes at once)
        assert data == p.encode(message)
        assert all(other.outbox[0] is data for other in others)  # encoded once, shared
        assert all(other.queued == len(data) for other in others)
        assert drain(peer) == data and not conn.outbox and conn.queued == 0
    finally:
        for other in others:
            server._connections.discard(other)
            other.sock.close()


def test_an_irc_line_is_formatted_once_and_its_sender_gets_none(server_and_pair):
    from chatlab.core.irc import IrcCodec

    server, conn, peer = server_and_pair
    members = [Connection(socket.socket(), f"irc{i}", time.monotonic()) for i in range(3)]
    try:
        for i, member in enumerate(members):
            member.codec = IrcCodec()
            member.codec.nick = member.nick = f"irc{i}"
            server._connections.add(member)
        message = p.ChatMessage("lobby", "irc0", "hello")
        server._broadcast(members, message)
        server._fan_out()  # the turn's end
        assert not members[0].outbox  # IRC does not echo a line to its sender
        line = members[1].outbox[0]
        assert line == b":irc0!irc0@chatlab PRIVMSG #lobby :hello\r\n"
        assert members[2].outbox[0] is line  # the same bytes, formatted once
    finally:
        for member in members:
            server._connections.discard(member)
            member.sock.close()


@pytest.fixture
def irc_room(server_and_pair):
    """Three IRC members (irc0, irc1, irc2) on the not-started server: ``(server, members)``."""
    from chatlab.core.irc import IrcCodec

    server, _, _ = server_and_pair
    members = [Connection(socket.socket(), f"irc{i}", time.monotonic()) for i in range(3)]
    for i, member in enumerate(members):
        member.codec = IrcCodec()
        member.codec.nick = member.nick = f"irc{i}"
        server._connections.add(member)
    try:
        yield server, members
    finally:
        for member in members:
            server._connections.discard(member)
            member.sock.close()


def line(sender: str, text: str) -> bytes:
    return f":{sender}!{sender}@chatlab PRIVMSG #lobby :{text}\r\n".encode()


def test_the_lines_of_one_turn_reach_each_member_as_one_piece_and_a_sender_misses_only_its_own(irc_room):
    server, members = irc_room
    for sender, text in [("irc0", "one"), ("irc1", "two"), ("irc0", "three")]:
        server._broadcast(members, p.ChatMessage("lobby", sender, text))
    assert not any(m.outbox for m in members)  # held until the turn's end...
    server._fan_out()
    assert [list(m.outbox) for m in members] == [  # ... then one piece each, in order
        [line("irc1", "two")],
        [line("irc0", "one") + line("irc0", "three")],
        [line("irc0", "one") + line("irc1", "two") + line("irc0", "three")],
    ]
    assert [m.queued for m in members] == [sum(map(len, m.outbox)) for m in members]
    assert members[2] in server._dirty


def test_anything_queued_in_between_keeps_its_place(irc_room):
    server, members = irc_room
    server._broadcast(members, p.ChatMessage("lobby", "irc0", "before"))
    server._queue(members[2], b"PRIVATE\r\n")  # a reply to one member, between two room lines
    server._broadcast(members, p.ChatMessage("lobby", "irc0", "after"))
    server._broadcast(members[1:], p.ChatMessage("lobby", "irc0", "to fewer"))  # other members: its own piece
    server._fan_out()
    assert b"".join(members[2].outbox) == (line("irc0", "before") + b"PRIVATE\r\n" + line("irc0", "after")
                                           + line("irc0", "to fewer"))
    assert b"".join(members[1].outbox) == line("irc0", "before") + line("irc0", "after") + line("irc0", "to fewer")


def test_a_notice_is_queued_at_once_after_the_lines_before_it(irc_room):
    server, members = irc_room
    server._broadcast(members, p.ChatMessage("lobby", "irc0", "hi"))
    server._broadcast(members, p.Notice("leave", "irc0 left lobby", "irc0", "lobby"))
    joined = b"".join(members[2].outbox)  # no _fan_out(): the notice went at once, the line before it first
    assert joined.startswith(line("irc0", "hi")) and b"PART #lobby" in joined


def test_a_turn_that_would_take_a_queue_over_max_queue_drops_that_member_only(irc_room):
    server, members = irc_room
    server.config = type(server.config)(**{**server.config.__dict__, "max_queue": 4096})
    members[2].queued = 4000  # a slow reader, nearly full
    members[2].outbox.append(b"x" * 4000)
    for i in range(3):
        server._broadcast(members, p.ChatMessage("lobby", "irc0", f"line {i}"))
    server._fan_out()
    assert members[2].closing is not None and "not reading" in members[2].closing
    assert not members[2].outbox and server.peak_queued <= 4096  # checked before queuing, not after
    assert b"".join(members[1].outbox).count(b"PRIVMSG") == 3


def test_a_member_with_nothing_queued_is_sent_its_share_at_once_and_one_with_a_queue_waits_behind_it(
        server_and_pair):
    server, conn, peer = server_and_pair
    message = p.ChatMessage("lobby", "alice", "hello")
    server._broadcast([conn], message)
    server._fan_out()
    assert drain(peer) == p.encode(message) and not conn.outbox and conn not in server._dirty
    server._queue(conn, b"queued first")  # something waits: the turn's lines go behind it, in the queue
    server._broadcast([conn], message)
    server._fan_out()
    assert list(conn.outbox) == [b"queued first", p.encode(message)] and conn in server._dirty
    server._flush_dirty()
    assert drain(peer) == b"queued first" + p.encode(message)


@pytest.fixture
def joined_room():
    """A not-started server with three IRC clients in #lobby over socket pairs: ``(server, conns, peers)``."""
    server = Server(port=0, flood_limit=None)
    conns, peers = [], []
    try:
        for i in range(3):
            a, b = socket.socketpair()
            a.setblocking(False)
            conn = Connection(a, f"p{i}", time.monotonic())
            server._connections.add(conn)
            server.room.connect(conn, time.monotonic())
            server._selector.register(a, selectors.EVENT_READ, conn)
            conn.events = selectors.EVENT_READ
            conns.append(conn)
            peers.append(b)
            b.sendall(f"NICK n{i}\r\nUSER n{i} 0 * :x\r\nJOIN #lobby\r\n".encode())
            server._read_ready(1.0)
            server._flush_dirty()
        for peer in peers:
            drain(peer)
        yield server, conns, peers
    finally:
        for conn in conns:
            server._connections.discard(conn)
            conn.sock.close()
        for peer in peers:
            peer.close()
        server.stop()


@pytest.mark.parametrize("rounds, held", [(3, 2), (1, 1)])
def test_a_turn_reads_again_what_came_while_it_read_so_both_lines_share_the_writes(joined_room, monkeypatch, rounds,
                                                                                    held):
    import chatlab.server

    server, conns, peers = joined_room
    monkeypatch.setattr(chatlab.server, "READS_PER_TURN", rounds)
    select = server._selector.select
    calls = []

    def select_then_n1_speaks(timeout: float | None = None) -> list:
        ready = select(timeout)
        calls.append(timeout)
        if len(calls) == 1:
            peers[1].sendall(b"PRIVMSG #lobby :second\r\n")  # arrives while the turn reads n0's line
        return ready

    monkeypatch.setattr(server._selector, "select", select_then_n1_speaks)
    peers[0].sendall(b"PRIVMSG #lobby :first\r\n")
    server._read_ready(1.0)
    assert [line.text for line in server._fan_lines] == ["first", "second"][:held]
    assert calls[1:] == [0.0] * (len(calls) - 1)  # the rounds after the first never wait
    server._flush_dirty()
    expected = b":n0!n0@chatlab PRIVMSG #lobby :first\r\n" + (b":n1!n1@chatlab PRIVMSG #lobby :second\r\n"
                                                             if held == 2 else b"")
    assert drain(peers[2]) == expected


def test_a_member_whose_socket_broke_is_dropped_after_the_turn_and_the_others_get_the_line(joined_room):
    server, conns, peers = joined_room
    peers[2].shutdown(socket.SHUT_RD)  # its next send() fails (EPIPE), but it shows no end of file to read
    peers[0].sendall(b"PRIVMSG #lobby :still here\r\n")
    server._read_ready(1.0)
    server._flush_dirty()
    assert conns[2] not in server._connections and "connection lost" in (conns[2].closing or "")
    assert drain(peers[1]) == b":n0!n0@chatlab PRIVMSG #lobby :still here\r\n" + \
        b":n2!n2@chatlab QUIT :connection lost (Broken pipe)\r\n"
