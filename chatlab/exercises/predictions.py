"""Exercise 1 of notebook 01: predict three outcomes, then run the experiments.

The student writes ``my_predictions()`` returning three strings, in order:

1. the client closes first: which side's port keeps the TIME_WAIT entry,
   ``"client"`` or ``"server"``;
2. a restart on a port with a connection in TIME_WAIT, ``SO_REUSEADDR`` set
   only *after* ``bind()``: ``"bound"`` or ``"EADDRINUSE"``;
3. a second socket with ``SO_REUSEADDR`` binds the port a running listener
   (also with the option) holds: ``"bound"`` or ``"EADDRINUSE"``.

:func:`check_predictions` runs each experiment on loopback (port 0, every
socket closed by a ``with`` block) only once its prediction is written, and
compares.  A wrong prediction fails with the lesson of the experiment; the
answers depend on the OS (Windows lets both binds through), so the checker
compares with what *this* machine does.  The notebook shows the same three
experiments for the student to read before predicting.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Callable

from .. import teach
from ..i18n import N_, _
from ._report import Report, returned, run_cases
from .sockopt import errno_name

__all__ = ["check_predictions", "the_client_closes_first", "option_after_bind", "two_live_listeners", "CHOICES"]

HOST = "127.0.0.1"
TIMEOUT = 2.0  # seconds: every blocking call here has a timeout
CHOICES = (("client", "server"), ("bound", "EADDRINUSE"), ("bound", "EADDRINUSE"))
UNKNOWN = "unknown"  # the_client_closes_first could not see the connection table

Predictions = Callable[[], Any]


def _outcome(result: str) -> str:
    # Windows lets these binds through (notebook 01, section 5 says why) and the line says so.
    return "bound (as Windows does: section 5)" if os.name == "nt" and result == "bound" else result


def _serve_one_client() -> int:
    """One connection that the server closes first: its port keeps a TIME_WAIT entry.  Returns the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen()
        listener.settimeout(TIMEOUT)
        port = listener.getsockname()[1]
        with socket.create_connection((HOST, port), timeout=TIMEOUT) as client:
            conn, _addr = listener.accept()
            with conn:
                conn.sendall(b"bye\n")
            client.recv(100)
            client.recv(100)
    time.sleep(0.05)  # let the last ACK land
    return port


def the_client_closes_first() -> str:
    """Which side's port keeps a TIME_WAIT entry when the client closes first: "client", "server", ..."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((HOST, 0))
        listener.listen()
        listener.settimeout(TIMEOUT)
        server_port = listener.getsockname()[1]
        with socket.create_connection((HOST, server_port), timeout=TIMEOUT) as client:
            client_port = client.getsockname()[1]
            conn, _addr = listener.accept()
            with conn:
                client.close()  # the client sends the first FIN ...
                conn.recv(100)  # ... the server reads b'' ...
            # ... and closes too, here
        time.sleep(0.05)
        entries = teach.connection_states(server_port, client_port)  # ss, netstat or psutil
    if entries is None:
        return UNKNOWN
    holders = [side for side, port in [("client", client_port), ("server", server_port)]
               if any(e.local_port == port and e.state == "TIME_WAIT" for e in entries)]
    return " and ".join(holders) or "nobody"


def option_after_bind() -> str:
    """Restart on a port with a connection in TIME_WAIT, switching SO_REUSEADDR on after bind()."""
    port = _serve_one_client()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # after bind()
            sock.listen()
        except OSError as exc:
            return _outcome(errno_name(exc))
    return _outcome("bound")


def two_live_listeners() -> str:
    """A second socket binds the port a running listener holds; both set SO_REUSEADDR."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as running:
        running.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        running.bind((HOST, 0))
        running.listen()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second:
            second.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                second.bind((HOST, running.getsockname()[1]))
                second.listen()
            except OSError as exc:
                return _outcome(errno_name(exc))
    return _outcome("bound")


QUESTIONS = (
    (N_("the client closes first: TIME_WAIT stays on the"), the_client_closes_first,
     N_("TIME_WAIT belongs to whichever side sends the first FIN, client or server; a client rarely notices,"
        " its port is ephemeral")),
    (N_("SO_REUSEADDR switched on after bind()"), option_after_bind,
     N_("bind() is the moment the kernel checks the port against its connections; an option set later changes"
        " only the checks after it")),
    (N_("a second listener on a live port"), two_live_listeners,
     N_("SO_REUSEADDR forgives connections that are over, not a listener that is running (sharing a port"
        " between live sockets is SO_REUSEPORT)")),
)


def _predictions(predictions: Predictions | tuple[str, ...] | list[str]) -> tuple[Any, ...]:
    """Call ``my_predictions()`` (or take the tuple as it is) and check its shape."""
    got = predictions() if callable(predictions) else predictions
    if got is None:
        raise AssertionError(returned(got, _("three strings"), "my_predictions()"))
    if isinstance(got, str) or not isinstance(got, (tuple, list)) or len(got) != len(QUESTIONS):
        raise AssertionError(
            _("my_predictions() returned {value!r}: return three strings, one per experiment, in"
              " order").format(value=got)
        )
    return tuple(got)


def check_predictions(predictions: Predictions | tuple[str, ...] | list[str], show: bool = True) -> Report:
    """Run each of notebook 01's three experiments once its prediction is written, and compare.

    ``predictions`` is ``my_predictions`` (a function returning three strings),
    or the three strings themselves.  Prints one PASS/FAIL line per experiment
    (unless ``show=False``) and returns the :class:`~chatlab.exercises.Report`.
    """

    def case(index: int, experiment: Callable[[], str], lesson: str) -> Callable[[], str]:
        def run() -> str:
            try:
                predicted = _predictions(predictions)[index]
            except NotImplementedError:
                raise AssertionError(
                    _("no prediction yet: write yours in my_predictions(), then run this cell")
                ) from None
            choices = CHOICES[index]
            if not isinstance(predicted, str) or predicted.strip() not in choices:
                matching = [c for c in choices if isinstance(predicted, str) and predicted.strip().lower() == c.lower()]
                raise AssertionError(
                    _("{predicted!r} is not one of the answers: predict {choices}").format(
                        predicted=predicted, choices=_(" or ").join(repr(c) for c in choices)
                    )
                    + (_(" (spelled exactly so: {answer!r})").format(answer=matching[0]) if matching else "")
                )
            predicted = predicted.strip()
            observed = experiment()
            if observed == UNKNOWN:  # no ss, netstat or psutil: the rule is the same on every OS
                assert predicted == "client", _(
                    "you predicted {predicted!r}; this machine cannot show its connection table (no ss, netstat"
                    " or psutil), but the rule holds everywhere: {lesson}"
                ).format(predicted=predicted, lesson=_(lesson))
                return _("predicted: client (the rule; this machine cannot show the table). Why: {lesson}").format(
                    lesson=_(lesson)
                )
            assert observed.split()[0] == predicted, _(
                "you predicted {predicted!r}, this OS did: {observed}. Why? {lesson}"
            ).format(predicted=predicted, observed=observed, lesson=_(lesson))
            return _("predicted and observed: {observed}. Why: {lesson}").format(observed=observed, lesson=_(lesson))

        return run

    cases = [(_(name), case(i, experiment, lesson)) for i, (name, experiment, lesson) in enumerate(QUESTIONS)]
    return run_cases("check_predictions", cases, show=show)
