"""Exercise for notebook 08: the asyncio broadcast room.

The student writes the coroutine that serves one client::

    async def handle_client(reader, writer, room) -> None:
        ...

``room`` is a set of :class:`asyncio.StreamWriter`, shared by every client's
coroutine.  The coroutine puts its own writer in the room, then reads whole
chatlab frames (a 12-byte header checked with ``protocol.parse_header``, then
``length`` payload bytes, with ``reader.readexactly``) and writes each frame
to every writer in the room, its own included.  When the client leaves (even
in the middle of a frame) or sends something that is not a chatlab frame, it
takes its writer out of the room and closes it.

``writer.write()`` never blocks: what the kernel does not take waits in the
transport's buffer.  A member that never reads would make that buffer grow
without bound, and ``await member.drain()`` would make the *sender* wait for
the slowest member.  So a member with more than :data:`MAX_QUEUED` bytes
waiting (``member.transport.get_write_buffer_size()``) is dropped instead:
taken out of the room and aborted (``member.transport.abort()``): ``close()``
would keep its buffered bytes, and its socket, until they are flushed, which
for a member that never reads is never.

:func:`check_broadcast_handler` serves real loopback clients with it (an
event loop in a background thread, ``asyncio.start_server``) and prints one
line per case.  On every case it also watches the event loop: a ``time.sleep()``
in the coroutine, or any call that holds the loop for more than
:data:`MAX_STALL` seconds, fails; and a writer taken out of the room (its
client left, was reset, or was dropped) must have been closed.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Callable

from ..core import protocol as p
from ..errors import ProtocolError
from ..i18n import _
from ._broadcast_room import (
    MAX_QUEUED,
    MAX_STALL,
    ROOM_DEADLINE,
    WAIT,
    Handler,
    _Room,
    _SleepProbe,
)
from ._report import Report, run_cases


def _frames(sock: socket.socket, count: int, wait: float = WAIT) -> list[p.Frame]:
    """Read ``count`` frames (or as many as arrive within ``wait`` seconds)."""
    decoder = p.FrameDecoder()
    frames: list[p.Frame] = []
    deadline = time.monotonic() + wait
    while len(frames) < count and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        if not data:
            break
        decoder.feed(data)
        try:
            frames.extend(decoder)
        except ProtocolError as exc:
            raise AssertionError(
                _(
                    "a client received bytes that are not chatlab frames ({error}): pieces of frames were"
                    " forwarded and got interleaved; forward a frame only once it is whole"
                ).format(error=exc)
            ) from None
    return frames


def _say(text: str) -> bytes:
    return p.encode(p.Say(text=text))


def _expect(sock: socket.socket, texts: list[str], who: str, room: _Room) -> None:
    got = [p.decode_message(f) for f in _frames(sock, len(texts))]
    want = [p.Say(text=t) for t in texts]
    if got != want:
        raise AssertionError(
            _("{who} should have received {want}, got {got}").format(
                who=who, want=[t for t in texts], got=[getattr(m, "text", m) for m in got]
            )
            + room.blame()
        )


def _case(handle_client: Handler, body: Callable[[_Room], str | None]) -> Callable[[], str | None]:
    def run() -> str | None:
        room = _Room(handle_client)
        try:
            with _SleepProbe(room):
                try:
                    result = body(room)
                except OSError as exc:  # a checker's client could not send: the server closed on it
                    raise AssertionError(
                        _("the server closed the connection of a client that was still sending ({error})").format(
                            error=type(exc).__name__
                        )
                        + room.blame()
                    ) from None
            _responsive(room)
            return result
        finally:
            room.close()
    return run


def _responsive(room: _Room) -> None:
    """Fail when the handler blocked the event loop during the case."""
    if room.slept:
        raise AssertionError(
            _(
                "your coroutine called time.sleep() ({n} time(s)): it blocks the whole event loop, and every"
                " client waits meanwhile; a coroutine pauses with await asyncio.sleep()"
            ).format(n=room.slept)
        )
    stall = room.stall()
    if stall > MAX_STALL:
        raise AssertionError(
            _(
                "the event loop was blocked for {ms:.0f} ms while your coroutine ran: a call that blocks"
                " (time.sleep(), a plain socket call, a long computation) stops every client at once; wait"
                " with await (reader.readexactly(), asyncio.sleep())"
            ).format(ms=stall * 1000)
            + room.blame()
        )


def _expect_closed(room: _Room, who: str) -> None:
    """Every writer out of the room must have been closed."""
    deadline = time.monotonic() + WAIT
    while (left_open := room.unclosed()) and time.monotonic() < deadline:
        time.sleep(0.01)
    if left_open:
        raise AssertionError(
            _(
                "{who} is out of the room but the connection was never closed: its socket (and anything"
                " buffered for it) stays until the process ends; close the writer you take out of the room"
                " (writer.close())"
            ).format(who=who)
            + room.blame()
        )


def _hears_itself(room: _Room) -> None:
    alice = room.client()
    room.settle(1)
    alice.sendall(_say("hello"))
    _expect(alice, ["hello"], _("the sender (a room shows you your own line)"), room)


def _two_hear_each_other(room: _Room) -> None:
    alice, bob = room.client(), room.client()
    room.settle(2)
    alice.sendall(_say("from alice"))
    _expect(bob, ["from alice"], "bob", room)
    bob.sendall(_say("from bob"))
    _expect(alice, ["from alice", "from bob"], "alice", room)


def _trickle(room: _Room) -> None:
    alice, bob = room.client(), room.client()
    room.settle(2)
    for byte in _say("one byte at a time"):
        alice.send(bytes([byte]))
        time.sleep(0.002)
    _expect(bob, ["one byte at a time"],
            _("bob (a frame arrives in as many pieces as TCP likes: read whole frames)"), room)


def _interleaved(room: _Room) -> None:
    alice, bob, carol = room.client(), room.client(), room.client()
    room.settle(3)
    a, b = _say("alice " * 6), _say("bob " * 8)
    for i in range(max(len(a), len(b))):
        if i < len(a):
            alice.send(a[i : i + 1])
        if i < len(b):
            bob.send(b[i : i + 1])
        time.sleep(0.002)
    got = _frames(carol, 2)
    try:
        texts = sorted(p.decode_message(f).text for f in got)  # type: ignore[union-attr]
    except ProtocolError:
        texts = []
    if texts != sorted(["alice " * 6, "bob " * 8]):
        raise AssertionError(
            _(
                "carol should have two whole frames, one per sender, and got {n} readable one(s): pieces"
                " of frames forwarded as they came get interleaved; forward a frame only once it is whole"
            ).format(n=len(got))
            + room.blame()
        )


def _glued(room: _Room) -> None:
    alice, bob = room.client(), room.client()
    room.settle(2)
    alice.sendall(_say("first") + _say("second") + p.encode(p.Who()))
    got = [p.decode_message(f) for f in _frames(bob, 3)]
    if got != [p.Say(text="first"), p.Say(text="second"), p.Who()]:
        raise AssertionError(
            _("three frames in one send() (one with an empty payload) should reach bob as three,"
              " got {got}").format(got=got)
            + room.blame()
        )


def _leaves(room: _Room) -> None:
    _leave_and_check(room, b"", _(
        "alice closed her connection but her writer is still in the room:"
        " take it out when reading ends (b'' / IncompleteReadError)"
    ), _("bob, after alice left,"))


def _leaves_mid_frame(room: _Room) -> None:
    _leave_and_check(room, _say("never finished")[:15], _(
        "alice left in the middle of a frame and is still in the room: readexactly() raises"
        " IncompleteReadError then, and the writer must leave the room all the same (try/finally)"
    ), _("bob, after alice left mid-frame,"))


def _resets(room: _Room) -> None:
    _leave_and_check(room, _say("half a")[:14], _(
        "alice's connection was reset (RST) and she is still in the room: reading then raises"
        " ConnectionResetError, not IncompleteReadError; catch ConnectionError too, and take the"
        " writer out of the room in a finally block, whatever ended the loop"
    ), _("bob, after alice's connection was reset,"), reset=True)


def _resets_quietly(room: _Room) -> None:
    _resets(room)
    escaped = [exc for exc in room.errors if isinstance(exc, ConnectionError)]
    if escaped:
        raise AssertionError(
            _(
                "alice left the room, but {error} escaped from your coroutine: a server prints that traceback for"
                " every client whose connection is reset, which is an ordinary way to leave; catch ConnectionError"
                " where you catch IncompleteReadError"
            ).format(error=type(escaped[0]).__name__)
        )


def _leave_and_check(room: _Room, last_words: bytes, still_in_room: str, bob_after: str, reset: bool = False) -> None:
    """alice sends ``last_words`` (maybe half a frame), closes; she must leave the room and bob still hear."""
    alice, bob = room.client(), room.client()
    room.settle(2)
    if last_words:
        alice.sendall(last_words)
        time.sleep(0.05)
    if reset:  # SO_LINGER with a zero timeout: close() sends a RST instead of a FIN
        alice.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    alice.close()
    deadline = time.monotonic() + WAIT
    while room.room_size() > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    if room.room_size() != 1:
        raise AssertionError(still_in_room + room.blame())
    _expect_closed(room, "alice")
    bob.sendall(_say("still here"))
    _expect(bob, ["still here"], bob_after, room)


def _disconnected(sock: socket.socket) -> bool:
    """True when the server closes ``sock`` within WAIT seconds (whatever it sent before)."""
    sock.settimeout(WAIT)
    deadline = time.monotonic() + WAIT
    try:
        while time.monotonic() < deadline:
            if sock.recv(65536) == b"":
                return True
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return False


def _protocol_error_escaped(room: _Room) -> None:
    escaped = [exc for exc in room.errors if isinstance(exc, ProtocolError)]
    if escaped:
        raise AssertionError(
            _(
                "the bad client was disconnected, but {error} escaped from your coroutine: a server prints"
                " that traceback for every bad client; catch ProtocolError where you catch IncompleteReadError"
            ).format(error=type(escaped[0]).__name__)
        )


def _garbage(room: _Room) -> None:
    mallory, bob = room.client(), room.client()
    room.settle(2)
    # A wrong magic byte, but a small, plausible length: only a check of the whole header refuses it.
    bad = p.HEADER.pack(0x00, p.VERSION, int(p.FrameType.SAY), 0, 0, 5) + b"hello"
    mallory.sendall(bad)
    if not _disconnected(mallory):
        raise AssertionError(
            _(
                "a client sent a header with a wrong magic byte and a small length and is still connected:"
                " checking the length field is not enough; check each header with protocol.parse_header"
                " (magic byte, version, type and length)"
            )
            + room.blame()
        )
    bob.sendall(_say("after the bad magic"))
    _expect(bob, ["after the bad magic"], "bob", room)
    mallory = room.client()
    room.settle(2)
    mallory.sendall(b"GET / HTTP/1.1\r\nHost: chat\r\n\r\n")
    if not _disconnected(mallory):
        raise AssertionError(
            _(
                "a client that sent an HTTP request is still connected: check each header with"
                " protocol.parse_header (bad magic byte) instead of trusting its length field"
            )
            + room.blame()
        )
    bob.sendall(_say("after the garbage"))
    _expect(bob, ["after the garbage"], "bob", room)
    _protocol_error_escaped(room)


def _oversized(room: _Room) -> None:
    mallory, bob = room.client(), room.client()
    room.settle(2)
    huge = 0x7FFFFFFF
    header = p.HEADER.pack(p.MAGIC, p.VERSION, int(p.FrameType.SAY), 0, 0, huge)
    mallory.sendall(header + b"x" * 1000)
    if not _disconnected(mallory):
        raise AssertionError(
            _(
                "a client sent a well-formed header announcing {n:,} bytes, more than the protocol's maximum"
                " of {max:,}, and is still connected: your server waits for them, and readexactly() would hold"
                " them all in memory. Refuse a length above the maximum (protocol.parse_header checks it) and"
                " disconnect"
            ).format(n=huge, max=p.MAX_PAYLOAD)
            + room.blame()
        )
    bob.sendall(_say("after the huge header"))
    _expect(bob, ["after the huge header"], "bob", room)
    _protocol_error_escaped(room)


def _briefly_behind(room: _Room) -> str:
    alice = room.client()
    bob = room.client(rcvbuf=4096)  # reads only at the end: more and more waits for him, below the limit
    room.settle(2)
    frame = _say("y" * 8000)
    count = (MAX_QUEUED // 2) // len(frame)
    alice_in = p.FrameDecoder()
    for sent in range(count):
        alice.sendall(frame)
        if not _one_frame(alice, alice_in):
            raise AssertionError(_("alice did not hear her own frame {n}").format(n=sent) + room.blame())
    got = len(_frames(bob, count, wait=WAIT * 2))
    if got < count or room.room_size() < 2:
        raise AssertionError(
            _(
                "bob read nothing while {count} frames ({kib} KiB) were sent, then read them all, and got {got}:"
                " he was dropped with less than MAX_QUEUED = {limit} KiB waiting. Some bytes waiting for a member"
                " is normal (the network is slower than your loop); drop only past the limit"
            ).format(count=count, kib=count * len(frame) // 1024, got=got, limit=MAX_QUEUED // 1024)
            + room.blame()
        )
    return _("{count} frames waited for bob, and all arrived").format(count=count)


def _never_reads(room: _Room) -> str:
    alice, bob = room.client(), room.client()
    room.client(rcvbuf=4096)  # mallory: connects, never reads
    room.settle(3)
    frame = _say("x" * 8000)
    count = 4 * MAX_QUEUED // len(frame)  # four times the limit, for every member
    alice_in, bob_in = p.FrameDecoder(), p.FrameDecoder()
    # Lockstep: alice sends a frame, then bob and alice each read it before the next one, so the two
    # members that keep up never have more than a frame waiting; only mallory's backlog grows.
    started = time.monotonic()
    for sent in range(count):
        alice.sendall(frame)
        for sock, decoder, who in ((bob, bob_in, "bob"), (alice, alice_in, "alice")):
            if time.monotonic() - started > ROOM_DEADLINE:
                raise AssertionError(
                    _(
                        "after {seconds:g} s only {sent} of {count} frames had gone round, {ms:.0f} ms each, while"
                        " mallory read nothing: the room waits for its slowest member (await member.drain(), even"
                        " inside asyncio.wait_for() with a timeout, holds up the sender and everyone after it);"
                        " drop a member that falls too far behind instead of waiting for it"
                    ).format(seconds=ROOM_DEADLINE, sent=sent, count=count,
                             ms=(time.monotonic() - started) * 1000 / max(sent, 1))
                    + room.stuck_in()
                    + room.blame()
                )
            if not _one_frame(sock, decoder):
                raise AssertionError(
                    _(
                        "{who} got {sent} of {count} frames while mallory read nothing: a member that never reads"
                        " held up everyone else (await member.drain() makes the sender wait for the slowest member)"
                    ).format(who=who, sent=sent, count=count)
                    + room.stuck_in()
                    + room.blame()
                )
    deadline = time.monotonic() + WAIT
    while room.room_size() > 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    if room.room_size() > 2:
        raise AssertionError(
            _(
                "mallory never read, {kib} KiB were sent to her, and she is still in the room:"
                " drop a member with more than MAX_QUEUED = {limit} KiB waiting"
                " (member.transport.get_write_buffer_size()), or its buffer grows without bound"
            ).format(kib=count * len(frame) // 1024, limit=MAX_QUEUED // 1024)
            + room.blame()
        )
    if room.room_size() < 2:
        raise AssertionError(_("alice or bob was dropped too, though both read everything") + room.blame())
    _expect_closed(room, "mallory")
    _expect_limit_kept(room)
    _expect_released(room, "mallory")
    return _("{count} frames to bob, mallory dropped").format(count=count)


def _expect_released(room: _Room, who: str) -> None:
    """A dropped member's socket must really close: writer.close() waits to flush its buffer first."""
    dropped = list(room.dropped())
    deadline = time.monotonic() + WAIT
    while (kept := [w for w in dropped if not room.released(w)]) and time.monotonic() < deadline:
        time.sleep(0.01)
    if kept:
        raise AssertionError(
            _(
                "{who} was dropped and closed with close(), but close() first flushes what is buffered for her,"
                " and she never reads: her socket and her {kib} KiB stay for as long as she stays connected;"
                " drop a member with member.transport.abort(), which discards the buffer and closes at once"
            ).format(who=who, kib=max(room.peak_buffered.get(w, 0) for w in kept) // 1024)
            + room.blame()
        )


def _expect_limit_kept(room: _Room) -> None:
    """No member may have had much more than MAX_QUEUED bytes waiting (one frame over it at most)."""
    allowed = MAX_QUEUED + 64 * 1024  # the checker's frames are 8 KB: a correct handler goes one frame over
    peak = max(room.peak_buffered.values(), default=0)
    if peak > allowed:
        raise AssertionError(
            _(
                "a member had {kib} KiB waiting before it was dropped: the limit is MAX_QUEUED = {limit} KiB;"
                " compare member.transport.get_write_buffer_size() with MAX_QUEUED, not a number of your own"
            ).format(kib=peak // 1024, limit=MAX_QUEUED // 1024)
            + room.blame()
        )


def _one_frame(sock: socket.socket, decoder: p.FrameDecoder) -> bool:
    """Read until ``decoder`` yields one frame; False if none comes within WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while decoder.next_frame() is None:
        if time.monotonic() > deadline:
            return False
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except (TimeoutError, ConnectionError):
            return False
        if not data:
            return False
        decoder.feed(data)
    return True


def check_broadcast_handler(handle_client: Handler, show: bool = True) -> Report:
    """Serve real loopback clients with ``handle_client(reader, writer, room)``.

    Prints one PASS/FAIL line per case (unless ``show=False``) and returns the
    :class:`~chatlab.exercises.Report`; ``bool(report)`` is True when all pass.
    """
    cases = [
        (_("the sender hears its own line"), _hears_itself),
        (_("two clients hear each other"), _two_hear_each_other),
        (_("a frame trickled one byte at a time arrives whole"), _trickle),
        (_("two senders trickling at once: frames never interleave"), _interleaved),
        (_("three frames glued in one send() arrive as three"), _glued),
        (_("a client that leaves is taken out of the room"), _leaves),
        (_("a client that leaves mid-frame is taken out of the room"), _leaves_mid_frame),
        (_("a client whose connection is reset (RST) is taken out of the room"), _resets_quietly),
        (_("a client speaking garbage is disconnected"), _garbage),
        (_("a header announcing more than the maximum payload is refused"), _oversized),
        (_("a member briefly behind (below the limit) stays in the room"), _briefly_behind),
        (_("a client that never reads is dropped; the others get everything"), _never_reads),
    ]
    return run_cases("check_broadcast_handler", [(name, _case(handle_client, body)) for name, body in cases], show=show)
