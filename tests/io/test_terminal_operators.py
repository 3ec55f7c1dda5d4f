"""The terminal client's identity and room-operator commands: /nick, /topic, /kick, /mode, /invite.

First their parsing and the lines they print, without a network; then each one
end to end: two :class:`TerminalSession` s on real clients of a real
``chatlab.Server(port=0)``, showing what the other person sees.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import chatlab
from chatlab import i18n
from chatlab.core import protocol as p
from chatlab.terminal import Command, TerminalSession, format_event, parse_command, run_terminal_client
from chatlab.terminal_text import format_room_info, help_lines

TIMEOUT = 10.0  # seconds for any one expected line

MODE_USAGE = "usage: /mode [ROOM] [+|-FLAGS [ARGS]]: flags are + or - then letters"


# ------------------------------------------------------------ parse_command


@pytest.mark.parametrize(
    "line, expected",
    [
        ("/nick robert", Command("nick", ("robert",))),
        ("/NICK robert ", Command("nick", ("robert",))),
        ("/topic", Command("topic")),
        ("/topic plans  for friday", Command("topic", ("plans  for friday",))),
        ("/topic --clear", Command("topic", ("",))),
        ("/kick bob", Command("kick", ("bob",))),
        ("/kick bob stop  the spam", Command("kick", ("bob", "stop  the spam"))),
        ("/mode", Command("mode")),
        ("/mode +m", Command("mode", ("+m",))),
        ("/mode -t", Command("mode", ("-t",))),
        ("/mode +o bob", Command("mode", ("+o", "bob"))),
        ("/mode +ov bob carol", Command("mode", ("+ov", "bob", "carol"))),
        ("/mode +k s3cret", Command("mode", ("+k", "s3cret"))),
        ("/mode +l 10", Command("mode", ("+l", "10"))),
        ("/mode -k", Command("mode", ("-k",))),
        ("/mode +b", Command("mode", ("+b",))),
        ("/mode +b bob*", Command("mode", ("+b", "bob*"))),
        ("/mode team", Command("mode", ("team",))),
        ("/mode team -t", Command("mode", ("team", "-t"))),
        ("/mode alice +i", Command("mode", ("alice", "+i"))),
        ("/invite bob", Command("invite", ("bob",))),
        ("/invite bob team", Command("invite", ("bob", "team"))),
    ],
)
def test_parse_operator_commands(line: str, expected: Command) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    "line, usage",
    [
        ("/nick", "/nick NEW"),
        ("/nick bob robert", "/nick NEW"),
        ("/kick", "/kick NICK [REASON]"),
        ("/invite", "/invite NICK [ROOM]"),
        ("/invite bob team extra", "/invite NICK [ROOM]"),
    ],
)
def test_operator_commands_with_wrong_arguments_give_usage(line: str, usage: str) -> None:
    command = parse_command(line)
    assert command == Command("invalid", error=f"usage: {usage}")


@pytest.mark.parametrize("line", ["/mode team x", "/mode +", "/mode -", "/mode team +", "/mode +é", "/mode +o1 bob",
                                  "/mode team bob +o"])
def test_mode_with_bad_flags_says_what_flags_look_like(line: str) -> None:
    command = parse_command(line)
    assert command.name == "invalid"
    assert command.error.startswith(MODE_USAGE)
    assert "o v b k l i m n s t" in command.error and "/mode +o NICK" in command.error


@pytest.mark.parametrize("line", ["/mode +o", "/mode +ov bob", "/mode -v", "/mode +k", "/mode +l", "/mode +mk"])
def test_mode_without_the_arguments_its_flags_need_says_so(line: str) -> None:
    """Else the server would drop the letter and nothing would be printed."""
    command = parse_command(line)
    assert command.name == "invalid"
    assert command.error.startswith(f"usage: /mode [ROOM] [+|-FLAGS [ARGS]]: {line.split()[1]} needs an argument")


def test_help_lists_the_new_commands() -> None:
    text = "\n".join(help_lines())
    for usage in ("/nick NEW", "/topic [TEXT]", "/kick NICK [REASON]", "/mode [ROOM] [+|-FLAGS [ARGS]]",
                  "/invite NICK [ROOM]"):
        assert usage in text


# ------------------------------------------------------------ what is printed


def test_a_notice_about_me_is_said_to_me() -> None:
    renamed = p.Notice("nick", "bob is now known as robert", "bob", target="robert")
    assert format_event(renamed, "robert") == "-- you are now known as robert"
    assert format_event(renamed, "alice") == "-- bob is now known as robert"
    kicked = p.Notice("kick", "alice kicked bob out of team (spam)", "alice", "team", target="bob", detail="spam")
    assert format_event(kicked, "bob") == "-- alice kicked you out of team (spam); /join ROOM to go on chatting"
    assert format_event(kicked, "carol") == "-- alice kicked bob out of team (spam)"


def test_room_info_shows_the_topic_or_the_modes() -> None:
    reply = p.WhoReply(channels={"team": {"topic": "friday", "topic_by": "alice", "modes": "+nt"}})
    assert format_room_info(reply, "topic") == "-- topic of team: friday (set by alice)"
    assert format_room_info(reply, "modes") == "-- modes of team: +nt"
    assert format_event(reply, "bob") == "-- topic of team: friday (set by alice); modes of team: +nt"
    assert format_room_info(p.WhoReply(channels={"team": {"topic": "", "modes": "+nt"}}), "topic") == \
        "-- team has no topic"
    mine = p.WhoReply(people={"alice": {"modes": "+iw"}})
    assert format_room_info(mine, "modes") == "-- modes of alice: +iw"
    assert format_room_info(p.WhoReply(users={"alice": "lobby"}, rooms={"lobby": 1})) is None  # a /who list


def test_refusals_are_said_in_words_with_the_servers_text() -> None:
    refused = p.ErrorMessage("not-operator", "only team's operators may kick", "team")
    assert format_event(refused, "bob") == "!! not an operator: only team's operators may kick"


# ------------------------------------------------------------ end to end


def _wait_for_line(lines: list[str], start: str, timeout: float = TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(lines):
            if line.startswith(start):
                return line
        time.sleep(0.01)
    raise AssertionError(f"no line starting with {start!r} in {lines}")


@contextmanager
def _two_sessions(**server_options: Any) -> Iterator[tuple[TerminalSession, list[str], TerminalSession, list[str]]]:
    """alice and bob, each in a terminal session on one server; alice created room ``team`` and bob is in it."""
    with chatlab.Server(port=0, **server_options) as server, \
         chatlab.Client.connect(server.address, nick="alice") as alice, \
         chatlab.Client.connect(server.address, nick="bob") as bob:  # fmt: skip
        alice_lines: list[str] = []
        bob_lines: list[str] = []
        alice_session, bob_session = TerminalSession(alice, alice_lines.append), TerminalSession(bob, bob_lines.append)
        alice_session.start()
        bob_session.start()
        try:
            alice_session.handle_line("/join team")  # alice creates it: she is its operator
            alice_session.flush_replies()  # (the answers to all she sent are in: she is in team)
            bob_session.handle_line("/join team")
            bob_session.flush_replies()
            assert (alice.room, bob.room) == ("team", "team")
            yield alice_session, alice_lines, bob_session, bob_lines
        finally:
            alice_session.quit(flush=False)
            bob_session.quit(flush=False)


def test_nick_change_is_seen_by_the_other_and_a_taken_nick_is_refused() -> None:
    with _two_sessions() as (alice, alice_lines, bob, bob_lines):
        bob.handle_line("/nick alice")
        assert "alice" in _wait_for_line(bob_lines, "!! nickname taken: ")
        bob.handle_line("/nick robert")
        _wait_for_line(alice_lines, "-- bob is now known as robert")
        _wait_for_line(bob_lines, "-- you are now known as robert")
        assert bob.client.nick == "robert"
        bob.handle_line("still me")
        _wait_for_line(alice_lines, "[team] <robert> still me")


def test_topic_is_set_seen_and_shown() -> None:
    with _two_sessions() as (alice, alice_lines, bob, bob_lines):
        bob.handle_line("/topic")
        _wait_for_line(bob_lines, "-- team has no topic")
        bob.handle_line("/topic mine now")  # a new room is +t: operators only
        assert "only team's operators set its topic" in _wait_for_line(bob_lines, "!! not an operator: ")
        alice.handle_line("/topic plans for friday")
        _wait_for_line(bob_lines, "-- alice set the topic of team: plans for friday")
        bob.handle_line("/topic")
        _wait_for_line(bob_lines, "-- topic of team: plans for friday (set by alice)")
        alice.handle_line("/topic --clear")
        _wait_for_line(bob_lines, "-- alice cleared the topic of team")


def test_kick_removes_the_member_and_only_an_operator_may() -> None:
    with _two_sessions() as (alice, alice_lines, bob, bob_lines):
        bob.handle_line("/kick alice")
        assert "only team's operators may kick" in _wait_for_line(bob_lines, "!! not an operator: ")
        alice.handle_line("/kick nobody")
        assert "nobody is not in team" in _wait_for_line(alice_lines, "!! not in the room: ")
        alice.handle_line("/kick bob stop the spam")
        _wait_for_line(alice_lines, "-- alice kicked bob out of team (stop the spam)")
        _wait_for_line(bob_lines, "-- alice kicked you out of team (stop the spam); /join ROOM")
        deadline = time.monotonic() + TIMEOUT
        while "team" in bob.client.rooms and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "team" not in bob.client.rooms
        bob.handle_line("/topic")  # in no room now: said at once, nothing sent
        assert bob_lines[-1] == "!! you are in no room: /join ROOM first"


def test_mode_changes_are_seen_shown_and_refused_to_non_operators() -> None:
    with _two_sessions() as (alice, alice_lines, bob, bob_lines):
        bob.handle_line("/mode")
        _wait_for_line(bob_lines, "-- modes of team: +nt")
        bob.handle_line("/mode +m")
        assert "only team's operators change its modes" in _wait_for_line(bob_lines, "!! not an operator: ")
        alice.handle_line("/mode +m")
        _wait_for_line(bob_lines, "-- alice sets mode +m on team")
        bob.handle_line("muted?")  # moderated: bob has no voice
        assert "team is moderated" in _wait_for_line(bob_lines, "!! cannot speak there: ")
        alice.handle_line("/mode +v bob")
        _wait_for_line(bob_lines, "-- alice sets mode +v bob on team")
        bob.handle_line("now I may")
        _wait_for_line(alice_lines, "[team] <bob> now I may")
        bob.handle_line("/mode team")
        _wait_for_line(bob_lines, "-- modes of team: +mnt")
        alice.handle_line("/mode +q")
        assert "'q' is not a room mode here" in _wait_for_line(alice_lines, "!! unknown mode: ")
        alice.handle_line("/mode +b")
        _wait_for_line(alice_lines, "-- nobody is banned from team")
        alice.handle_line("/mode +b carol")
        _wait_for_line(bob_lines, "-- alice sets mode +b carol!*@* on team")
        alice.handle_line("/mode +b")
        _wait_for_line(alice_lines, "-- banned from team: carol!*@*")
        bob.handle_line("/mode bob +i")  # his own modes
        _wait_for_line(bob_lines, "-- your modes: +i")
        bob.handle_line("/mode bob")
        _wait_for_line(bob_lines, "-- modes of bob: +i")


def test_invite_lets_the_invited_into_an_invite_only_room() -> None:
    with _two_sessions() as (alice, alice_lines, bob, bob_lines):
        alice.handle_line("/mode +i")
        _wait_for_line(bob_lines, "-- alice sets mode +i on team")
        bob.handle_line("/leave")
        _wait_for_line(alice_lines, "-- bob left for lobby")
        bob.handle_line("/join team")
        assert "ask a member for an invitation" in _wait_for_line(bob_lines, "!! invite only: team is invite only")
        assert bob.client.room == "lobby"
        alice.handle_line("/invite nobody")
        _wait_for_line(alice_lines, "!! nobody by that name: ")
        alice.handle_line("/invite bob")
        _wait_for_line(bob_lines, "-- alice invites bob into team")
        bob.handle_line("/join team")
        _wait_for_line(alice_lines, "-- bob joined team")


def test_topic_and_mode_answers_are_printed_before_quitting_at_eof() -> None:
    """The whole client, typed input to printed lines: the answers come before the end of input ends it."""
    with chatlab.Server(port=0) as server:
        out = io.StringIO()
        typed = "/join team\n/topic hello there\n/topic\n/mode +t\n/mode\n/mode lobby\n/nick robert\n"
        code = run_terminal_client(server.address, "alice", input=io.StringIO(typed), output=out)
    lines = out.getvalue().splitlines()
    assert code == 0
    assert "-- alice set the topic of team: hello there" in lines
    assert "-- topic of team: hello there (set by alice)" in lines
    assert "-- modes of team: +nt" in lines  # +t was set already: nothing changed, nothing said
    assert "-- modes of lobby: +n" in lines
    assert "-- you are now known as robert" in lines


# ------------------------------------------------------------ in Chinese

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def zh() -> Iterator[None]:
    i18n.set_language("zh")
    yield
    i18n.set_language(None)


def test_the_refusals_and_answers_are_chinese_under_zh(zh: None) -> None:
    """Every refusal these commands meet on a real server: its title and the server's text both in Chinese."""
    with _two_sessions() as (alice, alice_lines, bob, bob_lines):
        for line in ("/kick alice", "/topic mine", "/mode +m", "/nick alice"):
            bob.handle_line(line)
        for line in ("/kick nobody", "/mode +q", "/mode nosuch", "/mode bob +i", "/mode +m", "/topic friday", "/topic",
                     "/mode"):
            alice.handle_line(line)
        _wait_for_line(bob_lines, "-- alice 把 team 的模式设为 +m")
        bob.handle_line("muted?")
        alice.handle_line("/mode +i")
        _wait_for_line(bob_lines, "-- alice 把 team 的模式设为 +i")
        bob.handle_line("/leave")
        bob.handle_line("/join team")
        alice.flush_replies()
        bob.flush_replies()
        assert "-- team 的话题：friday（由 alice 设置）" in alice_lines
        assert "-- team 的模式：+mnt" in alice_lines
    refusals = [line for line in alice_lines + bob_lines if line.startswith("!! ")]
    assert len(refusals) == 10, refusals
    for line in refusals:
        title, _colon, text = line[3:].partition(": ")
        assert CJK.search(title) and CJK.search(text), f"not all Chinese: {line!r}"
