"""``bench classday``: a class day: N students doing what the notebooks do, nothing lost, nothing left behind.

Each simulated student (``--students``, default 60) connects over the binary
protocol or IRC text (one in four), sits in a group room of about ten, chats
(every line carries its sender, a sequence number and the time it was said),
whispers to a classmate, sends small files (relayed, and direct for every
other one), and some run a bot that answers ``!roll``.  Meanwhile each student
opens visitor connections that hop rooms and then leave in every way there is:
QUIT, a plain close, a reset with unread data (RST), or vanishing without a
FIN (the socket stays open and silent: the server's keepalive must drop it).
At the end everyone leaves (QUIT or close) and the server is watched idle.

Reported: lines lost or reordered between students who stayed in one room
(must be 0), p50/p99 chat latency, the server's peak RSS and descriptors,
and, once all have left, its CPU over 10 s of idleness (must be ~0) and its
descriptor count (must be back where it started).  The server runs in a child
process (``chatlab.bench.procs server``) with keepalive at 2 s / 4 s so that
the vanished are reaped within the run; the students run as threads here.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client import Client
from ..core import protocol as p
from ..core.irc import parse_line
from ..errors import ChatlabError
from ..stats import percentile
from .common import Child, Scenario, server_child, table, write_csv

GROUP = 10  # students per room
PING = 2.0  # the server's keepalive for a class: a vanished peer is dropped after 2 x PING (10 s above 100 students,
# whose threads here share one interpreter: a student's PONG may wait seconds for its turn)
LEAVES = ("quit", "close", "rst", "vanish")
IDLE_SECONDS = 10.0
DRAIN = 3.0  # seconds students go on reading after the last line is said


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--students", type=int, default=60, help="simulated students (default 60)")
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the day (default 3; --quick: 30 s)")
    parser.add_argument("--selector", default=None, choices=["select", "poll", "epoll"],
                        help="the server's selector (default: select up to 200 students, epoll above)")
    parser.add_argument("--seed", type=int, default=20)


@dataclass
class Ledger:
    """What every student said and heard; filled by many threads under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    said: dict[str, list[int]] = field(default_factory=dict)  # sender -> sequence numbers said in its room
    heard: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (receiver, sender) -> sequences
    latency: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def count(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n

    def hear(self, receiver: str, text: str) -> None:
        """A chat line ``cd|SENDER|SEQ|T`` reached ``receiver``."""
        parts = text.split("|")
        if len(parts) != 4 or parts[0] != "cd":
            return
        sender, seq, said_at = parts[1], int(parts[2]), float(parts[3])
        with self.lock:
            self.heard.setdefault((receiver, sender), []).append(seq)
            self.latency.append(time.monotonic() - said_at)


@dataclass
class Day:
    """One run's shared facts: where the server is, when the day ends, the students' rooms."""

    address: tuple[str, int]
    ends_at: float
    ledger: Ledger
    rooms: dict[str, str]  # nick -> its group room
    files: Path
    rng_seed: int
    pace: float = 1.0  # seconds between a student's actions are uniform(1, 4) times this

    def classmates(self, nick: str) -> list[str]:
        return [n for n, room in self.rooms.items() if room == self.rooms[nick] and n != nick]


def chat_line(nick: str, seq: int) -> str:
    return f"cd|{nick}|{seq}|{time.monotonic():.6f}"


# ------------------------------------------------------------------ students


class BinaryStudent:
    """A student on the binary protocol (chatlab.Client), with auto-accepted downloads."""

    def __init__(self, day: Day, nick: str) -> None:
        self.day, self.nick, self.rng = day, nick, random.Random(f"{day.rng_seed}-{nick}")
        self.pace = day.pace
        inbox = day.files / nick
        inbox.mkdir(parents=True, exist_ok=True)
        self.client = Client.connect(day.address, nick, download_dir=inbox, timeout=30)
        self.client.join(day.rooms[nick])
        self.seq = 0

    def live(self) -> None:
        """Until the day ends: read events; every few seconds, an action."""
        next_action = time.monotonic() + self.rng.uniform(0.5, 3.0)
        while time.monotonic() < self.day.ends_at + DRAIN:  # the last lines said still arrive
            try:
                wait = min(next_action, self.day.ends_at + DRAIN) - time.monotonic()
                event = self.client.next_event(timeout=max(0.01, wait))
                self.on_event(event)
            except TimeoutError:
                pass
            if time.monotonic() >= next_action and time.monotonic() < self.day.ends_at:
                self.act()
                next_action = time.monotonic() + self.pace * self.rng.uniform(1.0, 4.0)

    def on_event(self, event: Any) -> None:
        if isinstance(event, p.ChatMessage) and event.sender != self.nick:
            self.day.ledger.hear(self.nick, event.text)
        elif isinstance(event, p.PrivateMessage) and event.to == self.nick:
            self.day.ledger.count("whispers received")
        elif type(event).__name__ == "FileReceived":
            self.day.ledger.count("files received")

    def act(self) -> None:
        roll = self.rng.random()
        mates = self.day.classmates(self.nick)
        if roll < 0.6 or not mates:
            self.seq += 1
            with self.day.ledger.lock:
                self.day.ledger.said.setdefault(self.nick, []).append(self.seq)
            self.client.say(chat_line(self.nick, self.seq))
        elif roll < 0.75:
            self.client.whisper(self.rng.choice(mates), "psst")
            self.day.ledger.count("whispers sent")
        elif roll < 0.85:
            self.send_file([m for m in mates if self.day.rooms.get(m + ":kind") != "irc"])
        else:
            self.client.say("!roll")

    def send_file(self, mates: list[str]) -> None:
        if not mates:
            return
        path = self.day.files / f"{self.nick}-{self.seq}-{self.rng.randrange(10**6)}.txt"
        path.write_bytes(os.urandom(self.rng.randrange(1_000, 50_000)))
        via = "direct" if self.rng.random() < 0.5 else "server"
        try:
            self.client.send_file(path, to=self.rng.choice(mates), via=via).wait(timeout=20)
            self.day.ledger.count(f"files sent ({via})")
        except (ChatlabError, TimeoutError) as exc:
            self.day.ledger.count("files failed")
            with self.day.ledger.lock:
                self.day.ledger.errors.append(f"{self.nick}: {exc}")

    def leave(self, how: str) -> None:
        if how == "quit":
            self.client.close("class is over")
        else:  # a plain close: no QUIT
            self.client._sock.close()  # noqa: SLF001 - the bench means to skip the goodbye
            self.client.close()


class IrcStudent:
    """A student in an IRC client: raw lines, parsed with the kit's own parser."""

    def __init__(self, day: Day, nick: str) -> None:
        self.day, self.nick, self.rng = day, nick, random.Random(f"{day.rng_seed}-{nick}")
        self.pace = day.pace
        self.sock = socket.create_connection(day.address, timeout=30)
        self.sock.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nJOIN #{day.rooms[nick]}\r\n".encode())
        self.buffer = b""
        self.seq = 0
        self.joined = False
        while not self.joined:  # registered and in the room before the day starts
            self.read(30.0)

    def read(self, timeout: float) -> None:
        self.sock.settimeout(max(0.01, timeout))
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, socket.timeout):
            return
        if not data:
            raise ConnectionError(f"{self.nick}: the server closed the connection")
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\r\n")
        for raw in lines:
            self.on_line(raw.decode("utf-8", "replace"))

    def on_line(self, line: str) -> None:
        parsed = parse_line(line)
        if parsed is None:
            return
        command, params = parsed
        if command == "PING":
            self.sock.sendall(f"PONG :{params[-1] if params else ''}\r\n".encode())
        elif command == "JOIN" and line.startswith(f":{self.nick}!"):
            self.joined = True
        elif command == "PRIVMSG" and params and params[0].startswith("#"):
            self.day.ledger.hear(self.nick, params[-1])
        elif command == "PRIVMSG":
            self.day.ledger.count("whispers received")

    def live(self) -> None:
        next_action = time.monotonic() + self.rng.uniform(0.5, 3.0)
        while time.monotonic() < self.day.ends_at + DRAIN:  # the last lines said still arrive
            self.read(min(next_action, self.day.ends_at + DRAIN) - time.monotonic())
            if time.monotonic() >= next_action and time.monotonic() < self.day.ends_at:
                self.act()
                next_action = time.monotonic() + self.pace * self.rng.uniform(1.0, 4.0)

    def act(self) -> None:
        mates = self.day.classmates(self.nick)
        if self.rng.random() < 0.8 or not mates:
            self.seq += 1
            with self.day.ledger.lock:
                self.day.ledger.said.setdefault(self.nick, []).append(self.seq)
            self.sock.sendall(f"PRIVMSG #{self.day.rooms[self.nick]} :{chat_line(self.nick, self.seq)}\r\n".encode())
        else:
            self.sock.sendall(f"PRIVMSG {self.rng.choice(mates)} :psst\r\n".encode())
            self.day.ledger.count("whispers sent")

    def leave(self, how: str) -> None:
        if how == "quit":
            self.sock.sendall(b"QUIT :class is over\r\n")
        self.sock.close()


def bot(day: Day, nick: str, room: str) -> None:
    """A student's bot: in the room, it answers ``!roll`` with a number."""
    rng = random.Random(nick)
    with Client.connect(day.address, nick, timeout=30) as client:
        client.join(room)
        while time.monotonic() < day.ends_at:
            try:
                event = client.next_event(timeout=0.5)
            except TimeoutError:
                continue
            if isinstance(event, p.ChatMessage) and event.text == "!roll":
                client.say(f"{event.sender} rolls {rng.randint(1, 6)}")
                day.ledger.count("bot answers")


def visitor(day: Day, nick: str, how: str, rooms: list[str], held: list[socket.socket]) -> None:
    """A short visit on a raw binary socket: hello, hop rooms, say a line, then leave ``how``."""
    sock = socket.create_connection(day.address, timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(p.encode(p.Hello(nick)))
    for room in rooms:
        sock.sendall(p.encode(p.Join(room)))
    sock.sendall(p.encode(p.Say("visiting")) + p.encode(p.Leave()))
    time.sleep(0.3)  # answers arrive and are left unread
    if how == "quit":
        sock.sendall(p.encode(p.Quit("bye")))
        sock.close()
    elif how == "close":
        sock.close()
    elif how == "rst":  # unread data and linger 0: the kernel sends RST
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    else:  # vanish: silent and open, as a laptop whose Wi-Fi dropped; closed at the very end
        held.append(sock)
    day.ledger.count(f"visitors left by {how}")


# ------------------------------------------------------------------ the day


def _students(day: Day, n: int, rng: random.Random) -> list[Any]:
    students: list[Any] = []
    for i in range(n):
        nick = f"s{i:03d}"
        kind = "irc" if i % 4 == 3 else "binary"
        day.rooms[nick + ":kind"] = kind
        students.append((IrcStudent if kind == "irc" else BinaryStudent)(day, nick))
    return students


def _run_threads(day: Day, students: list[Any], rng: random.Random,
                 held: list[socket.socket]) -> list[threading.Thread]:
    threads = [threading.Thread(target=_later, args=(0.0, s.live), name=f"classday-{s.nick}", daemon=True)
               for s in students]
    group_rooms = sorted({room for key, room in day.rooms.items() if ":" not in key})
    for i, student in enumerate(students):
        if i % 5 == 0:
            threads.append(threading.Thread(target=_later, args=(0.0, bot, day, f"bot{i:03d}", day.rooms[student.nick]),
                                            daemon=True))
        how = LEAVES[i % len(LEAVES)]
        hops = rng.sample(group_rooms, min(2, len(group_rooms))) + ["lobby"]
        visit = (rng.uniform(1.0, 10.0), visitor, day, f"v{i:03d}", how, hops, held)
        threads.append(threading.Thread(target=_later, args=visit,
                                        daemon=True))
    for thread in threads:
        thread.start()
    return threads


def _later(delay: float, fn: Any, *args: Any) -> None:
    """Run ``fn(*args)`` after ``delay`` seconds; a failure is counted, not a thread's traceback."""
    time.sleep(delay)
    try:
        fn(*args)
    except (OSError, ChatlabError, ValueError) as exc:
        owner: Any = getattr(fn, "__self__", None)  # a student's bound method, or a function given the Day
        ledger = args[0].ledger if args and isinstance(args[0], Day) else owner.day.ledger
        with ledger.lock:
            ledger.errors.append(f"{getattr(fn, '__qualname__', fn)}: {type(exc).__name__}: {exc}")


def _losses(ledger: Ledger, rooms: dict[str, str]) -> tuple[int, int]:
    """Lines lost and pairs reordered between students of one room (the said lines each classmate missed)."""
    lost = reordered = 0
    for sender, seqs in ledger.said.items():
        for receiver in [n for n, room in rooms.items() if room == rooms[sender] and n != sender and ":" not in n]:
            heard = ledger.heard.get((receiver, sender), [])
            lost += len(set(seqs) - set(heard))
            reordered += heard != sorted(heard)
    return lost, reordered


def _watch(server: Child, until: float, peaks: dict[str, int]) -> None:
    while time.monotonic() < until:
        stats = server.ask("stats")
        peaks["rss_kib"] = max(peaks.get("rss_kib", 0), int(stats.get("VmHWM", 0)))
        peaks["fds"] = max(peaks.get("fds", 0), int(stats.get("fds", 0)))
        peaks["connections"] = max(peaks.get("connections", 0), int(stats.get("connections", 0)))
        time.sleep(1.0)


def run(args: argparse.Namespace, out: Path) -> Scenario:
    sc = Scenario("classday", "a class day: N students, nothing lost, nothing left behind")
    seconds = 30.0 if args.quick else args.minutes * 60
    selector = args.selector or ("select" if args.students <= 200 else "epoll")
    rng = random.Random(args.seed)
    ping = PING if args.students <= 100 else 10.0
    server = server_child(selector, max_clients=4 * args.students + 100, ping_interval=ping)
    held: list[socket.socket] = []
    try:
        base = server.ask("stats")
        with tempfile.TemporaryDirectory(prefix="chatlab-classday-") as tmp:
            row = _day(args, sc, server, selector, seconds, rng, held, Path(tmp))
        for sock in held:
            sock.close()
        time.sleep(2 * ping + 1.5)  # the vanished are dropped by keepalive; everyone else left already
        after = server.ask("stats")
        cpu = server.cpu()
        time.sleep(IDLE_SECONDS)
        idle = (server.cpu() - cpu) / IDLE_SECONDS
        end = server.ask("stats")
        row.update(idle_cpu_percent=round(100 * idle, 2), fds_start=base["fds"], fds_end=end["fds"],
                   connections_end=after["connections"], server_summary=end.get("summary", ""))
    finally:
        for sock in held:
            sock.close()
        server.close()
    sc.rows.append(row)
    _report(sc, row, out)
    return sc


def _day(args: argparse.Namespace, sc: Scenario, server: Child, selector: str, seconds: float, rng: random.Random,
         held: list[socket.socket], files: Path) -> dict[str, Any]:
    # A lecture hall talks less per head than a lab: above 60 students, each speaks proportionally less often.
    day = Day(server.address, 0.0, Ledger(), {}, files, args.seed, pace=max(1.0, args.students / 60))
    for i in range(args.students):
        day.rooms[f"s{i:03d}"] = f"group{i // GROUP}"
    print(f"  {args.students} students on {selector} for {seconds:.0f} s (the machine is shared: timings are noisy)",
          flush=True)
    started = time.monotonic()
    students = _students(day, args.students, rng)
    day.ends_at = time.monotonic() + seconds
    threads = _run_threads(day, students, rng, held)
    peaks: dict[str, int] = {}
    _watch(server, day.ends_at, peaks)
    for thread in threads:
        thread.join(30 + DRAIN)
    for i, student in enumerate(students):
        student.leave("quit" if i % 2 == 0 else "close")
    lost, reordered = _losses(day.ledger, day.rooms)
    lat = day.ledger.latency
    return {"students": args.students, "selector": selector, "seconds": round(time.monotonic() - started, 1),
            "lines_said": sum(len(s) for s in day.ledger.said.values()), "lines_heard": len(lat),
            "lost": lost, "reordered": reordered,
            "p50_ms": round(1000 * (percentile(lat, 50) or 0), 1),
            "p99_ms": round(1000 * (percentile(lat, 99) or 0), 1),
            "peak_rss_mib": round(peaks.get("rss_kib", 0) / 1024, 1), "peak_fds": peaks.get("fds", 0),
            "peak_connections": peaks.get("connections", 0), **day.ledger.counts,
            "errors": len(day.ledger.errors), "first_error": day.ledger.errors[0] if day.ledger.errors else ""}


def _report(sc: Scenario, row: dict[str, Any], out: Path) -> None:
    table([row], [(k, k) for k in ("students", "selector", "lines_said", "lost", "reordered", "p50_ms", "p99_ms",
                                   "peak_rss_mib", "peak_fds", "idle_cpu_percent", "fds_start", "fds_end")])
    print("  " + ", ".join(f"{k}: {v}" for k, v in row.items() if k not in ("first_error",)), flush=True)
    sc.files.append(write_csv(out / "classday.csv", [row]))
    sc.verdict("no chat line lost or reordered", row["lost"] == 0 and row["reordered"] == 0,
               f"{row['lost']} lost, {row['reordered']} reordered of {row['lines_said']} lines said",
               "between students who stayed in one room")
    sc.verdict("the server idles at ~0 CPU once everyone left", row["idle_cpu_percent"] < 2.0,
               f"{row['idle_cpu_percent']} % over {IDLE_SECONDS:g} s", "")
    sc.verdict("no descriptor leaked", row["fds_end"] == row["fds_start"] and row["connections_end"] == 0,
               f"{row['fds_start']} at the start, {row['fds_end']} at the end, {row['connections_end']} connections",
               "QUIT, close, RST and vanished peers all reaped")
    if row["errors"]:
        sc.notes.append(f"{row['errors']} student-side errors, e.g. {row['first_error']}")


__all__ = ["add_arguments", "run"]
