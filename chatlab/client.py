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
import functools
import itertools
import json
import logging
import os
import queue
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, NamedTuple, Union

from .core import protocol as p
from .errors import (
    ChatlabError,
    ConnectionBroken,
    ConnectionClosed,
    LocalProtocolError,
    MessageTooLong,
    NickError,
    ProtocolError,
    ServerError,
    TransferError,
    translate_socket_errors,
)
from . import direct
from .hashing import BackgroundSha256
from .events import MAX_BACKLOG, DirectFallback, Disconnected, EventQueue, FileFailed, FileReceived, FileStarted
from .core.transfer import (
    IncomingTransfer,
    OutgoingTransfer,
    SendStrategy,
    ToSender,
    TraceRow,
    TransferStats,
    file_reader,
    TransferState,
    make_strategy,
)

log = logging.getLogger("chatlab.client")

Address = Union[tuple[str, int], str]

__all__ = ["Client", "Transfer", "Receiving", "parse_address", "Disconnected", "FileStarted", "FileReceived", "FileFailed",
           "DirectFallback", "MAX_BACKLOG"]

# Writer priorities: lower goes first.
CONTROL, CHAT, FILE = 0, 1, 2
# Unsent bytes the kernel may hold for us (TCP_NOTSENT_LOWAT, Linux and macOS).  Beyond
# them sendall() waits in our writer thread, where a chat line can still overtake file
# chunks; without it the kernel queues megabytes, and chat waits behind all of them.
UNSENT_LIMIT = 128 * 1024
FLUSH_TIMEOUT = 2.0  # seconds close() lets the writer send what was queued before QUIT
JOIN_TIMEOUT = 5.0  # seconds close() then waits for each thread; they end at once unless a disk write is slow
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7777  # where ``chatlab server`` listens unless told otherwise
DEFAULT_ADDRESS = f"{DEFAULT_HOST}:{DEFAULT_PORT}"

# The reasons the connection ended, as the Disconnected event, FileFailed and TransferError say them.
CLOSED_BY_US = "you closed the connection"
CLOSED_BY_SERVER = "closed by the server"

class Receiving(NamedTuple):
    """A file arriving now, as :meth:`Client.receiving` reports it (for progress displays)."""

    sender: str
    name: str
    size: int
    received: int  # bytes written so far, resumed ones included
    resumed_from: int  # bytes an earlier transfer had left in the .part


Job = Callable[[], None]  # work the writer thread runs for the reader (transfer state is the writer's)


class Transfer:
    """A file being sent, as returned by :meth:`Client.send_file`.

    ``wait()`` blocks until the receiver confirmed the file (SHA-256 checked)
    and returns its :class:`~chatlab.core.transfer.TransferStats`; ``acked`` and
    ``size`` show progress; ``trace`` has one row per chunk and ack for plots.
    """

    def __init__(self, outgoing: OutgoingTransfer, to: str, name: str, file: Any, token: str = "") -> None:
        self.outgoing = outgoing
        self.to = to
        self.name = name
        self._file = file
        self._finished = threading.Event()
        self.token = token  # not empty: a direct connection was offered (via="direct")
        self.fallback_reason = ""  # why a direct transfer went through the server after all
        self._direct_sock: socket.socket | None = None  # the direct connection, while it is open

    @property
    def via(self) -> str:
        """Which way the bytes go: ``"direct"`` (a second connection to the receiver) or ``"server"``."""
        return self.outgoing.via

    @property
    def size(self) -> int:
        return self.outgoing.size

    @property
    def acked(self) -> int:
        """Bytes the receiver has confirmed writing so far."""
        return self.outgoing.acked

    @property
    def done(self) -> bool:
        return self.outgoing.done

    @property
    def failed(self) -> bool:
        return self.outgoing.failed

    @property
    def reason(self) -> str:
        return self.outgoing.reason

    @property
    def accepted(self) -> bool:
        """The receiver accepted the offer (the transfer may have ended since)."""
        return self.outgoing.started_at is not None

    @property
    def answered(self) -> bool:
        """The receiver (or the server for it) has answered the offer: accepted, rejected, or it ended."""
        return self.outgoing.state is not TransferState.OFFERED

    @property
    def resumed_from(self) -> int:
        """Bytes the receiver already had from an interrupted transfer (only the rest is sent)."""
        return self.outgoing.start_offset

    @property
    def strategy(self) -> SendStrategy:
        return self.outgoing.strategy

    @property
    def trace(self) -> list[TraceRow]:
        return self.outgoing.trace

    @property
    def stats(self) -> TransferStats:
        """Bytes sent this session, seconds from accept to the receiver's confirmation, ``mb_per_s``."""
        return self.outgoing.stats()

    def wait(self, timeout: float | None = None) -> TransferStats:
        """Block until the file is delivered and verified.

        Raises:
            TransferError: rejected, cancelled, or the connection failed.
            TimeoutError: not finished within ``timeout`` seconds.
        """
        if not self._finished.wait(timeout):
            raise TimeoutError(f"sending {self.name} to {self.to}: {self.acked} of {self.size} bytes after {timeout:g} s")
        if self.failed:
            raise TransferError(f"sending {self.name} to {self.to} failed: {self.reason}")
        return self.stats

    def _finish(self) -> None:
        sock = self._direct_sock
        if sock is not None:  # wake the direct sender if it is still in sendfile()
            _shut(sock)
        self._file.close()
        self._finished.set()

    def __repr__(self) -> str:
        return f"<chatlab.Transfer {self.name} -> {self.to} {self.outgoing.state.value} {self.acked}/{self.size}>"


def _shut(sock: socket.socket) -> None:
    """Shut a socket down so that a thread blocked on it wakes up (the thread closes it)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _DirectIncoming:
    """Receiver: the direct path of one incoming transfer, shared by the reader and the direct thread."""

    def __init__(self, listener: direct.DirectListener) -> None:
        self.listener = listener
        self.lock = threading.Lock()  # IncomingTransfer is not thread-safe: one of the two threads at a time
        self.path = ""  # "direct" or "server", once the first bytes decided it
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None
        self.ended_elsewhere = False  # the sender's cancel or our own close ended it: nothing to tell the sender


def parse_address(address: Address) -> tuple[str, int]:
    """Accept ``("host", port)`` or ``"host:port"`` (``"[::1]:port"`` for IPv6).

    Raises:
        ValueError: not HOST:PORT, or the port is not between 1 and 65535.
    """
    if isinstance(address, str):
        host, sep, port_text = address.rpartition(":")
        if not sep or not port_text.isdigit():
            raise ValueError(f"expected HOST:PORT, got {address!r}")
        host, port = host.strip("[]") or "127.0.0.1", int(port_text)
    else:
        host, port = address[0], int(address[1])
    if not 1 <= port <= 65535:
        raise ValueError(f"invalid port {port}: a port is a number from 1 to 65535")
    return host, port


class Client:
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
        self._direct_in: dict[int, _DirectIncoming] = {}  # incoming stream id -> its direct path (under _incoming_lock)
        self._direct_threads: list[threading.Thread] = []
        # Where a receiver tells senders to connect: the listening address, unless this maps it
        # elsewhere (a port forward, or a link emulator in the tests).
        self.advertise_direct: Callable[[tuple[str, int]], tuple[str, int]] | None = None
        self.accept_direct = True  # False: answer every offer without an address (a firewall that allows nothing in)
        self._stream_ids = itertools.count(1)
        self._unsent_acks: dict[int, p.FileAck] = {}  # reader thread: the latest ack per incoming stream
        # File frames the strategies released, sent only while nothing else waits (writer thread only).
        self._file_frames: deque[tuple[int, bytes]] = deque()
        self._decoder = decoder
        self.nick = welcome.nick
        self.room = welcome.room
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

    # ------------------------------------------------------------ connecting

    @classmethod
    def connect(cls, address: Address, nick: str, *, password: str = "", timeout: float = 5.0,
                download_dir: str | os.PathLike[str] | None = None, overwrite: bool = False,
                priority_writer: bool = True, unsent_limit: int | None = UNSENT_LIMIT) -> Client:
        """Connect, introduce ourselves as ``nick`` and wait for the welcome.

        ``address`` is ``("host", port)`` or ``"host:port"``; ``chatlab server``
        listens on :data:`DEFAULT_ADDRESS` (127.0.0.1:7777) unless told otherwise.
        With ``download_dir``, file offers are accepted into that directory at
        once (a lab default); without it they arrive as :class:`FileOffer`
        events for :meth:`accept_file` or :meth:`reject_file`.
        ``priority_writer=False`` sends everything in FIFO order, chat behind
        file chunks: the naive writer notebook 07 compares against.
        ``unsent_limit`` caps the bytes the kernel holds unsent for this socket
        (``TCP_NOTSENT_LOWAT``, where the OS has it); ``None`` leaves the OS default.

        Raises:
            ValueError: ``address`` is not HOST:PORT, or the port is invalid.
            NickError: the server refused the nickname (taken, reserved, malformed).
            ServerError: the server refused the connection (e.g. it is full).
            ConnectionBroken: nothing answered at ``address``, or not in time.
        """
        host, port = parse_address(address)
        with translate_socket_errors(f"could not connect to {host}:{port}"):
            sock = socket.create_connection((host, port), timeout=timeout)
        try:
            with translate_socket_errors("connection failed during the handshake"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if unsent_limit and hasattr(socket, "TCP_NOTSENT_LOWAT"):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, unsent_limit)
                sock.sendall(p.encode(p.Hello(nick, password)))
                decoder = p.FrameDecoder()
                welcome = cls._await_welcome(sock, decoder, timeout)
                sock.settimeout(None)  # from now on the reader thread blocks in recv()
            return cls(sock, decoder, welcome, download_dir=download_dir, overwrite=overwrite, priority_writer=priority_writer)
        except BaseException:
            sock.close()
            raise

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

    # ------------------------------------------------------------- chatting

    def say(self, text: str) -> None:
        """Send ``text`` to everyone in my current room.

        Raises:
            MessageTooLong: the line does not fit in one frame (nothing is sent;
                the connection stays up).  ``exc.limit`` is the most a line may have.
            ConnectionClosed: the connection is closed.
        """
        self._send(p.Say(text))

    def action(self, text: str) -> None:
        """An IRC-style ``/me`` action: ``* alice waves``."""
        self._send(p.Say(text, action=True))

    def whisper(self, to: str, text: str) -> None:
        """A private message that only ``to`` (and I) receive.  Raises :class:`MessageTooLong` as :meth:`say` does."""
        self._send(p.Whisper(to, text))

    def join(self, room: str, password: str = "", timeout: float = 5.0) -> None:
        """Move to ``room`` and return once the server confirms it.

        Whoever creates a room with a password sets it; later joiners need it.

        Raises:
            ServerError: the server refused (bad name, wrong password, too many rooms...).
            TimeoutError: no answer within ``timeout`` seconds.
        """
        since = self._events.mark()
        self._send(p.Join(room, password))
        answer = self._events.take(
            lambda e: (isinstance(e, p.Notice) and e.kind == "join" and e.nick == self.nick) or isinstance(e, p.ErrorMessage),
            timeout, since=since, consume=False, what=f"confirmation of joining {room!r}",
        )
        if isinstance(answer, p.ErrorMessage):
            self._events.remove(answer)
            raise ServerError(answer.code, answer.text)

    def leave(self, timeout: float = 5.0) -> None:
        """Leave my room for the server's default room."""
        since = self._events.mark()
        self._send(p.Leave())
        self._events.take(lambda e: isinstance(e, p.Notice) and e.kind == "join" and e.nick == self.nick,
                          timeout, since=since, consume=False, what="confirmation of leaving")

    def who(self, timeout: float = 5.0) -> p.WhoReply:
        """Ask who is online; returns a :class:`WhoReply` (``users``: nick -> room, ``rooms``: room -> size)."""
        since = self._events.mark()
        self._send(p.Who())
        reply: p.WhoReply = self._events.take(lambda e: isinstance(e, p.WhoReply), timeout, since=since, what="an answer to WHO")
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
            text_size = len(json.dumps(getattr(message, "text"), ensure_ascii=False).encode("utf-8")) - 2  # minus the quotes
            raise MessageTooLong(text_size, self.max_text_length(message))
        return frame

    # ------------------------------------------------------- file transfers

    def send_file(self, path: str | os.PathLike[str], to: str, strategy: str | SendStrategy = "adaptive",
                  name: str | None = None, via: str = "server", **strategy_options: float) -> Transfer:
        """Offer a file to ``to`` and send it once accepted, while chat goes on.

        Args:
            path: the file to send.
            to: the receiver's nickname.
            strategy: ``"sleep"``, ``"fixed"``, ``"adaptive"`` or a strategy object.
            name: the name offered to the receiver (default: the file's own name).
            via: ``"server"`` (the default: the chunks go through the chat server,
                which always works) or ``"direct"``: the offer goes through the
                server, the bytes over a second connection to the receiver
                (``socket.sendfile``); if that connection cannot be made, the
                chunks go through the server after all and a
                :class:`DirectFallback` event says why.
            **strategy_options: passed to the strategy, e.g. ``pause=0.01`` or ``chunks=16``.

        Returns:
            A :class:`Transfer`; ``transfer.wait(timeout)`` blocks until it is delivered.

        Raises:
            ConnectionClosed: the connection is closed (the file is not opened).
            ValueError: ``via`` is neither ``"server"`` nor ``"direct"``.
        """
        if via not in ("server", "direct"):
            raise ValueError(f"via must be 'server' or 'direct', not {via!r}")
        self._check_open()
        if isinstance(strategy, str):
            strategy = make_strategy(strategy, **strategy_options)
        file = open(path, "rb")
        try:
            size = file.seek(0, os.SEEK_END)
            # No SHA-256 pass before the offer: the transfer hashes as it reads, the digest goes at the end.
            outgoing = OutgoingTransfer(next(self._stream_ids), size, "", file_reader(file), strategy)
            token = direct.new_token() if via == "direct" else ""
            transfer = Transfer(outgoing, to, Path(path).name if name is None else name, file, token)
            self._put(CONTROL, transfer)  # the writer registers it and sends its offer
        except BaseException:
            file.close()
            raise
        return transfer

    def accept_file(self, offer: p.FileOffer, download_dir: str | os.PathLike[str] | None = None) -> None:
        """Accept an offer into ``download_dir`` (default: the client's own).

        A :class:`FileStarted` event follows (it says whether an earlier
        ``.part`` is resumed), then :class:`FileReceived` or :class:`FileFailed`.

        Raises:
            TransferError: the offer is unknown, its file name is unsafe, or
                the ``.part`` file cannot be opened (the offer is then rejected).
            ConnectionClosed: the connection is closed.
        """
        directory = download_dir if download_dir is not None else self.download_dir
        if directory is None:
            raise ValueError("accept_file needs a download_dir (or pass one to Client.connect)")
        self._check_open()
        with self._incoming_lock:
            if self._offers.pop(offer.stream_id, None) is None:
                raise TransferError(f"no pending offer with stream id {offer.stream_id:#x}")
        self._start_incoming(offer, Path(directory))

    def reject_file(self, offer: p.FileOffer, reason: str = "") -> None:
        reason = reason or f"{self.nick} declined"  # the sender is told this, word for word
        with self._incoming_lock:
            self._offers.pop(offer.stream_id, None)
        self._put(CONTROL, p.encode(p.FileReject(offer.stream_id, reason)))

    def receiving(self) -> list[Receiving]:
        """The files arriving now, with how much of each is here (safe from any thread)."""
        with self._incoming_lock:
            return [Receiving(i.sender, i.name, i.size, i.received, i.start_offset) for i in self._incoming.values()]

    def _start_incoming(self, offer: p.FileOffer, directory: Path) -> None:
        try:
            # On the direct path the SHA-256 runs in a thread of its own, beside the one that receives
            # and writes.  (Relayed, handing each chunk to that thread cost more than it saved: measured.)
            digest = BackgroundSha256() if self.accept_direct and direct.valid_token(offer.token) else None
            incoming = IncomingTransfer(offer, directory, overwrite=self.overwrite, digest=digest)
            accept = incoming.accept()
        except ChatlabError as exc:
            self._reply(p.encode(p.FileReject(offer.stream_id, str(exc))))
            self._events.put(FileFailed(offer.peer, offer.name, str(exc)))
            if isinstance(exc, TransferError):
                raise
            raise TransferError(str(exc)) from exc
        path = self._listen_direct(offer, incoming) if self.accept_direct and direct.valid_token(offer.token) else None
        if path is not None:  # the accept tells the sender where to connect
            accept = p.FileAccept(accept.stream_id, accept.offset, direct.format_address(self._advertised(path)))
        with self._incoming_lock:
            if self._incoming_ended:  # the connection ended while we opened the .part
                incoming.close()
                if path is not None:
                    path.listener.close()
                raise ConnectionClosed(f"{self.nick}: the connection is closed; {offer.name!r} cannot be received")
            self._incoming[offer.stream_id] = incoming
            self._accepted_at[offer.stream_id] = time.monotonic()
            if path is not None:
                self._direct_in[offer.stream_id] = path
                path.thread = threading.Thread(target=self._receive_direct, args=(offer.stream_id, incoming, path),
                                               name=f"chatlab-direct-in-{self.nick}", daemon=True)
                self._keep_direct_thread(path.thread)
        self._reply(p.encode(accept))
        self._events.put(FileStarted(incoming.sender, incoming.name, incoming.part_path, incoming.size, accept.offset))

    def _on_incoming(self, message: p.Message) -> None:
        """Reader thread: a frame of a transfer we receive."""
        sid = message.stream_id  # type: ignore[union-attr]
        if isinstance(message, p.FileOffer):
            if self.download_dir is not None:
                try:
                    self._start_incoming(message, self.download_dir)
                except TransferError:
                    pass  # rejected, and reported as a FileFailed event
            else:
                with self._incoming_lock:
                    self._offers[sid] = message
                self._events.put(message)
            return
        with self._incoming_lock:
            incoming = self._incoming.get(sid)
        if incoming is None:
            if isinstance(message, p.FileCancel):
                with self._incoming_lock:
                    offer = self._offers.pop(sid, None)
                if offer is not None:
                    self._events.put(FileFailed(offer.peer, offer.name, message.reason or "cancelled by the sender"))
            return  # chunks still in flight after we gave up
        path = self._direct_in.get(sid)
        if path is not None:
            self._on_incoming_shared(message, incoming, path)
            return
        replies = self._handle_incoming(sid, incoming, message)
        for reply in replies:
            if isinstance(reply, p.FileAck):
                # Acks are cumulative: keep the latest and send it once this recv()'s frames are
                # handled, so a batch of chunks costs one ack and one hand-off to the writer.
                self._unsent_acks[sid] = reply
            else:
                self._send_ack(sid)  # the ack goes before the FileDone it leads to
                self._reply(p.encode(reply))
        if incoming.done or incoming.failed:
            self._incoming_over(sid, incoming)

    def _incoming_over(self, sid: int, incoming: IncomingTransfer) -> None:
        """Reader or direct thread: an incoming transfer ended; say how (once)."""
        with self._incoming_lock:
            if self._incoming.get(sid) is not incoming:
                return  # already reported (or the connection's end reported it)
            del self._incoming[sid]
            accepted_at = self._accepted_at.pop(sid)
            path = self._direct_in.pop(sid, None)
        if path is not None:
            path.listener.close()
            if path.sock is not None:
                _shut(path.sock)
        if incoming.done and incoming.path is not None:
            seconds = time.monotonic() - accepted_at
            self._events.put(FileReceived(incoming.sender, incoming.name, incoming.path, incoming.size, incoming.sha256, seconds))
        else:
            self._events.put(FileFailed(incoming.sender, incoming.name, incoming.reason))

    # ------------------------------------------------ the direct path (receiver)

    def _listen_direct(self, offer: p.FileOffer, incoming: IncomingTransfer) -> _DirectIncoming | None:
        """Listen for the sender on the chat connection's own local address; None if we cannot (then: the server)."""
        try:
            host = self._sock.getsockname()[0]
            return _DirectIncoming(direct.DirectListener(host, offer.token))
        except OSError as exc:
            log.info("%s: no direct path for %s (%s); the sender will use the server", self.nick, offer.name, exc)
            return None

    def _advertised(self, path: _DirectIncoming) -> tuple[str, int]:
        return self.advertise_direct(path.listener.address) if self.advertise_direct else path.listener.address

    def _handle_incoming(self, sid: int, incoming: IncomingTransfer, message: p.Message) -> list[ToSender]:
        """The receiver's answers to one transfer message; a bad one cancels the transfer, with the reason."""
        try:
            return incoming.handle(message)
        except ChatlabError as exc:
            self._reply(p.encode(p.FileCancel(sid, str(exc))))
            return []

    def _on_incoming_shared(self, message: p.Message, incoming: IncomingTransfer, path: _DirectIncoming) -> None:
        """Reader thread: a relayed frame for a transfer that was offered the direct path."""
        sid = incoming.stream_id
        with path.lock:
            if isinstance(message, p.FileChunk) and not path.path:
                path.path = "server"  # the sender fell back: no direct connection may write now
                path.listener.close()
            if path.path == "direct" and not isinstance(message, p.FileCancel):
                return  # the bytes come over the direct connection; nothing else is expected here
            if isinstance(message, p.FileCancel):
                path.ended_elsewhere = True
            replies = self._handle_incoming(sid, incoming, message)
        for reply in replies:
            self._reply(p.encode(reply))  # one ack per relayed chunk: the fallback is the rare case
        if incoming.done or incoming.failed:
            self._incoming_over(sid, incoming)

    def _receive_direct(self, sid: int, incoming: IncomingTransfer, path: _DirectIncoming) -> None:
        """Direct thread (receiver): wait for the sender's connection, then write its bytes to the .part."""
        try:
            sock = path.listener.accept()
            path.listener.close()  # one connection per transfer: the port closes as soon as the sender is in
            if sock is None:
                return  # the sender did not come: its chunks come through the server instead
            with path.lock:
                if path.path or incoming.state is not TransferState.ACTIVE:
                    sock.close()
                    return
                path.path, path.sock = "direct", sock
            with sock:
                self._receive_direct_bytes(sid, incoming, path, sock)
        except Exception as exc:  # noqa: BLE001 - never a thread traceback; the transfer says why it failed
            log.debug("%s: direct receive of %s ended: %r", self.nick, incoming.name, exc)
            with path.lock:
                # Our own verdict (a bad SHA-256, a disk error) always goes to the sender; a broken
                # connection only if nothing else (the sender's cancel, our close) ended it first.
                tell = not path.ended_elsewhere and (isinstance(exc, ChatlabError) or incoming.state is TransferState.ACTIVE)
                if tell:
                    reason = str(exc) if isinstance(exc, ChatlabError) else f"direct connection: {exc}"
                    self._reply(p.encode(incoming.cancel(reason)))
            if incoming.failed:
                self._incoming_over(sid, incoming)

    def _receive_direct_bytes(self, sid: int, incoming: IncomingTransfer, path: _DirectIncoming,
                              sock: socket.socket) -> None:
        def write(data: memoryview) -> int:
            with path.lock:
                return incoming.write(data)

        def progress(total: int) -> None:  # acks go through the server: the sender's progress bar
            self._reply(p.encode(p.FileAck(sid, total)))

        digest = direct.receive_file(sock, incoming.size - incoming.received, write, progress)
        with path.lock:
            done = incoming.finish(digest)  # ChecksumMismatch if the bytes are not the file
        self._reply(p.encode(p.FileAck(sid, incoming.size)))
        self._reply(p.encode(done))
        self._incoming_over(sid, incoming)

    def _end_incoming(self, reason: str) -> None:
        """Reader thread, last thing it does: close every file still arriving and say why it failed."""
        with self._incoming_lock:
            unfinished, self._incoming = list(self._incoming.values()), {}
            self._accepted_at.clear()
            self._incoming_ended = True
            paths, self._direct_in = dict(self._direct_in), {}
        for incoming in unfinished:
            path = paths.get(incoming.stream_id)
            if path is not None:  # wake its direct thread, which then finds the transfer closed
                path.listener.close()
                if path.sock is not None:
                    _shut(path.sock)
                with path.lock:
                    path.ended_elsewhere = True
                    incoming.close()
            incoming.close()  # keeps NAME.part, so the same file offered again resumes
            self._events.put(FileFailed(incoming.sender, incoming.name, f"connection ended: {reason}"))

    def _register(self, transfer: Transfer) -> None:
        """Writer thread: a new outgoing transfer; its offer goes out now."""
        self._outgoing[transfer.outgoing.stream_id] = transfer
        self._sock.sendall(p.encode(transfer.outgoing.offer(transfer.to, transfer.name, transfer.token)))

    def _on_outgoing(self, message: p.Message, now: float) -> None:
        """Writer thread: the receiver answered one of our transfers."""
        transfer = self._outgoing.get(message.stream_id)  # type: ignore[union-attr]
        if transfer is None:
            return
        address: tuple[str, int] | None = None
        if isinstance(message, p.FileAccept) and transfer.token:
            try:
                address = direct.parse_address(message.direct) if message.direct else None
            except ValueError:
                address = None
            if address is None:
                why = (f"{transfer.to}'s client gave no address for a direct connection" if not message.direct
                       else f"{transfer.to}'s client gave an unusable address, {message.direct!r}")
                self._fall_back(transfer, why)
            else:
                transfer.outgoing.try_direct()  # hold the chunks while we connect
        try:
            replies = transfer.outgoing.handle(now, message)
        except ChatlabError as exc:
            replies = [transfer.outgoing.cancel(str(exc))]
        self._queue_file_frames(transfer, replies)
        if address is not None and transfer.outgoing.state is TransferState.ACTIVE:
            thread = threading.Thread(target=self._send_direct, args=(transfer, address),
                                      name=f"chatlab-direct-out-{self.nick}", daemon=True)
            self._keep_direct_thread(thread)

    def _keep_direct_thread(self, thread: threading.Thread) -> None:
        """Start a direct-path thread and keep it for close() to join (the ended ones are let go)."""
        self._direct_threads = [t for t in self._direct_threads if t.is_alive()] + [thread]
        thread.start()

    # ------------------------------------------------ the direct path (sender)

    def _fall_back(self, transfer: Transfer, reason: str) -> None:
        """Writer thread: the direct connection is not to be; the chunks go through the server."""
        transfer.fallback_reason = reason
        transfer.outgoing.direct_failed()
        self._events.put(DirectFallback(transfer.to, transfer.name, reason))

    def _send_direct(self, transfer: Transfer, address: tuple[str, int]) -> None:
        """Direct thread (sender): connect to the receiver, present the token, sendfile() the bytes."""
        outgoing = transfer.outgoing
        try:
            sock = socket.create_connection(address, timeout=direct.CONNECT_TIMEOUT)
        except OSError as exc:
            reason = f"no direct connection to {direct.format_address(address)} ({exc.strerror or exc}); sending through the server"
            self._reply(functools.partial(self._direct_fell_back, transfer, reason))
            return
        try:
            with sock:
                transfer._direct_sock = sock
                if transfer._finished.is_set():
                    return
                self._reply(functools.partial(outgoing.direct_connected))  # before any ack can come back
                sock.settimeout(direct.IDLE_TIMEOUT)
                sock.sendall(transfer.token.encode("ascii"))
                # A file object of our own (a dup of the descriptor): the writer may close the
                # transfer's file when it ends, while sendfile() is still running here.
                with os.fdopen(os.dup(transfer._file.fileno()), "rb") as file:
                    outgoing.sha256 = direct.send_file(sock, file, outgoing.start_offset, outgoing.size)
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(direct.IDLE_TIMEOUT)
                while sock.recv(4096):  # the receiver closes once it has verified: then we are done here
                    pass
        except Exception as exc:  # noqa: BLE001 - never a thread traceback; the transfer says why it failed
            log.debug("%s: direct send of %s ended: %r", self.nick, transfer.name, exc)
            if not transfer._finished.is_set():
                reason = f"direct connection to {transfer.to} broke: {exc}"
                self._reply(functools.partial(self._direct_broke, transfer, reason))
        finally:
            transfer._direct_sock = None

    def _direct_fell_back(self, transfer: Transfer, reason: str) -> None:
        """Writer thread: the direct connection could not be made."""
        if self._outgoing.get(transfer.outgoing.stream_id) is transfer:
            self._fall_back(transfer, reason)  # _pump (after every job) sends the chunks now

    def _direct_broke(self, transfer: Transfer, reason: str) -> None:
        """Writer thread: the direct connection broke mid-transfer: cancel it (a resume can follow)."""
        if self._outgoing.get(transfer.outgoing.stream_id) is transfer and not (transfer.done or transfer.failed):
            self._queue_file_frames(transfer, [transfer.outgoing.cancel(reason)])

    def _queue_file_frames(self, transfer: Transfer, messages: list[Any]) -> None:
        sid, pending = transfer.outgoing.stream_id, self._file_frames
        for message in messages:
            if isinstance(message, p.FileCancel):  # goes first; drop the chunks it overtakes
                self._sock.sendall(p.encode(message))
                pending_for_others = [item for item in pending if item[0] != sid]
                pending.clear()
                pending.extend(pending_for_others)
            else:
                pending.append((sid, p.encode(message)))
        if transfer.done or transfer.failed:
            del self._outgoing[sid]
            transfer._finish()

    def _pump(self) -> None:
        """Writer thread: let every transfer send what its strategy allows now."""
        now = time.monotonic()
        for transfer in list(self._outgoing.values()):
            try:
                messages = transfer.outgoing.messages_to_send(now)
            except ChatlabError as exc:
                messages = [transfer.outgoing.cancel(str(exc))]
            self._queue_file_frames(transfer, messages)

    def _next_wake(self) -> float | None:
        """Writer thread: seconds until some strategy wants to send again (None: only an ack can help)."""
        now = time.monotonic()
        times = [t for tr in self._outgoing.values() if (t := tr.outgoing.wake_at(now)) is not None]
        return max(0.0, min(times) - now) if times else None

    def _end_outgoing(self, reason: str) -> None:
        """Writer thread, last thing it does: fail every transfer we send, and close its file."""
        with self._out_lock:
            self._writer_stopped = True  # _put raises from now on: nothing queued later would be sent
        leftovers = []
        while True:
            try:
                leftovers.append(self._outq.get_nowait()[2])
            except queue.Empty:
                break
        unregistered = [item for item in leftovers if isinstance(item, Transfer)]  # offers never sent
        for transfer in list(self._outgoing.values()) + unregistered:
            transfer.outgoing.cancel(reason)
            transfer._finish()
        self._outgoing.clear()

    # ---------------------------------------------------------------- events

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
        return self._events.take(lambda e: isinstance(e, kind) and (predicate is None or predicate(e)), timeout, what=name)

    def next_event(self, timeout: float = 5.0) -> Any:
        """Return (and remove) the oldest event of any type."""
        return self._events.take(lambda e: True, timeout, what="any event")

    def drain(self) -> list[Any]:
        """Return and remove every event received so far."""
        return self._events.drain()

    # ------------------------------------------------------ the two threads

    def _check_open(self) -> None:
        if self.closed:
            raise ConnectionClosed(f"{self.nick}: the connection is closed" + (f" ({self._end_reason})" if self._end_reason else ""))

    def _send(self, message: p.Message) -> None:
        self._put(CHAT, self._encode_checked(message))

    def _put(self, priority: int, data: bytes | Job | Transfer) -> None:
        """Hand something to the writer on behalf of the user: :class:`ConnectionClosed` once closed."""
        self._check_open()
        self._enqueue(priority, data)

    def _enqueue(self, priority: int, data: bytes | Job | Transfer | None) -> None:
        with self._out_lock:
            if self._writer_stopped:
                raise ConnectionClosed(f"{self.nick}: the connection is closed")
            self._outq.put((priority, next(self._out_seq), data))

    def _reply(self, data: bytes | Job, priority: int = CONTROL) -> None:
        """Reader thread: queue what the protocol answers by itself (an ack, a pong, an accept).

        Unlike the user's calls it never raises: once the connection is over
        nobody would read the answer, and the reader must go on to its
        clean-up (closing the files) rather than die with an exception.
        """
        try:
            self._enqueue(priority, data)
        except ConnectionClosed:
            pass

    def _socket_errors(self, what: str) -> Any:
        """Socket errors in this client become ConnectionClosed (after close()) or ConnectionBroken."""
        return translate_socket_errors(what, lambda: self._closing)

    def _write_loop(self) -> None:
        """The only code that sends on the socket.

        Queued frames (control, then chat) always go first; file chunks that
        the strategies released wait in ``pending`` and go one at a time
        only while nothing else is queued, so chat never waits behind them
        in this process.
        """
        pending = self._file_frames
        reason = ""
        try:
            with self._socket_errors("send failed"):
                while True:
                    try:
                        item = self._outq.get_nowait() if pending else self._outq.get(timeout=self._next_wake())
                    except queue.Empty:
                        if pending:
                            self._sock.sendall(pending.popleft()[1])
                        else:
                            self._pump()  # a strategy's wake-up time came (SleepPaced's pause)
                        continue
                    data = item[2]
                    if data is None:
                        return
                    if isinstance(data, Transfer):
                        self._register(data)
                        self._pump()
                    elif callable(data):
                        data()
                        self._pump()
                    elif pending and not self.priority_writer:
                        pending.append((0, data))  # FIFO: chat waits behind the chunks already released
                    else:
                        self._sock.sendall(data)
        except ConnectionBroken as exc:
            reason = str(exc)
            self._finish(reason)
        except ConnectionClosed:
            reason = CLOSED_BY_US
        finally:
            if self._closing:
                reason = CLOSED_BY_US
            self._end_outgoing(f"connection ended: {reason or self._end_reason or CLOSED_BY_US}")

    def _read_loop(self) -> None:
        """Bytes -> frames -> events until the connection ends, however it ends.

        Never raises: the clean-up (closing the files being received, the
        FileFailed events, the final Disconnected) runs in every case.
        """
        reason = CLOSED_BY_SERVER
        try:
            self._dispatch()  # frames that came with the welcome
            while True:
                view = self._decoder.payload_buffer()
                if view is not None:  # a big chunk: straight into its own buffer, no copy
                    with self._socket_errors("connection broken"):
                        got = self._sock.recv_into(view)
                    if not got:
                        break
                    self._decoder.received(got)
                    self._dispatch()
                    continue
                with self._socket_errors("connection broken"):
                    data = self._sock.recv(65536)
                if not data:
                    break
                self._decoder.feed(data)
                self._dispatch()
        except ProtocolError as exc:
            reason = f"protocol error from the server: {exc}"
        except ConnectionBroken as exc:
            reason = str(exc)
        except ConnectionClosed:  # close() shut the socket under us
            reason = CLOSED_BY_US
        except ChatlabError as exc:  # any other chatlab error still ends the connection with a reason
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            if self._closing:  # the server's answer to our QUIT, or our own shutdown
                reason = CLOSED_BY_US
            self._end_incoming(reason)
            self._finish(reason)

    def _send_ack(self, sid: int) -> None:
        ack = self._unsent_acks.pop(sid, None)
        if ack is not None:
            self._reply(p.encode(ack))

    def _dispatch(self) -> None:
        try:
            self._dispatch_frames()
        finally:
            for sid in list(self._unsent_acks):
                self._send_ack(sid)

    def _dispatch_frames(self) -> None:
        for frame in self._decoder:
            message = p.decode_message(frame)
            if frame.type in p.TRANSFER_TYPES:
                if frame.stream_id & p.INCOMING_STREAM_BIT:
                    self._on_incoming(message)
                else:
                    now = time.monotonic()  # stamped here, on arrival: the RTT sample must not include our queue
                    self._reply(functools.partial(self._on_outgoing, message, now))
                continue
            if isinstance(message, p.Ping):
                self._reply(p.encode(p.Pong(message.token)))
                continue
            if isinstance(message, p.Notice) and message.kind == "join" and message.nick == self.nick:
                self.room = message.room
            self._events.put(message)

    def _finish(self, reason: str) -> None:
        """The connection is over: say why (once), and wake the writer so it exits."""
        with self._end_lock:
            if self._end_reason:
                return
            self._end_reason = reason
        self._events.put(Disconnected(reason))
        self._events.close()
        with self._out_lock:
            if not self._writer_stopped:
                self._outq.put((CONTROL, -1, None))  # ahead of everything still queued

    # -------------------------------------------------------------- closing

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
