"""``bench irc``: IRC fan-out, chatlab's text mode against ngircd, the same IRC load generator.

A real peer to measure against: ngircd is an IRC server written in C, from
Debian's packages.  For each room size N (100 and 500; 20 and 100 with
``--quick``) and each server, N IRC clients register (``NICK``/``USER``) and
``JOIN #lobby`` from one process; one of them sends ``PRIVMSG #lobby`` lines,
keeping ``--window`` of them in flight (sent, not yet seen by every probe), and
every line must reach every other member.  We count deliveries per second and
the latency from send to delivery (p50, p99, measured by a few probe clients),
then stop sending and check that nothing was lost.

Flood penalties are off on both sides (``flood_limit=None`` for chatlab,
``MaxPenaltyTime = 0`` for ngircd), DNS and ident lookups off for ngircd.  ngircd
is started by the bench on a free port with a generated configuration in a
temporary folder; without ngircd installed its runs are skipped with a note.
As in ``bench fanout``, on two or more CPUs the server is pinned to CPU 0 and
the load generator to CPU 1.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import (
    Child,
    Scenario,
    add_ratio,
    cpu_count,
    delivery_row,
    free_port,
    iter_progress,
    pin,
    proc_cpu_seconds,
    proc_status,
    table,
    wait_listening,
    write_csv,
)
from .fanout import plot
from .loadgen import FanoutResult

SERVERS = ("chatlab", "ngircd")
CHANNEL = "#lobby"
NICK_FMT = "i{:05d}"
PROBES = 5  # receivers that parse every line for its timestamp; the others only count lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", default=None, help="comma-separated room sizes (default 100,500; --quick 20,100)")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"which servers (default {','.join(SERVERS)})")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per run (default 3; --quick 1)")
    parser.add_argument("--window", type=int, default=64,
                        help="lines kept in flight, all senders together (default 64)")
    parser.add_argument("--senders", type=int, default=1, help="clients that send, taking turns (default 1)")
    parser.add_argument("--selector", default="epoll", help="chatlab's selector (default epoll, as ngircd uses)")
    parser.add_argument("--idle", type=int, default=None,
                        help="idle connections for the loop-cost-per-turn measurement "
                             "(default 1000; --quick 200; 0: skip)")
    parser.add_argument("--idle-rounds", type=int, default=5000,
                        help="PING round trips for that measurement (default 5000)")


# ------------------------------------------------------------ the crowd


class _RunState:
    """What one :meth:`IrcCrowd.run` counts: lines sent (by whom), lines each client got, probe latencies."""

    def __init__(self, n: int, senders: int) -> None:
        self.senders = max(1, min(senders, n - 1))
        self.probes = sorted({self.senders + (n - 1 - self.senders) * k // max(1, PROBES - 1) for k in range(PROBES)})
        self.lines_in = [0] * n  # lines received by each client since the start
        self.sent_by = [0] * self.senders
        self.probe_partial = {i: b"" for i in self.probes}  # a probe's incomplete last line
        self.pending_out = [b""] * self.senders  # a line the kernel took only part of
        self.latencies: list[float] = []
        self.sent = 0
        self.turn = 0

    def in_flight(self) -> int:
        return self.sent - min(self.lines_in[i] for i in self.probes)


class IrcCrowd:
    """N IRC clients in one channel, driven from this process: client 0 sends, the others listen."""

    def __init__(self, address: tuple[str, int], clients: int, timeout: float = 60.0) -> None:
        self.n = clients
        self.socks: list[socket.socket] = []
        self.errors: list[str] = []
        self.poller = select.epoll()
        self.by_fd: dict[int, int] = {}
        self.partial: list[bytes] = [b""] * clients
        started = time.monotonic()
        try:
            joined: set[int] = set()
            for i in range(clients):
                s = socket.create_connection(address, timeout=timeout)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                nick = NICK_FMT.format(i)
                s.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :bench {i}\r\nJOIN {CHANNEL}\r\n".encode())
                s.setblocking(False)
                self.socks.append(s)
                self.by_fd[s.fileno()] = i
                self.poller.register(s.fileno(), select.EPOLLIN)
                if i % 25 == 24:
                    self._read_setup(0.0, joined)  # read join notices as we go, so no queue grows without bound
            deadline = time.monotonic() + timeout
            while len(joined) < clients:  # everyone has seen the end of the channel's member list (366)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {len(joined)} of {clients} IRC clients got into {CHANNEL}: "
                                       f"{self.errors[:3]}")
                self._read_setup(0.1, joined)
            last = time.monotonic()
            while time.monotonic() - last < 0.3:  # the last join notices
                if self._read_setup(0.05, joined):
                    last = time.monotonic()
        except BaseException:
            self.close()
            raise
        self.setup_seconds = time.monotonic() - started

    def _read_setup(self, timeout: float, joined: set[int]) -> int:
        got = 0
        for fd, _ in self.poller.poll(timeout):
            i = self.by_fd[fd]
            try:
                data = self.socks[i].recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                continue
            if not data:
                raise ConnectionError(f"the server closed IRC client {i} during set-up: {self.partial[i][-200:]!r}")
            got += len(data)
            text = self.partial[i] + data
            if i not in joined and f" 366 {NICK_FMT.format(i)} ".encode() in text:
                joined.add(i)
            self._answer_pings(i, text)
            self.partial[i] = text[-400:]
        return got

    def _answer_pings(self, i: int, data: bytes) -> None:
        if b"PING" in data:
            for line in data.split(b"\r\n"):
                if line.startswith(b"PING"):
                    self.socks[i].send(b"PONG" + line[4:] + b"\r\n")

    def run(self, window: int, seconds: float, warmup: float, senders: int = 1) -> FanoutResult:
        """Send for ``warmup + seconds``, measure the last ``seconds``, then wait for every line to arrive.

        Clients ``0 .. senders-1`` take turns sending; the others listen, a few of them (the
        probes) reading each line's timestamp.  ``window`` lines are kept in flight in all.
        """
        st = _RunState(self.n, senders)
        start = time.monotonic()
        measure_from, end = start + warmup, start + warmup + seconds
        t0 = cpu0 = 0.0
        sent0 = delivered0 = 0
        while (now := time.monotonic()) < end:
            if not t0 and now >= measure_from:
                t0, cpu0, sent0, delivered0 = now, time.process_time(), st.sent, sum(st.lines_in)
                st.latencies.clear()
            self._fill_window(st, window)
            for fd, _ in self.poller.poll(0.05):
                self._read_measured(st, fd)
        elapsed = time.monotonic() - (t0 or start)
        cpu = time.process_time() - cpu0 if t0 else 0.0
        delivered = sum(st.lines_in) - delivered0
        lost = self._drain(st)  # stop sending; everyone must end up with every line but their own (0 lost)
        return FanoutResult(self.n, st.senders, elapsed, delivered, st.sent - sent0, st.latencies,
                            driver_cpu=cpu / elapsed if elapsed else 0.0, setup_seconds=self.setup_seconds,
                            errors=self.errors[:5], lost=lost)

    def _flush_sender(self, st: _RunState, k: int) -> None:
        try:
            st.pending_out[k] = st.pending_out[k][self.socks[k].send(st.pending_out[k]):]
        except (BlockingIOError, InterruptedError):
            pass

    def _fill_window(self, st: _RunState, window: int) -> None:
        """Finish the senders' half-sent lines, then send new ones, senders taking turns, up to ``window`` in flight."""
        for k in range(st.senders):
            if st.pending_out[k]:
                self._flush_sender(st, k)
        skipped = 0  # senders in a row whose last line is still not out
        while st.in_flight() < window and skipped < st.senders:
            k, st.turn = st.turn, (st.turn + 1) % st.senders
            if st.pending_out[k]:
                skipped += 1
                continue
            skipped = 0
            st.sent += 1
            st.sent_by[k] += 1
            st.pending_out[k] = f"PRIVMSG {CHANNEL} :{st.sent:010d} {time.perf_counter_ns():020d}\r\n".encode()
            self._flush_sender(st, k)

    def _read_measured(self, st: _RunState, fd: int) -> None:
        """One client's bytes: count its lines; a probe also times each line; others answer PINGs."""
        i = self.by_fd[fd]
        try:
            data = self.socks[i].recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            data, why = b"", f"client {i}: {exc}"
        else:
            why = f"client {i}: the server closed the connection"
        if not data:
            self.errors.append(why)
            self.poller.unregister(fd)
            return
        st.lines_in[i] += data.count(b"\n")
        if i in st.probe_partial:
            t_now = time.perf_counter_ns()
            *whole, st.probe_partial[i] = (st.probe_partial[i] + data).split(b"\r\n")
            st.latencies += [(t_now - int(line[-20:])) / 1e6 for line in whole if b" PRIVMSG " in line]
        elif b"PING" in data:
            self._answer_pings(i, data)

    def _drain(self, st: _RunState, timeout: float = 30.0) -> int:
        """Wait until every client has every line but its own; the lines still missing then (lost)."""
        expected = [st.sent - st.sent_by[i] if i < st.senders else st.sent for i in range(self.n)]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(st.lines_in[i] < expected[i] for i in range(self.n)):
            for k in range(st.senders):
                if st.pending_out[k]:
                    self._flush_sender(st, k)
            for fd, _ in self.poller.poll(0.1):
                i = self.by_fd[fd]
                try:
                    st.lines_in[i] += self.socks[i].recv(1 << 20).count(b"\n")
                except OSError:
                    continue
        return sum(max(0, expected[i] - st.lines_in[i]) for i in range(self.n))

    def close(self) -> None:
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.socks.clear()
        self.poller.close()


# -------------------------------------------------------------- ngircd


NGIRCD_CONF = """\
[Global]
    Name = ngircd.bench.test
    Info = ngircd for chatlab's IRC fan-out bench
    Listen = 127.0.0.1
    Ports = {port}
    MotdPhrase = "bench"
    PidFile = {folder}/ngircd.pid
[Limits]
    MaxConnections = 0
    MaxConnectionsIP = 0
    MaxJoins = 0
    MaxNickLength = 20
    MaxPenaltyTime = 0
    PingTimeout = 3600
    PongTimeout = 3600
[Options]
    DNS = no
    Ident = no
    PAM = no
"""


def ngircd_path() -> str | None:
    """Where ngircd is installed (Debian puts it in /usr/sbin, often not on a user's PATH), or None."""
    return shutil.which("ngircd") or ("/usr/sbin/ngircd" if os.path.exists("/usr/sbin/ngircd") else None)


class Ngircd:
    """ngircd in the foreground on a free port, its configuration in a temporary folder."""

    def __init__(self, cpus: set[int] | None = None) -> None:
        path = ngircd_path()
        if path is None:
            raise FileNotFoundError("ngircd is not installed (Debian/Ubuntu: apt-get install ngircd)")
        self.folder = tempfile.TemporaryDirectory(prefix="chatlab-ngircd-")
        self.port = free_port()
        conf = Path(self.folder.name) / "ngircd.conf"
        conf.write_text(NGIRCD_CONF.format(port=self.port, folder=self.folder.name))
        self.proc = subprocess.Popen([path, "--nodaemon", "--config", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if cpus is not None:
            pin(self.proc.pid, cpus)
        if not wait_listening(self.port, 10.0):
            self.close()
            raise RuntimeError(f"ngircd did not listen on port {self.port} within 10 s")

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def cpu(self) -> float:
        return proc_cpu_seconds(self.proc.pid) or 0.0

    def rss_kib(self) -> int:
        return proc_status(self.proc.pid).get("VmRSS", 0)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.folder.cleanup()


# ------------------------------------------------------------ idle loop


def idle_turn_cost(address: tuple[str, int], cpu: Callable[[], float], idle: int, rounds: int) -> dict[str, float]:
    """The server's CPU per loop turn with ``idle`` registered IRC connections that say nothing.

    One more client sends ``PING`` and waits for the ``PONG``, ``rounds`` times: each round
    trip is one turn of the server's loop (wake up, read one line, answer it) while the idle
    connections sit in its selector.  Returns the CPU seconds per turn (``us_per_turn``).
    """
    socks: list[socket.socket] = []
    try:
        for i in range(idle):
            s = socket.create_connection(address, timeout=30)
            s.sendall(f"NICK z{i:05d}\r\nUSER z{i:05d} 0 * :idle {i}\r\n".encode())
            socks.append(s)
        active = socket.create_connection(address, timeout=30)
        socks.append(active)
        active.sendall(b"NICK zactive\r\nUSER zactive 0 * :active\r\nPING :warm\r\n")
        _read_until(active, b"warm")
        time.sleep(0.5)  # the idle ones' welcomes are out; the loop has nothing else to do
        cpu0, t0 = cpu(), time.perf_counter()
        for n in range(rounds):
            active.sendall(f"PING :r{n}\r\n".encode())
            _read_until(active, f"r{n}".encode())
        seconds, used = time.perf_counter() - t0, cpu() - cpu0
    finally:
        for s in socks:
            s.close()
    return {"us_per_turn": used / rounds * 1e6, "rtt_us": seconds / rounds * 1e6}


def _read_until(sock: socket.socket, token: bytes) -> None:
    data = b""
    while token not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("the server closed the connection during the idle-loop measurement")
        data = data[-64:] + chunk


# ---------------------------------------------------------------- the run


def _start(kind: str, n: int, selector: str, where: set[int] | None) -> Child | Ngircd:
    return Ngircd(where) if kind == "ngircd" else \
        Child("server", "--selector", selector, "--max-clients", str(n + 10), cpus=where)


def _measure(kind: str, n: int, args: argparse.Namespace, seconds: float, warmup: float,
             where: set[int] | None) -> dict[str, Any]:
    """One server, one room of ``n`` IRC clients: the fan-out row."""
    server = _start(kind, n, args.selector, where)
    try:
        crowd = IrcCrowd(server.address, n)
        try:
            cpu0 = server.cpu()
            result = crowd.run(args.window, seconds, warmup, args.senders)
            server_cpu = (server.cpu() - cpu0) / (result.seconds + warmup)
            rss = server.rss_kib()
        finally:
            crowd.close()
    finally:
        server.close()
    return {"clients": n, "server": "chatlab (IRC text mode)" if kind == "chatlab" else "ngircd", "kind": kind,
            "senders": args.senders, "lines_sent_per_s": result.sent / result.seconds, "lost": result.lost,
            **delivery_row(result, server_cpu, rss)}


def _measure_idle(kind: str, args: argparse.Namespace, where: set[int] | None) -> dict[str, Any]:
    server = _start(kind, args.idle, args.selector, where)
    try:
        cost = idle_turn_cost(server.address, server.cpu, args.idle, args.idle_rounds)
    finally:
        server.close()
    return {"idle_connections": args.idle, "server": kind, **cost}


def _plan(args: argparse.Namespace, sc: Scenario) -> tuple[list[int], list[str], float]:
    """Room sizes, servers (ngircd left out, with a note, when missing) and seconds per run; ``args.idle`` set."""
    counts = [int(x) for x in (args.clients or ("20,100" if args.quick else "100,500")).split(",")]
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if args.idle is None:
        args.idle = 200 if args.quick else 1000
    if "ngircd" in servers and ngircd_path() is None:
        servers.remove("ngircd")
        sc.notes.append("ngircd is not installed (apt-get install ngircd): its runs were skipped, so there is no ratio")
    return counts, servers, args.seconds if args.seconds is not None else (1.0 if args.quick else 3.0)


def run(args: argparse.Namespace, out_dir: Path) -> Scenario:
    sc = Scenario("irc", "IRC fan-out: chatlab's text mode against ngircd")
    counts, servers, seconds = _plan(args, sc)
    pinned = cpu_count() >= 2
    my_cpus = os.sched_getaffinity(0) if pinned else None
    where = {0} if pinned else None
    if pinned:
        pin(0, {1})
    print(f"irc: rooms of {', '.join(map(str, counts))} IRC clients, {args.senders} sender(s), "
          f"{args.window} lines in flight; {seconds:g} s per run; servers: {', '.join(servers)}", flush=True)
    runs = [(n, s) for n in counts for s in servers]
    try:
        rows = [_measure(kind, n, args, seconds, 0.3 if args.quick else 0.5, where)
                for n, kind in iter_progress(runs, "irc", total=len(runs), enabled=args.progress)]
        idle_rows = [_measure_idle(kind, args, where) for kind in servers] if args.idle else []
    finally:
        if my_cpus is not None:
            pin(0, my_cpus)
    add_ratio(rows, "ratio_to_ngircd", lambda r: r["kind"] == "ngircd")
    sc.rows = rows
    _print_tables(rows, idle_rows)
    _verdicts(sc, rows, counts)
    _idle_verdict(sc, idle_rows)
    sc.errors += _errors(rows)
    sc.notes += NOTES
    sc.files.append(write_csv(out_dir / "irc.csv", rows))
    if idle_rows:
        sc.files.append(write_csv(out_dir / "irc-idle.csv", idle_rows))
    sc.files.append(plot(rows, out_dir / "irc.png", reference="ngircd", what="lines",
                         room="IRC clients in #lobby", title="IRC fan-out throughput"))
    return sc


def _errors(rows: list[dict[str, Any]]) -> list[str]:
    """chatlab's lost lines: not slow but wrong (the bench exits with status 1)."""
    return [f"chatlab at {r['clients']} IRC clients: {r['lost']} lines lost {r['errors']}".rstrip()
            for r in rows if r["kind"] == "chatlab" and (r["lost"] or r["errors"])]


def _print_tables(rows: list[dict[str, Any]], idle_rows: list[dict[str, Any]]) -> None:
    print()
    table(rows, [("clients", "clients"), ("server", "server"), ("deliveries_per_s", "delivered/s"),
                 ("ratio_to_ngircd", "x ngircd"), ("lost", "lost"), ("latency_p50_ms", "p50 ms"),
                 ("latency_p99_ms", "p99 ms"), ("server_cpu", "server CPU"), ("driver_cpu", "loadgen CPU"),
                 ("server_cpu_us_per_delivery", "server us/delivery"), ("setup_seconds", "join s")])
    if idle_rows:
        print()
        table(idle_rows, [("idle_connections", "idle connections"), ("server", "server"),
                          ("us_per_turn", "server CPU us per loop turn"), ("rtt_us", "PING round trip us")])


def _verdicts(sc: Scenario, rows: list[dict[str, Any]], counts: list[int]) -> None:
    for r in rows:
        sc.verdict(f"{r['server']}: 0 lines lost at {r['clients']} clients", r["lost"] == 0 and not r["errors"],
                   f"{r['lost']} lost", r["errors"])
    for n in counts:
        mine = next((x for x in rows if x["clients"] == n and x["kind"] == "chatlab"), None)
        ref = next((x for x in rows if x["clients"] == n and x["kind"] == "ngircd"), None)
        if mine is None or ref is None or mine["ratio_to_ngircd"] is None:
            sc.verdict(f"chatlab text mode >= ngircd at {n} clients", None, "not measured",
                       "needs both servers (ngircd installed)")
        else:
            _compare(sc, n, mine, ref)


def _compare(sc: Scenario, n: int, mine: dict[str, Any], ref: dict[str, Any]) -> None:
    ok = mine["ratio_to_ngircd"] >= 1.0
    sc.verdict(f"chatlab text mode >= ngircd at {n} clients", ok,
               f"{mine['deliveries_per_s']:,.0f} vs {ref['deliveries_per_s']:,.0f} delivered/s = "
               f"{mine['ratio_to_ngircd']:.2f}x", "" if ok else _why_slower(mine, ref))
    mine_us, ref_us = mine["server_cpu_us_per_delivery"], ref["server_cpu_us_per_delivery"]
    if mine_us and ref_us:
        sc.verdict(f"chatlab's server CPU per delivery <= ngircd's at {n} clients", mine_us <= ref_us,
                   f"{mine_us:.2f} vs {ref_us:.2f} us = {mine_us / ref_us:.2f}x",
                   "" if mine_us <= ref_us else "Python bytecode per line and per member where ngircd runs C")


def _idle_verdict(sc: Scenario, idle_rows: list[dict[str, Any]]) -> None:
    by = {r["server"]: r for r in idle_rows}
    if "chatlab" in by and "ngircd" in by:
        mine, ref = by["chatlab"]["us_per_turn"], by["ngircd"]["us_per_turn"]
        sc.info(f"loop cost per turn with {by['chatlab']['idle_connections']:,} idle connections",
                f"chatlab {mine:.1f} us vs ngircd {ref:.1f} us" + (f" = {mine / ref:.2f}x" if ref else ""),
                "" if mine and ref else "too few rounds for the CPU clock (10 ms ticks): raise --idle-rounds")


NOTES = [
    ("Delivered/s counts every copy a client receives: IRC does not echo a line to its sender, so one line to a "
     "room of N is N-1 deliveries."),
    ("The senders keep the window of lines in flight in all, measured against 5 probe clients spread over the "
     "room; latency is from a sender's send() to a probe's recv(), so it includes the load generator's own delays."),
    ("ngircd reads at most 3 commands per user per pass of its loop and throttles a user who sent more "
     "(MAX_COMMANDS and THROTTLE_CMDS in its conn.c), which MaxPenaltyTime = 0 does not turn off: with one sender "
     "it waits more than it works (see its server CPU). --senders 10 spreads the lines over ten users."),
    ("Both servers are single-threaded; the load generator is Python on the other core, so when its CPU is near "
     "100% the figure is partly its limit: 'server us/delivery' (server CPU per delivery) is the fairer comparison."),
    ("Loop cost per turn: the idle connections are registered (NICK, USER) and say nothing; one more client "
     "sends PING and waits for PONG, so each round trip is one turn of the server's loop with all of them "
     "watched (chatlab's selector as --selector says; ngircd uses epoll)."),
]


def _why_slower(mine: dict[str, Any], ref: dict[str, Any]) -> str:
    if mine["server_cpu_us_per_delivery"] and ref["server_cpu_us_per_delivery"]:
        return (f"chatlab spends {mine['server_cpu_us_per_delivery']:.2f} us of CPU per delivery vs ngircd's "
                f"{ref['server_cpu_us_per_delivery']:.2f}; when that is lower, the load generator (Python, one core) "
                "is what differs")
    return "see the table"
