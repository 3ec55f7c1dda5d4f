"""chatlab: a lab kit for socket programming in Python, built around a real chat room.

    import chatlab
    with chatlab.Server(port=0) as server:
        with chatlab.Client.connect(server.address, nick="alice") as alice:
            alice.say("hello")
"""

import logging

from .client import Client, Disconnected, FileFailed, FileReceived, FileStarted, Transfer
from .errors import (
    ChatlabError,
    ConnectionBroken,
    ConnectionClosed,
    FrameTooLarge,
    LocalProtocolError,
    MessageTooLong,
    NickError,
    ProtocolError,
    RemoteProtocolError,
    ServerError,
    TransferError,
)
from .protocol import ChatMessage, ErrorMessage, FileOffer, Notice, PrivateMessage, WhoReply
from .server import FloodLimit, Server

__version__ = "0.1.0"

# A library stays quiet unless the program configures logging (the CLI does, -v for frames).
logging.getLogger("chatlab").addHandler(logging.NullHandler())

__all__ = [
    "Server", "FloodLimit", "Client",
    "ChatMessage", "PrivateMessage", "Notice", "WhoReply", "ErrorMessage", "FileOffer", "Disconnected",
    "Transfer", "FileStarted", "FileReceived", "FileFailed",
    "ChatlabError", "ProtocolError", "LocalProtocolError", "RemoteProtocolError", "FrameTooLarge", "MessageTooLong",
    "ConnectionClosed", "ConnectionBroken", "ServerError", "NickError", "TransferError",
]  # fmt: skip
