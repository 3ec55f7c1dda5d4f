"""The file relay without a socket: offers, the accept gate, renumbering, the end of transfers,
the backpressure decision, and files refused to text clients."""

from __future__ import annotations

import pytest
from test_chatroom import Harness, frame

from chatlab.core import protocol as p
from chatlab.core.relay import FileRelay, Forward, Send
from chatlab.errors import RemoteProtocolError

SHA = "0" * 64


def offer(sid: int = 7, to: str = "bob", size: int = 100) -> p.Frame:
    return frame(p.FileOffer(sid, to, "notes.txt", size, SHA))


def chunk(sid: int, offset: int = 0, data: bytes = b"x" * 10) -> p.Frame:
    return frame(p.FileChunk(sid, offset, data))


def test_an_offer_reaches_the_receiver_under_a_stream_id_of_its_own():
    h = Harness()
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, offer(7))
    (incoming,) = h.take(bob)
    assert incoming == p.FileOffer(p.INCOMING_STREAM_BIT | 1, "alice", "notes.txt", 100, SHA)
    h.feed(alice, offer(8))
    assert h.take(bob)[0].stream_id == p.INCOMING_STREAM_BIT | 2  # renumbered per receiver


def test_the_whole_life_of_a_transfer_renumbered_both_ways():
    h = Harness()
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, offer(7))
    theirs = h.take(bob)[0].stream_id
    h.feed(bob, frame(p.FileAccept(theirs)))
    assert [(f.type, f.stream_id) for f in h.take(alice)] == [(p.FrameType.FILE_ACCEPT, 7)]
    outputs = h.feed(alice, chunk(7, 0, b"hello"))
    assert outputs == [Forward(bob, p.FrameType.FILE_CHUNK, theirs, 0, p.CHUNK_PREFIX.pack(0) + b"hello", True)]
    h.feed(bob, frame(p.FileAck(theirs, 5)))
    h.feed(alice, frame(p.FileDone(7)))
    h.feed(bob, frame(p.FileDone(theirs)))  # the receiver's DONE ends it
    assert h.room.relay.count(alice) == (0, 0) == h.room.relay.count(bob)
    assert [f.type for f in h.take(alice)] == [p.FrameType.FILE_ACK, p.FrameType.FILE_DONE]


def test_no_chunk_passes_the_gate_before_the_receiver_accepts():
    h = Harness()
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, offer(7))
    h.take(bob)
    h.feed(alice, chunk(7))
    assert [m.code for m in h.take(alice) if isinstance(m, p.ErrorMessage)] == ["protocol-error"]
    got = h.take(bob)
    assert alice in h.closed and not [m for m in got if isinstance(m, p.Frame)]
    assert [m.stream_id for m in got if isinstance(m, p.FileCancel)] == [p.INCOMING_STREAM_BIT | 1]  # told why it ended


def test_nobody_can_touch_a_transfer_that_is_not_theirs():
    h = Harness()
    alice, bob, mallory = h.join("alice"), h.join("bob"), h.join("mallory")
    h.feed(alice, offer(7))
    theirs = h.take(bob)[0].stream_id
    h.feed(mallory, frame(p.FileAccept(theirs)))  # bob's id, but not in mallory's table
    h.feed(mallory, frame(p.FileCancel(7)))  # alice's id, likewise
    assert [m.code for m in h.take(mallory)] == ["no-such-transfer", "no-such-transfer"]
    assert h.room.relay.count(alice) == (1, 0) and h.take(alice) == []


def test_offers_to_nobody_to_yourself_and_past_the_limit_are_rejected_with_a_reason():
    h = Harness(max_transfers=2)
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, offer(1, to="nobody"))
    h.feed(alice, offer(2, to="ALICE"))
    for sid in (3, 4, 5):
        h.feed(alice, offer(sid))
    reasons = [m.reason for m in h.take(alice)]
    assert reasons == ["nobody else called 'nobody' is online", "nobody else called 'ALICE' is online",
                       "you have 2 transfers going already; try again when one has ended"]
    assert len(h.take(bob)) == 2


def test_a_file_offer_to_a_text_client_is_refused_to_the_sender():
    h = Harness()
    alice = h.join("alice")
    h.join("bob", accepts_files=False, nick_retries=True)
    h.feed(alice, offer(7))
    (reject,) = h.take(alice)
    assert reject == p.FileReject(7, "bob uses a text (IRC) client, which cannot receive files")
    assert h.room.relay.count(alice) == (0, 0)


def test_a_stream_id_must_be_new_and_in_range():
    h = Harness()
    alice, _bob = h.join("alice"), h.join("bob")
    h.feed(alice, offer(7))
    h.feed(alice, offer(7))
    assert alice in h.closed


def test_a_disconnect_cancels_every_transfer_towards_the_other_side():
    h = Harness()
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, offer(7))
    theirs = h.take(bob)[0].stream_id
    h.feed(bob, p.Quit("gone"))
    (cancel,) = h.take(alice, p.FileCancel)
    assert cancel == p.FileCancel(7, "bob disconnected: gone")
    assert h.room.relay.count(alice) == (0, 0)
    assert theirs


def test_stray_chunks_and_acks_after_a_cancel_are_dropped_quietly():
    h = Harness()
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, chunk(9))
    h.feed(bob, frame(p.FileAck(p.INCOMING_STREAM_BIT | 9, 1)))
    assert h.take(alice) == [] and h.take(bob) == [] and not h.closed


def test_frames_on_the_wrong_side_of_a_stream_are_protocol_errors():
    relay = FileRelay()
    h = Harness()
    alice = h.join("alice")
    with pytest.raises(RemoteProtocolError):
        relay.route(alice, chunk(p.INCOMING_STREAM_BIT | 1))  # chunks on a stream you receive
    with pytest.raises(RemoteProtocolError):
        relay.route(alice, frame(p.FileAccept(3)))  # accepting a stream you send


def test_the_backpressure_decision():
    relay = FileRelay(high_water=1000)
    assert not relay.should_pause(1000) and relay.should_pause(1001)
    assert relay.may_resume(500) and not relay.may_resume(501)  # hysteresis: half the mark


def test_outputs_are_plain_values():
    h = Harness()
    alice = h.join("alice")
    outputs = h.feed(alice, offer(7, to="nobody"))
    assert outputs == [Send(alice, p.FileReject(7, "nobody else called 'nobody' is online"))]


def test_a_disconnect_without_a_reason_says_so_without_an_empty_reason():
    h = Harness()
    alice, bob = h.join("alice"), h.join("bob")
    h.feed(alice, offer(7))
    h.take(bob)
    h.feed(bob, p.Quit(""))
    (cancel,) = h.take(alice, p.FileCancel)
    assert cancel.reason == "bob disconnected"
