"""The chatlab chat server: one select() loop, non-blocking sockets, no threads.

How the loop works (the theory, once):

* Every socket is non-blocking and registered with a :mod:`selectors`
  selector.  ``select`` is the teaching default; ``poll`` and ``epoll`` are one
  switch away (``Server(selector="epoll")``), because ``selectors`` hides all
  three behind one interface.
* A socket is watched for *reading* while we are willing to take more from it,
  and for *writing* only while its outgoing queue holds something.  A socket
  with an empty send buffer is always writable, so asking about it anyway
  would make ``select()`` return at once, forever: a 100%-CPU busy loop.
* Sending never blocks: it appends bytes to the connection's queue.  At the
  end of each turn of the loop, every queue that grew is flushed, many frames
  per ``sendmsg()`` call; only what the kernel would not take waits for
  ``select()`` to report the socket writable again.
* Reading is how we apply pressure back.  A client over its flood rate, or a
  file sender whose receiver is not keeping up, is simply not read for a
  while: its bytes wait in the kernel, TCP's own flow control slows it down,
  nothing it sent is lost and nobody else is slowed.

The per-connection state lives on one :class:`Connection` object attached to
the selector registration (``key.data``), as CPython's selectors intends.
"""

from __future__ import annotations

import hmac
import itertools
import logging
import re
import selectors
import socket
import sys
import threading
import time
import unicodedata
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from . import protocol as p
from .errors import ChatlabError, ProtocolError, RemoteProtocolError

log = logging.getLogger("chatlab.server")

SELECTORS: dict[str, str] = {"select": "SelectSelector", "poll": "PollSelector", "epoll": "EpollSelector"}
# select() takes file descriptors below FD_SETSIZE only (1024 on Linux and
# macOS); Windows counts sockets instead, 512 in CPython's build.
FD_SETSIZE = 512 if sys.platform == "win32" else 1024


def beyond_select(sock: socket.socket, watched: int) -> bool:
    """Would select() refuse ``sock``, with ``watched`` sockets already in its sets?"""
    if sys.platform == "win32":
        return watched >= FD_SETSIZE  # Windows handles are not small numbers; its limit is a count
    return sock.fileno() >= FD_SETSIZE


HAVE_SENDMSG = hasattr(socket.socket, "sendmsg")
RESERVED_NICKS = frozenset({"server", "chatlab", "admin", "root", "system", "operator", "nickserv", "everyone"})
NICK_RE = re.compile(r"^[^\W\d][\w\-]{0,19}$")  # a letter first, then letters, digits, _ and -
ROOM_RE = re.compile(r"^#?[\w\-]{1,32}$")
# Fairness: frames handled for one client before the loop serves the others.  Without a
# budget, one recv() of 64 KiB of tiny frames (5,000 PINGs) held everyone up for ~20 ms.
FRAMES_PER_TURN = 64
MAX_TRANSFERS = 32  # transfers offered or going at once, per sender and per receiver: the relay tables stay bounded
CHAT_TYPES = frozenset(
    {p.FrameType.SAY, p.FrameType.WHISPER, p.FrameType.JOIN, p.FrameType.LEAVE, p.FrameType.WHO, p.FrameType.FILE_OFFER}
)
SERVER_TO_CLIENT = frozenset(
    {p.FrameType.WELCOME, p.FrameType.ERROR, p.FrameType.CHAT, p.FrameType.PRIVATE, p.FrameType.NOTICE, p.FrameType.WHO_REPLY}
)


def normalize_name(name: str) -> str:
    """The key two names collide on: NFKC folds look-alikes (``ｂｏｂ`` -> ``bob``), casefold folds case."""
    return unicodedata.normalize("NFKC", name).casefold()


@dataclass(frozen=True)
class FloodLimit:
    """A token bucket per client: ``burst`` messages at once, then ``rate`` per second."""

    rate: float = 5.0
    burst: int = 10


@dataclass
class Connection:
    """Everything the server knows about one client socket."""

    sock: socket.socket
    peer: str
    decoder: p.FrameDecoder
    connected_at: float
    last_frame_at: float
    outbox: deque[bytes | memoryview] = field(default_factory=deque)
    queued: int = 0  # bytes in outbox
    nick: str | None = None
    key: str = ""  # normalize_name(nick)
    room: str = ""
    held: p.Frame | None = None  # decoded, but waiting for flood tokens or backpressure
    tokens: float = 0.0
    tokens_at: float = 0.0
    paused_until: float = 0.0  # flood control: not read before this time
    flood_told: bool = False
    blocked_by: Connection | None = None  # backpressure: the receiver whose queue is full
    blocking: set[Connection] = field(default_factory=set)  # senders waiting on our queue
    ping_sent_at: float = 0.0  # 0.0: no ping outstanding
    closing: str | None = None  # reason; close once the outbox is flushed
    sending: dict[int, Relay] = field(default_factory=dict)  # by the sender's stream id
    receiving: dict[int, Relay] = field(default_factory=dict)  # by the receiver's stream id
    next_sid: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    events: int = 0  # the selector events we currently ask for

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    @property
    def name(self) -> str:
        return self.nick or self.peer


@dataclass
class Relay:
    """One file transfer passing through the server: the server forwards, never stores."""

    sender: Connection
    sender_sid: int
    receiver: Connection
    receiver_sid: int
    accepted: bool = False


class Server:
    """A chat-room server running one select() loop.

    Use it as a context manager, and the loop runs in a background thread::

        with chatlab.Server(port=0) as server:      # 127.0.0.1, a free port
            print(server.address)                    # ('127.0.0.1', 54321)

    or call :meth:`serve_forever` in the foreground (the CLI does).

    Args:
        host, port: where to listen; port 0 lets the OS choose (read ``address``).
        selector: ``"select"`` (default), ``"poll"`` or ``"epoll"``.
        flood_limit: a :class:`FloodLimit`, or ``None`` to turn flood control off.
        max_clients: further connections get a ``server-full`` error.
        max_message: longest chat message, in characters.
        ping_interval, ping_timeout: a client silent for ``ping_interval`` seconds is
            pinged, and dropped if nothing comes back within ``ping_timeout`` seconds.
        hello_timeout: a connection must introduce itself within this many seconds.
        max_payload: the largest frame payload accepted (checked from the header).
        max_queue: a client whose unsent bytes exceed this is not reading: dropped.
        relay_high_water: stop reading a file sender while its receiver's queue is above this.
        room_passwords: rooms that need a password to join, e.g. ``{"class": "secret"}``.
        on_frame: called as ``on_frame("in"|"out", nick_or_address, frame)`` for each
            frame, from the server's thread; the frame log of notebook 05 uses it.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        selector: str = "select",
        flood_limit: FloodLimit | None = FloodLimit(),
        max_clients: int = 200,
        max_rooms: int = 100,
        max_message: int = 2000,
        ping_interval: float = 30.0,
        ping_timeout: float = 60.0,
        hello_timeout: float = 10.0,
        max_payload: int = p.MAX_PAYLOAD,
        max_queue: int = 8 * 1024 * 1024,
        relay_high_water: int = 1024 * 1024,
        default_room: str = "lobby",
        room_passwords: dict[str, str] | None = None,
        motd: str = "Welcome to chatlab. Type /help for commands.",
        on_frame: Callable[[str, str, p.Frame], None] | None = None,
        backlog: int = 128,
    ) -> None:
        if selector not in SELECTORS or not hasattr(selectors, SELECTORS[selector]):
            available = [name for name, cls in SELECTORS.items() if hasattr(selectors, cls)]
            raise ValueError(f"selector {selector!r} is not available here; choose one of {available}")
        self.selector_name = selector
        self.flood_limit = flood_limit
        self.max_clients = max_clients
        self.max_rooms = max_rooms
        self.max_message = max_message
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.hello_timeout = hello_timeout
        self.max_payload = max_payload
        self.max_queue = max_queue
        self.relay_high_water = relay_high_water
        self.default_room = default_room
        self.room_passwords = {normalize_name(k): v for k, v in (room_passwords or {}).items()}
        self.motd = motd
        self.on_frame = on_frame

        self._selector: selectors.BaseSelector = getattr(selectors, SELECTORS[selector])()
        self._listener = self._open_listener(host, port, backlog)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        # A socket pair lets another thread wake the loop (select() takes sockets only on Windows).
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        if selector == "select" and any(beyond_select(sock, 0) for sock in (self._listener, self._wake_r)):
            # Without this check the loop's first select() raises in its thread and the server dies silently.
            self._selector.close()
            for sock in (self._listener, self._wake_r, self._wake_w):
                sock.close()
            raise ValueError(f"select() is limited to descriptors below {FD_SETSIZE} and this process already uses "
                             "more; use selector='epoll' (or 'poll')")

        self._connections: set[Connection] = set()
        self._nicks: dict[str, Connection] = {}  # normalize_name(nick) -> connection
        self._rooms: dict[str, set[Connection]] = {}  # normalize_name(room) -> members
        self._room_names: dict[str, str] = {}  # normalize_name(room) -> name as first written
        self._flooded: set[Connection] = set()  # paused by flood control
        self._dirty: set[Connection] = set()  # queued to this turn: flushed at its end
        self._busy: set[Connection] = set()  # frames left over after a turn's budget: handled next turn
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.peak_queued = 0  # the most bytes ever queued to one client: backpressure's witness

    # ----------------------------------------------------------------- set-up

    @staticmethod
    def _open_listener(host: str, port: int, backlog: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            if sys.platform != "win32":
                # Before bind(): rebind at once even while old connections sit in TIME_WAIT.
                # (Windows rebinds past TIME_WAIT anyway, and there SO_REUSEADDR would let
                # another program steal a port in use; socket.create_server skips it too.)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(backlog)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        return listener

    def start(self) -> Server:
        """Run the loop in a daemon thread; returns at once."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.serve_forever, name=f"chatlab-server-{self.address[1]}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop, close every connection and the listening socket."""
        self._stopping.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self._close_all()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------- the loop

    def serve_forever(self) -> None:
        """Run the event loop until :meth:`stop` (or Ctrl-C in the foreground)."""
        log.info("chatlab server listening on %s:%d (%s)", *self.address, self.selector_name)
        tick = min(1.0, self.ping_interval / 4, self.hello_timeout / 4)  # how often timers are checked
        next_tick = time.monotonic() + tick
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                timeout = 0.0 if self._busy else max(0.0, min([next_tick] + [c.paused_until for c in self._flooded]) - now)
                for key, mask in self._selector.select(timeout):
                    if key.fileobj is self._listener:
                        self._accept()
                    elif key.fileobj is self._wake_r:
                        self._drain_wakeups()
                    else:
                        conn: Connection = key.data
                        if mask & selectors.EVENT_WRITE:
                            self._flush(conn)
                        if mask & selectors.EVENT_READ and conn in self._connections:
                            self._on_readable(conn)
                now = time.monotonic()
                self._resume_paused(now)
                self._resume_busy()
                self._flush_dirty()
                if now >= next_tick:
                    self._keepalive(now)
                    next_tick = now + tick
        except KeyboardInterrupt:
            log.info("interrupted: shutting down")
        finally:
            self._close_all()

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(512):
                pass
        except OSError:
            pass

    def _accept(self) -> None:
        try:
            sock, addr = self._listener.accept()
        except OSError:  # the client gave up before we got to it
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # chat lines must not wait for Nagle
        now = time.monotonic()
        conn = Connection(sock, f"{addr[0]}:{addr[1]}", p.FrameDecoder(self.max_payload), now, now)
        if self.flood_limit:
            conn.tokens, conn.tokens_at = float(self.flood_limit.burst), now
        if self.selector_name == "select" and beyond_select(sock, len(self._connections) + 2):
            # select() cannot watch this descriptor; refuse it rather than crash the loop.
            self._refuse(sock, "server-full", f"select() is limited to {FD_SETSIZE} descriptors; run the server with --selector epoll")
            return
        if len(self._connections) >= self.max_clients:
            self._refuse(sock, "server-full", f"the server already has {self.max_clients} clients")
            return
        self._connections.add(conn)
        conn.events = selectors.EVENT_READ
        self._selector.register(sock, conn.events, conn)
        log.debug("%s connected", conn.peer)

    @staticmethod
    def _refuse(sock: socket.socket, code: str, text: str) -> None:
        log.warning("refusing a connection: %s", text)
        try:
            sock.send(p.encode(p.ErrorMessage(code, text)))  # a small frame fits any empty send buffer
        except OSError:
            pass
        sock.close()

    def _on_readable(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._disconnect(conn, f"connection broken ({exc.strerror or exc})")
            return
        if not data:
            self._disconnect(conn, "connection closed")
            return
        try:
            conn.decoder.feed(data)
        except ProtocolError:
            return  # already reported when the decoder first failed; the connection is closing
        self._process(conn)

    def _process(self, conn: Connection) -> None:
        """Handle every complete frame, unless flood control or backpressure says wait."""
        budget = FRAMES_PER_TURN
        while conn.closing is None and conn in self._connections:
            if budget == 0:  # the rest waits for the next turn, once everyone else was served
                self._busy.add(conn)
                self._update_events(conn)
                return
            budget -= 1
            frame = conn.held
            if frame is None:
                try:
                    frame = conn.decoder.next_frame()
                except RemoteProtocolError as exc:
                    self._kick(conn, "protocol-error", str(exc))
                    return
                if frame is None:
                    return
            conn.held = None
            conn.last_frame_at = time.monotonic()
            conn.ping_sent_at = 0.0
            if not self._may_handle(conn, frame):
                conn.held = frame
                self._update_events(conn)
                return
            if self.on_frame:
                self.on_frame("in", conn.name, frame)
            try:
                self._handle(conn, frame)
            except RemoteProtocolError as exc:
                self._kick(conn, "protocol-error", str(exc))
                return
            except (ValueError, RecursionError) as exc:
                # Still the peer's fault, and it must not end the loop: JSON nested
                # thousands deep (RecursionError), a lone surrogate that cannot be re-encoded.
                self._kick(conn, "protocol-error", f"malformed {frame.type.name} frame ({type(exc).__name__}: {exc})")
                return

    def _may_handle(self, conn: Connection, frame: p.Frame) -> bool:
        if conn.blocked_by is not None:
            return False
        if self.flood_limit is None or frame.type not in CHAT_TYPES:
            return True
        now = time.monotonic()
        limit = self.flood_limit
        conn.tokens = min(float(limit.burst), conn.tokens + (now - conn.tokens_at) * limit.rate)
        conn.tokens_at = now
        if conn.tokens >= 1.0:
            conn.tokens -= 1.0
            conn.flood_told = False
            return True
        conn.paused_until = now + (1.0 - conn.tokens) / limit.rate
        self._flooded.add(conn)
        if not conn.flood_told:  # say it once per episode, not once per held message
            conn.flood_told = True
            self._send(conn, p.Notice("flood", f"you are sending faster than {limit.rate:g} messages/s: "
                                               "the server reads you more slowly; nothing is lost"))
        return False

    def _resume_busy(self) -> None:
        for conn in list(self._busy):
            self._busy.discard(conn)
            self._process(conn)
            self._update_events(conn)

    def _resume_paused(self, now: float) -> None:
        for conn in [c for c in self._flooded if c.paused_until <= now]:
            self._flooded.discard(conn)
            conn.paused_until = 0.0
            self._update_events(conn)
            self._process(conn)

    # --------------------------------------------------------- frame handling

    def _handle(self, conn: Connection, frame: p.Frame) -> None:
        kind = frame.type
        if conn.nick is None and kind not in (p.FrameType.HELLO, p.FrameType.PING, p.FrameType.PONG, p.FrameType.QUIT):
            raise RemoteProtocolError(f"the first frame must be HELLO, got {kind.name}")
        if kind in SERVER_TO_CLIENT:
            raise RemoteProtocolError(f"clients may not send {kind.name} frames")
        if kind in p.TRANSFER_TYPES:
            self._handle_transfer(conn, frame)
            return
        message = p.decode_message(frame)
        if isinstance(message, p.Hello):
            self._hello(conn, message)
        elif isinstance(message, p.Say):
            if self._check_text(conn, message.text):
                self._broadcast(conn.room, p.ChatMessage(self._room_names[conn.room], conn.nick or "", message.text, message.action))
        elif isinstance(message, p.Whisper):
            self._whisper(conn, message)
        elif isinstance(message, p.Join):
            self._join(conn, message.room, message.password)
        elif isinstance(message, p.Leave):
            self._join(conn, self.default_room)
        elif isinstance(message, p.Who):
            users = {c.nick: self._room_names[c.room] for c in self._nicks.values() if c.nick}
            rooms = {self._room_names[k]: len(members) for k, members in self._rooms.items()}
            self._send(conn, p.WhoReply(users, rooms))
        elif isinstance(message, p.Ping):
            self._send(conn, p.Pong(message.token))
        elif isinstance(message, p.Quit):
            self._disconnect(conn, message.reason, flush=True)

    def _hello(self, conn: Connection, hello: p.Hello) -> None:
        if conn.nick is not None:
            self._error(conn, "already-registered", f"you are already {conn.nick}")
            return
        nick = unicodedata.normalize("NFKC", hello.nick).strip()
        key = normalize_name(nick)
        problem = None
        if not NICK_RE.match(nick):
            problem = ("bad-nick", f"{hello.nick!r} is not a valid nickname: 1-20 letters, digits, '_' or '-', starting with a letter")
        elif key in RESERVED_NICKS:
            problem = ("nick-reserved", f"the nickname {nick!r} is reserved")
        elif key in self._nicks:
            problem = ("nick-taken", f"the nickname {nick!r} is already in use")
        if problem:
            self._kick(conn, *problem)
            return
        conn.nick, conn.key = nick, key
        self._nicks[key] = conn
        self._send(conn, p.Welcome(nick, self._room_display(self.default_room), self.motd))
        self._enter_room(conn, self.default_room)
        log.info("%s is %s", conn.peer, nick)

    def _check_text(self, conn: Connection, text: str) -> bool:
        if not text.strip():
            self._error(conn, "empty-message", "an empty message was not sent")
            return False
        if len(text) > self.max_message:
            self._error(conn, "message-too-long", f"messages are limited to {self.max_message} characters; yours had {len(text)}")
            return False
        return True

    def _whisper(self, conn: Connection, message: p.Whisper) -> None:
        target = self._nicks.get(normalize_name(message.to))
        if target is None:
            self._error(conn, "no-such-nick", f"nobody called {message.to!r} is online")
            return
        if self._check_text(conn, message.text):
            private = p.PrivateMessage(conn.nick or "", target.nick or "", message.text, message.action)
            self._send(target, private)
            if target is not conn:
                self._send(conn, private)  # the sender's copy confirms delivery

    def _room_display(self, room: str) -> str:
        return self._room_names.get(normalize_name(room), room)

    def _join(self, conn: Connection, room: str, password: str = "") -> None:
        key = normalize_name(room)
        if not ROOM_RE.fullmatch(room):  # fullmatch: "$" alone would let "class\n" pass
            self._error(conn, "bad-room", f"{room!r} is not a valid room name: 1-32 letters, digits, '_' or '-'")
            return
        if key == conn.room:
            self._error(conn, "already-in-room", f"you are already in {self._room_display(room)}")
            return
        if key not in self._rooms and len(self._rooms) >= self.max_rooms:
            self._error(conn, "too-many-rooms", f"the server already has {self.max_rooms} rooms")
            return
        expected = self.room_passwords.get(key)
        if expected is not None and not hmac.compare_digest(expected.encode(), password.encode()):
            self._error(conn, "bad-password", f"room {room!r} needs the right password")
            return
        self._leave_room(conn, "leave", f"{conn.nick} left for {room}")
        self._enter_room(conn, room)

    def _enter_room(self, conn: Connection, room: str) -> None:
        key = normalize_name(room)
        self._room_names.setdefault(key, room)
        self._rooms.setdefault(key, set()).add(conn)
        conn.room = key
        # Everyone in the room hears it, the newcomer included: that is its confirmation.
        self._broadcast(key, p.Notice("join", f"{conn.nick} joined {self._room_names[key]}", conn.nick or "", self._room_names[key]))

    def _leave_room(self, conn: Connection, kind: str, text: str) -> None:
        members = self._rooms.get(conn.room)
        if members is None:
            return
        members.discard(conn)
        name = self._room_names[conn.room]
        self._broadcast(conn.room, p.Notice(kind, text, conn.nick or "", name))
        if not members and conn.room != normalize_name(self.default_room):
            del self._rooms[conn.room], self._room_names[conn.room]
        conn.room = ""

    def _broadcast(self, room: str, message: p.Message) -> None:
        data = p.encode(message)  # encode once, queue the same bytes for everyone
        members = list(self._rooms.get(room, ()))
        if self.on_frame is not None:
            for member in members:
                self._trace_out(member, data)
        for member in members:
            self._queue(member, data)

    def _trace_out(self, conn: Connection, data: bytes) -> None:
        if self.on_frame is not None:
            header = p.parse_header(data, len(data))
            self.on_frame("out", conn.name, p.Frame(p.FrameType(header.type), header.flags, header.stream_id, data[p.HEADER_SIZE :]))

    # ------------------------------------------------------- file transfers

    def _handle_transfer(self, conn: Connection, frame: p.Frame) -> None:
        """Relay transfer frames between sender and receiver, renumbering streams.

        Each side knows a transfer by its own stream id; the server maps one to
        the other, which is also why nobody can touch a transfer that is not
        theirs: an id not in your own table is simply unknown.
        """
        kind, sid = frame.type, frame.stream_id
        if kind is p.FrameType.FILE_OFFER:
            self._offer(conn, p.decode_message(frame))  # type: ignore[arg-type]
            return
        if sid & p.INCOMING_STREAM_BIT:  # the receiver speaks: accept, reject, ack, done, cancel
            if kind is p.FrameType.FILE_CHUNK:
                raise RemoteProtocolError(f"FILE_CHUNK on stream {sid:#x}, which you receive")
            relay = conn.receiving.get(sid)
        else:  # the sender speaks: chunk, done, cancel
            if kind not in (p.FrameType.FILE_CHUNK, p.FrameType.FILE_DONE, p.FrameType.FILE_CANCEL):
                raise RemoteProtocolError(f"{kind.name} on stream {sid}, which you send")
            relay = conn.sending.get(sid)
        if relay is None:
            # Chunks and acks still in flight after a cancel are normal: drop them quietly.
            if kind not in (p.FrameType.FILE_CHUNK, p.FrameType.FILE_ACK):
                self._error(conn, "no-such-transfer", f"you have no transfer with stream id {sid:#x}")
            return
        if relay.sender is conn:
            if kind is p.FrameType.FILE_CHUNK and not relay.accepted:
                raise RemoteProtocolError(f"FILE_CHUNK for stream {sid} before the receiver accepted it")
            other, other_sid = relay.receiver, relay.receiver_sid
        else:
            if kind is p.FrameType.FILE_ACCEPT:
                relay.accepted = True
            other, other_sid = relay.sender, relay.sender_sid
        # Check it, so a malformed frame costs its sender and not the peer's connection...
        if kind is p.FrameType.FILE_CHUNK:
            if len(frame.payload) < p.CHUNK_PREFIX.size:
                raise RemoteProtocolError(f"FILE_CHUNK payload of {len(frame.payload)} bytes is shorter than its offset")
        else:
            p.decode_message(frame)  # a few bytes of control
        # ...then forward the payload untouched behind a new header: no copy of the chunk.
        self._queue(other, p.pack_header(kind, len(frame.payload), other_sid, frame.flags), frame.payload)
        if self.on_frame:
            self.on_frame("out", other.name, frame._replace(stream_id=other_sid))
        if kind in (p.FrameType.FILE_REJECT, p.FrameType.FILE_CANCEL) or (kind is p.FrameType.FILE_DONE and conn is relay.receiver):
            self._end_relay(relay)
        elif kind is p.FrameType.FILE_CHUNK and other.queued > self.relay_high_water:
            # Backpressure: stop reading this sender until the receiver's queue drains.
            conn.blocked_by = other
            other.blocking.add(conn)
            self._update_events(conn)

    def _offer(self, conn: Connection, offer: p.FileOffer) -> None:
        target = self._nicks.get(normalize_name(offer.peer))
        if not 0 < offer.stream_id < p.INCOMING_STREAM_BIT or offer.stream_id in conn.sending:
            raise RemoteProtocolError(f"FILE_OFFER needs a new stream id from 1 to 2**31-1 (got {offer.stream_id})")
        if target is None or target is conn:
            self._queue(conn, p.encode(p.FileReject(offer.stream_id, f"nobody else called {offer.peer!r} is online")))
            return
        if len(conn.sending) >= MAX_TRANSFERS or len(target.receiving) >= MAX_TRANSFERS:
            who = "you have" if len(conn.sending) >= MAX_TRANSFERS else f"{target.nick} has"
            self._queue(conn, p.encode(p.FileReject(offer.stream_id, f"{who} {MAX_TRANSFERS} transfers going already; "
                                                                     "try again when one has ended")))
            return
        relay = Relay(conn, offer.stream_id, target, p.INCOMING_STREAM_BIT | next(target.next_sid))
        conn.sending[relay.sender_sid] = relay
        target.receiving[relay.receiver_sid] = relay
        self._send(target, p.FileOffer(relay.receiver_sid, conn.nick or "", offer.name, offer.size, offer.sha256))

    def _end_relay(self, relay: Relay) -> None:
        relay.sender.sending.pop(relay.sender_sid, None)
        relay.receiver.receiving.pop(relay.receiver_sid, None)

    def _unblock(self, conn: Connection) -> None:
        """``conn``'s queue drained: resume reading the senders that waited on it."""
        waiting, conn.blocking = conn.blocking, set()
        for sender in waiting:
            sender.blocked_by = None
            self._update_events(sender)
            self._process(sender)

    # ------------------------------------------------------------- output

    def _send(self, conn: Connection, message: p.Message) -> None:
        data = p.encode(message)
        self._trace_out(conn, data)
        self._queue(conn, data)

    def _error(self, conn: Connection, code: str, text: str) -> None:
        self._send(conn, p.ErrorMessage(code, text))

    def _kick(self, conn: Connection, code: str, text: str) -> None:
        """Tell a client what it did wrong, then disconnect it once that is sent."""
        log.warning("dropping %s: %s", conn.name, text)
        self._error(conn, code, text)
        self._disconnect(conn, text, flush=True)

    def _queue(self, conn: Connection, *parts: bytes) -> None:
        """Append to a connection's queue; the loop sends it at the end of this turn."""
        if conn.closing is not None or conn not in self._connections:
            return
        self._dirty.add(conn)
        for part in parts:
            if part:
                conn.outbox.append(part)
                conn.queued += len(part)
        self.peak_queued = max(self.peak_queued, conn.queued)
        if conn.queued > self.max_queue:
            conn.outbox.clear()
            conn.queued = 0
            self._disconnect(conn, f"not reading: more than {self.max_queue} bytes were waiting for it")

    def _flush_dirty(self) -> None:
        """End of a turn: send what this turn queued.  Only what the kernel would not take
        waits for select() to say the socket is writable again."""
        while self._dirty:
            self._flush(self._dirty.pop())

    def _flush(self, conn: Connection) -> None:
        self._dirty.discard(conn)
        while conn.outbox:
            # Many frames, one system call: sendmsg() gathers them (Windows has no
            # sendmsg, so there they are joined into one buffer first).
            batch = list(itertools.islice(conn.outbox, 256))
            wanted = sum(len(part) for part in batch)
            try:
                sent = conn.sock.sendmsg(batch) if HAVE_SENDMSG else conn.sock.send(b"".join(batch))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._disconnect(conn, f"connection broken ({exc.strerror or exc})")
                return
            conn.queued -= sent
            unaccounted = sent
            while unaccounted:
                head = conn.outbox[0]
                if unaccounted < len(head):
                    conn.outbox[0] = memoryview(head)[unaccounted:]
                    break
                unaccounted -= len(head)
                conn.outbox.popleft()
            if sent < wanted:
                break  # the kernel's buffer is full: wait for EVENT_WRITE
        if conn.blocking and conn.queued <= self.relay_high_water // 2:
            self._unblock(conn)
        if not conn.outbox and conn.closing is not None:
            self._close(conn)
            return
        self._update_events(conn)

    def _update_events(self, conn: Connection) -> None:
        """Ask select() only for what we need now: read unless paused, write only while queued."""
        if conn not in self._connections:
            return
        events = 0
        if (conn.closing is None and not conn.paused_until and conn.blocked_by is None and conn.held is None
                and conn not in self._busy):
            events |= selectors.EVENT_READ
        if conn.outbox:
            events |= selectors.EVENT_WRITE
        if events == conn.events:
            return
        if conn.events and events:
            self._selector.modify(conn.sock, events, conn)
        elif events:
            self._selector.register(conn.sock, events, conn)
        else:
            self._selector.unregister(conn.sock)
        conn.events = events

    # --------------------------------------------------------- disconnects

    def _keepalive(self, now: float) -> None:
        for conn in list(self._connections):
            if conn.nick is None and now - conn.connected_at > self.hello_timeout:
                self._kick(conn, "hello-timeout", f"no HELLO within {self.hello_timeout:g} s")
            elif conn.ping_sent_at and now - conn.ping_sent_at > self.ping_timeout:
                self._disconnect(conn, f"ping timeout: no answer for {now - conn.last_frame_at:.1f} s")
            elif not conn.ping_sent_at and now - conn.last_frame_at > self.ping_interval:
                conn.ping_sent_at = now
                self._send(conn, p.Ping(int(now)))

    def _disconnect(self, conn: Connection, reason: str, flush: bool = False) -> None:
        """Remove a client from the chat at once; close its socket now, or after its queue is sent."""
        if conn.closing is not None or conn not in self._connections:
            return
        if conn.nick is not None:
            if self._nicks.get(conn.key) is conn:
                del self._nicks[conn.key]
            self._leave_room(conn, "quit", f"{conn.nick} quit ({reason})" if reason else f"{conn.nick} quit")
            for relay in list(conn.sending.values()) + list(conn.receiving.values()):
                other, other_sid = (relay.receiver, relay.receiver_sid) if relay.sender is conn else (relay.sender, relay.sender_sid)
                self._send(other, p.FileCancel(other_sid, f"{conn.nick} disconnected: {reason}"))
                self._end_relay(relay)
        log.info("%s disconnected: %s", conn.name, reason or "quit")
        conn.closing = reason
        self._unblock(conn)
        if conn.blocked_by is not None:
            conn.blocked_by.blocking.discard(conn)
        if not flush or not conn.outbox:
            self._close(conn)
        else:
            self._update_events(conn)

    def _close(self, conn: Connection) -> None:
        self._connections.discard(conn)
        self._flooded.discard(conn)
        self._busy.discard(conn)
        self._dirty.discard(conn)
        if conn.events:
            self._selector.unregister(conn.sock)
            conn.events = 0
        conn.sock.close()

    def _close_all(self) -> None:
        if self._closed:
            return
        self._closed = True
        for conn in list(self._connections):
            self._queue(conn, p.encode(p.Notice("info", "the server is shutting down")))
            self._flush_best_effort(conn)
            self._close(conn)
        self._selector.close()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        log.info("chatlab server on %s:%d stopped", *self.address)

    @staticmethod
    def _flush_best_effort(conn: Connection) -> None:
        try:
            for chunk in conn.outbox:
                conn.sock.send(chunk)
        except OSError:
            pass

    # ----------------------------------------------------------- reporting

    @property
    def nicks(self) -> list[str]:
        """Nicknames online now (a snapshot, safe to read from another thread)."""
        return sorted(c.nick for c in list(self._nicks.values()) if c.nick)

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting in all outgoing queues now."""
        return sum(c.queued for c in list(self._connections))


def serve(host: str = "127.0.0.1", port: int = 0, **options: object) -> None:
    """Run a server in the foreground until Ctrl-C (the CLI's ``server`` verb)."""
    server = Server(host, port, **options)  # type: ignore[arg-type]
    print(f"chatlab server listening on {server.address[0]}:{server.address[1]} ({server.selector_name}); Ctrl-C stops it",
          flush=True)
    server.serve_forever()


__all__ = ["Server", "FloodLimit", "Connection", "serve", "normalize_name", "ChatlabError"]
