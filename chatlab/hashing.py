"""A SHA-256 that runs beside the thread that receives: the receiver's check without its cost on the critical path.

A receiving client writes every byte of a file and hashes it.  Done one after
the other in the reader thread, hashing takes about as long as receiving and
writing together (SHA-256 runs at roughly 1 GB/s here).  ``hashlib`` releases
the GIL while it hashes a large buffer, so a second thread can hash one chunk
while the reader receives and writes the next: on two cores the check becomes
almost free.

The bytes handed to :meth:`BackgroundSha256.update` are hashed later, so they
must not change until then.  A relayed chunk is a buffer of its own (see
``FrameDecoder.payload_buffer``); the direct path recycles a ring of
``PENDING + 2`` buffers, which is safe because at most ``PENDING`` updates wait
in the queue and one is being hashed: a buffer comes round again only after
the ``PENDING + 1`` updates given after it, so it has been hashed by then.
"""

from __future__ import annotations

import hashlib
import queue
import threading

from .errors import TransferError

PENDING = 4  # updates waiting at most (bounded memory: ~4 chunks); update() blocks beyond
SMALL = 64 * 1024  # until the first update this big, hash in the caller's thread (no thread for a small file)


class BackgroundSha256:
    """``hashlib.sha256()``'s ``update`` and ``hexdigest``, with the hashing done in a thread of its own.

    Updates are hashed in the order given; :meth:`hexdigest` waits until every
    one is done.  :meth:`close` ends the thread (after what is queued).
    """

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._queue: queue.Queue[bytes | bytearray | memoryview | None] = queue.Queue(maxsize=PENDING)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._error: Exception | None = None  # what went wrong in the thread, told by hexdigest()

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        if self._closed and self._thread is not None:
            return  # the file was closed: nobody will ask for this digest
        if self._thread is None:
            if len(data) < SMALL or self._closed:
                self._sha.update(data)
                return
            self._thread = threading.Thread(target=self._run, name="chatlab-sha256", daemon=True)
            self._thread.start()
        self._queue.put(data)

    def _run(self) -> None:
        while True:
            data = self._queue.get()
            try:
                if data is None:
                    return
                if self._error is None:
                    self._sha.update(data)  # releases the GIL for large buffers: it runs beside the reader
            except Exception as exc:  # noqa: BLE001 - never a thread traceback; hexdigest() says it
                self._error = exc
            finally:
                self._queue.task_done()

    def hexdigest(self) -> str:
        """The digest of everything given so far (waits for the thread to catch up).

        Raises:
            TransferError: hashing failed in the thread.
        """
        if self._thread is not None:
            self._queue.join()
        if self._error is not None:
            raise TransferError(f"hashing the file failed: {self._error}")
        return self._sha.hexdigest()

    def close(self) -> None:
        """End the thread once what is queued is hashed (the file was closed or committed)."""
        if self._thread is not None and not self._closed:
            self._queue.put(None)
        self._closed = True


__all__ = ["BackgroundSha256", "PENDING"]
