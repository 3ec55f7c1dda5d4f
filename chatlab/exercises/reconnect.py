"""Exercise for notebook 09: a client that reconnects and resumes after each kind of failure.

The student writes::

    def upload_lines(connect, lines) -> None:
        ...

``connect()`` opens a new connection to the server and returns the socket
(blocking, no timeout), or raises what ``socket.create_connection`` raises.
The function must leave the server holding every line of ``lines`` exactly
once, in order, and return.

The server's side of the protocol (chatlab frames):

* as soon as a connection opens, the server sends ``Pong(token=n)``: it
  already holds the first ``n`` lines (where to resume);
* each ``Say(text=line)`` the client sends is stored, and answered with
  ``Pong(token=n)``, the new count (a cumulative acknowledgement, like
  FILE_ACK).

:func:`check_upload_lines` runs it against a server that fails in each way
notebook 09 shows (ECONNREFUSED, a connect timeout, a FIN and a RST in the
middle, a peer gone silent) and prints one line per case.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Callable

from ..core import protocol as p
from ..errors import ProtocolError
from ..failures import abort, full_backlog_listener
from ..i18n import N_, _
from ._report import NotWrittenYet, Report, run_cases

CONNECT_TIMEOUT = 0.5  # what connect() waits for an answer to its SYN
CASE_DEADLINE = 6.0  # seconds the student's function gets per case
LINES = [f"line {i}" for i in range(6)]

Upload = Callable[[Callable[[], socket.socket], list], None]


class CheckerFinished(BaseException):
    """Raised by connect() once a case is over, so a function still retrying stops (not an Exception: not caught by accident)."""


class _Server:
    """The checker's server: one thread per connection, each following a script.

    ``scripts[k]`` says what connection number k does: ``"ok"``, ``"fin"``
    (store the second line it receives, then close without acknowledging
    it), ``"rst"`` (abort on receiving the second line, before storing it) or
    ``"silent"`` (store one line, then swallow everything and answer nothing).
    """

    def __init__(self, scripts: list[str]) -> None:
        self.scripts = scripts
        self.held: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.connections = 0
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.05)
        self.address = self.listener.getsockname()[:2]
        self.threads: list[threading.Thread] = []
        self.socks: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _address = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            script = self.scripts[self.connections] if self.connections < len(self.scripts) else "ok"
            self.connections += 1
            self.socks.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn, script), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _count(self) -> bytes:
        with self.lock:
            return p.encode(p.Pong(len(self.held)))

    def _serve(self, conn: socket.socket, script: str) -> None:
        decoder = p.MessageDecoder()
        received = 0
        conn.settimeout(0.05)
        try:
            conn.sendall(self._count())
            while not self.stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                if script == "silent" and received >= 1:
                    continue  # gone: no ack, no FIN, no RST
                decoder.feed(data)
                for message in decoder:
                    if not isinstance(message, p.Say):
                        continue
                    received += 1
                    if script == "rst" and received == 2:
                        abort(conn)
                        return
                    with self.lock:
                        self.held.append(message.text)
                    if script == "fin" and received == 2:
                        conn.close()
                        return
                    conn.sendall(self._count())
        except (OSError, ProtocolError):
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for thread in self.threads:
            thread.join(5)
        self.listener.close()


_HINTS = {  # translated when shown: _(_HINTS[name])
    "ConnectionRefusedError": N_("nothing listened yet (ECONNREFUSED): wait a moment and call connect() again"),
    "TimeoutError": N_(
        "a connect() or recv() timed out: that is a failure to recover from by reconnecting, not a reason to give up"
    ),
    "ConnectionResetError": N_("the server reset the connection (RST): reconnect and resume"),
    "BrokenPipeError": N_("you wrote to a connection the server had closed (EPIPE): reconnect and resume"),
    "ConnectionAbortedError": N_("the connection was aborted: reconnect and resume"),
    "EOFError": N_("the server closed the connection (FIN): reconnect and resume"),
}
_OTHER_ERRORS = N_("catch it, reconnect and resume")


def _case(upload: Upload, scripts: list[str], connect_plan: list[str]) -> Callable[[], str]:
    def run() -> str:
        server = _Server(scripts)
        refused = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        refused.bind(("127.0.0.1", 0))  # bound, never listening: a SYN to it gets a RST
        silent, fillers = full_backlog_listener()
        attempts = 0
        handed_out: list[socket.socket] = []
        finished = threading.Event()

        def connect() -> socket.socket:
            nonlocal attempts
            if finished.is_set():
                raise CheckerFinished("this case is over")
            plan = connect_plan[attempts] if attempts < len(connect_plan) else "ok"
            attempts += 1
            target = {"ok": server.address, "refuse": refused.getsockname()[:2],
                      "timeout": silent.getsockname()[:2]}[plan]
            sock = socket.create_connection(target, timeout=CONNECT_TIMEOUT)
            sock.settimeout(None)  # blocking, no timeout: choosing one is the student's job
            handed_out.append(sock)
            return sock

        outcome: list[BaseException] = []

        def student() -> None:
            try:
                upload(connect, list(LINES))
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=student, daemon=True)
        started = time.monotonic()
        thread.start()
        thread.join(CASE_DEADLINE)
        took = time.monotonic() - started
        hung = thread.is_alive()
        finished.set()
        server.close()  # closes every connection: a hung function gets b'' or an error and can end
        for sock in handed_out:
            sock.close()  # and a function spinning on a dead socket gets EBADF and stops
        thread.join(2)
        for sock in (refused, silent, *fillers):
            sock.close()
        with server.lock:
            held = list(server.held)
        if outcome and isinstance(outcome[0], NotImplementedError):
            raise NotWrittenYet(getattr(upload, "__name__", "upload_lines"))
        if outcome and not (hung and isinstance(outcome[0], (CheckerFinished, OSError))):
            exc = outcome[0]
            name = type(exc).__name__
            hint = _HINTS.get(name, _OTHER_ERRORS)
            raise AssertionError(
                _("your function raised {error}: {message} ({hint})").format(error=name, message=exc, hint=_(hint))
            )
        if hung:
            raise AssertionError(
                _(
                    "did not finish in {seconds:.0f} s (server holds {held} of {n} lines): a recv()"
                    " without a timeout waits forever for a peer that went silent, and a loop that reads b'' (the"
                    " peer's FIN) as 'nothing yet' never ends"
                ).format(seconds=CASE_DEADLINE, held=len(held), n=len(LINES))
            )
        if held != LINES:
            dupes = sorted({line for line in held if held.count(line) > 1})
            missing = [line for line in LINES if line not in held]
            if dupes:
                raise AssertionError(
                    _(
                        "the server holds {lines} more than once: resume from the count the server"
                        " announces when you connect, not from what you sent or saw acknowledged"
                    ).format(lines=dupes)
                )
            if missing:
                raise AssertionError(
                    _(
                        "the server never got {lines}: a line is safe only once the server's count"
                        " says so; returned too early, or skipped what was lost with the connection"
                    ).format(lines=missing)
                )
            raise AssertionError(_("lines out of order: {lines}").format(lines=held))
        return _("{attempts} connection attempt(s), {seconds:.1f} s").format(attempts=attempts, seconds=took)
    return run


def check_upload_lines(upload_lines: Upload, show: bool = True, only: str | None = None) -> Report:
    """Run ``upload_lines(connect, lines)`` against a server that fails in every way notebook 09 shows.

    Prints one PASS/FAIL line per case (unless ``show=False``) and returns the
    :class:`~chatlab.exercises.Report`; ``bool(report)`` is True when all pass.
    ``only="FIN"`` runs just the cases whose name contains that text
    (the English name, or the name in the current language).
    """
    cases = [
        (N_("no failure: every line once, in order"), _case(upload_lines, [], [])),
        (N_("ECONNREFUSED twice: the server is not up yet"), _case(upload_lines, [], ["refuse", "refuse"])),
        (N_("connect times out once: no answer to the SYN"), _case(upload_lines, [], ["timeout"])),
        (N_("FIN: the server stores a line and closes before acknowledging it"), _case(upload_lines, ["fin"], [])),
        (N_("RST: the server resets on a line before storing it"), _case(upload_lines, ["rst"], [])),
        (N_("half-open: the server goes silent (no ack, no FIN, no RST)"), _case(upload_lines, ["silent"], [])),
        (N_("all of the above, one after another"),
         _case(upload_lines, ["silent", "fin", "rst"], ["refuse", "timeout", "ok", "refuse", "ok", "ok"])),
    ]
    chosen = [(_(name), case) for name, case in cases if only is None or only in name or only in _(name)]
    if not chosen:
        raise ValueError(_("no case name contains {only!r}").format(only=only))
    return run_cases("check_upload_lines", chosen, show=show)
