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
  the core through its one entry, ``room.handle(event, now)``; it answers with
  named outputs (send this to them, pause that one, close this one) that the
  loop applies.  Everything else that happens to a connection (it broke, it
  sent garbage, its receiver stalled, the clock moved) is an event too.
* Sending never blocks: it appends bytes to the connection's queue.  At the
  end of each turn of the loop, every queue that grew is flushed, many frames
  per ``sendmsg()`` call; only what the kernel would not take waits for
  ``select()`` to report the socket writable again.
* Reading is how we apply pressure back.  A client over its flood rate is
  simply not read for a while: its bytes wait in the kernel, TCP's own flow
  control slows it down, nothing it sent is lost and nobody else is slowed.
  A file sender whose receiver is not keeping up is still read, so that its
  chat lines and PONGs go on; only its file frames wait ("parked", at most
  ``relay_high_water`` bytes, then it is not read either), and if its receiver
  then takes nothing for ``stall_timeout`` seconds, their transfers are cancelled.
* Every socket gets closed: a send error closes it even while it was already
  closing, and a closing one has ``CLOSE_FLUSH_TIMEOUT`` seconds to take its last bytes.

Each client's state is one :class:`~chatlab.connection.Connection`, attached to its
selector registration (``key.data``) as CPython's selectors intends.
"""

from __future__ import annotations

import dataclasses
import logging
import selectors
import ssl
import threading
import time
from typing import Any, Callable

from .connection import FD_SETSIZE, SELECTORS, Connection, Refusal, check_descriptor_limit, drain, open_sockets
from .core import chatroom as core
from .core import protocol as p
from .core.chatroom import Broadcast, ChatRoom, Close, FloodLimit, Output, Pause, Send, Settings
from .core.codecs import BinaryCodec, CodecFactory, Event, sniff
from .core.fanout import TurnLines
from .core.relay import Forward
from .errors import ChatlabError
from .serverstats import ServerStats
from .tls import server_context

log = logging.getLogger("chatlab.server")

# Fairness: events handled for one client before the loop serves the others.  Without a
# budget, one recv() of 64 KiB of tiny frames (5,000 PINGs) held everyone up for ~20 ms.
FRAMES_PER_TURN = 64
CLOSE_FLUSH_TIMEOUT = 3.0  # seconds a closing connection may take to accept its last bytes
Tracer = Callable[[str, str, p.Frame], None]


# A turn reads what is ready, then writes.  While a room's chat lines wait to go out, it looks
# again (select with no wait) up to this many times in all: the lines that arrived meanwhile join
# the same writes, so a busy room costs one send() per member for many lines instead of a few.
# A round is bounded (FRAMES_PER_TURN events per client), so a turn stays a few milliseconds long.
READS_PER_TURN = 3


class Server(ServerStats):
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
        tls_cert, tls_key (PEM files, ``chatlab certs``) or ``tls`` (an SSLContext): TLS too, on the same port.
        settings: fields of :class:`chatlab.core.chatroom.Settings` (``selector="epoll"``,
            ``flood_limit=None``, ``room_passwords={"class": "secret"}``...), or a whole
            ``config=Settings(...)``; the result is :attr:`config`, frozen.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, config: Settings | None = None,
                 on_frame: Tracer | None = None, text_codec: CodecFactory | None = None,
                 tls: ssl.SSLContext | None = None, tls_cert: str | None = None, tls_key: str | None = None,
                 **settings: Any) -> None:
        self.config = config = dataclasses.replace(config or Settings(), **settings)
        self.on_frame = on_frame
        self.text_codec = text_codec
        self.tls_context = tls or (server_context(tls_cert, tls_key) if tls_cert else None)
        self.room = ChatRoom(config)  # the rules; everything below is sockets
        self.warning = check_descriptor_limit(config.max_clients)  # logged there; serve() prints it too
        self.room.wall_offset = time.time() - time.monotonic()  # the core shows wall-clock times (IRC's topic times)
        self._selector, self._listener, self._wake_r, self._wake_w = open_sockets(host, port, config)
        self.address: tuple[str, int] = self._listener.sock.getsockname()[:2]
        self._connections: set[Connection] = set()
        self._paused: set[Connection] = set()  # paused by flood control
        self._dirty: set[Connection] = set()  # queued to this turn: flushed at its end
        self._fan_to: list[Connection] = []  # the members of the broadcasts held until the turn's end
        self._fan_lines: list[p.Message] = []  # ... and what was broadcast to them
        self._busy: set[Connection] = set()  # events left over after a turn's budget: handled next turn
        self._starving: set[Connection] = set()  # not read: their parked file frames are full
        self._binary = BinaryCodec(config.max_payload)  # speaks to connections before their codec is known
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.peak_queued = 0  # the most bytes ever queued to one client: backpressure's witness
        self.turns = 0  # turns of the loop so far

    # ----------------------------------------------------------------- set-up

    def start(self) -> Server:
        """Run the loop in a daemon thread; returns at once."""
        if self._thread is None:
            name = f"chatlab-server-{self.address[1]}"
            self._thread = threading.Thread(target=self.serve_forever, name=name, daemon=True)
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
                wake = [next_tick] + [c.paused_until for c in self._paused]
                wake += [c.blocked_by.drained_at + self.config.stall_timeout for c in self._starving if c.blocked_by]
                self._read_ready(0.0 if self._busy else max(0.0, min(wake) - now))
                self.turns += 1
                now = time.monotonic()
                self._resume(now)
                self._flush_dirty()
                if self._starving:
                    self._check_starving(now)
                if now >= next_tick:
                    self._timers(now)
                    next_tick = now + tick
        except KeyboardInterrupt:
            log.info("interrupted: shutting down")
        finally:
            self._close_all()

    def _read_ready(self, timeout: float) -> None:
        """A turn's reading: what is ready within ``timeout``, then, while chat lines wait to go out, what
        arrived meanwhile (up to :data:`READS_PER_TURN` rounds in all, none of them waiting)."""
        ready = self._selector.select(timeout)
        for _ in range(READS_PER_TURN):
            for key, mask in ready:
                self._on_event(key, mask)
            if not ready or not self._fan_lines:
                return
            ready = self._selector.select(0.0)

    def _on_event(self, key: selectors.SelectorKey, mask: int) -> None:
        if key.fileobj is self._listener.sock:
            self._accept()
        elif key.fileobj is self._wake_r:
            drain(self._wake_r)
        elif isinstance(key.data, Refusal):
            self._listener.on_refusal(key.data)
        else:
            conn: Connection = key.data
            if mask & selectors.EVENT_WRITE:
                self._flush(conn)
            if mask & selectors.EVENT_READ and conn in self._connections and conn.closing is None:
                self._on_readable(conn)

    def _timers(self, now: float) -> None:
        """Once per tick: closings past their deadline, refusals, then the core's clock."""
        for conn in list(self._connections):
            if conn.closing is not None:
                if now >= conn.close_by:
                    self._close(conn)
                continue
            if conn in self._starving:  # we are not reading it: its silence is ours
                conn.last_heard_at, conn.ping_sent_at = now, 0.0
        self._listener.tick(now)
        self._apply(None, self.room.handle(core.Tick(), now))

    def _check_starving(self, now: float) -> None:
        """Senders not read (parked frames full) whose receiver took nothing for stall_timeout: cancelled."""
        for sender in list(self._starving):
            receiver = sender.blocked_by
            if receiver is not None and now - receiver.drained_at >= self.config.stall_timeout:
                self._feed(sender, core.Stalled(sender, receiver, now - receiver.drained_at))
                self._unblock(receiver, [sender])
            elif receiver is None:
                self._starving.discard(sender)

    def _accept(self) -> None:
        now = time.monotonic()
        admitted = self._listener.admit(now, len(self._connections), self.config.max_clients,
                                        self.config.selector == "select")
        if admitted is None:
            return
        conn = Connection(admitted[0], admitted[1], now)
        self._connections.add(conn)
        self.served += 1
        self.peak = max(self.peak, len(self._connections))
        self.room.connect(conn, now)
        conn.events = selectors.EVENT_READ
        self._selector.register(conn.sock, conn.events, conn)
        log.debug("%s connected", conn.peer)

    def _on_readable(self, conn: Connection) -> None:
        # A big payload (a file chunk) is received straight into its own buffer, which is
        # then forwarded as is: one copy in, none on the way out (sendmsg takes the buffer).
        into = getattr(conn.codec, "payload_buffer", None) if conn.tls is None else None  # TLS: decrypt first
        view = into() if into is not None else None
        if view is not None:
            self._recv_payload(conn, view)
            return
        data = self._recv(conn, None)
        if data and (conn.tls is not None or not conn.tls_checked):
            data = conn.plaintext(data, self.tls_context)  # None: its TLS failed, this connection only
            self._dirty.add(conn)  # the handshake's records (or the alert) go back at the end of the turn
            if data is None:
                return self._disconnect(conn, conn.tls_failed, flush=True)
        if not data:
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
            self._feed(conn, core.Malformed(conn, str(exc)))
            return
        self._process(conn)
        if into is not None and self._may_read_on(conn):
            view = into()  # these bytes began a file chunk: its rest is read now, not after another select()
            if view is not None:
                self._recv_payload(conn, view)

    def _may_read_on(self, conn: Connection) -> bool:
        """Is ``conn`` to be read (not closing, paused, over this turn's budget or with its parked file
        frames full)?  The selector watches it for reading only then."""
        return (conn.closing is None and not conn.paused_until and conn.held is None and conn not in self._busy
                and conn.parked_bytes <= self.config.relay_high_water)

    def _recv(self, conn: Connection, view: memoryview | None) -> Any:
        """``recv`` (or ``recv_into`` ``view``); ``None`` when nothing came (the connection may be gone)."""
        try:
            got = conn.sock.recv(65536) if view is None else conn.sock.recv_into(view)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            self._disconnect(conn, f"connection lost ({exc.strerror or exc})")
            return None
        if not got:
            self._disconnect(conn, "connection closed")
            return None
        return got

    def _recv_payload(self, conn: Connection, view: memoryview) -> None:
        """Read a big payload into its own buffer while the kernel has bytes for it (cheaper than select())."""
        codec: Any = conn.codec
        while view:
            got = self._recv(conn, view)
            if got is None:
                if conn.closing is not None:
                    return
                break
            codec.received(got)
            view = view[got:]
        self._process(conn)  # complete or not, whatever is whole goes on

    def _next(self, conn: Connection) -> Event | None:
        """The next event of ``conn``: the one flood control held, parked file frames, then the codec's."""
        if conn.held is not None:
            event, conn.held = conn.held, None
            return event
        if conn.parked and conn.blocked_by is None:
            return conn.unpark()
        assert conn.codec is not None
        return conn.codec.next_event()

    def _process(self, conn: Connection) -> None:
        """Hand every complete event to the core; file frames wait while their receiver's queue is full."""
        for _ in range(FRAMES_PER_TURN):
            if conn.closing is not None or conn.codec is None or conn.paused_until:
                return
            try:
                event = self._next(conn)
            except (ChatlabError, ValueError, RecursionError) as exc:  # the codec cannot go on
                self._feed(conn, core.Malformed(conn, str(exc)))
                return
            if event is None:
                return
            if isinstance(event, bytes):  # the codec's own reply (a text client's error, say)
                self._queue(conn, event)
            elif isinstance(event, p.Frame) and conn.blocked_by is not None:  # backpressure: park file frames
                conn.park(event)
                if conn.parked_bytes > self.config.relay_high_water:  # and stop reading once that is full
                    self._starving.add(conn)
                    self._update_events(conn)
                    return
            else:
                self._feed(conn, core.Received(conn, event))
        self._busy.add(conn)  # the rest waits for the next turn, once everyone else was served
        self._update_events(conn)

    def _feed(self, conn: Connection, event: core.Received | core.Malformed | core.Stalled) -> None:
        """One event from ``conn`` into the core, and its outputs applied."""
        who = conn.name  # as the trace names it before a HELLO is handled
        outputs = self.room.handle(event, time.monotonic())
        paused = any(isinstance(out, Pause) for out in outputs)
        if isinstance(event, core.Received) and not paused:
            self.messages += 1
            self._trace("in", who, event.item)
        self._apply(conn, outputs)

    def _resume(self, now: float) -> None:
        """Connections whose flood pause is over, and those with events left from the last turn."""
        for conn in [c for c in self._paused if c.paused_until <= now] + list(self._busy):
            if conn.paused_until <= now:
                self._paused.discard(conn)
                conn.paused_until = 0.0
            self._busy.discard(conn)
            self._process(conn)
            self._update_events(conn)

    # ------------------------------------------------- applying the core's outputs

    def _apply(self, source: Connection | None, outputs: list[Output]) -> None:
        """Carry out what the core decided; ``source`` is the connection whose event it was."""
        for out in outputs:
            if isinstance(out, Broadcast):
                self._broadcast(out.to, out.message)
            elif isinstance(out, Send):  # _queue and _disconnect queue the held chat lines first
                self._send(out.to, out.message)
            elif isinstance(out, Forward):
                assert source is not None  # only an event from a connection is forwarded
                self._forward(source, out)
            elif isinstance(out, Pause):
                conn: Connection = out.session
                conn.paused_until, conn.held = out.until, out.held
                self._paused.add(conn)
                self._update_events(conn)
            elif isinstance(out, Close):
                self._disconnect(out.session, out.reason, flush=out.flush)

    def _broadcast(self, members: list[Connection], message: p.Message) -> None:
        """A room's chat lines are held until the turn's end (or until anything else is queued, to keep
        every queue in order), so that the lines broadcast to the same members in one turn reach each of
        them as one piece of bytes."""
        if self._fan_lines and members != self._fan_to:
            self._fan_out()
        self._fan_to = members
        self._fan_lines.append(message)
        if not isinstance(message, p.ChatMessage):  # encoding a notice may change its codec's state (IRC's own
            self._fan_out()  # JOIN asks the core for the member list, which must follow at once): queued now
        for member in members if self.on_frame is not None else ():
            self._trace("out", member.name, message)

    def _fan_out(self) -> None:
        """Queue the held broadcasts: fan-out's hot path, one pass over the members per turn, not per line.

        Every member who sent none of the lines gets the same bytes, joined once per framing (IRC sends
        no echo, so a sender's share differs).  A member with nothing queued before is sent its share at
        once: the end of the turn would do just that, with more bookkeeping per member."""
        members, lines = self._fan_to, self._fan_lines
        if not lines:
            return
        self._fan_to, self._fan_lines = [], []  # first: what is queued below comes back here
        turn = TurnLines(lines)
        over: list[Connection] = []
        broken: list[tuple[Connection, str]] = []
        self._fan_out_to(members, turn, over, broken)
        for member in over:
            self._drop_slow_reader(member)
        for member, why in broken:
            self._disconnect(member, f"connection lost ({why})")

    def _fan_out_to(self, members: list[Connection], turn: TurnLines, over: list[Connection],
                    broken: list[tuple[Connection, str]]) -> None:
        """The pass over the members (fan-out's innermost loop: kept inline, a call per member shows).
        ``over``: members whose queue would pass ``max_queue``; ``broken``: whose socket failed."""
        connections, binary, reading, now = self._connections, self._binary, selectors.EVENT_READ, time.monotonic()
        joined, senders = turn.joined, turn.senders
        for member in members:
            if member.closing is not None or member not in connections:
                continue
            codec = member.codec or binary
            data: bytes | memoryview | None = joined.get(type(codec)) if member.nick not in senders else None
            if data is None:
                data = turn.bytes_for(codec, member.nick)
            if data and member.tls is None and not member.outbox and member.events == reading and not member.blocking:
                try:  # nothing waits before it: send now
                    data = member.send_at_once(data, now)
                except OSError as exc:
                    broken.append((member, exc.strerror or str(exc)))
                    continue
            if data:
                self._queue_share(member, data, over)

    def _queue_share(self, member: Connection, data: bytes | memoryview, over: list[Connection]) -> None:
        """A member's share of the turn's lines that could not go at once; ``over``: its queue would pass
        ``max_queue`` (a turn's lines can be many: the limit is checked before they are queued)."""
        if member.tls is not None:  # its outbox holds ciphertext: append() encrypts
            self._queue(member, bytes(data))
            return
        queued = member.queued + len(data)
        if queued > self.config.max_queue:
            over.append(member)
            return
        if not member.outbox:
            member.drained_at = time.monotonic()  # the stall clock starts when there is something to take
        member.outbox.append(data)
        member.queued = queued
        self._dirty.add(member)
        self.peak_queued = max(self.peak_queued, queued)

    def _send(self, conn: Connection, message: p.Message) -> None:
        self._trace("out", conn.name, message)
        self._queue(conn, (conn.codec or self._binary).encode(message))

    def _forward(self, sender: Connection, out: Forward) -> None:
        """A transfer frame, relayed: the payload untouched behind a new header, no copy."""
        receiver: Connection = out.to
        self._queue(receiver, p.pack_header(out.kind, len(out.payload), out.stream_id, out.flags), out.payload)
        self._trace("out", receiver.name, p.Frame(out.kind, out.flags, out.stream_id, out.payload))
        if out.chunk:
            self.relayed += len(out.payload) - p.CHUNK_PREFIX.size
        if out.chunk and self.room.relay.should_pause(receiver.queued) and receiver.closing is None:
            sender.blocked_by = receiver  # backpressure: park the sender's file frames until the receiver drains
            receiver.blocking.add(sender)

    # ------------------------------------------------------------- output

    def _queue(self, conn: Connection, *parts: bytes) -> None:
        """Append to a connection's queue; the loop sends it at the end of this turn."""
        if self._fan_lines:
            self._fan_out()  # what was broadcast before goes first
        if conn.closing is not None or conn not in self._connections:
            return
        self._dirty.add(conn)
        conn.append(parts)
        self.peak_queued = max(self.peak_queued, conn.queued)
        if conn.queued > self.config.max_queue:
            self._drop_slow_reader(conn)

    def _drop_slow_reader(self, conn: Connection) -> None:
        """Its queue is over ``max_queue``: it goes, and what waited for it with it."""
        conn.outbox.clear()
        conn.queued = 0
        self._disconnect(conn, f"not reading: more than {self.config.max_queue} bytes were waiting for it")

    def _flush_dirty(self) -> None:
        """End of a turn: send what it queued; only what the kernel would not take waits for EVENT_WRITE."""
        self._fan_out()
        while self._dirty:
            self._flush(self._dirty.pop())

    def _flush(self, conn: Connection) -> None:
        self._dirty.discard(conn)
        if conn not in self._connections:
            return
        try:
            conn.send_queued()
        except OSError as exc:  # closing or not, a socket that cannot be written to is closed now
            self._disconnect(conn, f"connection lost ({exc.strerror or exc})", flush=False)
            return
        if not conn.outbox and not conn.blocking and conn.closing is None and conn.events == selectors.EVENT_READ:
            return  # fan-out's common case: all sent, nothing to resume, close or change in the selector
        if conn.blocking and self.room.relay.may_resume(conn.queued):
            self._unblock(conn, list(conn.blocking))
        if not conn.outbox and conn.closing is not None:
            self._close(conn)
            return
        self._update_events(conn)

    def _unblock(self, conn: Connection, senders: list[Connection]) -> None:
        """``conn``'s queue drained (or its transfers were cancelled): the senders' parked frames go on."""
        for sender in senders:
            conn.blocking.discard(sender)
            self._starving.discard(sender)
            sender.blocked_by = None
            self._process(sender)
            self._update_events(sender)

    def _update_events(self, conn: Connection) -> None:
        """Ask select() only for what we need now: read unless paused, write only while queued."""
        if conn not in self._connections:
            return
        events = 0
        if self._may_read_on(conn):
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
        """Out of the chat at once; the socket closes now, or once its queue is sent (``flush``, with a deadline)."""
        self._fan_out()  # the lines broadcast to it before go out first (or are dropped with it)
        if conn not in self._connections:
            return
        if conn.closing is None:
            log.info("%s disconnected: %s", conn.name, reason or "quit")
            conn.closing = reason
            conn.close_by = time.monotonic() + CLOSE_FLUSH_TIMEOUT
            self._apply(conn, self.room.handle(core.Gone(conn, reason), time.monotonic()))  # quit notices, cancels
            self._unblock(conn, list(conn.blocking))
            if conn.blocked_by is not None:
                conn.blocked_by.blocking.discard(conn)
            conn.parked.clear()
            conn.parked_bytes = 0
        if not flush or not conn.outbox:
            self._close(conn)
        else:
            self._update_events(conn)

    def _close(self, conn: Connection) -> None:
        self._connections.discard(conn)
        self._paused.discard(conn)
        self._busy.discard(conn)
        self._dirty.discard(conn)
        self._starving.discard(conn)
        self.room.handle(core.Gone(conn, conn.closing or "closed"), time.monotonic())  # a no-op unless shutting down
        if conn.events:
            self._selector.unregister(conn.sock)
            conn.events = 0
        conn.end_tls()
        conn.sock.close()

    def _close_all(self) -> None:
        if self._closed:
            return
        self._closed = True
        for conn in list(self._connections):
            self._queue(conn, (conn.codec or self._binary).encode(p.Notice("info", "the server is shutting down")))
            try:
                conn.send_queued()
            except OSError:
                pass
            self._close(conn)
        self._listener.close()
        self._selector.close()
        for sock in (self._wake_r, self._wake_w):
            sock.close()
        log.info("chatlab server on %s:%d stopped", *self.address)


__all__ = ["Server", "Settings", "FloodLimit", "Connection", "FD_SETSIZE", "SELECTORS", "CLOSE_FLUSH_TIMEOUT"]
