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
the tests (``tests/core/test_chatroom.py``) feed messages and a fake clock and read
the outputs, with no socket anywhere.  The rules, once:

* Nicknames are NFKC-normalised and compared casefolded, so ``ｂｏｂ``, ``BOB``
  and ``bob`` are one name; a few are reserved.  A bad or taken nickname
  closes a binary client; a session with ``nick_retries`` (text clients, which
  type ``NICK`` again) gets the error and stays unregistered.
* A user is in any number of rooms.  A plain ``Join`` *moves* (leaves the current
  room first: what chatlab's client did from the start); ``Join(stay=True)`` adds a
  room, and ``Leave(room)`` leaves that one (IRC's JOIN and PART are these).  Rooms
  are created by joining them and vanish when the last member leaves (the default
  room stays).  Whoever creates a room is its operator (:mod:`chatlab.core.channels`:
  modes, topic, kick, invite, bans).  As IRC's channel keys: whoever creates a room
  with a password sets it, later joiners need it; passwords given to
  :class:`Settings` are there from the start and stay.
* A registered user may change nick (everyone sharing a room sees it).  Nicknames
  follow one of two grammars: Unicode letters (the binary client's) or RFC 2812's
  (``[bot]``, ``foo|afk``); look-alikes collide either way.
* Flood control is a token bucket per session; a client over its rate is
  simply read later (nothing is dropped), and told so once per episode.
* Keepalive: a session silent for ``ping_interval`` is pinged, and closed if
  nothing arrives within ``ping_timeout``; one that never says HELLO is closed
  after ``hello_timeout`` (a text client, typed by a person, after
  ``text_hello_timeout``).

What the server understands is the table :data:`ChatRoom.HANDLERS`, one
handler per message kind.
"""

from __future__ import annotations

import hmac
import logging
import re
import unicodedata
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, NamedTuple, Union

from ..errors import RemoteProtocolError
from . import protocol as p
from .channels import RoomState
from .inputs import Event, Gone, Malformed, Received, Stalled, Tick
from .relay import IDLE_TIMEOUT, MAX_PER_PAIR, MAX_TRANSFERS, OFFER_TIMEOUT, RELAY_HIGH_WATER, FileRelay, Forward, Send

log = logging.getLogger(__name__)  # "chatlab.core.chatroom": the chat rules log who is dropped and why

RESERVED_NICKS = frozenset({"server", "chatlab", "admin", "root", "system", "operator", "nickserv", "everyone"})
NICK_RE = re.compile(r"^[^\W\d][\w\-]{0,19}$")  # a letter first, then letters, digits, _ and -
# RFC 2812 2.3.1: a letter or one of [ ] \ ` _ ^ { | } first, then those, digits and "-" (ASCII only).
IRC_NICK_RE = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}\-]{0,19}")
ROOM_RE = re.compile(r"^#?[\w\-]{1,32}$")
# Messages that cost a flood token (session upkeep such as PING does not).
PACED = frozenset({p.Say, p.Whisper, p.Join, p.Leave, p.Who, p.FileOffer,
                   p.Nick, p.Kick, p.Topic, p.Mode, p.Invite, p.Away, p.Oper, p.Wallops})
WHOWAS_KEPT = 200  # departed nicks remembered for WHOWAS


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
    text_hello_timeout: float = 60.0  # a person typing NICK and USER into nc needs time to read the hints
    typing_time: float = 2.0  # a text client that registers faster than this is a program: no auto-join
    default_room: str = "lobby"
    room_passwords: dict[str, str] | None = None  # preset: {"class": "secret"}; they stay when the room empties
    opers: dict[str, str] | None = None  # server operators: {"name": "password"} (OPER; the CLI's --oper)
    motd: str = "Welcome to chatlab. Type /help for commands."

    relay_high_water: int = RELAY_HIGH_WATER
    max_transfers: int = MAX_TRANSFERS
    max_transfers_per_pair: int = MAX_PER_PAIR  # offered or going at once from one sender to one receiver
    offer_timeout: float = OFFER_TIMEOUT  # an offer nobody answers is withdrawn after this long
    transfer_idle_timeout: float = IDLE_TIMEOUT  # an accepted relayed transfer with no frame for this long is cancelled
    stall_timeout: float = 1.0  # a receiver that took nothing this long while its sender is held back: cancelled

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
    """Output: do not read ``session`` before ``until``; hand ``held`` (the message that was
    not handled) back then."""

    session: Any
    until: float
    held: Any = None


class Close(NamedTuple):
    """Output: ``session`` is over, for ``reason``; send what is queued first if ``flush``."""

    session: Any
    reason: str
    flush: bool = True


Output = Union[Send, Broadcast, Forward, Pause, Close]


# The input events (Received, Malformed, Gone, Stalled, Tick) are in core/inputs.py.


# ---------------------------------------------------------------- per session


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; each paced message takes one."""

    def __init__(self, limit: FloodLimit, now: float) -> None:
        self.rate = limit.rate
        self.burst = float(limit.burst)
        self.tokens = self.burst
        self.updated_at = now

    def refill(self, now: float) -> float:
        """Add the tokens earned since the last call; returns how many there are now."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated_at) * self.rate)
        self.updated_at = now
        return self.tokens

    def take(self, now: float) -> float:
        """Take a token: ``0.0`` if there was one, else how long to wait until there is."""
        self.refill(now)
        if self.tokens >= 1.0 - 1e-9:  # (a pause computed to end exactly at one token may leave 0.99999...)
            self.tokens = max(0.0, self.tokens - 1.0)
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
        self.room_key = ""  # the current room (where a Say without a room goes); "" before HELLO or in none
        self.rooms: dict[str, None] = {}  # every room I am in, in joining order (a dict as an ordered set)
        self.user = ""  # IRC USER's username (the nick when not given)
        self.realname = ""
        self.away = ""  # the away message; "" when here
        self.modes: set[str] = set()  # user modes: i (invisible), w (wallops), o (server operator)
        self.signon = now
        self.last_said_at = now  # for WHOIS idle time
        self.connected_at = now
        self.last_heard_at = now
        self.ping_sent_at = 0.0  # 0.0: no ping outstanding
        self.bucket: TokenBucket | None = None
        self.flood_told = False  # the flood notice is sent once per burst (until the bucket is full again)
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

    The I/O layer calls :meth:`connect` for a new connection, then feeds every
    event through :meth:`handle` (:class:`Received`, :class:`Malformed`,
    :class:`Gone`, :class:`Stalled`, :class:`Tick`), which returns a list of
    outputs.  :meth:`receive`, :meth:`receive_transfer`, :meth:`tick` and
    :meth:`disconnect` are the steps it takes, public for the tests.
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
        self.state: dict[str, RoomState] = {}  # normalize_name(room) -> operators, modes, topic... (channels.py)
        self.history: deque[dict[str, Any]] = deque(maxlen=WHOWAS_KEPT)  # departed nicks, newest last
        self.now = 0.0  # the time of the message being handled (the server's monotonic clock)
        self.wall_offset = 0.0  # now + this = the wall clock (IRC shows topic and sign-on times); the server sets it
        if self.default_key in self.preset_passwords:
            # Everyone lands in the default room without a password, so a password on it could
            # only keep out those who left and come back: refused rather than half applied.
            raise ValueError(f"the default room {settings.default_room!r} cannot have a password: everyone joins it "
                             "on arrival; protect another room (e.g. room_passwords={'class': ...})")
        self.relay = FileRelay(settings.relay_high_water, settings.max_transfers, settings.max_transfers_per_pair,
                               settings.offer_timeout, settings.transfer_idle_timeout)

    # ------------------------------------------------------------ entry points

    def handle(self, event: Event, now: float) -> list[Output]:
        """The one entry of the I/O layer: what happens after ``event`` at ``now``.

        A :class:`Pause` in the outputs carries the message it ``held``: the I/O
        layer hands it back (as another :class:`Received`) once the pause is over.
        """
        self.now = now
        if isinstance(event, Received):
            if isinstance(event.item, p.Frame):
                return self.receive_transfer(event.session, event.item, now)
            return self.receive(event.session, event.item, now)
        if isinstance(event, Malformed):
            return self.kick(event.session, "protocol-error", event.text)
        if isinstance(event, Gone):
            return self.disconnect(event.session, event.reason)
        if isinstance(event, Stalled):
            reason = f"{event.receiver.name} has taken nothing for {event.seconds:.0f} s"
            return list(self.relay.cancel_between(event.sender, event.receiver, reason))
        return self.tick(now)

    def connect(self, session: Session, now: float) -> None:
        """A new connection: its hello timeout and flood bucket start now."""
        session.connected_at = session.last_heard_at = now
        if self.settings.flood_limit is not None:
            session.bucket = TokenBucket(self.settings.flood_limit, now)
        self.sessions.add(session)

    def receive(self, session: Session, message: p.Message, now: float) -> list[Output]:
        """``session`` sent ``message`` at ``now``: what happens."""
        session.last_heard_at, session.ping_sent_at = now, 0.0
        self.now = now
        if type(message) in PACED:
            paused = self.pace(session, now, message)
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
            return self.kick(session, "protocol-error",
                             f"malformed {message.TYPE.name} frame ({type(exc).__name__}: {exc})")

    def receive_transfer(self, session: Session, frame: p.Frame, now: float) -> list[Output]:
        """A file-transfer frame from ``session``: the relay's business, after the same checks."""
        session.last_heard_at, session.ping_sent_at = now, 0.0
        try:
            if session.nick is None:
                raise RemoteProtocolError(f"the first frame must be HELLO, got {frame.type.name}")
            if frame.type is not p.FrameType.FILE_OFFER:
                return list(self.relay.route(session, frame, now))
            paused = self.pace(session, now, frame)
            if paused:
                return paused
            offer = p.decode_message(frame)
            assert isinstance(offer, p.FileOffer)
            return list(self.relay.offer(session, offer, self.nicks.get(normalize_name(offer.peer)), now))
        except RemoteProtocolError as exc:
            return self.kick(session, "protocol-error", str(exc))
        except (ValueError, RecursionError) as exc:
            return self.kick(session, "protocol-error",
                             f"malformed {frame.type.name} frame ({type(exc).__name__}: {exc})")

    def pace(self, session: Session, now: float, held: Any = None) -> list[Output]:
        """Flood control: ``[]`` if ``session`` may go on now, else a :class:`Pause` holding
        ``held`` (and, once per burst, a notice saying why).

        A burst ends when the bucket is full again (the client was calm long enough):
        only then may the notice be sent again, however many tokens trickled in between.
        """
        if session.bucket is None:
            return []
        was_full = session.bucket.refill(now) >= session.bucket.burst
        wait = session.bucket.take(now)
        if not wait:
            if was_full:
                session.flood_told = False
            return []
        outputs: list[Output] = [Pause(session, now + wait, held)]
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
            limit = s.text_hello_timeout if session.nick_retries else s.hello_timeout
            if session.nick is None and now - session.connected_at > limit:
                what = "registration (NICK and USER)" if session.nick_retries else "HELLO"
                outputs += self.kick(session, "hello-timeout", f"no {what} within {limit:g} s")
            elif session.ping_sent_at and now - session.ping_sent_at > s.ping_timeout:
                outputs.append(Close(session, f"ping timeout: no answer for {now - session.last_heard_at:.1f} s",
                                     flush=False))
            elif not session.ping_sent_at and now - session.last_heard_at > s.ping_interval:
                session.ping_sent_at = now
                outputs.append(Send(session, p.Ping(int(now))))
        return outputs + list(self.relay.expire(now))

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
            self._remember(session)
            text = f"{session.nick} quit ({reason})" if reason else f"{session.nick} quit"
            others = self._neighbours(session)
            room = self.room_names.get(session.room_key, "")
            for key in list(session.rooms):
                self._remove_member(session, key)
            if others:
                outputs.append(Broadcast(others, p.Notice("quit", text, session.nick, room)))
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
        problem = self._nick_problem(hello.nick, nick, key)
        if problem:
            if session.nick_retries:
                return [self._error(session, *problem)]
            return self.kick(session, *problem)
        session.nick, session.nick_key = nick, key
        session.user, session.realname = hello.user or nick, hello.realname or nick
        session.signon = session.last_said_at = self.now
        self.nicks[key] = session
        log.info("%s is %s", session.peer, nick)
        # A text client that registers at once is a program (an IRC client): it joins what it wants itself.
        typed = not session.nick_retries or self.now - session.connected_at >= self.settings.typing_time
        lobby = hello.lobby and typed
        room = self.room_display(self.settings.default_room) if lobby else ""
        welcome = Send(session, p.Welcome(nick, room, self.settings.motd))
        return [welcome, *self._enter_room(session, self.settings.default_room)] if lobby else [welcome]

    def _nick_problem(self, given: str, nick: str, key: str, me: Session | None = None) -> tuple[str, str] | None:
        """Why ``nick`` cannot be had (a code and a sentence), or ``None``."""
        if not (NICK_RE.match(nick) or IRC_NICK_RE.fullmatch(nick)):
            return ("bad-nick", f"{given!r} is not a valid nickname: 1-20 letters, digits, '_' or '-', starting with "
                                "a letter (or, as in IRC, [ ] \\ ` ^ { | })")
        if key in RESERVED_NICKS:
            return ("nick-reserved", f"the nickname {nick!r} is reserved")
        holder = self.nicks.get(key)
        if holder is not None and holder is not me:
            return ("nick-taken", f"the nickname {nick!r} is already in use")
        return None

    def on_say(self, session: Session, say: p.Say) -> list[Output]:
        problem = self._check_text(session, say.text) or self._may_speak(session, say.room)
        if problem:
            return [] if say.notice else [problem]  # a NOTICE is never answered automatically
        room = normalize_name(say.room) if say.room else session.room_key
        session.last_said_at = self.now
        line = p.ChatMessage(self.room_names[room], session.nick or "", say.text, say.action, notice=say.notice)
        return [Broadcast(list(self.rooms[room]), line)]

    def _may_speak(self, session: Session, room: str) -> Send | None:
        """An error if ``session`` may not speak in ``room`` ("": its current room) now, else ``None``."""
        key = normalize_name(room) if room else session.room_key
        if not key:
            return self._error(session, "not-in-room", "you are in no room: join one first")
        if key not in self.rooms:
            return self._error(session, "no-such-room", f"there is no room {room!r}", room)
        state, name = self._state(key), self.room_names[key]
        member = key in session.rooms
        if not member and "n" in state.flags:
            return self._error(session, "cannot-send", f"you are not in {name} (it takes no messages from outside)",
                               name)
        voiced = session in state.ops or session in state.voiced
        if "m" in state.flags and not voiced:
            return self._error(session, "cannot-send", f"{name} is moderated: only operators and voiced members speak",
                               name)
        if state.bans and not voiced and state.banned(self._mask(session)):  # the mask only when there are bans
            return self._error(session, "cannot-send", f"you are banned from {name}", name)
        return None

    def on_whisper(self, session: Session, whisper: p.Whisper) -> list[Output]:
        target = self.nicks.get(normalize_name(whisper.to))
        problem = None
        if target is None:
            problem = self._error(session, "no-such-nick", f"nobody called {whisper.to!r} is online", whisper.to)
        problem = problem or self._check_text(session, whisper.text)
        if problem or target is None:
            return [] if whisper.notice or problem is None else [problem]  # a NOTICE is never answered automatically
        session.last_said_at = self.now
        private = p.PrivateMessage(session.nick or "", target.nick or "", whisper.text, whisper.action,
                                   notice=whisper.notice)
        if target is session:
            return [Send(target, private)]
        outputs: list[Output] = [Send(target, private), Send(session, private)]  # the sender's copy confirms delivery
        if target.away and not whisper.notice:
            outputs.append(Send(session, p.Notice("away", f"{target.nick} is away: {target.away}", target.nick or "",
                                                  detail=target.away)))
        return outputs

    def on_join(self, session: Session, join: p.Join) -> list[Output]:
        room, password = join.room, join.password
        key = normalize_name(room)
        if not join.stay and key in session.rooms and key != session.room_key:
            return self._move_within(session, key)
        exists = key in self.rooms or key == self.default_key
        expected = self.passwords.get(key)
        refused = self._bad_room_name(session, room) or self._join_refused(session, join, key, exists)
        if refused:
            return [refused]
        outputs: list[Output] = []
        if not join.stay and session.room_key:  # a move: leave the current room first
            outputs += self._leave_room(session, "leave", f"{session.nick} left for {room}")
        if not exists and password:  # the creator sets the key, as in IRC
            self.passwords[key] = password
        outputs += self._enter_room(session, room)
        if exists and password and expected is None:
            outputs.append(Send(session, p.Notice("info", f"{self.room_display(room)} has no password: "
                                                          "yours was ignored (only a room's creator sets one)")))
        return outputs

    def _move_within(self, session: Session, key: str) -> list[Output]:
        """A plain (moving) join of a room ``session`` is in already: leave the current one, make ``key`` current."""
        name = self.room_names[key]
        outputs = self._leave_room(session, "leave", f"{session.nick} left for {name}")
        session.room_key = key
        return [*outputs, Send(session, p.Notice("join", f"{session.nick} joined {name}", session.nick or "", name))]

    def _join_refused(self, session: Session, join: p.Join, key: str, exists: bool) -> Send | None:
        """Why ``join`` of room ``key`` is refused, or ``None``."""
        room = join.room
        if key == session.room_key or (join.stay and key in session.rooms):
            return self._error(session, "already-in-room", f"you are already in {self.room_display(room)}", room)
        if not exists and len(self.rooms) >= self.settings.max_rooms:
            return self._error(session, "too-many-rooms", f"the server already has {self.settings.max_rooms} rooms",
                               room)
        expected = self.passwords.get(key)
        if expected is not None and not hmac.compare_digest(expected.encode(), join.password.encode()):
            return self._error(session, "bad-password", f"room {room!r} needs the right password", room)
        return self._door(session, key, room) if exists else None

    def _bad_room_name(self, session: Session, room: str) -> Send | None:
        if " " in room.strip():
            return self._error(session, "bad-room", f"{room!r} is not a valid room name: spaces are not allowed in "
                                                    "room names (in the terminal client a password is given as "
                                                    "/join ROOM key=PASSWORD)", room)
        if not ROOM_RE.fullmatch(room):  # fullmatch: "$" alone would let "class\n" pass
            return self._error(session, "bad-room",
                               f"{room!r} is not a valid room name: 1-32 letters, digits, '_' or '-'", room)
        return None

    def _door(self, session: Session, key: str, room: str) -> Send | None:
        """The rules of an existing room's door (IRC 471, 473, 474), or ``None``: come in."""
        state, name = self._state(key), self.room_display(room)
        invited = session.nick_key in state.invited
        if state.bans and not invited and state.banned(self._mask(session)):
            return self._error(session, "banned", f"you are banned from {name}", name)
        if "i" in state.flags and not invited:
            return self._error(session, "invite-only", f"{name} is invite only: ask a member for an invitation", name)
        if state.limit and len(self.rooms.get(key, ())) >= state.limit:
            return self._error(session, "room-full", f"{name} is full ({state.limit} members)", name)
        return None

    def on_leave(self, session: Session, leave: p.Leave) -> list[Output]:
        if not leave.room:  # version 1's LEAVE: back to the default room
            return self.on_join(session, p.Join(self.settings.default_room))
        key = normalize_name(leave.room)
        if key not in self.rooms:
            return [self._error(session, "no-such-room", f"there is no room {leave.room!r}", leave.room)]
        if key not in session.rooms:
            return [self._error(session, "not-in-room", f"you are not in {self.room_names[key]}", self.room_names[key])]
        text = f"{session.nick} left {self.room_names[key]}" + (f" ({leave.reason})" if leave.reason else "")
        return self._leave_room(session, "leave", text, key=key, detail=leave.reason, tell_self=True)

    def on_who(self, session: Session, who: p.Who) -> list[Output]:
        users = {s.nick: self.room_names.get(s.room_key, "") for s in self.nicks.values() if s.nick}
        rooms = {self.room_names[k]: len(members) for k, members in self.rooms.items() if self._visible(session, k)}
        if not (who.room or who.nick or who.was or who.full):
            return [Send(session, p.WhoReply(users, rooms))]
        return [Send(session, p.WhoReply(users, rooms, **self._details(session, who)))]

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

    def _error(self, session: Session, code: str, text: str, subject: str = "") -> Send:
        return Send(session, p.ErrorMessage(code, text, subject))

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
        state = self._state(key)
        if not members and key != self.default_key:
            state.ops.add(session)  # whoever creates a room is its operator
        members.append(session)
        state.invited.discard(session.nick_key)
        session.rooms[key] = None
        session.room_key = key
        # Everyone in the room hears it, the newcomer included: that is its confirmation.
        return [Broadcast(list(members), p.Notice("join", f"{session.nick} joined {name}", session.nick or "", name))]

    def _leave_room(self, session: Session, kind: str, text: str, key: str | None = None, detail: str = "",
                    tell_self: bool = False) -> list[Output]:
        """``session`` leaves ``key`` (its current room by default); the others hear ``kind``."""
        key = session.room_key if key is None else key
        members = self.rooms.get(key)
        if members is None or session not in members:
            session.room_key = "" if key == session.room_key else session.room_key
            return []
        name = self.room_names[key]
        told = list(members) if tell_self else [m for m in members if m is not session]
        self._remove_member(session, key)
        return [Broadcast(told, p.Notice(kind, text, session.nick or "", name, detail=detail))]

    def _remove_member(self, session: Session, key: str) -> None:
        """Take ``session`` out of room ``key``; a room left empty vanishes (not the default one)."""
        members = self.rooms.get(key)
        session.rooms.pop(key, None)
        if session.room_key == key:
            session.room_key = next(reversed(session.rooms), "")  # the room joined last becomes current
        if members is None or session not in members:
            return
        members.remove(session)
        state = self.state.get(key)
        if state is not None:
            state.ops.discard(session)
            state.voiced.discard(session)
        if not members and key != self.default_key:
            del self.rooms[key], self.room_names[key]
            self.state.pop(key, None)
            if key not in self.preset_passwords:
                self.passwords.pop(key, None)  # the room is gone, and its creator's key with it

    def _state(self, key: str) -> RoomState:
        state = self.state.get(key)
        if state is None:
            state = self.state[key] = RoomState(self.room_names.get(key, key), self.now, key == self.default_key)
        return state

    def _neighbours(self, session: Session, include_self: bool = False) -> list[Session]:
        """Everyone who shares a room with ``session``, once each (who sees its nick change or quit)."""
        seen: dict[Session, None] = {session: None} if include_self else {}
        for key in session.rooms:
            for member in self.rooms.get(key, ()):
                if member is not session:
                    seen[member] = None
        return list(seen)

    @staticmethod
    def _mask(session: Session) -> str:
        return f"{session.nick}!{session.user or session.nick}@chatlab"  # as IRC clients see everyone

    def wall(self, when: float | None = None) -> int:
        """``when`` (default: now) on the wall clock, in whole seconds since 1970."""
        return int((self.now if when is None else when) + self.wall_offset)

    def _details(self, session: Session, who: p.Who) -> dict[str, Any]:
        from .operators import details  # the module that adds the operators' handlers imports this one

        return details(self, session, who)

    def _visible(self, session: Session, key: str) -> bool:
        """May ``session`` see room ``key`` in lists (+s rooms: members only)?"""
        state = self.state.get(key)
        return state is None or "s" not in state.flags or key in session.rooms

    def _remember(self, session: Session) -> None:
        """WHOWAS: a nick that is given up (a quit, a rename) is remembered for a while."""
        self.history.append({"nick": session.nick or "", "key": session.nick_key, "user": session.user,
                             "realname": session.realname, "at": self.wall()})


from .operators import (
    add_operator_handlers,  # (the handlers of nick, kick, topic, mode...): at the end, it imports this module
)

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
add_operator_handlers(ChatRoom)


__all__ = [
    "ChatRoom", "Session", "Settings", "FloodLimit", "TokenBucket", "normalize_name",
    "Send", "Broadcast", "Forward", "Pause", "Close", "Output",
    "Received", "Malformed", "Gone", "Stalled", "Tick", "Event", "RESERVED_NICKS", "NICK_RE", "IRC_NICK_RE", "ROOM_RE",
]
