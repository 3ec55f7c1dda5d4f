"""The interactive terminal client: ``python -m chatlab client --nick alice HOST:PORT``.

Two things happen at once in a chat client: the person types, and messages
arrive.  Here each gets its own thread:

* the **main thread** reads what is typed and turns each line into a
  :class:`Command` (:func:`parse_command`), then into a call on the
  :class:`~chatlab.client.Client`;
* the **event printer thread** loops on :meth:`Client.next_event` and prints
  every event, formatted by :func:`format_event`.

On a real terminal, prompt_toolkit draws the prompt and ``patch_stdout()``
makes every line printed by the printer thread appear *above* the line being
typed, which is redrawn intact: a plain ``print()`` from another thread would
land in the middle of it.  When stdin is not a terminal (piped input, tests,
CI), lines are read with plain ``readline()``, still in the main thread.

Why keyboard input is never put in a ``select()`` loop with the socket, as a
Unix chat client in C might do: on Windows ``select()`` accepts sockets only,
not stdin (nor pipes).  A thread that blocks on the keyboard works everywhere.

The parsing and formatting functions do no I/O, so they are unit-tested
without a terminal (``tests/test_terminal.py``).
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, TextIO

from .core import protocol as p
from .client import CLOSED_BY_SERVER, CLOSED_BY_US, Address, Client, DirectFallback, Disconnected, FileFailed, FileReceived, FileStarted
from .errors import ChatlabError, ConnectionBroken, ConnectionClosed, NickError, ServerError
from .i18n import N_, _, ngettext
from .notices import connect_failure, shown_address, shown_error, shown_motd, shown_notice
from .units import format_rate, format_size

__all__ = ["run_terminal_client", "parse_command", "format_event", "format_size", "Command", "TerminalSession", "HELP"]

# Exit codes of run_terminal_client.
EXIT_OK = 0  # /quit, end of input, Ctrl-C, Ctrl-D
EXIT_CONNECTION = 1  # could not connect, or the connection was lost
EXIT_REFUSED = 2  # the server refused us (nick taken, server full) or the address is malformed

EVENT_POLL = 0.5  # seconds; the printer thread wakes this often even when nothing arrives
FLUSH_TIMEOUT = 2.0  # seconds to wait, on /quit, for replies to what we sent before
PROGRESS_INTERVAL = 2.0  # seconds between two progress lines of a file transfer
OFFER_ANSWER_WAIT = 1.0  # seconds to wait for a quick answer (e.g. "nobody by that name") before saying "offering"
WATCH_POLL = 0.05  # seconds; how often a transfer's watcher thread looks at it

# The English text; the client prints _(HELP), the help in the current language.
HELP = N_("""\
Commands:
  TEXT                   say TEXT to everyone in your room (start with // to say a line beginning with /)
  /me ACTION             an action: * alice waves
  /msg NICK TEXT         a private message to NICK only
  /join ROOM [key=PW]    move to ROOM (created if it does not exist); key=PW gives its password,
                         or sets it if you create the room.  Room names have no spaces
  /leave                 go back to the default room
  /who                   who is online, and in which room
  /send FILE NICK [--direct]  send a file to NICK (sizes are decimal: 1 MB = 1,000,000 bytes);
                         --direct: over a connection of its own to NICK, not through the server
  /accept [N]            accept file offer N (the latest by default) into the download folder
  /reject [N]            turn file offer N down
  /quit [REASON]         leave the chat (end of input and Ctrl-D do the same)
  /help                  this list""")

# name -> (usage, minimum args, maximum args)
_COMMANDS: dict[str, tuple[str, int, int]] = {
    "me": ("/me ACTION", 1, 1),
    "msg": ("/msg NICK TEXT", 2, 2),
    "join": ("/join ROOM [key=PASSWORD]", 1, 2),
    "leave": ("/leave", 0, 0),
    "who": ("/who", 0, 0),
    "send": ("/send FILE NICK [--direct]", 2, 3),
    "accept": ("/accept [N]", 0, 1),
    "reject": ("/reject [N]", 0, 1),
    "quit": ("/quit [REASON]", 0, 1),
    "help": ("/help", 0, 0),
}
_REST_OF_LINE = {"me", "msg", "quit"}  # their last argument is free text, spaces included
_ALIASES = {"w": "msg", "whisper": "msg", "tell": "msg", "j": "join", "part": "leave", "exit": "quit", "?": "help"}


@dataclass(frozen=True)
class Command:
    """One line typed by the user, understood.

    ``name`` is ``say`` for plain text, ``empty`` for a blank line, ``invalid``
    for a line that cannot be run (``error`` then says why, in one line), or
    one of the slash commands: ``me``, ``msg``, ``join``, ``leave``, ``who``,
    ``send``, ``quit``, ``help``.  ``args`` are its arguments, as strings.
    """

    name: str
    args: tuple[str, ...] = ()
    error: str = ""


def parse_command(line: str) -> Command:
    """Understand one typed line; never raises.

    >>> parse_command("/msg bob see you at 5")
    Command(name='msg', args=('bob', 'see you at 5'), error='')
    >>> parse_command("hello")
    Command(name='say', args=('hello',), error='')
    """
    line = line.rstrip("\r\n")
    if not line.strip():
        return Command("empty")
    if line.startswith("//"):  # the IRC convention to say something that starts with a slash
        return Command("say", (line[1:],))
    if not line.startswith("/"):
        return Command("say", (line,))
    word, _space, rest = line[1:].partition(" ")
    name = _ALIASES.get(word.lower(), word.lower())
    if name not in _COMMANDS:
        shown = "/" + word if word else "/"
        return Command("invalid", error=_("unknown command {command!r}: type /help for the list").format(command=shown))
    usage, least, most = _COMMANDS[name]
    rest = rest.strip()
    if name == "send":
        direct = rest == "--direct" or rest.endswith(" --direct")
        rest = rest.removesuffix("--direct").rstrip() if direct else rest
        # The nick is the last word, the file is everything before it: paths may contain spaces.
        path, _space, nick = rest.rpartition(" ")
        args = [_unquote(path.strip()), nick] + (["--direct"] if direct else []) if path.strip() and nick else []
    elif name == "join":
        return _parse_join(rest, usage)
    elif name in _REST_OF_LINE:
        args = rest.split(None, most - 1) if rest else []
    else:
        args = rest.split()
    if not least <= len(args) <= most:
        return Command("invalid", error=_("usage: {usage}").format(usage=usage))
    return Command(name, tuple(args))


def _parse_join(rest: str, usage: str) -> Command:
    """``/join ROOM [key=PASSWORD]``.

    The password is marked with ``key=`` (IRC calls a room's password its
    key) so that ``/join my room`` cannot be read as room "my" with password
    "room": it is an error that says room names have no spaces.
    """
    words = rest.split()
    if not words:
        return Command("invalid", error=_("usage: {usage}").format(usage=usage))
    room, extra = words[0], words[1:]
    keys = [word[len("key="):] for word in extra if word.startswith("key=")]
    if len(keys) < len(extra):
        return Command("invalid", error=_("room names have no spaces: {text!r} is not a room name"
                                          " (to give room {room!r} a password, type /join {room} key=PASSWORD)").format(
            text=rest, room=room))
    if len(keys) > 1 or (keys and not keys[0]):
        return Command("invalid", error=_("usage: {usage} (one key=, with a password after the =)").format(usage=usage))
    return Command("join", (room, *keys))


def _unquote(text: str) -> str:
    """``"my file.txt"`` -> ``my file.txt``: shells taught people to quote paths."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


# Characters that would let a peer move the cursor, clear the screen, ring the
# bell, start a fake new line, or reverse the text direction on our terminal.
_UNSAFE = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_UNSAFE.update({c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))})


def clean(text: str) -> str:
    """``text`` with control characters shown escaped (``\\x1b``), safe to print on a terminal."""
    return text.translate(_UNSAFE)


# Protocol messages the client handles itself (keepalive, the inner frames of a
# transfer): nothing a person needs to read.
_SILENT = (p.Ping, p.Pong, p.Welcome, p.FileAccept, p.FileReject, p.FileChunk, p.FileAck, p.FileDone, p.FileCancel)


# The client library's fixed phrases for why something ended, shown in the current language.
_REASONS = {CLOSED_BY_SERVER: N_("closed by the server"), CLOSED_BY_US: N_("you closed the connection")}
_REASON_PREFIXES = {"connection broken: ": N_("connection broken: {error}"), "connection ended: ": N_("connection ended: {reason}")}


def shown_reason(reason: str) -> str:
    """``reason`` from the client library, translated where it is one of its fixed phrases."""
    english = _REASONS.get(reason)
    if english is not None:
        return _(english)
    for prefix, template in _REASON_PREFIXES.items():
        if reason.startswith(prefix):
            rest = shown_reason(reason[len(prefix):])
            return _(template).format(error=rest, reason=rest)
    return reason


def format_event(event: Any, me: str) -> str | None:
    """The line to print for one event from :meth:`Client.next_event`, or ``None`` to print nothing.

    ``me`` is my own nick (the WHO list marks it).  Everything that came from
    other people goes through :func:`clean` first.
    """
    if isinstance(event, p.ChatMessage):
        if event.action:
            return f"* {clean(event.sender)} {clean(event.text)}"
        return f"[{clean(event.room)}] <{clean(event.sender)}> {clean(event.text)}"
    if isinstance(event, p.PrivateMessage):
        if event.action:
            return _("[private] * {sender} {text} (to {to})").format(
                sender=clean(event.sender), text=clean(event.text), to=clean(event.to))
        return _("[private] <{sender} -> {to}> {text}").format(
            sender=clean(event.sender), to=clean(event.to), text=clean(event.text))
    if isinstance(event, p.Notice):
        return f"-- {clean(shown_notice(event))}"
    if isinstance(event, p.ErrorMessage):
        return f"!! {clean(event.code)}: {clean(shown_error(event))}"
    if isinstance(event, p.WhoReply):
        return _format_who(event, me)
    if isinstance(event, p.FileOffer):
        return "-- " + _("{peer} offers you {name!r} ({size})").format(
            peer=clean(event.peer), name=clean(event.name), size=format_size(event.size))
    if isinstance(event, FileStarted):
        resumed = _("; resuming at {size}, where an earlier transfer stopped").format(
            size=format_size(event.resumed_from)) if event.resumed_from else ""
        return "-- " + _("receiving {name!r} from {sender} ({size}) into {path}{resumed}").format(
            name=clean(event.name), sender=clean(event.sender), size=format_size(event.size),
            path=clean(str(event.path)), resumed=resumed)
    if isinstance(event, FileReceived):
        return "-- " + _("received {name!r} from {sender} ({size}, SHA-256 verified): saved as {path}").format(
            name=clean(event.name), sender=clean(event.sender), size=format_size(event.size), path=clean(str(event.path)))
    if isinstance(event, FileFailed):
        return "!! " + _("receiving {name!r} from {sender} failed: {reason}").format(
            name=clean(event.name), sender=clean(event.sender), reason=clean(shown_reason(event.reason)))
    if isinstance(event, DirectFallback):
        return "-- " + _("{name!r} to {to}: {reason}").format(name=clean(event.name), to=clean(event.to), reason=clean(event.reason))
    if isinstance(event, Disconnected):
        return "-- " + _("disconnected: {reason}").format(reason=clean(shown_reason(event.reason)))
    if isinstance(event, _SILENT):
        return None
    return f"-- {clean(repr(event))}"  # an event this version does not know: show it rather than lose it


def _format_who(reply: p.WhoReply, me: str) -> str:
    """``-- 3 online in 2 rooms: lobby (2): alice (you), carol | team1 (1): bob``."""
    members: dict[str, list[str]] = {room: [] for room in reply.rooms}
    for nick, room in reply.users.items():
        members.setdefault(room, []).append(nick)
    parts = []
    for room in sorted(members, key=str.casefold):
        nicks = sorted(members[room], key=str.casefold)
        shown = ", ".join(clean(n) + (_(" (you)") if n == me else "") for n in nicks) or _("nobody")
        parts.append(f"{clean(room)} ({len(nicks)}): {shown}")
    rooms = len(members)
    online = ngettext("{users} online in {rooms} room: ", "{users} online in {rooms} rooms: ", rooms)
    return "-- " + online.format(users=len(reply.users), rooms=rooms) + " | ".join(parts)


def _request(client: Client, message: p.Message) -> None:
    """Send a request without waiting for its answer: the printer thread prints the answer.

    Why not ``client.join()`` or ``client.who()``: they wait for the reply
    event, and the printer thread, also reading events, could take it first
    (then join() would time out).  In a terminal every answer is simply
    printed when it comes.  ``send`` queues the frame in order with chat
    lines; ``send_raw`` would jump ahead of a line typed just before.
    """
    client.send(message)


class TerminalSession:
    """Runs typed commands on a connected client and prints its events from a thread.

    The front ends (prompt_toolkit on a terminal, ``readline()`` otherwise)
    only feed lines to :meth:`handle_line` until it returns ``False``, or
    until :attr:`stopped` is set because the connection ended.

    Args:
        client: a connected client; the session closes it.
        write: prints one line; called from several threads, must be thread-safe.
    """

    def __init__(self, client: Client, write: Callable[[str], None], download_dir: str = "downloads") -> None:
        self.client = client
        self.write = write
        self.download_dir = download_dir
        self.offers: dict[int, p.FileOffer] = {}  # numbered as shown, for /accept N and /reject N
        self._offer_numbers = iter(range(1, 1_000_000))
        self.stopped = threading.Event()  # the printer thread has ended
        self.lost: str | None = None  # why the connection ended, if we did not end it
        self.on_lost: Callable[[], None] | None = None  # lets the front end stop waiting for input
        self._quitting = False
        self._barrier = threading.Event()
        self._barrier_token = -1
        self._progress_shown: dict[tuple[str, str], int] = {}  # (sender, file) -> bytes in the last progress line
        self._printer = threading.Thread(target=self._print_events, name=f"chatlab-printer-{client.nick}", daemon=True)

    def start(self) -> None:
        """Greet the user and start the event printer thread."""
        host, port = self.client.address
        self.write("-- " + _("connected to {host}:{port} as {nick}; /help lists the commands").format(
            host=host, port=port, nick=self.client.nick))
        if self.client.motd:
            self.write(f"-- {clean(shown_motd(self.client.motd))}")
        self._printer.start()

    # ----------------------------------------------------------- the printer

    def _print_events(self) -> None:
        next_progress = time.monotonic() + PROGRESS_INTERVAL
        try:
            while True:
                if time.monotonic() >= next_progress:
                    self._print_receiving_progress()
                    next_progress = time.monotonic() + PROGRESS_INTERVAL
                try:
                    event = self.client.next_event(timeout=EVENT_POLL)
                except TimeoutError:
                    continue
                except ChatlabError:  # ConnectionClosed: we closed it and every event is printed
                    return
                if isinstance(event, p.Pong) and event.token == self._barrier_token:
                    self._barrier.set()
                    continue
                if isinstance(event, Disconnected):
                    if not self._quitting:
                        self.lost = event.reason
                        self.write(format_event(event, self.client.nick) or "-- " + _("disconnected"))
                    return
                line = format_event(event, self.client.nick)
                if isinstance(event, p.FileOffer):  # the interactive client asks
                    number = next(self._offer_numbers)
                    self.offers[number] = event
                    line = _("{offer}: /accept {number} or /reject {number}").format(offer=line, number=number)
                if line is not None:
                    self.write(line)
        finally:
            self.stopped.set()
            self._barrier.set()
            if self.lost is not None and self.on_lost is not None:
                self.on_lost()

    def _print_receiving_progress(self) -> None:
        """A progress line for each file arriving, if it moved since the last one (printer thread)."""
        receiving = getattr(self.client, "receiving", None)
        if receiving is None:
            return
        for file in receiving():
            key = (file.sender, file.name)
            if 0 < file.received < file.size and file.received != self._progress_shown.get(key):
                self._progress_shown[key] = file.received
                self.write(f"-- {clean(file.name)} <- {clean(file.sender)}: {_percent(file.received, file.size)}")

    # ----------------------------------------------------------- commands

    def handle_line(self, line: str) -> bool:
        """Run one typed line.  Returns ``False`` when the session should end."""
        if self.stopped.is_set():
            return False
        command = parse_command(line)
        try:
            return self.execute(command)
        except ConnectionClosed:
            self.lost = self.lost or _("the connection is closed")  # the printer may not have seen it yet
            self.write("!! " + _("not connected any more"))
            return False
        except (ChatlabError, OSError, TimeoutError) as exc:
            self.write(f"!! {clean(str(exc))}")
            return True

    def execute(self, command: Command) -> bool:
        """Run one parsed command.  Returns ``False`` after ``/quit``."""
        client, args = self.client, command.args
        if command.name == "say":
            client.say(args[0])
        elif command.name == "me":
            client.action(args[0])
        elif command.name == "msg":
            client.whisper(args[0], args[1])
        elif command.name == "join":
            _request(client, p.Join(args[0], args[1] if len(args) > 1 else ""))
        elif command.name == "leave":
            _request(client, p.Leave())
        elif command.name == "who":
            _request(client, p.Who())
        elif command.name == "send":
            self.send_file(args[0], args[1], via="direct" if args[2:] else "server")
        elif command.name in ("accept", "reject"):
            self.answer_offer(command.name, args[0] if args else None)
        elif command.name == "help":
            for line in _(HELP).splitlines():
                self.write(line)
        elif command.name == "invalid":
            self.write(f"!! {command.error}")
        elif command.name == "quit":
            self.quit(args[0] if args else "")
            return False
        return True

    def answer_offer(self, verb: str, number: str | None) -> None:
        """``/accept N`` or ``/reject N``; without N, the latest offer."""
        if not self.offers:
            self.write("!! " + _("there is no file offer to answer"))
            return
        key = max(self.offers) if number is None else int(number) if number.isdigit() else -1
        offer = self.offers.pop(key, None)
        if offer is None:
            self.write("!! " + _("no file offer number {number}; open offers: {offers}").format(
                number=number, offers=", ".join(map(str, sorted(self.offers)))))
            return
        if verb == "reject":
            self.client.reject_file(offer, "declined")
            self.write("-- " + _("you turned down {name!r} from {peer}").format(name=clean(offer.name), peer=clean(offer.peer)))
            return
        os.makedirs(self.download_dir, exist_ok=True)
        # A FileStarted event follows ("receiving ... into ..."); a TransferError (e.g. an unsafe name) is printed by handle_line.
        self.client.accept_file(offer, self.download_dir)

    def quit(self, reason: str = "", flush: bool = True) -> None:
        """Close the connection (once).  ``flush``: first print the answers to what we sent."""
        if self._quitting:
            return
        if flush:
            self.flush_replies()
        self._quitting = True
        self.client.close(reason)
        self._printer.join(FLUSH_TIMEOUT)

    def flush_replies(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Wait until the answers to everything sent so far have been printed.

        A PING goes out behind them; the server handles frames in order and TCP
        keeps them in order, so once its PONG is back every earlier reply is
        here too.  This is why ``printf '/who\\n' | chatlab client ...`` shows
        the WHO list before quitting at the end of its input.
        """
        if self.stopped.is_set() or self.client.closed:
            return
        self._barrier.clear()
        self._barrier_token = random.randrange(1, 2**31)
        try:
            _request(self.client, p.Ping(self._barrier_token))
        except ChatlabError:
            return
        self._barrier.wait(timeout)

    # ------------------------------------------------------- file transfer

    def send_file(self, path: str, nick: str, via: str = "server") -> None:
        """Offer ``path`` to ``nick`` (``via="direct"``: over a connection of its own) and report the transfer."""
        send_file = getattr(self.client, "send_file", None)
        if send_file is None:
            self.write("!! " + _("file transfer is not available in this version"))
            return
        if not os.path.isfile(path):
            self.write("!! " + _("no such file: {path}").format(path=clean(path)))
            return
        name = os.path.basename(path)
        try:
            transfer = send_file(path, to=nick, via=via) if via != "server" else send_file(path, to=nick)
        except (ChatlabError, OSError, ValueError) as exc:
            self.write("!! " + _("could not send {name}: {error}").format(name=clean(name), error=clean(str(exc))))
            return
        threading.Thread(target=self._watch_transfer, args=(transfer, name, nick),
                         name=f"chatlab-transfer-{name}", daemon=True).start()

    def _watch_transfer(self, transfer: Any, name: str, nick: str) -> None:
        """Report one outgoing transfer until it ends: its answer, its progress, its outcome.

        "offering" is printed only if no answer came within OFFER_ANSWER_WAIT:
        an offer to a nick nobody has is refused by the server within a round
        trip, and then the one line to print is that refusal.
        """
        outcome: dict[str, Any] = {}

        def wait() -> None:
            try:
                outcome["result"] = transfer.wait()
            except BaseException as exc:  # reported below, whatever it is
                outcome["error"] = exc

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        label, size = _("{name} to {nick}").format(name=clean(name), nick=clean(nick)), transfer.size
        offered_at = time.monotonic()
        offer_shown = accept_shown = False
        progress_at, progress_shown = 0.0, None
        while True:
            waiter.join(WATCH_POLL)
            finished, now = not waiter.is_alive(), time.monotonic()
            accepted = getattr(transfer, "accepted", True)  # (an object without the attribute: assume it was)
            if not (offer_shown or accepted or finished) and now - offered_at >= OFFER_ANSWER_WAIT:
                self.write("-- " + _("offering {file} ({size}); waiting for {nick} to accept").format(
                    file=label, size=format_size(size), nick=clean(nick)))
                offer_shown = True
            if accepted and not accept_shown and hasattr(transfer, "accepted"):
                resumed = getattr(transfer, "resumed_from", 0)
                if resumed:
                    self.write("-- " + _("{nick} accepted {name}; resuming: {done} of {size} were already there"
                                         " from an interrupted transfer").format(
                        nick=clean(nick), name=clean(name), done=format_size(resumed), size=format_size(size)))
                else:
                    self.write("-- " + _("{nick} accepted {name}; sending {size}").format(
                        nick=clean(nick), name=clean(name), size=format_size(size)))
                accept_shown = True
            if finished:
                break
            progress = _progress(transfer)
            if accepted and now - progress_at >= PROGRESS_INTERVAL and progress is not None and progress != progress_shown:
                if progress_at:  # not at the very start: "0%" says nothing
                    self.write(f"-- {clean(name)} -> {clean(nick)}: {progress}")
                progress_at, progress_shown = now, progress
        if getattr(transfer, "failed", False) or "error" in outcome:
            # The transfer's own reason: the error's text repeats "sending X to Y failed", which we say already.
            reason = getattr(transfer, "reason", "") or str(outcome.get("error", ""))
            accepted = getattr(transfer, "accepted", True)
            if accepted:
                self.write("!! " + _("sending {file} failed: {reason}").format(file=label, reason=clean(reason)))
            else:
                self.write("!! " + _("cannot send {file}: {reason}").format(file=label, reason=clean(reason)))
        else:
            self.write("-- " + _("sent {file}{summary}").format(file=label, summary=_summary(transfer, outcome.get("result"))))


def _percent(done: int, size: int) -> str:
    """``"42% (4.2 MB of 10.0 MB)"``."""
    return _("{percent}% ({done} of {size})").format(
        percent=100 * done // size if size else 100, done=format_size(done), size=format_size(size))


def _progress(transfer: Any) -> str | None:
    """``"42% (4.2 MB of 10.0 MB)"`` from whatever counters the transfer object has."""
    size = getattr(transfer, "size", None)
    done = next((getattr(transfer, a) for a in ("acked", "sent", "transferred") if isinstance(getattr(transfer, a, None), int)), None)
    if not isinstance(size, int) or done is None or size <= 0:
        return None
    return _percent(done, size)


def _summary(transfer: Any, result: Any) -> str:
    """`` (10.0 MB in 1.2 s, 8.3 MB/s)``; after a resume the whole file, then what this session sent.

    ``result`` is what ``wait()`` returned (a TransferStats: ``bytes`` sent this
    session and ``seconds``); anything else gives an empty string.
    """
    stats = result.stats() if callable(getattr(result, "stats", None)) else result
    sent, seconds = getattr(stats, "bytes", None), getattr(stats, "seconds", None)
    if not isinstance(sent, int) or not isinstance(seconds, (int, float)):
        return ""
    resumed = getattr(transfer, "resumed_from", 0)
    if isinstance(resumed, int) and resumed > 0:
        return _(" ({total}: {resumed} were already there, {sent} sent in {seconds:.1f} s, {rate})").format(
            total=format_size(resumed + sent), resumed=format_size(resumed), sent=format_size(sent),
            seconds=seconds, rate=format_rate(sent, seconds))
    return _(" ({sent} in {seconds:.1f} s, {rate})").format(
        sent=format_size(sent), seconds=seconds, rate=format_rate(sent, seconds))


# ----------------------------------------------------------------- front ends


def _make_writer(output: TextIO | None) -> Callable[[str], None]:
    """A thread-safe "print one line": to ``output``, or to whatever ``sys.stdout`` is now.

    ``sys.stdout`` is looked up at each call because ``patch_stdout()``
    replaces it while the prompt runs.
    """
    lock = threading.Lock()

    def write(line: str) -> None:
        with lock:
            stream = output if output is not None else sys.stdout
            try:
                try:
                    stream.write(line + "\n")
                except UnicodeEncodeError:  # e.g. a cp1252 pipe on Windows
                    encoding = getattr(stream, "encoding", None) or "ascii"
                    stream.write(line.encode(encoding, "replace").decode(encoding) + "\n")
                stream.flush()
            except (OSError, ValueError):  # stdout closed (| head) or broken: nothing to do
                pass

    return write


def _run_plain(session: TerminalSession, stream: TextIO, real_stdin: bool) -> None:
    """Read lines with ``readline()`` in this thread until /quit, EOF or a lost connection."""
    reading = threading.Event()
    main = threading.get_ident()

    def wake() -> None:
        # The connection is gone but this thread may be blocked in readline(),
        # which nothing portable can interrupt.  On POSIX a SIGINT sent to this
        # very thread makes the read fail with EINTR and raise KeyboardInterrupt.
        can_signal = (real_stdin and hasattr(signal, "pthread_kill") and main == threading.main_thread().ident
                      and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        if reading.is_set() and can_signal:
            signal.pthread_kill(main, signal.SIGINT)
        elif reading.is_set():
            session.write("-- " + _("press Enter to exit"))

    session.on_lost = wake
    try:
        while not session.stopped.is_set():
            reading.set()
            try:
                if session.stopped.is_set():  # lost just before reading.set(): wake() did nothing
                    return
                line = stream.readline()
            finally:
                reading.clear()
            if not line:  # end of input: same as /quit
                session.quit()
                return
            if not session.handle_line(line):
                return
    except KeyboardInterrupt:  # Ctrl-C, or wake() above
        session.quit(flush=False)


def _run_prompt(session: TerminalSession) -> None:
    """Read lines with prompt_toolkit; lines printed meanwhile appear above the prompt."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.patch_stdout import patch_stdout

    prompt: PromptSession[str] = PromptSession()
    app = prompt.app

    def end_prompt() -> None:  # runs in the prompt's event loop
        if app.is_running and app.future is not None and not app.future.done():
            app.exit(exception=EOFError())

    def wake() -> None:  # from the printer thread: the connection is gone, stop prompting
        loop = app.loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(end_prompt)
            except RuntimeError:  # the loop closed meanwhile: the prompt is over anyway
                pass

    def pre_run() -> None:  # covers a connection lost between two prompts, before app.loop existed
        if session.stopped.is_set():
            end_prompt()

    session.on_lost = wake
    client = session.client
    with patch_stdout():
        while not session.stopped.is_set():
            app.pre_run_callables.append(pre_run)  # (the list is emptied at every run)
            try:
                line = prompt.prompt(lambda: f"{client.nick}@{client.room}> ")
            except EOFError:  # Ctrl-D, or wake() above
                session.quit()
                return
            except KeyboardInterrupt:  # Ctrl-C
                session.quit(flush=False)
                return
            if not session.handle_line(line):
                return


def _use_prompt_toolkit() -> bool:
    """prompt_toolkit only on a real terminal, both ways, and only if it is installed."""
    try:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            return False
        import prompt_toolkit  # noqa: F401
    except (ImportError, AttributeError, ValueError):
        return False
    return True


def ask_nick(stream: TextIO | None = None, output: TextIO | None = None) -> str | None:
    """Ask for a nickname on the terminal until one is typed; ``None`` after Ctrl-D or Ctrl-C."""
    stream, output = stream or sys.stdin, output or sys.stdout
    while True:
        print(_("nickname: "), end="", file=output, flush=True)
        try:
            line = stream.readline()
        except KeyboardInterrupt:
            line = ""
        if not line:  # end of input
            print(file=output)
            return None
        if line.strip():
            return line.strip()


def run_terminal_client(address: Address, nick: str, *, input: TextIO | None = None,
                        output: TextIO | None = None, download_dir: str = "downloads") -> int:
    """Chat from a terminal until /quit, end of input or Ctrl-C; returns the exit code.

    Args:
        address: ``"host:port"`` or ``("host", port)``; ``chatlab client`` passes
            :data:`~chatlab.client.DEFAULT_ADDRESS` when none is given.
        nick: the nickname to ask for.
        input: read commands from this text stream instead of stdin (tests).
        output: print to this text stream instead of stdout (tests); errors go
            there too instead of stderr.
        download_dir: where ``/accept`` saves files (created when first needed).

    Returns:
        0 after /quit, end of input, Ctrl-C or Ctrl-D; 1 if the server could
        not be reached or the connection was lost; 2 if the server refused
        the nickname or the connection, or the address is malformed.
    """
    write = _make_writer(output)

    def error(text: str) -> None:
        stream = output if output is not None else sys.stderr
        print(f"chatlab: {clean(text)}", file=stream, flush=True)

    try:
        client = Client.connect(address, nick)
    except NickError as exc:
        error(_("the server refused the nickname {nick!r}: {text} ({code})").format(nick=nick, text=shown_error(exc), code=exc.code))
        return EXIT_REFUSED
    except ServerError as exc:
        error(_("the server refused the connection: {text} ({code})").format(text=shown_error(exc), code=exc.code))
        return EXIT_REFUSED
    except ValueError as exc:  # from parse_address
        error(str(exc))
        return EXIT_REFUSED
    except (ConnectionBroken, ConnectionClosed, OSError) as exc:
        error(connect_failure(address, exc))
        return EXIT_CONNECTION
    except ChatlabError as exc:  # e.g. something that is not a chatlab server answered
        error(_("could not connect to {address}: {error}").format(address=shown_address(address), error=exc))
        return EXIT_CONNECTION
    except KeyboardInterrupt:
        return EXIT_OK

    session = TerminalSession(client, write, download_dir)
    try:
        session.start()
        if input is None and output is None and _use_prompt_toolkit():
            _run_prompt(session)
        else:
            _run_plain(session, input if input is not None else sys.stdin, real_stdin=input is None)
    except KeyboardInterrupt:  # a second Ctrl-C while quitting
        pass
    finally:
        client.close()
    return EXIT_CONNECTION if session.lost is not None else EXIT_OK
