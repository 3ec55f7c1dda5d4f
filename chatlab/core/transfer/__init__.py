"""The file-transfer engine, without sockets: sending strategies, sender and receiver state.

One module per concern: :mod:`~chatlab.core.transfer.strategies` (when bytes may leave),
:mod:`~chatlab.core.transfer.sender` (OutgoingTransfer), :mod:`~chatlab.core.transfer.files`
(``safe_filename``, ``PartFile``), :mod:`~chatlab.core.transfer.receiver` (IncomingTransfer)
and :mod:`~chatlab.core.transfer.errors`.  ``from chatlab.core.transfer import X`` works for
every public name of all five.

Like :mod:`chatlab.core.protocol`, this module never imports ``socket``,
``threading`` or ``time``.  Every method that needs the time takes a
``now: float`` argument (seconds, from any monotonic clock), so the whole
engine runs the same under a real clock, a fake one in the tests, or a
simulated link in a notebook.  The only I/O here is on files, on the
receiving side (``NAME.part`` in the download directory).

The seed's question: "sleeping between sends works, but it is slow -- could
we adjust the speed dynamically, like TCP?"  Three answers, one interface
(:class:`SendStrategy`):

* :class:`SleepPaced` -- the seed's own approach: one chunk, a pause, repeat.
  It never listens to the receiver, so it is either slower than the link
  (pause too long) or it piles data up in queues (pause too short).
* :class:`FixedWindow` -- at most N chunks sent but not yet acknowledged.
  Acks clock the sender, but N has to be guessed: too small and the link
  idles, too large and the extra chunks sit in a queue.
* :class:`AdaptiveWindow` -- a delay-based window (TCP Vegas, LEDBAT): the
  smallest round-trip time seen is the empty-queue RTT; while RTTs stay near
  it, grow; when they rise, data is queueing somewhere, so shrink.  That
  fills the link without a standing queue, and chat frames sharing the
  connection never wait behind megabytes of file.

How a driver (the client's writer thread, a test, a notebook) uses it.

Sending::

    t = OutgoingTransfer(stream_id, size, sha256, read=file_reader(f),
                         strategy=make_strategy("adaptive"))
    send(t.offer(peer="bob", name="report.pdf"))
    # then, for every FileAccept / FileAck / FileDone / FileReject / FileCancel
    # frame with this stream id:
    for message in t.handle(now(), message):
        send(message)                        # FileChunk ... then one FileDone
    # and whenever t.wake_at(now()) comes due (SleepPaced's pause):
    for message in t.messages_to_send(now()):
        send(message)
    # t.done / t.failed say when it is over; t.stats(), t.trace for plots.

Receiving::

    t = IncomingTransfer(offer, download_dir)   # UnsafeFileName if the name is hostile
    send(t.accept())                            # FileAccept(offset=bytes already in NAME.part)
    # then, for every FileChunk / FileDone / FileCancel frame with this stream id:
    for message in t.handle(message):
        send(message)                           # a FileAck per chunk, a FileDone at the end
    # t.path is the finished file once t.done; t.close() on disconnect.

Either side: if ``handle`` raises :class:`TransferError`, the transfer is
over; send the peer ``t.cancel(str(exc))`` and tell the person why.  (A
peer that breaks the transfer protocol raises :class:`TransferProtocolError`,
which is also a :class:`~chatlab.errors.RemoteProtocolError`: catch
``TransferError`` first if only the one transfer should end, not the
connection.)  A hostile file name fails already in ``IncomingTransfer(...)``
with :class:`UnsafeFileName`: answer ``FileReject(offer.stream_id, str(exc))``.

Neither object is thread-safe: drive each from one thread, or hold a lock.
"""

from __future__ import annotations

from .errors import (  # noqa: F401
    ChecksumMismatch,
    TransferProtocolError,
    UnsafeFileName,
)
from .files import (  # noqa: F401
    BIDI_CONTROLS,
    MAX_NAME_BYTES,
    PART_SUFFIX,
    WINDOWS_DEVICE_NAMES,
    WINDOWS_FORBIDDEN_CHARS,
    PartFile,
    free_path,
    safe_filename,
)
from .receiver import (  # noqa: F401
    IncomingTransfer,
    ToSender,
)
from .sender import (  # noqa: F401
    SHA256_HEX,
    OutgoingTransfer,
    ToReceiver,
    TransferState,
    TransferStats,
    file_reader,
    sha256_file,
)
from .strategies import (  # noqa: F401
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    STRATEGIES,
    AdaptiveWindow,
    FixedWindow,
    KiB,
    MiB,
    SendStrategy,
    SleepPaced,
    TraceRow,
    make_strategy,
)

__all__ = [
    "ChecksumMismatch",
    "TransferProtocolError",
    "UnsafeFileName",
    "AdaptiveWindow",
    "DEFAULT_CHUNK_SIZE",
    "FixedWindow",
    "KiB",
    "make_strategy",
    "MAX_CHUNK_SIZE",
    "MiB",
    "SendStrategy",
    "SleepPaced",
    "STRATEGIES",
    "TraceRow",
    "file_reader",
    "OutgoingTransfer",
    "sha256_file",
    "SHA256_HEX",
    "ToReceiver",
    "TransferState",
    "TransferStats",
    "BIDI_CONTROLS",
    "free_path",
    "MAX_NAME_BYTES",
    "PART_SUFFIX",
    "PartFile",
    "safe_filename",
    "WINDOWS_DEVICE_NAMES",
    "WINDOWS_FORBIDDEN_CHARS",
    "IncomingTransfer",
    "ToSender",
]
