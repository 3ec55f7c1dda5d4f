"""The chat rules without a socket: feed messages and a fake clock, read the outputs.

The way h11 tests a client/server pair in memory: :class:`Harness` stands in
for the server's loop (it applies the outputs to in-memory inboxes), so each
test reads as "alice says this at t=3; bob's inbox now holds that".
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatlab.core import codecs
from chatlab.core import protocol as p
from chatlab.core.chatroom import (
    Broadcast,
    ChatRoom,
    Close,
    FloodLimit,
    Output,
    Pause,
    Send,
    Session,
    Settings,
    TokenBucket,
)
from chatlab.core.relay import Forward

T0 = 1000.0  # the fake clock starts here


class Harness:
    """A ChatRoom plus in-memory inboxes: the server's loop without the sockets."""

    def __init__(self, **settings: Any) -> None:
        self.room = ChatRoom(Settings(**settings))
        self.now = T0
        self.inbox: dict[Session, list[Any]] = {}
        self.closed: dict[Session, str] = {}
        self.paused: dict[Session, float] = {}

    def connect(self, **options: Any) -> Session:
        session = Session(self.now, **options)
        self.room.connect(session, self.now)
        self.inbox[session] = []
        return session

    def join(self, nick: str, **options: Any) -> Session:
        session = self.connect(**options)
        self.feed(session, p.Hello(nick))
        assert session.nick is not None, self.inbox[session]
        for inbox in self.inbox.values():  # a set-up step: nobody's join notices are left over
            inbox.clear()
        return session

    def feed(self, session: Session, message: p.Message | p.Frame) -> list[Output]:
        if isinstance(message, p.Frame):
            outputs = self.room.receive_transfer(session, message, self.now)
        else:
            outputs = self.room.receive(session, message, self.now)
        self.apply(outputs)
        return outputs

    def feed_bytes(self, session: Session, codec: codecs.Codec, data: bytes, budget: int = 10_000) -> None:
        """Bytes as a client sent them, through ``codec``, as the server's loop does."""
        try:
            codec.feed(data)
            for _ in range(budget):
                if session.gone:
                    return
                event = codec.next_event()
                if event is None:
                    return
                if isinstance(event, bytes):
                    self.inbox[session].append(event)
                else:
                    self.feed(session, event)
        except (p.RemoteProtocolError, ValueError) as exc:
            self.apply(self.room.kick(session, "protocol-error", str(exc)))

    def apply(self, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, Send):
                self.deliver(out.to, out.message)
            elif isinstance(out, Broadcast):
                for member in out.to:
                    self.deliver(member, out.message)
            elif isinstance(out, Forward):
                self.deliver(out.to, p.Frame(out.kind, out.flags, out.stream_id, out.payload))
            elif isinstance(out, Pause):
                self.paused[out.session] = out.until
            elif isinstance(out, Close):
                self.closed.setdefault(out.session, out.reason)
                self.apply(self.room.disconnect(out.session, out.reason))

    def deliver(self, session: Session, item: Any) -> None:
        if session in self.inbox and session not in self.closed:
            self.inbox[session].append(item)

    def take(self, session: Session, kind: type | None = None) -> list[Any]:
        """Everything ``session`` received since the last take (only ``kind``, if given)."""
        got, self.inbox[session] = self.inbox[session], []
        return [m for m in got if kind is None or isinstance(m, kind)]

    def tick(self, seconds: float) -> None:
        self.now += seconds
        self.apply(self.room.tick(self.now))


def errors(items: list[Any]) -> list[str]:
    return [m.code for m in items if isinstance(m, p.ErrorMessage)]


# ------------------------------------------------------------ the module itself


def test_the_core_imports_no_io():
    core = Path(__file__).parents[2] / "chatlab" / "core"
    for path in sorted(core.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {alias.name.split(".")[0]
                    for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not imported & {"socket", "selectors", "threading", "time", "select", "asyncio"}, (path.name, imported)


def test_importing_the_core_loads_no_socket_or_selectors():
    """The whole import chain counts: chatlab/__init__.py must not drag the client and server in."""
    code = (
        "import sys\n"
        "import chatlab.core.chatroom, chatlab.core.codecs, chatlab.core.irc, chatlab.core.relay,"
        " chatlab.core.transfer\n"
        "print(sorted(m for m in ('socket', 'selectors', 'select', 'chatlab.server', 'chatlab.client')"
        " if m in sys.modules))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_the_dispatch_table_has_one_handler_per_client_message():
    assert set(ChatRoom.HANDLERS) == {p.Hello, p.Say, p.Whisper, p.Join, p.Leave, p.Who, p.Ping, p.Pong, p.Quit,
                                      p.Nick, p.Kick, p.Topic, p.Mode, p.Invite, p.Away, p.Oper, p.Wallops}


# ---------------------------------------------------------------- nicknames


def test_hello_welcomes_and_puts_the_newcomer_in_the_default_room():
    h = Harness()
    alice = h.join("alice")
    bob = h.connect()
    h.feed(bob, p.Hello("bob"))
    welcome, notice = h.take(bob)
    assert welcome == p.Welcome("bob", "lobby", Settings().motd)
    assert notice == p.Notice("join", "bob joined lobby", "bob", "lobby")
    assert h.take(alice) == [notice]


@pytest.mark.parametrize("look_alike", ["ALICE", "Alice", "ａｌｉｃｅ", "alice "])
def test_look_alike_nicknames_collide(look_alike):
    h = Harness()
    h.join("alice")
    mallory = h.connect()
    h.feed(mallory, p.Hello(look_alike))
    assert errors(h.take(mallory)) == ["nick-taken"]
    assert mallory in h.closed and h.room.find("alice") is not mallory


@pytest.mark.parametrize("nick, code", [("admin", "nick-reserved"), ("ＡＤＭＩＮ", "nick-reserved"),
                                        ("1abc", "bad-nick"), ("a b", "bad-nick"), ("x" * 21, "bad-nick"),
                                        ("", "bad-nick")])
def test_bad_and_reserved_nicknames_close_a_binary_client(nick, code):
    h = Harness()
    session = h.connect()
    h.feed(session, p.Hello(nick))
    assert errors(h.take(session)) == [code]
    assert session in h.closed and session.nick is None


def test_a_text_client_may_try_another_nickname():
    h = Harness()
    h.join("alice")
    irc = h.connect(nick_retries=True, accepts_files=False)
    h.feed(irc, p.Hello("alice"))
    assert errors(h.take(irc)) == ["nick-taken"] and irc not in h.closed
    h.feed(irc, p.Hello("admin"))
    assert errors(h.take(irc)) == ["nick-reserved"] and irc not in h.closed
    h.feed(irc, p.Hello("carol"))
    assert irc.nick == "carol" and isinstance(h.take(irc)[0], p.Welcome)


def test_a_second_hello_is_an_error_not_a_rename():
    h = Harness()
    alice = h.join("alice")
    h.feed(alice, p.Hello("mallory"))
    assert errors(h.take(alice)) == ["already-registered"] and alice.nick == "alice"


def test_chat_before_hello_is_a_protocol_error():
    h = Harness()
    session = h.connect()
    h.feed(session, p.Say("hi"))
    assert errors(h.take(session)) == ["protocol-error"] and session in h.closed


def test_server_messages_from_a_client_are_refused():
    h = Harness()
    alice = h.join("alice")
    h.feed(alice, p.ChatMessage("lobby", "bob", "forged"))
    assert errors(h.take(alice)) == ["protocol-error"] and alice in h.closed


def test_a_nickname_is_free_again_once_its_owner_quits():
    h = Harness()
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, p.Quit("bye"))
    assert h.take(bob, p.Notice)[-1] == p.Notice("quit", "alice quit (bye)", "alice", "lobby")
    h.join("ALICE")


# ---------------------------------------------------------------- rooms and chat


def test_say_reaches_everyone_in_the_room_and_nobody_else():
    h = Harness()
    alice, bob, carol = h.join("alice"), h.join("bob"), h.join("carol")
    h.feed(carol, p.Join("team"))
    h.take(alice), h.take(bob), h.take(carol)
    outputs = h.feed(alice, p.Say("hello"))
    assert len(outputs) == 1 and isinstance(outputs[0], Broadcast)  # one message, encoded once by the server
    line = p.ChatMessage("lobby", "alice", "hello")
    assert h.take(alice) == [line] and h.take(bob) == [line] and h.take(carol) == []


def test_rooms_are_created_by_joining_and_vanish_when_empty():
    h = Harness()
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, p.Join("Team"))
    assert h.take(bob) == [p.Notice("leave", "alice left for Team", "alice", "lobby")]
    h.feed(bob, p.Join("TEAM"))
    assert h.take(bob)[-1] == p.Notice("join", "bob joined Team", "bob", "Team")  # the name as first written
    h.feed(bob, p.Who())
    assert h.take(bob) == [p.WhoReply({"alice": "Team", "bob": "Team"}, {"Team": 2, "lobby": 0})]
    h.feed(alice, p.Leave())
    h.feed(bob, p.Leave())
    assert "team" not in h.room.rooms and "lobby" in h.room.rooms


@pytest.mark.parametrize("room", ["my room", "a b c", "class pw123"])
def test_a_room_name_with_a_space_says_spaces_are_not_allowed(room):
    h = Harness()
    alice = h.join("alice")
    h.feed(alice, p.Join(room))
    (error,) = h.take(alice)
    assert error.code == "bad-room" and "spaces are not allowed in room names" in error.text
    assert alice.room_key == "lobby"


@pytest.mark.parametrize("room", ["", "x" * 33, "class\n", "a/b"])
def test_bad_room_names_are_refused(room):
    h = Harness()
    alice = h.join("alice")
    h.feed(alice, p.Join(room))
    assert errors(h.take(alice)) == ["bad-room"]


def test_joining_your_own_room_and_too_many_rooms_are_errors():
    h = Harness(max_rooms=2)
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, p.Join("LOBBY"))
    assert errors(h.take(alice)) == ["already-in-room"]
    h.feed(alice, p.Join("one"))
    h.feed(bob, p.Join("two"))
    assert errors(h.take(bob)) == ["too-many-rooms"]


def test_whispers_go_to_one_person_and_confirm_to_the_sender():
    h = Harness()
    alice, bob, carol = h.join("alice"), h.join("bob"), h.join("carol")
    h.take(alice), h.take(bob)
    h.feed(alice, p.Whisper("ＢＯＢ", "psst"))
    private = p.PrivateMessage("alice", "bob", "psst")
    assert h.take(bob) == [private] and h.take(alice) == [private] and h.take(carol) == []
    h.feed(alice, p.Whisper("alice", "note to self"))
    assert h.take(alice) == [p.PrivateMessage("alice", "alice", "note to self")]  # once, not twice
    h.feed(alice, p.Whisper("nobody", "hello?"))
    assert errors(h.take(alice)) == ["no-such-nick"]


def test_empty_and_overlong_messages_are_errors():
    h = Harness(max_message=10)
    alice = h.join("alice")
    h.feed(alice, p.Say("   "))
    h.feed(alice, p.Say("x" * 11))
    h.feed(alice, p.Whisper("alice", ""))
    assert errors(h.take(alice)) == ["empty-message", "message-too-long", "empty-message"]


# ---------------------------------------------------------------- passwords


def test_whoever_creates_a_room_with_a_password_sets_it():
    h = Harness()
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, p.Join("secret", "pw123"))
    assert alice.room_key == "secret"
    h.feed(bob, p.Join("secret"))
    h.feed(bob, p.Join("secret", "wrong"))
    assert errors(h.take(bob)) == ["bad-password", "bad-password"] and bob.room_key == "lobby"
    h.feed(bob, p.Join("SECRET", "pw123"))
    assert bob.room_key == "secret"


def test_a_creators_password_goes_with_the_room():
    h = Harness()
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, p.Join("secret", "pw123"))
    h.feed(alice, p.Leave())
    h.feed(bob, p.Join("secret"))  # a new room of the same name: open
    assert bob.room_key == "secret"


def test_a_password_on_a_room_that_has_none_is_ignored_and_said_so():
    h = Harness()
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, p.Join("open"))
    h.feed(bob, p.Join("open", "late-key"))
    assert bob.room_key == "open"
    assert any(n.kind == "info" and "no password" in n.text for n in h.take(bob, p.Notice))
    h.feed(alice, p.Leave())
    h.feed(alice, p.Join("open"))  # bob did not lock alice out
    assert alice.room_key == "open"


def test_preset_passwords_hold_from_the_start_and_stay():
    h = Harness(room_passwords={"Class": "s3cret"})
    alice = h.join("alice")
    h.feed(alice, p.Join("class", "guess"))
    assert errors(h.take(alice)) == ["bad-password"]
    h.feed(alice, p.Join("ｃｌａｓｓ", "s3cret"))
    assert alice.room_key == "class"
    h.feed(alice, p.Leave())  # the room empties and vanishes...
    h.feed(alice, p.Join("class", "other"))  # ...but its preset password does not
    assert errors(h.take(alice)) == ["bad-password"]


# ---------------------------------------------------------------- flood control


def test_token_bucket_returns_the_wait():
    bucket = TokenBucket(FloodLimit(rate=2.0, burst=3), now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0  # one token refilled in half a second
    assert bucket.take(10.0) == 0.0 and bucket.tokens == pytest.approx(2.0)  # refills to burst, no further


def test_a_flooder_is_paused_not_dropped_and_told_once():
    h = Harness(flood_limit=FloodLimit(rate=10, burst=2))
    alice, bob = h.join("alice"), h.join("bob")
    h.take(alice), h.take(bob)
    for text in ("one", "two"):
        h.feed(alice, p.Say(text))
    outputs = h.feed(alice, p.Say("three"))
    assert isinstance(outputs[-1], Pause) and outputs[-1].until == pytest.approx(T0 + 0.1)
    assert [m.text for m in h.take(bob)] == ["one", "two"]  # "three" was not handled: the server holds it
    assert [n.kind for n in h.take(alice, p.Notice)] == ["flood"]
    h.feed(alice, p.Say("three"))  # handed back too early: still paused, but not told again
    assert not h.take(alice, p.Notice)
    h.now += 0.1
    h.feed(alice, p.Say("three"))
    assert [m.text for m in h.take(bob)] == ["three"] and alice not in h.closed


def test_pings_and_pongs_cost_no_flood_tokens():
    h = Harness(flood_limit=FloodLimit(rate=1, burst=1))
    alice = h.join("alice")
    for token in range(20):
        h.feed(alice, p.Ping(token))
    assert [m.token for m in h.take(alice)] == list(range(20))


def test_file_offers_cost_flood_tokens():
    h = Harness(flood_limit=FloodLimit(rate=1, burst=1))
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, p.Who())
    outputs = h.feed(alice, frame(p.FileOffer(1, "bob", "a.txt", 1, "0" * 64)))
    assert isinstance(outputs[-1], Pause) and not h.take(bob)


# ---------------------------------------------------------------- keepalive


def test_the_silent_are_pinged_then_closed():
    h = Harness(ping_interval=30, ping_timeout=60)
    alice = h.join("alice")
    h.tick(29)
    assert h.take(alice) == []
    h.tick(2)
    assert h.take(alice) == [p.Ping(int(h.now))]
    h.tick(30)
    assert alice not in h.closed  # still within the timeout
    h.tick(31)
    assert "ping timeout" in h.closed[alice]


def test_any_message_counts_as_a_sign_of_life():
    h = Harness(ping_interval=30, ping_timeout=60)
    alice = h.join("alice")
    h.tick(31)
    assert h.take(alice, p.Ping)
    h.feed(alice, p.Pong(0))
    h.tick(61)
    assert alice not in h.closed


def test_no_hello_in_time_is_closed_with_a_reason():
    h = Harness(hello_timeout=10)
    session = h.connect()
    h.tick(11)
    assert errors(h.take(session)) == ["hello-timeout"] and session in h.closed


# ---------------------------------------------------------------- the codec seam


def test_binary_bytes_in_any_split_drive_the_core():
    h = Harness()
    bob = h.join("bob")
    alice = h.connect()
    data = p.encode(p.Hello("alice")) + p.encode(p.Say("hi"))
    codec = codecs.sniff(data[:2])
    assert isinstance(codec, codecs.BinaryCodec)
    for i in range(len(data)):
        h.feed_bytes(alice, codec, data[i : i + 1])
    assert p.ChatMessage("lobby", "alice", "hi") in h.take(bob)


def test_sniffing_tells_text_from_binary_by_magic_and_version():
    assert codecs.sniff(b"") is None and codecs.sniff(bytes([p.MAGIC])) is None  # not enough to decide yet
    assert isinstance(codecs.sniff(bytes([p.MAGIC, p.VERSION])), codecs.BinaryCodec)
    assert not isinstance(codecs.sniff(bytes([p.MAGIC, 0xB0])), codecs.BinaryCodec)  # GBK text may start with 0xC4
    assert not isinstance(codecs.sniff(b"NICK alice\r\n"), codecs.BinaryCodec)

    class Text(codecs.RefuseText):
        pass

    assert isinstance(codecs.sniff(b"NICK alice\r\n", text_codec=Text), Text)  # the one-line plug


def frame(message: p.Message) -> p.Frame:
    """``message`` as the transfer frame the binary codec would hand the relay."""
    decoder = p.FrameDecoder()
    decoder.feed(p.encode(message))
    result = decoder.next_frame()
    assert result is not None
    return result


# ---------------------------------------------------------------- invariants under any sequence

NAMES = st.sampled_from(["alice", "ALICE", "ａｌｉｃｅ", "bob", "admin", "", "x y", "team", "Team", "my room", "lobby"])
MESSAGES = st.one_of(
    st.builds(p.Hello, NAMES), st.builds(p.Say, st.sampled_from(["hi", " ", "x" * 3000])),
    st.builds(p.Whisper, NAMES, st.just("psst")), st.builds(p.Join, NAMES, st.sampled_from(["", "pw", "other"])),
    st.builds(p.Leave), st.builds(p.Who), st.builds(p.Ping, st.integers(0, 9)), st.builds(p.Pong),
    st.builds(p.Quit, st.just("bye")), st.builds(p.ChatMessage, NAMES, NAMES, st.just("forged")),
    st.builds(p.Join, NAMES, st.just(""), st.just(True)), st.builds(p.Leave, NAMES), st.builds(p.Nick, NAMES),
    st.builds(p.Kick, NAMES, NAMES), st.builds(p.Topic, NAMES, st.just("t"), st.booleans()),
    st.builds(p.Mode, NAMES, st.sampled_from(["", "+o", "-o", "+k", "+imnstl", "+b", "-b", "+v", "+q", "+i", "-i"]),
              st.lists(NAMES | st.just("3"), max_size=3)),
    st.builds(p.Invite, NAMES, NAMES), st.builds(p.Away, st.sampled_from(["", "lunch"])),
    st.builds(p.Who, NAMES, NAMES, NAMES, st.booleans()), st.builds(p.Say, st.just("hi"), st.just(False), NAMES),
)
TRANSFERS = st.builds(lambda sid, peer: frame(p.FileOffer(sid, peer, "f.txt", 10, SHA)), st.integers(1, 3), NAMES) | \
    st.builds(lambda kind, sid: frame(kind(sid)), st.sampled_from([p.FileAccept, p.FileDone, p.FileCancel]),
              st.sampled_from([1, 2, p.INCOMING_STREAM_BIT | 1, p.INCOMING_STREAM_BIT | 2]))
SHA = "0" * 64
STEPS = st.lists(st.tuples(st.integers(0, 3), st.one_of(MESSAGES, TRANSFERS), st.floats(0, 40)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(STEPS, st.booleans())
def test_any_sequence_keeps_the_tables_consistent(steps, flood):
    h = Harness(flood_limit=FloodLimit(rate=5, burst=3) if flood else None)
    sessions = [h.connect(nick_retries=(i == 3), accepts_files=(i != 3)) for i in range(4)]
    for who, message, wait in steps:
        h.now += wait
        h.apply(h.room.tick(h.now))
        if sessions[who] not in h.closed:
            h.feed(sessions[who], message)
        room = h.room
        live = [s for s in sessions if s not in h.closed]
        assert {s for s in live if s.nick} == set(room.nicks.values())
        for key, members in room.rooms.items():
            assert len(members) == len(set(members)) and all(key in s.rooms and s.nick for s in members)
        for s in live:
            assert all(s in room.rooms[key] for key in s.rooms) and (s.room_key in s.rooms or s.room_key == "")
        assert set(room.state) <= set(room.rooms) and all(room.state[k].ops <= set(room.rooms[k]) for k in room.state)
        assert all(s.gone for s in sessions if s in h.closed)
        assert set(room.relay.sending) | set(room.relay.receiving) <= set(live) | {s for s in sessions if not s.nick}
        for transfers in list(room.relay.sending.values()) + list(room.relay.receiving.values()):
            assert all(t.sender in live and t.receiver in live and t.receiver.accepts_files for t in transfers.values())


def test_refuse_text_answers_a_text_client_with_the_bad_magic_error_and_takes_no_files():
    codec = codecs.RefuseText()
    codec.feed(b"hello there, server\n")  # a header's worth of bytes: the decoder looks at the magic
    with pytest.raises(p.RemoteProtocolError, match="magic"):
        codec.next_event()
    assert not codec.accepts_files
