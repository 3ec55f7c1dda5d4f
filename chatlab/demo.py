"""``python -m chatlab demo``: an embedded server and a few scripted clients.

It needs no setup: the server binds port 0 on 127.0.0.1, three clients chat
(rooms, a whisper, an action, a join and a quit), and the transcript shows
each event with the clients that received it, so you can see who hears what.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, TextIO

from . import protocol as p
from .client import Client, FileReceived
from .server import Server


def describe_event(event: Any) -> str:
    """One transcript line for a chat event."""
    if isinstance(event, p.ChatMessage):
        return f"[{event.room}] * {event.sender} {event.text}" if event.action else f"[{event.room}] <{event.sender}> {event.text}"
    if isinstance(event, p.PrivateMessage):
        return f"[private] <{event.sender} -> {event.to}> {event.text}"
    if isinstance(event, p.Notice):
        return f"-- {event.text}"
    if isinstance(event, p.WhoReply):
        users = ", ".join(f"{nick} ({room})" for nick, room in sorted(event.users.items()))
        return f"-- online: {users}"
    if isinstance(event, p.ErrorMessage):
        return f"!! {event.code}: {event.text}"
    return repr(event)


class Transcript:
    """Collects what each client receives and prints it as 'line   (seen by ...)'."""

    def __init__(self, clients: dict[str, Client], out: TextIO) -> None:
        self.clients = clients
        self.out = out

    def step(self, title: str, action: Callable[[], Any], expect: dict[str, int]) -> None:
        """Run ``action``, then wait for ``expect[nick]`` events at each client and print them."""
        print(f"\n# {title}", file=self.out)
        action()
        seen: dict[str, list[str]] = {}
        for nick, count in expect.items():
            for _ in range(count):
                line = describe_event(self.clients[nick].next_event(timeout=5))
                seen.setdefault(line, []).append(nick)
        for line, nicks in seen.items():
            print(f"{line:<52} (seen by {', '.join(nicks)})", file=self.out)


def send_during_chat(sender: Client, receiver: Client, workdir: Path, out: TextIO) -> None:
    """Send a 5 MB file while both keep chatting, and show that the chat did not wait."""
    source = workdir / "outbox" / "lab-data.bin"
    source.parent.mkdir()
    source.write_bytes(os.urandom(5_000_000))
    transfer = sender.send_file(source, to=receiver.nick)
    sender.say("sending you the lab data now")
    line = receiver.wait_for(p.ChatMessage, timeout=5)
    print(f"{describe_event(line):<52} (arrived while {transfer.acked:,} of {transfer.size:,} bytes were delivered)", file=out)
    stats = transfer.wait(timeout=60)
    got = receiver.wait_for(FileReceived, timeout=10)
    print(f"-- {got.name}: {got.size:,} bytes from {got.sender}, SHA-256 verified "
          f"({stats.mb_per_s:.0f} MB/s, adaptive window)", file=out)


def run_demo(selector: str = "select", out: TextIO | None = None) -> int:
    """Run the scripted chat and print its transcript; returns the exit code (0)."""
    out = out or sys.stdout
    with Server(port=0, selector=selector) as server, tempfile.TemporaryDirectory(prefix="chatlab-demo-") as tmp:
        host, port = server.address
        inbox = Path(tmp) / "inbox"
        inbox.mkdir()
        print(f"chatlab demo: a server on {host}:{port} ({selector}), three clients", file=out)
        with Client.connect(server.address, nick="alice") as alice, \
             Client.connect(server.address, nick="bob", download_dir=inbox) as bob, \
             Client.connect(server.address, nick="carol") as carol:  # fmt: skip
            for client in (alice, bob, carol):
                # carol joined last: once her join notice is here, the connect phase is over for everyone
                client.wait_for(p.Notice, timeout=5, predicate=lambda n: n.kind == "join" and n.nick == "carol")
                client.drain()
            t = Transcript({"alice": alice, "bob": bob, "carol": carol}, out)
            everyone = {"alice": 1, "bob": 1, "carol": 1}
            t.step("alice greets the lobby", lambda: alice.say("hello, everyone!"), everyone)
            t.step("bob answers with an action (/me)", lambda: bob.action("waves back"), everyone)
            t.step("alice whispers to bob: carol does not see it", lambda: alice.whisper("bob", "psst, team1 in 5?"),
                   {"alice": 1, "bob": 1})
            def both_join() -> None:
                bob.join("team1")
                alice.join("team1")

            t.step("bob and alice move to room team1", both_join,
                   {"alice": 2, "bob": 2, "carol": 2})
            t.step("a message in team1 stays in team1", lambda: bob.say("just us here"), {"alice": 1, "bob": 1})
            t.step("carol asks who is online", lambda: print(describe_event(carol.who()), file=out), {})
            t.step("alice sends bob a file while they chat", lambda: send_during_chat(alice, bob, Path(tmp), out), {"alice": 1})
            t.step("alice goes back to the lobby", alice.leave, {"alice": 1, "bob": 1, "carol": 1})
            t.step("carol quits", lambda: carol.close("bye!"), {"alice": 1})
    print("\nThe demo server stopped; every socket is closed.", file=out)
    return 0
