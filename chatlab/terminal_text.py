"""What the terminal client reads and prints, as text: typed lines into :class:`Command`, events into lines.

Nothing here does I/O, so all of it is tested without a terminal
(``tests/io/test_terminal.py``); :mod:`chatlab.terminal` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from .client import (
    CLOSED_BY_SERVER,
    CLOSED_BY_US,
    DirectFallback,
    Disconnected,
    FileFailed,
    FileReceived,
    FileStarted,
)
from .core import protocol as p
from .i18n import N_, _, ngettext
from .notices import shown_error, shown_notice
from .units import format_rate, format_size

if TYPE_CHECKING:
    from .client import Transfer

# The English text; the client prints _(HELP), the help in the current language.
HELP = N_("""\
Commands:
  TEXT                   say TEXT to everyone in your room (start with // to say a line beginning with /)
  /me ACTION             an action: * alice waves
  /msg NICK TEXT         a private message to NICK only
  /join ROOM [key=PW]    move to ROOM (created if it does not exist); key=PW gives its password,
                         or sets it if you create the room.  Room names have no spaces
  /leave                 go back to the default room
  /who                   who is online, and in which room
  /nick NEW              change your nickname (everyone who shares a room with you sees it)
  /topic [TEXT]          show your room's topic; with TEXT, set it (/topic --clear clears it)
  /kick NICK [REASON]    put NICK out of your room (room operators only)
  /mode [ROOM] [+|-FLAGS [ARGS]]  show a room's modes (your room by default), or change them
                         (operators): +o/-o NICK operator, +v/-v NICK voice, +k KEY/-k set or remove
                         the password, +l N/-l member limit, +b/-b MASK ban (+b alone: the list),
                         +i invite only, +m moderated, +n no messages from outside, +t only
                         operators set the topic, +s secret; /mode YOURNICK +i or +w: your own
                         modes (invisible, wallops)
  /invite NICK [ROOM]    invite NICK into your room (or ROOM): needed to enter a room with mode +i
  /send FILE NICK [--direct]  send a file to NICK (sizes are decimal: 1 MB = 1,000,000 bytes);
                         --direct: over a connection of its own to NICK, not through the server
  /accept [N]            accept file offer N (the latest by default) into the download folder
  /reject [N]            turn file offer N down
  /quit [REASON]         leave the chat (end of input and Ctrl-D do the same)
  /help                  this list""")



def help_lines() -> list[str]:
    """The help, in the current language, one line each."""
    return _(HELP).splitlines()


# name -> (usage, minimum args, maximum args)
_COMMANDS: dict[str, tuple[str, int, int]] = {
    "me": ("/me ACTION", 1, 1),
    "msg": ("/msg NICK TEXT", 2, 2),
    "join": ("/join ROOM [key=PASSWORD]", 1, 2),
    "leave": ("/leave", 0, 0),
    "who": ("/who", 0, 0),
    "nick": ("/nick NEW", 1, 1),
    "topic": ("/topic [TEXT]", 0, 1),
    "kick": ("/kick NICK [REASON]", 1, 2),
    "mode": ("/mode [ROOM] [+|-FLAGS [ARGS]]", 0, 1_000),
    "invite": ("/invite NICK [ROOM]", 1, 2),
    "send": ("/send FILE NICK [--direct]", 2, 3),
    "accept": ("/accept [N]", 0, 1),
    "reject": ("/reject [N]", 0, 1),
    "quit": ("/quit [REASON]", 0, 1),
    "help": ("/help", 0, 0),
}
_REST_OF_LINE = {"me", "msg", "quit", "topic", "kick"}  # their last argument is free text, spaces included
_ALIASES = {"w": "msg", "whisper": "msg", "tell": "msg", "j": "join", "part": "leave", "exit": "quit", "?": "help"}


@dataclass(frozen=True)
class Command:
    """One line typed by the user, understood.

    ``name`` is ``say`` for plain text, ``empty`` for a blank line, ``invalid``
    for a line that cannot be run (``error`` then says why, in one line), or
    one of the slash commands: ``me``, ``msg``, ``join``, ``leave``, ``who``,
    ``nick``, ``topic``, ``kick``, ``mode``, ``invite``, ``send``, ``accept``,
    ``reject``, ``quit``, ``help``.  ``args`` are its arguments, as strings
    (``topic`` with ``""``: clear it; ``mode``: the words as typed, checked).
    """

    name: str
    args: tuple[str, ...] = ()
    error: str = ""


def parse_command(line: str) -> Command:
    """Understand one typed line; never raises.

    >>> parse_command("/msg bob see you at 5")
    Command(name='msg', args=('bob', 'see you at 5'), error='')
    >>> parse_command("hello")
    Command(name='say', args=('hello',), error='')
    """
    line = line.rstrip("\r\n")
    if not line.strip():
        return Command("empty")
    if line.startswith("//"):  # the IRC convention to say something that starts with a slash
        return Command("say", (line[1:],))
    if not line.startswith("/"):
        return Command("say", (line,))
    word, _space, rest = line[1:].partition(" ")
    name = _ALIASES.get(word.lower(), word.lower())
    if name not in _COMMANDS:
        shown = "/" + word if word else "/"
        return Command("invalid", error=_("unknown command {command!r}: type /help for the list").format(command=shown))
    usage, least, most = _COMMANDS[name]
    rest = rest.strip()
    if name == "join":
        return _parse_join(rest, usage)
    if name == "mode":
        return _parse_mode(rest, usage)
    if name == "topic" and rest == "--clear":
        return Command("topic", ("",))
    if name == "send":
        args = _send_args(rest)
    elif name in _REST_OF_LINE:
        args = rest.split(None, most - 1) if rest else []
    else:
        args = rest.split()
    if not least <= len(args) <= most:
        return Command("invalid", error=_("usage: {usage}").format(usage=usage))
    return Command(name, tuple(args))


def _send_args(rest: str) -> list[str]:
    """``FILE NICK [--direct]``: the nick is the last word, the file everything before it (paths have spaces)."""
    direct = rest == "--direct" or rest.endswith(" --direct")
    rest = rest.removesuffix("--direct").rstrip() if direct else rest
    path, _space, nick = rest.rpartition(" ")
    if not path.strip() or not nick:
        return []
    return [_unquote(path.strip()), nick] + (["--direct"] if direct else [])


def _parse_join(rest: str, usage: str) -> Command:
    """``/join ROOM [key=PASSWORD]``.

    The password is marked with ``key=`` (IRC calls a room's password its
    key) so that ``/join my room`` cannot be read as room "my" with password
    "room": it is an error that says room names have no spaces.
    """
    words = rest.split()
    if not words:
        return Command("invalid", error=_("usage: {usage}").format(usage=usage))
    room, extra = words[0], words[1:]
    keys = [word[len("key="):] for word in extra if word.startswith("key=")]
    if len(keys) < len(extra):
        return Command("invalid", error=_("room names have no spaces: {text!r} is not a room name"
                                          " (to give room {room!r} a password, type /join {room} key=PASSWORD)").format(
            text=rest, room=room))
    if len(keys) > 1 or (keys and not keys[0]):
        return Command("invalid", error=_("usage: {usage} (one key=, with a password after the =)").format(usage=usage))
    return Command("join", (room, *keys))


def _parse_mode(rest: str, usage: str) -> Command:
    """``/mode [ROOM] [+|-FLAGS [ARGS]]``: the words as typed, once they make sense.

    A first word that starts with ``+`` or ``-`` is the flags (the target is then my
    room); otherwise it names the target, a room or my own nick, and the flags, if
    any, come next.  Which letters exist is the server's to say: it knows rooms'
    and users' modes, and names them when it refuses one.
    """
    words = rest.split()
    flags_at = 0 if words and words[0][0] in "+-" else 1
    if len(words) > flags_at and not _is_flags(words[flags_at]):
        return Command("invalid", error=_("usage: {usage}: flags are + or - then letters (a room's: o v b k l i m n s"
                                          " t; yours: i w), e.g. /mode +m, /mode +o NICK, /mode team -t").format(
            usage=usage))
    if flags_at == 0 and len(words) - 1 < _arguments_needed(words[0]):  # my room: its letters are known
        return Command("invalid", error=_("usage: {usage}: {flags} needs an argument for each o and v (a NICK),"
                                          " +k (a KEY) and +l (a NUMBER)").format(usage=usage, flags=words[0]))
    return Command("mode", tuple(words))


def _arguments_needed(flags: str) -> int:
    """How many arguments a room's ``flags`` take: ``+ov`` two, ``+k`` one, ``-k`` and ``+m`` none.

    ``+b`` alone asks for the ban list, so a ``b`` is not counted; a server
    would drop a letter left without its argument, and the user would see nothing.
    """
    sign, needed = "+", 0
    for letter in flags:
        if letter in "+-":
            sign = letter
        elif letter in "ov" or (letter in "kl" and sign == "+"):
            needed += 1
    return needed


def _is_flags(word: str) -> bool:
    """``+o``, ``-k``, ``+ov-t``: a sign first, and at least one letter, signs and ASCII letters only."""
    return word[0] in "+-" and word.strip("+-") != "" and all(c in "+-" or (c.isascii() and c.isalpha()) for c in word)


def _unquote(text: str) -> str:
    """``"my file.txt"`` -> ``my file.txt``: shells taught people to quote paths."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


# Characters that would let a peer move the cursor, clear the screen, ring the
# bell, start a fake new line, or reverse the text direction on our terminal.
_UNSAFE = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_UNSAFE.update({c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))})


def clean(text: str) -> str:
    """``text`` with control characters shown escaped (``\\x1b``), safe to print on a terminal."""
    return text.translate(_UNSAFE)


# The client library's fixed phrases for why something ended, shown in the current language.
_REASONS = {CLOSED_BY_SERVER: N_("closed by the server"), CLOSED_BY_US: N_("you closed the connection")}
_REASON_PREFIXES = {"connection broken: ": N_("connection broken: {error}"),
                    "connection ended: ": N_("connection ended: {reason}")}


def shown_reason(reason: str) -> str:
    """``reason`` from the client library, translated where it is one of its fixed phrases."""
    english = _REASONS.get(reason)
    if english is not None:
        return _(english)
    for prefix, template in _REASON_PREFIXES.items():
        if reason.startswith(prefix):
            rest = shown_reason(reason[len(prefix):])
            return _(template).format(error=rest, reason=rest)
    return reason


# Error codes the server sends, said in words; the server's own text follows.  A code
# not listed here is shown in brackets after the text, so nothing is hidden.
_ERROR_TITLES = {
    "bad-password": N_("wrong password"),
    "nick-taken": N_("nickname taken"),
    "nick-reserved": N_("nickname reserved"),
    "bad-nick": N_("not a valid nickname"),
    "bad-room": N_("not a valid room name"),
    "no-such-nick": N_("nobody by that name"),
    "already-in-room": N_("already there"),
    "too-many-rooms": N_("too many rooms"),
    "message-too-long": N_("message too long"),
    "empty-message": N_("empty message"),
    "server-full": N_("the server is full"),
    "no-such-transfer": N_("no such transfer"),
    "protocol-error": N_("protocol error"),
    "already-registered": N_("already registered"),
    "hello-timeout": N_("too slow to say hello"),
    "not-operator": N_("not an operator"),
    "no-such-room": N_("no such room"),
    "not-in-room": N_("not a member"),
    "user-not-in-room": N_("not in the room"),
    "unknown-mode": N_("unknown mode"),
    "unknown-user-mode": N_("unknown user mode"),
    "users-dont-match": N_("not your nickname"),
    "bad-key": N_("not a valid room key"),
    "key-set": N_("the password stays"),
    "banned": N_("banned"),
    "cannot-send": N_("cannot speak there"),
    "invite-only": N_("invite only"),
    "room-full": N_("room full"),
}


def format_error(code: str, text: str) -> str:
    """``!! wrong password: room 'x' needs the right password``: the code in words, then the server's text."""
    title = _ERROR_TITLES.get(code)
    if title is None:
        return f"!! {clean(text)} ({clean(code)})"
    return f"!! {_(title)}: {clean(text)}"


def _chat(event: p.ChatMessage, me: str) -> str:
    if event.action:
        return f"* {clean(event.sender)} {clean(event.text)}"
    return f"[{clean(event.room)}] <{clean(event.sender)}> {clean(event.text)}"


def _private(event: p.PrivateMessage, me: str) -> str:
    if event.action:
        return _("[private] * {sender} {text} (to {to})").format(
            sender=clean(event.sender), text=clean(event.text), to=clean(event.to))
    return _("[private] <{sender} -> {to}> {text}").format(
        sender=clean(event.sender), to=clean(event.to), text=clean(event.text))


def _offer(event: p.FileOffer, me: str) -> str:
    return "-- " + _("{peer} offers you {name!r} ({size})").format(
        peer=clean(event.peer), name=clean(event.name), size=format_size(event.size))


def _started(event: FileStarted, me: str) -> str:
    resumed = _("; resuming at {size}, where an earlier transfer stopped").format(
        size=format_size(event.resumed_from)) if event.resumed_from else ""
    return "-- " + _("receiving {name!r} from {sender} ({size}) into {path}{resumed}").format(
        name=clean(event.name), sender=clean(event.sender), size=format_size(event.size),
        path=clean(str(event.path)), resumed=resumed)


def _received(event: FileReceived, me: str) -> str:
    return "-- " + _("received {name!r} from {sender} ({size}, SHA-256 verified): saved as {path}").format(
        name=clean(event.name), sender=clean(event.sender), size=format_size(event.size), path=clean(str(event.path)))


def _failed(event: FileFailed, me: str) -> str:
    return "!! " + _("receiving {name!r} from {sender} failed: {reason}").format(
        name=clean(event.name), sender=clean(event.sender), reason=clean(shown_reason(event.reason)))


def _notice(event: p.Notice, me: str) -> str:
    """A notice; about me, said to me: "you are now known as bob", "alice kicked you out of team"."""
    if event.kind == "nick" and event.target == me and event.nick != me:
        return "-- " + _("you are now known as {nick}").format(nick=clean(me))
    if event.kind == "kick" and event.target == me and event.nick != me:
        return "-- " + _("{nick} kicked you out of {room} ({reason}); /join ROOM to go on chatting").format(
            nick=clean(event.nick), room=clean(event.room), reason=clean(event.detail))
    return f"-- {clean(shown_notice(event))}"


def format_room_info(reply: p.WhoReply, show: str = "") -> str | None:
    """The answer to ``/topic`` or ``/mode`` without changes: a WhoReply that holds one room, or my own modes.

    ``show`` is ``topic``, ``modes`` or ``bans`` (``/mode +b``); anything else shows the topic
    and the modes.  ``None`` for a reply that is not such an answer (a /who list: it has ``users``).
    """
    if reply.users or not (reply.channels or reply.people):
        return None
    if not reply.channels:
        nick, info = next(iter(reply.people.items()))
        return "-- " + _("modes of {nick}: {modes}").format(nick=clean(nick), modes=clean(str(info.get("modes", ""))))
    room, info = next(iter(reply.channels.items()))
    topic, by, modes = str(info.get("topic", "")), str(info.get("topic_by", "")), str(info.get("modes", ""))
    if not topic:
        topic_line = _("{room} has no topic").format(room=clean(room))
    elif by:
        topic_line = _("topic of {room}: {topic} (set by {nick})").format(room=clean(room), topic=clean(topic),
                                                                          nick=clean(by))
    else:
        topic_line = _("topic of {room}: {topic}").format(room=clean(room), topic=clean(topic))
    modes_line = _("modes of {room}: {modes}").format(room=clean(room), modes=clean(modes) or "+")
    if show == "bans":
        bans = [str(ban).split()[0] for ban in info.get("bans", []) if str(ban).split()]
        if not bans:
            return "-- " + _("nobody is banned from {room}").format(room=clean(room))
        return "-- " + _("banned from {room}: {masks}").format(room=clean(room), masks=clean(", ".join(bans)))
    if show == "topic":
        return "-- " + topic_line
    if show == "modes":
        return "-- " + modes_line
    return f"-- {topic_line}; {modes_line}"


_FORMATS: dict[type, Callable[[Any, str], str | None]] = {
    p.ChatMessage: _chat,
    p.PrivateMessage: _private,
    p.Notice: _notice,
    p.ErrorMessage: lambda event, me: format_error(event.code, shown_error(event)),
    p.WhoReply: lambda event, me: format_room_info(event) or _format_who(event, me),
    p.FileOffer: _offer,
    FileStarted: _started,
    FileReceived: _received,
    FileFailed: _failed,
    DirectFallback: lambda event, me: "-- " + _("{name!r} to {to}: {reason}").format(
        name=clean(event.name), to=clean(event.to), reason=clean(event.reason)),
    Disconnected: lambda event, me: "-- " + _("disconnected: {reason}").format(
        reason=clean(shown_reason(event.reason))),
    **{kind: lambda event, me: None for kind in (p.Ping, p.Pong, p.Welcome, p.FileAccept, p.FileReject, p.FileChunk,
                                                 p.FileAck, p.FileDone, p.FileCancel)},
}


def format_event(event: Any, me: str) -> str | None:
    """The line to print for one event from :meth:`Client.next_event`, or ``None`` to print nothing.

    ``me`` is my own nick (the WHO list marks it).  Everything that came from
    other people goes through :func:`clean` first.  Protocol messages the
    client handles itself (keepalive, the inner frames of a transfer) print
    nothing; an event this version does not know is shown rather than lost.
    """
    formatter = _FORMATS.get(type(event))
    if formatter is None:
        return f"-- {clean(repr(event))}"
    return formatter(event, me)


def _format_who(reply: p.WhoReply, me: str) -> str:
    """``-- 3 online in 2 rooms: lobby (2): alice (you), carol | team1 (1): bob``."""
    members: dict[str, list[str]] = {room: [] for room in reply.rooms}
    for nick, room in reply.users.items():
        members.setdefault(room, []).append(nick)
    parts = []
    for room in sorted(members, key=str.casefold):
        nicks = sorted(members[room], key=str.casefold)
        shown = ", ".join(clean(n) + (_(" (you)") if n == me else "") for n in nicks) or _("nobody")
        parts.append(f"{clean(room)} ({len(nicks)}): {shown}")
    rooms = len(members)
    online = ngettext("{users} online in {rooms} room: ", "{users} online in {rooms} rooms: ", rooms)
    return "-- " + online.format(users=len(reply.users), rooms=rooms) + " | ".join(parts)


def _percent(done: int, size: int) -> str:
    """``"42% (4.2 MB of 10.0 MB)"``."""
    return _("{percent}% ({done} of {size})").format(
        percent=100 * done // size if size else 100, done=format_size(done), size=format_size(size))


def format_duration(seconds: float) -> str:
    """``0.0004`` -> ``under 1 ms``, ``0.042`` -> ``42 ms``, ``3.21`` -> ``3.2 s``: a fast transfer is not "0.0 s"."""
    if seconds < 0.001:
        return _("under 1 ms")
    if seconds < 1:
        return _("{ms:.0f} ms").format(ms=seconds * 1000)
    return _("{seconds:.1f} s").format(seconds=seconds)


def _summary(transfer: Transfer, stats: Any) -> str:
    """`` (10.0 MB in 1.2 s, 8.3 MB/s)``; after a resume the whole file, then what this session sent.

    ``stats`` is what ``wait()`` returned (a TransferStats: ``bytes`` sent this
    session and ``seconds``); anything else gives an empty string.
    """
    sent, seconds = getattr(stats, "bytes", None), getattr(stats, "seconds", None)
    if not isinstance(sent, int) or not isinstance(seconds, (int, float)):
        return ""
    rate = (", " + format_rate(sent, seconds)) if seconds >= 0.001 else ""
    took = format_duration(seconds)
    resumed = transfer.resumed_from
    if resumed > 0:
        return _(" ({total}: {resumed} were already there, {sent} sent in {took}{rate})").format(
            total=format_size(resumed + sent), resumed=format_size(resumed), sent=format_size(sent), took=took,
            rate=rate)
    return _(" ({sent} in {took}{rate})").format(sent=format_size(sent), took=took, rate=rate)


__all__ = ["HELP", "help_lines", "Command", "parse_command", "format_event", "format_error", "format_duration", "clean",
           "shown_reason", "format_size", "format_room_info"]
