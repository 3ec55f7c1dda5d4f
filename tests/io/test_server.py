"""The chat server over real loopback sockets (port 0 everywhere)."""

from __future__ import annotations

import selectors
import socket
import struct

import pytest

import chatlab
from chatlab.core import protocol as p
from conftest import RawPeer


def texts_until(client: chatlab.Client, last: str, timeout: float = 5.0) -> list[str]:
    """Chat texts a client receives, up to and including ``last``."""
    out: list[str] = []
    while not out or out[-1] != last:
        out.append(client.wait_for(chatlab.ChatMessage, timeout=timeout).text)
    return out


def test_the_api_of_the_readme(server, connect):
    alice, bob = connect("alice"), connect("bob")
    alice.say("hello")
    msg = bob.wait_for(chatlab.ChatMessage, timeout=2)
    assert (msg.sender, msg.text, msg.room) == ("alice", "hello", "lobby")
    alice.whisper("bob", "just you")
    private = bob.wait_for(chatlab.PrivateMessage, timeout=2)
    assert (private.sender, private.to, private.text) == ("alice", "bob", "just you")
    bob.join("team1")
    who = bob.who()
    assert who.users == {"alice": "lobby", "bob": "team1"}
    assert who.rooms == {"lobby": 1, "team1": 1}
    assert server.address[0] == "127.0.0.1" and server.address[1] > 0


def test_broadcast_keeps_each_senders_order(connect):
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    for i in range(200):
        alice.say(f"a{i}")
    assert texts_until(bob, "a199") == [f"a{i}" for i in range(200)]
    assert texts_until(carol, "a199") == [f"a{i}" for i in range(200)]
    assert texts_until(alice, "a199") == [f"a{i}" for i in range(200)]  # the sender's echo


def test_whispers_reach_only_the_two_people_involved(connect):
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    alice.whisper("bob", "secret")
    alice.say("marker")
    assert bob.wait_for(chatlab.PrivateMessage).text == "secret"
    assert alice.wait_for(chatlab.PrivateMessage).to == "bob"
    texts_until(carol, "marker")
    assert not [e for e in carol.drain() if isinstance(e, chatlab.PrivateMessage)]


def test_whisper_to_nobody_is_an_error_not_a_disconnect(connect):
    alice = connect("alice")
    alice.whisper("ghost", "hello?")
    assert alice.wait_for(chatlab.ErrorMessage).code == "no-such-nick"
    alice.say("still here")
    assert alice.wait_for(chatlab.ChatMessage).text == "still here"


def test_rooms_keep_messages_apart(connect):
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    bob.join("team1")
    carol.join("TEAM1")  # room names compare without case
    assert carol.room == "team1"
    bob.say("team talk")
    assert carol.wait_for(chatlab.ChatMessage).room == "team1"
    alice.say("lobby talk")
    assert alice.wait_for(chatlab.ChatMessage).text == "lobby talk"
    bob.say("marker")
    assert texts_until(carol, "marker") == ["marker"]  # "lobby talk" never reached team1
    assert "lobby talk" not in [e.text for e in bob.drain() if isinstance(e, chatlab.ChatMessage)]


def test_join_leave_and_quit_notices(connect):
    alice, bob = connect("alice"), connect("bob")
    alice.drain()
    bob.join("team1")
    assert alice.wait_for(chatlab.Notice, predicate=lambda n: n.kind == "leave").nick == "bob"
    bob.leave()
    assert alice.wait_for(chatlab.Notice, predicate=lambda n: n.kind == "join").nick == "bob"
    bob.close("gone fishing")
    quit_notice = alice.wait_for(chatlab.Notice, predicate=lambda n: n.kind == "quit")
    assert quit_notice.nick == "bob" and "gone fishing" in quit_notice.text


def test_action_is_marked(connect):
    alice = connect("alice")
    alice.action("waves")
    msg = alice.wait_for(chatlab.ChatMessage)
    assert msg.action and msg.text == "waves"


@pytest.mark.parametrize("nick, code", [("ALICE", "nick-taken"), ("ａｌｉｃｅ", "nick-taken"),
                                        ("admin", "nick-reserved"), ("", "bad-nick"), ("has space", "bad-nick"),
                                        ("x" * 21, "bad-nick"), ("9lives", "bad-nick")])
def test_refused_nicknames_raise_a_typed_error(connect, nick, code):
    connect("alice")
    with pytest.raises(chatlab.NickError) as info:
        connect(nick)
    assert info.value.code == code


def test_nick_is_free_again_after_quit(connect):
    connect("alice").close()
    assert connect("alice").nick == "alice"


def test_long_message_is_refused_but_the_client_stays(connect):
    alice = connect("alice")
    alice.say("x" * 2001)
    assert alice.wait_for(chatlab.ErrorMessage).code == "message-too-long"
    alice.say("short")
    assert alice.wait_for(chatlab.ChatMessage).text == "short"


def test_room_password_is_checked(server):
    with chatlab.Server(port=0, room_passwords={"class": "s3cret"}) as srv, \
         chatlab.Client.connect(srv.address, nick="alice") as alice:  # fmt: skip
        with pytest.raises(chatlab.ServerError) as info:
            alice.join("class", "wrong")
        assert info.value.code == "bad-password"
        alice.join("class", "s3cret")
        assert alice.room == "class"


def test_whoever_creates_a_room_with_a_password_sets_it(connect):
    alice, bob = connect("alice"), connect("bob")
    alice.join("secret", "pw123")
    with pytest.raises(chatlab.ServerError) as info:
        bob.join("secret")
    assert info.value.code == "bad-password"
    bob.join("secret", "pw123")
    assert bob.room == "secret"


def test_a_room_name_with_a_space_is_an_error_that_says_so(connect):
    alice = connect("alice")
    alice.send(p.Join("my room"))  # the raw request: a client may well check this itself first
    error = alice.wait_for(chatlab.ErrorMessage)
    assert error.code == "bad-room" and "spaces are not allowed in room names" in error.text


@pytest.mark.parametrize(
    "garbage",
    [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", bytes(range(256)), p.pack_header(p.FrameType.SAY, 2**32 - 1),
     p.pack_header(p.FrameType.SAY, 4) + b"\xff\xff\xff\xff"],
    ids=["http", "random-bytes", "claims-4GiB", "bad-utf8"],
)
def test_a_bad_client_is_dropped_with_a_reason_and_others_carry_on(server, connect, raw, garbage):
    alice, bob = connect("alice"), connect("bob")
    bad = raw("mallory")
    bad.sock.sendall(garbage)
    replies = bad.messages_until_closed()
    errors = [m for m in replies if isinstance(m, p.ErrorMessage)]
    assert errors and errors[-1].code == "protocol-error"
    alice.say("still working")
    assert bob.wait_for(chatlab.ChatMessage).text == "still working"
    assert "mallory" not in bob.who().users


def test_a_client_cannot_speak_as_the_server(connect, raw):
    bob = connect("bob")
    bad = raw("mallory")
    bad.send(p.ChatMessage("lobby", "bob", "I am bob"))  # a server-to-client frame
    assert any(isinstance(m, p.ErrorMessage) for m in bad.messages_until_closed())
    bob.say("marker")
    assert texts_until(bob, "marker") == ["marker"]


def test_abrupt_disconnect_is_noticed(connect, raw):
    alice = connect("alice")
    bad = raw("mallory")
    bad.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
    bad.sock.close()
    notice = alice.wait_for(chatlab.Notice, predicate=lambda n: n.kind == "quit")
    assert notice.nick == "mallory"


def test_server_restarts_on_the_same_port_at_once():
    with chatlab.Server(port=0) as first:
        port = first.address[1]
        with chatlab.Client.connect(first.address, nick="alice") as alice:
            alice.say("hi")
            alice.wait_for(chatlab.ChatMessage)
    # The server closed its side first, so its connections sit in TIME_WAIT now:
    # without SO_REUSEADDR this bind would fail with EADDRINUSE.
    with chatlab.Server(port=port) as second, chatlab.Client.connect(second.address, nick="bob") as bob:
        assert second.address[1] == port
        bob.say("back")
        assert bob.wait_for(chatlab.ChatMessage).text == "back"


@pytest.mark.parametrize("backend", [b for b in ("select", "poll", "epoll")
                                     if hasattr(selectors, b.capitalize() + "Selector")])
def test_every_selector_backend_chats(backend):
    with chatlab.Server(port=0, selector=backend) as srv, \
         chatlab.Client.connect(srv.address, nick="alice") as alice, \
         chatlab.Client.connect(srv.address, nick="bob") as bob:  # fmt: skip
        alice.say(backend)
        assert bob.wait_for(chatlab.ChatMessage).text == backend


def test_unknown_selector_is_a_clear_error():
    with pytest.raises(ValueError, match="not available"):
        chatlab.Server(port=0, selector="kqueue-on-linux")


def test_max_clients_refuses_politely():
    with chatlab.Server(port=0, max_clients=1) as srv, chatlab.Client.connect(srv.address, nick="alice"):
        with pytest.raises(chatlab.ServerError) as info:
            chatlab.Client.connect(srv.address, nick="bob")
        assert info.value.code == "server-full"


def test_flood_is_slowed_not_lost_and_others_are_not_slowed():
    with chatlab.Server(port=0, flood_limit=chatlab.FloodLimit(rate=20, burst=5)) as srv, \
         chatlab.Client.connect(srv.address, nick="alice") as alice, \
         chatlab.Client.connect(srv.address, nick="bob") as bob, \
         chatlab.Client.connect(srv.address, nick="carol") as carol:  # fmt: skip
        for i in range(30):  # at 20/s after a burst of 5, these take over a second to get through
            alice.say(f"a{i}")
        assert alice.wait_for(chatlab.Notice, predicate=lambda n: n.kind == "flood")
        carol.say("carol's turn")
        received = texts_until(bob, "a29")
        assert [t for t in received if t.startswith("a")] == [f"a{i}" for i in range(30)]  # nothing lost, in order
        assert received.index("carol's turn") < received.index("a29")  # carol did not wait behind alice's flood


def test_silent_peer_is_pinged_then_dropped():
    with chatlab.Server(port=0, ping_interval=0.3, ping_timeout=1.0) as srv, \
         chatlab.Client.connect(srv.address, nick="alice") as alice:  # fmt: skip
        ghost = RawPeer(srv.address, "ghost")
        try:
            replies = ghost.messages_until_closed()  # never answers the ping
        finally:
            ghost.close()
        assert any(isinstance(m, p.Ping) for m in replies)
        notice = alice.wait_for(chatlab.Notice, predicate=lambda n: n.kind == "quit", timeout=5)
        assert "ping timeout" in notice.text
        assert not alice.closed  # alice's client answers pings: still connected
        alice.say("alive")
        assert alice.wait_for(chatlab.ChatMessage).text == "alive"


def test_a_connection_that_never_says_hello_is_dropped():
    with chatlab.Server(port=0, hello_timeout=0.5) as srv:
        peer = RawPeer(srv.address)
        try:
            replies = peer.messages_until_closed()
        finally:
            peer.close()
        assert [m.code for m in replies if isinstance(m, p.ErrorMessage)] == ["hello-timeout"]


def test_connect_to_nothing_is_a_typed_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(chatlab.ConnectionBroken):
            chatlab.Client.connect(("127.0.0.1", port), nick="alice", timeout=2)
