"""chatlab: a lab kit for socket programming in Python, built around a real chat room.

    import chatlab
    with chatlab.Server(port=0) as server:
        with chatlab.Client.connect(server.address, nick="alice") as alice:
            alice.say("hello")

The names below load on first use (PEP 562), so ``import chatlab.core.protocol``
does not start the client and server modules, and their sockets and threads, with it.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# A library stays quiet unless the program configures logging (the CLI does, -v for frames).
logging.getLogger("chatlab").addHandler(logging.NullHandler())

# public name -> the module that defines it
_EXPORTS = {
    "Server": ".server", "FloodLimit": ".server",
    "Client": ".client", "Disconnected": ".client", "Transfer": ".client",
    "FileStarted": ".client", "FileReceived": ".client", "FileFailed": ".client",
    "ChatMessage": ".core.protocol", "PrivateMessage": ".core.protocol", "Notice": ".core.protocol",
    "WhoReply": ".core.protocol", "ErrorMessage": ".core.protocol", "FileOffer": ".core.protocol",
    "ChatlabError": ".errors", "ProtocolError": ".errors", "LocalProtocolError": ".errors",
    "RemoteProtocolError": ".errors", "FrameTooLarge": ".errors", "MessageTooLong": ".errors",
    "ConnectionClosed": ".errors", "ConnectionBroken": ".errors", "ServerError": ".errors",
    "NickError": ".errors", "TransferError": ".errors",
}  # fmt: skip

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Load ``chatlab.<name>`` from its module the first time it is asked for."""
    try:
        module_name = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'chatlab' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:  # what type checkers and editors see: the same names, imported eagerly
    from .client import Client, Disconnected, FileFailed, FileReceived, FileStarted, Transfer  # noqa: F401
    from .core.protocol import ChatMessage, ErrorMessage, FileOffer, Notice, PrivateMessage, WhoReply  # noqa: F401
    from .errors import (  # noqa: F401
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
    from .server import FloodLimit, Server  # noqa: F401
