"""One turn's chat lines for a room, as bytes for each member: formatted once, joined once.

The server holds the lines a room's members were sent during one turn of its loop
and queues them at the turn's end.  A line reads the same for every member with
the same framing (binary frames, or IRC text) except, in IRC, for its sender, who
gets no echo.  So :class:`TurnLines` formats each line once per framing, joins all
of them once for the members who sent none, and for a member who sent some copies
that list and swaps in its own copies: the per-member work is a lookup, not a loop
over the lines.  Pure bookkeeping: no sockets here.
"""

from __future__ import annotations

from typing import Any

from . import protocol as p


def shared_bytes(codec: Any, message: p.Message) -> bytes | None:
    """``message`` as every member with ``codec``'s framing gets it, if that does not depend on the member
    (``encode_shared``, or a codec whose ``shared_encoding`` says so); ``None``: encode per member."""
    shared = getattr(codec, "encode_shared", None)
    if shared is not None:
        return shared(message)
    return codec.encode(message) if getattr(codec, "shared_encoding", False) else None


class TurnLines:
    """The lines of one turn for one group of members; :meth:`bytes_for` gives a member its share."""

    def __init__(self, lines: list[p.Message]) -> None:
        self.lines = lines
        self.senders: dict[str | None, list[int]] = {}  # sender -> the positions of its lines
        for i, line in enumerate(lines):
            self.senders.setdefault(getattr(line, "sender", None), []).append(i)
        self._parts: dict[type, list[bytes | None]] = {}  # per framing: each line's shared bytes (None: per member)
        self.joined: dict[type, bytes] = {}  # per framing: every line, for a member who sent none

    def bytes_for(self, codec: Any, nick: str | None) -> bytes:
        """All the lines as the member with ``codec`` and ``nick`` gets them, in order (``b""``: none)."""
        framing = type(codec)
        own = None if getattr(codec, "shared_encoding", False) else self.senders.get(nick)  # its echo may differ
        if own is None:
            data = self.joined.get(framing)
            if data is not None:
                return data
        parts = self._parts.get(framing)
        if parts is None:
            parts = self._parts[framing] = [shared_bytes(codec, line) for line in self.lines]
        if own is None and None not in parts:
            data = self.joined[framing] = b"".join(parts)  # type: ignore[arg-type]
            return data
        mine = parts
        if None in parts:  # lines its codec formats per member
            mine = [codec.encode(line) if part is None else part for line, part in zip(self.lines, parts)]
        if own:
            mine = mine.copy() if mine is parts else mine
            for i in own:
                mine[i] = codec.encode(self.lines[i])
        return b"".join(mine)  # type: ignore[arg-type]


__all__ = ["TurnLines", "shared_bytes"]
