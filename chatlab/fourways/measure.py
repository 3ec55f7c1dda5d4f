"""Measure the four servers side by side (notebook 08), quickly enough for class.

Each server runs in its own process (``python -m chatlab.fourways KIND``),
so its memory, thread count and CPU time are its own and the load
generator, in this process, does not share its GIL.  The load generator is
one thread with ``selectors``, for every server alike.

Three measurements per server:

* :func:`rounds`: ``n`` clients; in each round every client sends one frame
  and waits until every client has received all ``n``: delivered messages
  per second and the latency of each delivery (send to receipt);
* :func:`footprint`: open ``n`` idle connections, see how much memory and
  how many threads the server process gained, per connection;
* :func:`send_calls`: the same rounds with the server under ``strace -c``
  (Linux, when strace is installed): how many ``sendto``/``sendmsg`` system
  calls it made per delivered frame.  The selectors server appends every
  frame for a member to that member's outbox and sends the outbox with one
  ``send()`` when the socket is writable, so one call carries many frames;
  the threaded server calls ``sendall()`` once per frame and member, and
  asyncio's transport tries a ``send()`` at once on every ``write()`` while
  its buffer is empty, which on a fast loopback it nearly always is.

CPU per delivery is the server's CPU time (user + system) over the rounds
divided by the deliveries.  Memory, threads and CPU need :mod:`psutil`
(``pip install psutil``); without it those columns are ``None``.
"""

from __future__ import annotations

import contextlib
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, cast

from ..core import protocol as p
from ..stats import median, percentile

try:
    import psutil
except ImportError:  # measured without memory, threads and CPU
    psutil = None

Address = tuple[str, int]
KINDS = ("blocking", "threaded", "selector", "asyncio")


@dataclass
class RoundsResult:
    kind: str
    clients: int
    expected: int  # deliveries a working server makes: clients * clients * rounds
    delivered: int
    seconds: float
    messages_per_s: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    cpu_us_per_delivery: float | None


@dataclass
class Footprint:
    kind: str
    connections: int
    kib_per_connection: float | None
    threads_per_connection: float | None


@dataclass
class SendCalls:
    kind: str
    clients: int
    frames: int  # frames the server delivered, the warm-up pings included
    send_calls: int | None  # sendto + sendmsg system calls the server made (None: not measured)
    frames_per_call: float | None


@contextlib.contextmanager
def server_process(kind: str, wrapper: tuple[str, ...] = ()) -> Iterator[tuple[Address, Any]]:
    """Start ``python -m chatlab.fourways KIND``; yield its address and a psutil.Process (or None).

    ``wrapper`` goes in front of the command (``strace -c -o FILE ...``): the process is then
    the wrapper's, and its CPU time is not the server's.
    """
    proc = subprocess.Popen(
        [*wrapper, sys.executable, "-m", "chatlab.fourways", kind],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield ("127.0.0.1", port), (psutil.Process(proc.pid) if psutil else None)
    finally:
        if proc.stdin:
            proc.stdin.close()  # the server stops when its stdin closes
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def _cpu_seconds(process: Any) -> float | None:
    if process is None:
        return None
    times = process.cpu_times()
    return float(times.user + times.system)


def _connect(address: Address, n: int) -> list[socket.socket]:
    socks = []
    try:
        for _ in range(n):
            sock = socket.create_connection(address, timeout=5)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            socks.append(sock)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def _wait_until_in_room(socks: list[socket.socket], decoders: dict, sel: selectors.BaseSelector,
                        timeout: float = 1.0) -> None:
    """Each client in turn pings and waits for its own ping to come back.

    connect() returns once the kernel has queued the connection, before the
    server has accept()ed it, and a broadcast reaches only clients already in
    the room.  The blocking server never takes the second client: give up on
    it after ``timeout``.
    """
    for token, sock in enumerate(socks):
        sock.sendall(p.encode(p.Ping(token)))
        deadline = time.perf_counter() + timeout
        back = False
        while not back and time.perf_counter() < deadline:
            for key, _ in sel.select(timeout=max(0.0, deadline - time.perf_counter())):
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                decoders[key.fileobj].feed(data)
                for frame in decoders[key.fileobj]:
                    if key.fileobj is sock and p.decode_message(frame) == p.Ping(token):
                        back = True
        if not back:
            return


def _receive_round(sock: socket.socket, decoder: p.FrameDecoder, round_no: int,
                   sent_at: dict[int, float]) -> list[float]:
    """Read what ``sock`` has; the latency of each of this round's lines in it (late warm-up pings skipped)."""
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("the server closed a client")
    now = time.perf_counter()
    decoder.feed(data)
    latencies = []
    for frame in decoder:
        said = p.decode_message(frame)
        if not isinstance(said, p.Say) or not said.text.startswith(f"{round_no} "):
            continue  # a late warm-up ping
        sender = int(said.text.split()[1])
        latencies.append(now - sent_at[sender])
    return latencies


def _one_round(socks: list[socket.socket], sel: selectors.BaseSelector, decoders: dict, round_no: int,
               timeout: float, latencies: list[float]) -> bool:
    """Every client says one line; wait until each has all of them.  False if some were missing at ``timeout``."""
    sent_at = {}
    for i, sock in enumerate(socks):
        sent_at[i] = time.perf_counter()
        sock.sendall(p.encode(p.Say(text=f"{round_no} {i}")))
    waiting = len(socks) * len(socks)
    deadline = time.perf_counter() + timeout
    while waiting and time.perf_counter() < deadline:
        for key, _ in sel.select(timeout=max(0.0, deadline - time.perf_counter())):
            sock = cast(socket.socket, key.fileobj)
            arrived = _receive_round(sock, decoders[sock], round_no, sent_at)
            latencies.extend(arrived)
            waiting -= len(arrived)
    return not waiting


def _rounds_result(kind: str, clients: int, expected: int, latencies: list[float], seconds: float,
                   cpu_seconds: float | None) -> RoundsResult:
    delivered = len(latencies)
    cpu = None  # the OS counts CPU time in ticks of about 10 ms: too short a run says nothing
    if cpu_seconds is not None and delivered and cpu_seconds >= 0.05:
        cpu = cpu_seconds / delivered * 1e6
    p50, p99 = median(latencies), percentile(latencies, 99)
    return RoundsResult(
        kind, clients, expected, delivered, seconds,
        delivered / seconds if seconds > 0 else 0.0,
        None if p50 is None else p50 * 1000,
        None if p99 is None else p99 * 1000,
        cpu,
    )


def rounds(kind: str, clients: int, n_rounds: int = 10, round_timeout: float = 1.0,
           wrapper: tuple[str, ...] = ()) -> RoundsResult:
    """Run ``n_rounds`` broadcast rounds with ``clients`` clients against a fresh server process.

    A round that misses deliveries at ``round_timeout`` ends the run (the blocking
    server never serves the second client); the result counts what was delivered.
    """
    expected = clients * clients * n_rounds
    latencies: list[float] = []
    with server_process(kind, wrapper) as (address, process):
        socks = _connect(address, clients)
        sel = selectors.DefaultSelector()
        decoders = {sock: p.FrameDecoder() for sock in socks}
        for sock in socks:
            sel.register(sock, selectors.EVENT_READ)
        _wait_until_in_room(socks, decoders, sel)
        cpu_before = _cpu_seconds(process)
        start = time.perf_counter()
        try:
            for round_no in range(n_rounds):
                if not _one_round(socks, sel, decoders, round_no, round_timeout, latencies):
                    break
        finally:
            seconds = time.perf_counter() - start
            cpu_after = _cpu_seconds(process)
            sel.close()
            for sock in socks:
                sock.close()
    cpu_seconds = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return _rounds_result(kind, clients, expected, latencies, seconds, cpu_seconds)


def footprint(kind: str, connections: int = 100, settle: float = 0.5) -> Footprint:
    """Memory (KiB) and threads the server process gains per idle connection."""
    with server_process(kind) as (address, process):
        if process is None:
            return Footprint(kind, connections, None, None)
        time.sleep(0.1)
        rss_before, threads_before = process.memory_info().rss, process.num_threads()
        socks = _connect(address, connections)
        try:
            for sock in socks:  # one frame each, so every server has really taken each client on
                sock.sendall(p.encode(p.Ping(0)))
            time.sleep(settle)
            rss_after, threads_after = process.memory_info().rss, process.num_threads()
        finally:
            for sock in socks:
                sock.close()
    return Footprint(
        kind, connections,
        (rss_after - rss_before) / 1024 / connections,
        (threads_after - threads_before) / connections,
    )


def strace_available() -> bool:
    """strace can count a child's system calls here (Linux, strace installed, ptrace allowed)."""
    strace = shutil.which("strace")
    if strace is None or not sys.platform.startswith("linux"):
        return False
    done = subprocess.run([strace, "-f", "-c", "-o", "/dev/null", sys.executable, "-c", "pass"],
                          check=False, capture_output=True, timeout=30)
    return done.returncode == 0


def _strace_counts(text: str) -> dict[str, int]:
    """``strace -c``'s table: {syscall: calls}."""
    counts = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and re.fullmatch(r"[a-z_0-9]+", fields[-1]) and fields[-1] != "total":
            try:
                counts[fields[-1]] = int(fields[3])
            except ValueError:
                continue
    return counts


def send_calls(kind: str, clients: int = 64, n_rounds: int = 10) -> SendCalls:
    """The ``sendto``/``sendmsg`` system calls a server makes for ``n_rounds`` rounds of ``clients``.

    The server runs under ``strace -f -c`` (which slows it: only the counts mean anything
    here, not the time).  ``frames`` counts the deliveries of the rounds and of the warm-up
    (each client in turn pings the room and waits for its ping: 1 + 2 + ... + clients).
    Without strace (not Linux, not installed, ptrace refused) ``send_calls`` is None.
    """
    warmup = clients * (clients + 1) // 2
    if not strace_available():
        return SendCalls(kind, clients, 0, None, None)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "strace.txt"
        wrapper = (str(shutil.which("strace")), "-f", "-c", "-e", "trace=sendto,sendmsg", "-o", str(out))
        result = rounds(kind, clients, n_rounds, round_timeout=30.0, wrapper=wrapper)
        calls = _strace_counts(out.read_text()) if out.exists() else {}
    frames = result.delivered + warmup
    total = calls.get("sendto", 0) + calls.get("sendmsg", 0)
    return SendCalls(kind, clients, frames, total, frames / total if total else None)


def compare(kinds: tuple[str, ...] = KINDS, client_counts: tuple[int, ...] = (1, 4, 16, 64),
            n_rounds: int = 20, connections: int = 100) -> tuple[list[RoundsResult], list[Footprint]]:
    """Every server at every client count, then each one's footprint."""
    results = [rounds(kind, n, n_rounds) for kind in kinds for n in client_counts]
    footprints = [footprint(kind, connections) for kind in kinds]
    return results, footprints


def table(rows: list[Any]) -> str:
    """A plain-text table of dataclass rows (numbers rounded for reading)."""
    dicts = [asdict(row) for row in rows]
    if not dicts:
        return ""
    cols = list(dicts[0])

    def fmt(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
        return str(value)

    cells = [[fmt(d[c]) for c in cols] for d in dicts]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def plot(results: list[RoundsResult]) -> Any:
    """Messages/s and median latency against the number of clients, one line per server.

    Only runs where every message arrived are drawn: the blocking server's
    line stops at one client."""
    import matplotlib.pyplot as plt

    fig, (ax_rate, ax_lat) = plt.subplots(1, 2, figsize=(10, 3.8))
    for kind in dict.fromkeys(r.kind for r in results):
        mine = [r for r in results if r.kind == kind]
        ok = [r for r in mine if r.delivered == r.expected]
        ax_rate.plot([r.clients for r in ok], [r.messages_per_s for r in ok], marker="o", label=kind)
        ax_lat.plot([r.clients for r in ok], [r.latency_p50_ms for r in ok], marker="o", label=kind)
    ax_rate.set(xscale="log", yscale="log", xlabel="clients", ylabel="delivered messages/s",
                title="delivered messages/s")
    ax_lat.set(xscale="log", yscale="log", xlabel="clients", ylabel="median latency (ms)",
               title="latency (send to receipt)")
    for ax in (ax_rate, ax_lat):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig
