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

from ..errors import RemoteProtocolError
from . import protocol as p

MAX_TRANSFERS = 32  # transfers offered or going at once, per sender and per receiver: the tables stay bounded
MAX_PER_PAIR = 4  # ... and from one sender to one receiver: one client cannot take all of someone's slots
OFFER_TIMEOUT = 300.0  # seconds an offer may wait for its answer (a person types /accept) before it is withdrawn
IDLE_TIMEOUT = 60.0  # seconds an accepted transfer through the relay may pass no frame before it is cancelled
RELAY_HIGH_WATER = 1024 * 1024  # stop reading a file sender while its receiver has more than this queued


class Peer(Protocol):
    """What the relay needs to know about a connection (a chat session provides it)."""

    nick: str | None
    accepts_files: bool
    peer: str  # "host:port" as the server sees it: where a direct connection to this peer goes


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
    direct: bool = False  # the bytes go over a direct connection: the relay sees no chunks
    updated_at: float = 0.0  # when a frame of it last passed (offers and idle transfers expire)

    def other_side(self, peer: Peer) -> tuple[Peer, int]:
        """The peer at the other end, and the stream id it knows this transfer by."""
        return (self.receiver, self.receiver_sid) if peer is self.sender else (self.sender, self.sender_sid)


# Which frames each side may send: a sender chunks, a receiver accepts and acks.
SENDER_KINDS = frozenset({p.FrameType.FILE_CHUNK, p.FrameType.FILE_DONE, p.FrameType.FILE_CANCEL})
ENDS_TRANSFER = frozenset({p.FrameType.FILE_REJECT, p.FrameType.FILE_CANCEL})
QUIET_STRAYS = frozenset({p.FrameType.FILE_CHUNK, p.FrameType.FILE_ACK})  # in flight after a cancel: normal


class FileRelay:
    """The relay table: offers, the accept gate, routing with renumbering, the end of transfers."""

    def __init__(self, high_water: int = RELAY_HIGH_WATER, max_transfers: int = MAX_TRANSFERS,
                 max_per_pair: int = MAX_PER_PAIR, offer_timeout: float = OFFER_TIMEOUT,
                 idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.high_water = high_water
        self.max_transfers = max_transfers
        self.max_per_pair = max_per_pair
        self.offer_timeout = offer_timeout
        self.idle_timeout = idle_timeout
        self.sending: dict[Peer, dict[int, RelayedTransfer]] = {}  # by the sender's stream id
        self.receiving: dict[Peer, dict[int, RelayedTransfer]] = {}  # by the receiver's stream id
        self._next_sid: dict[Peer, itertools.count[int]] = {}

    # ------------------------------------------------------------------ rules

    def offer(self, sender: Peer, offer: p.FileOffer, target: Peer | None, now: float = 0.0) -> list[Send | Forward]:
        """``sender`` offers a file to ``target`` (``None``: nobody by that name is online)."""
        sending = self.sending.setdefault(sender, {})
        if not 0 < offer.stream_id < p.INCOMING_STREAM_BIT or offer.stream_id in sending:
            raise RemoteProtocolError(f"FILE_OFFER needs a new stream id from 1 to 2**31-1 (got {offer.stream_id})")
        reason = self._refusal(sender, offer, target)
        if reason is not None:
            return [Send(sender, p.FileReject(offer.stream_id, reason))]
        assert target is not None
        counter = self._next_sid.setdefault(target, itertools.count(1))
        transfer = RelayedTransfer(sender, offer.stream_id, target, p.INCOMING_STREAM_BIT | next(counter),
                                   updated_at=now)
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
        pair = sum(1 for t in self.sending.get(sender, {}).values() if t.receiver is target)
        if pair >= self.max_per_pair:
            return (f"you have {self.max_per_pair} transfers to {target.nick} offered or going already;"
                    " try again when one has ended")
        if len(self.sending.get(sender, ())) >= self.max_transfers:
            return f"you have {self.max_transfers} transfers going already; try again when one has ended"
        if len(self.receiving.get(target, ())) >= self.max_transfers:
            return f"{target.nick} has {self.max_transfers} transfers going already; try again when one has ended"
        return None

    def route(self, peer: Peer, frame: p.Frame, now: float = 0.0) -> list[Send | Forward]:
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
        payload = self._checked_payload(peer, frame, transfer)
        transfer.updated_at = now
        other, other_sid = transfer.other_side(peer)
        if kind in ENDS_TRANSFER or (kind is p.FrameType.FILE_DONE and peer is transfer.receiver):
            self.end(transfer)
        return [Forward(other, kind, other_sid, frame.flags, payload, kind is p.FrameType.FILE_CHUNK)]

    def _checked_payload(self, peer: Peer, frame: p.Frame, transfer: RelayedTransfer) -> bytes:
        """The payload to forward, checked, so that a malformed frame costs its sender and not
        the peer's connection; a FILE_ACCEPT opens the gate (and gets the direct address stamped)."""
        kind, payload = frame.type, frame.payload
        if kind is p.FrameType.FILE_CHUNK:
            if transfer.sender is peer and not transfer.accepted:
                raise RemoteProtocolError(f"FILE_CHUNK for stream {frame.stream_id} before the receiver accepted it")
            if len(payload) < p.CHUNK_PREFIX.size:
                raise RemoteProtocolError(f"FILE_CHUNK payload of {len(payload)} bytes is shorter than its offset")
            return payload
        message = p.decode_message(frame)  # a few bytes of control
        if isinstance(message, p.FileAccept) and transfer.receiver is peer:
            transfer.accepted = True
            if message.direct:
                return self._stamp(transfer, message)
        return payload

    def _stamp(self, transfer: RelayedTransfer, accept: p.FileAccept) -> bytes:
        """The receiver names only the port of its direct listener; the host is the receiver's
        address as the server sees it, so a receiver cannot aim the sender at anyone else."""
        _host, _sep, port = accept.direct.rpartition(":")
        host = transfer.receiver.peer.rpartition(":")[0].strip("[]")
        if not port.isdigit() or not 0 < int(port) < 65536 or not host:
            raise RemoteProtocolError("FILE_ACCEPT's direct address needs a port from 1 to 65535, "
                                      f"got {accept.direct!r}")
        transfer.direct = True
        where = f"[{host}]:{int(port)}" if ":" in host else f"{host}:{int(port)}"
        stamped = p.encode(p.FileAccept(accept.stream_id, accept.offset, where, accept.tls))
        return stamped[p.HEADER_SIZE:]

    def end(self, transfer: RelayedTransfer) -> None:
        self.sending.get(transfer.sender, {}).pop(transfer.sender_sid, None)
        self.receiving.get(transfer.receiver, {}).pop(transfer.receiver_sid, None)

    def cancel_between(self, sender: Peer, receiver: Peer, reason: str) -> list[Send | Forward]:
        """Cancel every transfer from ``sender`` to ``receiver``, telling both why."""
        outputs: list[Send | Forward] = []
        for transfer in [t for t in self.sending.get(sender, {}).values() if t.receiver is receiver]:
            outputs += self._cancel(transfer, reason)
        return outputs

    def expire(self, now: float) -> list[Send | Forward]:
        """Withdraw offers nobody answered in ``offer_timeout``, and cancel accepted transfers
        through the relay that passed no frame in ``idle_timeout``: neither holds a slot forever."""
        outputs: list[Send | Forward] = []
        for table in list(self.sending.values()):
            for transfer in list(table.values()):
                idle = now - transfer.updated_at
                if not transfer.accepted and idle > self.offer_timeout:
                    outputs += self._cancel(transfer, f"nobody answered the offer in {self.offer_timeout:g} s")
                elif transfer.accepted and not transfer.direct and idle > self.idle_timeout:
                    outputs += self._cancel(transfer, f"nothing moved for {self.idle_timeout:g} s")
        return outputs

    def _cancel(self, transfer: RelayedTransfer, reason: str) -> list[Send | Forward]:
        self.end(transfer)
        return [Send(transfer.sender, p.FileCancel(transfer.sender_sid, reason)),
                Send(transfer.receiver, p.FileCancel(transfer.receiver_sid, reason))]

    def drop(self, peer: Peer, reason: str) -> list[Send | Forward]:
        """``peer`` is gone: cancel each of its transfers towards the other side."""
        transfers = list(self.sending.pop(peer, {}).values()) + list(self.receiving.pop(peer, {}).values())
        self._next_sid.pop(peer, None)
        outputs: list[Send | Forward] = []
        for transfer in transfers:
            self.end(transfer)
            other, other_sid = transfer.other_side(peer)
            why = f"{peer.nick} disconnected" + (f": {reason}" if reason else "")
            outputs.append(Send(other, p.FileCancel(other_sid, why)))
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


__all__ = ["FileRelay", "RelayedTransfer", "Forward", "Send", "Peer", "MAX_TRANSFERS", "MAX_PER_PAIR",
           "RELAY_HIGH_WATER", "OFFER_TIMEOUT", "IDLE_TIMEOUT"]
