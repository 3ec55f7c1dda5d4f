"""What every part of a :class:`~chatlab.client.Client` shares: its state, the writer's priorities, the reasons.

The client is one class, :class:`~chatlab.client.api.Client`, put together from a
mixin per concern, each in its own module: :mod:`~chatlab.client.threads` (the reader
and the writer), :mod:`~chatlab.client.sending`, :mod:`~chatlab.client.receiving` and
:mod:`~chatlab.client.direct`.  :class:`ClientState` declares, once, the attributes
that ``Client.__init__`` sets and the mixins share, and which thread owns each.
"""

from __future__ import annotations

import queue
import socket
import threading
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..core import protocol as p
from ..events import EventQueue

if TYPE_CHECKING:
    from ..core.transfer import IncomingTransfer
    from .direct import DirectIncoming
    from .sending import Transfer

# Writer priorities: lower goes first.
CONTROL, CHAT, FILE = 0, 1, 2
# Unsent bytes the kernel may hold for us (TCP_NOTSENT_LOWAT, Linux and macOS).  Beyond
# them sendall() waits in our writer thread, where a chat line can still overtake file
# chunks; without it the kernel queues megabytes, and chat waits behind all of them.
UNSENT_LIMIT = 128 * 1024
FLUSH_TIMEOUT = 2.0  # seconds close() lets the writer send what was queued before QUIT
JOIN_TIMEOUT = 5.0  # seconds close() then waits for each thread; they end at once unless a disk write is slow

# The reasons the connection ended, as the Disconnected event, FileFailed and TransferError say them.
CLOSED_BY_US = "you closed the connection"
CLOSED_BY_SERVER = "closed by the server"


Job = Callable[[], None]  # work the writer thread runs for the reader (transfer state is the writer's)


def _shut(sock: socket.socket) -> None:
    """Shut a socket down so that a thread blocked on it wakes up (the thread closes it)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class ClientState:
    """The attributes :class:`~chatlab.client.Client` sets in ``__init__`` and its mixins share."""

    nick: str
    room: str
    rooms: list[str]
    motd: str
    address: tuple[str, int]
    priority_writer: bool
    download_dir: Path | None
    overwrite: bool
    max_payload: int  # the server's frame limit; a longer chat line is refused before sending
    advertise_direct: Callable[[tuple[str, int]], tuple[str, int]] | None
    accept_direct: bool
    _sock: socket.socket
    _decoder: p.FrameDecoder
    _events: EventQueue
    _closing: bool  # close() was called: from now on, whatever fails, we did it
    _end_reason: str
    _end_lock: threading.Lock
    _outq: queue.PriorityQueue[tuple[int, int, bytes | Job | Transfer | None]]
    _out_seq: Iterator[int]
    _out_lock: threading.Lock
    _writer_stopped: bool
    _reader: threading.Thread
    _writer: threading.Thread
    _outgoing: dict[int, Transfer]  # writer thread
    _incoming: dict[int, IncomingTransfer]  # reader thread (and accept_file), under _incoming_lock
    _incoming_ended: bool
    _offers: dict[int, p.FileOffer]
    _accepted_at: dict[int, float]
    _incoming_lock: threading.Lock
    _direct_in: dict[int, DirectIncoming]
    _direct_threads: list[threading.Thread]
    _stream_ids: Iterator[int]
    _unsent_acks: dict[int, p.FileAck]
    _acks_out: dict[int, int]
    _file_frames: deque[tuple[int, bytes | tuple[bytes, bytes]]]

    if TYPE_CHECKING:  # methods one mixin calls on another (defined in the module named)
        @property
        def closed(self) -> bool: ...  # api
        def _check_open(self) -> None: ...  # threads
        def _encode_checked(self, message: p.Message) -> bytes: ...  # api
        def _put(self, priority: int, data: bytes | Job | Transfer) -> None: ...  # threads
        def _reply(self, data: bytes | Job, priority: int = CONTROL) -> None: ...  # threads
        def _socket_errors(self, what: str) -> Any: ...  # threads
        def _finish(self, reason: str) -> None: ...  # threads
        def _send_ack(self, sid: int) -> None: ...  # threads
        def _register(self, transfer: Transfer) -> None: ...  # sending
        def _on_outgoing(self, message: p.Message, now: float) -> None: ...  # sending
        def _queue_file_frames(self, transfer: Transfer, messages: list[Any]) -> None: ...  # sending
        def _pump(self) -> None: ...  # sending
        def _next_wake(self) -> float | None: ...  # sending
        def _end_outgoing(self, reason: str) -> None: ...  # sending
        def _on_incoming(self, message: p.Message) -> None: ...  # receiving
        def _incoming_over(self, sid: int, incoming: IncomingTransfer) -> None: ...  # receiving
        # receiving
        def _handle_incoming(self, sid: int, incoming: IncomingTransfer, message: p.Message) -> list[Any]: ...
        def _end_incoming(self, reason: str) -> None: ...  # receiving
        def _listen_direct(self, offer: p.FileOffer, incoming: IncomingTransfer) -> DirectIncoming | None: ...  # direct
        def _advertised(self, path: DirectIncoming) -> tuple[str, int]: ...  # direct
        def _on_incoming_shared(self, message: p.Message, incoming: IncomingTransfer, path: DirectIncoming) -> None: ...
        def _receive_direct(self, sid: int, incoming: IncomingTransfer, path: DirectIncoming) -> None: ...  # direct
        def _keep_direct_thread(self, thread: threading.Thread) -> None: ...  # direct
        def _fall_back(self, transfer: Transfer, reason: str) -> None: ...  # direct
        def _send_direct(self, transfer: Transfer, address: tuple[str, int], pin: str = "") -> None: ...  # direct
