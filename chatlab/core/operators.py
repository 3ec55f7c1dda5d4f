"""The chat rules that came with many rooms at once: nick changes, operators, modes, topics, invitations.

These are :class:`~chatlab.core.chatroom.ChatRoom` handlers like the others (sans-I/O: a
message in, outputs back), kept in their own module so that ``chatroom.py`` stays the
short tour of the basics.  :func:`add_operator_handlers` adds them to the dispatch table
``ChatRoom.HANDLERS``.  Both framings use them: IRC's ``NICK``, ``KICK``, ``TOPIC``,
``MODE``, ``INVITE``, ``AWAY``, ``OPER`` and ``WALLOPS`` are turned into these messages
by the IRC codec, and chatlab's binary client sends them as frames.

Queries (a room's topic or modes, WHOIS, WHOWAS, LUSERS...) are all answered with one
:class:`~chatlab.core.protocol.WhoReply` holding what the asker may see
(:func:`details`): secret rooms and room keys are shown to members only.
"""

from __future__ import annotations

import hmac
import unicodedata
from typing import TYPE_CHECKING, Any

from . import protocol as p
from .channels import MAX_BANS, MAX_KEY, ROOM_MODES, USER_MODES, ModeChange, ModeError, normalize_mask, parse_modes

if TYPE_CHECKING:
    from .chatroom import ChatRoom, Output, Session


def _send(session: Session, message: p.Message) -> Any:
    from .chatroom import Send

    return Send(session, message)


def _broadcast(to: list[Session], message: p.Message) -> Any:
    from .chatroom import Broadcast

    return Broadcast(to, message)


def normalize(name: str) -> str:
    from .chatroom import normalize_name

    return normalize_name(name)


# ------------------------------------------------------------------ nick, away, oper, wallops


def on_nick(room: ChatRoom, session: Session, message: p.Nick) -> list[Output]:
    nick = unicodedata.normalize("NFKC", message.nick).strip()
    key = normalize(nick)
    problem = room._nick_problem(message.nick, nick, key, me=session)
    if problem:
        return [room._error(session, *problem, subject=message.nick)]
    old = session.nick or ""
    if nick == old:
        return []
    room._remember(session)
    if room.nicks.get(session.nick_key) is session:
        del room.nicks[session.nick_key]
    session.nick, session.nick_key = nick, key
    room.nicks[key] = session
    notice = p.Notice("nick", f"{old} is now known as {nick}", old, target=nick)
    return [_broadcast(room._neighbours(session, include_self=True), notice)]


def on_away(room: ChatRoom, session: Session, message: p.Away) -> list[Output]:
    session.away = message.text
    said = f"you are away: {message.text}" if message.text else "you are back"
    return [_send(session, p.Notice("away", said, session.nick or "", detail=message.text))]


def on_oper(room: ChatRoom, session: Session, message: p.Oper) -> list[Output]:
    expected = (room.settings.opers or {}).get(message.name)
    if expected is None or not hmac.compare_digest(expected.encode(), message.password.encode()):
        return [room._error(session, "bad-oper", "wrong operator name or password (the server's --oper NAME=PASSWORD)")]
    session.modes.add("o")
    me = session.nick or ""
    return [_send(session, p.Notice("oper", "you are now a server operator", me, target=me,
                                    detail="+o"))]


def on_wallops(room: ChatRoom, session: Session, message: p.Wallops) -> list[Output]:
    if "o" not in session.modes:
        return [room._error(session, "not-oper", "only server operators send WALLOPS (OPER first)")]
    readers = [s for s in room.nicks.values() if "w" in s.modes or s is session]
    return [_broadcast(readers, p.Notice("wallops", message.text, session.nick or "", detail=message.text))]


# ------------------------------------------------------------------ rooms: kick, topic, invite


def _room_for(room: ChatRoom, session: Session, name: str, member: bool = True) -> tuple[str, Any]:
    """``(key, None)`` if ``session`` may act on room ``name``, else ``("", the error to send)``."""
    key = normalize(name)
    if key not in room.rooms:
        return "", room._error(session, "no-such-room", f"there is no room {name!r}", name)
    if member and key not in session.rooms:
        return "", room._error(session, "not-in-room", f"you are not in {room.room_names[key]}", room.room_names[key])
    return key, None


def _is_op(room: ChatRoom, session: Session, key: str) -> bool:
    return session in room._state(key).ops


def on_kick(room: ChatRoom, session: Session, message: p.Kick) -> list[Output]:
    key, error = _room_for(room, session, message.room)
    if error:
        return [error]
    name = room.room_names[key]
    if not _is_op(room, session, key):
        return [room._error(session, "not-operator", f"only {name}'s operators may kick", name)]
    target = room.find(message.nick)
    if target is None or key not in target.rooms:
        return [room._error(session, "user-not-in-room", f"{message.nick} is not in {name}", f"{message.nick} {name}")]
    reason = message.reason or session.nick or ""
    notice = p.Notice("kick", f"{session.nick} kicked {target.nick} out of {name} ({reason})", session.nick or "", name,
                      target=target.nick or "", detail=reason)
    told = list(room.rooms[key])
    room._remove_member(target, key)
    return [_broadcast(told, notice)]


def on_topic(room: ChatRoom, session: Session, message: p.Topic) -> list[Output]:
    key, error = _room_for(room, session, message.room, member=message.change)
    if error:
        return [error]
    if not message.change:
        if not room._visible(session, key):
            return [room._error(session, "not-in-room", f"you are not in {room.room_names[key]}", room.room_names[key])]
        return [_send(session, p.WhoReply(channels={room.room_names[key]: _channel(room, session, key)}))]
    state, name = room._state(key), room.room_names[key]
    if "t" in state.flags and session not in state.ops:
        return [room._error(session, "not-operator", f"only {name}'s operators set its topic (mode +t)", name)]
    state.topic, state.topic_by = message.text[: room.settings.max_message], session.nick or ""
    state.topic_at = room.now
    text = (f"{session.nick} set the topic of {name}: {state.topic}" if state.topic
            else f"{session.nick} cleared the topic of {name}")
    return [_broadcast(list(room.rooms[key]), p.Notice("topic", text, session.nick or "", name, detail=state.topic))]


def on_invite(room: ChatRoom, session: Session, message: p.Invite) -> list[Output]:
    target = room.find(message.nick)
    if target is None:
        return [room._error(session, "no-such-nick", f"nobody called {message.nick!r} is online", message.nick)]
    key, error = _room_for(room, session, message.room)
    if error:
        return [error]
    name, state = room.room_names[key], room._state(key)
    if "i" in state.flags and session not in state.ops:
        return [room._error(session, "not-operator", f"{name} is invite only: only its operators invite", name)]
    if key in target.rooms:
        return [room._error(session, "already-in-room", f"{target.nick} is already in {name}", f"{target.nick} {name}")]
    state.invited.add(target.nick_key)
    notice = p.Notice("invite", f"{session.nick} invites {target.nick} into {name}", session.nick or "", name,
                      target=target.nick or "")
    outputs: list[Output] = [_send(target, notice), _send(session, notice)]
    if target.away:
        outputs.append(_send(session, p.Notice("away", f"{target.nick} is away: {target.away}", target.nick or "",
                                               detail=target.away)))
    return outputs


# ------------------------------------------------------------------ modes


def on_mode(room: ChatRoom, session: Session, message: p.Mode) -> list[Output]:
    if normalize(message.target) == session.nick_key:
        return _user_mode(room, session, message)
    key = normalize(message.target)
    if key not in room.rooms:
        if room.find(message.target) is not None:
            return [room._error(session, "users-dont-match", "you may not change another user's modes", message.target)]
        return [room._error(session, "no-such-room", f"there is no room {message.target!r}", message.target)]
    if not message.modes.strip("+-") or message.modes.strip("+-") == "b" and not message.args:
        return [_send(session, p.WhoReply(channels={room.room_names[key]: _channel(room, session, key)}))]
    name = room.room_names[key]
    try:
        changes = parse_modes(message.modes, message.args)
    except ModeError as exc:
        return [room._error(session, "unknown-mode", f"{exc.letter!r} is not a room mode here ({ROOM_MODES})",
                            exc.letter)]
    if not _is_op(room, session, key):
        code = "not-operator" if key in session.rooms else "not-in-room"
        return [room._error(session, code, f"only {name}'s operators change its modes", name)]
    outputs: list[Output] = []
    done: list[ModeChange] = []
    for change in changes:
        applied, error = _apply(room, session, key, change)
        if error is not None:
            outputs.append(error)
        elif applied is not None:
            done.append(applied)
    if done:
        detail = _mode_text(done)
        notice = p.Notice("mode", f"{session.nick} sets mode {detail} on {name}", session.nick or "", name,
                          detail=detail)
        outputs.append(_broadcast(list(room.rooms[key]), notice))
    return outputs


def _apply(room: ChatRoom, session: Session, key: str, change: ModeChange) -> tuple[ModeChange | None, Any]:
    """Apply one change to room ``key``: ``(what changed, None)``, ``(None, None)`` (nothing), or ``(None, error)``."""
    state, name = room._state(key), room.room_names[key]
    sign, letter, arg = change
    if letter in "ov":
        target = room.find(arg)
        if target is None or key not in target.rooms:
            return None, room._error(session, "user-not-in-room", f"{arg} is not in {name}", f"{arg} {name}")
        group = state.ops if letter == "o" else state.voiced
        (group.add if sign == "+" else group.discard)(target)
        return ModeChange(sign, letter, target.nick or arg), None
    if letter == "b":
        return _ban(room, session, key, sign, arg), None
    if letter == "k":
        return _key(room, session, key, sign, arg)
    if letter == "l":
        return _limit(state, change), None
    had = letter in state.flags
    (state.flags.add if sign == "+" else state.flags.discard)(letter)
    return (change if had != (sign == "+") else None), None


def _limit(state: Any, change: ModeChange) -> ModeChange | None:
    if change.sign == "-":
        was, state.limit = state.limit, 0
        return change if was else None
    if not change.arg.isdigit() or int(change.arg) <= 0:
        return None
    state.limit = int(change.arg)
    return ModeChange("+", "l", str(state.limit))


def _ban(room: ChatRoom, session: Session, key: str, sign: str, arg: str) -> ModeChange | None:
    state, mask = room._state(key), normalize_mask(arg)
    present = [b for b in state.bans if b[0].casefold() == mask.casefold()]
    if sign == "+" and not present and len(state.bans) < MAX_BANS:
        state.bans.append((mask, session.nick or "", room.now))
        return ModeChange("+", "b", mask)
    if sign == "-" and present:
        state.bans.remove(present[0])
        return ModeChange("-", "b", mask)
    return None


def _key(room: ChatRoom, session: Session, key: str, sign: str, arg: str) -> tuple[ModeChange | None, Any]:
    name = room.room_names[key]
    if key in room.preset_passwords:
        return None, room._error(session, "key-set", f"{name}'s password is set by the server and stays", name)
    if sign == "-":
        was = room.passwords.pop(key, None)
        return (ModeChange("-", "k", "*") if was is not None else None), None
    if not arg or " " in arg or len(arg.encode()) > MAX_KEY or not arg.isprintable():
        return None, room._error(session, "bad-key", f"a room key is 1-{MAX_KEY} bytes without spaces", name)
    room.passwords[key] = arg
    return ModeChange("+", "k", arg), None


def _mode_text(changes: list[ModeChange]) -> str:
    """``[+o bob, +v carol, -k *]`` -> ``"+ov-k bob carol *"``."""
    letters, args, sign = "", [], ""
    for change in changes:
        if change.sign != sign:
            letters += change.sign
            sign = change.sign
        letters += change.letter
        if change.arg:
            args.append(change.arg)
    return " ".join([letters, *args])


def _user_mode(room: ChatRoom, session: Session, message: p.Mode) -> list[Output]:
    if not message.modes.strip("+-"):
        return [_send(session, p.WhoReply(people={session.nick or "": _person(room, session, session)}))]
    try:
        changes = parse_modes(message.modes, [], known=USER_MODES)
    except ModeError as exc:
        return [room._error(session, "unknown-user-mode", f"{exc.letter!r} is not a user mode here ({USER_MODES})",
                            exc.letter)]
    done = []
    for sign, letter, _ in changes:
        if letter == "o" and sign == "+":
            continue  # only OPER makes an operator
        had = letter in session.modes
        (session.modes.add if sign == "+" else session.modes.discard)(letter)
        if had != (sign == "+"):
            done.append(ModeChange(sign, letter))
    if not done:
        return []
    detail = _mode_text(done)
    return [_send(session, p.Notice("mode", f"your modes: {detail}", session.nick or "", target=session.nick or "",
                                    detail=detail))]


# ------------------------------------------------------------------ queries


def _person(room: ChatRoom, asker: Session, session: Session) -> dict[str, Any]:
    rooms = {room.room_names[k]: room._state(k).prefix(session) for k in session.rooms if room._visible(asker, k)}
    invited = [room.room_names[k] for k, st in room.state.items() if session.nick_key in st.invited] \
        if asker is session else []  # one's own invitations only
    return {"user": session.user or session.nick or "", "realname": session.realname or session.nick or "",
            "invited": invited,
            "away": session.away, "oper": "o" in session.modes, "modes": "+" + "".join(sorted(session.modes)),
            "idle": max(0, int(room.now - session.last_said_at)), "signon": room.wall(session.signon), "rooms": rooms}


def _channel(room: ChatRoom, asker: Session, key: str) -> dict[str, Any]:
    state = room._state(key)
    member = key in asker.rooms
    visible = room._visible(asker, key)
    modes, args = state.mode_string(room.passwords.get(key), show_args=member)
    return {
        "members": {m.nick or "": state.prefix(m) for m in room.rooms.get(key, ())} if visible else {},
        "topic": state.topic, "topic_by": state.topic_by, "topic_at": room.wall(state.topic_at),
        "modes": " ".join([modes, *args]), "created": room.wall(state.created_at),
        "bans": [f"{mask} {by} {room.wall(at)}" for mask, by, at in state.bans], "secret": "s" in state.flags,
        "member": member,
    }


def details(room: ChatRoom, asker: Session, who: p.Who) -> dict[str, Any]:
    """The detailed fields of a :class:`~chatlab.core.protocol.WhoReply` for ``who``, as ``asker`` may see them."""
    people: dict[str, dict[str, Any]] = {}
    channels: dict[str, dict[str, Any]] = {}
    if who.full:
        people = {s.nick: _person(room, asker, s) for s in room.nicks.values() if s.nick}
        channels = {room.room_names[k]: _channel(room, asker, k) for k in room.rooms if room._visible(asker, k)}
    if who.nick:
        target = room.find(who.nick)
        if target is not None and target.nick:
            people[target.nick] = _person(room, asker, target)
    if who.room and normalize(who.room) in room.rooms:
        key = normalize(who.room)
        channels[room.room_names[key]] = _channel(room, asker, key)
        if room._visible(asker, key):
            people.update({m.nick: _person(room, asker, m) for m in room.rooms[key] if m.nick})
    return {"people": people, "channels": channels, "history": _history(room, who.was), "stats": _stats(room)}


def _history(room: ChatRoom, nick: str) -> list[dict[str, Any]]:
    """WHOWAS: the last sessions of ``nick``, newest first."""
    if not nick:
        return []
    key = normalize(nick)
    return [{k: v for k, v in h.items() if k != "key"} for h in reversed(room.history) if h["key"] == key]


def _stats(room: ChatRoom) -> dict[str, int]:
    """LUSERS' counts."""
    registered = list(room.nicks.values())
    return {"users": len(registered), "invisible": sum("i" in s.modes for s in registered),
            "opers": sum("o" in s.modes for s in registered), "unknown": len(room.sessions) - len(registered),
            "rooms": len(room.rooms)}


def add_operator_handlers(cls: type[ChatRoom]) -> None:
    """Add this module's handlers to ``cls.HANDLERS``."""
    cls.HANDLERS.update({
        p.Nick: on_nick, p.Kick: on_kick, p.Topic: on_topic, p.Mode: on_mode, p.Invite: on_invite,
        p.Away: on_away, p.Oper: on_oper, p.Wallops: on_wallops,
    })


__all__ = ["add_operator_handlers", "details", "on_nick", "on_kick", "on_topic", "on_mode", "on_invite", "on_away",
           "on_oper", "on_wallops"]
