"""The sans-I/O protocol, tested by feeding bytes: whole, one at a time, in random splits."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatlab.core import protocol as p
from chatlab.errors import FrameTooLarge, LocalProtocolError, RemoteProtocolError

SAMPLES: list[p.Message] = [
    p.Hello("alice"), p.Welcome("alice", "lobby", "hi"), p.ErrorMessage("nick-taken", "in use"),
    p.Ping(7), p.Pong(7), p.Quit("bye"), p.Say("héllo 你好"), p.Say("waves", action=True),
    p.Whisper("bob", "psst"), p.Join("team1", "pw"), p.Leave(), p.Who(),
    p.Join("team2", stay=True), p.Leave("team2", "bye"), p.Who(room="team1", full=True), p.Say("hi", room="team1"),
    p.Nick("alicia"), p.Kick("team1", "bob", "spam"), p.Topic("team1", "plans", change=True), p.Topic("team1"),
    p.Mode("#team1", "+ov", ["bob", "carol"]), p.Mode("alice", "+i"), p.Invite("bob", "team1"), p.Away("lunch"),
    p.Oper("admin", "secret"), p.Wallops("restart at noon"),
    p.Notice("kick", "alice kicked bob", "alice", "team1", target="bob", detail="spam"),
    p.WhoReply({"a": "lobby"}, {"lobby": 1}, people={"a": {"user": "a", "rooms": {"lobby": "@"}}},
               channels={"lobby": {"members": {"a": "@"}, "topic": ""}}, history=[{"nick": "z", "at": 3}],
               stats={"users": 1}),
    p.ChatMessage("lobby", "alice", "hi"), p.PrivateMessage("alice", "bob", "x"),
    p.Notice("join", "alice joined", "alice", "lobby"),
    p.WhoReply({"alice": "lobby"}, {"lobby": 1}),
    p.FileOffer(3, "bob", "a.bin", 10, "00" * 32), p.FileAccept(3, 5), p.FileReject(3, "no"),
    p.FileChunk(3, 2**40, b"\x00\xff" * 100), p.FileAck(3, 12345), p.FileDone(3), p.FileCancel(3, "why"),
]  # fmt: skip


def decode_all(data: bytes, step: int | None = None) -> list[p.Message]:
    decoder = p.MessageDecoder()
    out: list[p.Message] = []
    pieces = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for piece in pieces:
        decoder.feed(piece)
        out.extend(decoder)
    assert decoder.frames.buffered == 0
    return out


def test_fields_added_later_are_left_out_at_their_default():
    # A frame that does not use them is byte for byte what a version-1 peer sent before.
    assert p.encode(p.Join("team1", "pw")).endswith(b'{"room":"team1","password":"pw"}')
    assert p.encode(p.WhoReply({"a": "lobby"}, {})).endswith(b'{"users":{"a":"lobby"},"rooms":{}}')
    assert p.encode(p.Leave()) == p.pack_header(p.FrameType.LEAVE, 0)


@pytest.mark.parametrize("payload", [b'{"target":"#x","modes":"+o","args":[1]}', b'{"target":"#x","args":"bob"}'])
def test_list_fields_are_checked_item_by_item(payload):
    with pytest.raises(RemoteProtocolError, match="args"):
        p.decode_message(p.Frame(p.FrameType.MODE, 0, 0, payload))


def test_every_message_type_has_a_sample():
    assert {type(m) for m in SAMPLES} == set(p.MESSAGE_TYPES.values())


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_whole_and_byte_by_byte(message):
    data = p.encode(message)
    assert decode_all(data) == [message]
    assert decode_all(data, step=1) == [message]


def test_header_layout_is_network_byte_order():
    data = p.encode(p.FileAck(0x01020304, 9))
    assert data[:12] == bytes([0xC4, 0x01, 0x34, 0x00, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x08])
    assert data[12:] == struct.pack("!Q", 9)


def test_nothing_comes_out_until_the_frame_is_complete():
    data = p.encode(p.Say("hello"))
    decoder = p.FrameDecoder()
    for byte in data[:-1]:
        decoder.feed(bytes([byte]))
        assert decoder.next_frame() is None
    decoder.feed(data[-1:])
    assert decoder.next_frame() is not None


def test_ten_frames_in_one_buffer_with_a_trailing_half():
    data = b"".join(p.encode(p.Say(f"m{i}")) for i in range(10))
    extra = p.encode(p.Say("late"))
    decoder = p.MessageDecoder()
    decoder.feed(data + extra[:5])
    assert [m.text for m in decoder] == [f"m{i}" for i in range(10)]
    decoder.feed(extra[5:])
    assert list(decoder) == [p.Say("late")]


def test_huge_length_is_refused_from_the_header_alone():
    decoder = p.FrameDecoder(max_payload=1024)
    decoder.feed(p.pack_header(p.FrameType.SAY, 2**32 - 1))  # claims 4 GiB, sends none of it
    with pytest.raises(FrameTooLarge) as info:
        decoder.next_frame()
    assert info.value.length == 2**32 - 1 and decoder.buffered == p.HEADER_SIZE  # only the header was kept
    with pytest.raises(FrameTooLarge):  # the decoder stays broken: the stream is out of sync
        decoder.feed(b"more")


def test_length_at_the_maximum_is_accepted():
    decoder = p.FrameDecoder(max_payload=100)
    decoder.feed(p.pack_header(p.FrameType.FILE_CHUNK, 100) + bytes(100))
    assert decoder.next_frame().payload == bytes(100)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"GET / HTTP/1.1\r\n\r\n", "bad magic byte 0x47"),
        (bytes([0xC4, 2, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0]), "unsupported protocol version 2"),
        (bytes([0xC4, 1, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0, 0]), "unknown frame type 0x7f"),
    ],
)
def test_malformed_headers_are_typed_errors(data, message):
    decoder = p.FrameDecoder()
    decoder.feed(data)
    with pytest.raises(RemoteProtocolError, match=message):
        decoder.next_frame()


@pytest.mark.parametrize(
    "frame_type, payload, message",
    [
        (p.FrameType.SAY, b"\xff\xfe", "not valid UTF-8"),
        (p.FrameType.SAY, b"{not json", "not valid JSON"),
        (p.FrameType.SAY, b"[1, 2]", "must be a JSON object"),
        (p.FrameType.SAY, b"{}", "missing its 'text' field"),
        (p.FrameType.SAY, b'{"text": 5}', "'text' must be str"),
        (p.FrameType.PING, b'{"token": true}', "'token' must be int"),
        (p.FrameType.FILE_ACK, b"\x00", "must be 8 bytes"),
        (p.FrameType.SAY, b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (p.FrameType.SAY, b'{"text": "\\ud800"}', "lone surrogate"),
        (p.FrameType.FILE_CHUNK, b"\x00\x01", "shorter than its offset"),
    ],
)
def test_malformed_payloads_are_typed_errors(frame_type, payload, message):
    with pytest.raises(RemoteProtocolError, match=message):
        p.decode_message(p.Frame(frame_type, 0, 0, payload))


def test_local_errors_for_values_that_do_not_fit():
    with pytest.raises(LocalProtocolError):
        p.pack_header(p.FrameType.SAY, 2**32)
    with pytest.raises(LocalProtocolError):
        p.encode(p.FileDone(2**32))


def test_describe_is_one_readable_line():
    frame = p.FrameDecoder()
    frame.feed(p.encode(p.FileChunk(5, 0, b"abc")))
    assert p.describe(frame.next_frame()) == "FILE_CHUNK sid=5 len=11 3 bytes of file data"


texts = st.text(max_size=50)
messages = st.one_of(
    st.builds(p.Say, texts, st.booleans()),
    st.builds(p.Whisper, texts, texts),
    st.builds(p.FileChunk, st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), st.binary(max_size=300)),
    st.builds(p.FileAck, st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)),
    st.builds(p.Notice, texts, texts, texts, texts),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(messages, max_size=10), st.lists(st.integers(1, 40), min_size=1, max_size=20))
def test_any_split_of_any_stream_decodes_to_the_same_messages(batch, cuts):
    data = b"".join(p.encode(m) for m in batch)
    decoder = p.MessageDecoder()
    out: list[p.Message] = []
    position, i = 0, 0
    while position < len(data):
        size = cuts[i % len(cuts)]
        decoder.feed(data[position : position + size])
        out.extend(decoder)
        position, i = position + size, i + 1
    assert out == batch


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_raises_only_protocol_errors(data):
    decoder = p.FrameDecoder(max_payload=1000)
    try:
        decoder.feed(data)
        for frame in decoder:
            p.decode_message(frame)
    except RemoteProtocolError:
        pass
