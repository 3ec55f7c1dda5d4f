"""The blocking, notebook-friendly chat client, one module per concern.

Read :mod:`~chatlab.client.api` first: :class:`Client` and what a student calls
(``connect``, ``say``, ``join``, ``wait_for``, ``send_file``, ``close``).  The rest
is how it works underneath:

* :mod:`~chatlab.client.threads`: the reader thread turns bytes into events; the
  writer thread is the only code that sends, by priority (control, chat, file chunks),
  which is why no lock is needed around ``sendall``;
* :mod:`~chatlab.client.sending` and :mod:`~chatlab.client.receiving`: the two ends of
  a file transfer relayed through the server;
* :mod:`~chatlab.client.direct`: a file's bytes over a second connection between the
  two clients;
* :mod:`~chatlab.client.state`: the state these share, declared once.
"""

from ..events import (
    MAX_BACKLOG,
    DirectFallback,
    Disconnected,
    FileFailed,
    FileReceived,
    FileStarted,
)
from .api import (
    DEFAULT_ADDRESS,
    DEFAULT_HOST,
    DEFAULT_PORT,
    Address,
    Client,
    parse_address,
)
from .receiving import Receiving
from .sending import Transfer
from .state import CLOSED_BY_SERVER, CLOSED_BY_US, UNSENT_LIMIT

__all__ = [
    "Client", "Transfer", "Receiving", "parse_address", "Address",
    "Disconnected", "FileStarted", "FileReceived", "FileFailed", "DirectFallback", "MAX_BACKLOG",
    "DEFAULT_ADDRESS", "DEFAULT_HOST", "DEFAULT_PORT", "UNSENT_LIMIT", "CLOSED_BY_US", "CLOSED_BY_SERVER",
]  # fmt: skip
