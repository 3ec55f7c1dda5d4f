"""``python -m chatlab demo``: an embedded server and a few scripted clients.

It needs no setup: the server binds port 0 on 127.0.0.1, three clients chat
(rooms, a whisper, an action, a join, a file sent while they talk, and a
quit), and the transcript shows each event once, in the order it happened,
with the clients that received it, so you can see who hears what.  A fourth
user, dave, types IRC lines into a plain socket, as ``nc`` would: the lines he
reads are shown under each step, so the same chat is seen in both framings.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any, Callable, TextIO

from .client import Client, FileReceived, FileStarted
from .core import protocol as p
from .i18n import N_, _
from .notices import shown_error, shown_notice
from .server import Server
from .units import format_rate, format_size


def describe_event(event: Any) -> str:
    """One transcript line for a chat event."""
    if isinstance(event, p.ChatMessage):
        if event.action:
            return f"[{event.room}] * {event.sender} {event.text}"
        return f"[{event.room}] <{event.sender}> {event.text}"
    if isinstance(event, p.PrivateMessage):
        return _("[private] <{sender} -> {to}> {text}").format(sender=event.sender, to=event.to, text=event.text)
    if isinstance(event, p.Notice):
        return f"-- {shown_notice(event)}"
    if isinstance(event, p.WhoReply):
        users = ", ".join(f"{nick} ({room})" for nick, room in sorted(event.users.items()))
        return "-- " + _("online: {users}").format(users=users)
    if isinstance(event, p.ErrorMessage):
        return f"!! {event.code}: {shown_error(event)}"
    return repr(event)


def padded(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` columns, a Chinese character counting two (as a terminal shows it)."""
    columns = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - columns)


class TextClient:
    """A user on a plain text connection, typing IRC lines as ``nc`` or ``telnet`` would.

    The server tells it from chatlab's own clients by its first bytes (not
    ``0xC4 0x01``) and answers in IRC (RFC 1459) lines.
    """

    def __init__(self, address: tuple[str, int], nick: str) -> None:
        self.nick = nick
        self.sock = socket.create_connection(address, timeout=5)
        self.lines = self.sock.makefile("rb")
        # A program registering at once is an IRC client: it joins the channels it wants itself.
        self.send(f"NICK {nick}", f"USER {nick} 0 * :{nick} on a plain socket", "JOIN #lobby")
        self.read_until(" 366 ")  # RPL_ENDOFNAMES: registered, and in #lobby
        self.pings = 0

    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(line + "\r\n" for line in lines).encode())

    def read_until(self, marker: str) -> list[str]:
        lines = []
        while True:
            raw = self.lines.readline()
            if not raw:
                raise ConnectionError(f"the server closed {self.nick}'s connection")
            lines.append(raw.decode().rstrip("\r\n"))
            if marker in lines[-1]:
                return lines

    def pending(self) -> list[str]:
        """The lines the server has sent so far: our PING's PONG comes after all of them."""
        self.pings += 1
        token = f"demo-{self.pings}"
        self.send(f"PING :{token}")
        return self.read_until(f":{token}")[:-1]

    def close(self) -> None:
        try:
            self.send("QUIT :done")
        except OSError:
            pass
        self.lines.close()
        self.sock.close()


class Transcript:
    """Collects what each client receives and prints it as 'line   (seen by ...)', in the order it happened."""

    def __init__(self, clients: dict[str, Client], out: TextIO, text_client: TextClient | None = None) -> None:
        self.clients = clients
        self.out = out
        self.text_client = text_client

    def step(self, title: str, action: Callable[[], Any], expect: dict[str, int]) -> None:
        """Run ``action``, then wait for ``expect[nick]`` events at each client and print them."""
        print(f"\n# {_(title)}", file=self.out)
        action()
        received = {nick: [describe_event(self.clients[nick].next_event(timeout=5)) for _index in range(count)]
                    for nick, count in expect.items()}
        for line in in_order(received):
            seen_by = [nick for nick, lines in received.items() if line in lines]
            print(padded(line, 52) + " " + _("(seen by {nicks})").format(nicks=", ".join(seen_by)), file=self.out)
        if self.text_client is not None:
            for line in self.text_client.pending():
                shown = line.replace("\x01", "\\x01")  # CTCP's invisible delimiters, made visible
                reads = _("{nick} (IRC) reads: {line}").format(nick=self.text_client.nick, line=shown)
                print("    " + reads, file=self.out)


def in_order(received: dict[str, list[str]]) -> list[str]:
    """One list of the distinct lines that keeps every client's own order of arrival.

    Each client receives the server's messages in the order the server sent
    them, so a line one client saw before another really came first.  When
    no client orders two lines, a "left" notice goes before a "joined" one
    (the server says a member left a room before saying it joined the next).
    """
    after: dict[str, set[str]] = {}  # line -> the lines some client saw just before it
    first_seen: list[str] = []
    for lines in received.values():
        for previous, line in zip([None, *lines], lines):
            after.setdefault(line, set())
            if previous is not None and previous != line:
                after[line].add(previous)
            if line not in first_seen:
                first_seen.append(line)
    ordered: list[str] = []
    while len(ordered) < len(first_seen):
        ready = [line for line in first_seen if line not in ordered and after[line] <= set(ordered)]
        ready = ready or [line for line in first_seen if line not in ordered]  # (a cycle cannot happen; stay safe)
        ordered.append(min(ready, key=lambda line: (_is_join(line), first_seen.index(line))))
    return ordered


def _is_join(line: str) -> bool:
    """A "joined" notice, in English or in the current language."""
    middle = _("{nick} joined {room}").partition("{nick}")[2].partition("{room}")[0]
    return " joined " in line or bool(middle.strip()) and middle in line


def send_during_chat(sender: Client, receiver: Client, workdir: Path, out: TextIO) -> None:
    """Send a 5 MB file and, while it flows, a chat line: the line does not wait behind the file."""
    source = workdir / "outbox" / "lab-data.bin"
    source.parent.mkdir()
    source.write_bytes(os.urandom(5_000_000))
    transfer = sender.send_file(source, to=receiver.nick)
    started = receiver.wait_for(FileStarted, timeout=10)
    print("-- " + _("{nick} accepts {name} ({size}); it arrives into {name}.part").format(
        nick=receiver.nick, name=started.name, size=format_size(started.size)), file=out)
    while not transfer.done and not any(file.received for file in receiver.receiving()):
        time.sleep(0.001)  # until the first chunks are in, so the line really is sent during the transfer
    sender.say("sending you the lab data now")
    line = receiver.wait_for(p.ChatMessage, timeout=5)
    had = next((file.received for file in receiver.receiving() if file.name == started.name), started.size)
    if had < started.size:
        when = _("while {nick} had {done} of {size}").format(
            nick=receiver.nick, done=format_size(had), size=format_size(started.size))
    else:  # a fast machine: the file won the race, and we say so
        when = _("after the whole file")
    sender.wait_for(p.ChatMessage, timeout=5)  # the sender's own copy of the same line: printed once, above
    print(padded(describe_event(line), 52) + " " + _("(seen by {nicks}; it arrived {when})").format(
        nicks=f"{sender.nick}, {receiver.nick}", when=when), file=out)
    stats = transfer.wait(timeout=60)
    got = receiver.wait_for(FileReceived, timeout=10)
    print("-- " + _("{name}: {size} from {sender}, SHA-256 verified, {rate} with the adaptive window").format(
        name=got.name, size=format_size(got.size), sender=got.sender, rate=format_rate(stats.bytes, stats.seconds)),
        file=out)
    saved = _("saved as {path} (the demo's temporary folder, deleted when it ends)").format(path=got.path)
    print("-- " + saved, file=out)


def run_demo(selector: str = "select", out: TextIO | None = None) -> int:
    """Run the scripted chat and print its transcript; returns the exit code (0)."""
    out = out or sys.stdout
    with Server(port=0, selector=selector) as server, tempfile.TemporaryDirectory(prefix="chatlab-demo-") as tmp:
        host, port = server.address
        inbox = Path(tmp) / "inbox"
        inbox.mkdir()
        print(_("chatlab demo: a server on {host}:{port} ({selector}), three chatlab clients and one IRC text client")
              .format(host=host, port=port, selector=selector), file=out)
        with Client.connect(server.address, nick="alice") as alice, \
             Client.connect(server.address, nick="bob", download_dir=inbox) as bob, \
             Client.connect(server.address, nick="carol") as carol:  # fmt: skip
            dave = TextClient(server.address, "dave")
            try:
                for client in (alice, bob, carol):
                    # dave joined last: once his join notice is here, the connect phase is over for everyone
                    client.wait_for(p.Notice, timeout=5, predicate=lambda n: n.kind == "join" and n.nick == "dave")
                    client.drain()
                dave.pending()
                run_steps(Transcript({"alice": alice, "bob": bob, "carol": carol}, out, dave), alice, bob, carol, dave,
                          Path(tmp))
            finally:
                dave.close()
    print("\n" + _("The demo server stopped; every socket is closed."), file=out)
    return 0


def run_steps(t: Transcript, alice: Client, bob: Client, carol: Client, dave: TextClient, tmp: Path) -> None:
    everyone = {"alice": 1, "bob": 1, "carol": 1}
    out = t.out
    t.step(N_("alice greets the lobby"), lambda: alice.say("hello, everyone!"), everyone)
    t.step(N_("bob answers with an action (/me)"), lambda: bob.action("waves back"), everyone)
    t.step(N_("dave, on a plain text connection, types an IRC line"), lambda: dave.send("PRIVMSG #lobby :hi from nc!"),
           everyone)
    t.step(N_("alice whispers to bob: carol does not see it"), lambda: alice.whisper("bob", "psst, team1 in 5?"),
           {"alice": 1, "bob": 1})
    t.step(N_("bob moves to room team1"), lambda: bob.join("team1"), everyone)
    t.step(N_("alice follows him"), lambda: alice.join("team1"), everyone)
    t.step(N_("a message in team1 stays in team1"), lambda: bob.say("just us here"), {"alice": 1, "bob": 1})
    t.step(N_("carol asks who is online"), lambda: print(describe_event(carol.who()), file=out), {})
    t.step(N_("alice sends bob a file while they chat"), lambda: send_during_chat(alice, bob, tmp, out), {})
    t.step(N_("alice goes back to the lobby"), alice.leave, {"alice": 1, "bob": 1, "carol": 1})
    t.step(N_("carol quits"), lambda: carol.close("bye!"), {"alice": 1})
