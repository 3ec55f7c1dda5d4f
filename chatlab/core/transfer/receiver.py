"""The receiver's side of one transfer (IncomingTransfer): checks, writes and verifies."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from ...errors import LocalProtocolError, TransferError
from ..protocol import FileAccept, FileAck, FileCancel, FileChunk, FileDone, FileOffer, Message
from .errors import TransferProtocolError
from .files import PART_SUFFIX, Digest, PartFile, safe_filename
from .sender import SHA256_HEX, TransferState, _check_stream, _TransferLife

ToSender = FileAck | FileDone
"""What a receiver sends in answer to the sender's chunks."""


class IncomingTransfer(_TransferLife):
    """The receiver's side of one file transfer: checks, writes and verifies.

    No sockets: the driver feeds it the sender's messages with :meth:`handle`
    and sends back what it returns.  Chunks are accepted only at the offset
    that comes next; each is written to ``NAME.part`` and acked with the
    total written so far.  When the sender's :class:`FileDone` arrives, the
    SHA-256 is checked and the file renamed to ``NAME`` (or ``NAME (1).ext``
    if ``NAME`` exists and ``overwrite`` is false), and a FileDone goes back.

    What happens to ``NAME.part`` when it does not end well: a bad SHA-256
    deletes it; everything else (the peer cancels, the connection drops,
    :meth:`close`, :meth:`cancel`, a protocol error) keeps it, so a later
    offer of the same name resumes from its bytes; ``cancel(keep_part=False)``
    deletes it.

    Args:
        offer: the sender's :class:`FileOffer`.
        directory: the download directory (must exist).
        overwrite: replace an existing file of the same name.
        resume: continue from an existing ``NAME.part``.
        digest: the running SHA-256 for the ``.part`` (see :class:`PartFile`).

    Raises:
        UnsafeFileName: the offered name is hostile (answer with a
            :class:`FileReject` carrying ``str(exc)``).
        TransferProtocolError: a negative size or a malformed SHA-256.
    """

    def __init__(
        self,
        offer: FileOffer,
        directory: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        resume: bool = True,
        digest: Digest | None = None,
    ) -> None:
        self.name = safe_filename(offer.name)
        if offer.size < 0:
            raise TransferProtocolError(f"transfer {offer.stream_id}: offered a file of {offer.size} bytes")
        if offer.sha256 and not SHA256_HEX.fullmatch(offer.sha256):  # "": it comes with the FileDone
            raise TransferProtocolError(
                f"transfer {offer.stream_id}: offered SHA-256 {offer.sha256!r} is not 64 hex digits"
            )
        super().__init__(offer.stream_id, offer.size, offer.sha256)
        self.sender = offer.peer
        self.directory = Path(directory)
        self.overwrite = overwrite
        self.resume = resume
        self.path: Path | None = None  # the finished file, once done
        self._part: PartFile | None = None
        self._digest = digest

    @property
    def received(self) -> int:
        """Bytes safely written so far (what the last FileAck said)."""
        if self.done:
            return self.size
        return self._part.offset if self._part is not None else 0

    @property
    def part_path(self) -> Path:
        """Where the unfinished bytes are (created with the first byte)."""
        if self._part is not None:
            return self._part.path
        return self.directory / (self.name + PART_SUFFIX)

    # -- the driving interface ---------------------------------------------

    def accept(self) -> FileAccept:
        """Open ``NAME.part`` and say where the sender should start.

        Returns:
            A :class:`FileAccept` whose ``offset`` is the bytes already in an
            existing ``.part`` (0 for a fresh transfer).

        Raises:
            TransferError: the ``.part`` cannot be opened.
            LocalProtocolError: the transfer was already accepted or has ended.
        """
        if self.state is not TransferState.OFFERED:
            raise LocalProtocolError(f"transfer {self.stream_id} is {self.state.value}, it cannot be accepted")
        try:
            self._part = PartFile(self.directory, self.name, self.size, resume=self.resume, digest=self._digest,
                                  sender=self.sender)
        except TransferError as exc:
            self._fail(str(exc))
            raise
        self.state = TransferState.ACTIVE
        self.start_offset = self._part.offset
        return FileAccept(self.stream_id, self._part.offset)

    def handle(self, message: Message) -> list[ToSender]:
        """Feed one message from the sender (FileChunk, FileDone or FileCancel); return what to send back.

        Returns:
            ``[FileAck]`` for a chunk, ``[FileDone]`` once the file is
            verified and saved, ``[]`` for a cancel or for messages that
            arrive after the transfer ended.

        Raises:
            TransferProtocolError: the sender broke the protocol, or sent a
                message a receiver does not expect.
            ChecksumMismatch: the bytes are not the offered file.
            TransferError: a disk error.  After any of these the transfer is
                failed: send ``cancel(str(exc))``.
            ValueError: the message belongs to another stream (a driver bug).
        """
        _check_stream(message, self.stream_id)
        if self.state in (TransferState.DONE, TransferState.FAILED):
            return []  # chunks still in flight when it ended
        if isinstance(message, FileChunk):
            return [self.receive(message)]
        if isinstance(message, FileDone):
            return [self.finish(message.sha256)]
        if not isinstance(message, FileCancel):
            raise self._protocol_error(f"a receiver does not expect {type(message).__name__}")
        self._end("sender cancelled the transfer" + (f": {message.reason}" if message.reason else ""), keep_part=True)
        return []

    def receive(self, chunk: FileChunk) -> FileAck:
        """Write one chunk; it must start exactly where the last one ended.

        Returns:
            The :class:`FileAck` to send: total bytes written so far.

        Raises:
            TransferProtocolError: before accept, at the wrong offset, empty,
                or past the offered size.
            TransferError: the write failed.
        """
        part = self._active_part("FileChunk")
        if chunk.offset != part.offset:
            raise self._protocol_error(f"chunk at byte {chunk.offset}, expected byte {part.offset}")
        if not chunk.data:
            raise self._protocol_error(f"empty chunk at byte {chunk.offset}")
        return FileAck(self.stream_id, self.write(chunk.data))

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append bytes that came without a frame (the direct path); returns the bytes written so far.

        Raises:
            TransferProtocolError: before accept, or past the offered size.
            TransferError: the write failed.
        """
        part = self._active_part("file data")
        if part.offset + len(data) > self.size:
            raise self._protocol_error(f"data ends at byte {part.offset + len(data)} of a {self.size}-byte file")
        try:
            part.append(data)
        except TransferError as exc:
            self._end(str(exc), keep_part=True)
            raise
        return part.offset

    def finish(self, sha256: str = "") -> FileDone:
        """The sender says every byte is out: verify the SHA-256 and save the file.

        Args:
            sha256: the digest the sender sent at the end (its FileDone), needed
                when the offer had none; if both came, they must agree.

        Returns:
            The :class:`FileDone` to send back.

        Raises:
            TransferProtocolError: bytes are missing.
            ChecksumMismatch: the ``.part`` is deleted; nothing complete-looking is left.
            TransferError: flushing or renaming failed.
        """
        part = self._active_part("FileDone")
        if part.offset != self.size:
            raise self._protocol_error(f"sender said done after {part.offset} of {self.size} bytes")
        if sha256 and not SHA256_HEX.fullmatch(sha256):
            raise self._protocol_error(f"the SHA-256 at the end, {sha256!r}, is not 64 hex digits")
        if not (self.sha256 or sha256):
            raise self._protocol_error("no SHA-256 came, neither with the offer nor at the end")
        if self.sha256 and sha256 and sha256.lower() != self.sha256:
            raise self._protocol_error("the SHA-256 at the end is not the one offered")
        expected = self.sha256 or sha256.lower()
        try:
            self.path = part.commit(expected, overwrite=self.overwrite)
        except TransferError as exc:
            self._fail(str(exc))  # commit already deleted or closed the .part
            raise
        self.sha256 = expected
        self.state = TransferState.DONE
        return FileDone(self.stream_id)

    def cancel(self, reason: str = "cancelled by receiver", *, keep_part: bool = True) -> FileCancel:
        """Give up on this transfer; returns the :class:`FileCancel` to send.

        Args:
            reason: told to the sender.
            keep_part: keep ``NAME.part`` to resume later (it never looks complete).
        """
        if self.state is not TransferState.DONE:
            self._end(reason, keep_part=keep_part)
        return FileCancel(self.stream_id, reason)

    def close(self) -> None:
        """The connection is gone (or the program stops): close the file, keep the ``.part``."""
        if self.state in (TransferState.OFFERED, TransferState.ACTIVE):
            self._end("closed before the transfer finished", keep_part=True)

    def __enter__(self) -> IncomingTransfer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals ---------------------------------------------------------

    def _active_part(self, what: str) -> PartFile:
        if self.state is not TransferState.ACTIVE or self._part is None:
            raise self._protocol_error(f"{what} before FileAccept")
        return self._part

    def _end(self, reason: str, *, keep_part: bool) -> None:
        self._fail(reason)
        if self._part is not None:
            if keep_part:
                self._part.close()
            else:
                self._part.discard()

    def _protocol_error(self, what: str) -> TransferProtocolError:
        self._end(what, keep_part=True)  # the bytes written so far are still good
        return TransferProtocolError(f"transfer {self.stream_id}: {what}")

    def __repr__(self) -> str:
        return (
            f"<IncomingTransfer sid={self.stream_id} {self.name!r} {self.state.value} "
            f"received={self.received}/{self.size}>"
        )
