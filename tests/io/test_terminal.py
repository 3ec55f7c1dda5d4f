"""The terminal client: parsing and formatting without a terminal, then whole sessions.

The end-to-end tests run the client as a subprocess with piped stdin (its
non-terminal path), talk to it line by line and read what it prints.  Every
wait has a timeout, so a broken client fails the test instead of hanging it.
"""

from __future__ import annotations

import io
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import chatlab
from chatlab import terminal
from chatlab.client import Disconnected, FileStarted
from chatlab.core import protocol as p
from chatlab.core.transfer import TransferStats
from chatlab.errors import TransferError
from chatlab.terminal import Command, TerminalSession, format_event, parse_command, run_terminal_client

REPO = Path(__file__).resolve().parents[2]
LAUNCH = ("from chatlab.terminal import run_terminal_client; import sys; "
          "sys.exit(run_terminal_client(sys.argv[1], sys.argv[2]))")
TIMEOUT = 10.0  # seconds for any one expected line or exit


# ------------------------------------------------------------ parse_command


@pytest.mark.parametrize(
    "line, expected",
    [
        ("hello world", Command("say", ("hello world",))),
        ("  indented  ", Command("say", ("  indented  ",))),
        ("//etc/passwd is a path", Command("say", ("/etc/passwd is a path",))),
        ("/me waves at everyone", Command("me", ("waves at everyone",))),
        ("/msg bob see you  at 5", Command("msg", ("bob", "see you  at 5"))),
        ("/w bob hi", Command("msg", ("bob", "hi"))),
        ("/join team1", Command("join", ("team1",))),
        ("/join team1 key=s3cret", Command("join", ("team1", "s3cret"))),
        ("/join team1 key=s3cr=t", Command("join", ("team1", "s3cr=t"))),
        ("/JOIN Team1", Command("join", ("Team1",))),
        ("/leave", Command("leave")),
        ("/who", Command("who")),
        ("/quit", Command("quit")),
        ("/quit gone fishing", Command("quit", ("gone fishing",))),
        ("/exit", Command("quit")),
        ("/help", Command("help")),
        ("/send report.pdf bob", Command("send", ("report.pdf", "bob"))),
        ("/send my report.pdf bob", Command("send", ("my report.pdf", "bob"))),
        ('/send "my report.pdf" bob', Command("send", ("my report.pdf", "bob"))),
        ("/send report.pdf bob --direct", Command("send", ("report.pdf", "bob", "--direct"))),
        ("/send my report.pdf bob --direct", Command("send", ("my report.pdf", "bob", "--direct"))),
        ("", Command("empty")),
        ("   \n", Command("empty")),
        ("hello\r\n", Command("say", ("hello",))),
    ],
)
def test_parse_command(line: str, expected: Command) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    "line, usage",
    [
        ("/msg", "/msg NICK TEXT"),
        ("/msg bob", "/msg NICK TEXT"),
        ("/me", "/me ACTION"),
        ("/join", "/join ROOM [key=PASSWORD]"),
        ("/leave now", "/leave"),
        ("/who is there", "/who"),
        ("/send", "/send FILE NICK [--direct]"),
        ("/send file.txt", "/send FILE NICK [--direct]"),
        ("/send bob --direct", "/send FILE NICK [--direct]"),
    ],
)
def test_parse_command_wrong_arguments_give_usage(line: str, usage: str) -> None:
    command = parse_command(line)
    assert command.name == "invalid"
    assert command.error == f"usage: {usage}"


@pytest.mark.parametrize("line", ["/join my room", "/join my room please", "/join my key=pw room",
                                  "/join secret pw123"])
def test_a_room_name_with_a_space_is_an_error_that_says_so(line: str) -> None:
    """Not room "my" with password "room" (issue 10, item 4): a password is marked key=."""
    command = parse_command(line)
    assert command.name == "invalid"
    assert command.error.startswith("room names have no spaces")
    assert "key=PASSWORD" in command.error


@pytest.mark.parametrize("line", ["/join team1 key=", "/join team1 key=a key=b"])
def test_join_takes_one_non_empty_key(line: str) -> None:
    command = parse_command(line)
    assert command.name == "invalid" and command.error.startswith("usage: /join ROOM [key=PASSWORD]")


@pytest.mark.parametrize("line", ["/frobnicate", "/", "/ msg bob hi", "/nickname carol"])
def test_parse_command_unknown(line: str) -> None:
    command = parse_command(line)
    assert command.name == "invalid"
    assert command.error.startswith("unknown command") and "/help" in command.error
    assert "\n" not in command.error


# ------------------------------------------------------------- format_event


@pytest.mark.parametrize(
    "event, expected",
    [
        (p.ChatMessage("lobby", "alice", "hello"), "[lobby] <alice> hello"),
        (p.ChatMessage("lobby", "alice", "waves", action=True), "* alice waves"),
        (p.PrivateMessage("alice", "bob", "psst"), "[private] <alice -> bob> psst"),
        (p.PrivateMessage("alice", "bob", "winks", action=True), "[private] * alice winks (to bob)"),
        (p.Notice("join", "bob joined team1", "bob", "team1"), "-- bob joined team1"),
        (p.Notice("quit", "bob quit (bye)", "bob", "lobby"), "-- bob quit (bye)"),
        (p.ErrorMessage("no-such-nick", "nobody called 'zed' is online"),
         "!! nobody by that name: nobody called 'zed' is online"),
        (p.ErrorMessage("new-code", "something new"), "!! something new (new-code)"),
        (p.FileOffer(0x80000001, "alice", "report.pdf", 2_500_000, "0" * 64),
         "-- alice offers you 'report.pdf' (2.5 MB)"),
        (Disconnected("closed by the server"), "-- disconnected: closed by the server"),
        (FileStarted("alice", "a.bin", Path("in/a.bin.part"), 20_000_000, 0),
         "-- receiving 'a.bin' from alice (20.0 MB) into " + str(Path("in/a.bin.part"))),
        (FileStarted("alice", "a.bin", Path("in/a.bin.part"), 20_000_000, 8_000_000),
         "-- receiving 'a.bin' from alice (20.0 MB) into " + str(Path("in/a.bin.part"))
         + "; resuming at 8.0 MB, where an earlier transfer stopped"),
    ],
)
def test_format_event(event: Any, expected: str) -> None:
    assert format_event(event, "bob") == expected


def test_format_who_groups_users_by_room() -> None:
    reply = p.WhoReply({"carol": "lobby", "bob": "team1", "alice": "lobby"}, {"lobby": 2, "team1": 1})
    assert format_event(reply, "alice") == "-- 3 online in 2 rooms: lobby (2): alice (you), carol | team1 (1): bob"
    lonely = p.WhoReply({"alice": "team1"}, {"lobby": 0, "team1": 1})
    assert format_event(lonely, "alice") == "-- 1 online in 2 rooms: lobby (0): nobody | team1 (1): alice (you)"


@pytest.mark.parametrize("event", [p.Ping(1), p.Pong(1), p.FileAck(3, 100), p.FileChunk(3, 0, b"x"), p.FileDone(3)])
def test_format_event_hides_protocol_internals(event: Any) -> None:
    assert format_event(event, "bob") is None


def test_format_event_shows_unknown_events_rather_than_dropping_them() -> None:
    line = format_event(ValueError("surprise"), "bob")
    assert line is not None and "surprise" in line


def test_format_event_escapes_terminal_control_characters() -> None:
    # A peer must not be able to clear our screen, fake a second line or reverse the text.
    line = format_event(p.ChatMessage("lobby", "mallory", "hi\x1b[2J\n[lobby] <bob> lies\u202e"), "bob")
    assert line == "[lobby] <mallory> hi\\x1b[2J\\x0a[lobby] <bob> lies\\u202e"
    assert all(c.isprintable() for c in line)


# ---------------------------------------------- file transfer reporting (stubbed)


class StubClient:
    """Just enough of a Client for TerminalSession.send_file."""

    nick = "alice"

    def __init__(self, transfer: Any = None) -> None:
        self.transfer = transfer
        self.calls: list[tuple[str, str]] = []

    def send_file(self, path: str, to: str) -> Any:
        self.calls.append((path, to))
        return self.transfer


class StubTransfer:
    """A transfer that is accepted after ``accept_after`` seconds (never, if None), then sends in five steps.

    It has the attributes of :class:`chatlab.Transfer` that the terminal reads, and no others."""

    def __init__(self, size: int, error: Exception | None = None, *, accept_after: float | None = 0.0,
                 resumed_from: int = 0, reason: str = "") -> None:
        self.size, self.acked, self.error = size, 0, error
        self.accept_after, self.resumed_from, self.failed, self.reason = accept_after, resumed_from, False, reason
        self.accepted = False

    def wait(self) -> TransferStats:
        if self.accept_after is None:  # refused at once: nobody to accept it
            self.failed = True
            raise self.error or TransferError("refused")
        time.sleep(self.accept_after)
        self.accepted, self.acked = True, self.resumed_from
        for _ in range(5):
            self.acked += (self.size - self.resumed_from) // 5
            time.sleep(0.03)
        if self.error is not None:
            self.failed = True
            raise self.error
        return TransferStats(self.size - self.resumed_from, 0.15)


def _wait_for_line(lines: list[str], start: str, timeout: float = TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(lines):
            if line.startswith(start):
                return line
        time.sleep(0.01)
    raise AssertionError(f"no line starting with {start!r} in {lines}")


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(terminal, "PROGRESS_INTERVAL", 0.02)
    monkeypatch.setattr(terminal, "OFFER_ANSWER_WAIT", 0.05)


def test_send_without_file_transfer_support() -> None:
    lines: list[str] = []
    session = TerminalSession(SimpleNamespace(nick="alice"), lines.append)  # type: ignore[arg-type]  # no send_file
    assert session.handle_line("/send README.md bob") is True
    assert lines == ["!! file transfer is not available in this version"]


def test_send_reports_the_offer_progress_and_result(tmp_path: Path, quick: None) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 5_000_000)
    client = StubClient(StubTransfer(5_000_000, accept_after=0.3))
    lines: list[str] = []
    TerminalSession(client, lines.append).handle_line(f"/send {path} bob")  # type: ignore[arg-type]
    assert client.calls == [(str(path), "bob")]
    assert _wait_for_line(lines, "-- sent") == "-- sent data.bin to bob (5.0 MB in 150 ms, 33.3 MB/s)"
    assert lines[0] == "-- offering data.bin to bob (5.0 MB); waiting for bob to accept"  # no answer came at once
    assert lines[1] == "-- bob accepted data.bin; sending 5.0 MB"
    assert any(line.startswith("-- data.bin -> bob: ") and "%" in line for line in lines)


def test_a_resume_is_announced_and_the_summary_counts_the_whole_file(tmp_path: Path, quick: None) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 5_000_000)
    lines: list[str] = []
    client = StubClient(StubTransfer(5_000_000, resumed_from=2_000_000))
    TerminalSession(client, lines.append).handle_line(f"/send {path} bob")  # type: ignore[arg-type]
    assert _wait_for_line(lines, "-- sent") == ("-- sent data.bin to bob (5.0 MB: 2.0 MB were already there, "
                                                "3.0 MB sent in 150 ms, 20.0 MB/s)")
    assert ("-- bob accepted data.bin; resuming: 2.0 MB of 5.0 MB were already there"
            " from an interrupted transfer") in lines


def test_send_failure_is_said_once_and_a_missing_file_is_named(tmp_path: Path, quick: None) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 10)
    lines: list[str] = []
    # The client's TransferError already says "sending ... failed": the terminal must not say it twice.
    error = TransferError("sending data.bin to bob failed: bob disconnected: gone")
    session = TerminalSession(StubClient(StubTransfer(10, error, reason="bob disconnected: gone")), lines.append)  # type: ignore[arg-type]
    session.handle_line(f"/send {tmp_path / 'missing.bin'} bob")
    assert lines == [f"!! no such file: {tmp_path / 'missing.bin'}"]
    session.handle_line(f"/send {path} bob")
    assert _wait_for_line(lines, "!! sending") == "!! sending data.bin to bob failed: bob disconnected: gone"


def test_send_to_nobody_says_so_without_offering_first(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("notes")
    with chatlab.Server(port=0) as server, chatlab.Client.connect(server.address, nick="alice") as alice:
        lines: list[str] = []
        TerminalSession(alice, lines.append).handle_line(f"/send {path} nobody")
        line = _wait_for_line(lines, "!!")
        time.sleep(terminal.OFFER_ANSWER_WAIT)  # an "offering" line would have come by now
    assert line == "!! cannot send notes.txt to nobody: nobody else called 'nobody' is online"
    assert lines == [line]


def test_the_receiver_sees_progress_and_its_own_ctrl_c_is_not_blamed_on_the_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(terminal, "PROGRESS_INTERVAL", 0.05)
    source = tmp_path / "movie.bin"
    source.write_bytes(os.urandom(3_000_000))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with chatlab.Server(port=0) as server, \
         chatlab.Client.connect(server.address, nick="alice") as alice, \
         chatlab.Client.connect(server.address, nick="bob", download_dir=downloads) as bob:  # fmt: skip
        lines: list[str] = []
        session = TerminalSession(bob, lines.append, download_dir=str(downloads))
        session.start()
        try:
            transfer = alice.send_file(source, to="bob", strategy="sleep", pause=0.02)  # about 1 s in all
            line = _wait_for_line(lines, "-- receiving 'movie.bin' from alice (3.0 MB) into ")
            assert line.endswith("movie.bin.part")
            assert "% (" in _wait_for_line(lines, "-- movie.bin <- alice: ")
        finally:
            session.quit(flush=False)  # what Ctrl-C does
        with pytest.raises(TransferError, match="bob disconnected"):
            transfer.wait(timeout=TIMEOUT)
    failed = _wait_for_line(lines, "!! receiving 'movie.bin' from alice failed: ")
    assert failed.endswith("connection ended: you closed the connection")
    assert not [line for line in lines if "closed by the server" in line]


# ------------------------------------------------------- in-process sessions


def test_in_process_session_prints_replies_before_quitting_at_eof() -> None:
    with chatlab.Server(port=0) as server:
        out = io.StringIO()
        # End of input right after /who: the client must still print the answer before it quits.
        code = run_terminal_client(server.address, "alice", input=io.StringIO("hello\n/who\n/bogus\n"), output=out)
    lines = out.getvalue().splitlines()
    assert code == 0
    assert "[lobby] <alice> hello" in lines
    assert "-- 1 online in 1 room: lobby (1): alice (you)" in lines
    assert "!! unknown command '/bogus': type /help for the list" in lines


def test_in_process_connection_refused() -> None:
    out = io.StringIO()
    code = run_terminal_client(("127.0.0.1", _closed_port()), "alice", input=io.StringIO(""), output=out)
    assert code == 1
    assert out.getvalue().startswith("chatlab: could not connect to 127.0.0.1:")
    assert len(out.getvalue().splitlines()) == 1


def test_in_process_bad_address() -> None:
    out = io.StringIO()
    assert run_terminal_client("no-port-here", "alice", input=io.StringIO(""), output=out) == 2
    assert out.getvalue() == "chatlab: expected HOST:PORT, got 'no-port-here'\n"


def _closed_port() -> int:
    """A port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----------------------------------------------------- subprocess sessions


class TerminalProcess:
    """A terminal client in a subprocess, stdin and stdout piped; stdout is read by a thread."""

    def __init__(self, address: tuple[str, int], nick: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONIOENCODING="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, f"{address[0]}:{address[1]}", nick],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", cwd=REPO, env=env,
        )  # fmt: skip
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, wanted: str, timeout: float = TIMEOUT) -> str:
        """Wait for a line equal to ``wanted`` (or starting with it, if it ends with '...')."""
        prefix = wanted[:-3] if wanted.endswith("...") else None
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {wanted!r} within {timeout} s; output so far: {self.lines}") from None
            if line is None:
                raise AssertionError(f"output ended without {wanted!r}; output: {self.lines}; stderr: {self.stderr()}")
            self.lines.append(line)
            if line == wanted or (prefix is not None and line.startswith(prefix)):
                return line

    def finish(self, timeout: float = TIMEOUT) -> tuple[int, str]:
        """Close stdin (end of input = /quit), wait for the exit; return (exit code, stderr)."""
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        except OSError:
            pass
        return self.wait(timeout)

    def wait(self, timeout: float = TIMEOUT) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout)
        while (line := self._queue.get_nowait() if not self._queue.empty() else None) is not None:
            self.lines.append(line)
        return code, self.stderr()

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(still running)"
        return self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


@pytest.fixture
def terminals() -> Any:
    started: list[TerminalProcess] = []

    def start(address: tuple[str, int], nick: str) -> TerminalProcess:
        process = TerminalProcess(address, nick)
        started.append(process)
        return process

    yield start
    for process in started:  # whatever happened, no client outlives its test
        process.kill()


def test_two_terminal_clients_chat(terminals: Any) -> None:
    with chatlab.Server(port=0) as server:
        alice = terminals(server.address, "alice")
        alice.expect("-- connected to 127.0.0.1:...")
        alice.expect("-- alice joined lobby")
        bob = terminals(server.address, "bob")
        bob.expect("-- bob joined lobby")
        alice.expect("-- bob joined lobby")

        alice.send("hello bob")
        bob.expect("[lobby] <alice> hello bob")
        alice.expect("[lobby] <alice> hello bob")  # the server's echo is the sender's confirmation

        alice.send("/me waves")
        bob.expect("* alice waves")

        bob.send("/msg alice psst, a secret")
        alice.expect("[private] <bob -> alice> psst, a secret")
        bob.expect("[private] <bob -> alice> psst, a secret")

        bob.send("/join team1")
        bob.expect("-- bob joined team1")
        alice.expect("-- bob left for team1")

        alice.send("/who")
        alice.expect("-- 2 online in 2 rooms: lobby (1): alice (you) | team1 (1): bob")

        alice.send("only lobby hears this")
        alice.expect("[lobby] <alice> only lobby hears this")
        bob.send("/who")
        bob.expect("-- 2 online in 2 rooms: ...")
        assert not any("only lobby hears this" in line for line in bob.lines)

        bob.send("/frobnicate now")
        bob.expect("!! unknown command '/frobnicate': type /help for the list")
        bob.send("/msg alice")
        bob.expect("!! usage: /msg NICK TEXT")
        bob.send("/join no!such!room")
        bob.expect("!! not a valid room name: ...")
        bob.send("/msg zed hello?")
        bob.expect("!! nobody by that name: nobody called 'zed' is online")
        bob.send("/send no-such-file.bin alice")
        if hasattr(chatlab.Client, "send_file"):
            bob.expect("!! no such file: no-such-file.bin")
        else:
            bob.expect("!! file transfer is not available in this version")
        bob.send("/help")
        bob.expect("  /quit [REASON] ...")

        bob.send("/leave")
        bob.expect("-- bob joined lobby")
        alice.expect("-- bob joined lobby")
        bob.send("/quit gone fishing")
        code, err = bob.wait()
        assert (code, err) == (0, "")
        alice.expect("-- bob quit (gone fishing)")

        code, err = alice.finish()  # end of input is /quit too
        assert (code, err) == (0, "")
        assert not any("Traceback" in line for line in alice.lines + bob.lines)


def test_taken_nick_gives_one_clear_line_and_exit_code_2(terminals: Any) -> None:
    with chatlab.Server(port=0) as server:
        alice = terminals(server.address, "alice")
        alice.expect("-- alice joined lobby")
        impostor = terminals(server.address, "ALICE")  # nicks collide regardless of case
        code, err = impostor.finish()
        assert code == 2
        assert err == ("chatlab: the server refused the nickname 'ALICE':"
                       " the nickname 'ALICE' is already in use (nick-taken)\n")
        assert impostor.lines == []
        alice.send("/who")
        alice.expect("-- 1 online in 1 room: lobby (1): alice (you)")


def test_no_server_gives_one_clear_line_and_exit_code_1(terminals: Any) -> None:
    client = terminals(("127.0.0.1", _closed_port()), "alice")
    code, err = client.finish()
    assert code == 1
    assert err.startswith("chatlab: could not connect to 127.0.0.1:") and err.count("\n") == 1


def test_server_going_away_ends_the_client(terminals: Any) -> None:
    server = chatlab.Server(port=0).start()
    try:
        alice = terminals(server.address, "alice")
        alice.expect("-- alice joined lobby")
    finally:
        server.stop()
    alice.expect("-- disconnected: ...")
    if sys.platform == "win32":
        alice.finish()  # nothing can interrupt a blocked read of a pipe there: end the input
    code, err = alice.wait()  # on POSIX it exits by itself, stdin still open
    assert (code, err) == (1, "")


# ------------------------------------------------------- answering file offers


def test_the_interactive_client_asks_before_accepting_a_file(tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("lab notes\n" * 1000)
    downloads = tmp_path / "downloads"
    with chatlab.Server(port=0) as server, \
         chatlab.Client.connect(server.address, nick="alice") as alice, \
         chatlab.Client.connect(server.address, nick="bob") as bob:  # fmt: skip
        lines: list[str] = []
        session = TerminalSession(bob, lines.append, download_dir=str(downloads))
        session.start()
        try:
            first = alice.send_file(source, to="bob")
            assert _wait_for_line(lines, "-- alice offers you").endswith(": /accept 1 or /reject 1")
            session.handle_line("/reject")
            with pytest.raises(TransferError, match="declined"):
                first.wait(timeout=TIMEOUT)
            second = alice.send_file(source, to="bob")
            _wait_for_line(lines, "-- alice offers you 'notes.txt' (10.0 KB): /accept 2")
            session.handle_line("/accept 7")
            assert lines[-1].startswith("!! no file offer number 7")
            session.handle_line("/accept 2")
            second.wait(timeout=TIMEOUT)
            assert _wait_for_line(lines, "-- received 'notes.txt' from alice").endswith("notes.txt")
            assert (downloads / "notes.txt").read_text() == source.read_text()
        finally:
            session.quit(flush=False)


# ------------------------------------------------------- a line too long (issue 10, item 5)


def test_a_line_too_long_is_refused_with_the_limit_and_the_session_goes_on() -> None:
    with chatlab.Server(port=0) as server, chatlab.Client.connect(server.address, nick="alice") as alice:
        lines: list[str] = []
        session = TerminalSession(alice, lines.append)
        session.start()
        try:
            assert session.handle_line("x" * 300_000) is True
            assert lines[-1].startswith("!! line not sent: it is 300,000 bytes long (UTF-8) and a line may be at most ")
            session.handle_line("still here")
            _wait_for_line(lines, "[lobby] <alice> still here")
        finally:
            session.quit(flush=False)


# ------------------------------------------------------------------ room passwords (item 4)


def test_join_with_a_key_prints_the_servers_answer() -> None:
    with chatlab.Server(port=0, room_passwords={"secret": "pw123"}) as server, \
         chatlab.Client.connect(server.address, nick="alice") as alice:  # fmt: skip
        lines: list[str] = []
        session = TerminalSession(alice, lines.append)
        session.start()
        try:
            session.handle_line("/join secret")
            assert "needs the right password" in _wait_for_line(lines, "!! wrong password: ")
            session.handle_line("/join my room")  # never sent: room "my" with password "room" is not what was meant
            assert lines[-1].startswith("!! room names have no spaces")
            session.handle_line("/join secret key=pw123")
            _wait_for_line(lines, "-- alice joined secret")
            assert alice.room == "secret"
        finally:
            session.quit(flush=False)
