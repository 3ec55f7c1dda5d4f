"""The IRC codec without sockets: bytes in (any split) -> core messages; core messages -> lines.

Like protocol.py's tests, these feed bytes whole and byte by byte and assert what
comes out; the over-the-socket tests with real IRC clients are in test_irc.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatlab.core import codecs
from chatlab.core import protocol as p
from chatlab.core.irc import COMMANDS, HELP, MAX_LINE, IrcCodec, format_line, parse_line, privmsg_lines
from chatlab.errors import RemoteProtocolError

HINT = "Unknown command; register with NICK yourname and USER yourname 0 * :Your Name"


def events(codec: IrcCodec) -> list[p.Message | bytes]:
    out = []
    while (event := codec.next_event()) is not None:
        assert not isinstance(event, p.Frame), "an IRC codec never hands the server a transfer frame"
        out.append(event)
    return out


def lines(items: list[p.Message | bytes] | bytes) -> list[str]:
    """Every IRC line in bytes (or in the bytes events of a list), without the CR LF."""
    data = items if isinstance(items, bytes) else b"".join(e for e in items if isinstance(e, bytes))
    assert data == b"" or data.endswith(b"\r\n"), data
    out = data.decode("utf-8").split("\r\n")[:-1]
    assert all(len(line.encode()) + 2 <= MAX_LINE for line in out)
    return out


def messages(items: list[p.Message | bytes]) -> list[p.Message]:
    return [e for e in items if not isinstance(e, bytes)]


def feed_split(codec: IrcCodec, data: bytes, size: int) -> list[p.Message | bytes]:
    out = []
    for i in range(0, len(data), size):
        codec.feed(data[i : i + size])
        out += events(codec)
    return out


def hello(nick: str, password: str = "", user: str = "", realname: str = "", lobby: bool = False) -> p.Hello:
    """The Hello a codec sends; ``lobby`` false: NICK and USER came in one read (a burst), or CAP was seen."""
    return p.Hello(nick, password, user=user or nick, realname=realname or nick.title(), lobby=lobby)


def registered(nick: str = "alice", room: str = "lobby", others: tuple[str, ...] = ()) -> IrcCodec:
    """A codec through NICK/USER, Welcome and its join, as the server would drive it."""
    codec = IrcCodec()
    codec.feed(f"NICK {nick}\r\nUSER {nick} 0 * :{nick.title()}\r\n".encode())
    assert messages(events(codec)) == [hello(nick)]
    codec.encode(p.Welcome(nick, room, "hello class"))
    assert messages(events(codec)) == [p.Who(nick=nick)]  # LUSERS and the MOTD come with its answer
    codec.encode(p.WhoReply(stats={"users": 1}))
    codec.encode(p.Notice("join", f"{nick} joined {room}", nick, room))
    assert messages(events(codec)) == [p.Who(room=room)]
    codec.encode(p.WhoReply(channels={room: {"members": {nick: "", **{o: "" for o in others}}, "topic": ""}}))
    return codec


# ------------------------------------------------------------ registration


@pytest.mark.parametrize("size", [1, 2, 7, 1000], ids=lambda n: f"split-{n}")
def test_nick_and_user_in_any_split_say_hello_once(size):
    codec = IrcCodec()
    got = feed_split(codec, b"CAP LS 302\r\nPASS sesame\r\nNICK alice\r\nUSER alice 0 * :Alice A.\r\nCAP END\r\n", size)
    assert messages(got) == [hello("alice", "sesame", realname="Alice A.")]  # an IRC client: no forced room
    assert lines(got) == [":chatlab CAP * LS :"]


def test_user_before_nick_and_lf_endings_as_nc_sends_them():
    codec = IrcCodec()
    codec.feed(b"USER bob 0 * :Bob\nNICK bob\n")
    assert messages(events(codec)) == [hello("bob", realname="Bob")]


def test_a_typo_before_registering_gets_421_with_the_hint_and_chat_gets_451():
    codec = IrcCodec()
    codec.feed(b"hello\nPRIVMSG #lobby :hi\nJOIN #x\n")
    assert lines(events(codec)) == [
        f":chatlab 421 * hello :{HINT}",
        ":chatlab 451 * :You have not registered; register with NICK yourname and USER yourname 0 * :Your Name",
        ":chatlab 451 * :You have not registered; register with NICK yourname and USER yourname 0 * :Your Name",
    ]


def test_welcome_is_001_to_005_then_lusers_and_the_motd_and_the_join_brings_names():
    codec = IrcCodec()
    codec.feed(b"NICK alice\r\nUSER alice 0 * :Alice\r\n")
    events(codec)
    welcome = lines(codec.encode(p.Welcome("alice", "lobby", "line one\nline two")))
    assert [line.split()[1] for line in welcome] == ["001", "002", "003", "004", "005"]
    assert welcome[0] == ":chatlab 001 alice :Welcome to chatlab, alice!alice@chatlab"
    assert "PREFIX=(ov)@+" in welcome[4] and "CHANMODES=b,k,l,imnst" in welcome[4] and "CHANLIMIT" not in welcome[4]
    assert messages(events(codec)) == [p.Who(nick="alice")]
    rest = lines(codec.encode(p.WhoReply(stats={"users": 3, "invisible": 1, "opers": 1, "unknown": 2, "rooms": 4})))
    assert [line.split()[1] for line in rest] == ["251", "252", "253", "254", "255", "375", "372", "372", "372", "376"]
    assert rest[0] == ":chatlab 251 alice :There are 2 users and 1 invisible on 1 servers"
    assert rest[6:8] == [":chatlab 372 alice :- line one", ":chatlab 372 alice :- line two"]
    joined = p.Notice("join", "alice joined lobby", "alice", "lobby")
    assert lines(codec.encode(joined)) == [":alice!alice@chatlab JOIN #lobby"]
    assert messages(events(codec)) == [p.Who(room="lobby")]  # the topic and member list, asked of the core
    names = lines(codec.encode(p.WhoReply(channels={"lobby": {"members": {"alice": "", "bob": "@"}, "topic": ""}})))
    assert names == [":chatlab 353 alice = #lobby :alice @bob", ":chatlab 366 alice #lobby :End of /NAMES list"]


@pytest.mark.parametrize("code, numeric", [("nick-taken", "433"), ("bad-nick", "432"), ("nick-reserved", "432")])
def test_a_refused_nick_gets_its_numeric_and_the_client_may_try_another(code, numeric):
    codec = IrcCodec()
    codec.feed(b"NICK alice\r\nUSER alice 0 * :Alice\r\n")
    assert messages(events(codec)) == [hello("alice")]
    assert lines(codec.encode(p.ErrorMessage(code, "no"))) == [f":chatlab {numeric} * alice :no"]
    codec.feed(b"NICK alice2\r\n")
    assert messages(events(codec)) == [hello("alice2", user="alice", realname="Alice")]
    codec.encode(p.Welcome("alice2", "lobby"))
    assert codec.nick == "alice2"


@pytest.mark.parametrize("nick", ["foo|afk", "[bot]", "nick^", "a`b", "x-1", "_", "{a}\\", "小明", "ｂｏｂ"])
def test_rfc_2812_nicks_and_letters_of_any_script_are_taken(nick):
    codec = IrcCodec()
    codec.feed(f"NICK {nick}\r\nUSER u 0 * :U\r\n".encode())
    assert [type(m) for m in messages(events(codec))] == [p.Hello]


@pytest.mark.parametrize("nick", ["1abc", "-x", "a*", "a!b", "*", "x" * 21, "a.b", "a@b", "#chan"])
def test_nicks_outside_rfc_2812_get_432_from_the_codec(nick):
    codec = IrcCodec()
    codec.feed(f"NICK {nick}\r\nUSER u 0 * :U\r\n".encode())
    got = events(codec)
    assert messages(got) == [] and lines(got)[0].startswith(f":chatlab 432 * {nick} :Erroneous nickname")


def test_after_registering_user_and_pass_get_462_and_nick_is_a_rename():
    codec = registered()
    codec.feed(b"USER again 0 * :x\r\nPASS x\r\nNICK other\r\nNICK alice\r\n")
    got = events(codec)
    assert [line.split()[1] for line in lines(got)] == ["462", "462"]
    assert messages(got) == [p.Nick("other")]
    assert lines(codec.encode(p.ErrorMessage("nick-taken", "in use", "other"))) == [":chatlab 433 alice other :in use"]
    assert lines(codec.encode(p.Notice("nick", "alice is now known as other", "alice", target="other"))) == [
        ":alice!alice@chatlab NICK :other"]
    assert codec.nick == "other"


# ------------------------------------------------------------------- chat in


def test_privmsg_to_the_room_is_a_say_and_to_a_nick_a_whisper():
    codec = registered()
    codec.feed(b"PRIVMSG #lobby :hello there\r\nPRIVMSG bob :psst\r\nprivmsg #LOBBY ::-)\r\n")
    assert messages(events(codec)) == [p.Say("hello there", room="lobby"), p.Whisper("bob", "psst"),
                                       p.Say(":-)", room="LOBBY")]


def test_ctcp_action_is_an_action_and_other_ctcp_is_refused_politely():
    codec = registered()
    codec.feed(b"PRIVMSG #lobby :\x01ACTION waves\x01\r\nPRIVMSG bob :\x01ACTION nods\x01\r\n"
               b"PRIVMSG bob :\x01DCC SEND f.txt 2130706433 5000 12\x01\r\nNOTICE bob :\x01VERSION irssi\x01\r\n")
    got = events(codec)
    assert messages(got) == [p.Say("waves", action=True, room="lobby"), p.Whisper("bob", "nods", action=True)]
    assert lines(got) == [":chatlab NOTICE alice :not sent to bob: files (DCC): use the chatlab client for files"]
    codec.feed(b"PRIVMSG bob :\x01VERSION\x01\r\n")
    assert lines(events(codec)) == [
        ":chatlab NOTICE alice :not sent to bob: CTCP VERSION requests: chatlab does not relay them"]


def test_notice_is_a_notice_and_is_never_answered():
    codec = registered()
    codec.feed(b"NOTICE #lobby :hi all\r\nNOTICE nobody :hi\r\nNOTICE\r\nNOTICE bob\r\n")
    got = events(codec)
    assert messages(got) == [p.Say("hi all", room="lobby", notice=True), p.Whisper("nobody", "hi", notice=True)]
    assert lines(got) == []  # no 411, no 412: RFC 1459 4.4.2
    assert codec.encode(p.ChatMessage("lobby", "bob", "hey", notice=True)) == b":bob!bob@chatlab NOTICE #lobby :hey\r\n"
    noticed = p.PrivateMessage("bob", "alice", "psst", notice=True)
    assert codec.encode(noticed) == b":bob!bob@chatlab NOTICE alice :psst\r\n"


def test_privmsg_to_a_channel_you_are_not_in_gets_the_cores_404_with_the_channel():
    codec = registered()
    codec.feed(b"PRIVMSG #elsewhere :hi\r\n")
    assert messages(events(codec)) == [p.Say("hi", room="elsewhere")]
    assert lines(codec.encode(p.ErrorMessage("cannot-send", "you are not in elsewhere", "elsewhere"))) == [
        ":chatlab 404 alice #elsewhere :you are not in elsewhere"]


def test_missing_recipient_or_text_get_411_and_412():
    codec = registered()
    codec.feed(b"PRIVMSG\r\nPRIVMSG #lobby\r\nPRIVMSG #lobby :\r\n")
    assert [line.split()[1] for line in lines(events(codec))] == ["411", "412", "412"]


def test_join_adds_a_room_and_part_leaves_that_one():
    codec = registered()
    codec.feed(b"JOIN #team,#more sesame\r\n")
    assert messages(events(codec)) == [p.Join("team", "sesame", stay=True), p.Join("more", "", stay=True)]
    joined = p.Notice("join", "alice joined team", "alice", "team")
    assert lines(codec.encode(joined)) == [":alice!alice@chatlab JOIN #team"]
    assert codec.channel == "#team" and set(codec.channels.values()) == {"#lobby", "#team"}
    assert messages(events(codec)) == [p.Who(room="team")]
    codec.encode(p.WhoReply(channels={"team": {"members": {"alice": "@"}, "topic": "plans", "topic_by": "alice",
                                               "topic_at": 1700000000}}))
    codec.feed(b"PART #team :bye now\r\n")
    assert messages(events(codec)) == [p.Leave("team", "bye now")]
    assert lines(codec.encode(p.Notice("leave", "alice left team (bye now)", "alice", "team", detail="bye now"))) == [
        ":alice!alice@chatlab PART #team :bye now"]
    assert set(codec.channels.values()) == {"#lobby"}


def test_join_errors_name_the_channel_and_joining_your_own_room_is_quiet():
    codec = registered()
    codec.feed(b"JOIN #secret wrong\r\n")
    events(codec)
    assert lines(codec.encode(p.ErrorMessage("bad-password", "room 'secret' needs the right password", "secret"))) == [
        ":chatlab 475 alice #secret :room 'secret' needs the right password"]
    codec.feed(b"JOIN #lobby\r\nJOIN lobby\r\n")
    got = events(codec)
    assert messages(got) == []  # already in #lobby: an IRC server says nothing
    assert codec.encode(p.ErrorMessage("already-in-room", "you are already in lobby")) == b""
    assert lines(got)[0].startswith(":chatlab 403 alice lobby :No such channel")


def test_part_of_a_channel_you_are_not_in_is_the_cores_442():
    codec = registered()
    codec.feed(b"PART #nope\r\n")
    assert messages(events(codec)) == [p.Leave("nope")]
    assert lines(codec.encode(p.ErrorMessage("not-in-room", "you are not in nope", "nope"))) == [
        ":chatlab 442 alice #nope :you are not in nope"]


def test_whisper_to_nobody_is_401_with_the_nick():
    codec = registered()
    codec.feed(b"PRIVMSG ghost :boo\r\n")
    assert messages(events(codec)) == [p.Whisper("ghost", "boo")]
    assert lines(codec.encode(p.ErrorMessage("no-such-nick", "nobody called 'ghost' is online", "ghost"))) == [
        ":chatlab 401 alice ghost :nobody called 'ghost' is online"]


def test_quit_says_error_then_quits():
    codec = registered()
    codec.feed(b"QUIT :gone fishing\r\n")
    got = events(codec)
    assert lines(got) == [":chatlab ERROR :Closing link: alice (Quit: gone fishing)"]
    assert messages(got) == [p.Quit("gone fishing")]


def test_ping_goes_to_the_core_and_its_pong_carries_the_clients_token():
    codec = registered()
    codec.feed(b"PING :abc 123\r\nPONG chatlab :1700000000\r\nPONG :x\r\n")
    assert events(codec) == [p.Ping(0), p.Pong(1700000000), p.Pong(0)]  # the core hears from the client
    assert codec.encode(p.Pong(0)) == b":chatlab PONG chatlab :abc 123\r\n"
    assert codec.encode(p.Ping(42)) == b"PING :42\r\n"  # keepalive, from the core


def test_an_http_request_or_a_tls_handshake_ends_the_connection_with_a_reason():
    codec = IrcCodec()
    codec.feed(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    with pytest.raises(RemoteProtocolError, match="not a web server"):
        events(codec)
    codec = IrcCodec()
    codec.feed(bytes.fromhex("16030100a5010000a10303") + b"\x00" * 20)
    with pytest.raises(RemoteProtocolError, match="TLS"):
        events(codec)
    assert lines(codec.encode(p.ErrorMessage("protocol-error", "no TLS here"))) == [
        ":chatlab ERROR :Closing link: * (no TLS here)"]


def test_queries_ask_the_core_and_format_its_answer():
    codec = registered(others=("bob",))
    codec.feed(b"LIST #team\r\nWHO #lobby\r\nWHOIS bob\r\nWHOIS ghost\r\nNAMES #lobby\r\nTOPIC #lobby\r\n"
               b"MODE #lobby\r\nMODE #lobby b\r\nMODE alice\r\nISON bob ghost\r\nUSERHOST bob\r\nWHOWAS zed 1\r\n")
    assert messages(events(codec)) == [
        p.Who(full=True), p.Who(room="lobby"), p.Who(nick="bob"), p.Who(nick="ghost"), p.Who(room="lobby"),
        p.Topic("lobby"), p.Mode("lobby"), p.Mode("lobby", "+b"), p.Mode("alice"), p.Who(full=True), p.Who(full=True),
        p.Who(was="zed")]
    bob = {"user": "bobby", "realname": "Bob B.", "away": "lunch", "oper": True, "modes": "+io", "idle": 5,
           "signon": 1700000000, "rooms": {"lobby": "@"}}
    lobby = {"members": {"bob": "@", "alice": ""}, "topic": "hi", "topic_by": "bob", "topic_at": 1700000001,
             "modes": "+knt sesame", "created": 1600000000, "bans": ["x!*@* bob 1700000002"], "secret": False}
    full = p.WhoReply(people={"bob": bob, "alice": dict(bob, away="", oper=False, rooms={"lobby": ""})},
                      channels={"lobby": lobby, "team": dict(lobby, members={"carol": ""}, topic="")})
    assert lines(codec.encode(full)) == [":chatlab 321 alice Channel :Users  Name", ":chatlab 322 alice #team 1 :",
                                         ":chatlab 323 alice :End of /LIST"]
    assert lines(codec.encode(full)) == [":chatlab 352 alice #lobby bobby chatlab chatlab bob G*@ :0 Bob B.",
                                         ":chatlab 352 alice #lobby bobby chatlab chatlab alice H :0 Bob B.",
                                         ":chatlab 315 alice #lobby :End of /WHO list"]
    assert [line.split()[1] for line in lines(codec.encode(full))] == ["311", "319", "312", "301", "313", "317", "318"]
    assert [line.split()[1] for line in lines(codec.encode(full))] == ["401", "318"]
    assert lines(codec.encode(full))[0] == ":chatlab 353 alice = #lobby :@bob alice"
    assert lines(codec.encode(full)) == [":chatlab 332 alice #lobby :hi",
                                         ":chatlab 333 alice #lobby bob!bob@chatlab 1700000001"]
    assert lines(codec.encode(full)) == [":chatlab 324 alice #lobby +knt sesame",
                                         ":chatlab 329 alice #lobby 1600000000"]
    assert lines(codec.encode(full)) == [":chatlab 367 alice #lobby x!*@* bob 1700000002",
                                         ":chatlab 368 alice #lobby :End of channel ban list"]
    assert lines(codec.encode(full)) == [":chatlab 221 alice +io"]
    assert lines(codec.encode(full)) == [":chatlab 303 alice :bob"]
    assert lines(codec.encode(full)) == [":chatlab 302 alice :bob*=-bobby@chatlab"]
    assert lines(codec.encode(p.WhoReply())) == [":chatlab 406 alice zed :There was no such nickname",
                                                 ":chatlab 369 alice zed :End of WHOWAS"]


def test_a_refused_query_does_not_shift_the_answers_of_the_next_ones():
    codec = registered()
    codec.feed(b"TOPIC #nope\r\nNAMES #lobby\r\n")
    assert codec.next_event() == p.Topic("nope")  # the server hands it to the core, which answers at once
    assert lines(codec.encode(p.ErrorMessage("no-such-room", "there is no room 'nope'", "nope"))) == [
        ":chatlab 403 alice #nope :there is no room 'nope'"]
    assert events(codec) == [p.Who(room="lobby")]
    assert lines(codec.encode(p.WhoReply(channels={"lobby": {"members": {"alice": ""}}})))[0] == \
        ":chatlab 353 alice = #lobby :alice"


def test_operator_commands_become_core_messages_and_their_notices_lines():
    codec = registered()
    codec.feed(b"KICK #lobby bob,carol :out\r\nINVITE bob #team\r\nTOPIC #team :new plans\r\nTOPIC #team :\r\n"
               b"MODE #team +ov-k bob carol\r\nMODE alice +i\r\nAWAY :lunch\r\nAWAY\r\nOPER op pw\r\nWALLOPS :hi\r\n")
    assert messages(events(codec)) == [
        p.Kick("lobby", "bob", "out"), p.Kick("lobby", "carol", "out"), p.Invite("bob", "team"),
        p.Topic("team", "new plans", change=True), p.Topic("team", "", change=True),
        p.Mode("team", "+ov-k", ["bob", "carol"]), p.Mode("alice", "+i"), p.Away("lunch"), p.Away(""),
        p.Oper("op", "pw"), p.Wallops("hi")]
    notices = [
        (p.Notice("kick", "", "bob", "team", target="alice", detail="spam"), ":bob!bob@chatlab KICK #team alice :spam"),
        (p.Notice("topic", "", "bob", "team", detail="plans"), ":bob!bob@chatlab TOPIC #team :plans"),
        (p.Notice("mode", "", "bob", "team", detail="+o-v carol dan"), ":bob!bob@chatlab MODE #team +o-v carol dan"),
        (p.Notice("mode", "", "alice", target="alice", detail="+i"), ":alice!alice@chatlab MODE alice +i"),
        (p.Notice("invite", "", "bob", "team", target="alice"), ":bob!bob@chatlab INVITE alice :#team"),
        (p.Notice("invite", "", "alice", "team", target="bob"), ":chatlab 341 alice bob #team"),
        (p.Notice("away", "", "bob", detail="lunch"), ":chatlab 301 alice bob :lunch"),
        (p.Notice("away", "", "alice", detail="lunch"), ":chatlab 306 alice :You have been marked as being away"),
        (p.Notice("away", "", "alice"), ":chatlab 305 alice :You are no longer marked as being away"),
        (p.Notice("wallops", "", "bob", detail="restart"), ":bob!bob@chatlab WALLOPS :restart"),
    ]
    for notice, line in notices:
        assert lines(codec.encode(notice)) == [line]
    assert "team" not in codec.channels.values()  # kicked out of #team


def test_names_of_a_big_room_fit_in_512_byte_lines():
    codec = registered()
    codec.feed(b"NAMES #lobby\r\n")
    events(codec)
    users = {f"user{i:04d}xxxxxxxxxxxx": "" for i in range(500)}
    got = lines(codec.encode(p.WhoReply(channels={"lobby": {"members": users}})))
    assert got[-1].split()[1] == "366"
    listed = [nick for line in got[:-1] for nick in line.split(" :", 1)[1].split()]
    assert sorted(listed) == sorted(users)


# ------------------------------------------------------------------ chat out


def test_a_room_line_from_someone_else_and_our_own_echo_dropped():
    codec = registered()
    assert codec.encode(p.ChatMessage("lobby", "bob", "hello")) == b":bob!bob@chatlab PRIVMSG #lobby :hello\r\n"
    assert codec.encode(p.ChatMessage("lobby", "alice", "my own line")) == b""
    assert codec.encode(p.ChatMessage("lobby", "bob", "waves", action=True)) == \
        b":bob!bob@chatlab PRIVMSG #lobby :\x01ACTION waves\x01\r\n"


def test_whispers_to_us_shown_our_own_confirmation_dropped():
    codec = registered()
    assert codec.encode(p.PrivateMessage("bob", "alice", "psst")) == b":bob!bob@chatlab PRIVMSG alice :psst\r\n"
    assert codec.encode(p.PrivateMessage("alice", "bob", "psst")) == b""
    assert codec.encode(p.PrivateMessage("alice", "alice", "note to self")) != b""


def test_a_newline_in_a_binary_clients_text_cannot_forge_a_second_irc_message():
    codec = registered()
    got = lines(codec.encode(p.ChatMessage("lobby", "mallory", "hi\r\n:chatlab 001 alice :pwned\nPING x\x00")))
    assert got == [":mallory!mallory@chatlab PRIVMSG #lobby :hi",
                   ":mallory!mallory@chatlab PRIVMSG #lobby ::chatlab 001 alice :pwned",
                   ":mallory!mallory@chatlab PRIVMSG #lobby :PING x"]


@pytest.mark.parametrize("action", [False, True])
def test_a_long_line_is_split_to_fit_512_bytes_and_nothing_is_lost(action):
    text = "é" * 700 + "x" * 600  # 2,000 bytes, 2-byte characters on the cut
    got = lines(privmsg_lines("bob", "#lobby", text, action))
    assert len(got) >= 4
    pieces = [line.split(" :", 1)[1] for line in got]
    if action:
        assert all(piece.startswith("\x01ACTION ") and piece.endswith("\x01") for piece in pieces)
        pieces = [piece[len("\x01ACTION ") : -1] for piece in pieces]
    assert "".join(pieces) == text


def test_join_leave_quit_notices_of_others():
    codec = registered()
    assert lines(codec.encode(p.Notice("join", "bob joined lobby", "bob", "lobby"))) == [":bob!bob@chatlab JOIN #lobby"]
    assert lines(codec.encode(p.Notice("leave", "bob left for team", "bob", "lobby"))) == [
        ":bob!bob@chatlab PART #lobby :bob left for team"]
    assert lines(codec.encode(p.Notice("nick", "bob is now known as rob", "bob", target="rob"))) == [
        ":bob!bob@chatlab NICK :rob"]
    assert lines(codec.encode(p.Notice("quit", "bob quit (connection closed)", "bob", "lobby"))) == [
        ":bob!bob@chatlab QUIT :connection closed"]
    assert lines(codec.encode(p.Notice("flood", "slow down"))) == [":chatlab NOTICE alice :slow down"]


def test_errors_that_close_the_connection_are_irc_error_lines():
    codec = IrcCodec()
    assert lines(codec.encode(p.ErrorMessage("hello-timeout", "no registration (NICK and USER) within 60 s"))) == [
        ":chatlab ERROR :Closing link: * (no registration (NICK and USER) within 60 s)"]
    assert lines(registered().encode(p.ErrorMessage("made-up", "something"))) == [
        ":chatlab NOTICE alice :made-up: something"]


def test_file_frames_never_become_lines():
    codec = registered()
    assert codec.accepts_files is False
    assert codec.encode(p.FileChunk(0x8000_0001, 0, b"data")) == b""
    assert b"offered you a file" in codec.encode(p.FileOffer(0x8000_0001, "bob", "f.bin", 3, "00"))


# ------------------------------------------------------------------- hostile


def test_an_endless_line_is_never_buffered_past_the_cap_and_gets_one_417():
    codec = registered()
    got = []
    for _ in range(1000):  # 1 MB without a line end
        codec.feed(b"A" * 1024)
        assert codec.buffered <= MAX_LINE
        got += events(codec)
    codec.feed(b"tail of it\r\nPRIVMSG #lobby :still here\r\n")
    got += events(codec)
    assert [line.split()[1] for line in lines(got)] == ["417"]
    assert messages(got) == [p.Say("still here", room="lobby")]


def test_a_line_of_exactly_512_bytes_is_taken_and_513_refused():
    codec = registered()
    prefix = b"PRIVMSG #lobby :"
    codec.feed(prefix + b"x" * (MAX_LINE - 2 - len(prefix)) + b"\r\n")
    assert messages(events(codec)) == [p.Say("x" * (MAX_LINE - 2 - len(prefix)), room="lobby")]
    codec.feed(prefix + b"x" * (MAX_LINE - 1 - len(prefix)) + b"\r\n")
    assert [line.split()[1] for line in lines(events(codec))] == ["417"]


def test_nul_bytes_and_invalid_utf8_get_a_notice_and_the_next_line_works():
    codec = registered()
    codec.feed(b"PRIVMSG #lobby :a\x00b\r\nPRIVMSG #lobby :caf\xe9\r\nPRIVMSG #lobby :ok\r\n")
    got = events(codec)
    notices = lines(got)
    assert "NUL" in notices[0] and "not valid UTF-8" in notices[1]
    assert messages(got) == [p.Say("ok", room="lobby")]


def test_a_lone_cr_ends_a_line():
    codec = registered()
    codec.feed(b"PRIVMSG #lobby :one\rPRIVMSG #lobby :two\r")
    assert messages(events(codec)) == [p.Say("one", room="lobby"), p.Say("two", room="lobby")]


def test_ten_thousand_pings_one_line_per_call():
    codec = registered()
    codec.feed(b"PING :x\r\n" * 10_000)
    calls = 0
    while (event := codec.next_event()) is not None:
        calls += 1
        assert event == p.Ping(0)
        assert codec.encode(p.Pong(0)) == b":chatlab PONG chatlab :x\r\n"  # the core answers each at once
    assert calls == 10_000


def test_registration_never_finished_asks_the_core_for_nothing():
    codec = IrcCodec()
    codec.feed(b"NICK lurker\r\n" + b"PING :1\r\n" * 3)
    assert messages(events(codec)) == [p.Ping(0)] * 3  # no Hello: the server's hello timeout ends it
    assert codec.nick is None


def test_the_dispatch_table_is_what_help_and_the_docs_advertise():
    assert COMMANDS == set(IrcCodec.HANDLERS) and all(callable(h) for h in IrcCodec.HANDLERS.values())
    advertised = set(re.findall(r"\b[A-Z]{3,}\b", " ".join(HELP[1:]))) - {"NICK", "USER"} | {"NICK", "USER"}
    assert advertised - {"HELP"} <= COMMANDS and COMMANDS - {"CAP", "PASS", "PONG", "HELP"} <= advertised
    docs = (Path(__file__).parents[2] / "docs" / "IRC.md").read_text(encoding="utf-8")
    section = docs.split("## The commands", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"`([A-Z]{3,})\b", section)) == COMMANDS  # docs/IRC.md lists each command, and no other


def test_parse_and_format_lines():
    assert parse_line("@time=x :nick!u@h PRIVMSG #a :hello world") == ("PRIVMSG", ["#a", "hello world"])
    assert parse_line("join  #a   key") == ("JOIN", ["#a", "key"])
    assert parse_line("QUIT") == ("QUIT", [])
    assert parse_line("   ") is None
    assert format_line("chatlab", "NOTICE", "x", text="a\r\nb\x00") == b":chatlab NOTICE x :a  b\r\n"
    assert len(format_line("chatlab", "NOTICE", "x", text="é" * 600)) <= MAX_LINE


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=700) | st.sampled_from([b"\r\n", b"\n", b"\r", b"\x00", b"NICK a\r\n",
                                                           b"USER a 0 * :A\n",
                                                            b"PRIVMSG #lobby :hi\r\n", b"JOIN #x\n", b"\xff\xfe"]),
                max_size=12), st.booleans())
def test_fuzz_any_bytes_bounded_buffer_typed_events_and_valid_lines(chunks, register):
    codec = registered() if register else IrcCodec()
    for chunk in chunks:
        codec.feed(chunk)
        try:
            got = events(codec)
        except RemoteProtocolError:  # a TLS handshake or an HTTP request line: the connection ends, by design
            return
        assert codec.buffered <= MAX_LINE - 2  # lines handled: at most the start of one is left
        for event in got:
            if isinstance(event, bytes):
                lines(event)  # whole lines of at most 512 bytes
            else:
                assert type(event) in (p.Hello, p.Say, p.Whisper, p.Join, p.Leave, p.Who, p.Ping, p.Pong, p.Quit,
                                       p.Nick, p.Kick, p.Topic, p.Mode, p.Invite, p.Away, p.Oper, p.Wallops)
                p.encode(event)  # the core could relay it


@pytest.mark.parametrize("first, binary", [
    (b"\xc4\x01", True),  # chatlab frames, version 1
    (b"\xc4\x02", True),  # chatlab frames of another version: answered in frames that it is not supported
    ("\u0109iao".encode("utf-8"), False),  # UTF-8 text may start with 0xC4 (then a byte 0x80-0xBF)
    ("\u54ea".encode("gbk"), False),  # so may GBK (0xC4 then 0x40-0xFE)
    (b"NICK", False),
    (b"\x16\x03", False),  # a TLS handshake: the text codec says it does not speak TLS
])
def test_the_first_two_bytes_choose_frames_or_irc(first, binary):
    codec = codecs.sniff(first)
    assert isinstance(codec, codecs.BinaryCodec if binary else IrcCodec)
