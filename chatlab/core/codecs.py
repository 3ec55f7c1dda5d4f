"""Codecs: how one connection's bytes become chat events, and chat events bytes again.

The chat core (:mod:`chatlab.core.chatroom`) speaks only :mod:`chatlab.core.protocol`
message objects.  A *codec* sits between it and one connection's bytes, with
the pull interface h11 made familiar::

    codec.feed(data)                  # bytes from the client, split anywhere
    while (event := codec.next_event()) is not None:
        ...                           # a Message for the chat core, a transfer Frame
                                      # for the file relay, or bytes to send straight back
    sock.send(codec.encode(message))  # server -> this client

Which codec a connection gets is decided by its first bytes (:func:`sniff`):
chatlab's magic byte followed by the protocol version is the binary framing of
:mod:`chatlab.core.protocol`; anything else is text.  A GBK or UTF-8 text client may
well send ``0xC4`` first, which is why the version byte is checked too.

Text is IRC (:class:`chatlab.core.irc.IrcCodec`), so ``nc``, ``telnet`` and IRC
clients share the rooms.  Plugging in another text codec is one line:
``TEXT_CODEC = MyTextCodec`` (or pass ``text_codec=`` to :func:`sniff` /
``chatlab.Server``); :class:`RefuseText` answers text clients the way the server
did before it spoke IRC: with a binary ``protocol-error`` frame, then the
connection closes.
"""

from __future__ import annotations

from typing import Callable, ClassVar, Protocol, Union

from ..errors import RemoteProtocolError
from . import protocol as p
from .irc import IrcCodec

Event = Union[p.Message, p.Frame, bytes]  # what next_event() returns, besides None


class Codec(Protocol):
    """What the server needs from one connection's framing.

    A codec class may also set two optional attributes, which the server reads
    with ``getattr``: ``shared_encoding = True`` when ``encode()`` does not depend
    on the connection (a broadcast is then encoded once, and the same bytes are
    queued for every member using that codec), and ``nick_retries = True`` when a
    bad or taken nickname should leave the client connected and unregistered, so
    it can try again (IRC's ``433``, then another ``NICK``).  A codec whose bytes depend on
    the connection for some messages only may offer ``encode_shared(message) -> bytes | None``:
    the bytes every member but the message's sender gets (IRC: a room's chat line), or
    ``None`` to be asked per member.

    A codec may also offer ``payload_buffer() -> memoryview | None`` and
    ``received(n)`` (the binary codec does): the server then ``recv_into``s a
    big payload's own buffer, so a file chunk is copied once on its way in and
    forwarded from that same buffer.
    """

    accepts_files: bool  # False for text (IRC) clients: file offers to them are refused

    def feed(self, data: bytes) -> None:
        """Bytes received from the client, split anywhere."""

    def next_event(self) -> Event | None:
        """The next complete event, or ``None`` when more bytes are needed.

        A :class:`chatlab.core.protocol` message for the chat core, a transfer
        :class:`~chatlab.core.protocol.Frame` for the file relay (binary only), or
        ``bytes`` to send straight back to this client (the codec's own reply).

        Raises:
            RemoteProtocolError: the connection cannot go on (the server tells
                the client why, then closes it).
        """

    def encode(self, message: p.Message) -> bytes:
        """``message`` as this client's bytes; ``b""`` when it has no way to show it."""


CodecFactory = Callable[[int], Codec]  # called with max_payload


class BinaryCodec:
    """chatlab's own length-prefixed frames (:mod:`chatlab.core.protocol`)."""

    accepts_files = True
    # encode() does not depend on the connection: a broadcast is encoded once and the
    # same bytes are queued for every binary member (fan-out's hot path).
    shared_encoding: ClassVar[bool] = True

    def __init__(self, max_payload: int = p.MAX_PAYLOAD) -> None:
        self.decoder = p.FrameDecoder(max_payload)

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as events (the hostile-input tests watch it)."""
        return self.decoder.buffered

    def feed(self, data: bytes) -> None:
        self.decoder.feed(data)

    def payload_buffer(self) -> memoryview | None:
        """Where a big payload's next bytes go, to ``recv_into`` (see :meth:`FrameDecoder.payload_buffer`)."""
        return self.decoder.payload_buffer()

    def received(self, n: int) -> None:
        self.decoder.received(n)

    def next_event(self) -> p.Message | p.Frame | None:
        frame = self.decoder.next_frame()
        if frame is None:
            return None
        if frame.type in p.TRANSFER_TYPES:
            return frame  # the relay forwards these untouched; it decodes only what it must
        return p.decode_message(frame)

    def encode(self, message: p.Message) -> bytes:
        return p.encode(message)


class RefuseText(BinaryCodec):
    """Today's answer to a client that does not speak chatlab frames: a clear error, then close.

    The error is a binary frame (that is what the server always sent): the frame
    decoder itself reports the bad magic byte.  A text codec that speaks the
    client's language replaces this class.
    """

    accepts_files = False

    def next_event(self) -> p.Message | p.Frame | None:
        frame = self.decoder.next_frame()  # raises RemoteProtocolError for text
        if frame is None:
            return None
        raise RemoteProtocolError("not a chatlab frame")  # pragma: no cover - a whole frame means it was binary


#: The codec for connections that do not start with chatlab's magic and version.
TEXT_CODEC: CodecFactory = IrcCodec

SNIFF_BYTES = 2  # magic + version: enough to tell the framings apart


def sniff(first_bytes: bytes, text_codec: CodecFactory | None = None, max_payload: int = p.MAX_PAYLOAD) -> Codec | None:
    """Choose a codec from a connection's first bytes; ``None`` until there are enough of them.

    ``0xC4`` then the protocol VERSION byte is chatlab's binary framing;
    anything else is text.  One byte ``0xC4`` alone is not enough to decide.
    """
    if not first_bytes:
        return None
    if first_bytes[0] == p.MAGIC:
        if len(first_bytes) < SNIFF_BYTES:
            return None
        if first_bytes[1] == p.VERSION or first_bytes[1] < 0x40:
            # Ours, or chatlab frames of another version: no text has 0xC4 then a byte below 0x40
            # (in UTF-8 a continuation byte 0x80-0xBF follows, in GBK 0x40-0xFE), so the binary
            # decoder answers, in frames, that the version is not supported.
            return BinaryCodec(max_payload)
    return (text_codec or TEXT_CODEC)(max_payload)


__all__ = ["Codec", "CodecFactory", "Event", "BinaryCodec", "RefuseText", "TEXT_CODEC", "sniff", "SNIFF_BYTES"]
