"""The messages that came with many rooms at once: a nick change and the rooms' operators (issue 22).

Part of :mod:`chatlab.core.protocol` (which imports them: ``protocol.Nick`` and the
others are these), in a module of their own to keep ``protocol.py`` short.  Their frame
types are ``0x15``-``0x1C``; docs/PROTOCOL.md has the table, and
:mod:`chatlab.core.operators` the rules.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable

from .protocol import FrameType


@dataclass(frozen=True)
class Nick:
    """Client -> server: call me ``nick`` from now on (everyone who shares a room sees it)."""

    TYPE: ClassVar[FrameType] = FrameType.NICK
    nick: str


@dataclass(frozen=True)
class Kick:
    """Client -> server: remove ``nick`` from ``room`` (operators only)."""

    TYPE: ClassVar[FrameType] = FrameType.KICK
    room: str
    nick: str
    reason: str = ""


@dataclass(frozen=True)
class Topic:
    """Client -> server: ``change`` false asks for ``room``'s topic; true sets it to ``text`` ("" clears it)."""

    TYPE: ClassVar[FrameType] = FrameType.TOPIC
    room: str
    text: str = ""
    change: bool = False


@dataclass(frozen=True)
class Mode:
    """Client -> server: change ``target``'s modes (``"+o"``, ``"-k"``, ``"+l"``...) with ``args``;
    ``modes`` empty asks for them.  ``target`` is a room, or my own nick (user modes ``+i``, ``+w``)."""

    TYPE: ClassVar[FrameType] = FrameType.MODE
    target: str
    modes: str = ""
    args: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Invite:
    """Client -> server: invite ``nick`` into ``room`` (needed to enter a room with mode +i)."""

    TYPE: ClassVar[FrameType] = FrameType.INVITE
    nick: str
    room: str


@dataclass(frozen=True)
class Away:
    """Client -> server: away with ``text``, or back when it is empty."""

    TYPE: ClassVar[FrameType] = FrameType.AWAY
    text: str = ""


@dataclass(frozen=True)
class Oper:
    """Client -> server: become a server operator (the server's ``--oper NAME=PASSWORD``)."""

    TYPE: ClassVar[FrameType] = FrameType.OPER
    name: str
    password: str


@dataclass(frozen=True)
class Wallops:
    """Client -> server: an operator's message to every user with mode +w."""

    TYPE: ClassVar[FrameType] = FrameType.WALLOPS
    text: str



def _repr(message: Any) -> str:
    """Like the dataclass repr, without the later fields left at their default (as on the wire):
    ``ChatMessage(room='lobby', sender='alice', text='hi', action=False)`` reads as it always did."""
    from .protocol import _is_default

    shown = ", ".join(f"{f.name}={getattr(message, f.name)!r}" for f in dataclasses.fields(message)
                      if not (f.metadata.get("omit_default") and _is_default(message, f)))
    return f"{type(message).__name__}({shown})"


def short_reprs(classes: Iterable[type]) -> None:
    """Give every message class :func:`_repr` (protocol.py calls it once, for all of them)."""
    for cls in classes:
        setattr(cls, "__repr__", _repr)  # noqa: B010  (assigning a method directly is an error for mypy)


__all__ = ["Nick", "Kick", "Topic", "Mode", "Invite", "Away", "Oper", "Wallops"]
