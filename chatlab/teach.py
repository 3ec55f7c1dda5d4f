"""Small helpers the notebooks share: their chat server, and pointers at chatlab's own code."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

from .server import Server

# Set by the teacher (e.g. CHATLAB_SERVER=192.168.1.10:7777) so every student's
# notebook joins one class server instead of starting its own.
SERVER_ENV = "CHATLAB_SERVER"


@dataclass(frozen=True)
class LabServer:
    """The server a notebook talks to.

    ``address`` is where to connect. ``server`` is the :class:`chatlab.Server`
    running inside this notebook, or ``None`` when the notebook uses the class
    server named by ``CHATLAB_SERVER`` (then there is nothing local to inspect).
    """

    address: tuple[str, int]
    server: Server | None

    @property
    def shared(self) -> bool:
        """True when this is the class server, shared with everyone in the room."""
        return self.server is None


def parse_address(text: str) -> tuple[str, int]:
    """``"host:port"`` (or ``"[::1]:port"``) -> ``(host, port)``, with a clear error otherwise."""
    host, sep, port_text = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{SERVER_ENV}={text!r}: expected host:port, e.g. 192.168.1.10:7777 "
                         "(a port from 1 to 65535)")
    return host, int(port_text)


@contextlib.contextmanager
def lab_server(**server_options: Any) -> Iterator[LabServer]:
    """The chat server a notebook uses: the class server if the teacher set one, else its own.

    With ``CHATLAB_SERVER=host:port`` in the environment nothing is started and the
    notebook connects there (``server_options`` are then the teacher's business).
    Otherwise a :class:`chatlab.Server` is started on a free loopback port with
    ``server_options``, and stopped on exit, even when the body raises::

        with chatlab.teach.lab_server(flood_limit=None) as lab:
            alice = chatlab.Client.connect(lab.address, nick="alice")
    """
    shared = os.environ.get(SERVER_ENV, "").strip()
    if shared:
        yield LabServer(address=parse_address(shared), server=None)
        return
    server = Server(port=0, **server_options).start()
    try:
        yield LabServer(address=server.address, server=server)
    finally:
        server.stop()


def show_source(module: str | ModuleType, pattern: str, context: int = 0) -> list[int]:
    """Print the lines of a chatlab module that match ``pattern`` (a regex).

    Prints each hit as ``chatlab/server.py:LINE: text`` (a path relative to the
    package, never this machine's absolute path) and returns the line numbers,
    so a notebook can point at "the line that does it" and stay right when the
    code moves.
    """
    if isinstance(module, str):
        module = importlib.import_module(module if module.startswith("chatlab") else f"chatlab.{module}")
    path = Path(inspect.getfile(module))
    shown = f"chatlab/{path.name}" if path.parent.name == "chatlab" else f"chatlab/{path.parent.name}/{path.name}"
    lines = path.read_text(encoding="utf-8").splitlines()
    hits = [i for i, line in enumerate(lines) if re.search(pattern, line)]
    for i in hits:
        for j in range(max(0, i - context), min(len(lines), i + context + 1)):
            print(f"{shown}:{j + 1}: {lines[j]}")
    if not hits:
        print(f"{shown}: no line matches {pattern!r}")
    return [i + 1 for i in hits]
