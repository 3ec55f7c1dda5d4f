"""The answers to IRC's queries, sans-I/O: a core :class:`~chatlab.core.protocol.WhoReply` as numerics.

The IRC codec (:mod:`chatlab.core.irc`) asks the core with a ``Who`` (or a ``Topic`` or
``Mode`` without a change) and remembers why; when the ``WhoReply`` comes back it calls
the formatter for that purpose from :data:`REPLY_FORMATTERS`: NAMES (353, 366), LIST
(321-323), WHO (352, 315), WHOIS (311-319), WHOWAS (314, 369, 406), TOPIC (331-333),
MODE (324, 329, 367, 368, 221), USERHOST (302), ISON (303) and LUSERS (251-255).
And the core's refusals: :data:`ERROR_NUMERICS` maps each error code to its numeric.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from . import protocol as p
from .channels import CHANMODES, PREFIX
from .chatroom import normalize_name as _key
from .irc_lines import MAX_CONTENT, SERVER, channel_of, format_line, room_of, source

VERSION = "chatlab-2"  # what VERSION and 004 say
NICKLEN = 20

# The core's error codes as IRC numerics (RFC 2812 5.2; 479 and 417 as ircds use them), and where the
# error's subject goes: "nick" (433 me nick), "chan" (403 me #room), "nick chan" (441 me nick #room), "word".
# None: an IRC server says nothing here (JOIN of a channel you are in).
ERROR_NUMERICS: dict[str, str | None] = {
    "nick-taken": "433",  # ERR_NICKNAMEINUSE
    "bad-nick": "432",  # ERR_ERRONEUSNICKNAME
    "nick-reserved": "432",
    "already-registered": "462",  # ERR_ALREADYREGISTRED
    "no-such-nick": "401",  # ERR_NOSUCHNICK
    "bad-room": "479",  # ERR_BADCHANNAME
    "too-many-rooms": "405",  # ERR_TOOMANYCHANNELS
    "bad-password": "475",  # ERR_BADCHANNELKEY
    "empty-message": "412",  # ERR_NOTEXTTOSEND
    "already-in-room": None,  # JOIN of a channel you are in; for INVITE it is 443, see _encode_error
    "no-such-room": "403",  # ERR_NOSUCHCHANNEL
    "not-in-room": "442",  # ERR_NOTONCHANNEL
    "cannot-send": "404",  # ERR_CANNOTSENDTOCHAN
    "not-operator": "482",  # ERR_CHANOPRIVSNEEDED
    "user-not-in-room": "441",  # ERR_USERNOTINCHANNEL
    "room-full": "471",  # ERR_CHANNELISFULL
    "invite-only": "473",  # ERR_INVITEONLYCHAN
    "banned": "474",  # ERR_BANNEDFROMCHAN
    "unknown-mode": "472",  # ERR_UNKNOWNMODE
    "unknown-user-mode": "501",  # ERR_UMODEUNKNOWNFLAG
    "users-dont-match": "502",  # ERR_USERSDONTMATCH
    "key-set": "467",  # ERR_KEYSET
    "bad-key": "525",  # ERR_INVALIDKEY (as Ergo, UnrealIRCd and InspIRCd)
    "bad-oper": "464",  # ERR_PASSWDMISMATCH
    "not-oper": "481",  # ERR_NOPRIVILEGES
}
SUBJECTS = {"433": "nick", "432": "nick", "401": "nick", "479": "chan", "405": "chan", "475": "chan", "403": "chan",
            "442": "chan", "404": "chan", "482": "chan", "441": "nick chan", "443": "nick chan", "471": "chan",
            "473": "chan", "474": "chan", "472": "word", "467": "chan", "525": "chan"}
NICK_CODES = frozenset({"nick-taken", "bad-nick", "nick-reserved"})
# Errors after which the server closes the connection: IRC says ERROR, then hangs up.
CLOSING_CODES = frozenset({"protocol-error", "hello-timeout", "server-full"})


HELP = [
    "chatlab speaks a subset of IRC. Commands:",
    "  NICK name / USER name 0 * :Real Name   register (both, in either order); NICK later renames you",
    "  PRIVMSG #room :text                    say text in a room you are in",
    "  PRIVMSG nick :text                     whisper to one user (NOTICE: the same, never answered)",
    "  JOIN #room [password]                  join #room too (created if new: you are its operator)",
    "  PART #room [:reason]                   leave #room",
    "  TOPIC #room [:text]   MODE #room [+o nick|+v nick|+k key|+l n|+i|+m|+n|+t|+s|+b mask]",
    "  KICK #room nick [:reason]   INVITE nick #room   AWAY [:message]",
    "  NAMES, LIST, WHO, WHOIS, WHOWAS, USERHOST, ISON, LUSERS, MOTD, VERSION, INFO, LINKS",
    "  OPER name password, WALLOPS :text (operators), PING, QUIT :reason",
]


def error_params(number: str, subject: str) -> list[str]:
    """Where an error's subject goes in its numeric: ``433 me nick``, ``403 me #room``, ``441 me nick #room``."""
    shape = SUBJECTS.get(number)
    if not shape or not subject:
        return []
    if shape == "chan":
        return [channel_of(subject)]
    if shape == "nick chan":
        nick, _, room = subject.partition(" ")
        return [nick, channel_of(room)]
    return [subject]


def isupport_line(me: str) -> bytes:
    """005: what this server supports, truthfully (the modes of channels.py, TARGMAX for comma lists)."""
    return format_line(SERVER, "005", me, "CHANTYPES=#", f"PREFIX={PREFIX}", f"CHANMODES={CHANMODES}",
                       f"NICKLEN={NICKLEN}", "CHANNELLEN=33", "TOPICLEN=2000", "KICKLEN=2000", "MODES=10",
                       "TARGMAX=JOIN:,PART:,KICK:,NAMES:,PRIVMSG:,NOTICE:,WHOIS:",
                       "CASEMAPPING=ascii", "NETWORK=chatlab", text="are supported by this server")


def motd_lines(me: str, motd: str) -> bytes:
    """375, 372s, 376 (or 422 without one); the terminal client's ``/help`` is ``HELP`` here."""
    if not motd:
        return format_line(SERVER, "422", me, text="MOTD File is missing")
    motd = motd.replace("Type /help for commands", "Type HELP for commands")
    body = [format_line(SERVER, "372", me, text=f"- {line}") for line in motd.splitlines()]
    body.append(format_line(SERVER, "372", me,
                            text="- IRC users: HELP (in irssi /quote HELP) lists what this server understands"))
    return (format_line(SERVER, "375", me, text=f"- {SERVER} Message of the day -") + b"".join(body)
            + format_line(SERVER, "376", me, text="End of /MOTD command."))


def info_lines(me: str, version: str) -> bytes:
    lines = ("chatlab: a select() chat server for a socket programming class.",
             "It speaks its own length-prefixed frames and this subset of IRC on one port.",
             f"Version {version}; HELP lists the commands.")
    return b"".join(format_line(SERVER, "371", me, text=line) for line in lines) + \
        format_line(SERVER, "374", me, text="End of INFO list")


class Asker(Protocol):
    """What a formatter needs of the codec that asked: who it is, and its MOTD."""

    nick: str | None

    def motd_lines(self) -> bytes: ...


def _names_lines(me: str, channel: str, info: dict[str, Any]) -> bytes:
    """353 lines of ``@nick +nick nick``, each under 512 bytes."""
    kind = "@" if info.get("secret") else "="
    head = f":{SERVER} 353 {me} {kind} {channel} :"
    out: list[bytes] = []
    batch: list[str] = []
    for nick, prefix in info.get("members", {}).items():
        word = prefix + nick
        if batch and len(head) + len(" ".join(batch + [word]).encode()) > MAX_CONTENT:
            out.append(format_line(SERVER, "353", me, kind, channel, text=" ".join(batch)))
            batch = []
        batch.append(word)
    if batch:
        out.append(format_line(SERVER, "353", me, kind, channel, text=" ".join(batch)))
    return b"".join(out)


def _find(table: dict[str, Any], name: str) -> tuple[str, Any]:
    return next(((k, v) for k, v in table.items() if _key(k) == _key(name)), ("", None))


def _reply_names(codec: Asker, reply: p.WhoReply, target: str, arg: str) -> bytes:
    me = codec.nick or "*"
    room, info = _find(reply.channels, room_of(target)) if target.startswith("#") else ("", None)
    lines = _names_lines(me, channel_of(room), info) if info else b""
    return lines + format_line(SERVER, "366", me, target, text="End of /NAMES list")


def _reply_names_all(codec: Asker, reply: p.WhoReply, target: str, arg: str) -> bytes:
    me = codec.nick or "*"
    out = [_names_lines(me, channel_of(room), info) for room, info in sorted(reply.channels.items()) if info["members"]]
    return b"".join(out) + format_line(SERVER, "366", me, "*", text="End of /NAMES list")


def _reply_names_some(codec: Asker, reply: p.WhoReply, target: str, arg: str) -> bytes:
    me = codec.nick or "*"
    out = []
    for channel in target.split(","):
        room, info = _find(reply.channels, room_of(channel)) if channel.startswith("#") else ("", None)
        if info:
            out.append(_names_lines(me, channel_of(room), info))
    return b"".join(out) + format_line(SERVER, "366", me, target, text="End of /NAMES list")


def _reply_invites(codec: Asker, reply: p.WhoReply, target: str, arg: str) -> bytes:
    me = codec.nick or "*"
    _, person = _find(reply.people, me)
    rows = [format_line(SERVER, "336", me, channel_of(room)) for room in (person or {}).get("invited", [])]
    return b"".join(rows) + format_line(SERVER, "337", me, text="End of /INVITE list")


def _reply_joined(codec: Asker, reply: p.WhoReply, target: str, arg: str) -> bytes:
    room, info = _find(reply.channels, room_of(target))
    if info is None:
        return b""
    return _topic_lines(codec, channel_of(room), info, quiet=True) + _reply_names(codec, reply, channel_of(room), "")


def _topic_lines(codec: Asker, channel: str, info: dict[str, Any], quiet: bool = False) -> bytes:
    me = codec.nick or "*"
    if not info.get("topic"):
        return b"" if quiet else format_line(SERVER, "331", me, channel, text="No topic is set")
    return (format_line(SERVER, "332", me, channel, text=info["topic"])
            + format_line(SERVER, "333", me, channel, source(info["topic_by"]), str(info["topic_at"])))


def _reply_topic(codec: Asker, reply: p.WhoReply, target: str, arg: str) -> bytes:
    room, info = _find(reply.channels, room_of(target))
    if info is None:
        return format_line(SERVER, "403", codec.nick or "*", target, text="No such channel")
    return _topic_lines(codec, channel_of(room), info)


def _reply_mode(codec: Asker, reply: p.WhoReply, target: str, arg: str) -> bytes:
    me = codec.nick or "*"
    room, info = _find(reply.channels, room_of(target))
    if info is None:
        return format_line(SERVER, "403", me, target, text="No such channel")
    channel = channel_of(room)
    return (format_line(SERVER, "324", me, channel, *info["modes"].split())
            + format_line(SERVER, "329", me, channel, str(info["created"])))


def _reply_bans(codec: Asker, reply: p.WhoReply, target: str, arg: str) -> bytes:
    me = codec.nick or "*"
    room, info = _find(reply.channels, room_of(target))
    channel = channel_of(room) if info else target
    lines = [format_line(SERVER, "367", me, channel, *ban.split()) for ban in (info or {}).get("bans", [])]
    return b"".join(lines) + format_line(SERVER, "368", me, channel, text="End of channel ban list")


def _reply_umode(codec: Asker, reply: p.WhoReply, target: str, arg: str) -> bytes:
    _, person = _find(reply.people, codec.nick or "")
    return format_line(SERVER, "221", codec.nick or "*", person["modes"] if person else "+")


def _reply_list(codec: Asker, reply: p.WhoReply, target: str, arg: str) -> bytes:
    me = codec.nick or "*"
    wanted = {_key(room_of(c)) for c in target.split(",") if c.startswith("#")} if target else None
    rows = [format_line(SERVER, "322", me, channel_of(room), str(len(info["members"]) or reply.rooms.get(room, 0)),
                        text=info["topic"])
            for room, info in sorted(reply.channels.items()) if wanted is None or _key(room) in wanted]
    return (format_line(SERVER, "321", me, "Channel", text="Users  Name") + b"".join(rows)
            + format_line(SERVER, "323", me, text="End of /LIST"))


def _who_row(me: str, channel: str, nick: str, person: dict[str, Any], prefix: str) -> bytes:
    flags = ("G" if person["away"] else "H") + ("*" if person["oper"] else "") + prefix
    return format_line(SERVER, "352", me, channel, person["user"], SERVER, SERVER, nick, flags,
                       text=f"0 {person['realname']}")


def _reply_who(codec: Asker, reply: p.WhoReply, target: str, arg: str) -> bytes:
    me = codec.nick or "*"
    rows = []
    if target.startswith("#"):
        room, info = _find(reply.channels, room_of(target))
        for nick, prefix in (info or {}).get("members", {}).items():
            rows.append(_who_row(me, channel_of(room), nick, reply.people[nick], prefix))
    else:
        for nick, person in sorted(reply.people.items()):
            if target in ("*", "0") or _key(nick) == _key(target):
                first = next(iter(person["rooms"].items()), None)
                channel, prefix = (channel_of(first[0]), first[1]) if first else ("*", "")
                rows.append(_who_row(me, channel, nick, person, prefix))
    return b"".join(rows) + format_line(SERVER, "315", me, target, text="End of /WHO list")


def _reply_whois(codec: Asker, reply: p.WhoReply, target: str, arg: str) -> bytes:
    me = codec.nick or "*"
    nick, person = _find(reply.people, target)
    if person is None:
        return (format_line(SERVER, "401", me, target, text="No such nick/channel")
                + format_line(SERVER, "318", me, target, text="End of /WHOIS list"))
    out = [format_line(SERVER, "311", me, nick, person["user"], SERVER, "*", text=person["realname"])]
    if person["rooms"]:
        out.append(format_line(SERVER, "319", me, nick,
                               text=" ".join(prefix + channel_of(room) for room, prefix in person["rooms"].items())))
    out.append(format_line(SERVER, "312", me, nick, SERVER, text="chatlab"))
    if person["away"]:
        out.append(format_line(SERVER, "301", me, nick, text=person["away"]))
    if person["oper"]:
        out.append(format_line(SERVER, "313", me, nick, text="is an IRC operator"))
    out.append(format_line(SERVER, "317", me, nick, str(person["idle"]), str(person["signon"]),
                           text="seconds idle, signon time"))
    out.append(format_line(SERVER, "318", me, nick, text="End of /WHOIS list"))
    return b"".join(out)


def _reply_whowas(codec: Asker, reply: p.WhoReply, target: str, arg: str) -> bytes:
    me = codec.nick or "*"
    count = int(arg) if arg.lstrip("-").isdigit() else 0
    entries = reply.history[:count] if count > 0 else reply.history
    if not entries:
        out = [format_line(SERVER, "406", me, target, text="There was no such nickname")]
    else:
        out = []
        for entry in entries:
            out.append(format_line(SERVER, "314", me, entry["nick"], entry["user"], SERVER, "*",
                                   text=entry["realname"]))
            out.append(format_line(SERVER, "312", me, entry["nick"], SERVER, text=str(entry["at"])))
    return b"".join(out) + format_line(SERVER, "369", me, target, text="End of WHOWAS")


def _reply_userhost(codec: Asker, reply: p.WhoReply, target: str, arg: str) -> bytes:
    words = []
    for wanted in target.split():
        nick, person = _find(reply.people, wanted)
        if person is not None:
            oper, here = "*" if person["oper"] else "", "-" if person["away"] else "+"
            words.append(f"{nick}{oper}={here}{person['user']}@{SERVER}")
    return format_line(SERVER, "302", codec.nick or "*", text=" ".join(words))


def _reply_ison(codec: Asker, reply: p.WhoReply, target: str, arg: str) -> bytes:
    online = [nick for wanted in target.split() for nick in [_find(reply.people, wanted)[0]] if nick]
    return format_line(SERVER, "303", codec.nick or "*", text=" ".join(online))


def _lusers_lines(me: str, stats: dict[str, int]) -> bytes:
    users, invisible = stats.get("users", 0), stats.get("invisible", 0)
    seen = f"There are {users - invisible} users and {invisible} invisible on 1 servers"
    return (format_line(SERVER, "251", me, text=seen)
            + format_line(SERVER, "252", me, str(stats.get("opers", 0)), text="operator(s) online")
            + format_line(SERVER, "253", me, str(stats.get("unknown", 0)), text="unknown connection(s)")
            + format_line(SERVER, "254", me, str(stats.get("rooms", 0)), text="channels formed")
            + format_line(SERVER, "255", me, text=f"I have {users} clients and 0 servers"))


def _reply_lusers(codec: Asker, reply: p.WhoReply, target: str, arg: str) -> bytes:
    return _lusers_lines(codec.nick or "*", reply.stats)


def _reply_welcome(codec: Asker, reply: p.WhoReply, target: str, arg: str) -> bytes:
    return _lusers_lines(codec.nick or "*", reply.stats) + codec.motd_lines()


REPLY_FORMATTERS: dict[str, Callable[[Asker, p.WhoReply, str, str], bytes]] = {
    "names": _reply_names, "names-all": _reply_names_all, "names-some": _reply_names_some, "invites": _reply_invites,
    "joined": _reply_joined, "topic": _reply_topic,
    "mode": _reply_mode, "bans": _reply_bans, "umode": _reply_umode, "list": _reply_list, "who": _reply_who,
    "whois": _reply_whois, "whowas": _reply_whowas, "userhost": _reply_userhost, "ison": _reply_ison,
    "lusers": _reply_lusers, "welcome": _reply_welcome,
}



__all__ = ["REPLY_FORMATTERS", "Asker", "HELP", "isupport_line", "motd_lines", "info_lines", "error_params", "VERSION",
           "NICKLEN", "ERROR_NUMERICS", "SUBJECTS", "NICK_CODES", "CLOSING_CODES"]
