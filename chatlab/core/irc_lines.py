"""IRC lines, sans-I/O: parse one, format one, and turn a chat line into as many as it takes.

The pieces of :mod:`chatlab.core.irc` that know nothing of a connection: delimiter
framing's rules (a line ends at CR LF, is at most 512 bytes with it, and never carries
CR, LF or NUL inside, or a parameter could forge a second message), and the mapping of
chatlab's rooms to IRC channels (``lobby`` <-> ``#lobby``).
"""

from __future__ import annotations

import re
from typing import Iterator

from . import protocol as p

SERVER = "chatlab"  # the server's name in every line it sends, and every user's host
MAX_LINE = 512  # bytes, CR LF included (RFC 1459 2.3; ngircd's COMMAND_LEN is the same)
MAX_CONTENT = MAX_LINE - 2
_LINE_END = re.compile(r"\r\n|\r|\n")


def channel_of(room: str) -> str:
    """The IRC channel of a chatlab room: ``lobby`` -> ``#lobby`` (and ``#x`` -> ``##x``)."""
    return "#" + room


def room_of(channel: str) -> str:
    """The chatlab room of an IRC channel: ``#lobby`` -> ``lobby``."""
    return channel[1:]


def source(nick: str) -> str:
    """Who a line is from, as IRC clients expect it: ``alice!alice@chatlab``."""
    return f"{nick}!{nick}@{SERVER}"


# ------------------------------------------------------------------ lines


def parse_line(line: str) -> tuple[str, list[str]] | None:
    """``[@tags] [:prefix] COMMAND param ... [:trailing]`` -> ``(COMMAND, params)``.

    The command is upper-cased; a prefix from a client means nothing and is
    ignored, as are IRCv3 tags.  ``None`` for a line with no command.
    """
    if line.startswith("@"):
        line = line.partition(" ")[2]
    line = line.lstrip(" ")
    if line.startswith(":"):
        line = line.partition(" ")[2]
    head, colon, trailing = line.partition(" :")
    if not colon and head.startswith(":"):  # "QUIT :bye" was split above; ":x" alone is a bare trailing
        head, trailing, colon = "", head[1:], " :"
    params = head.split()
    if colon:
        params.append(trailing)
    if not params:
        return None
    return params[0].upper(), params[1:]


def format_line(origin: str, command: str, *params: str, text: str | None = None) -> bytes:
    """One line, CR LF included, at most 512 bytes.

    ``text``, when given, is the trailing parameter (after ``:``, it may hold
    spaces).  CR, LF and NUL never reach the wire: they would end the line early
    and let a parameter forge a second message.
    """
    words = [f":{origin}", command, *params]
    if text is not None:
        words.append(":" + text)
    line = " ".join(words)
    if "\r" in line or "\n" in line or "\x00" in line:
        line = line.replace("\r", " ").replace("\n", " ").replace("\x00", "")
    data = line.encode("utf-8", "replace")
    if len(data) > MAX_CONTENT:  # cut on a character boundary
        data = data[:MAX_CONTENT].decode("utf-8", "ignore").encode("utf-8")
    return data + b"\r\n"


def split_utf8(text: str, limit: int) -> Iterator[str]:
    """Pieces of ``text`` of at most ``limit`` UTF-8 bytes, never cutting a character."""
    data = text.encode("utf-8", "replace")
    while len(data) > limit:
        cut = limit
        while cut > 0 and data[cut] & 0xC0 == 0x80:  # a continuation byte: back up to the character's start
            cut -= 1
        yield data[:cut].decode("utf-8")
        data = data[cut:]
    yield data.decode("utf-8")


def privmsg_lines(sender: str, target: str, text: str, action: bool = False, command: str = "PRIVMSG") -> bytes:
    """A chat line as IRC lines: one per line of ``text``, long ones split to fit 512 bytes."""
    origin = source(sender)
    room = MAX_CONTENT - len(f":{origin} {command} {target} :".encode()) - (len("\x01ACTION \x01") if action else 0)
    out = []
    for paragraph in _LINE_END.split(text.replace("\x00", "")):
        if not paragraph:
            continue
        for piece in split_utf8(paragraph, room):
            out.append(format_line(origin, command, target, text=f"\x01ACTION {piece}\x01" if action else piece))
    return b"".join(out)


_last_chat: tuple[p.ChatMessage | None, bytes] = (None, b"")


def _chat_lines(message: p.ChatMessage) -> bytes:
    """A room's line is the same for every IRC member: format it once per message, not once per member.

    The server encodes one broadcast for its members one after the other, so remembering the
    last message (by identity: no hashing of its text) is enough.  The tuple is read and
    replaced whole, so servers in several threads do not mix their lines up.
    """
    global _last_chat
    cached = _last_chat
    if cached[0] is message:
        return cached[1]
    data = privmsg_lines(message.sender, channel_of(message.room), message.text, message.action,
                         "NOTICE" if message.notice else "PRIVMSG")
    _last_chat = (message, data)
    return data



__all__ = ["SERVER", "MAX_LINE", "MAX_CONTENT", "channel_of", "room_of", "source", "parse_line", "format_line",
           "split_utf8", "privmsg_lines"]
