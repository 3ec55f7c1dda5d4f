"""Small helpers the notebooks share: their chat server, and pointers at chatlab's own code."""

from __future__ import annotations

import contextlib
import getpass
import importlib
import inspect
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterator

from .addresses import parse_address
from .i18n import _
from .server import Server

if TYPE_CHECKING:
    from .client import Client

# Set by the teacher (e.g. CHATLAB_SERVER=192.168.1.10:7777) so every student's
# notebook joins one class server instead of starting its own.
SERVER_ENV = "CHATLAB_SERVER"


def _student_tag() -> str:
    """A short tag that tells this student's notebooks apart on the class server (same for the whole kernel)."""
    try:
        user = re.sub(r"[^a-z0-9]", "", getpass.getuser().lower())[:8] or "student"
    except (KeyError, OSError, ImportError):  # no user name to be had (some containers)
        user = "student"
    return f"{user}-{secrets.token_hex(2)}"


STUDENT = _student_tag()  # e.g. "ana-3f9c": the scripted characters' suffix and room in class mode


@dataclass(frozen=True)
class LabServer:
    """The server a notebook talks to.

    ``address`` is where to connect. ``server`` is the :class:`chatlab.Server`
    running inside this notebook, or ``None`` when the notebook uses the class
    server named by ``CHATLAB_SERVER`` (then there is nothing local to inspect).

    Class mode: on the class server, a notebook's scripted characters (alice, bob,
    carol...) are this student's, not everyone's.  :meth:`connect` gives each a nick
    with the student's tag (``alice-ana-3f9c`` would be too long: ``alice_3f9c``) and
    puts it in the student's own room, and :meth:`room` names the other rooms a
    notebook uses, so the lobby shows only what students chose to say.  At home both
    change nothing.
    """

    address: tuple[str, int]
    server: Server | None

    @property
    def shared(self) -> bool:
        """True when this is the class server, shared with everyone in the room."""
        return self.server is None

    def nick(self, name: str) -> str:
        """A scripted character's nickname: ``name`` at home, ``name_3f9c`` on the class server."""
        return f"{name}_{STUDENT.rsplit('-', 1)[1]}" if self.shared else name

    def room(self, name: str = "") -> str:
        """A room of this notebook: ``name`` at home (the default room for ``""``); on the class
        server, one of this student's own (``#ana-3f9c``, ``#ana-3f9c-team``)."""
        if not self.shared:
            return name or "lobby"
        own = f"{STUDENT}-{name.lstrip('#')}" if name else STUDENT
        return ("#" if name.startswith("#") or not name else "") + own[:32]

    def connect(self, name: str, **options: Any) -> Client:
        """A scripted character, connected (and, on the class server, in this student's own room)."""
        from .client import Client

        if self.shared:  # straight into the student's room: the lobby never sees them come and go
            options.setdefault("room", self.room())
        return Client.connect(self.address, nick=self.nick(name), **options)


def _class_server_address(text: str) -> tuple[str, int]:
    """``CHATLAB_SERVER``'s ``"host:port"`` -> ``(host, port)``, with an error that names the variable."""
    try:
        return parse_address(text, default_host=None)
    except ValueError:
        raise ValueError(
            _("{variable}={text!r}: expected host:port, e.g. 192.168.1.10:7777 (a port from 1 to 65535)").format(
                variable=SERVER_ENV, text=text)) from None


@contextlib.contextmanager
def lab_server(*, own: bool = False, **server_options: Any) -> Iterator[LabServer]:
    """The chat server a notebook uses: the class server if the teacher set one, else its own.

    With ``CHATLAB_SERVER=host:port`` in the environment nothing is started and the
    notebook connects there (``server_options`` are then the teacher's business),
    unless ``own=True``: a cell that looks inside the server (its frame log, its
    settings) always gets this notebook's own embedded server.
    Otherwise a :class:`chatlab.Server` is started on a free loopback port with
    ``server_options``, and stopped on exit, even when the body raises::

        with chatlab.teach.lab_server(flood_limit=None) as lab:
            alice = lab.connect("alice")     # in class mode: alice_3f9c, in this student's room
    """
    shared = "" if own else os.environ.get(SERVER_ENV, "").strip()
    if shared:
        yield LabServer(address=_class_server_address(shared), server=None)
        return
    server = Server(port=0, **server_options).start()
    try:
        yield LabServer(address=server.address, server=server)
    finally:
        server.stop()


def _shown_path(path: Path) -> str:
    """``chatlab/server.py`` or ``chatlab/core/transfer/strategies.py``: relative to the package, never absolute."""
    parts = path.resolve().parts
    return "/".join(parts[len(parts) - 1 - parts[::-1].index("chatlab"):])


def show_source(module: str | ModuleType, pattern: str, context: int = 0) -> list[int]:
    """Print the lines of a chatlab module that match ``pattern`` (a regex).

    Prints each hit as ``chatlab/server.py:LINE: text`` (a path relative to the
    package, never this machine's absolute path) and returns the line numbers,
    so a notebook can point at "the line that does it" and stay right when the
    code moves.  A package (``"transfer"`` once it is ``chatlab/core/transfer/``) is
    searched file by file, so a call keeps working when a module is split.
    """
    if isinstance(module, str):
        module = importlib.import_module(module if module.startswith("chatlab") else f"chatlab.{module}")
    path = Path(inspect.getfile(module))
    files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
    found: list[int] = []
    for file in files:
        lines = file.read_text(encoding="utf-8").splitlines()
        hits = [i for i, line in enumerate(lines) if re.search(pattern, line)]
        for i in hits:
            for j in range(max(0, i - context), min(len(lines), i + context + 1)):
                print(f"{_shown_path(file)}:{j + 1}: {lines[j]}")
        found += [i + 1 for i in hits]
    if not found:
        print(_("{path}: no line matches {pattern!r}").format(
            path=_shown_path(path if len(files) == 1 else path.parent), pattern=pattern))
    return found


# ------------------------------------------------- the OS's connection table

# TCP states as ss, netstat and psutil spell them, folded to one spelling.
TCP_STATES = frozenset({
    "LISTEN", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSE_WAIT",
    "CLOSING", "LAST_ACK", "TIME_WAIT", "CLOSED", "NONE",
})  # fmt: skip
_SPELLINGS = {"SYN_RECEIVED": "SYN_RECV", "FIN_WAIT_1": "FIN_WAIT1", "FIN_WAIT_2": "FIN_WAIT2", "UNCONN": "CLOSED",
              "LISTENING": "LISTEN"}  # Windows' netstat says LISTENING


@dataclass(frozen=True)
class TcpEntry:
    """One line of the OS's TCP connection table, as ``ss -tan`` or ``netstat -an`` print it."""

    local_port: int
    remote_port: int | None  # None for a listener
    state: str  # TIME_WAIT, ESTABLISHED, ... (one spelling whatever the tool)


def _state(word: str) -> str | None:
    word = word.upper().replace("-", "_")
    word = _SPELLINGS.get(word, word)
    return word if word in TCP_STATES else None


def _port(token: str) -> int | None:
    match = re.search(r"[:.](\d+)$", token)  # 127.0.0.1:80, [::1]:80, 127.0.0.1.80 (macOS), *.80
    return int(match.group(1)) if match else None


def parse_connection_table(text: str) -> list[TcpEntry]:
    """The TCP entries of ``ss -tan``, ``netstat -an`` (Linux, macOS) or ``netstat -an -p TCP`` (Windows) output.

    Every tool prints the local address before the remote one and the state as
    one word, so one parser reads them all; lines it cannot read are skipped.
    """
    entries = []
    for line in text.splitlines():
        words = line.split()
        states = [s for s in map(_state, words) if s]
        ports = [_port(w) for w in words if _port(w) is not None or w.endswith(("*", ":*", ".*"))]
        if len(states) != 1 or len(ports) < 2 or ports[0] is None:
            continue
        remote = ports[1] or None  # a listener's peer: *, 0.0.0.0:*, or 0.0.0.0:0 on Windows
        entries.append(TcpEntry(ports[0], remote, states[0]))
    return entries


def _table_from_psutil() -> list[TcpEntry] | None:
    try:
        import psutil
    except ImportError:
        return None
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):  # macOS asks for root here
        return None
    return [TcpEntry(c.laddr.port, c.raddr.port if c.raddr else None, _state(c.status) or c.status)
            for c in connections if c.laddr]


def _table_from_tool() -> list[TcpEntry] | None:
    import shutil
    import subprocess

    for cmd in (["ss", "-tan"], ["netstat", "-an", "-p", "TCP"] if os.name == "nt" else ["netstat", "-an"]):
        if not shutil.which(cmd[0]):
            continue
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        return parse_connection_table(out)
    return None


def connection_states(*ports: int) -> list[TcpEntry] | None:
    """The OS's TCP entries whose local port is one of ``ports`` (psutil, else ``ss``, else ``netstat``).

    ``None`` when this machine has none of the three (or will not tell without root).
    """
    table = _table_from_psutil()
    if table is None:
        table = _table_from_tool()
    if table is None:
        return None
    return sorted({e for e in table if e.local_port in ports},
                  key=lambda e: (e.local_port, e.remote_port or 0, e.state))
