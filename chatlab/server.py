"""The chatlab chat server: one select() loop, non-blocking sockets, no threads.

This module is the sockets and nothing else.  What a message *means* is decided
by the chat core (:mod:`chatlab.core.chatroom`) and the file relay
(:mod:`chatlab.core.relay`), which never touch a socket; how bytes become messages
by each connection's codec (:mod:`chatlab.core.codecs`).  Here we move bytes.

How the loop works (the theory, once):

* Every socket is non-blocking and registered with a :mod:`selectors`
  selector.  ``select`` is the teaching default; ``poll`` and ``epoll`` are one
  switch away (``Server(selector="epoll")``), because ``selectors`` hides all
  three behind one interface.
* A socket is watched for *reading* while we are willing to take more from it,
  and for *writing* only while its outgoing queue holds something.  A socket
  with an empty send buffer is always writable, so asking about it anyway
  would make ``select()`` return at once, forever: a 100%-CPU busy loop.
* Reading: ``recv()`` into the connection's codec, then hand each event to
  the core, which answers with outputs (send this to them, pause that one,
  close this one) that the loop applies.
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

import dataclasses
import itertools
import logging
import selectors
import socket
import sys
import threading
import time
from collections import deque
from typing import Any, Callable

from .core import protocol as p
from .core.chatroom import (RESERVED_NICKS, Broadcast, ChatRoom, Close, FloodLimit, Output, Pause, Send, Session,
                       Settings, normalize_name)
from .core.codecs import BinaryCodec, Codec, CodecFactory, Event, sniff
from .errors import ChatlabError, RemoteProtocolError
from .core.relay import MAX_TRANSFERS, Forward

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


MAX_GATHER = 256  # buffers per sendmsg() (Linux takes up to 1,024)
JOIN_BELOW = 16 * 1024  # a queue this small is joined and sent with send() rather than gathered by sendmsg()
HAVE_SENDMSG = hasattr(socket.socket, "sendmsg")
# Fairness: events handled for one client before the loop serves the others.  Without a
# budget, one recv() of 64 KiB of tiny frames (5,000 PINGs) held everyone up for ~20 ms.
FRAMES_PER_TURN = 64
Tracer = Callable[[str, str, p.Frame], None]


class Connection(Session):
    """One client socket: the chat session (nick, room...) plus what the loop needs."""

    def __init__(self, sock: socket.socket, peer: str, now: float) -> None:
        super().__init__(now, peer=peer)
        self.sock = sock
        self.codec: Codec | None = None  # chosen from the first bytes (codecs.sniff)
        self.first_bytes = b""  # kept until there are enough to sniff
        self.outbox: deque[bytes | memoryview] = deque()
        self.queued = 0  # bytes in outbox
        self.held: Event | None = None  # decoded, but waiting for flood tokens or backpressure
        self.paused_until = 0.0  # flood control: not read before this time
        self.blocked_by: Connection | None = None  # backpressure: the receiver whose queue is full
        self.blocking: set[Connection] = set()  # senders waiting on our queue
        self.closing: str | None = None  # reason; close once the outbox is flushed
        self.events = 0  # the selector events we currently ask for


class Server:
    """A chat-room server running one select() loop.

    Use it as a context manager, and the loop runs in a background thread::

        with chatlab.Server(port=0) as server:      # 127.0.0.1, a free port
            print(server.address)                    # ('127.0.0.1', 54321)

    or call :meth:`serve_forever` in the foreground (the CLI does).

    Args:
        host, port: where to listen; port 0 lets the OS choose (read ``address``).
        on_frame: called as ``on_frame("in"|"out", nick_or_address, frame)`` for each
            frame, from the server's thread; the frame log of notebook 05 uses it.
        text_codec: the codec for clients that do not start with chatlab's magic bytes.
        settings: fields of :class:`chatlab.core.chatroom.Settings` (``selector="epoll"``,
            ``flood_limit=None``, ``room_passwords={"class": "secret"}``...), or a whole
            ``config=Settings(...)``; the result is :attr:`config`, frozen.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, config: Settings | None = None,
                 on_frame: Tracer | None = None, text_codec: CodecFactory | None = None, **settings: Any) -> None:
        self.config = config = dataclasses.replace(config or Settings(), **settings)
        if config.selector not in SELECTORS or not hasattr(selectors, SELECTORS[config.selector]):
            available = [name for name, cls in SELECTORS.items() if hasattr(selectors, cls)]
            raise ValueError(f"selector {config.selector!r} is not available here; choose one of {available}")
        self.on_frame = on_frame
        self.text_codec = text_codec
        self.room = ChatRoom(config)  # the rules; everything below is sockets
        self.room.wall_offset = time.time() - time.monotonic()  # the core shows wall-clock times (IRC's topic times)
        self._selector: selectors.BaseSelector = getattr(selectors, SELECTORS[config.selector])()
        self._listener = self._open_listener(host, port, config.backlog)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        # A socket pair lets another thread wake the loop (select() takes sockets only on Windows).
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        if config.selector == "select" and any(beyond_select(sock, 0) for sock in (self._listener, self._wake_r)):
            # Without this check the loop's first select() raises in its thread and the server dies silently.
            self._selector.close()
            for sock in (self._listener, self._wake_r, self._wake_w):
                sock.close()
            raise ValueError(f"select() is limited to descriptors below {FD_SETSIZE} and this process already uses "
                             "more; use selector='epoll' (or 'poll')")

        self._connections: set[Connection] = set()
        self._paused: set[Connection] = set()  # paused by flood control
        self._dirty: set[Connection] = set()  # queued to this turn: flushed at its end
        self._busy: set[Connection] = set()  # events left over after a turn's budget: handled next turn
        self._binary = BinaryCodec(config.max_payload)  # speaks to connections before their codec is known
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.peak_queued = 0  # the most bytes ever queued to one client: backpressure's witness
        self.turns = 0  # turns of the loop so far

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
        log.info("chatlab server listening on %s:%d (%s)", *self.address, self.config.selector)
        tick = min(1.0, self.config.ping_interval / 4, self.config.hello_timeout / 4)  # how often timers are checked
        next_tick = time.monotonic() + tick
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                timeout = 0.0 if self._busy else max(0.0, min([next_tick] + [c.paused_until for c in self._paused]) - now)
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
                self.turns += 1
                now = time.monotonic()
                self._resume_paused(now)
                self._resume_busy()
                self._flush_dirty()
                if now >= next_tick:
                    self._apply(None, self.room.tick(now))  # keepalive: pings and timeouts
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
        if self.config.selector == "select" and beyond_select(sock, len(self._connections) + 2):
            # select() cannot watch this descriptor; refuse it rather than crash the loop.
            self._refuse(sock, "server-full", f"select() is limited to {FD_SETSIZE} descriptors; run the server with --selector epoll")
            return
        if len(self._connections) >= self.config.max_clients:
            self._refuse(sock, "server-full", f"the server already has {self.config.max_clients} clients")
            return
        conn = Connection(sock, f"{addr[0]}:{addr[1]}", time.monotonic())
        self._connections.add(conn)
        self.room.connect(conn, conn.connected_at)
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
        # A big payload (a file chunk) is received straight into its own buffer, which is
        # then forwarded as is: one copy in, none on the way out (sendmsg takes the buffer).
        into = getattr(conn.codec, "payload_buffer", None)
        view = into() if into is not None else None
        if view is not None:
            self._recv_payload(conn, view)
            return
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
        if conn.codec is None:  # the first bytes say which framing this client speaks
            conn.first_bytes += data
            conn.codec = sniff(conn.first_bytes, self.text_codec, self.config.max_payload)
            if conn.codec is None:
                return
            data, conn.first_bytes = conn.first_bytes, b""
            conn.accepts_files = conn.codec.accepts_files
            conn.nick_retries = getattr(conn.codec, "nick_retries", False)
        try:
            conn.codec.feed(data)
        except (ChatlabError, ValueError) as exc:  # a codec may refuse bytes at once (a line past its limit)
            self._apply(conn, self.room.kick(conn, "protocol-error", str(exc)))
            return
        self._process(conn)

    def _recv_payload(self, conn: Connection, view: memoryview) -> None:
        """Read a big payload into its own buffer, and go on while the kernel has bytes for it:
        a loopback socket hands over 64 KiB or so per call, and a trip through select() for
        each piece costs more than the piece."""
        codec: Any = conn.codec
        while view:
            try:
                got = conn.sock.recv_into(view)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._disconnect(conn, f"connection broken ({exc.strerror or exc})")
                return
            if not got:
                self._disconnect(conn, "connection closed")
                return
            codec.received(got)
            view = view[got:]
        self._process(conn)  # complete or not, whatever is whole goes on

    def _process(self, conn: Connection) -> None:
        """Hand every complete event to the core, unless flood control or backpressure says wait."""
        budget = FRAMES_PER_TURN
        while conn.closing is None and conn.codec is not None:
            if budget == 0:  # the rest waits for the next turn, once everyone else was served
                self._busy.add(conn)
                self._update_events(conn)
                return
            budget -= 1
            event, conn.held = conn.held, None
            if event is None:
                try:
                    event = conn.codec.next_event()
                except (ChatlabError, ValueError, RecursionError) as exc:  # the codec cannot go on
                    self._apply(conn, self.room.kick(conn, "protocol-error", str(exc)))
                    return
                if event is None:
                    return
            if conn.blocked_by is not None:  # backpressure: keep it until the receiver drains
                conn.held = event
                self._update_events(conn)
                return
            if isinstance(event, bytes):  # the codec's own reply (a text client's error, say)
                self._queue(conn, event)
                continue
            now, who = time.monotonic(), conn.name  # who: as the trace names it before a HELLO is handled
            if isinstance(event, p.Frame):
                outputs = self.room.receive_transfer(conn, event, now)
            else:
                outputs = self.room.receive(conn, event, now)
            if outputs and type(outputs[-1]) is Pause:  # flood control: handle it later
                conn.held = event
                self._apply(conn, outputs)
                return
            if self.on_frame is not None:
                self._trace("in", who, event)
            self._apply(conn, outputs)

    def _resume_busy(self) -> None:
        for conn in list(self._busy):
            self._busy.discard(conn)
            self._process(conn)
            self._update_events(conn)

    def _resume_paused(self, now: float) -> None:
        for conn in [c for c in self._paused if c.paused_until <= now]:
            self._paused.discard(conn)
            conn.paused_until = 0.0
            self._update_events(conn)
            self._process(conn)

    # ------------------------------------------------- applying the core's outputs

    def _apply(self, source: Connection | None, outputs: list[Output]) -> None:
        """Carry out what the core decided; ``source`` is the connection whose event it was."""
        for out in outputs:
            if isinstance(out, Broadcast):
                self._broadcast(out.to, out.message)
            elif isinstance(out, Send):
                self._send(out.to, out.message)
            elif isinstance(out, Forward):
                assert source is not None  # only an event from a connection is forwarded
                self._forward(source, out)
            elif isinstance(out, Pause):
                conn: Connection = out.session
                conn.paused_until = out.until
                self._paused.add(conn)
                self._update_events(conn)
            elif isinstance(out, Close):
                self._disconnect(out.session, out.reason, flush=out.flush)

    def _broadcast(self, members: list[Connection], message: p.Message) -> None:
        encoded: dict[type, bytes] = {}  # encode once per framing, queue the same bytes for everyone
        connections, dirty, binary = self._connections, self._dirty, self._binary
        peak, limit, over = self.peak_queued, self.config.max_queue, []
        sender = getattr(message, "sender", None)
        for member in members:  # fan-out's hot path: _queue inlined (one call less per member)
            codec = member.codec or binary
            data = encoded.get(type(codec))
            if data is None or member.nick == sender:  # the sender's own copy may differ (IRC sends none)
                data = self._encode_once(codec, message, encoded, member.nick == sender)
            if not data or member.closing is not None or member not in connections:
                continue
            member.outbox.append(data)
            queued = member.queued = member.queued + len(data)
            dirty.add(member)
            if queued > peak:
                peak = queued
            if queued > limit:
                over.append(member)
        self.peak_queued = peak
        for member in over:
            self._queue(member)  # over the limit: _queue disconnects it
        if self.on_frame is not None:
            for member in members:
                self._trace("out", member.name, message)

    @staticmethod
    def _encode_once(codec: Any, message: p.Message, encoded: dict[type, bytes], own: bool) -> bytes:
        """``message`` for one member; remembered in ``encoded`` for every other member with the same
        framing when the codec says the bytes do not depend on who gets them (``encode_shared``, or
        ``shared_encoding``).  ``own``: this member sent it (its copy is never shared)."""
        if not own:
            shared = getattr(codec, "encode_shared", None)
            data = shared(message) if shared is not None else None
            if data is not None:
                encoded[type(codec)] = data
                return data
        data = codec.encode(message)
        if not own and getattr(codec, "shared_encoding", False):
            encoded[type(codec)] = data
        return data

    def _send(self, conn: Connection, message: p.Message) -> None:
        if self.on_frame is not None:
            self._trace("out", conn.name, message)
        self._queue(conn, (conn.codec or self._binary).encode(message))

    def _forward(self, sender: Connection, out: Forward) -> None:
        """A transfer frame, relayed: the payload untouched behind a new header, no copy."""
        receiver: Connection = out.to
        self._queue(receiver, p.pack_header(out.kind, len(out.payload), out.stream_id, out.flags), out.payload)
        if self.on_frame is not None:
            self._trace("out", receiver.name, p.Frame(out.kind, out.flags, out.stream_id, out.payload))
        if out.chunk and self.room.relay.should_pause(receiver.queued) and receiver.closing is None:
            sender.blocked_by = receiver  # backpressure: stop reading the sender until the receiver drains
            receiver.blocking.add(sender)
            self._update_events(sender)

    def _trace(self, direction: str, who: str, item: p.Message | p.Frame) -> None:
        """The one place frames are reported to ``on_frame`` (notebook 05's frame log)."""
        if self.on_frame is None:
            return
        if not isinstance(item, p.Frame):
            data = p.encode(item)
            header = p.parse_header(data, len(data))
            item = p.Frame(p.FrameType(header.type), header.flags, header.stream_id, data[p.HEADER_SIZE :])
        self.on_frame(direction, who, item)

    # ------------------------------------------------------------- output

    def _queue(self, conn: Connection, *parts: bytes) -> None:
        """Append to a connection's queue; the loop sends it at the end of this turn."""
        if conn.closing is not None or conn not in self._connections:
            return
        self._dirty.add(conn)
        for part in parts:
            if part:
                conn.outbox.append(part)
                conn.queued += len(part)
        if conn.queued > self.peak_queued:
            self.peak_queued = conn.queued
        if conn.queued > self.config.max_queue:
            conn.outbox.clear()
            conn.queued = 0
            self._disconnect(conn, f"not reading: more than {self.config.max_queue} bytes were waiting for it")

    def _flush_dirty(self) -> None:
        """End of a turn: send what this turn queued.  Only what the kernel would not take
        waits for select() to say the socket is writable again."""
        while self._dirty:
            self._flush(self._dirty.pop())

    def _flush(self, conn: Connection) -> None:
        self._dirty.discard(conn)
        if (conn.closing is None and not conn.blocking and conn.events == selectors.EVENT_READ
                and len(conn.outbox) <= MAX_GATHER and self._send_all(conn)):
            return  # fan-out's common case: all of it in one call, nothing to change in the selector
        while conn.outbox:
            # Many frames, one system call: sendmsg() gathers them (Windows has no
            # sendmsg, so there they are joined into one buffer first).
            batch = list(itertools.islice(conn.outbox, MAX_GATHER))
            wanted = sum(len(part) for part in batch)
            try:
                sent = conn.sock.sendmsg(batch) if HAVE_SENDMSG else conn.sock.send(b"".join(batch))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._disconnect(conn, f"connection broken ({exc.strerror or exc})")
                return
            self._consumed(conn, sent)
            if sent < wanted:
                break  # the kernel's buffer is full: wait for EVENT_WRITE
        self._flushed(conn)

    def _flushed(self, conn: Connection) -> None:
        """After a send: resume the senders waiting on this queue, close if that was the last of it, or ask
        select() for what we need now."""
        if conn.blocking and self.room.relay.may_resume(conn.queued):
            self._unblock(conn)
        if not conn.outbox and conn.closing is not None:
            self._close(conn)
            return
        self._update_events(conn)

    def _send_all(self, conn: Connection) -> bool:
        """Send the whole queue in one call; True if that settled it (all sent, or the connection broke).

        ``conn.queued`` is the queue's size, so no sum and no loop over its parts when it all goes.
        """
        outbox = conn.outbox
        try:
            if len(outbox) == 1:
                sent = conn.sock.send(outbox[0])
            elif conn.queued <= JOIN_BELOW or not HAVE_SENDMSG:
                sent = conn.sock.send(b"".join(outbox))  # chat lines: copying them is cheaper than a gather list
            else:
                sent = conn.sock.sendmsg(outbox)  # file chunks: gathered by the kernel, not copied here
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self._disconnect(conn, f"connection broken ({exc.strerror or exc})")
            return True
        if sent == conn.queued:
            outbox.clear()
            conn.queued = 0
            return True
        self._consumed(conn, sent)
        return False

    @staticmethod
    def _consumed(conn: Connection, sent: int) -> None:
        """Drop the ``sent`` bytes from the head of ``conn``'s queue."""
        conn.queued -= sent
        outbox = conn.outbox
        while sent:
            head = outbox[0]
            if sent < len(head):
                outbox[0] = memoryview(head)[sent:]
                return
            sent -= len(head)
            outbox.popleft()

    def _unblock(self, conn: Connection) -> None:
        """``conn``'s queue drained: resume reading the senders that waited on it."""
        waiting, conn.blocking = conn.blocking, set()
        for sender in waiting:
            sender.blocked_by = None
            self._update_events(sender)
            self._process(sender)

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

    def _disconnect(self, conn: Connection, reason: str, flush: bool = False) -> None:
        """Remove a client from the chat at once; close its socket now, or after its queue is sent."""
        if conn.closing is not None or conn not in self._connections:
            return
        log.info("%s disconnected: %s", conn.name, reason or "quit")
        conn.closing = reason
        self._apply(conn, self.room.disconnect(conn, reason))  # quit notices, cancelled transfers
        self._unblock(conn)
        if conn.blocked_by is not None:
            conn.blocked_by.blocking.discard(conn)
        if not flush or not conn.outbox:
            self._close(conn)
        else:
            self._update_events(conn)

    def _close(self, conn: Connection) -> None:
        self._connections.discard(conn)
        self._paused.discard(conn)
        self._busy.discard(conn)
        self._dirty.discard(conn)
        self.room.disconnect(conn, conn.closing or "closed")  # no-op if the chat already knows
        if conn.events:
            self._selector.unregister(conn.sock)
            conn.events = 0
        conn.sock.close()

    def _close_all(self) -> None:
        if self._closed:
            return
        self._closed = True
        for conn in list(self._connections):
            self._queue(conn, (conn.codec or self._binary).encode(p.Notice("info", "the server is shutting down")))
            try:
                for chunk in conn.outbox:
                    conn.sock.send(chunk)
            except OSError:
                pass
            self._close(conn)
        self._selector.close()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        log.info("chatlab server on %s:%d stopped", *self.address)

    # ----------------------------------------------------------- reporting

    @property
    def running(self) -> bool:
        """Is the loop's thread alive?  (A test's witness that hostile input did not kill it.)"""
        return self._thread is not None and self._thread.is_alive()

    @property
    def connection_count(self) -> int:
        """Connections open now, registered or not."""
        return len(self._connections)

    @property
    def nicks(self) -> list[str]:
        """Nicknames online now (a snapshot, safe to read from another thread)."""
        return sorted(s.nick for s in list(self.room.nicks.values()) if s.nick)

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting in all outgoing queues now."""
        return sum(c.queued for c in list(self._connections))

    @property
    def buffered_bytes(self) -> list[int]:
        """Bytes each connection has sent us that are not yet whole events (bounded by design)."""
        return [len(c.first_bytes) + getattr(c.codec, "buffered", 0) for c in list(self._connections)]

    def transfers(self) -> dict[str, tuple[int, int]]:
        """``{nick: (transfers sending, transfers receiving)}`` relayed now."""
        return {s.name: self.room.relay.count(s) for s in list(self._connections) if s.nick}

    @property
    def max_queue(self) -> int:
        return self.config.max_queue

    @property
    def selector(self) -> selectors.BaseSelector:
        """The selector the loop waits in (public for instrumentation, e.g. the scaling bench)."""
        return self._selector


def serve(host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
    """Run a server in the foreground until Ctrl-C (the CLI's ``server`` verb)."""
    server = Server(host, port, **options)
    print(f"chatlab server listening on {server.address[0]}:{server.address[1]} ({server.config.selector}); Ctrl-C stops it",
          flush=True)
    server.serve_forever()


__all__ = [
    "Server", "Settings", "FloodLimit", "Connection", "serve", "normalize_name", "ChatlabError",
    "FD_SETSIZE", "RESERVED_NICKS", "MAX_TRANSFERS", "RemoteProtocolError",
]
