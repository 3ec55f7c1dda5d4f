"""The sender's side of one transfer (OutgoingTransfer), and what both sides share."""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from ...errors import TransferError
from ..protocol import FileAccept, FileAck, FileCancel, FileChunk, FileDone, FileOffer, FileReject, Message
from .errors import TransferProtocolError
from .strategies import AdaptiveWindow, MiB, SendStrategy, TraceRow

# --------------------------------------------------------------------------
# The sender.
# --------------------------------------------------------------------------


def _check_stream(message: Message, stream_id: int) -> None:
    """A driver must route messages by stream id; passing the wrong one is its bug."""
    got = getattr(message, "stream_id", None)
    if got != stream_id:
        raise ValueError(f"{type(message).__name__} for stream {got} given to transfer {stream_id}")


class TransferState(enum.Enum):
    """Where a transfer is in its life.  DONE and FAILED are final."""

    OFFERED = "offered"  # the offer is out (sender) or in (receiver); no answer yet
    ACTIVE = "active"  # accepted: chunks and acks are flowing
    DONE = "done"  # every byte arrived and the SHA-256 matched
    FAILED = "failed"  # rejected, cancelled by either side, or broken; see .reason


@dataclass(frozen=True)
class TransferStats:
    """How fast a transfer went.  ``bytes`` counts this session only (not resumed bytes)."""

    bytes: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        """Throughput in megabytes (10**6 bytes) per second; 0.0 if no time passed."""
        return self.bytes / self.seconds / 1e6 if self.seconds > 0 else 0.0


SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")

ToReceiver = FileChunk | FileDone | FileCancel
"""What a sender sends once its offer is out."""


def sha256_file(file: BinaryIO, block_size: int = 1 * MiB) -> str:
    """The SHA-256 of a binary file object from its current position, read in blocks.

    Args:
        file: opened with ``"rb"``.
        block_size: bytes read at a time (the file is never read whole).

    Returns:
        The digest as 64 lowercase hex digits, as :class:`FileOffer` carries it.
    """
    digest = hashlib.sha256()
    while block := file.read(block_size):
        digest.update(block)
    return digest.hexdigest()


def file_reader(file: BinaryIO) -> Callable[[int, int], bytes]:
    """A ``read(offset, n)`` function over a binary file, for :class:`OutgoingTransfer`."""

    def read(offset: int, n: int) -> bytes:
        file.seek(offset)
        return file.read(n)

    return read


class _TransferLife:
    """What both sides of a transfer track: its stream, where it is, and why it failed."""

    def __init__(self, stream_id: int, size: int, sha256: str) -> None:
        self.stream_id = stream_id
        self.size = size
        self.sha256 = sha256.lower()
        self.state = TransferState.OFFERED
        self.reason = ""  # why it failed
        self.start_offset = 0  # bytes the receiver already had (a resume)

    @property
    def done(self) -> bool:
        """Every byte arrived and the SHA-256 matched."""
        return self.state is TransferState.DONE

    @property
    def failed(self) -> bool:
        """Rejected, cancelled or broken; :attr:`reason` says why."""
        return self.state is TransferState.FAILED

    def _fail(self, reason: str) -> None:
        if self.state is not TransferState.FAILED:
            self.state = TransferState.FAILED
            self.reason = reason


class OutgoingTransfer(_TransferLife):
    """The sender's side of one file transfer, sans-I/O.

    It never touches a socket or a clock: the driver passes ``now`` in,
    feeds it the receiver's messages with :meth:`handle` and sends whatever
    comes back.  It reads the file only through ``read(offset, n)``, so the
    driver owns the file (and closes it).  Which bytes go next is decided
    here; *when* they may go is the strategy's business.

    Args:
        stream_id: the transfer's stream id on the connection.
        size: the file's size in bytes.
        sha256: the file's SHA-256, 64 hex digits (see :func:`sha256_file`), or
            ``""``: then the transfer hashes each chunk as it reads it (no
            pass over the file before the offer), and the digest goes at the
            end, in the :class:`FileDone`.  On a resume the bytes the receiver
            already has are read once, at accept, to hash them.
        read: ``read(offset, n)`` returns ``n`` bytes of the file from ``offset``
            (fewer only at the end of the file).
        strategy: decides when bytes may be sent; default ``AdaptiveWindow()``.

    The direct path (the bytes over a second connection, not in frames): the
    driver calls :meth:`try_direct` when the accept names an address (no chunk
    goes while it connects), then :meth:`direct_connected` or
    :meth:`direct_failed` (the chunks then go through the server as usual).

    Raises:
        ValueError: a negative size or a malformed SHA-256.
    """

    def __init__(
        self,
        stream_id: int,
        size: int,
        sha256: str,
        read: Callable[[int, int], bytes],
        strategy: SendStrategy | None = None,
    ) -> None:
        if size < 0:
            raise ValueError(f"file size must be >= 0, got {size}")
        if sha256 and not SHA256_HEX.fullmatch(sha256):
            raise ValueError(f"sha256 must be 64 hex digits (or empty: hashed while sending), got {sha256!r}")
        super().__init__(stream_id, size, sha256)
        self.strategy = strategy if strategy is not None else AdaptiveWindow()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._read = read
        self._done_sent = False
        # Hash while reading: the chunks are read once, in order, so one running digest suffices.
        self._digest = hashlib.sha256() if not sha256 else None
        self.via = "server"  # "direct" once the bytes go over a direct connection
        self._connecting = False  # trying the direct connection: no chunk goes meanwhile

    # -- what the driver reads -------------------------------------------

    @property
    def sent(self) -> int:
        """File offset just past the last byte sent."""
        return self.strategy.sent

    @property
    def acked(self) -> int:
        """Bytes the receiver has confirmed writing."""
        return self.strategy.acked

    @property
    def trace(self) -> list[TraceRow]:
        """The strategy's trace: one row per chunk sent and per ack, for plots."""
        return self.strategy.trace

    def stats(self) -> TransferStats:
        """Bytes acked this session and the seconds from accept to the last ack (or to done)."""
        if self.started_at is None:
            return TransferStats(0, 0.0)
        end = self.finished_at
        if end is None:
            end = self.trace[-1].time if self.trace else self.started_at
        return TransferStats(self.acked - self.start_offset, end - self.started_at)

    # -- the driving interface -------------------------------------------

    def offer(self, peer: str, name: str, token: str = "") -> FileOffer:
        """The :class:`FileOffer` announcing this transfer to ``peer`` as ``name``.

        ``token``: offer a direct connection, which will present this one-time token.
        """
        return FileOffer(self.stream_id, peer, name, self.size, self.sha256, token)

    def handle(self, now: float, message: Message) -> list[ToReceiver]:
        """Feed one message from the receiver; return the messages to send next.

        Args:
            now: the current time, in seconds.
            message: a FileAccept, FileAck, FileDone, FileReject or FileCancel
                with this transfer's stream id.

        Returns:
            Chunks the strategy allows now, then a :class:`FileDone` once every
            byte is out; empty if nothing may be sent yet.

        Raises:
            TransferProtocolError: the receiver broke the protocol, or sent a
                message a sender does not expect (the transfer is then
                failed; send ``cancel(str(exc))``).
            ValueError: the message belongs to another stream (a driver bug).
        """
        _check_stream(message, self.stream_id)
        if self.state in (TransferState.DONE, TransferState.FAILED):
            return []  # acks and answers still in flight when it ended
        if isinstance(message, FileAccept):
            self.accept(now, message.offset)
        elif isinstance(message, FileAck):
            self.on_ack(now, message.received)
        elif isinstance(message, FileDone):
            self.on_done(now)
        elif isinstance(message, (FileReject, FileCancel)):
            # The reason already says who refused and why ("bob declined", "nobody else called
            # 'bob' is online", "bob disconnected: ..."): the server and the receiver both send one.
            verb = "rejected" if isinstance(message, FileReject) else "cancelled"
            self._fail(message.reason or f"the receiver {verb} the transfer")
        else:
            raise self._protocol_error(f"a sender does not expect {type(message).__name__}")
        return self.messages_to_send(now)

    def accept(self, now: float, offset: int = 0) -> None:
        """The receiver accepted, and already has the first ``offset`` bytes (resume).

        Raises:
            TransferProtocolError: not waiting for an answer, or ``offset`` outside the file.
        """
        if self.state is not TransferState.OFFERED:
            raise self._protocol_error(f"FileAccept while the transfer is {self.state.value}")
        if not 0 <= offset <= self.size:
            raise self._protocol_error(f"receiver asked to resume at byte {offset} of a {self.size}-byte file")
        if self._digest is not None and offset:
            self._hash_prefix(offset)
        self.state = TransferState.ACTIVE
        self.start_offset = offset
        self.started_at = now
        self.strategy.start(now, offset)

    def _hash_prefix(self, end: int) -> None:
        """A resume: the digest covers the whole file, so hash the bytes the receiver already has."""
        assert self._digest is not None
        offset = 0
        while offset < end:
            data = self._checked_read(offset, min(1 * MiB, end - offset))
            self._digest.update(data)
            offset += len(data)

    def _checked_read(self, offset: int, length: int) -> bytes:
        try:
            data = self._read(offset, length)
        except OSError as exc:
            self._fail(f"cannot read the file at byte {offset}: {exc}")
            raise TransferError(self.reason) from exc
        if len(data) != length:
            self._fail(f"the file changed while it was being sent: read {len(data)} of {length} bytes at {offset}")
            raise TransferError(self.reason)
        return data

    # -- the direct path ---------------------------------------------------

    def try_direct(self) -> None:
        """The receiver gave an address: hold the chunks while the driver connects to it."""
        self._connecting = True

    def direct_connected(self) -> None:
        """The bytes go over the direct connection: no chunk frame from now on; acks may cover the file."""
        self._connecting = False
        self.via = "direct"

    def direct_failed(self) -> None:
        """No direct connection: the chunks go through the server (call :meth:`messages_to_send`)."""
        self._connecting = False
        self.via = "server"

    def messages_to_send(self, now: float) -> list[ToReceiver]:
        """The chunks the strategy allows at ``now``, and a FileDone after the last one.

        Only full chunks go (the last one of the file may be shorter); a
        window with less than a chunk of room waits for the next ack.

        Raises:
            TransferError: ``read`` failed or returned too few bytes (the file
                changed while it was being sent); the transfer is then failed.
        """
        out: list[ToReceiver] = []
        if self.state is not TransferState.ACTIVE or self._connecting or self.via == "direct":
            return out
        strategy = self.strategy
        while strategy.sent < self.size:
            length = min(strategy.chunk_size, self.size - strategy.sent)
            if strategy.allowance(now) < length:
                break
            offset = strategy.sent
            data = self._checked_read(offset, length)
            if self._digest is not None:
                self._digest.update(data)
            out.append(FileChunk(self.stream_id, offset, data))
            strategy.on_sent(now, offset, length)
        if strategy.sent == self.size and not self._done_sent:
            self._done_sent = True
            if self._digest is not None:  # the digest was made while reading: it travels now
                self.sha256 = self._digest.hexdigest()
                out.append(FileDone(self.stream_id, self.sha256))
            else:
                out.append(FileDone(self.stream_id))
        return out

    def wake_at(self, now: float) -> float | None:
        """When to call :meth:`messages_to_send` again if no message arrives first.

        Returns:
            A time (``<= now`` means "now"), or ``None``: only a message
            from the receiver can let more bytes go (or all are out).
        """
        if self.state is not TransferState.ACTIVE or self._done_sent or self._connecting or self.via == "direct":
            return None
        return self.strategy.wake_at(now)

    def on_ack(self, now: float, received: int) -> None:
        """The receiver has written the first ``received`` bytes (cumulative).

        Raises:
            TransferProtocolError: an ack before FileAccept, one that goes
                backwards, or one for bytes never sent.
        """
        if self.state in (TransferState.DONE, TransferState.FAILED):
            return  # acks still in flight when it ended
        if self.state is not TransferState.ACTIVE:
            raise self._protocol_error("FileAck before FileAccept")
        if received < self.acked:
            raise self._protocol_error(f"ack went backwards from {self.acked} to {received} bytes")
        if received > (self.size if self.via == "direct" else self.sent):
            raise self._protocol_error(f"ack for {received} bytes, but only {self.sent} were sent")
        self.strategy.on_ack(now, received)

    def on_done(self, now: float) -> None:
        """The receiver wrote every byte and verified the SHA-256.

        Raises:
            TransferProtocolError: FileDone before every byte was acked.
        """
        if self.state is TransferState.FAILED:
            return
        if self.state is not TransferState.ACTIVE or self.acked != self.size:
            raise self._protocol_error(f"receiver said done after acking {self.acked} of {self.size} bytes")
        self.state = TransferState.DONE
        self.finished_at = now

    def cancel(self, reason: str = "cancelled by sender") -> FileCancel:
        """Give up on this transfer; returns the :class:`FileCancel` to send."""
        if self.state is not TransferState.DONE:
            self._fail(reason)
        return FileCancel(self.stream_id, reason)

    # -- internals ---------------------------------------------------------

    def _protocol_error(self, what: str) -> TransferProtocolError:
        self._fail(what)
        return TransferProtocolError(f"transfer {self.stream_id}: {what}")

    def __repr__(self) -> str:
        return (
            f"<OutgoingTransfer sid={self.stream_id} {self.state.value} "
            f"acked={self.acked}/{self.size} strategy={self.strategy.name}>"
        )
