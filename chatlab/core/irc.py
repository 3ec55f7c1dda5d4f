"""IRC text lines as a codec for the chat core, sans-I/O: nc, telnet and IRC clients join the rooms.

chatlab's own clients send length-prefixed binary frames (``protocol.py``).  This
module lets anything that speaks IRC (RFC 1459 / RFC 2812, the subset modern
clients use) share the same rooms: ``nc`` and ``telnet`` typed by hand, irssi,
WeeChat, HexChat, a bot written with an IRC library.  Like ``protocol.py`` it never
touches a socket: the server feeds it the bytes it received and gets back the
chat core's messages, and hands it the core's messages to turn into lines.

The theory, once:

* **Framing by delimiter.**  A message is a line: it ends at LF (IRC clients send
  CR LF, ``nc`` a bare LF).  A CR alone ends a line too, as in most IRC servers, and
  empty lines are skipped, so CR LF, LF and CR all work.  Where length-prefix
  framing reads a header and knows how much is coming, delimiter framing must scan
  every byte for the end, cap the line (512 bytes with the CR LF, RFC 1459 2.3),
  and keep the delimiter out of the text: a chat line from a binary client that
  holds a newline is sent to IRC as two lines, or it would forge a second message.
  A line over the cap gets numeric 417 and is dropped up to its end: at most 512
  bytes of an unfinished line are ever held.
* **Text is UTF-8.**  A line that is not, or that holds a NUL byte, gets a NOTICE
  saying why and is dropped; nothing raises.
* **Registration.**  ``NICK`` + ``USER`` (in either order; ``CAP LS`` and ``PASS``
  are tolerated) become ``Hello(nick)`` for the core.  A taken or invalid nick comes
  back as 433 or 432 and the client may send another ``NICK``: the server registers
  text connections with ``nick_retries``.
* **Mapping.**  A chatlab room ``lobby`` is the IRC channel ``#lobby`` (a room a
  binary client named ``#x`` is ``##x``: one ``#`` is always added, so the mapping
  goes both ways).  A chatlab user is in one room at a time: ``JOIN #other`` moves
  them, and they see the ``PART`` an IRC client expects.  IRC clients show what
  their user said themselves, so the core's echo of one's own chat line is dropped.

The codec's surface is the server's ``Codec`` seam::

    codec = IrcCodec()
    codec.feed(b"NICK alice\\r\\nUSER alice 0 * :Alice\\r\\n")
    codec.next_event()    # -> Hello(nick='alice'): for the chat core
    codec.encode(Welcome("alice", "lobby"))   # -> b":chatlab 001 alice :Welcome ..."

``next_event`` returns a ``protocol`` message for the core, ``bytes`` to send
straight back (the codec's own answers: PONG, numerics, ``b""`` when a line needs
no answer) or ``None`` when it needs more bytes.  One call handles at most one line,
so the server's per-turn budget applies to text clients as it does to frames.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from typing import Callable, ClassVar, Iterator, Union

from . import protocol as p
from ..errors import RemoteProtocolError

SERVER = "chatlab"  # the server's name in every line it sends, and every user's host
MAX_LINE = 512  # bytes, CR LF included (RFC 1459 2.3; ngircd's COMMAND_LEN is the same)
MAX_CONTENT = MAX_LINE - 2
REGISTER_HINT = "register with NICK yourname and USER yourname 0 * :Your Name"

Event = Union[p.Message, bytes]  # what next_event hands the server (never a Frame: no files here)
_TOO_LONG = b"\x00too long"  # marks a dropped line in the queue (a real line never holds NUL)

# What the server understands, before and after registering (HELP prints it).
COMMANDS_BEFORE_REGISTRATION = frozenset({"CAP", "PASS", "NICK", "USER", "PING", "PONG", "QUIT", "HELP"})
COMMANDS = COMMANDS_BEFORE_REGISTRATION | frozenset(
    {"PRIVMSG", "NOTICE", "JOIN", "PART", "NAMES", "LIST", "WHO", "WHOIS", "TOPIC", "MODE", "MOTD", "AWAY"}
)
HELP = [
    "chatlab speaks a subset of IRC. Commands:",
    "  NICK name / USER name 0 * :Real Name   register (both, in either order)",
    "  PRIVMSG #room :text                    say text in your room",
    "  PRIVMSG nick :text                     whisper to one user",
    "  JOIN #room [password]                  move to #room (one room at a time)",
    "  PART #room                             back to the default room",
    "  NAMES, LIST, WHO, WHOIS nick, TOPIC, MODE, MOTD, AWAY, PING, QUIT :reason",
]

# The core's error codes as IRC numerics (RFC 2812 5.2; 479 and 417 as ircds use them).
# None: an IRC server says nothing here (JOIN of the channel you are in).
ERROR_NUMERICS: dict[str, str | None] = {
    "nick-taken": "433",  # ERR_NICKNAMEINUSE
    "bad-nick": "432",  # ERR_ERRONEUSNICKNAME
    "nick-reserved": "432",
    "already-registered": "462",  # ERR_ALREADYREGISTRED
    "no-such-nick": "401",  # ERR_NOSUCHNICK
    "bad-room": "479",  # ERR_BADCHANNAME
    "too-many-rooms": "403",  # ERR_NOSUCHCHANNEL: the server will not create it
    "bad-password": "475",  # ERR_BADCHANNELKEY
    "empty-message": "412",  # ERR_NOTEXTTOSEND
    "already-in-room": None,
}
NICK_CODES = frozenset({"nick-taken", "bad-nick", "nick-reserved"})
# Errors after which the server closes the connection: IRC says ERROR, then hangs up.
CLOSING_CODES = frozenset({"protocol-error", "hello-timeout", "server-full"})
_LINE_END = re.compile(r"\r\n|\r|\n")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH"})
TLS_HANDSHAKE = b"\x16\x03"  # a TLS record (handshake, version 3.x): an IRC client set to use TLS


def channel_of(room: str) -> str:
    """The IRC channel of a chatlab room: ``lobby`` -> ``#lobby`` (and ``#x`` -> ``##x``)."""
    return "#" + room


def room_of(channel: str) -> str:
    """The chatlab room of an IRC channel: ``#lobby`` -> ``lobby``."""
    return channel[1:]


def _key(name: str) -> str:
    """Names collide as they do in the core: look-alikes (NFKC) and case folded."""
    return unicodedata.normalize("NFKC", name).casefold()


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
    data = privmsg_lines(message.sender, channel_of(message.room), message.text, message.action)
    _last_chat = (message, data)
    return data


# ------------------------------------------------------------------ the codec


class IrcCodec:
    """One IRC connection's codec: bytes in any split -> core messages; core messages -> lines."""

    accepts_files = False  # no DCC: file offers to an IRC user are refused by the server
    # encode() depends on who receives it (our own echo is dropped), so the server asks each
    # IRC connection; a room line is still formatted once per message (_chat_lines' cache).
    shared_encoding: ClassVar[bool] = False
    nick_retries = True  # a taken nick is a 433 and the client sends another NICK, not a disconnect

    def __init__(self, max_payload: int = p.MAX_PAYLOAD) -> None:
        """``max_payload`` is the binary framing's limit, taken for the seam's sake: a line's is MAX_LINE."""
        self.nick: str | None = None  # set by the core's Welcome: registered
        self.channel = ""  # the channel we are in, e.g. "#lobby"
        self.home = ""  # the default room's channel, where PART takes us
        self.motd = ""
        self._wanted_nick = ""  # from NICK, before registration
        self._user_given = False
        self._password = ""
        self._hello_sent = False  # waiting for the core's Welcome or a nick error
        self._lines: deque[bytes] = deque()  # complete lines not yet handled
        self._partial = b""  # the start of a line whose end has not arrived
        self._discarding = False  # inside a line over the cap: drop up to its end
        self._pending: deque[Event] = deque()  # events a line produced, handed out one per call
        self._who_for: deque[tuple[str, str]] = deque()  # why each Who was sent: ("names", "#lobby")...
        self._last_request: p.Message | None = None  # what a core error answers (401 needs the nick)
        self._ping_tokens: deque[str] = deque()  # a client's PING tokens, for the core's Pong to echo
        self._first_bytes = b""  # the start of the stream: is it TLS?

    # ------------------------------------------------------------- bytes in

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handled (at most one partial line of 510 bytes, plus whole lines)."""
        return len(self._partial) + sum(len(line) for line in self._lines if line is not _TOO_LONG)

    def feed(self, data: bytes) -> None:
        """Bytes from the client, split anywhere."""
        if not data:
            return
        if len(self._first_bytes) < 2:
            self._first_bytes += data[: 2 - len(self._first_bytes)]
        pieces = data.replace(b"\r", b"\n").split(b"\n")  # CR LF, LF and a lone CR all end a line
        pieces[0] = self._partial + pieces[0]
        self._partial = pieces.pop()  # after the last line end: unfinished
        for line in pieces:
            if self._discarding:  # the end of a line already reported as too long
                self._discarding = False
            elif len(line) > MAX_CONTENT:
                self._lines.append(_TOO_LONG)
            elif line:
                self._lines.append(line)
        if len(self._partial) > MAX_CONTENT:
            if not self._discarding:
                self._lines.append(_TOO_LONG)
            self._discarding = True
            self._partial = b""

    def next_event(self) -> Event | None:
        """The next event for the server: a message for the core, bytes for this client, or None."""
        if not self._pending:
            if self._first_bytes.startswith(TLS_HANDSHAKE):
                raise RemoteProtocolError("this server does not speak TLS: connect without it (plain IRC or chatlab frames)")
            if not self._lines:
                return None
            self._handle_line(self._lines.popleft())
        if not self._pending:
            return b""  # the line needed no answer (CAP END, an empty PRIVMSG to nobody...)
        event = self._pending.popleft()
        if not isinstance(event, bytes):
            self._last_request = event
        return event

    def _handle_line(self, raw: bytes) -> None:
        if raw is _TOO_LONG:
            self._numeric("417", text=f"Input line was too long (the limit is {MAX_LINE} bytes with CR LF); it was dropped")
            return
        if b"\x00" in raw:
            self._notice("a line with a NUL byte was dropped: IRC text may not contain NUL")
            return
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._notice(f"a line was dropped: it is not valid UTF-8 ({exc.reason} at byte {exc.start}); "
                         "set your client's encoding to UTF-8")
            return
        parsed = parse_line(line)
        if parsed is None:
            return
        command, params = parsed
        if self.nick is None and command in HTTP_METHODS and params[-1:] and params[-1].startswith("HTTP/"):
            # A browser or curl: close, as IRC servers do (a web page must not make a browser talk IRC)
            raise RemoteProtocolError("this is a chat server (IRC or chatlab frames), not a web server")
        word = line.lstrip(" ").split(" ", 1)[0] if not line.startswith((":", "@")) else command
        if command not in COMMANDS:
            hint = "Unknown command" if self.nick else f"Unknown command; {REGISTER_HINT}"
            self._numeric("421", word, text=hint)
        elif self.nick is None and command not in COMMANDS_BEFORE_REGISTRATION:
            self._numeric("451", text=f"You have not registered; {REGISTER_HINT}")
        else:
            handler: Callable[[list[str]], None] = getattr(self, f"_on_{command.lower()}")
            handler(params)

    # --------------------------------------------------------- what we send

    def _reply(self, data: bytes) -> None:
        if self._pending and isinstance(self._pending[-1], bytes):
            self._pending[-1] += data  # consecutive lines go out together
        else:
            self._pending.append(data)

    def _request(self, message: p.Message) -> None:
        self._pending.append(message)

    def _numeric(self, number: str, *params: str, text: str) -> None:
        self._reply(format_line(SERVER, number, self.nick or "*", *params, text=text))

    def _notice(self, text: str) -> None:
        self._reply(format_line(SERVER, "NOTICE", self.nick or "*", text=text))

    def _ask_who(self, purpose: str, target: str) -> None:
        self._who_for.append((purpose, target))
        self._request(p.Who())

    # ------------------------------------------------------- registration

    def _on_cap(self, params: list[str]) -> None:
        sub = params[0].upper() if params else ""
        if sub in ("LS", "LIST"):
            self._reply(format_line(SERVER, "CAP", self.nick or "*", sub, text=""))  # no capabilities to offer
        elif sub == "REQ":
            self._reply(format_line(SERVER, "CAP", self.nick or "*", "NAK", text=params[1] if len(params) > 1 else ""))
        elif sub != "END":
            self._numeric("410", sub or "*", text="Invalid CAP command")

    def _on_pass(self, params: list[str]) -> None:
        if self.nick is not None:
            self._numeric("462", text="You may not reregister")
        elif params:
            self._password = params[0]

    def _on_nick(self, params: list[str]) -> None:
        if not params or not params[0]:
            self._numeric("431", text="No nickname given")
        elif self.nick is not None:
            if params[0] != self.nick:
                self._numeric("447", params[0], text="chatlab does not rename users; reconnect with the new nick")
        else:
            self._wanted_nick = params[0]
            self._hello_if_ready()

    def _on_user(self, params: list[str]) -> None:
        if self.nick is not None:
            self._numeric("462", text="You may not reregister")
        elif not params:
            self._numeric("461", "USER", text="Not enough parameters; try USER yourname 0 * :Your Name")
        else:
            self._user_given = True
            self._hello_if_ready()

    def _hello_if_ready(self) -> None:
        if self._wanted_nick and self._user_given and not self._hello_sent:
            self._hello_sent = True
            self._request(p.Hello(self._wanted_nick, self._password))

    def _on_ping(self, params: list[str]) -> None:
        if not params:
            self._numeric("409", text="No origin specified")
        else:  # the core answers (it hears from the client, as from a binary PING); the token waits here
            self._ping_tokens.append(params[-1])
            self._request(p.Ping(0))

    def _on_pong(self, params: list[str]) -> None:
        token = params[-1] if params else ""
        self._request(p.Pong(int(token) if token.isascii() and token.isdigit() and len(token) < 19 else 0))

    def _on_quit(self, params: list[str]) -> None:
        reason = params[0] if params else ""
        self._reply(format_line(SERVER, "ERROR", text=f"Closing link: {self.nick or '*'} (Quit: {reason or 'bye'})"))
        self._request(p.Quit(reason))

    def _on_help(self, params: list[str]) -> None:
        for line in HELP:
            self._notice(line)

    # ---------------------------------------------------------------- chat

    def _on_privmsg(self, params: list[str], command: str = "PRIVMSG") -> None:
        if not params:
            self._numeric("411", text=f"No recipient given ({command})")
            return
        if len(params) < 2 or not params[1]:
            self._numeric("412", text="No text to send")
            return
        text, action = params[1], False
        if text.startswith("\x01"):  # CTCP: \x01COMMAND args\x01
            ctcp, _, rest = text.strip("\x01").partition(" ")
            if ctcp.upper() != "ACTION":
                if command == "PRIVMSG":  # CTCP replies come as NOTICE: those are dropped quietly
                    what = "file transfers (DCC)" if ctcp.upper() == "DCC" else f"CTCP {ctcp.upper()}"
                    self._notice(f"{what}: not relayed by chatlab; use the chatlab client for files")
                return
            text, action = rest, True
        for target in params[0].split(","):
            if target.startswith(("#", "&")):
                if _key(target) != _key(self.channel):
                    self._numeric("404", target, text=f"Cannot send to channel: you are in {self.channel} "
                                                      "(chatlab users are in one room at a time)")
                else:
                    self._request(p.Say(text, action))
            elif target:
                self._request(p.Whisper(target, text, action))

    def _on_notice(self, params: list[str]) -> None:
        self._on_privmsg(params, command="NOTICE")

    def _on_join(self, params: list[str]) -> None:
        if not params or not params[0]:
            self._numeric("461", "JOIN", text="Not enough parameters; try JOIN #room")
            return
        if params[0] == "0":  # "leave every channel": back to the default room
            self._on_part([self.channel])
            return
        keys = params[1].split(",") if len(params) > 1 else []
        for i, channel in enumerate(params[0].split(",")):  # one room at a time: you end up in the last
            if not channel.startswith("#"):
                self._numeric("403", channel, text="No such channel (chatlab channels start with #)")
            else:
                self._request(p.Join(room_of(channel), keys[i] if i < len(keys) else ""))

    def _on_part(self, params: list[str]) -> None:
        if not params:
            self._numeric("461", "PART", text="Not enough parameters")
            return
        for channel in params[0].split(","):
            if _key(channel) != _key(self.channel):
                self._numeric("442", channel, text="You're not on that channel")
            elif _key(channel) == _key(self.home):
                self._notice(f"you stay in {self.home}: every chatlab user is in one room, and PART takes you here")
            else:
                self._request(p.Leave())

    def _on_names(self, params: list[str]) -> None:
        self._ask_who("names", params[0].split(",")[0] if params else self.channel)

    def _on_list(self, params: list[str]) -> None:
        self._ask_who("list", "")

    def _on_who(self, params: list[str]) -> None:
        self._ask_who("who", params[0] if params else "*")

    def _on_whois(self, params: list[str]) -> None:
        if not params:
            self._numeric("431", text="No nickname given")
        else:
            self._ask_who("whois", params[-1])

    def _on_topic(self, params: list[str]) -> None:
        if not params:
            self._numeric("461", "TOPIC", text="Not enough parameters")
        elif len(params) > 1:
            self._numeric("482", params[0], text="chatlab rooms have no topic")
        else:
            self._numeric("331", params[0], text="No topic is set")

    def _on_mode(self, params: list[str]) -> None:
        if not params:
            self._numeric("461", "MODE", text="Not enough parameters")
        elif not params[0].startswith("#"):
            if _key(params[0]) != _key(self.nick or ""):
                self._numeric("502", text="Cannot change mode for other users")
            elif len(params) == 1:
                self._reply(format_line(SERVER, "221", self.nick or "*", "+"))
            # "MODE me +i", sent by clients after registering: user modes mean nothing here, no answer
        elif len(params) == 1:
            self._reply(format_line(SERVER, "324", self.nick or "*", params[0], "+"))
        elif params[1].lstrip("+") == "b":  # clients ask for the ban list on join
            self._numeric("368", params[0], text="End of channel ban list")
        else:
            self._numeric("482", params[0], text="You're not channel operator (chatlab rooms have no modes)")

    def _on_motd(self, params: list[str]) -> None:
        self._reply(self._motd_lines())

    def _on_away(self, params: list[str]) -> None:
        if params and params[0]:
            self._numeric("306", text="You have been marked as being away")
        else:
            self._numeric("305", text="You are no longer marked as being away")

    # ------------------------------------------------------------- lines out

    @staticmethod
    def encode_shared(message: p.Message) -> bytes | None:
        """The bytes every IRC member but the sender gets for ``message`` when they are the same for all
        (a room's chat line), so the server formats it once; ``None``: ask :meth:`encode` per member."""
        return _chat_lines(message) if isinstance(message, p.ChatMessage) else None

    def encode(self, message: p.Message) -> bytes:
        """A core message to this client as IRC lines (``b""``: nothing to send)."""
        if isinstance(message, p.ChatMessage):  # the hot path first: a room's chat line
            return b"" if message.sender == self.nick else _chat_lines(message)
        if isinstance(message, p.PrivateMessage):
            if message.sender == self.nick and message.to != self.nick:
                return b""  # our own whisper's confirmation: the IRC client showed it already
            return privmsg_lines(message.sender, message.to, message.text, message.action)
        if isinstance(message, p.Notice):
            return self._encode_notice(message)
        if isinstance(message, p.WhoReply):
            return self._encode_who_reply(message)
        if isinstance(message, p.Welcome):
            return self._encode_welcome(message)
        if isinstance(message, p.ErrorMessage):
            return self._encode_error(message)
        if isinstance(message, p.Ping):
            return f"PING :{message.token}\r\n".encode()
        if isinstance(message, p.Pong):
            token = self._ping_tokens.popleft() if self._ping_tokens else str(message.token)
            return format_line(SERVER, "PONG", SERVER, text=token)
        if isinstance(message, p.FileOffer):  # the server refuses these; should one get here, say what it was
            return format_line(SERVER, "NOTICE", self.nick or "*",
                               text=f"{message.peer} offered you a file ({message.name}); IRC clients cannot receive "
                                    "chatlab files")
        return b""  # a transfer frame or a client-to-server message: nothing an IRC client understands

    def _encode_welcome(self, welcome: p.Welcome) -> bytes:
        self.nick, self.motd, self._hello_sent = welcome.nick, welcome.motd, False
        self.home = channel_of(welcome.room)
        me = welcome.nick
        lines = [
            format_line(SERVER, "001", me, text=f"Welcome to chatlab, {source(me)}"),
            format_line(SERVER, "002", me, text=f"Your host is {SERVER}, a chatlab server speaking a subset of IRC"),
            format_line(SERVER, "003", me, text="This server was created for a socket programming class"),
            format_line(SERVER, "004", me, SERVER, "chatlab", "i", "nt"),
            format_line(SERVER, "005", me, "CHANTYPES=#", "NICKLEN=20", "CHANNELLEN=33", "CHANLIMIT=#:1",
                        "PREFIX=()", "CASEMAPPING=ascii", "NETWORK=chatlab", text="are supported by this server"),
        ]
        return b"".join(lines) + self._motd_lines()

    def _motd_lines(self) -> bytes:
        if not self.motd:
            return format_line(SERVER, "422", self.nick or "*", text="MOTD File is missing")
        me = self.nick or "*"
        body = [format_line(SERVER, "372", me, text=f"- {line}") for line in self.motd.splitlines()]
        body.append(format_line(SERVER, "372", me, text="- IRC users: HELP (in irssi /quote HELP) lists what this server understands"))
        return (format_line(SERVER, "375", me, text=f"- {SERVER} Message of the day -") + b"".join(body)
                + format_line(SERVER, "376", me, text="End of /MOTD command."))

    def _encode_notice(self, notice: p.Notice) -> bytes:
        channel = channel_of(notice.room) if notice.room else self.channel
        if notice.kind == "join" and notice.nick and notice.nick == self.nick:
            # We were put in a room: the PART of the old one (the core does not echo our leave), the JOIN,
            # and the member list, which the codec asks the core for.
            out = b""
            if self.channel and _key(self.channel) != _key(channel):
                out += format_line(source(self.nick), "PART", self.channel, text=f"moved to {channel}")
            self.channel = channel
            self._ask_who("names", channel)
            return out + format_line(source(self.nick), "JOIN", channel)
        if notice.kind == "join" and notice.nick:
            return format_line(source(notice.nick), "JOIN", channel)
        if notice.kind == "leave" and notice.nick:
            return format_line(source(notice.nick), "PART", channel, text=notice.text)
        if notice.kind == "quit" and notice.nick:
            reason = notice.text
            said = f"{notice.nick} quit ("
            if reason.startswith(said) and reason.endswith(")"):
                reason = reason[len(said) : -1]
            elif reason == f"{notice.nick} quit":
                reason = "Quit"
            return format_line(source(notice.nick), "QUIT", text=reason)
        return format_line(SERVER, "NOTICE", self.nick or "*", text=notice.text)

    def _encode_error(self, error: p.ErrorMessage) -> bytes:
        if error.code in CLOSING_CODES:
            text = error.text.replace("no HELLO", "no NICK and USER")  # say it in the client's terms
            return format_line(SERVER, "ERROR", text=f"Closing link: {self.nick or '*'} ({text})")
        me = self.nick or "*"
        last = self._last_request
        if error.code not in ERROR_NUMERICS:
            return format_line(SERVER, "NOTICE", me, text=f"{error.code}: {error.text}")
        number = ERROR_NUMERICS[error.code]
        if number is None:
            return b""
        if error.code in NICK_CODES and self.nick is None:
            self._hello_sent = False  # the client may try another NICK
            return format_line(SERVER, number, me, self._wanted_nick or "*", text=error.text)
        if isinstance(last, p.Whisper) and number == "401":
            return format_line(SERVER, number, me, last.to, text=f"No such nick/channel ({error.text})")
        if isinstance(last, p.Join) and number in ("479", "403", "475"):
            return format_line(SERVER, number, me, channel_of(last.room), text=error.text)
        return format_line(SERVER, number, me, text=error.text)

    def _encode_who_reply(self, reply: p.WhoReply) -> bytes:
        purpose, target = self._who_for.popleft() if self._who_for else ("names", self.channel)
        me = self.nick or "*"
        by_room: dict[str, list[str]] = {}
        for nick, room in reply.users.items():
            by_room.setdefault(_key(channel_of(room)), []).append(nick)
        if purpose == "list":
            return (format_line(SERVER, "321", me, "Channel", text="Users  Name")
                    + b"".join(format_line(SERVER, "322", me, channel_of(room), str(size), text="")
                               for room, size in sorted(reply.rooms.items()))
                    + format_line(SERVER, "323", me, text="End of /LIST"))
        if purpose == "whois":
            user = next((n for n in reply.users if _key(n) == _key(target)), None)
            if user is None:
                return (format_line(SERVER, "401", me, target, text="No such nick/channel")
                        + format_line(SERVER, "318", me, target, text="End of /WHOIS list"))
            return (format_line(SERVER, "311", me, user, user, SERVER, "*", text=user)
                    + format_line(SERVER, "319", me, user, text=channel_of(reply.users[user]))
                    + format_line(SERVER, "312", me, user, SERVER, text="chatlab")
                    + format_line(SERVER, "318", me, user, text="End of /WHOIS list"))
        if purpose == "who":
            if target.startswith("#"):
                rows = [(n, target) for n in sorted(by_room.get(_key(target), []))]
            else:
                rows = sorted((n, channel_of(r)) for n, r in reply.users.items() if target == "*" or _key(n) == _key(target))
            return (b"".join(format_line(SERVER, "352", me, channel, n, SERVER, SERVER, n, "H", text=f"0 {n}")
                             for n, channel in rows)
                    + format_line(SERVER, "315", me, target, text="End of /WHO list"))
        # names: 353 lines of nicks, each under 512 bytes, then 366
        members = sorted(by_room.get(_key(target), []))
        head = f":{SERVER} 353 {me} = {target} :"
        out: list[bytes] = []
        batch: list[str] = []
        for nick in members:
            if batch and len(head) + len(" ".join(batch + [nick]).encode()) > MAX_CONTENT:
                out.append(format_line(SERVER, "353", me, "=", target, text=" ".join(batch)))
                batch = []
            batch.append(nick)
        if batch:
            out.append(format_line(SERVER, "353", me, "=", target, text=" ".join(batch)))
        return b"".join(out) + format_line(SERVER, "366", me, target, text="End of /NAMES list")


__all__ = ["IrcCodec", "parse_line", "format_line", "privmsg_lines", "channel_of", "room_of", "MAX_LINE", "COMMANDS"]
