"""A blocking, notebook-friendly chat client.

Two threads per client, each owning one direction of the socket:

* the **reader** receives bytes, decodes frames and turns them into events
  (small dataclasses) on a queue that :meth:`Client.wait_for` reads;
* the **writer** is the only code that ever sends on the socket.  Everything
  to send goes through its priority queue: control frames first, then chat,
  then file chunks.  One writer per socket is why no lock is needed around
  ``sendall`` (the seed wondered whether one was), and the priority is why a
  chat line never waits behind megabytes of file data queued in this process.

However the connection ends (``close()`` from any thread at any moment, the
server going away, a reset), both threads end the same way: every transfer
fails with a reason, every file is closed (a ``.part`` is kept for a resume),
and :class:`Disconnected` is the last event.  The reader's own replies (acks,
pongs) never raise, so nothing interrupts that clean-up.  Socket errors become
chatlab errors in one place, :func:`chatlab.errors.translate_socket_errors`.
The events and their queue live in :mod:`chatlab.events`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import queue
import socket
import ssl
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from ..addresses import Address, parse_address
from ..core import protocol as p
from ..core.transfer import (
    IncomingTransfer,
)
from ..errors import (
    ConnectionBroken,
    ConnectionClosed,
    LocalProtocolError,
    MessageTooLong,
    NickError,
    ServerError,
    translate_socket_errors,
)
from ..events import (
    EventQueue,
)
from ..tls import client_context, wrap_client
from .direct import DirectIncoming, DirectPath
from .receiving import ReceivingFiles
from .sending import Sending, Transfer
from .state import (
    CHAT,
    CLOSED_BY_US,
    CONTROL,
    FILE,
    FLUSH_TIMEOUT,
    JOIN_TIMEOUT,
    UNSENT_LIMIT,
    Job,
)
from .threads import Threads

log = logging.getLogger("chatlab.client")

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7777  # where ``chatlab server`` listens unless told otherwise
DEFAULT_ADDRESS = f"{DEFAULT_HOST}:{DEFAULT_PORT}"

class Nickname(str):
    """A client's nickname: a plain ``str`` (compared, printed, sent as one) that renames when called.

    ``client.nick`` reads the nickname; ``client.nick("robert")`` is :meth:`Client.nick_change`.
    """

    def __new__(cls, value: str, rename: Callable[[str, float], None]) -> Nickname:
        obj = super().__new__(cls, value)
        obj._rename = rename
        return obj

    _rename: Callable[[str, float], None]

    def __call__(self, new: str, timeout: float = 5.0) -> None:
        """Be called ``new`` from now on (see :meth:`Client.nick_change`)."""
        self._rename(new, timeout)

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (str, (str(self),))  # pickled, copied or sent elsewhere: the plain name


class Client(ReceivingFiles, Sending, DirectPath, Threads):
    """One chat connection.  Create it with :meth:`connect`; close it with ``with``.

    Example::

        with chatlab.Client.connect(server.address, nick="alice") as alice:
            alice.say("hello")
            reply = alice.wait_for(chatlab.ChatMessage, timeout=2)
    """
    def __init__(self, sock: socket.socket, decoder: p.FrameDecoder, welcome: p.Welcome, *,
                 download_dir: str | os.PathLike[str] | None = None, overwrite: bool = False,
                 priority_writer: bool = True) -> None:
        self._sock = sock
        self.priority_writer = priority_writer
        self.download_dir = Path(download_dir) if download_dir is not None else None
        self.overwrite = overwrite
        self.max_payload = p.MAX_PAYLOAD  # the server's frame limit; a longer chat line is refused before sending
        self._outgoing: dict[int, Transfer] = {}  # owned by the writer thread
        self._incoming: dict[int, IncomingTransfer] = {}  # owned by the reader thread (and accept_file)
        self._incoming_ended = False  # the reader has closed every incoming file: accept nothing more
        self._offers: dict[int, p.FileOffer] = {}  # offers waiting for accept_file / reject_file
        self._accepted_at: dict[int, float] = {}  # incoming stream id -> when we accepted (for FileReceived.seconds)
        self._incoming_lock = threading.Lock()
        self._direct_in: dict[int, DirectIncoming] = {}  # incoming stream id -> its direct path (under _incoming_lock)
        self._direct_threads: list[threading.Thread] = []
        # Where a receiver tells senders to connect: the listening address, unless this maps it
        # elsewhere (a port forward, or a link emulator in the tests).
        self.advertise_direct: Callable[[tuple[str, int]], tuple[str, int]] | None = None
        self.accept_direct = True  # False: answer every offer without an address (a firewall that allows nothing in)
        self._stream_ids = itertools.count(1)
        self._unsent_acks: dict[int, p.FileAck] = {}  # reader thread: the latest ack per incoming stream
        self._acks_out: dict[int, int] = {}  # reader thread: what the last ack sent said, per incoming stream
        # File frames the strategies released, sent only while nothing else waits (writer thread only).
        self._file_frames: deque[tuple[int, bytes | tuple[bytes, bytes]]] = deque()
        self._decoder = decoder
        self.nick = welcome.nick
        self.room = welcome.room
        self.rooms: list[str] = [welcome.room] if welcome.room else []  # every room I am in (the reader keeps it)
        self._staying: set[str] = set()  # rooms joined with stay=True whose confirmation has not come yet
        self.motd = welcome.motd
        self.address: tuple[str, int] = sock.getpeername()[:2]
        self._events = EventQueue(owner=self.nick)
        self._closing = False  # close() was called: from now on, whatever fails, we did it
        self._end_reason = ""  # why the connection ended, once it did (the Disconnected event's reason)
        self._end_lock = threading.Lock()
        self._outq: queue.PriorityQueue[tuple[int, int, bytes | Job | Transfer | None]] = queue.PriorityQueue()
        self._out_seq = itertools.count()
        self._out_lock = threading.Lock()  # makes "the writer has stopped" and "queue this" one step
        self._writer_stopped = False
        self._reader = threading.Thread(target=self._read_loop, name=f"chatlab-reader-{self.nick}", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name=f"chatlab-writer-{self.nick}", daemon=True)
        self._reader.start()
        self._writer.start()

    @classmethod
    def connect(cls, address: Address, nick: str, *, password: str = "", room: str = "", timeout: float = 5.0,
                download_dir: str | os.PathLike[str] | None = None, overwrite: bool = False,
                priority_writer: bool = True, unsent_limit: int | None = UNSENT_LIMIT,
                tls: bool | ssl.SSLContext = False, cafile: str | os.PathLike[str] | None = None,
                server_hostname: str | None = None) -> Client:
        """Connect, introduce ourselves as ``nick`` and wait for the welcome.

        ``address`` is ``("host", port)`` or ``"host:port"``; ``chatlab server``
        listens on :data:`DEFAULT_ADDRESS` (127.0.0.1:7777) unless told otherwise.
        With ``download_dir``, file offers are accepted into that directory at
        once (a lab default); without it they arrive as :class:`FileOffer`
        events for :meth:`accept_file` or :meth:`reject_file`.
        ``priority_writer=False`` sends everything in FIFO order, chat behind
        file chunks: the naive writer notebook 07 compares against.
        ``room``: go there instead of the default room (HELLO with ``lobby: false``,
        then a JOIN): nobody in the lobby sees us come or go.
        ``unsent_limit`` caps the bytes the kernel holds unsent for this socket
        (``TCP_NOTSENT_LOWAT``, where the OS has it); ``None`` leaves the OS default.
        ``tls=True`` speaks TLS (notebook 11), checking the server's certificate
        against ``cafile`` (the class CA; default: the system's CAs) and the host
        name in ``address`` (or ``server_hostname``); pass an ``ssl.SSLContext`` as
        ``tls`` to choose everything yourself.  A ``cafile`` or a ``server_hostname``
        means TLS too: they would be silently ignored otherwise.

        Raises:
            ValueError: ``address`` is not HOST:PORT, or the port is invalid.
            NickError: the server refused the nickname (taken, reserved, malformed).
            ServerError: the server refused the connection (e.g. it is full).
            ConnectionBroken: nothing answered at ``address``, or not in time.
            TlsError: with ``tls``: the certificate was refused (the message says why).
        """
        host, port = parse_address(address)
        with translate_socket_errors(f"could not connect to {host}:{port}"):
            sock = socket.create_connection((host, port), timeout=timeout)
        try:
            with translate_socket_errors("connection failed during the handshake"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if unsent_limit and hasattr(socket, "TCP_NOTSENT_LOWAT"):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, unsent_limit)
            if tls or cafile is not None or server_hostname is not None:  # a CA or a name to check means TLS
                context = (tls if isinstance(tls, ssl.SSLContext)
                           else client_context(os.fspath(cafile) if cafile else None))
                with translate_socket_errors("connection failed during the TLS handshake"):
                    sock = wrap_client(sock, context, server_hostname or host, timeout)  # type: ignore[assignment]
            with translate_socket_errors("connection failed during the handshake"):
                sock.sendall(p.encode(p.Hello(nick, password, lobby=not room)))
                decoder = p.FrameDecoder()
                welcome = cls._await_welcome(sock, decoder, timeout)
                sock.settimeout(None)  # from now on the reader thread blocks in recv()
            client = cls(sock, decoder, welcome, download_dir=download_dir, overwrite=overwrite,
                         priority_writer=priority_writer)
        except BaseException:
            sock.close()
            raise
        if room:  # in no room yet: the join is the only notice, and only that room hears it
            try:
                client.join(room)
            except BaseException:
                client.close()
                raise
        return client

    @staticmethod
    def _await_welcome(sock: socket.socket, decoder: p.FrameDecoder, timeout: float) -> p.Welcome:
        deadline = time.monotonic() + timeout
        while True:
            for frame in decoder:
                message = p.decode_message(frame)
                if isinstance(message, p.Welcome):
                    return message
                if isinstance(message, p.ErrorMessage):
                    error = NickError if message.code.startswith(("nick", "bad-nick")) else ServerError
                    raise error(message.code, message.text)
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except socket.timeout:
                raise ConnectionBroken(f"no welcome from the server within {timeout:g} s") from None
            if not data:
                raise ConnectionBroken("the server closed the connection during the handshake")
            decoder.feed(data)

    @property
    def unsent_limit(self) -> int | None:
        """The kernel's ``TCP_NOTSENT_LOWAT`` for this socket, or ``None`` where the OS has no such option."""
        if not hasattr(socket, "TCP_NOTSENT_LOWAT"):
            return None
        with self._socket_errors("reading TCP_NOTSENT_LOWAT"):
            return int(self._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT))

    def say(self, text: str, room: str = "") -> None:
        """Send ``text`` to everyone in my current room (or in ``room``, one of the rooms I am in).

        Raises:
            MessageTooLong: the line does not fit in one frame (nothing is sent;
                the connection stays up).  ``exc.limit`` is the most a line may have.
            ConnectionClosed: the connection is closed.
        """
        self._send(p.Say(text, room=room))

    def action(self, text: str) -> None:
        """An IRC-style ``/me`` action: ``* alice waves``."""
        self._send(p.Say(text, action=True))

    def whisper(self, to: str, text: str) -> None:
        """A private message that only ``to`` (and I) receive.  Raises :class:`MessageTooLong` as :meth:`say` does."""
        self._send(p.Whisper(to, text))

    def join(self, room: str, password: str = "", timeout: float = 5.0, *, stay: bool = False) -> None:
        """Move to ``room`` and return once the server confirms it; with ``stay=True``, join it
        *as well*, without leaving the rooms I am in (as IRC clients do).

        Whoever creates a room with a password sets it; later joiners need it.  Whoever
        creates a room is its operator (:meth:`kick`, :meth:`topic`, :meth:`mode`).

        Raises:
            ServerError: the server refused (bad name, wrong password, too many rooms...).
            TimeoutError: no answer within ``timeout`` seconds.
        """
        since = self._events.mark()
        if stay:
            from ..core.chatroom import normalize_name

            self._staying.add(normalize_name(room))  # the reader keeps the current room in self.rooms
        self._send(p.Join(room, password, stay=stay))
        answer = self._events.take(
            lambda e: ((isinstance(e, p.Notice) and e.kind == "join" and e.nick == self.nick)
                       or isinstance(e, p.ErrorMessage)),
            timeout, since=since, consume=False, what=f"confirmation of joining {room!r}",
        )
        if isinstance(answer, p.ErrorMessage):
            self._events.remove(answer)
            raise ServerError(answer.code, answer.text)

    def leave(self, room: str = "", reason: str = "", timeout: float = 5.0) -> None:
        """Leave ``room`` (one of mine); without one, leave my current room for the server's default room.

        Raises:
            ServerError: ``room`` does not exist, or I am not in it.
        """
        if not room:
            since = self._events.mark()
            self._send(p.Leave())
            self._events.take(lambda e: isinstance(e, p.Notice) and e.kind == "join" and e.nick == self.nick,
                              timeout, since=since, consume=False, what="confirmation of leaving")
            return
        self._ask(p.Leave(room, reason),
                  lambda e: isinstance(e, p.Notice) and e.kind == "leave" and e.nick == self.nick,
                  timeout, f"confirmation of leaving {room!r}")

    # Rooms have operators (whoever created one); IRC users share these rules.

    @property
    def nick(self) -> Nickname:
        """My nickname, as the server accepted it: a ``str``; calling it renames me (``client.nick("robert")``)."""
        return self._nick

    @nick.setter
    def nick(self, value: str) -> None:
        self._nick = Nickname(value, self.nick_change)

    def nick_change(self, nick: str, timeout: float = 5.0) -> None:
        """Be called ``nick`` from now on; everyone who shares a room with me sees it.

        Raises:
            ServerError: the nick is taken (``nick-taken``), invalid or reserved.
        """
        old = self.nick
        self._ask(p.Nick(nick), lambda e: isinstance(e, p.Notice) and e.kind == "nick" and e.nick == old,
                  timeout, f"confirmation of the nick {nick!r}")

    def kick(self, room: str, nick: str, reason: str = "", timeout: float = 5.0) -> None:
        """Remove ``nick`` from ``room`` (I must be one of its operators)."""
        self._ask(p.Kick(room, nick, reason), lambda e: isinstance(e, p.Notice) and e.kind == "kick",
                  timeout, f"confirmation of kicking {nick!r}")

    def topic(self, room: str, text: str | None = None, timeout: float = 5.0) -> str:
        """``room``'s topic; with ``text``, set it first ("" clears it; under mode +t, operators only)."""
        if text is not None:
            self._ask(p.Topic(room, text, change=True), lambda e: isinstance(e, p.Notice) and e.kind == "topic",
                      timeout, f"confirmation of {room!r}'s topic")
            return text
        reply = self._ask(p.Topic(room), lambda e: isinstance(e, p.WhoReply), timeout, f"{room!r}'s topic")
        info: dict[str, Any] = next(iter(reply.channels.values()), {})
        return str(info.get("topic", ""))

    def mode(self, target: str, modes: str = "", *args: str, timeout: float = 5.0) -> str:
        """Change a room's modes (``mode("team", "+o", "bob")``, ``"+k", "secret"``, ``"+m"``...), or my
        own (``mode(client.nick, "+i")``); without ``modes``, return them (``"+nt"``)."""
        if not modes.strip("+-"):
            reply = self._ask(p.Mode(target), lambda e: isinstance(e, p.WhoReply), timeout, f"{target!r}'s modes")
            found: dict[str, Any] = next(iter(reply.channels.values()), {}) or next(iter(reply.people.values()), {})
            return str(found.get("modes", ""))
        notice = self._ask(p.Mode(target, modes, list(args)), lambda e: isinstance(e, p.Notice) and e.kind == "mode",
                           timeout, f"confirmation of mode {modes}")
        return str(notice.detail)

    def invite(self, nick: str, room: str, timeout: float = 5.0) -> None:
        """Invite ``nick`` into ``room`` (needed to enter a room with mode +i)."""
        self._ask(p.Invite(nick, room),
                  lambda e: isinstance(e, p.Notice) and e.kind == "invite" and e.nick == self.nick,
                  timeout, f"confirmation of inviting {nick!r}")

    def away(self, text: str = "", timeout: float = 5.0) -> None:
        """Mark me away with ``text`` (whisperers are told), or back when it is empty."""
        self._ask(p.Away(text), lambda e: isinstance(e, p.Notice) and e.kind == "away" and e.nick == self.nick,
                  timeout, "confirmation of away")

    def _ask(self, message: p.Message, answer: Callable[[Any], bool], timeout: float, what: str) -> Any:
        """Send ``message``; return the first event ``answer`` accepts, or raise the server's refusal."""
        since = self._events.mark()
        self._send(message)
        got = self._events.take(lambda e: answer(e) or isinstance(e, p.ErrorMessage), timeout, since=since,
                                consume=False, what=what)
        if isinstance(got, p.ErrorMessage):
            self._events.remove(got)
            raise ServerError(got.code, got.text)
        if isinstance(got, p.WhoReply):
            self._events.remove(got)
        return got

    def who(self, timeout: float = 5.0, **details: Any) -> p.WhoReply:
        """Ask who is online; returns a :class:`WhoReply` (``users``: nick -> room, ``rooms``: room -> size).

        ``details`` are :class:`~chatlab.core.protocol.Who`'s fields: ``room="team"`` or
        ``nick="bob"`` adds ``people`` and ``channels`` (operators, topic, modes...), ``full=True``
        everyone's, ``was="bob"`` the ``history`` of a nick that left.
        """
        since = self._events.mark()
        self._send(p.Who(**details))
        reply: p.WhoReply = self._events.take(lambda e: isinstance(e, p.WhoReply), timeout, since=since,
                                              what="an answer to WHO")
        return reply

    def send(self, message: p.Message) -> None:
        """Queue any protocol message in order with chat, without waiting for an answer.

        The terminal client uses it for ``/join`` and ``/who``: their answers
        are printed as events when they come, instead of being waited for.
        """
        self._send(message)

    def send_raw(self, data: bytes) -> None:
        """Send bytes exactly as given, framing or not (tests and notebooks use it to misbehave)."""
        self._put(CONTROL, data)

    def max_text_length(self, message: p.Message | None = None) -> int:
        """The most bytes of text (UTF-8, as JSON) that fit in one frame of ``message``'s kind (default: a SAY)."""
        message = message if message is not None else p.Say("")
        empty = _with_text(message, "")
        return self.max_payload - (len(p.encode(empty)) - p.HEADER_SIZE)

    def _encode_checked(self, message: p.Message) -> bytes:
        """``message`` as a frame, or :class:`MessageTooLong` if the server would drop us for its size."""
        frame = p.encode(message)
        size = len(frame) - p.HEADER_SIZE
        if size > self.max_payload:
            if not hasattr(message, "text"):  # e.g. a JOIN with a 300 kB room name: no "line" to speak of
                raise LocalProtocolError(f"{type(message).__name__} of {size:,} bytes is over the frame limit of "
                                         f"{self.max_payload:,} bytes; it was not sent")
            text = json.dumps(getattr(message, "text"), ensure_ascii=False)
            text_size = len(text.encode("utf-8")) - 2  # minus the quotes
            raise MessageTooLong(text_size, self.max_text_length(message))
        return frame

    @property
    def events(self) -> EventQueue:
        """Everything received, in order, waiting to be taken (``wait_for`` and friends read it)."""
        return self._events

    @property
    def dropped_events(self) -> int:
        """Events lost because nobody took them and more than :data:`MAX_BACKLOG` were waiting."""
        return self._events.dropped

    def wait_for(self, kind: type | tuple[type, ...], timeout: float = 5.0,
                 predicate: Callable[[Any], bool] | None = None) -> Any:
        """Return (and remove) the oldest event of type ``kind`` that matches ``predicate``.

        Events of other types stay queued for later calls.

        Raises:
            TimeoutError: nothing matching arrived within ``timeout`` seconds.
            ConnectionClosed: the connection ended and nothing matching is left.
        """
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        return self._events.take(lambda e: isinstance(e, kind) and (predicate is None or predicate(e)),
                                 timeout, what=name)

    def next_event(self, timeout: float = 5.0) -> Any:
        """Return (and remove) the oldest event of any type."""
        return self._events.take(lambda e: True, timeout, what="any event")

    def drain(self) -> list[Any]:
        """Return and remove every event received so far."""
        return self._events.drain()

    @property
    def closed(self) -> bool:
        """``close()`` was called, or the connection ended by itself."""
        return self._closing or self._events.closed

    @property
    def end_reason(self) -> str:
        """Why the connection ended (the :class:`Disconnected` event's reason); ``""`` while it is up."""
        return self._end_reason

    def close(self, reason: str = "") -> None:
        """Say goodbye, stop both threads and close the socket.  Safe to call twice, at any moment.

        Transfers still running end at once: an outgoing one's ``wait()``
        raises :class:`TransferError`, an incoming one ends with a
        :class:`FileFailed` event and its ``.part`` closed (kept for a resume).
        """
        if not self.closed:
            self._closing = True  # set first: the server's answer to QUIT must not read as "closed by the server"
            try:
                self._enqueue(CHAT, p.encode(p.Quit(reason)))  # after any chat already queued
                self._enqueue(FILE + 1, None)  # stop the writer once everything before it is sent
            except ConnectionClosed:
                pass  # the writer has stopped already
            self._writer.join(FLUSH_TIMEOUT)
        self._closing = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected any more: nothing to shut down
        self._sock.close()
        self._reader.join(JOIN_TIMEOUT)
        self._writer.join(JOIN_TIMEOUT)
        for thread in list(self._direct_threads):  # their sockets were shut when their transfers ended
            thread.join(JOIN_TIMEOUT)
        self._finish(CLOSED_BY_US)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"in {self.room}"
        return f"<chatlab.Client {self.nick} {state}>"



def _with_text(message: p.Message, text: str) -> p.Message:
    """``message`` with its ``text`` field replaced (messages without text are returned as they are)."""
    if hasattr(message, "text"):
        return dataclasses.replace(message, text=text)  # type: ignore[arg-type]
    return message
