"""What the server (or a failed connect) says, shown in the reader's language: notices and errors from their codes.

The wire stays English (docs/TRANSLATING.md says why: one server serves every
client, and ASCII reaches any console).  What a client shows its user is its
own business, so the terminal client and the demo render each NOTICE by its
``kind`` and each ERROR by its ``code`` in the current language, reading the
few values they carry (a nick, a room, a number) out of the English text.

The rules are a table, not an if-chain: for each (kind or code) the English
sentence the server writes, as a pattern with named fields, and the msgid that
says it in the reader's language with the same fields.  A text no rule matches
(a server of another version, a protocol error's detail) is shown as the
server wrote it: never lost, at worst English.
"""

from __future__ import annotations

import re
from typing import Any

from .i18n import N_, _

__all__ = [
    "ERROR_RULES", "NOTICE_RULES", "connect_failure", "shown_address", "shown_error", "shown_motd", "shown_notice",
]

Rule = tuple[str, "re.Pattern[str]", str]


def _rule(key: str, pattern: str, message: str) -> Rule:
    return key, re.compile(pattern + r"\Z", re.DOTALL), message


NOTICE_RULES: list[Rule] = [
    _rule("join", r"(?P<nick>.+?) joined (?P<room>.+)", N_("{nick} joined {room}")),
    _rule("leave", r"(?P<nick>.+?) left for (?P<room>.+)", N_("{nick} left for {room}")),
    _rule("quit", r"(?P<nick>.+?) quit \((?P<reason>.*)\)", N_("{nick} quit ({reason})")),
    _rule("quit", r"(?P<nick>.+?) quit", N_("{nick} quit")),
    _rule("flood",
          r"you are sending faster than (?P<rate>\S+) messages/s: the server reads you more slowly; nothing is lost",
          N_("you are sending faster than {rate} messages/s: the server reads you more slowly; nothing is lost")),
    _rule("info", r"(?P<room>.+) has no password: yours was ignored \(only a room's creator sets one\)",
          N_("{room} has no password: yours was ignored (only a room's creator sets one)")),
    _rule("info", r"the server is shutting down", N_("the server is shutting down")),
    _rule("nick", r"(?P<old>.+?) is now known as (?P<nick>.+)", N_("{old} is now known as {nick}")),
    _rule("away", r"you are away: (?P<text>.*)", N_("you are away: {text}")),
    _rule("away", r"you are back", N_("you are back")),
    _rule("away", r"(?P<nick>.+?) is away: (?P<text>.*)", N_("{nick} is away: {text}")),
    _rule("oper", r"you are now a server operator", N_("you are now a server operator")),
    _rule("kick", r"(?P<nick>.+?) kicked (?P<target>.+?) out of (?P<room>.+?) \((?P<reason>.*)\)",
          N_("{nick} kicked {target} out of {room} ({reason})")),
    _rule("topic", r"(?P<nick>.+?) set the topic of (?P<room>.+?): (?P<topic>.*)",
          N_("{nick} set the topic of {room}: {topic}")),
    _rule("topic", r"(?P<nick>.+?) cleared the topic of (?P<room>.+)", N_("{nick} cleared the topic of {room}")),
    _rule("invite", r"(?P<nick>.+?) invites (?P<target>.+?) into (?P<room>.+)",
          N_("{nick} invites {target} into {room}")),
    _rule("mode", r"(?P<nick>.+?) sets mode (?P<detail>.+?) on (?P<room>.+)",
          N_("{nick} sets mode {detail} on {room}")),
    _rule("mode", r"your modes: (?P<detail>.*)", N_("your modes: {detail}")),
]

ERROR_RULES: list[Rule] = [
    _rule("no-such-nick", r"nobody called (?P<nick>.+) is online", N_("nobody called {nick} is online")),
    _rule("nick-taken", r"the nickname (?P<nick>.+) is already in use", N_("the nickname {nick} is already in use")),
    _rule("nick-reserved", r"the nickname (?P<nick>.+) is reserved", N_("the nickname {nick} is reserved")),
    _rule("bad-nick", r"(?P<nick>.+) is not a valid nickname: 1-20 letters, digits, '_' or '-', starting with a letter",
          N_("{nick} is not a valid nickname: 1-20 letters, digits, '_' or '-', starting with a letter")),
    _rule("already-registered", r"you are already (?P<nick>.+)", N_("you are already {nick}")),
    _rule("bad-room", r"(?P<room>.+) is not a valid room name: 1-32 letters, digits, '_' or '-'",
          N_("{room} is not a valid room name: 1-32 letters, digits, '_' or '-'")),
    _rule("bad-room", r"(?P<room>.+) is not a valid room name: spaces are not allowed in (?P<rest>.+)",
          N_("{room} is not a valid room name: spaces are not allowed in {rest}")),
    _rule("already-in-room", r"you are already in (?P<room>.+)", N_("you are already in {room}")),
    _rule("too-many-rooms", r"the server already has (?P<n>\d+) rooms", N_("the server already has {n} rooms")),
    _rule("bad-password", r"room (?P<room>.+) needs the right password", N_("room {room} needs the right password")),
    _rule("empty-message", r"an empty message was not sent", N_("an empty message was not sent")),
    _rule("message-too-long", r"messages are limited to (?P<limit>\d+) characters; yours had (?P<length>\d+)",
          N_("messages are limited to {limit} characters; yours had {length}")),
    _rule("hello-timeout", r"no HELLO within (?P<seconds>\S+) s", N_("no HELLO within {seconds} s")),
    _rule("server-full", r"the server already has (?P<n>\d+) clients", N_("the server already has {n} clients")),
    _rule("no-such-transfer", r"you have no transfer with stream id (?P<sid>\S+)",
          N_("you have no transfer with stream id {sid}")),
    # The refusals of the operator commands (/kick, /topic, /mode, /invite): chatlab/core/operators.py.
    _rule("not-operator", r"only (?P<room>.+)'s operators may kick", N_("only {room}'s operators may kick")),
    _rule("not-operator", r"only (?P<room>.+)'s operators set its topic \(mode \+t\)",
          N_("only {room}'s operators set its topic (mode +t)")),
    _rule("not-operator", r"only (?P<room>.+)'s operators change its modes",
          N_("only {room}'s operators change its modes")),
    _rule("not-operator", r"(?P<room>.+) is invite only: only its operators invite",
          N_("{room} is invite only: only its operators invite")),
    _rule("no-such-room", r"there is no room (?P<room>.+)", N_("there is no room {room}")),
    _rule("not-in-room", r"you are in no room: join one first", N_("you are in no room: join one first")),
    _rule("not-in-room", r"you are not in (?P<room>.+)", N_("you are not in {room}")),
    _rule("user-not-in-room", r"(?P<nick>.+?) is not in (?P<room>.+)", N_("{nick} is not in {room}")),
    _rule("already-in-room", r"(?P<nick>.+?) is already in (?P<room>.+)", N_("{nick} is already in {room}")),
    _rule("unknown-mode", r"(?P<letter>.+) is not a room mode here \((?P<modes>.*)\)",
          N_("{letter} is not a room mode here ({modes})")),
    _rule("unknown-user-mode", r"(?P<letter>.+) is not a user mode here \((?P<modes>.*)\)",
          N_("{letter} is not a user mode here ({modes})")),
    _rule("users-dont-match", r"you may not change another user's modes",
          N_("you may not change another user's modes")),
    # What a room's modes refuse (+b, +m, +n, +i, +l): chatlab/core/chatroom.py.
    _rule("banned", r"you are banned from (?P<room>.+)", N_("you are banned from {room}")),
    _rule("cannot-send", r"you are banned from (?P<room>.+)", N_("you are banned from {room}")),
    _rule("cannot-send", r"(?P<room>.+) is moderated: only operators and voiced members speak",
          N_("{room} is moderated: only operators and voiced members speak")),
    _rule("cannot-send", r"you are not in (?P<room>.+) \(it takes no messages from outside\)",
          N_("you are not in {room} (it takes no messages from outside)")),
    _rule("invite-only", r"(?P<room>.+) is invite only: ask a member for an invitation",
          N_("{room} is invite only: ask a member for an invitation")),
    _rule("room-full", r"(?P<room>.+) is full \((?P<limit>\d+) members\)", N_("{room} is full ({limit} members)")),
    _rule("protocol-error", r"(?P<what>.+) payload is not valid UTF-8 \((?P<detail>.+)\)",
          N_("{what} payload is not valid UTF-8 ({detail}): send UTF-8 (a Windows console: chcp 65001)")),
]

MOTD = "Welcome to chatlab. Type /help for commands."  # the server's default greeting (chatroom.Settings.motd)


def _render(rules: list[Rule], key: str, text: str) -> str:
    for rule_key, pattern, message in rules:
        if rule_key != key:
            continue
        found = pattern.match(text)
        if found:
            return _(message).format(**found.groupdict())
    return text


def shown_notice(notice: Any) -> str:
    """A NOTICE's text in the current language (its ``kind`` says which sentence it is)."""
    return _render(NOTICE_RULES, notice.kind, notice.text)


def shown_error(error: Any) -> str:
    """An ERROR's text in the current language (its ``code`` says which sentence it is)."""
    return _render(ERROR_RULES, error.code, error.text)


def shown_motd(motd: str) -> str:
    """The server's greeting: the default one translated, a teacher's own shown as written."""
    return _("Welcome to chatlab. Type /help for commands.") if motd == MOTD else motd


def shown_address(address: Any) -> str:
    """``("127.0.0.1", 7777)`` -> ``127.0.0.1:7777``; a ``"host:port"`` string as it is."""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


def connect_failure(address: Any, exc: BaseException) -> str:
    """Why connecting failed, in the current language: the OS's own words for the cause, and a hint when refused.

    ``could not connect to 127.0.0.1:7777: Connection refused; is a chatlab server running there? ...``
    """
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
    if isinstance(cause, TimeoutError) and not cause.strerror:
        reason = _("timed out")
    elif isinstance(cause, OSError) and cause.strerror:
        reason = cause.strerror
    else:
        reason = str(cause)
    if isinstance(cause, ConnectionRefusedError):
        return _("could not connect to {address}: {error}; is a chatlab server running there?"
                 " (start one with: python -m chatlab server)").format(address=shown_address(address), error=reason)
    return _("could not connect to {address}: {error}").format(address=shown_address(address), error=reason)
