"""Every error chatlab raises on purpose derives from :class:`ChatlabError`.

Protocol errors are split by who is at fault, as h11 and wsproto do:
:class:`LocalProtocolError` means *this* program used the protocol wrong,
:class:`RemoteProtocolError` means the peer sent something invalid.  Socket
failures are mapped in one place, :func:`translate_socket_errors`, onto
:class:`ConnectionClosed` (we closed it) and :class:`ConnectionBroken` (the
network or the peer failed), as trio names them.
"""

from __future__ import annotations

import contextlib
import errno
from typing import Callable, Iterator


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


class MessageTooLong(LocalProtocolError):
    """A chat line (or whisper) too long for one frame; nothing was sent.

    Checked before sending, because the server drops a client that sends a
    frame over its limit.  ``size`` is the text's length on the wire (bytes
    of UTF-8, JSON escapes included), ``limit`` the most a line may have.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"line not sent: it is {size:,} bytes long (UTF-8) and a line may be at most {limit:,} bytes "
                         "(the server may allow fewer characters)")
        self.size = size
        self.limit = limit


class ConnectionClosed(ChatlabError):
    """The connection is closed: we closed it, or it has already ended and this call came too late."""


class ConnectionBroken(ChatlabError):
    """The connection failed: reset by the peer, timed out or unreachable."""


class IncompleteReadError(ChatlabError, EOFError):
    """The stream ended before ``expected`` bytes arrived; ``partial`` holds those that did.

    :func:`chatlab.streams.recv_exact` raises it, with the contract of asyncio's
    ``StreamReader.readexactly`` and its ``IncompleteReadError``: all ``n`` bytes, or
    this error carrying the fewer bytes read before the peer closed.
    """

    def __init__(self, partial: bytes, expected: int) -> None:
        super().__init__(f"the peer closed after {len(partial)} of {expected} expected bytes")
        self.partial = partial
        self.expected = expected


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


# errno values that mean "this socket was closed on our side", as trio counts them.
_CLOSED_ERRNOS = frozenset({errno.EBADF, getattr(errno, "ENOTSOCK", errno.EBADF)})


@contextlib.contextmanager
def translate_socket_errors(what: str, closed_by_us: Callable[[], bool] = lambda: False) -> Iterator[None]:
    """Turn an :class:`OSError` from a socket call into a chatlab error.  The one place it happens.

    Modelled on trio's ``_translate_socket_errors_to_stream_errors``:
    :class:`ConnectionClosed` means *we* closed the socket (``closed_by_us()``
    is true, or the socket is already gone), :class:`ConnectionBroken` means
    the peer or the network failed (reset, timed out, unreachable).  ``what``
    names the operation for the message, e.g. ``"sending"``.

    Example::

        with translate_socket_errors("sending", lambda: self.closing):
            sock.sendall(data)
    """
    try:
        yield
    except OSError as exc:
        if closed_by_us() or exc.errno in _CLOSED_ERRNOS:
            raise ConnectionClosed(f"{what}: the connection was closed on this side") from None
        if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since 3.10
            raise ConnectionBroken(f"{what}: timed out") from exc
        raise ConnectionBroken(f"{what}: {exc.strerror or exc}") from exc
