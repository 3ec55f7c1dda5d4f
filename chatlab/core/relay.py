"""The file relay, sans-I/O: which transfer frames go where, and when to slow a sender down.

Files travel through the server, which forwards and never stores.  Each side
knows a transfer by its *own* stream id (the sender picked it; the receiver's
has :data:`~chatlab.core.protocol.INCOMING_STREAM_BIT` set and was picked by the
server), and the relay keeps the table that maps one to the other.  That table
is also the whole access control: a stream id that is not in *your* table is
simply unknown, so nobody can touch a transfer that is not theirs.

The life of one transfer, as the relay sees it::

    sender --FILE_OFFER(sid 7)-->  relay  --FILE_OFFER(sid 0x80000001)--> receiver
           <--FILE_ACCEPT(7)---    (gate)  <--FILE_ACCEPT(0x80000001)----
           --FILE_CHUNK(7)----->  (route) --FILE_CHUNK(0x80000001)------>  x many
           <--FILE_ACK(7)-------          <--FILE_ACK(0x80000001)--------
           --FILE_DONE(7)------>          --FILE_DONE(0x80000001)------>
           <--FILE_DONE(7)------   (end)  <--FILE_DONE(0x80000001)-------

Nothing here touches a socket: :meth:`FileRelay.route` returns :class:`Forward`
and :class:`Send` outputs, and :meth:`FileRelay.should_pause` answers the
backpressure question ("is the receiver's queue so full that we should stop
reading the sender?") for the server to apply.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from . import protocol as p
from ..errors import RemoteProtocolError

MAX_TRANSFERS = 32  # transfers offered or going at once, per sender and per receiver: the tables stay bounded
RELAY_HIGH_WATER = 1024 * 1024  # stop reading a file sender while its receiver has more than this queued


class Peer(Protocol):
    """What the relay needs to know about a connection (a chat session provides it)."""

    nick: str | None
    accepts_files: bool


class Send(NamedTuple):
    """Output: send ``message`` to ``to`` (through its codec)."""

    to: Any  # the session; Any so that the I/O layer's own session class fits
    message: p.Message


class Forward(NamedTuple):
    """Output: forward a transfer frame's payload, untouched, to ``to`` under ``stream_id``.

    ``chunk`` marks file data: after queueing it, the server asks
    :meth:`FileRelay.should_pause` about ``to``'s queue (backpressure).
    """

    to: Any
    kind: p.FrameType
    stream_id: int
    flags: int
    payload: bytes
    chunk: bool


@dataclass(eq=False)
class RelayedTransfer:
    """One file on its way through the server."""

    sender: Peer
    sender_sid: int
    receiver: Peer
    receiver_sid: int
    accepted: bool = False  # the gate: no FILE_CHUNK passes before the receiver's FILE_ACCEPT

    def other_side(self, peer: Peer) -> tuple[Peer, int]:
        """The peer at the other end, and the stream id it knows this transfer by."""
        return (self.receiver, self.receiver_sid) if peer is self.sender else (self.sender, self.sender_sid)


# Which frames each side may send: a sender chunks, a receiver accepts and acks.
SENDER_KINDS = frozenset({p.FrameType.FILE_CHUNK, p.FrameType.FILE_DONE, p.FrameType.FILE_CANCEL})
ENDS_TRANSFER = frozenset({p.FrameType.FILE_REJECT, p.FrameType.FILE_CANCEL})
QUIET_STRAYS = frozenset({p.FrameType.FILE_CHUNK, p.FrameType.FILE_ACK})  # in flight after a cancel: normal


class FileRelay:
    """The relay table: offers, the accept gate, routing with renumbering, the end of transfers."""

    def __init__(self, high_water: int = RELAY_HIGH_WATER, max_transfers: int = MAX_TRANSFERS) -> None:
        self.high_water = high_water
        self.max_transfers = max_transfers
        self.sending: dict[Peer, dict[int, RelayedTransfer]] = {}  # by the sender's stream id
        self.receiving: dict[Peer, dict[int, RelayedTransfer]] = {}  # by the receiver's stream id
        self._next_sid: dict[Peer, itertools.count[int]] = {}

    # ------------------------------------------------------------------ rules

    def offer(self, sender: Peer, offer: p.FileOffer, target: Peer | None) -> list[Send | Forward]:
        """``sender`` offers a file to ``target`` (``None``: nobody by that name is online)."""
        sending = self.sending.setdefault(sender, {})
        if not 0 < offer.stream_id < p.INCOMING_STREAM_BIT or offer.stream_id in sending:
            raise RemoteProtocolError(f"FILE_OFFER needs a new stream id from 1 to 2**31-1 (got {offer.stream_id})")
        reason = self._refusal(sender, offer, target)
        if reason is not None:
            return [Send(sender, p.FileReject(offer.stream_id, reason))]
        assert target is not None
        counter = self._next_sid.setdefault(target, itertools.count(1))
        transfer = RelayedTransfer(sender, offer.stream_id, target, p.INCOMING_STREAM_BIT | next(counter))
        sending[transfer.sender_sid] = transfer
        self.receiving.setdefault(target, {})[transfer.receiver_sid] = transfer
        # The token (a direct connection offered) goes along: the receiver needs it to recognise the sender.
        return [Send(target, p.FileOffer(transfer.receiver_sid, sender.nick or "", offer.name, offer.size, offer.sha256,
                                         offer.token))]

    def _refusal(self, sender: Peer, offer: p.FileOffer, target: Peer | None) -> str | None:
        if target is None or target is sender:
            return f"nobody else called {offer.peer!r} is online"
        if not target.accepts_files:
            return f"{target.nick} uses a text (IRC) client, which cannot receive files"
        if len(self.sending.get(sender, ())) >= self.max_transfers:
            return f"you have {self.max_transfers} transfers going already; try again when one has ended"
        if len(self.receiving.get(target, ())) >= self.max_transfers:
            return f"{target.nick} has {self.max_transfers} transfers going already; try again when one has ended"
        return None

    def route(self, peer: Peer, frame: p.Frame) -> list[Send | Forward]:
        """Where a transfer frame from ``peer`` goes (FILE_OFFER goes to :meth:`offer`).

        Raises:
            RemoteProtocolError: a frame no well-behaved client sends (a chunk before
                the receiver accepted, a chunk on a stream you receive...).
        """
        kind, sid = frame.type, frame.stream_id
        if sid & p.INCOMING_STREAM_BIT:  # the receiver speaks: accept, reject, ack, done, cancel
            if kind is p.FrameType.FILE_CHUNK:
                raise RemoteProtocolError(f"FILE_CHUNK on stream {sid:#x}, which you receive")
            transfer = self.receiving.get(peer, {}).get(sid)
        else:  # the sender speaks: chunk, done, cancel
            if kind not in SENDER_KINDS:
                raise RemoteProtocolError(f"{kind.name} on stream {sid}, which you send")
            transfer = self.sending.get(peer, {}).get(sid)
        if transfer is None:
            if kind in QUIET_STRAYS:
                return []
            return [Send(peer, p.ErrorMessage("no-such-transfer", f"you have no transfer with stream id {sid:#x}"))]
        if transfer.sender is peer:
            if kind is p.FrameType.FILE_CHUNK and not transfer.accepted:
                raise RemoteProtocolError(f"FILE_CHUNK for stream {sid} before the receiver accepted it")
        elif kind is p.FrameType.FILE_ACCEPT:
            transfer.accepted = True
        # Check it, so a malformed frame costs its sender and not the peer's connection.
        if kind is p.FrameType.FILE_CHUNK:
            if len(frame.payload) < p.CHUNK_PREFIX.size:
                raise RemoteProtocolError(f"FILE_CHUNK payload of {len(frame.payload)} bytes is shorter than its offset")
        else:
            p.decode_message(frame)  # a few bytes of control
        other, other_sid = transfer.other_side(peer)
        if kind in ENDS_TRANSFER or (kind is p.FrameType.FILE_DONE and peer is transfer.receiver):
            self.end(transfer)
        return [Forward(other, kind, other_sid, frame.flags, frame.payload, kind is p.FrameType.FILE_CHUNK)]

    def end(self, transfer: RelayedTransfer) -> None:
        self.sending.get(transfer.sender, {}).pop(transfer.sender_sid, None)
        self.receiving.get(transfer.receiver, {}).pop(transfer.receiver_sid, None)

    def drop(self, peer: Peer, reason: str) -> list[Send | Forward]:
        """``peer`` is gone: cancel each of its transfers towards the other side."""
        transfers = list(self.sending.pop(peer, {}).values()) + list(self.receiving.pop(peer, {}).values())
        self._next_sid.pop(peer, None)
        outputs: list[Send | Forward] = []
        for transfer in transfers:
            self.end(transfer)
            other, other_sid = transfer.other_side(peer)
            outputs.append(Send(other, p.FileCancel(other_sid, f"{peer.nick} disconnected" + (f": {reason}" if reason else ""))))
        return outputs

    # ------------------------------------------------------- backpressure

    def should_pause(self, receiver_queued: int) -> bool:
        """After a chunk: stop reading its sender while the receiver has this much waiting?"""
        return receiver_queued > self.high_water

    def may_resume(self, receiver_queued: int) -> bool:
        """The receiver's queue drained this far: read its senders again (half the mark, so
        the sender is not switched on and off at every chunk)."""
        return receiver_queued <= self.high_water // 2

    # ---------------------------------------------------------- reporting

    def count(self, peer: Peer) -> tuple[int, int]:
        """How many transfers ``peer`` is sending and receiving now."""
        return len(self.sending.get(peer, ())), len(self.receiving.get(peer, ()))


__all__ = ["FileRelay", "RelayedTransfer", "Forward", "Send", "Peer", "MAX_TRANSFERS", "RELAY_HIGH_WATER"]
