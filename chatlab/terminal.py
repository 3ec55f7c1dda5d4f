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
without a terminal (``tests/io/test_terminal.py``).
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, ClassVar, TextIO

from .client import Address, Client, Disconnected, Transfer
from .core import protocol as p
from .core.chatroom import normalize_name
from .errors import ChatlabError, ConnectionBroken, ConnectionClosed, NickError, ServerError
from .i18n import _
from .notices import connect_failure, shown_address, shown_error, shown_motd
from .terminal_text import (
    HELP,
    Command,
    _percent,
    _summary,
    clean,
    format_event,
    format_room_info,
    help_lines,
    parse_command,
    shown_reason,
)
from .units import format_size

# parse_command, format_event, shown_reason...: the text side, in terminal_text.py, named here too (tests, notebooks)
__all__ = ["run_terminal_client", "parse_command", "format_event", "format_size", "Command", "TerminalSession", "HELP",
           "shown_reason"]

# Exit codes of run_terminal_client.
EXIT_OK = 0  # /quit, end of input, Ctrl-C, Ctrl-D
EXIT_CONNECTION = 1  # could not connect, or the connection was lost
EXIT_REFUSED = 2  # the server refused us (nick taken, server full) or the address is malformed

EVENT_POLL = 0.5  # seconds; the printer thread wakes this often even when nothing arrives
FLUSH_TIMEOUT = 2.0  # seconds to wait, on /quit, for replies to what we sent before
PROGRESS_INTERVAL = 2.0  # seconds between two progress lines of a file transfer
OFFER_ANSWER_WAIT = 1.0  # seconds to wait for a quick answer (e.g. "nobody by that name") before saying "offering"
WATCH_POLL = 0.05  # seconds; how often a transfer's watcher thread looks at it
CTRL_C = "pressed Ctrl-C"  # the QUIT reason the others see ("alice quit (pressed Ctrl-C)")

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

    _RUNS: ClassVar[dict[str, Callable[..., None]]]  # command name -> the method that runs it (below the class)

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
        # /topic and /mode without changes, waiting for their answer: (what to show, the room or nick asked about)
        self._queries: deque[tuple[str, str]] = deque()
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
                line = self._answer(event) or format_event(event, self.client.nick)
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

    def _answer(self, event: Any) -> str | None:
        """The answer to a /topic or /mode query, shown as asked (printer thread); ``None`` for other events.

        The server answers both with a WhoReply that holds the room, or refuses with an
        ERROR whose ``subject`` names it; either ends the query.
        """
        if isinstance(event, p.ErrorMessage) and event.subject:
            self._end_query(event.subject)
            return None
        if not isinstance(event, p.WhoReply):
            return None
        names = [*event.channels, *event.people]
        found = self._end_query(names[0]) if names and not event.users else None
        return format_room_info(event, found or "")

    def _end_query(self, name: str) -> str | None:
        """Forget the oldest query about ``name``; what it asked to show, or ``None`` if there was none."""
        key = normalize_name(name)
        for query in self._queries:
            if query[1] == key:
                self._queries.remove(query)
                return query[0]
        return None

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
        if command.name == "quit":
            self.quit(command.args[0] if command.args else "")
            return False
        if command.name == "invalid":
            self.write(f"!! {command.error}")
            return True
        run = self._RUNS.get(command.name)
        if run is not None:
            run(self, *command.args)
        return True

    def _say(self, text: str) -> None:
        self.client.say(text)

    def _me(self, text: str) -> None:
        self.client.action(text)

    def _msg(self, nick: str, text: str) -> None:
        self.client.whisper(nick, text)

    def _join(self, room: str, key: str = "") -> None:
        _request(self.client, p.Join(room, key))

    def _leave(self) -> None:
        _request(self.client, p.Leave())

    def _who(self) -> None:
        _request(self.client, p.Who())

    def _nick(self, nick: str) -> None:
        _request(self.client, p.Nick(nick))

    def _topic(self, text: str | None = None) -> None:
        room = self._my_room()
        if room is None:
            return
        if text is None:
            self._queries.append(("topic", normalize_name(room)))
            _request(self.client, p.Topic(room))
        else:
            _request(self.client, p.Topic(room, text, change=True))

    def _kick(self, nick: str, reason: str = "") -> None:
        room = self._my_room()
        if room is not None:
            _request(self.client, p.Kick(room, nick, reason))

    def _mode(self, *words: str) -> None:
        """``/mode``, ``/mode +o bob``, ``/mode team``, ``/mode team -t``, ``/mode MYNICK +i``, ``/mode +b``
        (the ban list); parsed already."""
        if words and words[0][0] in "+-":
            room = self._my_room()
            if room is None:
                return
            target, flags = room, words
        elif words:
            target, flags = words[0], words[1:]
        else:
            room = self._my_room()
            if room is None:
                return
            target, flags = room, ()
        if not flags:
            self._queries.append(("modes", normalize_name(target)))
            _request(self.client, p.Mode(target))
        elif len(flags) == 1 and flags[0].strip("+-") == "b":  # the ban list
            self._queries.append(("bans", normalize_name(target)))
            _request(self.client, p.Mode(target, "+b"))
        else:
            _request(self.client, p.Mode(target, flags[0], list(flags[1:])))

    def _invite(self, nick: str, room: str = "") -> None:
        room = room or self._my_room() or ""
        if room:
            _request(self.client, p.Invite(nick, room))

    def _my_room(self) -> str | None:
        """The room I am in now, or ``None`` after saying that I am in none (kicked out of my last room).

        A ``/join`` typed just before may not be answered yet: the answers to everything
        sent so far are waited for first (a round trip), so that ``/join team`` then
        ``/topic`` asks about team, not about the room being left.
        """
        self.flush_replies()
        if self.client.room:
            return str(self.client.room)
        self.write("!! " + _("you are in no room: /join ROOM first"))
        return None

    def _send(self, path: str, nick: str, direct: str = "") -> None:
        self.send_file(path, nick, via="direct" if direct else "server")

    def _accept_offer(self, number: str | None = None) -> None:
        self.answer_offer("accept", number)

    def _reject_offer(self, number: str | None = None) -> None:
        self.answer_offer("reject", number)

    def _help(self) -> None:
        for line in help_lines():
            self.write(line)

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
            self.write("-- " + _("you turned down {name!r} from {peer}").format(name=clean(offer.name),
                                                                                peer=clean(offer.peer)))
            return
        os.makedirs(self.download_dir, exist_ok=True)
        # A FileStarted event follows ("receiving ... into ...");
        # a TransferError (e.g. an unsafe name) is printed by handle_line.
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
        if os.path.isdir(path):
            self.write("!! " + _("{path} is a folder: /send sends one file (zip the folder first)").format(
                path=clean(path)))
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
        watch = _TransferWatch(self.write, transfer, name, nick)
        threading.Thread(target=watch.run, name=f"chatlab-transfer-{name}", daemon=True).start()


class _TransferWatch:
    """Reports one outgoing transfer until it ends: its answer, its progress, its outcome (its own thread).

    "offering" is printed only if no answer came within OFFER_ANSWER_WAIT: an
    offer to a nick nobody has is refused by the server within a round trip,
    and then the one line to print is that refusal.
    """

    def __init__(self, write: Callable[[str], None], transfer: Transfer, name: str, nick: str) -> None:
        self.write, self.transfer, self.name, self.nick = write, transfer, name, nick
        self.label = _("{name} to {nick}").format(name=clean(name), nick=clean(nick))
        self.offer_shown = self.accept_shown = False
        self.progress_at, self.progress_shown = 0.0, ""
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        waiter = threading.Thread(target=self._wait, daemon=True)
        waiter.start()
        offered_at = time.monotonic()
        while True:
            waiter.join(WATCH_POLL)
            finished, now = not waiter.is_alive(), time.monotonic()
            if not (self.offer_shown or self.transfer.accepted or finished) and now - offered_at >= OFFER_ANSWER_WAIT:
                self.write("-- " + _("offering {file} ({size}); waiting for {nick} to accept").format(
                    file=self.label, size=format_size(self.transfer.size), nick=clean(self.nick)))
                self.offer_shown = True
            if self.transfer.accepted and not self.accept_shown:
                self._accepted()
            if finished:
                break
            if self.transfer.accepted:
                self._progress(now)
        self.write(self._outcome())

    def _wait(self) -> None:
        try:
            self.result = self.transfer.wait()
        except BaseException as exc:  # reported by _outcome, whatever it is
            self.error = exc

    def _accepted(self) -> None:
        self.accept_shown = True
        nick, name, size = clean(self.nick), clean(self.name), format_size(self.transfer.size)
        resumed = self.transfer.resumed_from
        if resumed:
            self.write("-- " + _("{nick} accepted {name}; resuming: {done} of {size} were already there"
                                 " from an interrupted transfer").format(nick=nick, name=name,
                                                                         done=format_size(resumed), size=size))
        else:
            self.write("-- " + _("{nick} accepted {name}; sending {size}").format(nick=nick, name=name, size=size))

    def _progress(self, now: float) -> None:
        progress = _percent(self.transfer.acked, self.transfer.size)
        if now - self.progress_at >= PROGRESS_INTERVAL and progress != self.progress_shown:
            if self.progress_at:  # not at the very start: "0%" says nothing
                self.write(f"-- {clean(self.name)} -> {clean(self.nick)}: {progress}")
            self.progress_at, self.progress_shown = now, progress

    def _outcome(self) -> str:
        if not self.transfer.failed and self.error is None:
            return "-- " + _("sent {file}{summary}").format(file=self.label, summary=_summary(self.transfer,
                                                                                              self.result))
        # The transfer's own reason: the error's text repeats "sending X to Y failed", which we say already.
        reason = clean(self.transfer.reason or str(self.error or ""))
        if self.transfer.accepted:
            return "!! " + _("sending {file} failed: {reason}").format(file=self.label, reason=reason)
        return "!! " + _("cannot send {file}: {reason}").format(file=self.label, reason=reason)


TerminalSession._RUNS = {
    "say": TerminalSession._say, "me": TerminalSession._me, "msg": TerminalSession._msg,
    "join": TerminalSession._join, "leave": TerminalSession._leave, "who": TerminalSession._who,
    "nick": TerminalSession._nick, "topic": TerminalSession._topic, "kick": TerminalSession._kick,
    "mode": TerminalSession._mode, "invite": TerminalSession._invite,
    "send": TerminalSession._send, "accept": TerminalSession._accept_offer, "reject": TerminalSession._reject_offer,
    "help": TerminalSession._help,
}


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
        session.quit(CTRL_C, flush=False)


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
                session.quit(CTRL_C, flush=False)
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


def _connect(address: Address, nick: str, error: Callable[[str], None],
             ask: tuple[TextIO | None, TextIO | None] | None, options: dict[str, Any] | None = None) -> Client | int:
    """A connected client, or the exit code; with ``ask`` (streams to ask on), a taken or bad
    nickname is asked again instead of ending the program."""
    while True:
        try:
            return Client.connect(address, nick, **(options or {}))
        except NickError as exc:
            error(_("the server refused the nickname {nick!r}: {text} ({code})").format(
                nick=nick, text=shown_error(exc), code=exc.code))
            again = ask_nick(*ask) if ask is not None else None
            if again is None:
                return EXIT_REFUSED
            nick = again
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


def run_terminal_client(address: Address, nick: str, *, input: TextIO | None = None,
                        output: TextIO | None = None, download_dir: str = "downloads",
                        ask_again: bool | None = None, connect_options: dict[str, Any] | None = None) -> int:
    """Chat from a terminal until /quit, end of input or Ctrl-C; returns the exit code.

    Args:
        address: ``"host:port"`` or ``("host", port)``; ``chatlab client`` passes
            :data:`~chatlab.client.DEFAULT_ADDRESS` when none is given.
        nick: the nickname to ask for.
        input: read commands from this text stream instead of stdin (tests).
        output: print to this text stream instead of stdout (tests); errors go
            there too instead of stderr.
        download_dir: where ``/accept`` saves files (created when first needed).
        ask_again: when the server refuses the nickname (taken, reserved, invalid),
            ask for another one on ``input`` instead of exiting; the default is to
            ask when reading from a terminal.
        connect_options: more :meth:`Client.connect` keywords (``tls=True, cafile=...``).

    Returns:
        0 after /quit, end of input, Ctrl-C or Ctrl-D; 1 if the server could
        not be reached or the connection was lost; 2 if the server refused
        the nickname or the connection, or the address is malformed.
    """
    write = _make_writer(output)

    def error(text: str) -> None:
        stream = output if output is not None else sys.stderr
        print(f"chatlab: {clean(text)}", file=stream, flush=True)

    if ask_again is None:
        ask_again = input is None and sys.stdin.isatty()
    client = _connect(address, nick, error, (input, output) if ask_again else None, connect_options)
    if isinstance(client, int):
        return client

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
