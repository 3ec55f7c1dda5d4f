"""Exercise for notebook 10: a UDP pinger that copes with loss, late, duplicated and reordered replies.

The student writes::

    def ping(sock, server, count, timeout) -> dict:
        ...

``sock`` is an unconnected UDP socket, bound and blocking (no timeout set);
``server`` is ``(host, port)`` of an echo server, which sends every datagram
back unchanged.  The function sends ``count`` pings one after another, ping
``k`` (``k = 1 .. count``) being the datagram ``b"PING <k> <anything>"``, and
waits for each one's reply at most ``timeout`` seconds from the moment it
was sent: a reply that comes later does not count (the ping is lost).  It
returns what ``ping`` prints at the end::

    {"sent": 5, "received": 4, "duplicates": 1, "loss": 20.0,   # loss in percent
     "min": 20.1, "avg": 40.3, "max": 60.2, "mdev": 14.2}       # RTTs in ms; None if nothing came back

``mdev`` is ping's: the standard deviation of the RTTs,
``sqrt(mean(rtt**2) - mean(rtt)**2)``.  ``duplicates`` counts the extra
copies of replies already received; a reply from another address, or a
datagram that is not a reply to one of our pings, is ignored.

:func:`check_pinger` runs it against a scripted echo server (which answers
each ping after a chosen delay, or twice, or late, or never, and lets a
stranger and some noise in) and prints one line per case.
"""

from __future__ import annotations

import heapq
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..i18n import N_, _
from ._report import NotWrittenYet, Report, returned, run_cases

__all__ = ["check_pinger", "format_ping"]

KEYS = ("sent", "received", "duplicates", "loss", "min", "avg", "max", "mdev")
MAX_EMPTY_RECVS = 200  # recv calls per case (and per second of it) that may find nothing (a spinning loop makes
# thousands even on a loaded machine; a select() or timeout-based wait makes one per lost ping)
RTT_SLACK_MS = 50.0  # how much later than scheduled a reply may be measured on a busy machine
MDEV_SLACK_MS = 15.0
# The scripts keep every reply that must count at least 100 ms inside its timeout, and every late one at
# least 150 ms outside, so a loaded machine does not turn one into the other.

Ping = Callable[[socket.socket, tuple, int, float], Any]


def format_ping(stats: dict, host: str = "127.0.0.1") -> str:
    """The last lines ``ping`` prints, from a pinger's result.

    Args:
        stats: a dict with the keys of the exercise (sent, received, duplicates, loss, min, avg, max, mdev).
        host: the name in the first line.

    Returns:
        The summary, e.g. ``5 packets transmitted, 4 received, +1 duplicates, 20% packet loss``
        and the ``rtt min/avg/max/mdev`` line (left out when nothing came back).
    """
    dup = f", +{stats['duplicates']} duplicates" if stats.get("duplicates") else ""
    lines = [f"--- {host} ping statistics ---",
             f"{stats['sent']} packets transmitted, {stats['received']} received{dup}, {stats['loss']:g}% packet loss"]
    if stats.get("received"):
        lines.append("rtt min/avg/max/mdev = {min:.3f}/{avg:.3f}/{max:.3f}/{mdev:.3f} ms".format(**stats))
    return "\n".join(lines)


# ------------------------------------------------------------------ the server


@dataclass
class Script:
    """What the checker's echo server does to each ping.

    ``replies[k]``: the delays (seconds after ping k arrived) at which the
    server echoes it; missing means one echo at ``default``; ``[]`` means
    never.  ``stranger[k]``: a forged reply to ping k, sent from another
    socket after that delay.  ``noise[k]``: a datagram that is not a reply,
    sent from the server's own address after that delay.
    """

    count: int
    timeout: float
    default: float = 0.02
    replies: dict[int, list[float]] = field(default_factory=dict)
    stranger: dict[int, float] = field(default_factory=dict)
    noise: dict[int, float] = field(default_factory=dict)

    def delays(self, k: int) -> list[float]:
        return self.replies.get(k, [self.default])

    def answered(self) -> list[int]:
        """The pings whose first reply comes within the timeout."""
        return [k for k in range(1, self.count + 1) if self.delays(k) and min(self.delays(k)) < self.timeout]

    def expected(self) -> dict[str, Any]:
        rtts = [min(self.delays(k)) * 1000 for k in self.answered()]
        dups = sum(len(self.delays(k)) - 1 for k in self.answered())
        got = len(rtts)
        if not rtts:
            return {"sent": self.count, "received": 0, "duplicates": 0, "loss": 100.0,
                    "min": None, "avg": None, "max": None, "mdev": None}
        mean = sum(rtts) / got
        mdev = math.sqrt(max(0.0, sum(r * r for r in rtts) / got - mean * mean))
        loss = 100.0 * (self.count - got) / self.count
        return {"sent": self.count, "received": got, "duplicates": dups, "loss": loss,
                "min": min(rtts), "avg": mean, "max": max(rtts), "mdev": mdev}


class _EchoServer:
    """A UDP echo server on a thread that follows a :class:`Script`, and logs the pings it got."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.stranger.bind(("127.0.0.1", 0))
        self.address = self.sock.getsockname()[:2]
        self.got: list[int] = []  # sequence numbers, in arrival order
        self.bad: list[bytes] = []  # datagrams that were not a PING
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="check_pinger-echo", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        todo: list[tuple[float, int, socket.socket, bytes, tuple]] = []
        order = 0
        while not self.stop.is_set():
            now = time.monotonic()
            while todo and todo[0][0] <= now:
                _due, _order, sock, data, peer = heapq.heappop(todo)
                try:
                    sock.sendto(data, peer)
                except OSError:
                    pass  # the student's socket is gone: nothing to answer
            wait = min(0.02, todo[0][0] - now) if todo else 0.02
            self.sock.settimeout(max(0.0005, wait))
            try:
                data, peer = self.sock.recvfrom(65535)
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                if self.stop.is_set():
                    return
                continue  # an ICMP error about an earlier answer (the student closed): keep serving
            k = self._sequence(data)
            if k is None:
                self.bad.append(data[:40])
                continue
            self.got.append(k)
            arrived = time.monotonic()
            plans = [(d, self.sock, data) for d in self.script.delays(k)]
            if k in self.script.stranger:
                plans.append((self.script.stranger[k], self.stranger, data))
            if k in self.script.noise:
                plans.append((self.script.noise[k], self.sock, b"hello? is this the ping server?"))
            for delay, sock, payload in plans:
                order += 1
                heapq.heappush(todo, (arrived + delay, order, sock, payload, peer))

    @staticmethod
    def _sequence(data: bytes) -> int | None:
        words = data.split()
        if len(words) >= 2 and words[0] == b"PING" and words[1].isdigit():
            return int(words[1])
        return None

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()
        self.stranger.close()


# ---------------------------------------------------------------- the checks


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _check_counts(got: dict, want: dict) -> None:
    if got["sent"] != want["sent"]:
        raise AssertionError(_("sent is {got}, expected {want}: one datagram per ping, never resent").format(
            got=got["sent"], want=want["sent"]))
    if got["received"] != want["received"]:
        if got["received"] > want["received"]:
            hint = _("a reply counted that should not be: one that came after its ping's timeout, a duplicate,"
                     " or a datagram from another address; match each reply to its ping by the sequence number"
                     " and measure the timeout from the moment the ping was sent")
        else:
            hint = _("a reply that came in time was not counted: was it taken for another ping's, was the"
                     " timeout shorter than the one you were given, or did a datagram that is not this ping's"
                     " reply (a stranger's, a duplicate, a late one) end the wait? Ignore such a datagram and keep"
                     " waiting for the rest of the timeout")
        raise AssertionError(_("received is {got}, expected {want}: {hint}").format(
            got=got["received"], want=want["received"], hint=hint))
    if got["duplicates"] != want["duplicates"]:
        raise AssertionError(_("duplicates is {got}, expected {want}: a second reply to a ping already answered"
                               " is a duplicate (ping prints DUP!), counted once and not as a new reply").format(
            got=got["duplicates"], want=want["duplicates"]))
    loss = got["loss"]
    if not isinstance(loss, (int, float)) or abs(loss - want["loss"]) > 0.01:
        if isinstance(loss, (int, float)) and want["loss"] and abs(loss * 100 - want["loss"]) < 0.01:
            raise AssertionError(_("loss is {got}, a fraction: give it in percent ({want:g}), as ping does").format(
                got=loss, want=want["loss"]))
        if isinstance(loss, (int, float)) and float(loss).is_integer() and abs(loss - want["loss"]) < 1:
            raise AssertionError(_("loss is {got}, expected {want:g}: a whole number, while 1 lost of 3 is 33.33 %;"
                                   " integer division (//), int() or round() drops the fraction: compute"
                                   " 100 * lost / sent").format(got=loss, want=want["loss"]))
        raise AssertionError(_("loss is {got!r}, expected {want:g} (percent of pings without a reply in time)").format(
            got=loss, want=want["loss"]))


def _check_rtts(got: dict, want: dict) -> str:
    if want["min"] is None:
        wrong = [k for k in ("min", "avg", "max", "mdev") if not _is_none(got[k])]
        if wrong:
            raise AssertionError(_("no reply came back, so there is no RTT: {keys} should be None").format(keys=wrong))
        return _("no reply, so no RTT")
    for key in ("min", "avg", "max"):
        _check_rtt(key, got, want)
    _check_mdev(got["mdev"], want["mdev"])
    return _("{received}/{sent} replies, rtt min {min:.1f} ms, avg {avg:.1f} ms, max {max:.1f} ms").format(**got)


def _check_rtt(key: str, got: dict, want: dict) -> None:
    """One of min, avg and max: a number of milliseconds, close to the expected one."""
    value = got[key]
    if not isinstance(value, (int, float)) or _is_none(value):
        raise AssertionError(returned(value, _("a number of milliseconds"), who=key))
    if value < want[key] / 100:
        raise AssertionError(_("{key} is {got:.4g}, expected about {want:.0f}: RTTs are in milliseconds, not"
                               " seconds").format(key=key, got=value, want=want[key]))
    if want[key] - 1.0 <= value <= want[key] + RTT_SLACK_MS:
        return
    if key != "min" and value > want[key] and got["min"] <= want["min"] + RTT_SLACK_MS:
        raise AssertionError(_(
            "{key} RTT is {got:.1f} ms, expected about {want:.0f} ms, while the first ping's is right: each"
            " RTT runs from its own ping's sendto() to its reply, not from the start of the run (or a reply"
            " was matched to the wrong ping: check the sequence number, and that it came from the server)").format(
            key=key, got=value, want=want[key]))
    raise AssertionError(_("{key} RTT is {got:.1f} ms, expected about {want:.0f} ms: a reply was matched to the"
                           " wrong ping (check the sequence number, and that it came from the server)").format(
        key=key, got=value, want=want[key]))


def _check_mdev(mdev: Any, want: float) -> None:
    """mdev: the standard deviation of the RTTs (not the variance), close to the expected one."""
    is_number = isinstance(mdev, (int, float))
    if is_number and abs(mdev - want) <= MDEV_SLACK_MS:
        return
    if is_number and want > 1 and abs(mdev - want ** 2) < MDEV_SLACK_MS * want:
        raise AssertionError(_("mdev is {got:.1f}, about the square of {want:.1f} ms: that is the variance; mdev is"
                               " its square root, in ms").format(got=mdev, want=want))
    raise AssertionError(_("mdev is {got!r}, expected about {want:.1f} ms: the standard deviation of the RTTs,"
                           " sqrt(mean(rtt**2) - mean(rtt)**2)").format(got=mdev, want=want))


class _CountingSocket(socket.socket):
    """A real UDP socket that counts the receive calls that came back empty-handed (nothing had arrived)."""

    empty = 0

    def _count(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(self, *args)
        except (BlockingIOError, TimeoutError):
            self.empty += 1
            raise

    def recvfrom(self, *args: Any) -> Any:
        return self._count(socket.socket.recvfrom, *args)

    def recv(self, *args: Any) -> Any:
        return self._count(socket.socket.recv, *args)

    def recvfrom_into(self, *args: Any) -> Any:
        return self._count(socket.socket.recvfrom_into, *args)

    def recv_into(self, *args: Any) -> Any:
        return self._count(socket.socket.recv_into, *args)


def _case(ping: Ping, script: Script) -> Callable[[], str]:
    def run() -> str:
        server = _EchoServer(script)
        sock = _CountingSocket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        outcome: list[Any] = []

        def student() -> None:
            try:
                outcome.append(ping(sock, server.address, script.count, script.timeout))
            except BaseException as exc:
                outcome.append(exc)

        longest = max([max(script.delays(k), default=0.0) for k in range(1, script.count + 1)] + [script.timeout])
        deadline = script.count * longest + 3.0
        thread = threading.Thread(target=student, name="check_pinger-student", daemon=True)
        started = time.monotonic()
        thread.start()
        thread.join(deadline)
        took = time.monotonic() - started
        hung = thread.is_alive()
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes a recvfrom() that waits forever (Linux)
        except OSError:
            pass
        sock.close()
        thread.join(2)
        server.close()
        if hung:
            raise AssertionError(_("did not return within {seconds:.0f} s (the server got pings {got}): a recvfrom()"
                                   " without a timeout waits forever for a reply that was lost").format(
                seconds=deadline, got=server.got))
        result = outcome[0] if outcome else None
        if isinstance(result, NotImplementedError):
            raise NotWrittenYet(getattr(ping, "__name__", "ping"))
        if isinstance(result, BaseException):
            raise result
        if sock.empty > max(MAX_EMPTY_RECVS, MAX_EMPTY_RECVS * took):
            raise AssertionError(_("recvfrom() found nothing to read {calls} times in {seconds:.1f} s: a busy loop"
                                   " that keeps a CPU 100 % busy while it waits. Let the call wait: a timeout"
                                   " (sock.settimeout(time left)) or select() with the time left, not a"
                                   " non-blocking socket asked again and again").format(
                calls=sock.empty, seconds=took))
        if server.bad:
            raise AssertionError(_("the server got {data!r}, which is not a ping: send b'PING <k> ...'"
                                   " (k from 1 to count)").format(data=server.bad[0]))
        if server.got != list(range(1, script.count + 1)):
            raise AssertionError(_("the server got pings {got}, expected 1 to {count}, each once, in order").format(
                got=server.got, count=script.count))
        if not isinstance(result, dict):
            raise AssertionError(returned(result, _("a dict")))
        missing = [k for k in KEYS if k not in result]
        if missing:
            raise AssertionError(_("the result has no {keys}").format(keys=missing))
        want = script.expected()
        _check_counts(result, want)
        return _check_rtts(result, want)
    return run


def _cases() -> list[tuple[str, Script]]:
    return [
        (N_("no loss: 5 pings, RTT 20 to 60 ms"),
         Script(5, 0.5, replies={1: [0.02], 2: [0.04], 3: [0.06], 4: [0.03], 5: [0.05]})),
        (N_("a lost reply: ping 2 is never answered"),
         Script(5, 0.3, replies={2: []})),
        (N_("a late reply: ping 2's comes after its timeout, while ping 3 waits"),
         Script(5, 0.4, replies={2: [0.55], 3: [0.25]})),
        (N_("reordered: ping 3's reply overtakes ping 2's, which is late"),
         Script(5, 0.4, replies={2: [0.6], 3: [0.02], 4: [0.3]})),
        (N_("duplicates: pings 1 and 3 are answered twice"),
         Script(5, 0.3, replies={1: [0.02, 0.03], 3: [0.04, 0.05]})),
        (N_("a slow link: RTT 300 ms, timeout 1 s"),
         Script(3, 1.0, replies={1: [0.3], 2: [0.32], 3: [0.28]})),
        (N_("a stranger answers first, from another address"),
         Script(4, 0.3, replies={2: [0.06]}, stranger={2: 0.01})),
        (N_("noise: a datagram that is not a reply, then a reply after the timeout"),
         Script(4, 0.4, replies={2: [0.6]}, noise={2: 0.3})),
        (N_("one of three lost: the loss is not a whole percentage"),
         Script(3, 0.3, replies={3: []})),
        (N_("every reply lost"),
         Script(3, 0.2, replies={1: [], 2: [], 3: []})),
    ]


def check_pinger(ping: Ping, show: bool = True, only: str | None = None) -> Report:
    """Run ``ping(sock, server, count, timeout)`` against a scripted echo server, one case per way replies go wrong.

    Prints one PASS/FAIL line per case (unless ``show=False``) and returns
    the :class:`~chatlab.exercises.Report`; ``bool(report)`` is True when
    all pass.  ``only="late"`` runs the cases whose name contains that text
    (in English or in the current language).
    """
    chosen = [(_(name), _case(ping, script)) for name, script in _cases()
              if only is None or only in name or only in _(name)]
    if not chosen:
        raise ValueError(_("no case name contains {only!r}").format(only=only))
    return run_cases("check_pinger", chosen, show=show, student_fns=[ping])
