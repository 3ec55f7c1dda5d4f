"""Every error chatlab raises on purpose derives from :class:`ChatlabError`.

Protocol errors are split by who is at fault, as h11 and wsproto do:
:class:`LocalProtocolError` means *this* program used the protocol wrong,
:class:`RemoteProtocolError` means the peer sent something invalid.  Socket
failures are mapped in one place onto :class:`ConnectionClosed` (we, or the
peer politely, closed it) and :class:`ConnectionBroken` (the network or the
peer failed), as trio names them.
"""

from __future__ import annotations


class ChatlabError(Exception):
    """Base class for every error chatlab raises on purpose."""


class ProtocolError(ChatlabError):
    """Bytes on the wire that break the chatlab protocol."""


class LocalProtocolError(ProtocolError):
    """This side tried to send something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that are not a valid chatlab frame or message."""


class FrameTooLarge(RemoteProtocolError):
    """A frame header announced a payload bigger than the receiver accepts.

    Raised from the header alone, before any of the payload is buffered, so a
    peer claiming a 4 GiB frame costs the receiver nothing.
    """

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"frame payload of {length} bytes exceeds the limit of {limit} bytes")
        self.length = length
        self.limit = limit


class ConnectionClosed(ChatlabError):
    """The connection was closed (by us, or by the peer in an orderly way)."""


class ConnectionBroken(ChatlabError):
    """The connection failed: reset by the peer, timed out or unreachable."""


class ServerError(ChatlabError):
    """The server refused a request; ``code`` says why in one word."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


class NickError(ServerError):
    """The server refused a nickname (taken, reserved or malformed)."""


class TransferError(ChatlabError):
    """A file transfer failed, was rejected or was cancelled."""
