"""Hostile bytes: the decoder and the live server against garbage, fuzzed and from a corpus.

What must hold, whatever a client sends: the server never crashes, answers with a
clear error (and a disconnect where the stream can no longer be trusted), never
buffers more than the frame cap for one client, and everybody else's chat goes on.

* ``tests/corpus/*.hex``: the nastiest inputs found so far, replayed against a live
  server with the outcome each one must have (see ``tests/corpus/README.md``).
* hypothesis fuzzes the sans-I/O decoder (memory bound, typed errors only) and the
  server over real sockets (any stream: the server stays up and speaks only valid frames).
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import time
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_irc import irc_lines_until_closed, is_text_entry, replay_text_entry  # the corpus's IRC text entries

import chatlab
from chatlab.core import codecs
from chatlab.core import protocol as p
from chatlab.errors import RemoteProtocolError
from conftest import RawPeer

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
SERVER_FRAMES = {p.FrameType.WELCOME, p.FrameType.ERROR, p.FrameType.CHAT, p.FrameType.PRIVATE, p.FrameType.NOTICE,
                 p.FrameType.WHO_REPLY, p.FrameType.PING, p.FrameType.PONG} | set(p.TRANSFER_TYPES)


# --------------------------------------------------------------- the corpus


class Entry(NamedTuple):
    name: str
    doc: str
    after: str  # "start": bytes from the first byte; "hello": after a good HELLO as mallory
    outcome: str  # kicked | error | ok | waiting | closed (hung up without a word)
    code: str  # the ERROR code expected (kicked, error)
    data: bytes


def parse_corpus_file(path: Path) -> Entry:
    """Hex tokens, ``HEX*N`` for N repetitions, ``#`` comments; ``# after:`` and ``# expect:`` headers."""
    doc, data, meta = [], bytearray(), {}
    for line in path.read_text(encoding="utf-8").splitlines():
        text, _, comment = line.partition("#")
        if (m := re.match(r"\s*(after|expect):\s*(.*)", comment)) and not text.strip():
            meta[m.group(1)] = m.group(2).strip()
        elif comment.strip() and not text.strip():
            doc.append(comment.strip())
        for token in text.split():
            unit, _, count = token.partition("*")
            data += bytes.fromhex(unit) * (int(count) if count else 1)
    outcome, _, code = meta["expect"].partition(" ")
    assert outcome in ("kicked", "error", "ok", "waiting", "closed"), f"{path.name}: unknown outcome {outcome!r}"
    return Entry(path.stem, " ".join(doc), meta.get("after", "hello"), outcome, code, bytes(data))


ENTRIES = [parse_corpus_file(path) for path in sorted(CORPUS.glob("*.hex"))]


def test_the_corpus_is_there():
    assert len(ENTRIES) >= 40
    assert all(entry.data for entry in ENTRIES)


def read_until_closed(sock: socket.socket, decoder: p.MessageDecoder,
                      timeout: float = 5.0) -> tuple[list[p.Message], bool]:
    """Every message until the server closes (True) or ``timeout`` passes (False)."""
    out: list[p.Message] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            return out, True
        if not data:
            return out, True
        decoder.feed(data)
        out.extend(decoder)
    return out, False


def read_until_pong(sock: socket.socket, decoder: p.MessageDecoder, token: int,
                    timeout: float = 5.0) -> list[p.Message]:
    out: list[p.Message] = []
    deadline = time.monotonic() + timeout
    while not any(isinstance(m, p.Pong) and m.token == token for m in out):
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(65536)
        assert data, f"the server closed the connection; it said {out}"
        decoder.feed(data)
        out.extend(decoder)
    return out


def replay_frame_entry(server: chatlab.Server, entry: Entry) -> None:
    """Send a binary entry's bytes and check the answer it must get (corpus/README.md)."""
    peer = RawPeer(server.address, "mallory" if entry.after == "hello" else None)
    try:
        peer.sock.sendall(entry.data)
        if entry.outcome == "kicked":
            replies, closed = read_until_closed(peer.sock, peer.decoder)
            assert closed, f"{entry.name}: still connected after {replies}"
            codes = [m.code for m in replies if isinstance(m, p.ErrorMessage)]
            assert codes and codes[-1] == entry.code, f"{entry.name}: {replies}"
        elif entry.outcome in ("error", "ok"):  # still connected: a PING after it is answered
            peer.sock.sendall(p.encode(p.Ping(424242)))
            replies = read_until_pong(peer.sock, peer.decoder, 424242)
            codes = [m.code for m in replies if isinstance(m, p.ErrorMessage)]
            assert codes == ([entry.code] if entry.outcome == "error" else []), f"{entry.name}: {replies}"
        else:  # waiting: the stream stops mid-frame; the server neither answers nor hangs up
            replies, closed = read_until_closed(peer.sock, peer.decoder, timeout=0.3)
            assert not closed and not [m for m in replies if isinstance(m, p.ErrorMessage)], f"{entry.name}: {replies}"
    finally:
        peer.close()


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_corpus_entry_gets_its_answer_and_the_others_chat_on(server, connect, entry):
    alice, bob = connect("alice"), connect("bob")
    if is_text_entry(entry):  # IRC text: the answer is lines, not frames (test_irc.py reads them)
        replay_text_entry(server, entry)
    else:
        replay_frame_entry(server, entry)
    assert server.running, "the server's loop died"
    alice.say(f"after {entry.name}")
    assert bob.wait_for(chatlab.ChatMessage, predicate=lambda m: m.text == f"after {entry.name}").sender == "alice"
    if entry.name == "say-with-a-forged-sender":
        forged = bob.wait_for(chatlab.ChatMessage, predicate=lambda m: m.text == "I am alice", timeout=0.1)
        assert (forged.sender, forged.room) == ("mallory", "lobby")


def test_the_decoder_never_holds_more_than_one_frame_of_any_corpus_entry():
    cap = p.MAX_PAYLOAD
    for entry in ENTRIES:
        decoder = p.FrameDecoder(cap)
        for i in range(0, len(entry.data), 4096):
            try:
                decoder.feed(entry.data[i : i + 4096])
                for _ in decoder:
                    pass
            except RemoteProtocolError:
                break
            assert decoder.buffered < p.HEADER_SIZE + cap, entry.name


# ---------------------------------------------- memory: the frame cap holds


def connection_buffers(server: chatlab.Server) -> list[int]:
    return server.buffered_bytes


def test_a_frame_at_the_cap_is_buffered_up_to_the_cap_and_no_further():
    cap = 64 * 1024
    with chatlab.Server(port=0, flood_limit=None, max_payload=cap) as srv, \
         chatlab.Client.connect(srv.address, nick="alice") as alice:  # fmt: skip
        peer = RawPeer(srv.address, "mallory")
        try:
            peer.sock.sendall(p.pack_header(p.FrameType.SAY, cap) + b'{"text":"'
                              + b"x" * (cap - 100))  # all but 89 bytes
            deadline = time.monotonic() + 5
            while max(connection_buffers(srv)) < cap - 100:
                assert time.monotonic() < deadline, "the server never read the partial frame"
                time.sleep(0.01)
            assert max(connection_buffers(srv)) <= cap + p.HEADER_SIZE
            alice.say("not blocked by mallory's half frame")
            assert alice.wait_for(chatlab.ChatMessage).sender == "alice"
            peer.sock.sendall(b"x" * 89 + b'"}')  # completes it: too long for a chat line, but not a protocol error
            assert peer.expect(p.ErrorMessage).code == "message-too-long"
            assert max(connection_buffers(srv)) == 0
        finally:
            peer.close()


@pytest.mark.parametrize("claimed", [64 * 1024 + 1, 2**31, 2**32 - 1], ids=["cap+1", "2GiB", "4GiB"])
def test_a_frame_past_the_cap_is_refused_from_its_header_before_its_payload(claimed):
    cap = 64 * 1024
    with chatlab.Server(port=0, flood_limit=None, max_payload=cap) as srv:
        peer = RawPeer(srv.address, "mallory")
        try:
            peer.sock.sendall(p.pack_header(p.FrameType.SAY, claimed))
            replies, closed = read_until_closed(peer.sock, peer.decoder)
            assert closed and [m.code for m in replies if isinstance(m, p.ErrorMessage)] == ["protocol-error"]
            assert f"{claimed} bytes exceeds the limit of {cap}" in replies[-1].text
            assert srv.peak_queued < 1024  # nothing big was queued either
        finally:
            peer.close()


# ------------------------------------------------- fuzzing the decoder

CLIENT_MESSAGES = [p.Hello, p.Say, p.Whisper, p.Join, p.Leave, p.Who, p.Ping, p.Pong, p.Quit,
                   p.FileOffer, p.FileAccept, p.FileReject, p.FileDone, p.FileCancel]
FIELD_NAMES = sorted({f.name for cls in p.MESSAGE_TYPES.values() for f in dataclasses.fields(cls)} - {"stream_id"})
any_text = st.text(alphabet=st.characters() | st.characters(categories=["Cs"]), max_size=12)  # lone surrogates often
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=6,
)
json_payloads = st.dictionaries(st.sampled_from(FIELD_NAMES) | any_text, json_values, max_size=5).map(
    lambda body: json.dumps(body).encode())  # ensure_ascii: surrogates travel as \\udxxx escapes
frame_types = st.sampled_from([int(t) for t in p.FrameType]) | st.integers(0, 255)
stream_ids = st.sampled_from([0, 1, 2, 0x8000_0001, 0x8000_0002]) | st.integers(0, 2**32 - 1)
payloads = json_payloads | st.binary(max_size=40)


def raw_frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
    return p.HEADER.pack(p.MAGIC, p.VERSION, kind, flags, sid, len(payload)) + payload


frames = st.builds(raw_frame, frame_types, st.integers(0, 255), stream_ids, payloads)
headers_at_the_edge = st.builds(lambda kind, n: p.HEADER.pack(p.MAGIC, p.VERSION, kind, 0, 0, n), frame_types,
                                st.sampled_from([p.MAX_PAYLOAD, p.MAX_PAYLOAD + 1, 2**32 - 1]))
garbage = st.binary(min_size=1, max_size=24)
streams = st.lists(frames | frames | frames | headers_at_the_edge | garbage, max_size=8).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(streams, st.lists(st.integers(1, 64), min_size=1, max_size=8))
def test_fuzz_the_decoder_holds_at_most_one_frame_and_fails_only_with_protocol_errors(data, cuts):
    cap = 1024
    decoder = p.FrameDecoder(cap)
    position, i = 0, 0
    try:
        while position < len(data):
            decoder.feed(data[position : position + cuts[i % len(cuts)]])
            position, i = position + cuts[i % len(cuts)], i + 1
            for frame in decoder:
                try:
                    p.decode_message(frame)
                except RemoteProtocolError:
                    pass
            assert decoder.buffered < p.HEADER_SIZE + cap  # what is left is less than one whole frame
    except RemoteProtocolError:
        pass  # the header was bad: the decoder stays broken, by design


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(p.MESSAGE_TYPES)), json_payloads)
def test_fuzz_decode_message_returns_the_declared_types_or_a_protocol_error(kind, payload):
    try:
        message = p.decode_message(p.Frame(kind, 0, 1, payload))
    except RemoteProtocolError:
        return
    assert isinstance(message, p.MESSAGE_TYPES[kind])
    for f in dataclasses.fields(message):
        value = getattr(message, f.name)
        expected = {"str": str, "int": int, "bool": bool, "bytes": bytes}.get(str(f.type).split("[")[0], dict)
        expected = list if str(f.type).startswith("list") else expected
        assert isinstance(value, expected) and (expected is bool or not isinstance(value, bool)), (f.name, value)


# The two payloads that once ended the server's loop are refused where they are decoded:


def test_decode_message_turns_deep_json_into_a_protocol_error():
    with pytest.raises(RemoteProtocolError, match="nested too deeply"):
        p.decode_message(p.Frame(p.FrameType.SAY, 0, 0, b'{"text":' + b"[" * 100_000 + b"]" * 100_000 + b"}"))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([cls.TYPE for cls in CLIENT_MESSAGES]), json_payloads)
def test_fuzz_every_request_the_decoder_accepts_can_be_encoded_again(kind, payload):
    try:
        message = p.decode_message(p.Frame(kind, 0, 1, payload))
    except RemoteProtocolError:
        return
    p.encode(message)  # no lone surrogate got through: what the server relays, it can write


# --------------------------------------------- fuzzing the live server


def connections_settle(server: chatlab.Server, count: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while server.connection_count != count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


hostile_text = any_text | st.sampled_from(["alice", "bob", "ALICE", "ａｌｉｃｅ", "lobby", "team", "mallory", "", " ",
                                           "x" * 2001, "\ud800", "a\udfffb", "\u202e", "\x00", "class\n"])
hostile_int = st.integers(-(2**70), 2**70) | st.sampled_from([0, 1, -1, 2**31, 2**32, 2**63, 2**64])
FIELD_VALUES = {"str": hostile_text, "int": hostile_int, "bool": st.booleans(),
                "dict[str, str]": st.dictionaries(hostile_text, hostile_text, max_size=2),
                "dict[str, int]": st.dictionaries(hostile_text, hostile_int, max_size=2)}


@st.composite
def typed_frames(draw: st.DrawFn) -> bytes:
    """A client message with its real fields, each given a hostile value of its type (now and then another type)."""
    cls = draw(st.sampled_from(CLIENT_MESSAGES))
    body = {}
    for f in dataclasses.fields(cls):
        if f.name != "stream_id" and draw(st.integers(0, 9)):  # a field is missing one time in ten
            body[f.name] = draw(FIELD_VALUES[str(f.type)] if draw(st.integers(0, 9)) else json_values)
    return raw_frame(int(cls.TYPE), 0, draw(stream_ids), json.dumps(body).encode())


binary_frames = st.builds(p.encode_chunk, stream_ids, hostile_int.filter(lambda n: 0 <= n < 2**64),
                          st.binary(max_size=16)) | \
    st.builds(lambda sid, n: raw_frame(int(p.FrameType.FILE_ACK), 0, sid, p.ACK_BODY.pack(n)),
              stream_ids, st.integers(0, 2**64 - 1))
hello_first = st.sampled_from([b"", p.encode(p.Hello("mallory")), p.encode(p.Hello("mallory")),
                               p.encode(p.Hello("mallory"))])
valid_requests = st.sampled_from([
    p.Say("hi"), p.Whisper("alice", "psst"), p.Join("team"), p.Leave(), p.Who(), p.Ping(3), p.Pong(1), p.Hello("again"),
    p.FileOffer(1, "alice", "f.bin", 10, "ab" * 32), p.FileAccept(0x8000_0001, 0), p.FileDone(1), p.FileCancel(1, "x"),
]).map(p.encode)
server_streams = st.tuples(hello_first, st.lists(
    typed_frames() | typed_frames() | typed_frames() | binary_frames | frames | valid_requests
    | headers_at_the_edge | garbage,
    max_size=8))


def test_fuzz_the_server_stays_up_speaks_only_valid_frames_and_the_others_chat_on():
    with chatlab.Server(port=0, flood_limit=None) as srv, \
         chatlab.Client.connect(srv.address, nick="alice") as alice, \
         chatlab.Client.connect(srv.address, nick="bob") as bob:  # fmt: skip
        count = iter(range(10**9))

        @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
        @given(server_streams)
        def check(stream: tuple[bytes, list[bytes]]) -> None:
            sock = socket.create_connection(srv.address, timeout=5)
            decoder = p.MessageDecoder()
            try:
                try:
                    sock.sendall(stream[0] + b"".join(stream[1]))
                    sock.shutdown(socket.SHUT_WR)  # the server reads everything, then the end
                except OSError:
                    pass  # it hung up on us first: fine
                data = stream[0] + b"".join(stream[1])
                if data[1:] and not isinstance(codecs.sniff(data[: codecs.SNIFF_BYTES]), codecs.BinaryCodec):
                    closed = irc_lines_until_closed(sock)  # the server chose IRC text: it answers in whole lines
                else:
                    replies, closed = read_until_closed(sock, decoder)  # raises if the server sent a bad frame
                    assert all(type(m).TYPE in SERVER_FRAMES for m in replies), replies
                assert closed, "the server kept a connection open after its client's end"
            finally:
                sock.close()
            assert srv.running, "the server's loop died"
            assert connections_settle(srv, 2), "the fuzzing connection was never cleaned up"
            n = next(count)
            alice.say(f"line {n}")
            assert bob.wait_for(chatlab.ChatMessage, predicate=lambda m: m.text == f"line {n}").sender == "alice"
            bob.drain()
            alice.drain()

        check()
        assert srv.nicks == ["alice", "bob"]


def test_the_server_survives_what_used_to_kill_it_with_a_reason_for_the_sender(server, connect):
    """The two frames that ended the loop before the fix, side by side with a bystander."""
    bystander = connect("bystander")
    for name in ("say-deep-json", "say-lone-surrogate"):
        entry = next(e for e in ENTRIES if e.name == name)
        peer = RawPeer(server.address, "mallory")
        try:
            peer.sock.sendall(entry.data)
            replies, closed = read_until_closed(peer.sock, peer.decoder)
        finally:
            peer.close()
        error = [m for m in replies if isinstance(m, p.ErrorMessage)][-1]
        assert closed and error.code == "protocol-error" and error.text.startswith("SAY ")
        bystander.say(f"after {name}")
        assert bystander.wait_for(chatlab.ChatMessage, predicate=lambda m: m.text == f"after {name}")


# ------------------------------------- the same corpus through the core, no socket


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_corpus_entry_gets_its_answer_from_the_sans_io_core(entry):
    """The core alone (codec -> ChatRoom -> relay) gives every entry the answer the live server gives."""
    from test_chatroom import Harness

    harness = Harness(flood_limit=None)
    alice, bob = harness.join("alice"), harness.join("bob")
    mallory = harness.connect()
    data = (p.encode(p.Hello("mallory")) if entry.after == "hello" else b"") + entry.data
    codec = codecs.sniff(data[: codecs.SNIFF_BYTES])
    if not isinstance(codec, codecs.BinaryCodec):  # text answers in its own framing, not in ErrorMessages
        pytest.skip("a text (non-chatlab) stream: the live replay above checks its answer")
    harness.feed_bytes(mallory, codec, data)
    codes = [m.code for m in harness.take(mallory) if isinstance(m, p.ErrorMessage)]
    if entry.outcome == "kicked":
        assert mallory in harness.closed and codes[-1:] == [entry.code], (entry.name, codes)
    else:
        assert mallory not in harness.closed, (entry.name, harness.closed.get(mallory))
        assert codes == ([entry.code] if entry.outcome == "error" else []), (entry.name, codes)
    assert alice not in harness.closed and bob not in harness.closed
    harness.feed(alice, p.Say("still here"))
    assert p.ChatMessage("lobby", "alice", "still here") in harness.take(bob)
