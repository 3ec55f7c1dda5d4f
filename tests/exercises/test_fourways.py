"""The four servers of notebook 08, their measurement, and the notebook's exercise checker."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest

from chatlab.core import protocol as p
from chatlab.errors import ProtocolError
from chatlab.exercises.broadcast import MAX_QUEUED, check_broadcast_handler
from chatlab.fourways import SERVERS, measure, running
from chatlab.fourways.asyncio_server import handle_client as package_handler
from solutions.broadcast import handle_client as reference_handler

CONCURRENT = ["threaded", "selector", "asyncio"]


def _client(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=3)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_frames(sock: socket.socket, count: int, timeout: float = 3.0) -> list[p.Message]:
    decoder = p.MessageDecoder()
    got: list[p.Message] = []
    deadline = time.monotonic() + timeout
    sock.settimeout(0.2)
    while len(got) < count and time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        if not data:
            break
        decoder.feed(data)
        got.extend(decoder)
    return got


def _join(sock: socket.socket, token: int) -> None:
    """Ping until the ping comes back: the server has accepted us and we are in the room."""
    sock.sendall(p.encode(p.Ping(token)))
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if p.Ping(token) in _read_frames(sock, 1, timeout=0.5):
            return
    raise AssertionError(f"ping {token} never came back")


def _drain(*socks: socket.socket) -> None:
    for sock in socks:
        _read_frames(sock, 100, timeout=0.2)


@pytest.mark.parametrize("kind", CONCURRENT)
def test_every_client_gets_every_frame_split_or_glued(kind: str) -> None:
    with running(kind) as address:
        alice, bob = _client(address), _client(address)
        with alice, bob:
            _join(alice, 1)
            _join(bob, 2)
            _drain(alice, bob)  # the join pings reached the others too
            data = p.encode(p.Say(text="split")) + p.encode(p.Say(text="glued"))
            for i in range(0, len(data), 5):  # pieces that cut headers and payloads
                alice.send(data[i : i + 5])
                time.sleep(0.001)
            expected = [p.Say(text="split"), p.Say(text="glued")]
            assert _read_frames(bob, 2) == expected
            assert _read_frames(alice, 2) == expected


@pytest.mark.parametrize("kind", CONCURRENT)
def test_a_garbage_client_is_dropped_and_the_others_go_on(kind: str) -> None:
    with running(kind) as address:
        good, bad = _client(address), _client(address)
        with good, bad:
            _join(good, 1)
            bad.sendall(b"GET / HTTP/1.1\r\n\r\n")
            bad.settimeout(3)
            try:  # closed: a FIN, or a RST when the server closed with bytes unread
                while bad.recv(100):
                    pass
            except ConnectionResetError:
                pass
            good.sendall(p.encode(p.Say(text="still fine")))
            assert _read_frames(good, 1) == [p.Say(text="still fine")]


def test_blocking_serves_the_second_client_only_after_the_first_leaves() -> None:
    with running("blocking") as address:
        alice, bob = _client(address), _client(address)
        with bob:
            with alice:
                _join(alice, 1)
                bob.sendall(p.encode(p.Say(text="anyone?")))
                assert _read_frames(bob, 1, timeout=0.5) == []  # waiting in the backlog
            assert _read_frames(bob, 1) == [p.Say(text="anyone?")]  # alice left: bob's turn


@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_running_stops_the_server_and_closes_its_connections(kind: str) -> None:
    with running(kind) as address:
        sock = _client(address)
        _join(sock, 7)
    with sock:
        sock.settimeout(3)
        try:
            assert sock.recv(100) == b""
        except ConnectionResetError:
            pass
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=3).close()


def test_measure_rounds_counts_deliveries_and_the_blocking_stall() -> None:
    ok = measure.rounds("selector", clients=3, n_rounds=2)
    assert (ok.expected, ok.delivered) == (18, 18)
    assert ok.latency_p50_ms is not None and ok.latency_p50_ms > 0
    stalled = measure.rounds("blocking", clients=2, n_rounds=2, round_timeout=0.3)
    assert stalled.delivered < stalled.expected


def test_measure_footprint_sees_a_thread_per_client() -> None:
    pytest.importorskip("psutil")
    threaded = measure.footprint("threaded", connections=10, settle=0.3)
    selector = measure.footprint("selector", connections=10, settle=0.3)
    assert threaded.threads_per_connection == pytest.approx(1.0, abs=0.2)
    assert selector.threads_per_connection == pytest.approx(0.0, abs=0.2)
    assert "threads_per_connection" in measure.table([threaded, selector])


# ------------------------------------------------------------------ the checker


def test_checker_passes_the_reference() -> None:
    report = check_broadcast_handler(reference_handler, show=False)
    assert report, report.summary()


async def stub(reader, writer, room):  # type: ignore[no-untyped-def]
    raise NotImplementedError()


async def forgets_to_join(reader, writer, room):  # type: ignore[no-untyped-def]
    try:
        while True:
            header = await reader.readexactly(p.HEADER_SIZE)
            payload = await reader.readexactly(p.parse_header(header).length)
            for member in room:
                member.write(header + payload)
    except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
        writer.close()


async def forwards_raw_chunks(reader, writer, room):  # type: ignore[no-untyped-def]
    room.add(writer)
    try:
        while data := await reader.read(65536):
            for member in room:
                member.write(data)
    finally:
        room.discard(writer)
        writer.close()


async def skips_the_sender(reader, writer, room):  # type: ignore[no-untyped-def]
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(p.HEADER_SIZE)
            payload = await reader.readexactly(p.parse_header(header).length)
            for member in room:
                if member is not writer:
                    member.write(header + payload)
    except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
        pass
    finally:
        room.discard(writer)
        writer.close()


async def never_leaves_the_room(reader, writer, room):  # type: ignore[no-untyped-def]
    room.add(writer)
    while True:
        header = await reader.readexactly(p.HEADER_SIZE)
        payload = await reader.readexactly(p.parse_header(header).length)
        for member in room:
            member.write(header + payload)


async def trusts_the_length(reader, writer, room):  # type: ignore[no-untyped-def]
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(12)
            length = struct.unpack("!I", header[8:])[0]  # no magic check: garbage means a 1 GB "frame"
            payload = await reader.readexactly(length)
            for member in room:
                member.write(header + payload)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        room.discard(writer)
        writer.close()


async def blocking_recv_inside(reader, writer, room):  # type: ignore[no-untyped-def]
    room.add(writer)  # a socket call that blocks the whole event loop
    sock = writer.get_extra_info("socket")
    try:
        raw = socket.socket(fileno=sock.fileno())
        raw.setblocking(True)
        raw.settimeout(0.5)
        while True:
            header = raw.recv(p.HEADER_SIZE)
            payload = raw.recv(p.parse_header(header).length)
            for member in room:
                member.write(header + payload)
    finally:
        raw.detach()
        room.discard(writer)
        writer.close()


async def awaits_every_drain(reader, writer, room):  # type: ignore[no-untyped-def]
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(p.HEADER_SIZE)
            payload = await reader.readexactly(p.parse_header(header).length)
            for member in list(room):
                member.write(header + payload)
                await member.drain()  # the sender now waits for the slowest member
    except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
        pass
    finally:
        room.discard(writer)
        writer.close()


async def no_finally_no_connection_error(reader, writer, room):  # type: ignore[no-untyped-def]
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(p.HEADER_SIZE)
            payload = await reader.readexactly(p.parse_header(header).length)
            for member in list(room):
                member.write(header + payload)
    except (asyncio.IncompleteReadError, ProtocolError):  # BUG: a reset raises ConnectionResetError
        room.discard(writer)
        writer.close()


async def finally_but_reset_escapes(reader, writer, room):  # type: ignore[no-untyped-def]
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(p.HEADER_SIZE)
            payload = await reader.readexactly(p.parse_header(header).length)
            for member in list(room):
                member.write(header + payload)
    except (asyncio.IncompleteReadError, ProtocolError):  # BUG: ConnectionResetError escapes (a traceback)
        pass
    finally:
        room.discard(writer)
        writer.close()


async def own_header_check(reader, writer, room):  # type: ignore[no-untyped-def]
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(12)
            magic, _version, _type, _flags, _stream, length = struct.unpack("!BBBBII", header)
            if magic != p.MAGIC:
                break
            payload = await reader.readexactly(length)  # BUG: no maximum: 2 GiB "frames" are awaited
            for member in list(room):
                member.write(header + payload)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        room.discard(writer)
        writer.close()


async def sleeps_to_pace(reader, writer, room):  # type: ignore[no-untyped-def]
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(p.HEADER_SIZE)
            payload = await reader.readexactly(p.parse_header(header).length)
            for member in list(room):
                member.write(header + payload)
            time.sleep(0.01)  # BUG: blocks the whole loop
    except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
        pass
    finally:
        room.discard(writer)
        writer.close()


async def drain_with_a_timeout(reader, writer, room):  # type: ignore[no-untyped-def]
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(p.HEADER_SIZE)
            payload = await reader.readexactly(p.parse_header(header).length)
            for member in list(room):
                member.write(header + payload)
                try:
                    await asyncio.wait_for(member.drain(), 0.3)  # BUG: every frame waits for the slowest
                except asyncio.TimeoutError:
                    pass
    except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
        pass
    finally:
        room.discard(writer)
        writer.close()


async def drops_without_closing(reader, writer, room):  # type: ignore[no-untyped-def]
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(p.HEADER_SIZE)
            payload = await reader.readexactly(p.parse_header(header).length)
            for member in list(room):
                if member.transport.get_write_buffer_size() > MAX_QUEUED:
                    room.discard(member)  # BUG: out of the room, but its connection stays open
                else:
                    member.write(header + payload)
    except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
        pass
    finally:
        room.discard(writer)
        writer.close()


async def drops_at_any_backlog(reader, writer, room):  # type: ignore[no-untyped-def]
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(p.HEADER_SIZE)
            payload = await reader.readexactly(p.parse_header(header).length)
            for member in list(room):
                if member.transport.get_write_buffer_size() > 0:  # BUG: a little behind is normal
                    room.discard(member)
                    member.close()
                else:
                    member.write(header + payload)
    except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
        pass
    finally:
        room.discard(writer)
        writer.close()


async def leaves_without_closing(reader, writer, room):  # type: ignore[no-untyped-def]
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(p.HEADER_SIZE)
            payload = await reader.readexactly(p.parse_header(header).length)
            for member in list(room):
                member.write(header + payload)
    except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
        pass
    finally:
        room.discard(writer)  # BUG: and never writer.close()


async def drops_while_iterating(reader, writer, room):  # type: ignore[no-untyped-def]
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(p.HEADER_SIZE)
            payload = await reader.readexactly(p.parse_header(header).length)
            for member in room:  # BUG: the set changes size while it is iterated
                if member.transport.get_write_buffer_size() > MAX_QUEUED:
                    room.discard(member)
                    member.close()
                else:
                    member.write(header + payload)
    except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
        pass
    finally:
        room.discard(writer)
        writer.close()


async def reads_with_read(reader, writer, room):  # type: ignore[no-untyped-def]
    room.add(writer)
    try:
        while True:
            header = await reader.read(p.HEADER_SIZE)  # BUG: at most 12 bytes, maybe fewer
            if not header:
                break
            payload = await reader.readexactly(p.parse_header(header).length)
            for member in list(room):
                member.write(header + payload)
    except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
        pass
    finally:
        room.discard(writer)
        writer.close()


async def per_member_queues(reader, writer, room):  # type: ignore[no-untyped-def]
    """Correct, written differently: drops by the transport's buffer, parses with a MessageDecoder-free loop,
    and writes header and payload separately (no await between them: nothing can interleave)."""
    room.add(writer)
    try:
        while True:
            header = p.parse_header(await reader.readexactly(p.HEADER_SIZE))
            payload = await reader.readexactly(header.length) if header.length else b""
            raw = p.HEADER.pack(*header)
            for member in tuple(room):
                if member.is_closing():
                    room.discard(member)
                elif member.transport.get_write_buffer_size() + len(raw) + len(payload) > MAX_QUEUED:
                    room.discard(member)
                    member.transport.abort()
                else:
                    member.write(raw)
                    member.write(payload)
    except (EOFError, OSError, ProtocolError):
        return
    finally:
        room.discard(writer)
        writer.close()


# From a reviewer's attempts to fool the checker.
async def fool_closes_backed_up_member(reader, writer, room):  # type: ignore[no-untyped-def]
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(p.HEADER_SIZE)
            payload = await reader.readexactly(p.parse_header(header).length)
            for member in list(room):
                if member.transport.get_write_buffer_size() > MAX_QUEUED:
                    room.discard(member)
                    member.close()  # BUG: keeps the member's buffer and socket until flushed, i.e. for ever
                else:
                    member.write(header + payload)
    except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
        pass
    finally:
        room.discard(writer)
        writer.close()


async def fool_protocol_error_escapes(reader, writer, room):  # type: ignore[no-untyped-def]
    # BUG: a bad header raises ProtocolError out of the coroutine: asyncio logs a traceback per bad client
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(p.HEADER_SIZE)
            payload = await reader.readexactly(p.parse_header(header).length)
            for member in list(room):
                if member.transport.get_write_buffer_size() > MAX_QUEUED:
                    room.discard(member)
                    member.close()
                else:
                    member.write(header + payload)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        room.discard(writer)
        writer.close()


async def fool_length_only_check(reader, writer, room):  # type: ignore[no-untyped-def]
    # BUG: checks only the length field (no magic, version or type check): garbage with a small
    # 'length' is forwarded to everyone
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(12)
            length = struct.unpack("!I", header[8:12])[0]
            if length > p.MAX_PAYLOAD:
                break
            payload = await reader.readexactly(length)
            for member in list(room):
                if member.transport.get_write_buffer_size() > MAX_QUEUED:
                    room.discard(member)
                    member.close()
                else:
                    member.write(header + payload)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        room.discard(writer)
        writer.close()


async def fool_limit_hardcoded_1mb(reader, writer, room):  # type: ignore[no-untyped-def]
    # BUG: its own limit, 4x MAX_QUEUED
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(p.HEADER_SIZE)
            payload = await reader.readexactly(p.parse_header(header).length)
            for member in list(room):
                if member.transport.get_write_buffer_size() > 900_000:
                    room.discard(member)
                    member.close()
                else:
                    member.write(header + payload)
    except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
        pass
    finally:
        room.discard(writer)
        writer.close()


async def fool_ok_decoder_style(reader, writer, room):  # type: ignore[no-untyped-def]
    # correct, different: read() what comes, a FrameDecoder cuts frames
    room.add(writer)
    dec = p.FrameDecoder()
    try:
        while data := await reader.read(65536):
            dec.feed(data)
            for frame in dec:
                raw = p.encode_frame(frame) if hasattr(p, "encode_frame") else None
                if raw is None:
                    raw = p.HEADER.pack(p.MAGIC, p.VERSION, int(frame.type), frame.flags, frame.stream_id,
                                        len(frame.payload)) + frame.payload
                for m in list(room):
                    if m.transport.get_write_buffer_size() > MAX_QUEUED:
                        room.discard(m)
                        m.transport.abort()
                    else:
                        m.write(raw)
    except Exception:
        pass
    finally:
        room.discard(writer)
        writer.close()


async def fool_waits_closed_on_drop(reader, writer, room):  # type: ignore[no-untyped-def]
    # BUG: awaits wait_closed() of a dropped member inside the broadcast loop: the transport of a member that
    # never reads only closes once its buffer is flushed, i.e. never, so the sender waits for ever
    room.add(writer)
    try:
        while True:
            header = await reader.readexactly(p.HEADER_SIZE)
            payload = await reader.readexactly(p.parse_header(header).length)
            for member in list(room):
                if member.transport.get_write_buffer_size() > MAX_QUEUED:
                    room.discard(member)
                    member.close()
                    await member.wait_closed()
                else:
                    member.write(header + payload)
    except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
        pass
    finally:
        room.discard(writer)
        writer.close()


@pytest.mark.slow
def test_checker_passes_a_correct_handler_written_differently() -> None:
    report = check_broadcast_handler(per_member_queues, show=False)
    assert report.all_passed, report.summary()


@pytest.mark.slow
def test_checker_passes_a_decoder_style_handler() -> None:
    report = check_broadcast_handler(fool_ok_decoder_style, show=False)
    assert report.all_passed, report.summary()


@pytest.mark.parametrize(
    "wrong, failing_case, hint",
    [
        (stub, "the sender hears its own line", "not written yet"),
        (forgets_to_join, "the sender hears its own line", "add its own writer to the room"),
        (forwards_raw_chunks, "two senders trickling at once", "interleaved"),
        (skips_the_sender, "the sender hears its own line", "own line"),
        (never_leaves_the_room, "leaves mid-frame", "IncompleteReadError"),
        (trusts_the_length, "garbage", "parse_header"),
        (blocking_recv_inside, "two senders trickling at once", "blocking"),
        (package_handler, "never reads", "grows without bound"),  # chatlab.fourways' server has no limit
        (awaits_every_drain, "never reads", "drain()"),
        (no_finally_no_connection_error, "reset (RST)", "ConnectionResetError"),
        (finally_but_reset_escapes, "reset (RST)", "catch ConnectionError"),
        (own_header_check, "more than the maximum payload", "parse_header checks it"),
        (sleeps_to_pace, "two clients hear each other", "time.sleep()"),
        pytest.param(drain_with_a_timeout, "never reads", "asyncio.wait_for()", marks=pytest.mark.slow),
        (drops_without_closing, "never reads", "never closed"),
        (drops_at_any_backlog, "briefly behind", "drop only past the limit"),
        (leaves_without_closing, "a client that leaves is taken", "never closed"),
        (drops_while_iterating, "never reads", "list(room)"),
        (reads_with_read, "trickled one byte at a time", "readexactly(n) waits for all n"),
        (fool_closes_backed_up_member, "never reads", "transport.abort()"),
        (fool_protocol_error_escapes, "garbage", "catch ProtocolError"),
        (fool_length_only_check, "garbage", "wrong magic byte"),
        (fool_limit_hardcoded_1mb, "never reads", "not a number of your own"),
        (fool_waits_closed_on_drop, "never reads", "wait_closed()"),
    ],
)
def test_checker_fails_classic_wrong_answers(wrong, failing_case: str, hint: str,
                                             capsys) -> None:  # type: ignore[no-untyped-def]
    report = check_broadcast_handler(wrong)
    out = capsys.readouterr().out
    assert not report
    failed = [r for r in report.results if not r.passed]
    assert any(failing_case in r.name for r in failed), out
    assert hint in " ".join(r.detail for r in failed if failing_case in r.name), out
    assert "FAIL" in out and "Traceback" not in out
