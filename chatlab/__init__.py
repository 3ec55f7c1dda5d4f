"""chatlab: a lab kit for socket programming in Python, built around a real chat room."""

from .errors import (
    ChatlabError,
    ConnectionBroken,
    ConnectionClosed,
    FrameTooLarge,
    LocalProtocolError,
    NickError,
    ProtocolError,
    RemoteProtocolError,
    ServerError,
    TransferError,
)
from .protocol import ChatMessage, Notice, PrivateMessage, WhoReply

__version__ = "0.1.0"
