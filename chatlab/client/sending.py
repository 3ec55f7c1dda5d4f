"""Sending files: the :class:`Transfer` handle and the writer thread's side of every outgoing transfer."""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from pathlib import Path
from typing import Any

from ..addresses import parse_address
from ..core import protocol as p
from ..core.transfer import (
    OutgoingTransfer,
    SendStrategy,
    TraceRow,
    TransferState,
    TransferStats,
    file_reader,
    make_strategy,
)
from ..errors import (
    ChatlabError,
    TransferError,
)
from ..tls import TlsSocket
from . import direct
from .state import (
    CONTROL,
    ClientState,
    _shut,
)

log = logging.getLogger("chatlab.client")


def chunk_head(stream_id: int, offset: int, size: int) -> bytes:
    """A FILE_CHUNK frame's header and offset: ``sendmsg([head, data])`` sends the frame without the copy
    of ``data`` that :func:`~chatlab.core.protocol.encode_chunk` makes to put it behind them."""
    return p.pack_header(p.FrameType.FILE_CHUNK, p.CHUNK_PREFIX.size + size, stream_id) + p.CHUNK_PREFIX.pack(offset)

class Transfer:
    """A file being sent, as returned by :meth:`Client.send_file`.

    ``wait()`` blocks until the receiver confirmed the file (SHA-256 checked)
    and returns its :class:`~chatlab.core.transfer.TransferStats`; ``acked`` and
    ``size`` show progress; ``trace`` has one row per chunk and ack for plots.
    """

    def __init__(self, outgoing: OutgoingTransfer, to: str, name: str, file: Any, token: str = "") -> None:
        self.outgoing = outgoing
        self.to = to
        self.name = name
        self._file = file
        self._finished = threading.Event()
        self.token = token  # not empty: a direct connection was offered (via="direct")
        self.fallback_reason = ""  # why a direct transfer went through the server after all
        self._direct_sock: socket.socket | None = None  # the direct connection, while it is open

    @property
    def via(self) -> str:
        """Which way the bytes go: ``"direct"`` (a second connection to the receiver) or ``"server"``."""
        return self.outgoing.via

    @property
    def size(self) -> int:
        return self.outgoing.size

    @property
    def acked(self) -> int:
        """Bytes the receiver has confirmed writing so far."""
        return self.outgoing.acked

    @property
    def done(self) -> bool:
        return self.outgoing.done

    @property
    def failed(self) -> bool:
        return self.outgoing.failed

    @property
    def reason(self) -> str:
        return self.outgoing.reason

    @property
    def accepted(self) -> bool:
        """The receiver accepted the offer (the transfer may have ended since)."""
        return self.outgoing.started_at is not None

    @property
    def answered(self) -> bool:
        """The receiver (or the server for it) has answered the offer: accepted, rejected, or it ended."""
        return self.outgoing.state is not TransferState.OFFERED

    @property
    def resumed_from(self) -> int:
        """Bytes the receiver already had from an interrupted transfer (only the rest is sent)."""
        return self.outgoing.start_offset

    @property
    def strategy(self) -> SendStrategy:
        return self.outgoing.strategy

    @property
    def trace(self) -> list[TraceRow]:
        return self.outgoing.trace

    @property
    def stats(self) -> TransferStats:
        """Bytes sent this session, seconds from accept to the receiver's confirmation, ``mb_per_s``."""
        return self.outgoing.stats()

    def wait(self, timeout: float | None = None) -> TransferStats:
        """Block until the file is delivered and verified.

        Raises:
            TransferError: rejected, cancelled, or the connection failed.
            TimeoutError: not finished within ``timeout`` seconds.
        """
        if not self._finished.wait(timeout):
            raise TimeoutError(f"sending {self.name} to {self.to}: "
                               f"{self.acked} of {self.size} bytes after {timeout:g} s")
        if self.failed:
            raise TransferError(f"sending {self.name} to {self.to} failed: {self.reason}")
        return self.stats

    def _finish(self) -> None:
        sock = self._direct_sock
        if sock is not None:  # wake the direct sender if it is still in sendfile()
            _shut(sock)
        self._file.close()
        self._finished.set()

    def __repr__(self) -> str:
        return f"<chatlab.Transfer {self.name} -> {self.to} {self.outgoing.state.value} {self.acked}/{self.size}>"


class Sending(ClientState):
    """Outgoing transfers of a :class:`~chatlab.client.Client` (a mixin; the writer thread owns them)."""

    def send_file(self, path: str | os.PathLike[str], to: str, strategy: str | SendStrategy = "adaptive",
                  name: str | None = None, via: str = "server", **strategy_options: float) -> Transfer:
        """Offer a file to ``to`` and send it once accepted, while chat goes on.

        Args:
            path: the file to send.
            to: the receiver's nickname.
            strategy: ``"sleep"``, ``"fixed"``, ``"adaptive"`` or a strategy object.
            name: the name offered to the receiver (default: the file's own name).
            via: ``"server"`` (the default: the chunks go through the chat server,
                which always works) or ``"direct"``: the offer goes through the
                server, the bytes over a second connection to the receiver
                (``socket.sendfile``); if that connection cannot be made, the
                chunks go through the server after all and a
                :class:`DirectFallback` event says why.
            **strategy_options: passed to the strategy, e.g. ``pause=0.01`` or ``chunks=16``.

        Returns:
            A :class:`Transfer`; ``transfer.wait(timeout)`` blocks until it is delivered.

        Raises:
            ConnectionClosed: the connection is closed (the file is not opened).
            ValueError: ``via`` is neither ``"server"`` nor ``"direct"``.
        """
        if via not in ("server", "direct"):
            raise ValueError(f"via must be 'server' or 'direct', not {via!r}")
        self._check_open()
        if isinstance(strategy, str):
            strategy = make_strategy(strategy, **strategy_options)
        file = open(path, "rb")
        try:
            size = file.seek(0, os.SEEK_END)
            # No SHA-256 pass before the offer: the transfer hashes as it reads, the digest goes at the end.
            outgoing = OutgoingTransfer(next(self._stream_ids), size, "", file_reader(file), strategy)
            token = direct.new_token() if via == "direct" else ""
            transfer = Transfer(outgoing, to, Path(path).name if name is None else name, file, token)
            self._put(CONTROL, transfer)  # the writer registers it and sends its offer
        except BaseException:
            file.close()
            raise
        return transfer

    def _register(self, transfer: Transfer) -> None:
        """Writer thread: a new outgoing transfer; its offer goes out now."""
        self._outgoing[transfer.outgoing.stream_id] = transfer
        self._sock.sendall(p.encode(transfer.outgoing.offer(transfer.to, transfer.name, transfer.token)))

    def _on_outgoing(self, message: p.Message, now: float) -> None:
        """Writer thread: the receiver answered one of our transfers."""
        transfer = self._outgoing.get(message.stream_id)  # type: ignore[union-attr]
        if transfer is None:
            return
        address = self._direct_address(transfer, message) if isinstance(message, p.FileAccept) else None
        try:
            replies = transfer.outgoing.handle(now, message)
        except ChatlabError as exc:
            replies = [transfer.outgoing.cancel(str(exc))]
        self._queue_file_frames(transfer, replies)
        if address is not None and transfer.outgoing.state is TransferState.ACTIVE:
            pin = message.tls if isinstance(message, p.FileAccept) else ""
            thread = threading.Thread(target=self._send_direct, args=(transfer, address, pin),
                                      name=f"chatlab-direct-out-{self.nick}", daemon=True)
            self._keep_direct_thread(thread)

    def _direct_address(self, transfer: Transfer, accept: p.FileAccept) -> tuple[str, int] | None:
        """Writer thread: where to connect for a direct transfer, or ``None`` (then: the server, and why)."""
        if not transfer.token:
            return None  # offered through the server only
        if accept.direct and not accept.tls and isinstance(self._sock, TlsSocket):
            self._fall_back(transfer, f"{transfer.to}'s client offered a direct connection without TLS, and this "
                                      "chat is TLS: sending through the server")
            return None
        try:
            address = parse_address(accept.direct, default_host=None, ip_only=True) if accept.direct else None
        except ValueError:
            address = None
        if address is None:
            why = (f"{transfer.to}'s client gave no address for a direct connection" if not accept.direct
                   else f"{transfer.to}'s client gave an unusable address, {accept.direct!r}")
            self._fall_back(transfer, why)
        else:
            transfer.outgoing.try_direct()  # hold the chunks while we connect
        return address

    def _queue_file_frames(self, transfer: Transfer, messages: list[Any]) -> None:
        sid, pending = transfer.outgoing.stream_id, self._file_frames
        for message in messages:
            if isinstance(message, p.FileCancel):  # goes first; drop the chunks it overtakes
                self._sock.sendall(p.encode(message))
                pending_for_others = [item for item in pending if item[0] != sid]
                pending.clear()
                pending.extend(pending_for_others)
            elif isinstance(message, p.FileChunk):  # header and data stay two buffers: sendmsg() gathers them
                pending.append((sid, (chunk_head(sid, message.offset, len(message.data)), message.data)))
            else:
                pending.append((sid, p.encode(message)))
        if transfer.done or transfer.failed:
            del self._outgoing[sid]
            transfer._finish()

    def _pump(self) -> None:
        """Writer thread: let every transfer send what its strategy allows now."""
        now = time.monotonic()
        for transfer in list(self._outgoing.values()):
            try:
                messages = transfer.outgoing.messages_to_send(now)
            except ChatlabError as exc:
                messages = [transfer.outgoing.cancel(str(exc))]
            self._queue_file_frames(transfer, messages)

    def _next_wake(self) -> float | None:
        """Writer thread: seconds until some strategy wants to send again (None: only an ack can help)."""
        now = time.monotonic()
        times = [t for tr in self._outgoing.values() if (t := tr.outgoing.wake_at(now)) is not None]
        return max(0.0, min(times) - now) if times else None

    def _end_outgoing(self, reason: str) -> None:
        """Writer thread, last thing it does: fail every transfer we send, and close its file."""
        with self._out_lock:
            self._writer_stopped = True  # _put raises from now on: nothing queued later would be sent
        leftovers = []
        while True:
            try:
                leftovers.append(self._outq.get_nowait()[2])
            except queue.Empty:
                break
        unregistered = [item for item in leftovers if isinstance(item, Transfer)]  # offers never sent
        for transfer in list(self._outgoing.values()) + unregistered:
            transfer.outgoing.cancel(reason)
            transfer._finish()
        self._outgoing.clear()

