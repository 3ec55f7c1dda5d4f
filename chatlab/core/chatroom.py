"""The chat rules, sans-I/O: what the server does with each message, and nothing about sockets.

This module imports no socket, selectors, threading or time.  It is fed decoded
:mod:`chatlab.core.protocol` messages and the time, and answers with *outputs*:

* :class:`Send` ``(to, message)``: one message for one session;
* :class:`Broadcast` ``(to, message)``: the same message for several (the
  server encodes it once per framing, not once per member);
* :class:`Forward`: a file-transfer frame passed on by the relay (:mod:`chatlab.core.relay`);
* :class:`Pause` ``(session, until)``: flood control says do not read this
  session before ``until``; the message that caused it was *not* handled and
  must be handed back then;
* :class:`Close` ``(session, reason, flush)``: this session is over (after its
  queue is sent, if ``flush``).

The server (:mod:`chatlab.server`) owns the sockets and applies the outputs;
the tests (``tests/test_chatroom.py``) feed messages and a fake clock and read
the outputs, with no socket anywhere.  The rules, once:

* Nicknames are NFKC-normalised and compared casefolded, so ``ｂｏｂ``, ``BOB``
  and ``bob`` are one name; a few are reserved.  A bad or taken nickname
  closes a binary client; a session with ``nick_retries`` (text clients, which
  type ``NICK`` again) gets the error and stays unregistered.
* Everyone is in exactly one room; rooms are created by joining them and vanish
  when the last member leaves (the default room stays).  As IRC's channel keys:
  whoever creates a room with a password sets it, later joiners need it;
  passwords given to :class:`Settings` are there from the start and stay.
* Flood control is a token bucket per session; a client over its rate is
  simply read later (nothing is dropped), and told so once per episode.
* Keepalive: a session silent for ``ping_interval`` is pinged, and closed if
  nothing arrives within ``ping_timeout``; one that never says HELLO is closed
  after ``hello_timeout``.

What the server understands is the table :data:`ChatRoom.HANDLERS`, one
handler per message kind.
"""

from __future__ import annotations

import hmac
import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, NamedTuple, Union

from . import protocol as p
from ..errors import RemoteProtocolError
from .relay import MAX_TRANSFERS, RELAY_HIGH_WATER, FileRelay, Forward, Send

log = logging.getLogger(__name__)  # "chatlab.core.chatroom": the chat rules log who is dropped and why

RESERVED_NICKS = frozenset({"server", "chatlab", "admin", "root", "system", "operator", "nickserv", "everyone"})
NICK_RE = re.compile(r"^[^\W\d][\w\-]{0,19}$")  # a letter first, then letters, digits, _ and -
ROOM_RE = re.compile(r"^#?[\w\-]{1,32}$")
# Messages that cost a flood token (session upkeep such as PING does not).
PACED = frozenset({p.Say, p.Whisper, p.Join, p.Leave, p.Who, p.FileOffer})


def normalize_name(name: str) -> str:
    """The key two names collide on: NFKC folds look-alikes (``ｂｏｂ`` -> ``bob``), casefold folds case."""
    return unicodedata.normalize("NFKC", name).casefold()


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class FloodLimit:
    """A token bucket per client: ``burst`` messages at once, then ``rate`` per second."""

    rate: float = 5.0
    burst: int = 10


@dataclass(frozen=True)
class Settings:
    """Every setting of a chatlab server, in one frozen object (``chatlab.Server(**settings)``).

    The first block is the chat's, the second the relay's, the last the socket
    loop's (the chat core ignores those).
    """

    flood_limit: FloodLimit | None = FloodLimit()
    max_rooms: int = 100
    max_message: int = 2000  # characters
    ping_interval: float = 30.0
    ping_timeout: float = 60.0
    hello_timeout: float = 10.0
    default_room: str = "lobby"
    room_passwords: dict[str, str] | None = None  # preset: {"class": "secret"}; they stay when the room empties
    motd: str = "Welcome to chatlab. Type /help for commands."

    relay_high_water: int = RELAY_HIGH_WATER
    max_transfers: int = MAX_TRANSFERS

    selector: str = "select"
    max_clients: int = 200
    max_payload: int = p.MAX_PAYLOAD
    max_queue: int = 8 * 1024 * 1024
    backlog: int = 128


# ---------------------------------------------------------------- outputs


class Broadcast(NamedTuple):
    """Output: the same ``message`` for every session in ``to`` (encode it once)."""

    to: list[Any]
    message: p.Message


class Pause(NamedTuple):
    """Output: do not read ``session`` before ``until``; hand the held message back then."""

    session: Any
    until: float


class Close(NamedTuple):
    """Output: ``session`` is over, for ``reason``; send what is queued first if ``flush``."""

    session: Any
    reason: str
    flush: bool = True


Output = Union[Send, Broadcast, Forward, Pause, Close]


# ---------------------------------------------------------------- per session


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; each paced message takes one."""

    def __init__(self, limit: FloodLimit, now: float) -> None:
        self.rate = limit.rate
        self.burst = float(limit.burst)
        self.tokens = self.burst
        self.updated_at = now

    def take(self, now: float) -> float:
        """Take a token: ``0.0`` if there was one, else how long to wait until there is."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated_at) * self.rate)
        self.updated_at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class Session:
    """Everything the chat rules know about one connection.

    The I/O layer makes one per connection (the server's ``Connection`` is a
    subclass that adds the socket) and hands it to :meth:`ChatRoom.connect`.
    """

    def __init__(self, now: float = 0.0, *, accepts_files: bool = True, nick_retries: bool = False,
                 peer: str = "") -> None:
        self.peer = peer  # the address, for logs
        self.accepts_files = accepts_files  # False for text clients: file offers to them are refused
        self.nick_retries = nick_retries  # a bad or taken nick is an error, not a disconnect
        self.nick: str | None = None  # None until HELLO succeeds
        self.nick_key = ""  # normalize_name(nick): the key in ChatRoom.nicks
        self.room_key = ""  # normalize_name(room): the key in ChatRoom.rooms; "" before HELLO
        self.connected_at = now
        self.last_heard_at = now
        self.ping_sent_at = 0.0  # 0.0: no ping outstanding
        self.bucket: TokenBucket | None = None
        self.flood_told = False  # the flood notice is sent once per episode
        self.gone = False

    @property
    def name(self) -> str:
        """The nickname, or the address before HELLO (for logs and traces)."""
        return self.nick or self.peer

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name or hex(id(self))}>"


# ---------------------------------------------------------------- the room


class ChatRoom:
    """All rooms of one server, their members, and the rules.  Sans-I/O.

    Feed it with :meth:`connect`, :meth:`receive` (a message from a session),
    :meth:`receive_transfer` (a transfer frame), :meth:`tick` (the clock) and
    :meth:`disconnect`; each returns a list of outputs.
    """

    HANDLERS: ClassVar[dict[type, Callable[[ChatRoom, Session, Any], list[Output]]]]

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings = settings or Settings()
        self.sessions: set[Session] = set()
        self.nicks: dict[str, Session] = {}  # normalize_name(nick) -> session
        self.rooms: dict[str, list[Session]] = {}  # normalize_name(room) -> members, in joining order
        self.room_names: dict[str, str] = {}  # normalize_name(room) -> the name as first written
        self.preset_passwords = {normalize_name(k): v for k, v in (settings.room_passwords or {}).items()}
        self.passwords = dict(self.preset_passwords)  # preset ones, plus those set by a room's creator
        self.default_key = normalize_name(settings.default_room)
        self.relay = FileRelay(settings.relay_high_water, settings.max_transfers)

    # ------------------------------------------------------------ entry points

    def connect(self, session: Session, now: float) -> None:
        """A new connection: its hello timeout and flood bucket start now."""
        session.connected_at = session.last_heard_at = now
        if self.settings.flood_limit is not None:
            session.bucket = TokenBucket(self.settings.flood_limit, now)
        self.sessions.add(session)

    def receive(self, session: Session, message: p.Message, now: float) -> list[Output]:
        """``session`` sent ``message`` at ``now``: what happens."""
        session.last_heard_at, session.ping_sent_at = now, 0.0
        if type(message) in PACED:
            paused = self.pace(session, now)
            if paused:
                return paused
        handler = self.HANDLERS.get(type(message))
        try:
            if handler is None:
                raise RemoteProtocolError(f"clients may not send {message.TYPE.name} frames")
            if session.nick is None and not isinstance(message, (p.Hello, p.Ping, p.Pong, p.Quit)):
                raise RemoteProtocolError(f"the first frame must be HELLO, got {message.TYPE.name}")
            return handler(self, session, message)
        except RemoteProtocolError as exc:
            return self.kick(session, "protocol-error", str(exc))
        except (ValueError, RecursionError) as exc:
            # Still the peer's fault (text that cannot be re-encoded...), and it must cost this client only.
            return self.kick(session, "protocol-error", f"malformed {message.TYPE.name} frame ({type(exc).__name__}: {exc})")

    def receive_transfer(self, session: Session, frame: p.Frame, now: float) -> list[Output]:
        """A file-transfer frame from ``session``: the relay's business, after the same checks."""
        session.last_heard_at, session.ping_sent_at = now, 0.0
        try:
            if session.nick is None:
                raise RemoteProtocolError(f"the first frame must be HELLO, got {frame.type.name}")
            if frame.type is not p.FrameType.FILE_OFFER:
                return list(self.relay.route(session, frame))
            paused = self.pace(session, now)
            if paused:
                return paused
            offer = p.decode_message(frame)
            assert isinstance(offer, p.FileOffer)
            return list(self.relay.offer(session, offer, self.nicks.get(normalize_name(offer.peer))))
        except RemoteProtocolError as exc:
            return self.kick(session, "protocol-error", str(exc))
        except (ValueError, RecursionError) as exc:
            return self.kick(session, "protocol-error", f"malformed {frame.type.name} frame ({type(exc).__name__}: {exc})")

    def pace(self, session: Session, now: float) -> list[Output]:
        """Flood control: ``[]`` if ``session`` may go on now, else a :class:`Pause` (and, once
        per episode, a notice saying why)."""
        if session.bucket is None:
            return []
        wait = session.bucket.take(now)
        if not wait:
            session.flood_told = False
            return []
        outputs: list[Output] = [Pause(session, now + wait)]
        if not session.flood_told:
            session.flood_told = True
            outputs.insert(0, Send(session, p.Notice(
                "flood", f"you are sending faster than {session.bucket.rate:g} messages/s: "
                         "the server reads you more slowly; nothing is lost")))
        return outputs

    def tick(self, now: float) -> list[Output]:
        """Keepalive: ping the silent, close the dead and those who never said HELLO."""
        s = self.settings
        outputs: list[Output] = []
        for session in list(self.sessions):
            if session.nick is None and now - session.connected_at > s.hello_timeout:
                outputs += self.kick(session, "hello-timeout", f"no HELLO within {s.hello_timeout:g} s")
            elif session.ping_sent_at and now - session.ping_sent_at > s.ping_timeout:
                outputs.append(Close(session, f"ping timeout: no answer for {now - session.last_heard_at:.1f} s",
                                     flush=False))
            elif not session.ping_sent_at and now - session.last_heard_at > s.ping_interval:
                session.ping_sent_at = now
                outputs.append(Send(session, p.Ping(int(now))))
        return outputs

    def disconnect(self, session: Session, reason: str) -> list[Output]:
        """``session`` is gone (it quit, broke, or was closed): tell those who care."""
        if session.gone:
            return []
        session.gone = True
        self.sessions.discard(session)
        outputs: list[Output] = []
        if session.nick is not None:
            if self.nicks.get(session.nick_key) is session:
                del self.nicks[session.nick_key]
            outputs += self._leave_room(session, "quit", f"{session.nick} quit ({reason})" if reason else f"{session.nick} quit")
            outputs += self.relay.drop(session, reason)
        return outputs

    def kick(self, session: Session, code: str, text: str) -> list[Output]:
        """Tell a client what it did wrong, then close it once that is sent."""
        log.warning("dropping %s: %s", session.name, text)
        return [Send(session, p.ErrorMessage(code, text)), Close(session, text, flush=True)]

    # ------------------------------------------------------------ the handlers

    def on_hello(self, session: Session, hello: p.Hello) -> list[Output]:
        if session.nick is not None:
            return [self._error(session, "already-registered", f"you are already {session.nick}")]
        nick = unicodedata.normalize("NFKC", hello.nick).strip()
        key = normalize_name(nick)
        problem = None
        if not NICK_RE.match(nick):
            problem = ("bad-nick", f"{hello.nick!r} is not a valid nickname: 1-20 letters, digits, '_' or '-', starting with a letter")
        elif key in RESERVED_NICKS:
            problem = ("nick-reserved", f"the nickname {nick!r} is reserved")
        elif key in self.nicks:
            problem = ("nick-taken", f"the nickname {nick!r} is already in use")
        if problem:
            if session.nick_retries:
                return [self._error(session, *problem)]
            return self.kick(session, *problem)
        session.nick, session.nick_key = nick, key
        self.nicks[key] = session
        log.info("%s is %s", session.peer, nick)
        welcome = Send(session, p.Welcome(nick, self.room_display(self.settings.default_room), self.settings.motd))
        return [welcome, *self._enter_room(session, self.settings.default_room)]

    def on_say(self, session: Session, say: p.Say) -> list[Output]:
        problem = self._check_text(session, say.text)
        if problem:
            return [problem]
        room = session.room_key
        return [Broadcast(list(self.rooms[room]), p.ChatMessage(self.room_names[room], session.nick or "", say.text, say.action))]

    def on_whisper(self, session: Session, whisper: p.Whisper) -> list[Output]:
        target = self.nicks.get(normalize_name(whisper.to))
        if target is None:
            return [self._error(session, "no-such-nick", f"nobody called {whisper.to!r} is online")]
        problem = self._check_text(session, whisper.text)
        if problem:
            return [problem]
        private = p.PrivateMessage(session.nick or "", target.nick or "", whisper.text, whisper.action)
        if target is session:
            return [Send(target, private)]
        return [Send(target, private), Send(session, private)]  # the sender's copy confirms delivery

    def on_join(self, session: Session, join: p.Join) -> list[Output]:
        room, password = join.room, join.password
        key = normalize_name(room)
        if " " in room.strip():
            return [self._error(session, "bad-room", f"{room!r} is not a valid room name: spaces are not allowed in "
                                                     "room names (in the terminal client a password is given as /join ROOM key=PASSWORD)")]
        if not ROOM_RE.fullmatch(room):  # fullmatch: "$" alone would let "class\n" pass
            return [self._error(session, "bad-room", f"{room!r} is not a valid room name: 1-32 letters, digits, '_' or '-'")]
        if key == session.room_key:
            return [self._error(session, "already-in-room", f"you are already in {self.room_display(room)}")]
        exists = key in self.rooms or key == self.default_key
        if not exists and len(self.rooms) >= self.settings.max_rooms:
            return [self._error(session, "too-many-rooms", f"the server already has {self.settings.max_rooms} rooms")]
        expected = self.passwords.get(key)
        if expected is not None and not hmac.compare_digest(expected.encode(), password.encode()):
            return [self._error(session, "bad-password", f"room {room!r} needs the right password")]
        outputs = self._leave_room(session, "leave", f"{session.nick} left for {room}")
        if not exists and password:  # the creator sets the key, as in IRC
            self.passwords[key] = password
        outputs += self._enter_room(session, room)
        if exists and password and expected is None:
            outputs.append(Send(session, p.Notice("info", f"{self.room_display(room)} has no password: "
                                                          "yours was ignored (only a room's creator sets one)")))
        return outputs

    def on_leave(self, session: Session, leave: p.Leave) -> list[Output]:
        return self.on_join(session, p.Join(self.settings.default_room))

    def on_who(self, session: Session, who: p.Who) -> list[Output]:
        users = {s.nick: self.room_names[s.room_key] for s in self.nicks.values() if s.nick}
        rooms = {self.room_names[k]: len(members) for k, members in self.rooms.items()}
        return [Send(session, p.WhoReply(users, rooms))]

    def on_ping(self, session: Session, ping: p.Ping) -> list[Output]:
        return [Send(session, p.Pong(ping.token))]

    def on_pong(self, session: Session, pong: p.Pong) -> list[Output]:
        return []  # being heard from is all a PONG is for (receive() noted it)

    def on_quit(self, session: Session, quit: p.Quit) -> list[Output]:
        return [Close(session, quit.reason, flush=True)]

    # ------------------------------------------------------------ helpers

    def find(self, nick: str) -> Session | None:
        """The session online under ``nick`` (any case, any look-alike), or ``None``."""
        return self.nicks.get(normalize_name(nick))

    def room_display(self, room: str) -> str:
        """A room's name as its creator wrote it."""
        return self.room_names.get(normalize_name(room), room)

    def _error(self, session: Session, code: str, text: str) -> Send:
        return Send(session, p.ErrorMessage(code, text))

    def _check_text(self, session: Session, text: str) -> Send | None:
        if not text.strip():
            return self._error(session, "empty-message", "an empty message was not sent")
        if len(text) > self.settings.max_message:
            return self._error(session, "message-too-long",
                               f"messages are limited to {self.settings.max_message} characters; yours had {len(text)}")
        return None

    def _enter_room(self, session: Session, room: str) -> list[Output]:
        key = normalize_name(room)
        name = self.room_names.setdefault(key, room)
        members = self.rooms.setdefault(key, [])
        members.append(session)
        session.room_key = key
        # Everyone in the room hears it, the newcomer included: that is its confirmation.
        return [Broadcast(list(members), p.Notice("join", f"{session.nick} joined {name}", session.nick or "", name))]

    def _leave_room(self, session: Session, kind: str, text: str) -> list[Output]:
        key = session.room_key
        members = self.rooms.get(key)
        session.room_key = ""
        if members is None:
            return []
        members.remove(session)
        name = self.room_names[key]
        if not members and key != self.default_key:
            del self.rooms[key], self.room_names[key]
            if key not in self.preset_passwords:
                self.passwords.pop(key, None)  # the room is gone, and its creator's key with it
        return [Broadcast(list(members), p.Notice(kind, text, session.nick or "", name))]


ChatRoom.HANDLERS = {
    p.Hello: ChatRoom.on_hello,
    p.Say: ChatRoom.on_say,
    p.Whisper: ChatRoom.on_whisper,
    p.Join: ChatRoom.on_join,
    p.Leave: ChatRoom.on_leave,
    p.Who: ChatRoom.on_who,
    p.Ping: ChatRoom.on_ping,
    p.Pong: ChatRoom.on_pong,
    p.Quit: ChatRoom.on_quit,
}


__all__ = [
    "ChatRoom", "Session", "Settings", "FloodLimit", "TokenBucket", "normalize_name",
    "Send", "Broadcast", "Forward", "Pause", "Close", "Output", "RESERVED_NICKS", "NICK_RE", "ROOM_RE",
]
