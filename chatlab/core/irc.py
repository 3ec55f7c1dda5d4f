"""IRC text lines as a codec for the chat core, sans-I/O: nc, telnet and IRC clients join the rooms.

chatlab's own clients send length-prefixed binary frames (``protocol.py``).  This
module lets anything that speaks IRC (RFC 1459 / RFC 2812, the subset modern
clients use) share the same rooms: ``nc`` and ``telnet`` typed by hand, irssi,
WeeChat, HexChat, a bot written with an IRC library.  Like ``protocol.py`` it never
touches a socket: the server feeds it the bytes it received and gets back the
chat core's messages, and hands it the core's messages to turn into lines.

The theory, once:

* **Framing by delimiter.**  A message is a line: CR LF (IRC clients), LF (``nc``) and a
  lone CR all end one, and empty lines are skipped.  Where length-prefix
  framing reads a header and knows how much is coming, delimiter framing must scan
  every byte for the end, cap the line (512 bytes with the CR LF, RFC 1459 2.3),
  and keep the delimiter out of the text: a chat line from a binary client that
  holds a newline is sent to IRC as two lines, or it would forge a second message.
  A line over the cap gets numeric 417 and is dropped up to its end: at most 512
  bytes of an unfinished line are ever held.
* **Text is UTF-8.**  A line that is not, or holds a NUL byte, gets a NOTICE and is dropped.
* **Registration.**  ``NICK`` + ``USER`` (in either order; ``CAP LS`` and ``PASS``
  are tolerated) become ``Hello(nick, user=..., realname=...)`` for the core.  A taken
  or invalid nick comes back as 433 or 432 and the client may send another ``NICK``:
  the server registers text connections with ``nick_retries``.  Nicks follow RFC 2812.
* **Mapping.**  A chatlab room ``lobby`` is the IRC channel ``#lobby`` (a room a
  binary client named ``#x`` is ``##x``: one ``#`` is always added, so the mapping
  goes both ways).  An IRC user is in any number of channels (``Join(stay=True)``);
  a person typing into ``nc`` is put in the default room on registering, a program
  (``CAP LS``, or NICK and USER at once) is not.  IRC clients show what their user
  said themselves, so the core's echo of one's own chat line is dropped.
* **Dispatch.**  ``IrcCodec.HANDLERS`` maps each command to its method; queries ask
  the core (a ``Who``...) and :mod:`chatlab.core.irc_replies` formats its ``WhoReply``.

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
from typing import Any, Callable, ClassVar, Union

from ..errors import RemoteProtocolError
from . import protocol as p
from .channels import ROOM_MODES, USER_MODES
from .chatroom import NICK_RE
from .chatroom import normalize_name as _key  # names collide as they do in the core: NFKC, casefolded
from .irc_lines import (
    MAX_CONTENT,
    MAX_LINE,
    SERVER,
    _chat_lines,
    channel_of,
    format_line,
    parse_line,
    privmsg_lines,
    room_of,
    source,
)
from .irc_replies import (
    CLOSING_CODES,
    ERROR_NUMERICS,
    HELP,
    NICK_CODES,
    NICKLEN,
    REPLY_FORMATTERS,
    VERSION,
    error_params,
    info_lines,
    isupport_line,
    motd_lines,
)

REGISTER_HINT = "register with NICK yourname and USER yourname 0 * :Your Name"

Event = Union[p.Message, bytes]  # what next_event hands the server (never a Frame: no files here)
_TOO_LONG = b"\x00too long"  # marks a dropped line in the queue (a real line never holds NUL)

# What the server understands before registering; the rest of HANDLERS needs NICK and USER first.
COMMANDS_BEFORE_REGISTRATION = frozenset({"CAP", "PASS", "NICK", "USER", "PING", "PONG", "QUIT", "HELP"})

IRC_NICK = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}\-]{0,%d}" % (NICKLEN - 1))  # RFC 2812 2.3.1
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH"})
TLS_HANDSHAKE = b"\x16\x03"  # a TLS record (handshake, version 3.x): an IRC client set to use TLS


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
        self._burst = False  # NICK and USER arrived together: registered by a program, no forced channel either
        self._hello_sent = False  # waiting for the core's Welcome or a nick error
        self._lines: deque[bytes] = deque()  # complete lines not yet handled
        self._partial = b""  # the start of a line whose end has not arrived
        self._discarding = False  # inside a line over the cap: drop up to its end
        self._pending: deque[Event] = deque()  # events a line produced, handed out one per call
        self._queries: dict[int, tuple[str, str, p.Message]] = {}  # id(request) -> (purpose, target, request)
        self._who_for: deque[tuple[str, str, p.Message]] = deque()  # the queries handed to the core, in order
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
        if self.nick is None and b"NICK " in data.upper() and b"USER " in data.upper():
            self._burst = True  # NICK and USER in one read: a program (or a paste), not a person typing
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
                raise RemoteProtocolError("this server does not speak TLS: connect without it "
                                          "(plain IRC or chatlab frames)")
            if not self._lines:
                return None
            self._handle_line(self._lines.popleft())
        if not self._pending:
            return b""  # the line needed no answer (CAP END, an empty PRIVMSG to nobody...)
        event = self._pending.popleft()
        if not isinstance(event, bytes):
            self._last_request = event
            query = self._queries.pop(id(event), None)
            if query is not None:  # the core answers in the order it is asked: remember why, in that order
                self._who_for.append(query)
        return event

    def _handle_line(self, raw: bytes) -> None:
        if raw is _TOO_LONG:
            self._numeric("417", text=f"Input line was too long (the limit is {MAX_LINE} bytes with CR LF); "
                                      "it was dropped")
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
        elif not word.isupper() and self.channel:  # "hello everyone": chat typed as is
            self._numeric("421", word, text=f"Unknown command; to talk, type PRIVMSG {self.channel} :your text "
                                            "(HELP lists the commands)")
        elif not word.isupper():
            self._numeric("421", word, text="Unknown command; to talk, join a channel first: JOIN #lobby, then "
                                            "PRIVMSG #lobby :your text (HELP lists the commands)")
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
        self._queries[id(request)] = (purpose, target, request)
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
            lobby = not (self._cap or self._burst)
            self._request(p.Hello(self._wanted_nick, self._password, user=user, realname=self._user[3], lobby=lobby))

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
        channels, nicks = params[0].split(","), params[1].split(",")
        if len(channels) != len(nicks):  # "KICK #a n1,n2": one channel for every nick
            channels = channels[:1] * len(nicks)
        for channel, nick in zip(channels, nicks):
            if not channel.startswith("#"):
                self._numeric("403", channel, text="No such channel")
            elif nick:
                self._request(p.Kick(room_of(channel), nick, reason))

    def _on_invite(self, params: list[str]) -> None:
        if not params:  # INVITE alone: the invitations I hold (336, 337)
            self._ask_who("invites", self.nick or "", nick=self.nick or "")
        elif len(params) < 2:
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
        if "," in params[0]:  # "NAMES #a,#b": each one's 353s, then one 366 for the list
            self._ask_who("names-some", params[0], full=True)
        else:
            self._ask_who("names", params[0], room=room_of(params[0]) if params[0].startswith("#") else "")

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
        self._reply(self.motd_lines())

    def _on_version(self, params: list[str]) -> None:
        self._numeric("351", f"{VERSION}.", SERVER, text="chatlab: a chat server for a socket programming class")
        self._reply(self._isupport())

    def _on_info(self, params: list[str]) -> None:
        self._reply(info_lines(self.nick or "*", VERSION))

    def _on_links(self, params: list[str]) -> None:
        self._numeric("364", SERVER, SERVER, text="0 chatlab: one server, no links")  # <mask> <server> :<hops> <info>
        self._numeric("365", "*", text="End of LINKS list")

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
                           text=f"{message.peer} offered you a file ({message.name}); "
                                "IRC clients cannot receive chatlab files")

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
        return isupport_line(self.nick or "*")

    def motd_lines(self) -> bytes:
        return motd_lines(self.nick or "*", self.motd)

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
            self._queries[id(request)] = ("joined", channel, request)
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
        return (format_line(SERVER, "381", me, text="You are now an IRC operator")
                + format_line(source(me), "MODE", me, "+o"))

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
        return format_line(SERVER, number, me, *error_params(number, error.subject), text=error.text)

    def _encode_who_reply(self, reply: p.WhoReply) -> bytes:
        purpose, target, _ = self._who_for.popleft() if self._who_for else ("names", self.channel, None)
        kind, _, arg = purpose.partition(" ")
        return REPLY_FORMATTERS[kind](self, reply, target, arg)


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
