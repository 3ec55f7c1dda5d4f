"""The binary client's API for many rooms at once, nick changes and room operators, over loopback."""

from __future__ import annotations

import pytest

import chatlab
from chatlab.core import protocol as p
from chatlab.errors import ServerError


def notices(client: chatlab.Client, kind: str) -> list[p.Notice]:
    return [e for e in client.drain() if isinstance(e, p.Notice) and e.kind == kind]


def test_join_without_leaving_leave_a_named_room_and_say_in_one(server):
    with chatlab.Client.connect(server.address, "alice") as alice, chatlab.Client.connect(server.address, "bob") as bob:
        alice.join("team", stay=True)
        alice.join("ops", stay=True)
        assert alice.rooms == ["lobby", "team", "ops"] and alice.room == "ops"
        bob.join("team", stay=True)
        bob.drain()
        alice.say("in team", room="team")
        line = bob.wait_for(p.ChatMessage)
        assert (line.room, line.text) == ("team", "in team")
        alice.leave("team", "later")
        left = bob.wait_for(p.Notice, predicate=lambda e: e.kind == "leave")
        assert (left.nick, left.room, left.detail) == ("alice", "team", "later")
        assert alice.rooms == ["lobby", "ops"]
        with pytest.raises(ServerError, match="not-in-room"):
            alice.leave("team")
        alice.join("elsewhere")  # a plain join still moves: ops is left
        assert alice.rooms == ["lobby", "elsewhere"]
        assert sorted(server.room.room_names[k] for k in server.room.find("alice").rooms) == ["elsewhere", "lobby"]
        alice.leave()  # version 1's leave: back to the lobby, which she never left
        assert alice.rooms == ["lobby"] and alice.room == "lobby"


def test_nick_change_is_seen_by_everyone_who_shares_a_room(server):
    with chatlab.Client.connect(server.address, "alice") as alice, chatlab.Client.connect(server.address, "bob") as bob:
        with pytest.raises(ServerError, match="nick-taken"):
            alice.nick_change("BOB")
        alice.nick("alicia")  # client.nick is the name, a str, and calling it renames (nick_change)
        assert alice.nick == "alicia" and isinstance(alice.nick, str) and f"{alice.nick}!" == "alicia!"
        seen = bob.wait_for(p.Notice, predicate=lambda e: e.kind == "nick")
        assert (seen.nick, seen.target) == ("alice", "alicia")
        assert "alicia" in bob.who().users


def test_the_creator_is_the_operator_kick_topic_mode_invite(server):
    with chatlab.Client.connect(server.address, "alice") as alice, chatlab.Client.connect(server.address, "bob") as bob:
        alice.join("team", stay=True)
        bob.join("team", stay=True)
        with pytest.raises(ServerError, match="not-operator"):
            bob.topic("team", "mine now")  # +t: operators only
        with pytest.raises(ServerError, match="not-operator"):
            bob.kick("team", "alice")
        alice.topic("team", "plans for friday")
        assert bob.topic("team") == "plans for friday"
        assert alice.mode("team") == "+nt"
        assert alice.mode("team", "+mi") == "+mi" and alice.mode("team") == "+imnt"
        bob.drain()
        alice.kick("team", "bob", "meeting over")
        kicked = bob.wait_for(p.Notice, predicate=lambda e: e.kind == "kick")
        assert (kicked.nick, kicked.target, kicked.detail) == ("alice", "bob", "meeting over")
        assert bob.rooms == ["lobby"]
        with pytest.raises(ServerError, match="invite-only"):
            bob.join("team", stay=True)
        alice.invite("bob", "team")
        bob.join("team", stay=True)
        assert "team" in bob.rooms
        who = alice.who(room="team")
        assert who.channels["team"]["members"] == {"alice": "@", "bob": ""}
        bob.away("lunch")
        alice.whisper("bob", "psst")
        away = alice.wait_for(p.Notice, predicate=lambda e: e.kind == "away")
        assert (away.nick, away.detail) == ("bob", "lunch")


def test_the_servers_oper_option_is_parsed_and_refused_when_malformed(capsys):
    from chatlab.cli import build_parser, server_options

    args = build_parser().parse_args(["server", "--port", "0", "--oper", "admin=s3cret", "--oper", "ta=pw=x"])
    assert server_options(args)["opers"] == {"admin": "s3cret", "ta": "pw=x"}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["server", "--oper", "no-password"])
    assert "NAME=PASSWORD" in capsys.readouterr().err
