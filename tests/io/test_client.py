"""Client behaviour seen from its public API (file transfers: test_transfer.py; closing: test_client_close.py)."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

import chatlab
from chatlab.client import parse_address
from chatlab.core import protocol as p
from chatlab.errors import translate_socket_errors
from chatlab.events import EventQueue

# ------------------------------------------------ a line too long for one frame (issue 10, item 5)


@pytest.mark.parametrize("text", ["x" * 300_000, "é" * 200_000, '"' * 150_000], ids=["ascii", "two-byte", "escaped"])
def test_a_line_over_the_frame_limit_is_refused_locally_and_the_connection_stays_up(connect, text):
    alice, bob = connect("alice"), connect("bob")
    with pytest.raises(chatlab.MessageTooLong) as raised:
        alice.say(text)
    assert isinstance(raised.value, chatlab.LocalProtocolError)
    assert raised.value.size > raised.value.limit == alice.max_text_length()
    assert f"{raised.value.limit:,} bytes" in str(raised.value)
    with pytest.raises(chatlab.MessageTooLong):
        alice.whisper("bob", text)
    alice.say("still here")
    assert bob.wait_for(chatlab.ChatMessage, timeout=5).text == "still here"
    assert not alice.closed


def test_the_limit_is_exact(connect):
    alice = connect("alice")
    limit = alice.max_text_length()
    with pytest.raises(chatlab.MessageTooLong):
        alice.say("x" * (limit + 1))
    alice.say("x" * limit)  # fits in a frame: the server answers (its own, lower limit) and keeps us
    assert alice.wait_for(chatlab.ErrorMessage, timeout=5).code == "message-too-long"
    alice.say("ok")
    assert alice.wait_for(chatlab.ChatMessage, timeout=5).text == "ok"


def test_any_message_over_the_frame_limit_is_refused_locally(connect):
    alice = connect("alice")
    with pytest.raises(chatlab.LocalProtocolError, match="Join of .* bytes is over the frame limit"):
        alice.send(p.Join("r" * 300_000))
    assert alice.who().users == {"alice": "lobby"}  # still connected


# ------------------------------------------------------------------ addresses (items 8, 10)


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "127.0.0.1:0", ("127.0.0.1", 70000)])
def test_an_invalid_port_is_named_as_such(address):
    with pytest.raises(ValueError, match="invalid port"):
        parse_address(address)


def test_connect_to_an_invalid_port_says_invalid_port():
    with pytest.raises(ValueError, match="invalid port 99999"):
        chatlab.Client.connect("127.0.0.1:99999", nick="alice")


# ------------------------------------------------------- socket errors, in one place (issue 12)


def test_socket_errors_become_closed_when_we_closed_and_broken_otherwise():
    with pytest.raises(chatlab.ConnectionClosed):
        with translate_socket_errors("sending", closed_by_us=lambda: True):
            raise ConnectionResetError(104, "Connection reset by peer")
    with pytest.raises(chatlab.ConnectionBroken, match="sending: Connection reset by peer"):
        with translate_socket_errors("sending"):
            raise ConnectionResetError(104, "Connection reset by peer")
    with pytest.raises(chatlab.ConnectionBroken, match="timed out"):
        with translate_socket_errors("receiving"):
            raise socket.timeout("timed out")
    sock = socket.socket()
    sock.close()
    with pytest.raises(chatlab.ConnectionClosed):  # a socket already closed here: we did it
        with translate_socket_errors("sending"):
            sock.send(b"x")


def test_a_peer_reset_is_reported_as_broken():
    """The server side vanishes with an RST: the client says 'connection broken', not 'closed'."""
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        address = listener.getsockname()

        def fake_server() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)  # the HELLO
                conn.sendall(p.encode(p.Welcome("alice", "lobby", "")))
                conn.recv(1)  # wait for the test's signal: a PING
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close() sends an RST

        thread = threading.Thread(target=fake_server, daemon=True)
        thread.start()
        with chatlab.Client.connect(address, nick="alice") as alice:
            alice.send(p.Ping(1))
            thread.join(5)
            gone = alice.wait_for(chatlab.Disconnected, timeout=5)
            assert gone.reason.startswith("connection broken:") and alice.end_reason == gone.reason


# ------------------------------------------------------------------------- the event queue


def test_event_queue_keeps_order_and_lets_waiters_pick_by_kind():
    events = EventQueue(owner="alice")
    events.put("a")
    mark = events.mark()
    events.put(1)
    events.put("b")
    assert events.take(lambda e: isinstance(e, int), timeout=0) == 1
    assert events.take(lambda e: isinstance(e, str), timeout=0, since=mark) == "b"  # "a" came before the mark
    assert events.drain() == ["a"]
    with pytest.raises(TimeoutError, match="alice: no number within 0.01 s"):
        events.take(lambda e: True, timeout=0.01, what="number")
    events.put("last")
    events.close()
    assert events.take(lambda e: True, timeout=1) == "last"  # what is queued is still delivered
    with pytest.raises(chatlab.ConnectionClosed):
        events.take(lambda e: True, timeout=1)


def test_event_queue_drops_the_oldest_beyond_its_backlog():
    events = EventQueue(max_backlog=3)
    for i in range(5):
        events.put(i)
    assert events.drain() == [2, 3, 4] and events.dropped == 2


def test_unsent_limit_is_readable(connect):
    alice = connect("alice", unsent_limit=64 * 1024)
    if not hasattr(socket, "TCP_NOTSENT_LOWAT"):
        assert alice.unsent_limit is None
    else:
        assert alice.unsent_limit == 64 * 1024
