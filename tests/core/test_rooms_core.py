"""Many rooms at once, nick changes and room operators, in the sans-I/O core (no socket).

The same rules serve both framings; the last tests drive them through the IRC codec in
memory, as the server would, so each IRC answer is checked against the core's decision.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_chatroom import T0, Harness, errors

from chatlab.core import protocol as p
from chatlab.core.chatroom import Session
from chatlab.core.irc import IrcCodec


def notices(items: list[Any], kind: str) -> list[p.Notice]:
    return [m for m in items if isinstance(m, p.Notice) and m.kind == kind]


def in_rooms(h: Harness, session: Session) -> list[str]:
    return [h.room.room_names[k] for k in session.rooms]


# ------------------------------------------------------------------ many rooms


def test_join_with_stay_adds_a_room_and_a_plain_join_still_moves():
    h = Harness()
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, p.Join("team", stay=True))
    h.feed(alice, p.Join("ops", stay=True))
    assert in_rooms(h, alice) == ["lobby", "team", "ops"] and alice.room_key == "ops"
    assert notices(h.take(bob), "leave") == []  # bob (in the lobby) saw nobody leave
    h.feed(alice, p.Join("elsewhere"))  # version 1's JOIN: leaves the current room (ops) first
    assert in_rooms(h, alice) == ["lobby", "team", "elsewhere"]
    h.feed(alice, p.Join("team", stay=True))
    assert errors(h.take(alice)) == ["already-in-room"]


def test_a_plain_join_or_leave_back_to_a_room_i_am_in_moves_without_joining_twice():
    h = Harness()
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, p.Join("team", stay=True))  # in lobby and team; team is current
    h.take(alice), h.take(bob)
    h.feed(alice, p.Leave())  # version 1's LEAVE: back to the default room, leaving the current one
    assert in_rooms(h, alice) == ["lobby"] and alice.room_key == "lobby"
    assert h.room.rooms["lobby"].count(alice) == 1
    assert notices(h.take(alice), "join") == [p.Notice("join", "alice joined lobby", "alice", "lobby")]
    assert notices(h.take(bob), "join") == []  # bob saw nobody arrive: alice never left the lobby


def test_say_goes_to_a_named_room_or_the_current_one():
    h = Harness()
    alice, bob, carol = h.join("alice"), h.join("bob"), h.join("carol")
    h.feed(alice, p.Join("team", stay=True))
    h.feed(bob, p.Join("team", stay=True))
    h.take(alice), h.take(bob), h.take(carol)
    h.feed(alice, p.Say("to the lobby", room="LOBBY"))
    assert [m.room for m in h.take(carol, p.ChatMessage)] == ["lobby"]
    h.feed(alice, p.Say("to team"))  # the current room: the one joined last
    assert [m.room for m in h.take(bob, p.ChatMessage)] == ["lobby", "team"] and h.take(carol) == []
    h.feed(carol, p.Say("from outside", room="team"))  # +n: members only
    assert errors(h.take(carol)) == ["cannot-send"] and h.take(bob) == []
    h.feed(carol, p.Say("nowhere", room="nope"))
    assert h.take(carol)[0] == p.ErrorMessage("no-such-room", "there is no room 'nope'", "nope")


def test_leave_a_named_room_tells_its_members_and_the_leaver():
    h = Harness()
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, p.Join("team", stay=True))
    h.feed(bob, p.Join("team", stay=True))
    h.take(alice), h.take(bob)
    h.feed(alice, p.Leave("team", "lunch"))
    left = p.Notice("leave", "alice left team (lunch)", "alice", "team", detail="lunch")
    assert h.take(alice) == [left] and h.take(bob) == [left]
    assert in_rooms(h, alice) == ["lobby"] and alice.room_key == "lobby"
    h.feed(alice, p.Leave("team"))
    h.feed(alice, p.Leave("nope"))
    assert errors(h.take(alice)) == ["not-in-room", "no-such-room"]


def test_a_quit_is_told_once_to_everyone_who_shared_a_room():
    h = Harness()
    alice, bob, carol = h.join("alice"), h.join("bob"), h.join("carol")
    for s in (alice, bob):
        h.feed(s, p.Join("team", stay=True))
    h.take(alice), h.take(bob), h.take(carol)
    h.feed(alice, p.Quit("bye"))
    assert len(notices(h.take(bob), "quit")) == 1 and len(notices(h.take(carol), "quit")) == 1
    assert "team" in h.room.rooms and h.room.rooms["team"] == [bob]


# ------------------------------------------------------------------ nick changes


def test_a_nick_change_is_seen_by_everyone_who_shares_a_room_once_and_by_nobody_else():
    h = Harness()
    alice, bob, carol = h.join("alice"), h.join("bob"), h.join("carol")
    h.feed(carol, p.Join("away-room"))  # carol shares no room with alice now
    h.feed(alice, p.Join("team", stay=True))
    h.feed(bob, p.Join("team", stay=True))
    h.take(alice), h.take(bob), h.take(carol)
    h.feed(alice, p.Nick("Alicia"))
    renamed = p.Notice("nick", "alice is now known as Alicia", "alice", target="Alicia")
    assert h.take(alice) == [renamed] and h.take(bob) == [renamed] and h.take(carol) == []
    assert h.room.find("alicia") is alice and h.room.find("alice") is None
    h.feed(alice, p.Nick("ALICIA"))  # a change of case only is allowed
    assert notices(h.take(alice), "nick")[0].target == "ALICIA"
    for taken in ("BOB", "ｂｏｂ", "admin", "9x"):
        h.feed(alice, p.Nick(taken))
    assert errors(h.take(alice)) == ["nick-taken", "nick-taken", "nick-reserved", "bad-nick"]
    h.feed(bob, p.Who(was="alice"))
    assert [e["nick"] for e in h.take(bob)[-1].history] == ["alice"]


@pytest.mark.parametrize("nick", ["foo|afk", "[bot]", "nick^", "a`b", "小明"])
def test_irc_and_unicode_nick_grammars_are_both_taken(nick):
    h = Harness()
    session = h.join(nick)
    assert session.nick == nick


# ------------------------------------------------------------------ operators and modes


def test_the_creator_is_the_operator_and_the_default_room_has_none():
    h = Harness()
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, p.Join("team", stay=True))
    h.feed(bob, p.Join("team", stay=True))
    h.feed(bob, p.Who(room="team"))
    reply = h.take(bob)[-1]
    assert reply.channels["team"]["members"] == {"alice": "@", "bob": ""}
    h.feed(bob, p.Who(room="lobby"))
    assert set(h.take(bob)[-1].channels["lobby"]["members"].values()) == {""}
    h.feed(bob, p.Topic("team", "mine", change=True))
    h.feed(bob, p.Kick("team", "alice"))
    h.feed(bob, p.Mode("team", "+m"))
    assert errors(h.take(bob)) == ["not-operator"] * 3


def test_kick_removes_and_tells_everyone_there_the_kicked_included():
    h = Harness()
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, p.Join("team", stay=True))
    h.feed(bob, p.Join("team", stay=True))
    h.take(alice), h.take(bob)
    h.feed(alice, p.Kick("team", "BOB", ""))
    kicked = p.Notice("kick", "alice kicked bob out of team (alice)", "alice", "team", target="bob", detail="alice")
    assert h.take(alice) == [kicked] and h.take(bob) == [kicked]
    assert in_rooms(h, bob) == ["lobby"] and bob.room_key == "lobby"
    h.feed(alice, p.Kick("team", "bob"))
    h.feed(alice, p.Kick("nope", "bob"))
    assert errors(h.take(alice)) == ["user-not-in-room", "no-such-room"]


def test_modes_o_v_m_t_and_the_topic():
    h = Harness()
    alice, bob, carol = h.join("alice"), h.join("bob"), h.join("carol")
    for s in (alice, bob, carol):
        h.feed(s, p.Join("team", stay=True))
    h.take(alice), h.take(bob), h.take(carol)
    h.feed(alice, p.Mode("team", "+mv-t", ["carol"]))
    change = notices(h.take(bob), "mode")
    assert [(n.nick, n.room, n.detail) for n in change] == [("alice", "team", "+mv-t carol")]
    h.feed(bob, p.Say("muted", room="team"))
    assert errors(h.take(bob)) == ["cannot-send"]
    h.feed(carol, p.Say("voiced", room="team"))
    assert [m.text for m in h.take(alice, p.ChatMessage)] == ["voiced"]
    h.feed(bob, p.Topic("team", "anyone may, under -t", change=True))
    assert notices(h.take(alice), "topic")[0].detail == "anyone may, under -t"
    h.feed(alice, p.Mode("team", "+o", ["bob"]))
    h.feed(alice, p.Mode("team"))
    assert h.take(alice)[-1].channels["team"]["modes"] == "+mn"
    assert h.room._state("team").prefix(bob) == "@"
    h.feed(alice, p.Mode("team", "+q"))
    assert h.take(alice)[-1] == p.ErrorMessage("unknown-mode", "'q' is not a room mode here (bovklimnst)", "q")


def test_key_limit_invite_only_and_bans_guard_the_door():
    h = Harness()
    alice, bob, carol = h.join("alice"), h.join("bob"), h.join("carol")
    h.feed(alice, p.Join("team", stay=True))
    h.feed(alice, p.Mode("team", "+kl", ["sesame", "2"]))
    h.feed(bob, p.Join("team", stay=True))
    h.feed(bob, p.Join("team", "sesame", stay=True))
    h.feed(carol, p.Join("team", "sesame", stay=True))
    assert errors(h.take(bob)) == ["bad-password"] and errors(h.take(carol)) == ["room-full"]
    h.feed(alice, p.Mode("team", "-lk+i"))
    h.feed(carol, p.Join("team", stay=True))
    assert errors(h.take(carol)) == ["invite-only"]
    h.feed(bob, p.Invite("carol", "team"))  # under +i, operators invite
    assert errors(h.take(bob)) == ["not-operator"]
    h.feed(alice, p.Invite("carol", "team"))
    assert notices(h.take(carol), "invite")[0].nick == "alice"
    h.feed(carol, p.Join("team", stay=True))
    assert "team" in in_rooms(h, carol)
    h.feed(alice, p.Mode("team", "+b", ["bob"]))
    h.feed(alice, p.Mode("team", "b"))
    assert h.take(alice)[-1].channels["team"]["bans"][0].startswith("bob!*@* alice ")
    h.feed(bob, p.Say("banned", room="team"))
    assert errors(h.take(bob)) == ["cannot-send"]


def test_a_secret_room_is_hidden_from_outsiders_lists():
    h = Harness()
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, p.Join("hidden", stay=True))
    h.feed(alice, p.Mode("hidden", "+s"))
    h.feed(bob, p.Who(full=True))
    reply = h.take(bob)[-1]
    assert "hidden" not in reply.channels and "hidden" not in reply.rooms
    assert reply.people["alice"]["rooms"] == {"lobby": ""}
    h.feed(alice, p.Who(full=True))
    assert "hidden" in h.take(alice)[-1].channels


# ------------------------------------------------------------------ away, notice, oper, user modes


def test_away_answers_whispers_but_never_a_notice():
    h = Harness()
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(bob, p.Away("lunch"))
    assert notices(h.take(bob), "away") == [p.Notice("away", "you are away: lunch", "bob", detail="lunch")]
    h.feed(alice, p.Whisper("bob", "psst"))
    assert notices(h.take(alice), "away")[0].detail == "lunch"
    h.feed(alice, p.Whisper("bob", "psst", notice=True))
    h.feed(alice, p.Whisper("nobody", "psst", notice=True))
    h.feed(alice, p.Say("", notice=True))
    assert [type(m) for m in h.take(alice)] == [p.PrivateMessage]  # no away, no error: NOTICE is never answered


def test_oper_wallops_and_user_modes():
    h = Harness(opers={"root-op": "pw"})
    alice, bob, carol = h.join("alice"), h.join("bob"), h.join("carol")
    h.feed(alice, p.Wallops("hi"))
    h.feed(alice, p.Oper("root-op", "wrong"))
    assert errors(h.take(alice)) == ["not-oper", "bad-oper"]
    h.feed(alice, p.Oper("root-op", "pw"))
    assert notices(h.take(alice), "oper")[0].detail == "+o"
    h.feed(bob, p.Mode("bob", "+wi"))
    h.feed(bob, p.Mode("carol", "+i"))
    assert errors(h.take(bob)) == ["users-dont-match"]
    h.feed(alice, p.Wallops("restart at noon"))
    assert [n.detail for n in notices(h.take(bob), "wallops")] == ["restart at noon"] and h.take(carol) == []
    h.feed(carol, p.Who(nick="carol"))
    assert h.take(carol)[-1].stats == {"users": 3, "invisible": 1, "opers": 1, "unknown": 0, "rooms": 1}


# ------------------------------------------------------------------ registration of text clients


def test_a_text_client_registering_at_once_is_a_program_and_gets_no_forced_room():
    h = Harness()
    program = h.connect(nick_retries=True)
    h.feed(program, p.Hello("bot"))
    assert h.take(program) == [p.Welcome("bot", "", h.room.settings.motd)] and program.rooms == {}
    person = h.connect(nick_retries=True)
    h.now += 5  # typing NICK and USER into nc takes a person seconds
    h.feed(person, p.Hello("zed"))
    assert in_rooms(h, person) == ["lobby"]
    client = h.connect(nick_retries=True)
    h.now += 5
    h.feed(client, p.Hello("irssi", lobby=False))  # it said CAP LS: an IRC client
    assert client.rooms == {}


def test_nick_and_user_in_one_read_is_a_burst_and_gets_no_forced_room():
    codec = IrcCodec()
    codec.feed(b"NICK zed\r\nUSER zed 0 * :Zed\r\n")
    assert [e for e in iter(codec.next_event, None) if not isinstance(e, bytes)] == [
        p.Hello("zed", user="zed", realname="Zed", lobby=False)]
    codec = IrcCodec()
    codec.feed(b"NICK zed\n")
    codec.feed(b"USER zed 0 * :Zed\n")
    assert [e for e in iter(codec.next_event, None) if not isinstance(e, bytes)] == [
        p.Hello("zed", user="zed", realname="Zed")]  # lobby left to the core: typed, or a program's quick lines


def test_a_text_client_has_a_minute_to_register_and_a_binary_one_ten_seconds():
    h = Harness()
    text, binary = h.connect(nick_retries=True), h.connect()
    h.tick(11)
    assert binary in h.closed and text not in h.closed
    h.tick(50)
    assert h.closed[text] == "no registration (NICK and USER) within 60 s"
    assert T0 < h.now


# ------------------------------------------------------------------ IRC through the core, in memory


class Irc:
    """An IRC connection's codec driven against the harness's core, as the server's loop does."""

    def __init__(self, h: Harness, nick: str) -> None:
        self.h, self.codec = h, IrcCodec()
        self.session = h.connect(nick_retries=True, accepts_files=False)
        self.out: list[str] = []
        self.send(f"NICK {nick}")  # two reads, as a person types them (one read with both is a program's burst)
        self.send(f"USER {nick} 0 * :{nick.title()} Real")

    def send(self, *lines: str) -> list[str]:
        start = len(self.out)
        self.codec.feed("".join(line + "\r\n" for line in lines).encode())
        while (event := self.codec.next_event()) is not None:
            if isinstance(event, bytes):
                self.out += event.decode().splitlines()
            else:
                self.h.feed(self.session, event)
                self.collect()
        return self.out[start:]

    def collect(self) -> list[str]:
        start = len(self.out)
        for message in self.h.take(self.session):
            self.out += self.codec.encode(message).decode().splitlines()
        return self.out[start:]


def numerics(lines: list[str]) -> list[str]:
    return [line.split()[1] for line in lines]


def test_irc_clients_through_the_core_join_many_channels_and_see_operators():
    h = Harness(flood_limit=None)  # this harness does not hand a paused message back
    carol, dave = Irc(h, "carol"), Irc(h, "dave")
    assert not [line for line in carol.out if " JOIN " in line]  # registered at once: no forced #lobby
    got = carol.send("JOIN #one,#two")
    assert got[:3] == [":carol!carol@chatlab JOIN #one", ":chatlab 353 carol = #one :@carol",
                       ":chatlab 366 carol #one :End of /NAMES list"]
    dave.send("JOIN #one")
    assert carol.collect() == [":dave!dave@chatlab JOIN #one"]
    assert numerics(dave.send("TOPIC #one :mine")) == ["482"]
    carol.send("TOPIC #one :plans", "MODE #one +v dave")
    assert dave.collect() == [":carol!carol@chatlab TOPIC #one :plans", ":carol!carol@chatlab MODE #one +v dave"]
    assert dave.send("NAMES #one")[0] == ":chatlab 353 dave = #one :@carol +dave"
    assert numerics(dave.send("WHOIS carol")) == ["311", "319", "312", "317", "318"]
    assert dave.out[-4] == ":chatlab 319 dave carol :@#one @#two"
    assert numerics(carol.send("KICK #one,#one dave,nobody :bye")) == ["KICK", "441"]  # TARGMAX: KICK takes several
    assert dave.collect() == [":carol!carol@chatlab KICK #one dave :bye"]
    assert numerics(carol.send("NAMES #one,#two,#nope")) == ["353", "353", "366"]
    assert carol.out[-1] == ":chatlab 366 carol #one,#two,#nope :End of /NAMES list"
    assert numerics(dave.send("PRIVMSG #one :hello?")) == ["404"]
    carol.send("MODE #one +i", "INVITE dave #one")
    assert dave.collect() == [":carol!carol@chatlab INVITE dave :#one"]
    assert dave.send("INVITE") == [":chatlab 336 dave #one", ":chatlab 337 dave :End of /INVITE list"]
    assert numerics(dave.send("NOTICE #one :hello?", "NOTICE nobody :x")) == []


def test_irc_nick_after_registering_433_when_taken_and_seen_by_room_mates():
    h = Harness()
    carol, dave = Irc(h, "carol"), Irc(h, "dave")
    carol.send("JOIN #one")
    dave.send("JOIN #one")
    carol.collect()
    assert dave.send("NICK carol") == [":chatlab 433 dave carol :the nickname 'carol' is already in use"]
    assert dave.send("NICK d[a]ve") == [":dave!dave@chatlab NICK :d[a]ve"]
    assert carol.collect() == [":dave!dave@chatlab NICK :d[a]ve"]
    assert carol.send("WHOWAS dave")[0] == ":chatlab 314 carol dave dave chatlab * :Dave Real"


def test_a_person_put_in_the_lobby_gets_lusers_and_motd_then_the_lobbys_names_each_where_it_belongs():
    h = Harness(typing_time=0.0)  # every text client counts as a person typing
    carol = Irc(h, "carol")
    got = numerics(carol.out) if carol.out else []
    assert got[:5] == ["001", "002", "003", "004", "005"]
    assert "JOIN" in got and got.index("JOIN") < got.index("353") < got.index("366")
    assert got[got.index("251"):got.index("251") + 5] == ["251", "252", "253", "254", "255"]
    assert got.count("353") == 1 and got.count("376") == 1
