"""A room's own state, sans-I/O: its operators, voiced members, modes, topic, bans and invitations.

IRC calls these channel modes; chatlab's rooms have the same ones, for both framings
(the binary :class:`~chatlab.core.protocol.Mode` frame and IRC's ``MODE``):

==== ========================= =================================================
mode argument                  meaning
==== ========================= =================================================
o    a nick                    operator (``@`` in NAMES): may kick, set modes, and the topic under +t
v    a nick                    voice (``+``): may speak under +m
k    the key (to set)          a password is needed to join (the creator's password sets it)
l    a number (to set)         at most that many members
i                              invite only: joining needs an INVITE from a member (an operator under +i)
m                              moderated: only operators and voiced members speak
n                              no messages from outside the room
t                              only operators set the topic
s                              secret: not listed by LIST, nor its members by NAMES or WHO, to outsiders
b    a mask (``nick!user@host``, ``*`` and ``?`` as wildcards)   banned: may not join or speak
==== ========================= =================================================

Whoever creates a room is its operator.  The default room is the server's: nobody
is its operator, and its modes are ``+n``.  This module decides nothing about
sessions or messages: :mod:`chatlab.core.chatroom` calls :func:`parse_modes` and
applies the changes.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

# Which letters take an argument, when set (+) and when unset (-).
LIST_MODES = "b"
MEMBER_MODES = "ov"
ARG_ON_SET = "kl"
FLAGS = "imnst"
ROOM_MODES = LIST_MODES + MEMBER_MODES + ARG_ON_SET + FLAGS
USER_MODES = "iwo"  # invisible, wallops, operator (+o only by OPER)
# IRC's 005 CHANMODES: lists, always an argument, an argument when set, never an argument.
CHANMODES = f"{LIST_MODES},k,l,{FLAGS}"
PREFIX = "(ov)@+"
MAX_BANS = 50
MAX_KEY = 23  # bytes, as ngircd


class ModeChange(NamedTuple):
    """One letter of a MODE: ``+o bob`` is ``ModeChange("+", "o", "bob")``."""

    sign: str
    letter: str
    arg: str = ""


class ModeError(ValueError):
    """A mode letter the server does not know (IRC 472 / 501)."""

    def __init__(self, letter: str) -> None:
        super().__init__(letter)
        self.letter = letter


def takes_arg(sign: str, letter: str) -> bool:
    return letter in MEMBER_MODES or letter in LIST_MODES or (letter in ARG_ON_SET and (sign == "+" or letter == "k"))


def parse_modes(modes: str, args: list[str], known: str = ROOM_MODES) -> list[ModeChange]:
    """``"+ov-k", ["bob", "carol", "pw"]`` -> one :class:`ModeChange` per letter.

    A letter that needs an argument and has none is dropped (``+b`` alone asks for the
    ban list: the caller checks that first).  Raises :class:`ModeError` for a letter
    not in ``known``.
    """
    sign, rest, out = "+", list(args), []
    for letter in modes:
        if letter in "+-":
            sign = letter
            continue
        if letter not in known:
            raise ModeError(letter)
        if letter == "k" and sign == "-" and known is ROOM_MODES:  # "-k" may name the key or not
            out.append(ModeChange(sign, letter, rest.pop(0) if rest else ""))
        elif takes_arg(sign, letter) and known is ROOM_MODES:
            if not rest:
                continue
            out.append(ModeChange(sign, letter, rest.pop(0)))
        else:
            out.append(ModeChange(sign, letter))
    return out


def mask_matches(mask: str, who: str) -> bool:
    """Does a ban mask (``*!*@host``, ``bob*``...) match ``nick!user@host``?  Compared casefolded."""
    pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in mask.casefold())
    return re.fullmatch(pattern, who.casefold()) is not None


def normalize_mask(mask: str) -> str:
    """``bob`` -> ``bob!*@*``, ``bob!x`` -> ``bob!x@*``, as IRC servers store them."""
    if "!" not in mask and "@" not in mask:
        return f"{mask}!*@*"
    if "@" not in mask:
        return f"{mask}@*"
    if "!" not in mask:
        return f"*!{mask}"
    return mask


class RoomState:
    """What a room holds besides its members (which :class:`ChatRoom` keeps in ``rooms``)."""

    def __init__(self, name: str, now: float, default: bool = False) -> None:
        self.name = name
        self.created_at = now
        self.ops: set[Any] = set()  # sessions
        self.voiced: set[Any] = set()
        self.flags: set[str] = {"n"} if default else {"n", "t"}
        self.limit = 0  # 0: none
        self.topic = ""
        self.topic_by = ""
        self.topic_at = 0.0
        self.bans: list[tuple[str, str, float]] = []  # (mask, set by, when)
        self.invited: set[str] = set()  # nick keys invited since the room was created

    def prefix(self, session: Any) -> str:
        """``@`` for an operator, ``+`` for a voiced member, else ``""`` (the highest only, as NAMES shows it)."""
        if session in self.ops:
            return "@"
        if session in self.voiced:
            return "+"
        return ""

    def mode_string(self, key: str | None, show_args: bool) -> tuple[str, list[str]]:
        """``("+klnt", ["pw", "5"])``: the room's modes, their arguments shown to members only."""
        letters = sorted(self.flags)
        args: list[str] = []
        if key:
            letters.append("k")
            args.append(key if show_args else "*")
        if self.limit:
            letters.append("l")
            args.append(str(self.limit))
        return "+" + "".join(letters), args

    def banned(self, who: str) -> bool:
        return any(mask_matches(mask, who) for mask, _, _ in self.bans)


__all__ = ["RoomState", "ModeChange", "ModeError", "parse_modes", "mask_matches", "normalize_mask",
           "ROOM_MODES", "USER_MODES", "CHANMODES", "PREFIX", "MAX_BANS", "MAX_KEY"]
