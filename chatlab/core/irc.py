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
  are tolerated) become ``Hello(nick, user=..., realname=...)`` for the core.  A taken
  or invalid nick comes back as 433 or 432 and the client may send another ``NICK``:
  the server registers text connections with ``nick_retries``.  Nicks follow RFC 2812
  (``[bot]``, ``foo|afk``); the core keeps its look-alike folding for everyone.
* **Mapping.**  A chatlab room ``lobby`` is the IRC channel ``#lobby`` (a room a
  binary client named ``#x`` is ``##x``: one ``#`` is always added, so the mapping
  goes both ways).  An IRC user is in any number of channels (``Join(stay=True)``);
  a person typing into ``nc`` is put in the default room on registering, a program
  (``CAP LS``, or NICK and USER at once) is not.  IRC clients show what their user
  said themselves, so the core's echo of one's own chat line is dropped.
* **Dispatch.**  :data:`HANDLERS` maps each command to its method, and is what HELP
  and the 421 answer go by; queries (NAMES, WHO, WHOIS, LIST, TOPIC, MODE...) ask the
  core with a ``Who`` (or ``Topic``/``Mode`` without a change) and format its
  ``WhoReply``, in the order they were asked.

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
from typing import Any, Callable, ClassVar, Iterator, Union

from . import protocol as p
from ..errors import RemoteProtocolError
from .channels import CHANMODES, PREFIX, ROOM_MODES, USER_MODES
from .chatroom import NICK_RE
from .chatroom import normalize_name as _key  # names collide as they do in the core: NFKC, casefolded

SERVER = "chatlab"  # the server's name in every line it sends, and every user's host
MAX_LINE = 512  # bytes, CR LF included (RFC 1459 2.3; ngircd's COMMAND_LEN is the same)
MAX_CONTENT = MAX_LINE - 2
REGISTER_HINT = "register with NICK yourname and USER yourname 0 * :Your Name"

Event = Union[p.Message, bytes]  # what next_event hands the server (never a Frame: no files here)
_TOO_LONG = b"\x00too long"  # marks a dropped line in the queue (a real line never holds NUL)

VERSION = "chatlab-2"  # what VERSION and 004 say
NICKLEN = 20
# What the server understands before registering; the rest of HANDLERS needs NICK and USER first.
COMMANDS_BEFORE_REGISTRATION = frozenset({"CAP", "PASS", "NICK", "USER", "PING", "PONG", "QUIT", "HELP"})
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
IRC_NICK = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}\-]{0,%d}" % (NICKLEN - 1))  # RFC 2812 2.3.1
_LINE_END = re.compile(r"\r\n|\r|\n")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH"})
TLS_HANDSHAKE = b"\x16\x03"  # a TLS record (handshake, version 3.x): an IRC client set to use TLS


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


# ------------------------------------------------------------------ the codec


class IrcCodec:
    """One IRC connection's codec: bytes in any split -> core messages; core messages -> lines."""

    accepts_files = False  # no DCC: file offers to an IRC user are refused by the server
    # encode() depends on who receives it (our own echo is dropped), so the server asks each
    # IRC connection; a room line is still formatted once per message (_chat_lines' cache).
    shared_encoding: ClassVar[bool] = False
    nick_retries = True  # a taken nick is a 433 and the client sends another NICK, not a disconnect
    HANDLERS: ClassVar[dict[str, Callable[[IrcCodec, list[str]], None]]]  # filled below the class

    def __init__(self, max_payload: int = p.MAX_PAYLOAD) -> None:
        """``max_payload`` is the binary framing's limit, taken for the seam's sake: a line's is MAX_LINE."""
        self.nick: str | None = None  # set by the core's Welcome: registered
        self.channels: dict[str, str] = {}  # _key(channel) -> "#channel", those we are in
        self.home = ""  # the default room's channel (where a person typing into nc is put)
        self.motd = ""
        self._wanted_nick = ""  # from NICK, before registration
        self._user: list[str] = []  # USER's parameters
        self._password = ""
        self._cap = False  # CAP seen: a real IRC client, which gets no forced channel
        self._hello_sent = False  # waiting for the core's Welcome or a nick error
        self._lines: deque[bytes] = deque()  # complete lines not yet handled
        self._partial = b""  # the start of a line whose end has not arrived
        self._discarding = False  # inside a line over the cap: drop up to its end
        self._pending: deque[Event] = deque()  # events a line produced, handed out one per call
        self._who_for: deque[tuple[str, str, p.Message]] = deque()  # (purpose, target, request) of each query
        self._last_request: p.Message | None = None  # what a core error answers
        self._ping_tokens: deque[str] = deque()  # a client's PING tokens, for the core's Pong to echo
        self._first_bytes = b""  # the start of the stream: is it TLS?

    @property
    def channel(self) -> str:
        """The channel joined last ("" in none): where a plain line's hint points."""
        return next(reversed(self.channels.values()), "")

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
        handler = self.HANDLERS.get(command)
        if handler is None:
            self._unknown(line, command, params)
        elif self.nick is None and command not in COMMANDS_BEFORE_REGISTRATION:
            self._numeric("451", text=f"You have not registered; {REGISTER_HINT}")
        else:
            handler(self, params)

    def _unknown(self, line: str, command: str, params: list[str]) -> None:
        word = line.lstrip(" ").split(" ", 1)[0] if not line.startswith((":", "@")) else command
        if self.nick is None:
            self._numeric("421", word, text=f"Unknown command; {REGISTER_HINT}")
        elif params and not command.isupper() or not word.isupper():  # "hello everyone": chat typed as is
            self._numeric("421", word, text=f"Unknown command; to talk, type PRIVMSG {self.channel or '#lobby'} "
                                            ":your text (HELP lists the commands)")
        else:
            self._numeric("421", word, text="Unknown command")

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

    def _ask(self, purpose: str, target: str, request: p.Message) -> None:
        """A query: the core answers ``request`` with a WhoReply (or an error), formatted for ``purpose``."""
        self._who_for.append((purpose, target, request))
        self._request(request)

    def _ask_who(self, purpose: str, target: str, **fields: Any) -> None:
        self._ask(purpose, target, p.Who(**fields))

    # ------------------------------------------------------- registration

    def _on_cap(self, params: list[str]) -> None:
        sub = params[0].upper() if params else ""
        self._cap = True
        if sub in ("LS", "LIST"):
            self._reply(format_line(SERVER, "CAP", self.nick or "*", sub, text=""))  # no capabilities to offer
        elif sub == "REQ":
            self._reply(format_line(SERVER, "CAP", self.nick or "*", "NAK", text=params[1] if len(params) > 1 else ""))
        elif sub != "END":
            self._numeric("410", sub or "*", text="Invalid CAP command")

    def _on_pass(self, params: list[str]) -> None:
        if self.nick is not None:
            self._numeric("462", text="You may not reregister")
        elif not params:
            self._numeric("461", "PASS", text="Not enough parameters")
        else:
            self._password = params[0]

    def _on_nick(self, params: list[str]) -> None:
        wanted = params[0] if params else ""
        if not wanted:
            self._numeric("431", text="No nickname given")
        elif not (IRC_NICK.fullmatch(wanted) or NICK_RE.match(unicodedata.normalize("NFKC", wanted))):
            self._numeric("432", wanted, text=f"Erroneous nickname: 1-{NICKLEN} letters (any script), digits or "
                                              "[ ] \\ ` _ ^ { | } -, not starting with a digit or -")
        elif self.nick is not None:
            if wanted != self.nick:
                self._request(p.Nick(wanted))
        else:
            self._wanted_nick = wanted
            self._hello_if_ready()

    def _on_user(self, params: list[str]) -> None:
        if self.nick is not None or self._hello_sent:
            self._numeric("462", text="You may not reregister")
        elif len(params) < 4 or not params[0]:
            self._numeric("461", "USER", text="Not enough parameters; try USER yourname 0 * :Your Name")
        else:
            self._user = params
            self._hello_if_ready()

    def _hello_if_ready(self) -> None:
        if self._wanted_nick and self._user and not self._hello_sent:
            self._hello_sent = True
            user = re.sub(r"[^A-Za-z0-9_.\-]", "", self._user[0])[:10] or self._wanted_nick
            self._request(p.Hello(self._wanted_nick, self._password, user=user, realname=self._user[3], lobby=not self._cap))

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

    def _on_privmsg(self, params: list[str], notice: bool = False) -> None:
        command = "NOTICE" if notice else "PRIVMSG"
        if not params or not params[0]:
            if not notice:
                self._numeric("411", text=f"No recipient given ({command})")
            return
        if len(params) < 2 or not params[1]:
            if not notice:
                self._numeric("412", text="No text to send")
            return
        text, action = params[1], False
        if text.startswith("\x01"):  # CTCP: \x01COMMAND args\x01
            acted = self._ctcp(params[0], text, notice)
            if acted is None:
                return
            text, action = acted, True
        for target in params[0].split(","):
            if target.startswith(("#", "&")):
                self._request(p.Say(text, action, room=room_of(target), notice=notice))
            elif target:
                self._request(p.Whisper(target, text, action, notice=notice))

    def _ctcp(self, target: str, text: str, notice: bool) -> str | None:
        """An ACTION's text; ``None`` for other CTCP (not relayed: the sender of a request is told why)."""
        ctcp, _, rest = text.strip("\x01").partition(" ")
        if ctcp.upper() == "ACTION":
            return rest
        if not notice:  # CTCP replies come as NOTICE: those are dropped quietly
            what = "files (DCC): use the chatlab client for files" if ctcp.upper() == "DCC" else \
                f"CTCP {ctcp.upper()} requests: chatlab does not relay them"
            self._notice(f"not sent to {target}: {what}")
        return None

    def _on_notice(self, params: list[str]) -> None:
        self._on_privmsg(params, notice=True)

    def _on_join(self, params: list[str]) -> None:
        if not params or not params[0]:
            self._numeric("461", "JOIN", text="Not enough parameters; try JOIN #room")
            return
        if params[0] == "0":  # leave every channel
            for channel in list(self.channels.values()):
                self._request(p.Leave(room_of(channel)))
            return
        keys = params[1].split(",") if len(params) > 1 else []
        for i, channel in enumerate(params[0].split(",")):
            if not channel.startswith("#") or len(channel) < 2:
                self._numeric("403", channel, text="No such channel (chatlab channels start with #)")
            elif _key(channel) not in self.channels:
                self._request(p.Join(room_of(channel), keys[i] if i < len(keys) else "", stay=True))

    def _on_part(self, params: list[str]) -> None:
        if not params or not params[0]:
            self._numeric("461", "PART", text="Not enough parameters")
            return
        for channel in params[0].split(","):
            if not channel.startswith("#"):
                self._numeric("403", channel, text="No such channel")
            else:
                self._request(p.Leave(room_of(channel), params[1] if len(params) > 1 else ""))

    def _on_kick(self, params: list[str]) -> None:
        if len(params) < 2:
            self._numeric("461", "KICK", text="Not enough parameters")
            return
        reason = params[2] if len(params) > 2 else ""
        for nick in params[1].split(","):
            if not params[0].startswith("#"):
                self._numeric("403", params[0], text="No such channel")
            else:
                self._request(p.Kick(room_of(params[0]), nick, reason))

    def _on_invite(self, params: list[str]) -> None:
        if len(params) < 2:
            self._numeric("461", "INVITE", text="Not enough parameters")
        elif not params[1].startswith("#"):
            self._numeric("403", params[1], text="No such channel")
        else:
            self._request(p.Invite(params[0], room_of(params[1])))

    def _on_topic(self, params: list[str]) -> None:
        if not params:
            self._numeric("461", "TOPIC", text="Not enough parameters")
        elif not params[0].startswith("#"):
            self._numeric("403", params[0], text="No such channel")
        elif len(params) > 1:
            self._request(p.Topic(room_of(params[0]), params[1], change=True))
        else:
            self._ask("topic", params[0], p.Topic(room_of(params[0])))

    def _on_mode(self, params: list[str]) -> None:
        if not params:
            self._numeric("461", "MODE", text="Not enough parameters")
            return
        target, modes, args = params[0], params[1] if len(params) > 1 else "", params[2:]
        if not target.startswith("#"):
            request = p.Mode(target, modes)
            self._ask("umode", target, request) if not modes.strip("+-") else self._request(request)
            return
        room = room_of(target)
        if not modes.strip("+-"):
            self._ask("mode", target, p.Mode(room))
        elif modes.strip("+-") == "b" and not args:
            self._ask("bans", target, p.Mode(room, "+b"))
        else:
            self._request(p.Mode(room, modes, args))

    def _on_away(self, params: list[str]) -> None:
        self._request(p.Away(params[0] if params else ""))

    def _on_oper(self, params: list[str]) -> None:
        if len(params) < 2:
            self._numeric("461", "OPER", text="Not enough parameters")
        else:
            self._request(p.Oper(params[0], params[1]))

    def _on_wallops(self, params: list[str]) -> None:
        if not params or not params[0]:
            self._numeric("461", "WALLOPS", text="Not enough parameters")
        else:
            self._request(p.Wallops(params[0]))

    # ------------------------------------------------------------- queries

    def _on_names(self, params: list[str]) -> None:
        if not params:
            self._ask_who("names-all", "*", full=True)
            return
        for channel in params[0].split(","):
            self._ask_who("names", channel, room=room_of(channel) if channel.startswith("#") else "")

    def _on_list(self, params: list[str]) -> None:
        self._ask_who("list", params[0] if params else "", full=True)

    def _on_who(self, params: list[str]) -> None:
        mask = params[0] if params else "*"
        if mask.startswith("#"):
            self._ask_who("who", mask, room=room_of(mask))
        else:
            self._ask_who("who", mask, full=True)

    def _on_whois(self, params: list[str]) -> None:
        if not params or not params[-1]:
            self._numeric("431", text="No nickname given")
            return
        for nick in params[-1].split(","):
            self._ask_who("whois", nick, nick=nick)

    def _on_whowas(self, params: list[str]) -> None:
        if not params or not params[0]:
            self._numeric("431", text="No nickname given")
            return
        count = params[1] if len(params) > 1 else ""
        for nick in params[0].split(","):
            self._ask_who(f"whowas {count}", nick, was=nick)

    def _on_userhost(self, params: list[str]) -> None:
        if not params:
            self._numeric("461", "USERHOST", text="Not enough parameters")
        else:
            self._ask_who("userhost", " ".join(params[:5]), full=True)

    def _on_ison(self, params: list[str]) -> None:
        if not params:
            self._numeric("461", "ISON", text="Not enough parameters")
        else:
            self._ask_who("ison", " ".join(" ".join(params).split()), full=True)

    def _on_lusers(self, params: list[str]) -> None:
        self._ask_who("lusers", "", nick=self.nick or "")

    def _on_motd(self, params: list[str]) -> None:
        self._reply(self._motd_lines())

    def _on_version(self, params: list[str]) -> None:
        self._numeric("351", f"{VERSION}.", SERVER, text="chatlab: a chat server for a socket programming class")
        self._reply(self._isupport())

    def _on_info(self, params: list[str]) -> None:
        for line in ("chatlab: a select() chat server for a socket programming class.",
                     "It speaks its own length-prefixed frames and this subset of IRC on one port.",
                     f"Version {VERSION}; HELP lists the commands."):
            self._numeric("371", text=line)
        self._numeric("374", text="End of INFO list")

    def _on_links(self, params: list[str]) -> None:
        self._numeric("364", SERVER, SERVER, text="0 chatlab: one server, no links")  # <mask> <server> :<hops> <info>
        self._numeric("365", "*", text="End of LINKS list")

    # ------------------------------------------------------------- lines out

    def encode(self, message: p.Message) -> bytes:
        """A core message to this client as IRC lines (``b""``: nothing to send)."""
        if isinstance(message, p.ChatMessage):  # the hot path first: a room's chat line
            return b"" if message.sender == self.nick else _chat_lines(message)
        encoder = ENCODERS.get(type(message))
        return encoder(self, message) if encoder is not None else b""  # a transfer frame: nothing IRC understands

    def _encode_private(self, message: p.PrivateMessage) -> bytes:
        if message.sender == self.nick and message.to != self.nick:
            return b""  # our own whisper's confirmation: the IRC client showed it already
        command = "NOTICE" if message.notice else "PRIVMSG"
        return privmsg_lines(message.sender, message.to, message.text, message.action, command)

    def _encode_ping(self, message: p.Ping) -> bytes:
        return f"PING :{message.token}\r\n".encode()

    def _encode_pong(self, message: p.Pong) -> bytes:
        token = self._ping_tokens.popleft() if self._ping_tokens else str(message.token)
        return format_line(SERVER, "PONG", SERVER, text=token)

    def _encode_offer(self, message: p.FileOffer) -> bytes:  # the server refuses these; should one get here, say so
        return format_line(SERVER, "NOTICE", self.nick or "*",
                           text=f"{message.peer} offered you a file ({message.name}); IRC clients cannot receive chatlab files")

    def _encode_welcome(self, welcome: p.Welcome) -> bytes:
        self.nick, self.motd, self._hello_sent = welcome.nick, welcome.motd, False
        self.home = channel_of(welcome.room) if welcome.room else ""
        me = welcome.nick
        lines = [
            format_line(SERVER, "001", me, text=f"Welcome to chatlab, {source(me)}"),
            format_line(SERVER, "002", me, text=f"Your host is {SERVER}, running version {VERSION}"),
            format_line(SERVER, "003", me, text="This server was created for a socket programming class"),
            format_line(SERVER, "004", me, SERVER, VERSION, USER_MODES, ROOM_MODES),
        ]
        self._ask_who("welcome", "", nick=me)  # LUSERS, then the MOTD
        return b"".join(lines) + self._isupport()

    def _isupport(self) -> bytes:
        return format_line(SERVER, "005", self.nick or "*", "CHANTYPES=#", f"PREFIX={PREFIX}", f"CHANMODES={CHANMODES}",
                           f"NICKLEN={NICKLEN}", "CHANNELLEN=33", "TOPICLEN=2000", "KICKLEN=2000", "MODES=10",
                           "CASEMAPPING=ascii", "NETWORK=chatlab", text="are supported by this server")

    def _motd_lines(self) -> bytes:
        if not self.motd:
            return format_line(SERVER, "422", self.nick or "*", text="MOTD File is missing")
        me = self.nick or "*"
        motd = self.motd.replace("Type /help for commands", "Type HELP for commands")  # the terminal's /help is HELP here
        body = [format_line(SERVER, "372", me, text=f"- {line}") for line in motd.splitlines()]
        body.append(format_line(SERVER, "372", me, text="- IRC users: HELP (in irssi /quote HELP) lists what this server understands"))
        return (format_line(SERVER, "375", me, text=f"- {SERVER} Message of the day -") + b"".join(body)
                + format_line(SERVER, "376", me, text="End of /MOTD command."))

    def _encode_notice(self, notice: p.Notice) -> bytes:
        encoder = NOTICE_ENCODERS.get(notice.kind) if notice.nick else None
        if encoder is not None:
            return encoder(self, notice)
        return format_line(SERVER, "NOTICE", self.nick or "*", text=notice.text)

    def _notice_join(self, notice: p.Notice) -> bytes:
        channel = channel_of(notice.room)
        if notice.nick == self.nick:  # we are in: the topic and the member list follow (the codec asks the core)
            self.channels[_key(channel)] = channel
            request = p.Who(room=notice.room)
            self._who_for.append(("joined", channel, request))
            self._pending.appendleft(request)  # before the next JOIN of "JOIN #a,#b": 353 and 366 follow their JOIN
        return format_line(source(notice.nick), "JOIN", channel)

    def _notice_leave(self, notice: p.Notice) -> bytes:
        channel = channel_of(notice.room)
        if notice.nick == self.nick:
            self.channels.pop(_key(channel), None)
        return format_line(source(notice.nick), "PART", channel, text=notice.detail or notice.text)

    def _notice_quit(self, notice: p.Notice) -> bytes:
        reason, said = notice.text, f"{notice.nick} quit ("
        if reason.startswith(said) and reason.endswith(")"):
            reason = reason[len(said) : -1]
        elif reason == f"{notice.nick} quit":
            reason = "Quit"
        return format_line(source(notice.nick), "QUIT", text=reason)

    def _notice_nick(self, notice: p.Notice) -> bytes:
        if notice.nick == self.nick:
            self.nick = notice.target
        return format_line(source(notice.nick), "NICK", text=notice.target)

    def _notice_kick(self, notice: p.Notice) -> bytes:
        channel = channel_of(notice.room)
        if notice.target == self.nick:
            self.channels.pop(_key(channel), None)
        return format_line(source(notice.nick), "KICK", channel, notice.target, text=notice.detail)

    def _notice_topic(self, notice: p.Notice) -> bytes:
        return format_line(source(notice.nick), "TOPIC", channel_of(notice.room), text=notice.detail)

    def _notice_mode(self, notice: p.Notice) -> bytes:
        target = channel_of(notice.room) if notice.room else notice.target
        return format_line(source(notice.nick), "MODE", target, *notice.detail.split())

    def _notice_invite(self, notice: p.Notice) -> bytes:
        if notice.nick == self.nick and notice.target != self.nick:
            return format_line(SERVER, "341", self.nick, notice.target, channel_of(notice.room))
        return format_line(source(notice.nick), "INVITE", notice.target, text=channel_of(notice.room))

    def _notice_away(self, notice: p.Notice) -> bytes:
        me = self.nick or "*"
        if notice.nick != self.nick:
            return format_line(SERVER, "301", me, notice.nick, text=notice.detail)
        if notice.detail:
            return format_line(SERVER, "306", me, text="You have been marked as being away")
        return format_line(SERVER, "305", me, text="You are no longer marked as being away")

    def _notice_oper(self, notice: p.Notice) -> bytes:
        me = self.nick or "*"
        return format_line(SERVER, "381", me, text="You are now an IRC operator") + format_line(source(me), "MODE", me, "+o")

    def _notice_wallops(self, notice: p.Notice) -> bytes:
        return format_line(source(notice.nick), "WALLOPS", text=notice.detail)

    def _encode_error(self, error: p.ErrorMessage) -> bytes:
        if error.code in CLOSING_CODES:
            text = error.text.replace("no HELLO", "no NICK and USER")  # say it in the client's terms
            return format_line(SERVER, "ERROR", text=f"Closing link: {self.nick or '*'} ({text})")
        if self._who_for and self._who_for[-1][2] is self._last_request:
            self._who_for.pop()  # a query the core refused: no WhoReply will come for it
        me = self.nick or "*"
        number = ERROR_NUMERICS.get(error.code, "")
        if error.code == "already-in-room" and isinstance(self._last_request, p.Invite):
            number = "443"
        if number is None:
            return b""
        if not number:
            return format_line(SERVER, "NOTICE", me, text=f"{error.code}: {error.text}")
        if error.code in NICK_CODES and self.nick is None:
            self._hello_sent = False  # the client may try another NICK
            return format_line(SERVER, number, me, self._wanted_nick or "*", text=error.text)
        return format_line(SERVER, number, me, *self._error_params(number, error.subject), text=error.text)

    @staticmethod
    def _error_params(number: str, subject: str) -> list[str]:
        shape = SUBJECTS.get(number)
        if not shape or not subject:
            return []
        if shape == "chan":
            return [channel_of(subject)]
        if shape == "nick chan":
            nick, _, room = subject.partition(" ")
            return [nick, channel_of(room)]
        return [subject]

    def _encode_who_reply(self, reply: p.WhoReply) -> bytes:
        purpose, target, _ = self._who_for.popleft() if self._who_for else ("names", self.channel, None)
        kind, _, arg = purpose.partition(" ")
        return REPLY_FORMATTERS[kind](self, reply, target, arg)


# ------------------------------------------------------------------ answers to queries (WhoReply -> numerics)


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


def _reply_names(codec: IrcCodec, reply: p.WhoReply, target: str, arg: str) -> bytes:
    me = codec.nick or "*"
    room, info = _find(reply.channels, room_of(target)) if target.startswith("#") else ("", None)
    lines = _names_lines(me, channel_of(room), info) if info else b""
    return lines + format_line(SERVER, "366", me, target, text="End of /NAMES list")


def _reply_names_all(codec: IrcCodec, reply: p.WhoReply, target: str, arg: str) -> bytes:
    me = codec.nick or "*"
    out = [_names_lines(me, channel_of(room), info) for room, info in sorted(reply.channels.items()) if info["members"]]
    return b"".join(out) + format_line(SERVER, "366", me, "*", text="End of /NAMES list")


def _reply_joined(codec: IrcCodec, reply: p.WhoReply, target: str, arg: str) -> bytes:
    room, info = _find(reply.channels, room_of(target))
    if info is None:
        return b""
    return _topic_lines(codec, channel_of(room), info, quiet=True) + _reply_names(codec, reply, channel_of(room), "")


def _topic_lines(codec: IrcCodec, channel: str, info: dict[str, Any], quiet: bool = False) -> bytes:
    me = codec.nick or "*"
    if not info.get("topic"):
        return b"" if quiet else format_line(SERVER, "331", me, channel, text="No topic is set")
    return (format_line(SERVER, "332", me, channel, text=info["topic"])
            + format_line(SERVER, "333", me, channel, source(info["topic_by"]), str(info["topic_at"])))


def _reply_topic(codec: IrcCodec, reply: p.WhoReply, target: str, arg: str) -> bytes:
    room, info = _find(reply.channels, room_of(target))
    if info is None:
        return format_line(SERVER, "403", codec.nick or "*", target, text="No such channel")
    return _topic_lines(codec, channel_of(room), info)


def _reply_mode(codec: IrcCodec, reply: p.WhoReply, target: str, arg: str) -> bytes:
    me = codec.nick or "*"
    room, info = _find(reply.channels, room_of(target))
    if info is None:
        return format_line(SERVER, "403", me, target, text="No such channel")
    channel = channel_of(room)
    return (format_line(SERVER, "324", me, channel, *info["modes"].split())
            + format_line(SERVER, "329", me, channel, str(info["created"])))


def _reply_bans(codec: IrcCodec, reply: p.WhoReply, target: str, arg: str) -> bytes:
    me = codec.nick or "*"
    room, info = _find(reply.channels, room_of(target))
    channel = channel_of(room) if info else target
    lines = [format_line(SERVER, "367", me, channel, *ban.split()) for ban in (info or {}).get("bans", [])]
    return b"".join(lines) + format_line(SERVER, "368", me, channel, text="End of channel ban list")


def _reply_umode(codec: IrcCodec, reply: p.WhoReply, target: str, arg: str) -> bytes:
    _, person = _find(reply.people, codec.nick or "")
    return format_line(SERVER, "221", codec.nick or "*", person["modes"] if person else "+")


def _reply_list(codec: IrcCodec, reply: p.WhoReply, target: str, arg: str) -> bytes:
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


def _reply_who(codec: IrcCodec, reply: p.WhoReply, target: str, arg: str) -> bytes:
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


def _reply_whois(codec: IrcCodec, reply: p.WhoReply, target: str, arg: str) -> bytes:
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


def _reply_whowas(codec: IrcCodec, reply: p.WhoReply, target: str, arg: str) -> bytes:
    me = codec.nick or "*"
    count = int(arg) if arg.lstrip("-").isdigit() else 0
    entries = reply.history[:count] if count > 0 else reply.history
    if not entries:
        out = [format_line(SERVER, "406", me, target, text="There was no such nickname")]
    else:
        out = []
        for entry in entries:
            out.append(format_line(SERVER, "314", me, entry["nick"], entry["user"], SERVER, "*", text=entry["realname"]))
            out.append(format_line(SERVER, "312", me, entry["nick"], SERVER, text=str(entry["at"])))
    return b"".join(out) + format_line(SERVER, "369", me, target, text="End of WHOWAS")


def _reply_userhost(codec: IrcCodec, reply: p.WhoReply, target: str, arg: str) -> bytes:
    words = []
    for wanted in target.split():
        nick, person = _find(reply.people, wanted)
        if person is not None:
            words.append(f"{nick}{'*' if person['oper'] else ''}={'-' if person['away'] else '+'}{person['user']}@{SERVER}")
    return format_line(SERVER, "302", codec.nick or "*", text=" ".join(words))


def _reply_ison(codec: IrcCodec, reply: p.WhoReply, target: str, arg: str) -> bytes:
    online = [nick for wanted in target.split() for nick in [_find(reply.people, wanted)[0]] if nick]
    return format_line(SERVER, "303", codec.nick or "*", text=" ".join(online))


def _lusers_lines(me: str, stats: dict[str, int]) -> bytes:
    users, invisible = stats.get("users", 0), stats.get("invisible", 0)
    return (format_line(SERVER, "251", me, text=f"There are {users - invisible} users and {invisible} invisible on 1 servers")
            + format_line(SERVER, "252", me, str(stats.get("opers", 0)), text="operator(s) online")
            + format_line(SERVER, "253", me, str(stats.get("unknown", 0)), text="unknown connection(s)")
            + format_line(SERVER, "254", me, str(stats.get("rooms", 0)), text="channels formed")
            + format_line(SERVER, "255", me, text=f"I have {users} clients and 0 servers"))


def _reply_lusers(codec: IrcCodec, reply: p.WhoReply, target: str, arg: str) -> bytes:
    return _lusers_lines(codec.nick or "*", reply.stats)


def _reply_welcome(codec: IrcCodec, reply: p.WhoReply, target: str, arg: str) -> bytes:
    return _lusers_lines(codec.nick or "*", reply.stats) + codec._motd_lines()


REPLY_FORMATTERS: dict[str, Callable[[IrcCodec, p.WhoReply, str, str], bytes]] = {
    "names": _reply_names, "names-all": _reply_names_all, "joined": _reply_joined, "topic": _reply_topic,
    "mode": _reply_mode, "bans": _reply_bans, "umode": _reply_umode, "list": _reply_list, "who": _reply_who,
    "whois": _reply_whois, "whowas": _reply_whowas, "userhost": _reply_userhost, "ison": _reply_ison,
    "lusers": _reply_lusers, "welcome": _reply_welcome,
}

# The dispatch table: each IRC command and its handler.  HELP, the 421 answer and docs/IRC.md go by it.
IrcCodec.HANDLERS = {
    "CAP": IrcCodec._on_cap, "PASS": IrcCodec._on_pass, "NICK": IrcCodec._on_nick, "USER": IrcCodec._on_user,
    "PING": IrcCodec._on_ping, "PONG": IrcCodec._on_pong, "QUIT": IrcCodec._on_quit, "HELP": IrcCodec._on_help,
    "PRIVMSG": IrcCodec._on_privmsg, "NOTICE": IrcCodec._on_notice, "JOIN": IrcCodec._on_join,
    "PART": IrcCodec._on_part, "KICK": IrcCodec._on_kick, "INVITE": IrcCodec._on_invite, "TOPIC": IrcCodec._on_topic,
    "MODE": IrcCodec._on_mode, "AWAY": IrcCodec._on_away, "OPER": IrcCodec._on_oper, "WALLOPS": IrcCodec._on_wallops,
    "NAMES": IrcCodec._on_names, "LIST": IrcCodec._on_list, "WHO": IrcCodec._on_who, "WHOIS": IrcCodec._on_whois,
    "WHOWAS": IrcCodec._on_whowas, "USERHOST": IrcCodec._on_userhost, "ISON": IrcCodec._on_ison,
    "LUSERS": IrcCodec._on_lusers, "MOTD": IrcCodec._on_motd, "VERSION": IrcCodec._on_version,
    "INFO": IrcCodec._on_info, "LINKS": IrcCodec._on_links,
}
COMMANDS = frozenset(IrcCodec.HANDLERS)

# How each core message becomes lines (ChatMessage, the hot path, is handled before this table).
ENCODERS: dict[type, Callable[[IrcCodec, Any], bytes]] = {
    p.PrivateMessage: IrcCodec._encode_private, p.Notice: IrcCodec._encode_notice,
    p.WhoReply: IrcCodec._encode_who_reply, p.Welcome: IrcCodec._encode_welcome, p.ErrorMessage: IrcCodec._encode_error,
    p.Ping: IrcCodec._encode_ping, p.Pong: IrcCodec._encode_pong, p.FileOffer: IrcCodec._encode_offer,
}
NOTICE_ENCODERS: dict[str, Callable[[IrcCodec, p.Notice], bytes]] = {
    "join": IrcCodec._notice_join, "leave": IrcCodec._notice_leave, "quit": IrcCodec._notice_quit,
    "nick": IrcCodec._notice_nick, "kick": IrcCodec._notice_kick, "topic": IrcCodec._notice_topic,
    "mode": IrcCodec._notice_mode, "invite": IrcCodec._notice_invite, "away": IrcCodec._notice_away,
    "oper": IrcCodec._notice_oper, "wallops": IrcCodec._notice_wallops,
}


__all__ = ["IrcCodec", "parse_line", "format_line", "privmsg_lines", "channel_of", "room_of", "MAX_LINE", "COMMANDS",
           "HELP", "ERROR_NUMERICS"]
