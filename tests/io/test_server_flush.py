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
        data = conn.outbox[0]
        assert data == p.encode(message)
        assert all(other.outbox[0] is data for other in others)  # encoded once, shared
        assert all(other.queued == len(data) for other in [conn, *others])
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
        assert not members[0].outbox  # IRC does not echo a line to its sender
        line = members[1].outbox[0]
        assert line == b":irc0!irc0@chatlab PRIVMSG #lobby :hello\r\n"
        assert members[2].outbox[0] is line  # the same bytes, formatted once
    finally:
        for member in members:
            server._connections.discard(member)
            member.sock.close()
