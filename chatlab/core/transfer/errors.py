"""Why a transfer failed: the errors the engine raises (the base TransferError is in chatlab.errors)."""

from __future__ import annotations

from ...errors import RemoteProtocolError, TransferError

# --------------------------------------------------------------------------
# Errors.  The base TransferError lives in chatlab.errors; these say which
# way a transfer went wrong.
# --------------------------------------------------------------------------


class TransferProtocolError(TransferError, RemoteProtocolError):
    """The peer broke the transfer protocol on one stream.

    A chunk at the wrong offset, an ack that goes backwards, a FileDone
    before every byte arrived.  It is a :class:`TransferError` (so a driver
    cancels this one transfer) *and* a :class:`RemoteProtocolError` (the
    peer is at fault), so either ``except`` clause catches it.
    """


class UnsafeFileName(TransferError):
    """The sender's file name is not safe to create in the download directory."""

    def __init__(self, name: str, reason: str) -> None:
        shown = name if len(name) <= 80 else name[:77] + "..."
        super().__init__(f"refusing file name {shown!r}: {reason}")
        self.name = name
        self.reason = reason


class ChecksumMismatch(TransferError):
    """Every byte arrived, but their SHA-256 is not the one the sender offered."""

    def __init__(self, name: str, expected: str, actual: str) -> None:
        super().__init__(f"{name}: SHA-256 mismatch (offered {expected[:16]}..., received {actual[:16]}...)")
        self.expected = expected
        self.actual = actual
