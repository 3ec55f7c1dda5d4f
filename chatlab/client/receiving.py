"""Receiving files: offers, accepting and rejecting them, and the reader thread's side of each incoming transfer."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import NamedTuple

from ..addresses import format_address
from ..core import protocol as p
from ..core.transfer import (
    IncomingTransfer,
    ToSender,
)
from ..errors import (
    ChatlabError,
    ConnectionClosed,
    TransferError,
)
from ..events import (
    FileFailed,
    FileReceived,
    FileStarted,
)
from ..hashing import BackgroundSha256
from . import direct
from .state import (
    CONTROL,
    ClientState,
    _shut,
)

log = logging.getLogger("chatlab.client")

class Receiving(NamedTuple):
    """A file arriving now, as :meth:`Client.receiving` reports it (for progress displays)."""

    sender: str
    name: str
    size: int
    received: int  # bytes written so far, resumed ones included
    resumed_from: int  # bytes an earlier transfer had left in the .part


class ReceivingFiles(ClientState):
    """Incoming transfers of a :class:`~chatlab.client.Client` (a mixin; the reader thread owns them)."""

    def accept_file(self, offer: p.FileOffer, download_dir: str | os.PathLike[str] | None = None) -> None:
        """Accept an offer into ``download_dir`` (default: the client's own).

        A :class:`FileStarted` event follows (it says whether an earlier
        ``.part`` is resumed), then :class:`FileReceived` or :class:`FileFailed`.

        Raises:
            TransferError: the offer is unknown, its file name is unsafe, or
                the ``.part`` file cannot be opened (the offer is then rejected).
            ConnectionClosed: the connection is closed.
        """
        directory = download_dir if download_dir is not None else self.download_dir
        if directory is None:
            raise ValueError("accept_file needs a download_dir (or pass one to Client.connect)")
        self._check_open()
        with self._incoming_lock:
            if self._offers.pop(offer.stream_id, None) is None:
                raise TransferError(f"no pending offer with stream id {offer.stream_id:#x}")
        self._start_incoming(offer, Path(directory))

    def reject_file(self, offer: p.FileOffer, reason: str = "") -> None:
        reason = reason or f"{self.nick} declined"  # the sender is told this, word for word
        with self._incoming_lock:
            self._offers.pop(offer.stream_id, None)
        self._put(CONTROL, p.encode(p.FileReject(offer.stream_id, reason)))

    def receiving(self) -> list[Receiving]:
        """The files arriving now, with how much of each is here (safe from any thread)."""
        with self._incoming_lock:
            return [Receiving(i.sender, i.name, i.size, i.received, i.start_offset) for i in self._incoming.values()]

    def _start_incoming(self, offer: p.FileOffer, directory: Path) -> None:
        try:
            try:
                directory.mkdir(parents=True, exist_ok=True)  # a fresh clone has no downloads/ yet
            except OSError as exc:
                raise TransferError(f"cannot create the download folder {directory}: {exc}") from exc
            # On the direct path the SHA-256 runs in a thread of its own, beside the one that receives
            # and writes.  (Relayed, handing each chunk to that thread cost more than it saved: measured.)
            digest = BackgroundSha256() if self.accept_direct and direct.valid_token(offer.token) else None
            incoming = IncomingTransfer(offer, directory, overwrite=self.overwrite, digest=digest)
            accept = incoming.accept()
        except ChatlabError as exc:
            self._reply(p.encode(p.FileReject(offer.stream_id, str(exc))))
            self._events.put(FileFailed(offer.peer, offer.name, str(exc)))
            if isinstance(exc, TransferError):
                raise
            raise TransferError(str(exc)) from exc
        path = self._listen_direct(offer, incoming) if self.accept_direct and direct.valid_token(offer.token) else None
        if path is not None:  # the accept tells the sender where to connect
            accept = p.FileAccept(accept.stream_id, accept.offset, format_address(self._advertised(path)),
                                  path.tls.fingerprint if path.tls is not None else "")
        with self._incoming_lock:
            if self._incoming_ended:  # the connection ended while we opened the .part
                incoming.close()
                if path is not None:
                    path.listener.close()
                raise ConnectionClosed(f"{self.nick}: the connection is closed; {offer.name!r} cannot be received")
            self._incoming[offer.stream_id] = incoming
            self._accepted_at[offer.stream_id] = time.monotonic()
            if path is not None:
                self._direct_in[offer.stream_id] = path
                path.thread = threading.Thread(target=self._receive_direct, args=(offer.stream_id, incoming, path),
                                               name=f"chatlab-direct-in-{self.nick}", daemon=True)
                self._keep_direct_thread(path.thread)
        self._reply(p.encode(accept))
        self._events.put(FileStarted(incoming.sender, incoming.name, incoming.part_path, incoming.size, accept.offset))

    def _on_incoming(self, message: p.Message) -> None:
        """Reader thread: a frame of a transfer we receive."""
        sid = message.stream_id  # type: ignore[union-attr]
        if isinstance(message, p.FileOffer):
            if self.download_dir is not None:
                try:
                    self._start_incoming(message, self.download_dir)
                except TransferError:
                    pass  # rejected, and reported as a FileFailed event
            else:
                with self._incoming_lock:
                    self._offers[sid] = message
                self._events.put(message)
            return
        with self._incoming_lock:
            incoming = self._incoming.get(sid)
        if incoming is None:
            if isinstance(message, p.FileCancel):
                with self._incoming_lock:
                    offer = self._offers.pop(sid, None)
                if offer is not None:
                    self._events.put(FileFailed(offer.peer, offer.name, message.reason or "cancelled by the sender"))
            return  # chunks still in flight after we gave up
        path = self._direct_in.get(sid)
        if path is not None:
            self._on_incoming_shared(message, incoming, path)
            return
        replies = self._handle_incoming(sid, incoming, message)
        for reply in replies:
            if isinstance(reply, p.FileAck):
                # Acks are cumulative: keep the latest; it goes once ack_every bytes are unacked
                # or the next recv() would wait (Threads._recv), not after every chunk.
                self._unsent_acks[sid] = reply
            else:
                self._send_ack(sid)  # the ack goes before the FileDone it leads to
                self._reply(p.encode(reply))
        if incoming.done or incoming.failed:
            self._acks_out.pop(sid, None)
            self._incoming_over(sid, incoming)

    def _incoming_over(self, sid: int, incoming: IncomingTransfer) -> None:
        """Reader or direct thread: an incoming transfer ended; say how (once)."""
        with self._incoming_lock:
            if self._incoming.get(sid) is not incoming:
                return  # already reported (or the connection's end reported it)
            del self._incoming[sid]
            accepted_at = self._accepted_at.pop(sid)
            path = self._direct_in.pop(sid, None)
        if path is not None:
            path.listener.close()
            if path.sock is not None:
                _shut(path.sock)
        if incoming.done and incoming.path is not None:
            seconds = time.monotonic() - accepted_at
            self._events.put(FileReceived(incoming.sender, incoming.name, incoming.path, incoming.size,
                                          incoming.sha256, seconds))
        else:
            self._events.put(FileFailed(incoming.sender, incoming.name, incoming.reason))

    def _handle_incoming(self, sid: int, incoming: IncomingTransfer, message: p.Message) -> list[ToSender]:
        """The receiver's answers to one transfer message; a bad one cancels the transfer, with the reason."""
        try:
            return incoming.handle(message)
        except ChatlabError as exc:
            self._reply(p.encode(p.FileCancel(sid, str(exc))))
            return []

    def _end_incoming(self, reason: str) -> None:
        """Reader thread, last thing it does: close every file still arriving and say why it failed."""
        with self._incoming_lock:
            unfinished, self._incoming = list(self._incoming.values()), {}
            self._accepted_at.clear()
            self._incoming_ended = True
            paths, self._direct_in = dict(self._direct_in), {}
        for incoming in unfinished:
            path = paths.get(incoming.stream_id)
            if path is not None:  # wake its direct thread, which then finds the transfer closed
                path.listener.close()
                if path.sock is not None:
                    _shut(path.sock)
                with path.lock:
                    path.ended_elsewhere = True
                    incoming.close()
            incoming.close()  # keeps NAME.part, so the same file offered again resumes
            self._events.put(FileFailed(incoming.sender, incoming.name, f"connection ended: {reason}"))

