"""The chatlab wire protocol, sans-I/O.

This module contains no networking code at all: no sockets, no threads, no
clocks.  You turn messages into bytes with :func:`encode`, and you turn bytes
back into messages by feeding them to a :class:`FrameDecoder` in whatever
pieces the network delivered them, then pulling whole frames out.  It is tested by
feeding it bytes (``tests/core/test_protocol.py``); the server, the client and the notebooks share it.

Every frame is a 12-byte header packed with :mod:`struct` in network byte
order (big-endian), followed by ``length`` bytes of payload::

     0        1        2        3        4                 8                 12
    +--------+--------+--------+--------+--------+--------+--------+--------+--- - -
    | magic  |version |  type  | flags  |     stream id (u32)  | length (u32)    | payload ...
    |  0xC4  |  0x01  |        |        |                      |                 |
    +--------+--------+--------+--------+--------+--------+--------+--------+--- - -

The decoder checks the header before it buffers a single payload byte, so a
peer that announces a 4 GiB frame gets :class:`~chatlab.errors.FrameTooLarge`
instead of costing the receiver 4 GiB.

Payloads: control and chat messages carry compact UTF-8 JSON (readable in a
frame log); the two hot-path transfer messages, :class:`FileChunk` and
:class:`FileAck`, carry packed binary.  ``docs/PROTOCOL.md`` has the details.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar, Iterator, NamedTuple, Union

from ..errors import FrameTooLarge, LocalProtocolError, RemoteProtocolError

MAGIC = 0xC4
VERSION = 1
HEADER = struct.Struct("!BBBBII")  # magic, version, type, flags, stream id, length
# flags: version 1 defines no bits; receivers ignore bits they do not know, so a later
# version can add one (say, compression) without breaking old peers.
HEADER_SIZE = HEADER.size  # 12
MAX_PAYLOAD = 256 * 1024  # default cap; a FileChunk of 64 KiB fits with room to spare
MAX_STREAM_ID = 2**32 - 1
# A client numbers the transfers it sends 1 .. 2**31-1; the server numbers the
# ones it forwards *to* a client with this bit set, so the two never collide.
INCOMING_STREAM_BIT = 0x8000_0000

CHUNK_PREFIX = struct.Struct("!Q")  # FileChunk: byte offset of this chunk in the file
ACK_BODY = struct.Struct("!Q")  # FileAck: bytes safely written so far (cumulative)


class FrameType(IntEnum):
    """What a frame's payload is.  The value is the ``type`` byte of the header."""

    # session
    HELLO = 0x01
    WELCOME = 0x02
    ERROR = 0x03
    PING = 0x04
    PONG = 0x05
    QUIT = 0x06
    # chat, client -> server
    SAY = 0x10
    WHISPER = 0x11
    JOIN = 0x12
    LEAVE = 0x13
    WHO = 0x14
    NICK = 0x15  # rename myself
    KICK = 0x16  # an operator removes someone from a room
    TOPIC = 0x17  # ask for, or set, a room's topic
    MODE = 0x18  # ask for, or change, a room's (or my own) modes
    INVITE = 0x19  # invite someone into a room
    AWAY = 0x1A  # mark myself away (with a message) or back
    OPER = 0x1B  # become a server operator (name and password from the server's --oper)
    WALLOPS = 0x1C  # an operator's message to every user with mode +w
    # chat, server -> client
    CHAT = 0x20
    PRIVATE = 0x21
    NOTICE = 0x22
    WHO_REPLY = 0x23
    # file transfer; the header's stream id says which transfer a frame belongs to
    FILE_OFFER = 0x30
    FILE_ACCEPT = 0x31
    FILE_REJECT = 0x32
    FILE_CHUNK = 0x33
    FILE_ACK = 0x34
    FILE_DONE = 0x35
    FILE_CANCEL = 0x36


class FrameHeader(NamedTuple):
    """The 12 fixed bytes in front of every payload, unpacked."""

    magic: int
    version: int
    type: int
    flags: int
    stream_id: int
    length: int


class Frame(NamedTuple):
    """One complete frame: its type, flags, stream id and raw payload bytes."""

    type: FrameType
    flags: int
    stream_id: int
    payload: bytes


def pack_header(frame_type: int, length: int, stream_id: int = 0, flags: int = 0) -> bytes:
    """Pack a frame header.  Raises :class:`LocalProtocolError` on bad values."""
    if not 0 <= length <= 0xFFFFFFFF:
        raise LocalProtocolError(f"payload length {length} does not fit in 32 bits")
    if not 0 <= stream_id <= MAX_STREAM_ID:
        raise LocalProtocolError(f"stream id {stream_id} does not fit in 32 bits")
    return HEADER.pack(MAGIC, VERSION, int(frame_type), flags, stream_id, length)


def parse_header(data: bytes | bytearray | memoryview, max_payload: int = MAX_PAYLOAD) -> FrameHeader:
    """Unpack and check the first :data:`HEADER_SIZE` bytes of ``data``.

    Raises:
        RemoteProtocolError: wrong magic byte, unknown version or frame type.
        FrameTooLarge: the announced payload is bigger than ``max_payload``.
    """
    header = FrameHeader(*HEADER.unpack_from(data))
    if header.magic != MAGIC:
        shown = chr(header.magic) if 32 <= header.magic < 127 else "?"
        raise RemoteProtocolError(
            f"bad magic byte 0x{header.magic:02x} ({shown!r}), expected 0x{MAGIC:02x}: "
            "this is not a chatlab frame"
        )
    if header.version != VERSION:
        raise RemoteProtocolError(f"unsupported protocol version {header.version} (this is {VERSION})")
    try:
        FrameType(header.type)
    except ValueError:
        raise RemoteProtocolError(f"unknown frame type 0x{header.type:02x}") from None
    if header.length > max_payload:
        raise FrameTooLarge(header.length, max_payload)
    return header


class FrameDecoder:
    """Turns a byte stream, split anywhere, into whole :class:`Frame` objects.

    TCP delivers a stream of bytes, not messages: one ``recv()`` may hold half
    a header, or ten frames.  Feed every piece to :meth:`feed` and pull
    frames with :meth:`next_frame` (``None`` means "need more bytes") or
    iterate over the decoder.  After a protocol error the decoder stays
    broken: the stream can no longer be trusted to be in sync.

    Example::

        decoder = FrameDecoder()
        decoder.feed(sock.recv(65536))
        for frame in decoder:
            handle(decode_message(frame))

    Big payloads (file chunks) can skip the decoder's buffer: once a frame's
    header is known, :meth:`payload_buffer` gives the part of that frame's
    payload still missing, to ``recv_into`` directly (then :meth:`received`).
    The kernel copies the bytes once, into the buffer that becomes the frame's
    payload (a ``bytearray``), and a relay can hand it on to ``sendmsg`` as is.
    """

    BIG_PAYLOAD = 64 * 1024  # payloads this big are worth a buffer of their own

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._buffer = bytearray()
        self._start = 0  # frames are consumed from here; compacted lazily
        self._header: FrameHeader | None = None
        self._error: RemoteProtocolError | None = None
        self._payload: bytearray | None = None  # a big payload being received in place
        self._filled = 0  # bytes of it so far

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a frame."""
        return len(self._buffer) - self._start + (self._filled if self._payload is not None else 0)

    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer."""
        if self._error is not None:
            raise self._error
        if self._payload is not None and self._filled < len(self._payload):  # the big payload comes first
            take = min(len(data), len(self._payload) - self._filled)
            self._payload[self._filled : self._filled + take] = data[:take]
            self._filled += take
            data = data[take:]
        self._buffer += data

    def payload_buffer(self) -> memoryview | None:
        """Where the next bytes should go to land in a big frame's payload without a copy, or ``None``.

        Only after :meth:`next_frame` returned ``None`` with the header of a
        frame of at least :attr:`BIG_PAYLOAD` bytes read: then ``n =
        sock.recv_into(view)`` and :meth:`received` ``(n)``.  Otherwise use
        :meth:`feed`.
        """
        header = self._header
        if header is None or header.length < self.BIG_PAYLOAD or self._error is not None:
            return None
        if self._payload is not None and self._filled >= header.length:
            return None  # complete: next_frame() returns it
        if self._payload is None:  # move what the buffer already holds of this payload into its own buffer
            have = len(self._buffer) - self._start
            self._payload = bytearray(header.length)
            self._payload[:have] = memoryview(self._buffer)[self._start :]
            self._filled = have
            del self._buffer[:]
            self._start = 0
        return memoryview(self._payload)[self._filled :]

    def received(self, n: int) -> None:
        """``n`` bytes were written into the view :meth:`payload_buffer` returned."""
        self._filled += n

    def next_frame(self) -> Frame | None:
        """Return the next complete frame, or ``None`` if more bytes are needed.

        Raises:
            RemoteProtocolError, FrameTooLarge: the bytes are not chatlab frames.
        """
        if self._error is not None:
            raise self._error
        if self._header is None:
            if self.buffered < HEADER_SIZE:
                return None
            try:
                self._header = parse_header(
                    memoryview(self._buffer)[self._start : self._start + HEADER_SIZE], self.max_payload
                )
            except RemoteProtocolError as exc:
                self._error = exc
                raise
            self._start += HEADER_SIZE
        header = self._header
        if self._payload is not None:
            if self._filled < header.length:
                return None
            big, self._payload, self._header = self._payload, None, None
            return Frame(FrameType(header.type), header.flags, header.stream_id, big)  # type: ignore[arg-type]
        if self.buffered < header.length:
            return None
        with memoryview(self._buffer) as view:  # one copy, straight into the payload's bytes
            payload = bytes(view[self._start : self._start + header.length])
        self._start += header.length
        self._header = None
        if self._start > 65536 and self._start * 2 > len(self._buffer):
            del self._buffer[: self._start]  # compact now and then, not on every frame
            self._start = 0
        return Frame(FrameType(header.type), header.flags, header.stream_id, payload)

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.next_frame()) is not None:
            yield frame


# --------------------------------------------------------------------------
# Messages: what a frame's payload means.  Small frozen dataclasses, one per
# frame type.  A ``stream_id`` field travels in the header, every other field
# in the payload.
# --------------------------------------------------------------------------


# Fields added after version 1's release: left out at their default, so old peers' frames stay byte for byte.
LATER = {"omit_default": True}


@dataclass(frozen=True)
class Hello:
    """Client -> server, first frame: who I am (``user``, ``realname``: IRC's USER; ``lobby``: the default room?)."""

    TYPE: ClassVar[FrameType] = FrameType.HELLO
    nick: str
    password: str = ""
    user: str = field(default="", metadata=LATER)
    realname: str = field(default="", metadata=LATER)
    lobby: bool = field(default=True, metadata=LATER)


@dataclass(frozen=True)
class Welcome:
    """Server -> client: the nick was accepted (as normalised) and placed in ``room``."""

    TYPE: ClassVar[FrameType] = FrameType.WELCOME
    nick: str
    room: str
    motd: str = ""


@dataclass(frozen=True)
class ErrorMessage:
    """Server -> client: a request was refused.  ``code`` is one word (``nick-taken``); ``subject``: about what."""

    TYPE: ClassVar[FrameType] = FrameType.ERROR
    code: str
    text: str
    subject: str = field(default="", metadata=LATER)


@dataclass(frozen=True)
class Ping:
    """Keepalive: the receiver answers with a :class:`Pong` carrying the same token."""

    TYPE: ClassVar[FrameType] = FrameType.PING
    token: int = 0


@dataclass(frozen=True)
class Pong:
    TYPE: ClassVar[FrameType] = FrameType.PONG
    token: int = 0


@dataclass(frozen=True)
class Quit:
    """Client -> server: I am leaving, tell the others why."""

    TYPE: ClassVar[FrameType] = FrameType.QUIT
    reason: str = ""


@dataclass(frozen=True)
class Say:
    """Client -> server: a message to my current room (``action`` for ``/me``)."""

    TYPE: ClassVar[FrameType] = FrameType.SAY
    text: str
    action: bool = False
    room: str = field(default="", metadata=LATER)  # "": my current room
    notice: bool = field(default=False, metadata=LATER)  # IRC NOTICE: never answered automatically


@dataclass(frozen=True)
class Whisper:
    """Client -> server: a private message to one nick."""

    TYPE: ClassVar[FrameType] = FrameType.WHISPER
    to: str
    text: str
    action: bool = False
    notice: bool = field(default=False, metadata=LATER)  # IRC NOTICE: no error back, no away reply


@dataclass(frozen=True)
class Join:
    """Client -> server: move me to ``room`` (created if new: then I am its operator); ``stay``: join it as well."""

    TYPE: ClassVar[FrameType] = FrameType.JOIN
    room: str
    password: str = ""
    stay: bool = field(default=False, metadata=LATER)


@dataclass(frozen=True)
class Leave:
    """Client -> server: leave ``room``; without one, leave my current room for the default room."""

    TYPE: ClassVar[FrameType] = FrameType.LEAVE
    room: str = field(default="", metadata=LATER)
    reason: str = field(default="", metadata=LATER)


@dataclass(frozen=True)
class Who:
    """Client -> server: who is online, and which rooms exist?  With a field, the details
    (:class:`WhoReply`'s later fields) of a ``room``, a ``nick``, everything (``full``), or WHOWAS (``was``)."""

    TYPE: ClassVar[FrameType] = FrameType.WHO
    room: str = field(default="", metadata=LATER)
    nick: str = field(default="", metadata=LATER)
    was: str = field(default="", metadata=LATER)
    full: bool = field(default=False, metadata=LATER)


from .room_messages import Away, Invite, Kick, Mode, Nick, Oper, Topic, Wallops, short_reprs  # noqa: E402


@dataclass(frozen=True)
class ChatMessage:
    """Server -> client: ``sender`` said ``text`` in ``room``."""

    TYPE: ClassVar[FrameType] = FrameType.CHAT
    room: str
    sender: str
    text: str
    action: bool = False
    notice: bool = field(default=False, metadata=LATER)


@dataclass(frozen=True)
class PrivateMessage:
    """Server -> client: ``sender`` whispered ``text`` to ``to``."""

    TYPE: ClassVar[FrameType] = FrameType.PRIVATE
    sender: str
    to: str
    text: str
    action: bool = False
    notice: bool = field(default=False, metadata=LATER)


@dataclass(frozen=True)
class Notice:
    """Server -> client: something happened.  ``kind``: ``join``, ``leave``, ``quit``, ``flood``, ``info``,
    ``nick``, ``kick``, ``topic``, ``mode``, ``invite``, ``away``, ``oper``, ``wallops`` (what ``target`` and
    ``detail`` hold for each: docs/PROTOCOL.md)."""

    TYPE: ClassVar[FrameType] = FrameType.NOTICE
    kind: str
    text: str
    nick: str = ""
    room: str = ""
    target: str = field(default="", metadata=LATER)
    detail: str = field(default="", metadata=LATER)


@dataclass(frozen=True)
class WhoReply:
    """Server -> client: ``users`` maps each nick online to its room, ``rooms`` each room to its size."""

    TYPE: ClassVar[FrameType] = FrameType.WHO_REPLY
    users: dict[str, str] = field(default_factory=dict)
    rooms: dict[str, int] = field(default_factory=dict)
    # The answers to a Who with fields (their keys: docs/PROTOCOL.md); empty otherwise, and then not sent.
    people: dict[str, dict] = field(default_factory=dict, metadata=LATER)
    channels: dict[str, dict] = field(default_factory=dict, metadata=LATER)
    history: list[dict] = field(default_factory=list, metadata=LATER)
    stats: dict[str, int] = field(default_factory=dict, metadata=LATER)


@dataclass(frozen=True)
class FileOffer:
    """I would like to send a file.  ``peer`` is the receiver when a client sends
    it, and the sender when the server forwards it.

    ``sha256`` is the whole file's digest, or ``""`` when it comes at the end, in
    the sender's :class:`FileDone` (the sender hashes while it reads).  ``token``,
    when not empty, offers a direct connection: 32 hex digits the sender will
    present on it (see docs/PROTOCOL.md, "The direct path").
    """

    TYPE: ClassVar[FrameType] = FrameType.FILE_OFFER
    stream_id: int
    peer: str
    name: str
    size: int
    sha256: str
    token: str = field(default="", metadata=LATER)


@dataclass(frozen=True)
class FileAccept:
    """Receiver: send it, starting at byte ``offset`` (non-zero to resume).

    ``direct``: the ``host:port`` the receiver listens on for the direct connection (only in
    answer to an offer with a ``token``); ``tls``: the SHA-256 (hex) of the certificate that
    listener presents, so the direct connection runs TLS, pinned to it.
    """

    TYPE: ClassVar[FrameType] = FrameType.FILE_ACCEPT
    stream_id: int
    offset: int = 0
    direct: str = field(default="", metadata=LATER)
    tls: str = field(default="", metadata=LATER)


@dataclass(frozen=True)
class FileReject:
    TYPE: ClassVar[FrameType] = FrameType.FILE_REJECT
    stream_id: int
    reason: str = ""


@dataclass(frozen=True)
class FileChunk:
    """``data`` belongs at byte ``offset`` of the file.  Binary payload: u64 offset + data."""

    TYPE: ClassVar[FrameType] = FrameType.FILE_CHUNK
    stream_id: int
    offset: int
    data: bytes


@dataclass(frozen=True)
class FileAck:
    """Receiver: ``received`` bytes are safely written (cumulative, as IRC DCC acks)."""

    TYPE: ClassVar[FrameType] = FrameType.FILE_ACK
    stream_id: int
    received: int


@dataclass(frozen=True)
class FileDone:
    """Sender: every byte was sent (``sha256``: the file's digest, if the offer had none).
    Receiver: every byte was written and verified."""

    TYPE: ClassVar[FrameType] = FrameType.FILE_DONE
    stream_id: int
    sha256: str = field(default="", metadata=LATER)


@dataclass(frozen=True)
class FileCancel:
    """Either side: this transfer is over, and here is why."""

    TYPE: ClassVar[FrameType] = FrameType.FILE_CANCEL
    stream_id: int
    reason: str = ""


Message = Union[
    Hello, Welcome, ErrorMessage, Ping, Pong, Quit, Say, Whisper, Join, Leave, Who,
    Nick, Kick, Topic, Mode, Invite, Away, Oper, Wallops,
    ChatMessage, PrivateMessage, Notice, WhoReply,
    FileOffer, FileAccept, FileReject, FileChunk, FileAck, FileDone, FileCancel,
]  # fmt: skip

MESSAGE_TYPES: dict[FrameType, type] = {
    cls.TYPE: cls
    for cls in (
        Hello, Welcome, ErrorMessage, Ping, Pong, Quit, Say, Whisper, Join, Leave, Who,
        Nick, Kick, Topic, Mode, Invite, Away, Oper, Wallops,
        ChatMessage, PrivateMessage, Notice, WhoReply,
        FileOffer, FileAccept, FileReject, FileChunk, FileAck, FileDone, FileCancel,
    )
}  # fmt: skip



short_reprs(MESSAGE_TYPES.values())  # room_messages.py: reprs without later fields at their default

# Transfer frames are the only ones whose stream id means something.
TRANSFER_TYPES = frozenset(t for t in FrameType if t >= FrameType.FILE_OFFER)

# The JSON type each annotated field must have on the wire (bool is checked
# before int, because in Python a bool *is* an int).
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "bool": (bool,),
    "dict[str, str]": (dict,),
    "dict[str, int]": (dict,),
    "dict[str, dict]": (dict,),
    "list[str]": (list,),
    "list[dict]": (list,),
}
# What the items of a list or the values of a dict must be (checked too: a list of
# numbers where names are expected is the peer's error, not a crash later).
_ITEM_TYPES: dict[str, type] = {"dict[str, str]": str, "dict[str, int]": int, "dict[str, dict]": dict,
                                "list[str]": str, "list[dict]": dict}


def encode(message: Message, flags: int = 0) -> bytes:
    """Encode one message as a complete frame (header + payload)."""
    stream_id = getattr(message, "stream_id", 0)
    if isinstance(message, FileChunk):
        return encode_chunk(stream_id, message.offset, message.data)
    if isinstance(message, FileAck):
        payload = ACK_BODY.pack(message.received)
    else:
        body = {f.name: getattr(message, f.name) for f in dataclasses.fields(message)
                if f.name != "stream_id" and not (f.metadata.get("omit_default") and _is_default(message, f))}
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8") if body else b""
    return pack_header(message.TYPE, len(payload), stream_id, flags) + payload


def _is_default(message: Message, f: dataclasses.Field[Any]) -> bool:
    value = getattr(message, f.name)
    if f.default_factory is not dataclasses.MISSING:
        return bool(value == f.default_factory())
    return bool(value == f.default)


def encode_chunk(stream_id: int, offset: int, data: bytes) -> bytes:
    """Encode a :class:`FileChunk` without building the dataclass (the hot path)."""
    length = CHUNK_PREFIX.size + len(data)
    return pack_header(FrameType.FILE_CHUNK, length, stream_id) + CHUNK_PREFIX.pack(offset) + data


def decode_message(frame: Frame) -> Message:
    """Turn a frame's payload into its message dataclass.

    Raises:
        RemoteProtocolError: the payload is not valid for the frame's type
            (bad UTF-8, bad JSON, a missing field or a field of the wrong type).
    """
    if frame.type is FrameType.FILE_CHUNK:  # the hot path, inline: the 8-byte offset, then the data
        if len(frame.payload) < CHUNK_PREFIX.size:
            raise RemoteProtocolError(f"FILE_CHUNK payload of {len(frame.payload)} bytes is shorter than its offset")
        (offset,) = CHUNK_PREFIX.unpack_from(frame.payload)
        data = frame.payload[CHUNK_PREFIX.size :] if isinstance(frame.payload, bytes) else \
            memoryview(frame.payload)[CHUNK_PREFIX.size :]  # a big payload received in place: no copy
        return FileChunk(frame.stream_id, offset, data)
    if frame.type is FrameType.FILE_ACK:
        return _decode_ack(frame)
    return _decode_json(frame)


def _decode_json(frame: Frame) -> Message:
    """A message whose payload is a JSON object: each field present with its JSON type, or defaulted."""
    cls = MESSAGE_TYPES[frame.type]
    name = frame.type.name
    body = _parse_json_object(frame.payload, name)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name == "stream_id":
            kwargs["stream_id"] = frame.stream_id
        elif f.name in body:
            kwargs[f.name] = _checked_field(name, f, body[f.name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise RemoteProtocolError(f"{name} is missing its {f.name!r} field")
    return cls(**kwargs)


def _decode_ack(frame: Frame) -> FileAck:
    if len(frame.payload) != ACK_BODY.size:
        raise RemoteProtocolError(f"FILE_ACK payload must be {ACK_BODY.size} bytes, got {len(frame.payload)}")
    return FileAck(frame.stream_id, ACK_BODY.unpack(frame.payload)[0])


def _checked_field(name: str, f: dataclasses.Field[Any], value: Any) -> Any:
    """``value`` if it has the JSON type field ``f`` of message ``name`` needs, else a RemoteProtocolError."""
    expected = _JSON_TYPES[str(f.type)]
    if not isinstance(value, expected) or (expected == (int,) and isinstance(value, bool)):
        raise RemoteProtocolError(f"{name} field {f.name!r} must be {str(f.type)}, got {type(value).__name__}")
    item = _ITEM_TYPES.get(str(f.type))
    if item is not None and not _items_are(value, item):  # type: ignore[arg-type]  # a list or a dict, checked above
        raise RemoteProtocolError(f"{name} field {f.name!r} must be {str(f.type)}")
    if isinstance(value, str) and not _encodable(value):
        # JSON's "\ud800" escape decodes to a lone surrogate, which no UTF-8 encoder accepts.
        raise RemoteProtocolError(f"{name} field {f.name!r} holds a lone surrogate, not text")
    return value


def _items_are(value: list[Any] | dict[str, Any], item: type) -> bool:
    items = value.values() if isinstance(value, dict) else value
    return all(isinstance(v, item) and not (item is int and isinstance(v, bool)) for v in items)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_json_object(payload: bytes, name: str) -> dict[str, Any]:
    if not payload:
        return {}
    try:
        body = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"{name} payload is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:
        raise RemoteProtocolError(f"{name} payload is not valid JSON ({exc})") from None
    except RecursionError:  # [[[[...]]]] thousands deep
        raise RemoteProtocolError(f"{name} payload is JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise RemoteProtocolError(f"{name} payload must be a JSON object, got {type(body).__name__}")
    return body


class MessageDecoder:
    """A :class:`FrameDecoder` that yields decoded messages instead of raw frames."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.frames = FrameDecoder(max_payload)

    def feed(self, data: bytes) -> None:
        self.frames.feed(data)

    def next_message(self) -> Message | None:
        frame = self.frames.next_frame()
        return None if frame is None else decode_message(frame)

    def __iter__(self) -> Iterator[Message]:
        while (message := self.next_message()) is not None:
            yield message


def describe(frame: Frame) -> str:
    """A one-line, human-readable summary of a frame, for ``-v`` logs and notebooks."""
    sid = f" sid={frame.stream_id}" if frame.stream_id else ""
    if frame.type is FrameType.FILE_CHUNK:
        body = f"{len(frame.payload) - CHUNK_PREFIX.size} bytes of file data"
    elif frame.type is FrameType.FILE_ACK and len(frame.payload) == ACK_BODY.size:
        body = f"received={ACK_BODY.unpack(frame.payload)[0]}"
    else:
        body = frame.payload[:120].decode("utf-8", "replace")
    return f"{frame.type.name}{sid} len={len(frame.payload)} {body}".rstrip()
