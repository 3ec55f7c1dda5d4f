"""The client's two threads: the reader turns bytes into events, the writer alone sends.

Each owns one direction of the socket.  The writer is the only code that ever
sends, so no lock is needed around ``sendall``; everything to send goes through
its priority queue: control frames first, then chat, then file chunks.  Socket
errors become chatlab errors in one place, :meth:`Threads._socket_errors`.
"""

from __future__ import annotations

import functools
import logging
import queue
import socket
import time
from typing import Any

from ..core import protocol as p
from ..errors import (
    ChatlabError,
    ConnectionBroken,
    ConnectionClosed,
    ProtocolError,
    translate_socket_errors,
)
from ..events import (
    Disconnected,
)
from .sending import Transfer
from .state import (
    CHAT,
    CLOSED_BY_SERVER,
    CLOSED_BY_US,
    CONTROL,
    ClientState,
    Job,
)

log = logging.getLogger("chatlab.client")

# A receiver acks a relayed file cumulatively, and not after every chunk: an ack waits while more
# bytes are already here to read, until ACK_EVERY bytes are unacknowledged, and goes at once when
# the next recv() would wait.  The sender's window never stalls on a held ack (when nothing more
# arrives the ack goes), and a busy receiver sends one ack per ACK_EVERY bytes instead of one per
# chunk: each ack wakes two threads here, the server, and two threads in the sender.
ACK_EVERY = 512 * 1024
NOWAIT = getattr(socket, "MSG_DONTWAIT", 0)  # Linux, macOS, BSD; elsewhere every recv()'s acks go at once

class Threads(ClientState):
    """The reader and writer threads of a :class:`~chatlab.client.Client` (a mixin)."""

    ack_every = ACK_EVERY  # bytes a receiver may leave unacknowledged while more are here to read

    def _check_open(self) -> None:
        if self.closed:
            raise ConnectionClosed(f"{self.nick}: the connection is closed"
                                   + (f" ({self._end_reason})" if self._end_reason else ""))

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
                            self._send_frame(pending.popleft()[1])
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

    def _send_frame(self, frame: bytes | tuple[bytes, bytes]) -> None:
        """Writer thread: send one frame; a file chunk comes as (header, data) and is sent by one
        ``sendmsg()`` without joining them (a copy of every chunk saved), the rest as ``sendall`` would."""
        sock = self._sock
        if not isinstance(frame, tuple):
            sock.sendall(frame)
            return
        head, data = frame
        if not self._gather:
            sock.sendall(head + data)
            return
        sent = sock.sendmsg(frame)  # a blocking socket takes it all, bar a signal
        if sent < len(head):
            sock.sendall(head[sent:])
            sent = len(head)
        if sent < len(head) + len(data):
            sock.sendall(memoryview(data)[sent - len(head):])

    @functools.cached_property
    def _gather(self) -> bool:
        """Can the writer gather a frame's parts with ``sendmsg``?  (A plain socket where the OS has it.)"""
        return type(self._sock) is socket.socket and hasattr(self._sock, "sendmsg")

    def _read_loop(self) -> None:
        """Bytes -> frames -> events until the connection ends, however it ends.

        Never raises: the clean-up (closing the files being received, the
        FileFailed events, the final Disconnected) runs in every case.
        """
        reason = CLOSED_BY_SERVER
        try:
            self._dispatch()  # frames that came with the welcome
            while True:
                view = self._decoder.payload_buffer()  # a big chunk: straight into its own buffer, no copy
                with self._socket_errors("connection broken"):
                    got = self._recv(view)
                if not got:
                    break
                if view is not None:
                    self._decoder.received(got)
                else:
                    self._decoder.feed(got)
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

    def _recv(self, view: memoryview | None) -> Any:
        """``recv_into(view)`` (or ``recv(65536)`` without a view); the acks held back go out
        first if it would wait (``MSG_DONTWAIT`` tells: then one more call, only when idle)."""
        sock = self._sock
        if self._unsent_acks:
            if self._nowait:
                try:
                    return sock.recv_into(view, 0, NOWAIT) if view is not None else sock.recv(65536, NOWAIT)
                except (BlockingIOError, InterruptedError):
                    pass
            for sid in list(self._unsent_acks):
                self._send_ack(sid)
        return sock.recv_into(view) if view is not None else sock.recv(65536)

    @functools.cached_property
    def _nowait(self) -> bool:
        """Can this socket be asked, without waiting, whether more bytes are here?  (A blocking
        plain socket: a timeout would make MSG_DONTWAIT wait anyway; TLS may hold decrypted bytes.)"""
        sock = self._sock
        return bool(NOWAIT) and type(sock) is socket.socket and sock.gettimeout() is None

    def _send_ack(self, sid: int) -> None:
        ack = self._unsent_acks.pop(sid, None)
        if ack is not None:
            self._acks_out[sid] = ack.received
            self._reply(p.encode(ack))

    def _dispatch(self) -> None:
        try:
            self._dispatch_frames()
        finally:
            for sid, ack in list(self._unsent_acks.items()):
                if not self._nowait or ack.received - self._acks_out.get(sid, 0) >= self.ack_every:
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
            if isinstance(message, p.Notice):
                self._track_rooms(message)
            self._events.put(message)

    def _track_rooms(self, notice: p.Notice) -> None:
        """Keep ``nick``, ``room`` and ``rooms`` as the server says they are (reader thread)."""
        mine = notice.nick == self.nick
        if notice.kind == "join" and mine:
            self._joined(notice.room)
        elif (notice.kind == "leave" and mine) or (notice.kind == "kick" and notice.target == self.nick):
            self.rooms = [r for r in self.rooms if r != notice.room]
            if self.room == notice.room:
                self.room = self.rooms[-1] if self.rooms else ""
        elif notice.kind == "nick" and mine:
            self.nick = notice.target

    def _joined(self, room: str) -> None:
        if not self._stayed(room) and self.room and self.room != room:
            self.rooms = [r for r in self.rooms if r != self.room]  # a plain join moves: the current room is left
        self.rooms = [r for r in self.rooms if r != room] + [room]
        self.room = room

    def _stayed(self, room: str) -> bool:
        """Was the join of ``room`` a ``join(..., stay=True)`` (so the current room was not left)?"""
        from ..core.chatroom import normalize_name

        staying: set[str] = getattr(self, "_staying", set())
        key = normalize_name(room)
        if key in staying:
            staying.discard(key)
            return True
        return False

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

