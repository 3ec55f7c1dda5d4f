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

The server sends each of its answers in two pieces (one ``recv()`` is not one
message), and the answers to several lines that arrived together in one piece.

:func:`check_upload_lines` runs it against a server that fails in each way
notebook 09 shows (ECONNREFUSED, a connect timeout, a FIN and a RST in the
middle, a peer gone silent) and prints one line per case.  It also requires
backoff with jitter: two clients refused six times in a row at the same moment
must wait longer after each failure (exponential backoff) and not in lockstep
(a random part in each wait).  A connection left open when ``connect()`` is
called again, or when the function returns, fails.
"""

from __future__ import annotations

import contextlib
import random
import socket
import statistics
import threading
import time
from typing import Any, Callable

from ..core import protocol as p
from ..errors import ProtocolError
from ..failures import abort, full_backlog_listener
from ..i18n import N_, _
from ._report import NotWrittenYet, Report, run_cases

CONNECT_TIMEOUT = 0.5  # what connect() waits for an answer to its SYN
SPLIT_AT = 5  # every answer of the server arrives in two pieces: its first 5 bytes, then the rest
SPLIT_PAUSE = 0.01  # seconds between the two pieces
REFUSALS = 6  # the backoff case: connect() is refused this many times in a row, for two clients at once
BACKOFF_DEADLINE = 12.0  # seconds the backoff case gives the two clients
MIN_WAITING = 0.05  # seconds: six refused attempts in less than this is a hot loop
MIN_GROWTH = 1.8  # the last two waits must be this many times the first two (doubling gives 16; a random wait
# that does not grow, about 1; full jitter fails this about once in a thousand runs)
CASE_DEADLINE = 6.0  # seconds the student's function gets per case
SILENT_LIMIT = 3.0  # seconds a connection may stay silent before the function gives up on it (the reference: 1 s)
CARRIED_WAIT = 0.25  # a first wait this long, and 4 times one of an earlier call, was carried over from that call
# (with the random module pinned to the top of its range, so the first waits compared are their upper bounds)
MIN_STEP = 1.8  # with the random module pinned, each wait must be this many times the one before (doubling: 2),
# or stay where it is from then on (the cap): a linear backoff's steps are 2, 1.5, 1.33...
FLAT = 0.1  # two waits within 10% of each other: the cap
FAST_SLEEP = 0.1  # while the upper bounds are probed, time.sleep() sleeps this share of what it is asked
LINES = [f"line {i}" for i in range(6)]

Upload = Callable[[Callable[[], socket.socket], list], None]


class CheckerFinished(BaseException):
    """Raised by connect() once a case is over, so a function still retrying stops.

    Not an Exception, so that it is not caught by accident."""


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

    def _send_split(self, conn: socket.socket, data: bytes) -> None:
        """Send ``data`` in two pieces a moment apart: the first recv() gets part of a PONG only."""
        cut = min(SPLIT_AT, len(data) - 1)
        conn.sendall(data[:cut])
        time.sleep(SPLIT_PAUSE)
        conn.sendall(data[cut:])

    def _serve(self, conn: socket.socket, script: str) -> None:
        decoder = p.MessageDecoder()
        received = 0
        conn.settimeout(0.05)
        try:
            self._send_split(conn, self._count())
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
                replies: list[bytes] = []  # the answers to every line of this recv(), sent glued together
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
                        if replies:
                            conn.sendall(b"".join(replies))
                        conn.close()
                        return
                    replies.append(self._count())
                if replies:
                    self._send_split(conn, b"".join(replies))
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


class _Run:
    """One run of the student's function against one server and one plan of connect() outcomes."""

    def __init__(self, upload: Upload, scripts: list[str], connect_plan: list[str]) -> None:
        self.upload = upload
        self.server = _Server(scripts)
        self.refused = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.refused.bind(("127.0.0.1", 0))  # bound, never listening: a SYN to it gets a RST
        self.silent, self.fillers = full_backlog_listener()
        self.plan = connect_plan
        self.attempts: list[float] = []  # when connect() was called
        self.kinds: list[str] = []  # what each connect() got: "ok", "refuse" or "timeout"
        self.handed_out: list[socket.socket] = []
        self.open_at_reconnect = 0  # sockets from earlier connect() calls still open at a later call
        self.finished = threading.Event()
        self.outcome: list[BaseException] = []
        self.thread = threading.Thread(target=self._student, daemon=True)
        self.started = 0.0
        self.took = 0.0
        self.hung = False
        self.held: list[str] = []
        self.open_at_end = 0
        self.last_timeout: float | None = None  # the timeout the function set on its last connection

    def connect(self) -> socket.socket:
        if self.finished.is_set():
            raise CheckerFinished("this case is over")
        self.open_at_reconnect += sum(1 for sock in self.handed_out if sock.fileno() != -1)
        plan = self.plan[len(self.attempts)] if len(self.attempts) < len(self.plan) else "ok"
        self.attempts.append(time.monotonic())
        self.kinds.append(plan)
        target = {"ok": self.server.address, "refuse": self.refused.getsockname()[:2],
                  "timeout": self.silent.getsockname()[:2]}[plan]
        sock = socket.create_connection(target, timeout=CONNECT_TIMEOUT)
        sock.settimeout(None)  # blocking, no timeout: choosing one is the student's job
        self.handed_out.append(sock)
        return sock

    def _student(self) -> None:
        try:
            self.upload(self.connect, list(LINES))
        except BaseException as exc:
            self.outcome.append(exc)

    def start(self) -> None:
        self.started = time.monotonic()
        self.thread.start()

    def finish(self, deadline: float) -> None:
        self.thread.join(max(0.0, self.started + deadline - time.monotonic()))
        self.took = time.monotonic() - self.started
        self.hung = self.thread.is_alive()
        self.open_at_end = sum(1 for sock in self.handed_out if sock.fileno() != -1)
        last = self.handed_out[-1] if self.handed_out else None
        self.last_timeout = last.gettimeout() if last is not None and last.fileno() != -1 else None
        self.finished.set()
        self.server.close()  # closes every connection: a hung function gets b'' or an error and can end
        for sock in self.handed_out:
            sock.close()  # and a function spinning on a dead socket gets EBADF and stops
        self.thread.join(2)
        for sock in (self.refused, self.silent, *self.fillers):
            sock.close()
        with self.server.lock:
            self.held = list(self.server.held)

    def first_wait(self) -> float | None:
        """Seconds between this call's first connect(), refused, and its second one."""
        if len(self.attempts) >= 2 and self.kinds[0] == "refuse":
            return self.attempts[1] - self.attempts[0]
        if len(self.attempts) == 1 and self.kinds[0] == "refuse" and self.hung:
            return self.started + self.took - self.attempts[0]  # still waiting when the case ended: at least this
        return None

    def judge_silence(self) -> None:
        """Fail if a connection that went silent held the function for more than SILENT_LIMIT seconds."""
        ends = self.attempts[1:]
        if self.hung and self.kinds and self.kinds[-1] == "ok" and (self.last_timeout or 0) > SILENT_LIMIT:
            ends.append(self.started + self.took)  # still in a recv() with a long timeout: not a hang for good
        for kind, began, ended in zip(self.kinds, self.attempts, ends):
            if kind == "ok" and ended - began > SILENT_LIMIT:
                raise AssertionError(
                    _(
                        "a connection that went silent held your function {seconds:.1f} s before it gave up on it"
                        " and reconnected: a recv() timeout that long stalls the upload for seconds on every"
                        " half-open connection. A server that answers within milliseconds when it is alive can"
                        " be given up on after a second or so"
                    ).format(seconds=ended - began)
                )

    def judge_carried_wait(self, earlier: list[float]) -> None:
        """Fail if this call's first wait is far longer than an earlier call's: the delay outlived its call."""
        first = self.first_wait()
        if first is not None and earlier and first >= CARRIED_WAIT and first > 4 * min(earlier):
            raise AssertionError(
                _(
                    "after its first refused connect() this call waited {ms:.0f} ms, an earlier call only {first:.0f}"
                    " ms: the backoff delay carried over from earlier calls (it is kept outside the call, shared by"
                    " every call and every client). Each call starts again from a short wait"
                ).format(ms=first * 1000, first=min(earlier) * 1000)
            )

    def judge(self, deadline: float, leaks: bool = True, earlier_waits: list[float] | None = None) -> str:
        """Fail with a hint unless the server holds every line once, in order, and nothing leaked."""
        held, hung = self.held, self.hung
        self.judge_outcome()
        self.judge_silence()
        self.judge_carried_wait(earlier_waits or [])
        if hung:
            raise AssertionError(
                _(
                    "did not finish in {seconds:.0f} s (server holds {held} of {n} lines): a recv()"
                    " without a timeout waits forever for a peer that went silent, and a loop that reads b'' (the"
                    " peer's FIN) as 'nothing yet' never ends"
                ).format(seconds=deadline, held=len(held), n=len(LINES))
            )
        if held != LINES:
            _judge_held(held)
        if leaks:
            self.judge_leaks()
        return _("{attempts} connection attempt(s), {seconds:.1f} s").format(attempts=len(self.attempts),
                                                                             seconds=self.took)

    def judge_outcome(self) -> None:
        """Fail with a hint if the function raised (an error of its own, not the end of the case)."""
        outcome = self.outcome
        if outcome and isinstance(outcome[0], NotImplementedError):
            raise NotWrittenYet(getattr(self.upload, "__name__", "upload_lines"))
        if not outcome or (self.hung and isinstance(outcome[0], (CheckerFinished, OSError))):
            return  # no error, or the one the checker caused to end a hung function
        exc = outcome[0]
        name = type(exc).__name__
        hint = _HINTS.get(name)
        text = _(hint) if hint else _(_OTHER_ERRORS) + _(
            "; if it came from reading the server's answer: the server sends each PONG in two pieces, and"
            " several PONGs may come in one recv(). One recv() is not one message: feed every recv() to one"
            " MessageDecoder, kept for the whole connection, and take the messages it yields"
        )
        raise AssertionError(
            _("your function raised {error}: {message} ({hint})").format(error=name, message=exc, hint=text)
        )

    def judge_leaks(self) -> None:
        if self.open_at_reconnect or self.open_at_end:
            raise AssertionError(
                _(
                    "every line arrived, but connections were left open: {reconnect} still open when connect()"
                    " was called again, {end} when your function returned. Each one keeps a file descriptor and"
                    " the server's resources; close a socket once its connection has failed or is done"
                    " (with sock: ...)"
                ).format(reconnect=self.open_at_reconnect, end=self.open_at_end)
            )


def _judge_held(held: list) -> None:
    """Fail with a hint: the server does not hold every line once, in order."""
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


def _case(upload: Upload, scripts: list[str], connect_plan: list[str],
          first_waits: list[float] | None = None) -> Callable[[], str]:
    """``first_waits`` collects each call's first wait after a refusal, shared by the cases of one check."""
    waits = [] if first_waits is None else first_waits

    def run() -> str:
        attempt = _Run(upload, scripts, connect_plan)
        # Where first waits are compared, the random part is pinned to its top: each first wait is its
        # upper bound, the same on every run, and a delay carried over from an earlier call shows every time.
        with _PinnedRandom(upload) if first_waits is not None else contextlib.nullcontext():
            attempt.start()
            attempt.finish(CASE_DEADLINE)
        earlier = list(waits)
        first = attempt.first_wait()
        if first is not None:
            waits.append(first)
        return attempt.judge(CASE_DEADLINE, earlier_waits=earlier)
    return run


class _PinnedRandom:
    """While active, the random module draws the top of its range: ``random.uniform(a, b)`` returns
    about ``b``, ``random.random()`` about 1 (module functions, the student's ``from random import ...``
    names and ``random.Random`` instances alike).  A wait with jitter is then its upper bound, the same
    on every run, so the growth of the bounds is judged without statistics."""

    TOP = 1.0 - 2.0 ** -53

    def __init__(self, upload: Upload) -> None:
        self.namespace: dict[str, Any] = getattr(getattr(upload, "__wrapped__", upload), "__globals__", {})
        self.names = [name for name, value in self.namespace.items() if value is random.random]
        self.original = random.random

    def __enter__(self) -> _PinnedRandom:
        top = self.TOP
        self.own = vars(random.Random).get("random")  # None: the C method of the base class is used
        random.Random.random = lambda self: top  # type: ignore[method-assign]  # uniform() and the rest call it
        random.random = lambda: top  # the module's own, a bound C method
        for name in self.names:
            self.namespace[name] = random.random
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.own is None:
            del random.Random.random  # the C method of the base class again
        else:
            random.Random.random = self.own  # type: ignore[method-assign]
        random.random = self.original
        for name in self.names:
            self.namespace[name] = self.original


class _SleepRecorder:
    """While active, note the seconds each thread asks time.sleep() for (the student's own
    ``from time import sleep`` included), to judge backoff and jitter without timing noise.
    ``share``: the part of each asked time that is really slept."""

    def __init__(self, upload: Upload, share: float = 1.0) -> None:
        self.calls: dict[int, list[float]] = {}
        self.original = time.sleep
        self.share = share
        self.namespace: dict[str, Any] = getattr(getattr(upload, "__wrapped__", upload), "__globals__", {})
        self.names = [name for name, value in self.namespace.items() if value is time.sleep]

    def __enter__(self) -> _SleepRecorder:
        original, calls, share = self.original, self.calls, self.share

        def sleep(seconds: float) -> None:
            calls.setdefault(threading.get_ident(), []).append(seconds)
            original(seconds * share if share != 1.0 and seconds > 0 else seconds)

        time.sleep = sleep  # type: ignore[assignment]
        for name in self.names:
            self.namespace[name] = sleep
        return self

    def __exit__(self, *exc_info: Any) -> None:
        time.sleep = self.original
        for name in self.names:
            self.namespace[name] = self.original


def _backoff_case(upload: Upload) -> Callable[[], str]:
    def run() -> str:
        runs = [_Run(upload, [], ["refuse"] * REFUSALS) for _client in range(2)]
        with _SleepRecorder(upload) as recorder:
            for attempt in runs:
                attempt.start()
            for attempt in runs:
                attempt.finish(BACKOFF_DEADLINE)
        for attempt in runs:
            _judge_still_waiting(attempt)
            attempt.judge(BACKOFF_DEADLINE, leaks=False)
        waits = [[b - a for a, b in zip(r.attempts, r.attempts[1:REFUSALS + 1])] for r in runs]
        shown = "; ".join(", ".join(f"{w * 1000:.0f}" for w in client) for client in waits)
        bounds = _upper_bounds(upload) if min(sum(client) for client in waits) >= MIN_WAITING else None
        _judge_backoff(runs, waits, shown, recorder, bounds)
        for attempt in runs:
            attempt.judge_leaks()
        return _("waits {ms} ms (two clients)").format(ms=shown)
    return run


def _upper_bounds(upload: Upload) -> list[float] | None:
    """The waits of a client refused REFUSALS times in a row, with the random module pinned to the top of
    its range: each wait with jitter is then its upper bound, the same on every run.  None when the
    student's randomness is not the random module's (two clients then wait differently)."""
    runs = [_Run(upload, [], ["refuse"] * REFUSALS) for _client in range(2)]
    with _PinnedRandom(upload), _SleepRecorder(upload, share=FAST_SLEEP) as recorder:
        for attempt in runs:
            attempt.start()
        for attempt in runs:
            attempt.finish(BACKOFF_DEADLINE)
    asked = [recorder.calls.get(r.thread.ident or -1, [])[:REFUSALS] for r in runs]
    if all(len(calls) >= REFUSALS - 1 for calls in asked):
        bounds = asked
    else:  # it waits some other way (not sped up): the waits seen
        bounds = [[b - a for a, b in zip(r.attempts, r.attempts[1:REFUSALS + 1])] for r in runs]
    if len(bounds[0]) < 3 or any(abs(x - y) > FLAT * max(x, y) for x, y in zip(*bounds)):
        return None  # its randomness is not the random module's (pinning did not take)
    return bounds[0]


def _judge_bounds(bounds: list[float], shown: str) -> None:
    """Fail unless the upper bounds of the waits double after each failure, up to a cap reached after two
    doublings at least: exponential backoff, not linear (2, 1.5, 1.33...) nor none."""
    grew = 0
    for k in range(len(bounds) - 1):
        before, after = bounds[k], bounds[k + 1]
        if before <= 0 or after >= MIN_STEP * before:
            grew += before > 0
            continue
        capped = after >= before and all(abs(w - after) <= FLAT * after for w in bounds[k + 1:])
        if capped and grew >= 2:
            return
        if grew == 0:
            raise AssertionError(
                _(
                    "the waits between refused attempts did not grow ({ms} ms, two clients): after each failure"
                    " in a row, wait about twice as long as the time before (exponential backoff, up to a cap),"
                    " so that a server that stays down is asked less and less often"
                ).format(ms=shown)
            )
        raise AssertionError(
            _(
                "with the random part at the top of its range, the waits after {n} refusals in a row were {ms} ms:"
                " they do not double after each failure (a linear backoff grows by a step, not by a factor; a cap"
                " reached after one doubling stops the growth at once). The upper bound of the wait must double"
                " after each failure in a row (exponential backoff, up to a cap of a second or more): a server that"
                " stays down for a minute is then asked a handful of times, not hundreds"
            ).format(n=REFUSALS, ms=", ".join(f"{w * 1000:.0f}" for w in bounds))
        )


def _judge_still_waiting(attempt: _Run) -> None:
    """Fail if the function was still waiting to try again when the case ended: the waits are too long."""
    if attempt.hung and len(attempt.attempts) <= REFUSALS and all(
        isinstance(exc, (CheckerFinished, OSError)) for exc in attempt.outcome
    ):
        gaps = [b - a for a, b in zip(attempt.attempts, attempt.attempts[1:])]
        raise AssertionError(
            _(
                "still waiting to try again after {seconds:g} s, having tried {n} time(s) (waits of {ms} ms):"
                " the waits are too long for a server that comes back quickly. Start with a short wait"
                " (tens of milliseconds), double it after each failure, and cap it at a few seconds"
            ).format(
                seconds=BACKOFF_DEADLINE, n=len(attempt.attempts),
                ms=", ".join(f"{g * 1000:.0f}" for g in gaps) or "-",
            )
        )


def _judge_backoff(runs: list[_Run], waits: list[list[float]], shown: str, recorder: _SleepRecorder,
                   bounds: list[float] | None = None) -> None:
    """Fail unless the two clients waited between refused attempts, longer each time, and not in step (jitter).

    ``bounds``: the upper bounds of the waits (see :func:`_upper_bounds`); their growth is judged
    exactly; without them, the growth of the waits themselves, which a random wait makes noisy."""
    if min(sum(client) for client in waits) < MIN_WAITING:
        raise AssertionError(
            _(
                "{n} refused attempts in a row came {ms} ms apart: a loop that reconnects at once hammers a"
                " server that is down (every client that lost it does the same). Wait between attempts,"
                " longer after each failure in a row (exponential backoff), with a random part (jitter)"
            ).format(n=REFUSALS, ms=shown)
        )
    asked = [recorder.calls.get(r.thread.ident or -1, []) for r in runs]
    slept = all(len(calls) >= REFUSALS - 1 for calls in asked)
    # What it asked time.sleep() for, when it did: exact, no scheduling noise; else the waits seen.
    measured = [calls[:REFUSALS] for calls in asked] if slept else waits
    first = sum(statistics.mean(client[:2]) for client in measured)
    last = sum(statistics.mean(client[-2:]) for client in measured)
    if bounds is not None:
        _judge_bounds(bounds, shown)
    elif last < MIN_GROWTH * first:
        raise AssertionError(
            _(
                "the waits between refused attempts did not grow ({ms} ms, two clients): after each failure"
                " in a row, wait about twice as long as the time before (exponential backoff, up to a cap),"
                " so that a server that stays down is asked less and less often"
            ).format(ms=shown)
        )
    if _in_step(runs, asked, slept):
        raise AssertionError(
            _(
                "two clients refused at the same moment waited as long as each other ({ms} ms) and came"
                " back together, every time: clients that lost the server together (it restarted) return"
                " together and knock it over again. Add a random part to each wait (jitter: for example"
                " random.uniform(0, delay))"
            ).format(ms=shown)
        )


def _in_step(runs: list[_Run], asked: list[list[float]], slept: bool) -> bool:
    """Did the two clients wait exactly as long as each other (no jitter)?"""
    if slept:
        return all(abs(x - y) <= 0.02 * max(abs(x), abs(y), 1e-9) for x, y in zip(asked[0], asked[1]))
    # it waits some other way: compare the moments the two clients came back
    offsets = [[t - r.attempts[0] for t in r.attempts[1:REFUSALS + 1]] for r in runs]
    return all(abs(x - y) < max(0.01, 0.03 * max(x, y)) for x, y in zip(*offsets))


def check_upload_lines(upload_lines: Upload, show: bool = True, only: str | None = None) -> Report:
    """Run ``upload_lines(connect, lines)`` against a server that fails in every way notebook 09 shows.

    Prints one PASS/FAIL line per case (unless ``show=False``) and returns the
    :class:`~chatlab.exercises.Report`; ``bool(report)`` is True when all pass.
    ``only="FIN"`` runs just the cases whose name contains that text
    (the English name, or the name in the current language).
    """
    first_waits: list[float] = []  # each call's first wait after a refusal
    cases = [
        (N_("no failure: every line once, in order"), _case(upload_lines, [], [])),
        (N_("ECONNREFUSED twice: the server is not up yet"),
         _case(upload_lines, [], ["refuse", "refuse"], first_waits)),
        (N_("connect times out once: no answer to the SYN"), _case(upload_lines, [], ["timeout"])),
        (N_("FIN: the server stores a line and closes before acknowledging it"), _case(upload_lines, ["fin"], [])),
        (N_("RST: the server resets on a line before storing it"), _case(upload_lines, ["rst"], [])),
        (N_("half-open: the server goes silent (no ack, no FIN, no RST)"), _case(upload_lines, ["silent"], [])),
        (N_("refused again and again: waits longer each time, with jitter (two clients)"), _backoff_case(upload_lines)),
        (N_("all of the above, one after another"),
         _case(upload_lines, ["silent", "fin", "rst"], ["refuse", "timeout", "ok", "refuse", "ok", "ok"], first_waits)),
    ]
    chosen = [(_(name), case) for name, case in cases if only is None or only in name or only in _(name)]
    if not chosen:
        raise ValueError(_("no case name contains {only!r}").format(only=only))
    return run_cases("check_upload_lines", chosen, show=show)
