"""IRC over loopback: a real IRC client library, raw lines as nc sends them, and chatlab Clients, in one room.

The library is jaraco's ``irc`` from PyPI (none of us wrote it): it registers,
joins, chats both ways with chatlab ``Client``s, whispers and quits.  A raw
socket speaks lines as ``nc`` does (LF endings, a typo before USER).  The
server's guarantees (flood control, keepalive, max clients, the hostile-input
corpus) are checked for text connections too; ``replay_text_entry`` is how
``test_fuzz.py`` replays the corpus's text entries against a live server.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import time
from pathlib import Path
from typing import Any, Callable

import pytest

import chatlab
from chatlab.core import codecs
from chatlab.core.irc import ERROR_NUMERICS, MAX_LINE
from chatlab.errors import TransferError

try:
    import irc.client as irc_client
except ImportError:  # the test extra installs it; without it only the library's tests skip (test_fuzz imports us)
    irc_client = None

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


class IrcPeer:
    """A client of the ``irc`` library, driven from the test's thread: every event recorded."""

    def __init__(self, address: tuple[str, int], nick: str) -> None:
        self.reactor = irc_client.Reactor()
        self.events: list[Any] = []
        self.reactor.add_global_handler("all_events", lambda conn, event: self.events.append(event), -10)
        self.conn = self.reactor.server().connect(address[0], address[1], nick, username=nick,
                                                  ircname=f"{nick} (irc lib)")

    def wait_for(self, kind: str, predicate: Callable[[Any], bool] = lambda e: True, timeout: float = 5.0) -> Any:
        """The oldest recorded event of ``kind`` (``pubmsg``, ``join``...) that matches; removed once seen."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.type == kind and predicate(event):
                    self.events.remove(event)
                    return event
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {kind} event; got"
                                   f" {[(e.type, e.source, e.target, e.arguments) for e in self.events]}")
            self.reactor.process_once(0.02)

    def close(self) -> None:
        self.conn.close()


class LinePeer:
    """A bare socket speaking lines, as a student with ``nc`` does."""

    def __init__(self, address: tuple[str, int], timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.buffer = b""
        self.closed = False

    def send(self, text: str, end: str = "\n") -> None:
        self.sock.sendall((text + end).encode())

    def lines(self, until: Callable[[str], bool], timeout: float = 5.0) -> list[str]:
        """Lines (without CR LF) until one matches ``until``; raises if it never comes."""
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            while b"\r\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\r\n", 1)
                text = line.decode("utf-8")
                got.append(text)
                if until(text):
                    return got
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                raise TimeoutError(f"never came; got {got}, closed={self.closed}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
            self.buffer += data

    def until_closed(self, timeout: float = 5.0) -> list[str]:
        """Every line until the server hangs up (or ``timeout``: then ``closed`` stays False)."""
        seen: list[str] = []
        try:
            self.lines(lambda line: seen.append(line) is not None, timeout)  # never true: read to the end
        except TimeoutError:
            pass
        return seen

    def close(self) -> None:
        self.sock.close()


def numeric(line: str) -> str:
    """``:chatlab 433 * alice :...`` -> ``433``; the command of any line."""
    parts = line.split(" ")
    return parts[1] if line.startswith(":") and len(parts) > 1 else parts[0]


@pytest.fixture
def irc_peer(server: chatlab.Server):
    if irc_client is None:
        pytest.skip("jaraco's irc library is not installed (python -m pip install irc)")
    peers: list[IrcPeer] = []

    def _irc(nick: str) -> IrcPeer:
        peer = IrcPeer(server.address, nick)
        peers.append(peer)
        return peer

    yield _irc
    for peer in peers:
        peer.close()


@pytest.fixture
def line_peer(server: chatlab.Server):
    peers: list[LinePeer] = []

    def _line() -> LinePeer:
        peer = LinePeer(server.address)
        peers.append(peer)
        return peer

    yield _line
    for peer in peers:
        peer.close()


# ------------------------------------------------- a real IRC client library


def test_an_irc_library_client_and_chatlab_clients_chat_both_ways(server, connect, irc_peer):
    alice = connect("alice")
    dave = irc_peer("dave")
    assert dave.wait_for("welcome").target == "dave"
    dave.wait_for("endofmotd")
    assert not [e for e in dave.events if e.type == "join"], "an IRC client registering at once gets no forced channel"
    dave.conn.join("#lobby")
    assert dave.wait_for("join").target == "#lobby"
    names = dave.wait_for("namreply")
    assert names.arguments[1] == "#lobby" and set(names.arguments[2].split()) == {"alice", "dave"}
    assert alice.wait_for(chatlab.Notice, predicate=lambda n: n.kind == "join" and n.nick == "dave").room == "lobby"

    alice.say("hello, irc")  # binary -> text
    line = dave.wait_for("pubmsg")
    assert (line.source.nick, line.target, line.arguments) == ("alice", "#lobby", ["hello, irc"])
    dave.conn.privmsg("#lobby", "hello, chatlab")  # text -> binary
    assert alice.wait_for(chatlab.ChatMessage, predicate=lambda m: m.sender == "dave").text == "hello, chatlab"
    dave.conn.action("#lobby", "waves")
    waved = alice.wait_for(chatlab.ChatMessage, predicate=lambda m: m.sender == "dave")
    assert (waved.text, waved.action) == ("waves", True)
    alice.action("nods")
    assert dave.wait_for("action").arguments == ["nods"]

    alice.whisper("dave", "psst")  # whispers both ways
    private = dave.wait_for("privmsg")
    assert (private.source.nick, private.target, private.arguments) == ("alice", "dave", ["psst"])
    dave.conn.privmsg("alice", "psst yourself")
    whispered = alice.wait_for(chatlab.PrivateMessage, predicate=lambda m: m.sender == "dave")
    assert (whispered.to, whispered.text) == ("alice", "psst yourself")
    assert not [e for e in dave.events if e.type == "pubmsg" and e.source.nick == "dave"], "IRC clients get no echo"

    dave.conn.join("#team")  # many rooms at once: dave stays in #lobby and is #team's operator
    assert dave.wait_for("join", lambda e: e.source.nick == "dave").target == "#team"
    assert dave.wait_for("namreply", lambda e: e.arguments[1] == "#team").arguments[2] == "@dave"
    alice.join("team", stay=True)
    assert dave.wait_for("join", lambda e: e.source.nick == "alice").target == "#team"
    alice.say("in team now", room="team")
    assert dave.wait_for("pubmsg").target == "#team"
    alice.say("and in the lobby", room="lobby")
    assert dave.wait_for("pubmsg").target == "#lobby"
    dave.conn.privmsg("#team", "both rooms")
    assert alice.wait_for(chatlab.ChatMessage, predicate=lambda m: m.sender == "dave").room == "team"

    dave.conn.quit("gone fishing")
    quit = alice.wait_for(chatlab.Notice, predicate=lambda n: n.kind == "quit")
    assert quit.nick == "dave" and "gone fishing" in quit.text
    deadline = time.monotonic() + 5
    while server.nicks != ["alice"]:
        assert time.monotonic() < deadline, server.nicks
        time.sleep(0.01)


def test_two_irc_clients_see_each_others_joins_lines_and_quits(server, irc_peer):
    erin = irc_peer("erin")
    erin.wait_for("endofmotd")
    erin.conn.join("#lobby")
    erin.wait_for("endofnames")
    frank = irc_peer("frank")
    frank.wait_for("endofmotd")
    frank.conn.join("#lobby")
    assert erin.wait_for("join", lambda e: e.source.nick == "frank").target == "#lobby"
    frank.wait_for("endofnames")
    frank.conn.privmsg("#lobby", "hi erin")
    assert erin.wait_for("pubmsg").arguments == ["hi erin"]
    frank.conn.quit("bye")
    assert erin.wait_for("quit", lambda e: e.source.nick == "frank").arguments == ["bye"]


def test_a_taken_nick_gets_433_and_the_library_may_pick_another(server, connect, irc_peer):
    connect("alice")
    peer = irc_peer("alice")
    assert peer.wait_for("nicknameinuse").arguments[0] == "alice"
    peer.conn.nick("alice_")
    assert peer.wait_for("welcome").target == "alice_"
    assert "alice_" in server.nicks


def test_a_file_offer_to_an_irc_user_is_refused_with_a_reason(server, connect, irc_peer, tmp_path):
    alice = connect("alice")
    dave = irc_peer("dave")
    dave.wait_for("endofmotd")
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    transfer = alice.send_file(path, "dave")
    with pytest.raises(TransferError, match="text \\(IRC\\) client"):
        transfer.wait(5)


# ------------------------------------------------------ raw lines, as nc


def typing(server: chatlab.Server) -> None:
    """Make every text client count as a person typing into nc (who is put in the default room)."""
    server.room.settings = dataclasses.replace(server.room.settings, typing_time=0.0)


def test_raw_lines_as_nc_sends_them_with_a_typo_before_user(server, connect, line_peer):
    typing(server)
    bob = connect("bob")
    nc = line_peer()
    nc.send("hello")
    assert nc.lines(lambda line: " 421 " in line)[-1] == (
        ":chatlab 421 * hello :Unknown command; register with NICK yourname and USER yourname 0 * :Your Name")
    nc.send("NICK carol")
    nc.send("PRIVMSG #lobby :am I in?")
    assert numeric(nc.lines(lambda line: " 451 " in line)[-1]) == "451"
    nc.send("USER carol 0 * :Carol")
    got = nc.lines(lambda line: " 366 " in line)
    assert [numeric(line) for line in got][:5] == ["001", "002", "003", "004", "005"]
    assert ":carol!carol@chatlab JOIN #lobby" in got
    assert any(numeric(line) == "353" and "bob" in line.split(" :")[-1].split() for line in got)
    nc.send("PRIVMSG #lobby :hi from nc")
    assert bob.wait_for(chatlab.ChatMessage, predicate=lambda m: m.sender == "carol").text == "hi from nc"
    bob.say("hi carol")
    assert nc.lines(lambda line: "PRIVMSG" in line)[-1] == ":bob!bob@chatlab PRIVMSG #lobby :hi carol"
    nc.send("LIST")
    assert ":chatlab 322 carol #lobby 2 :" in nc.lines(lambda line: " 323 " in line)
    nc.send("QUIT :done")
    errors = nc.lines(lambda line: line.startswith(":chatlab ERROR"))
    assert errors[-1] == ":chatlab ERROR :Closing link: carol (Quit: done)"
    assert bob.wait_for(chatlab.Notice, predicate=lambda n: n.kind == "quit").nick == "carol"


def test_crlf_lines_split_anywhere_and_one_byte_at_a_time(server, connect, line_peer):
    bob = connect("bob")
    nc = line_peer()
    for byte in b"NICK dora\r\nUSER dora 0 * :Dora\r\nJOIN #lobby\r\nPRIVMSG #lobby :one byte at a time\r\n":
        nc.sock.sendall(bytes([byte]))
    assert bob.wait_for(chatlab.ChatMessage, predicate=lambda m: m.sender == "dora").text == "one byte at a time"


def test_binary_users_comings_and_goings_are_join_part_and_quit_lines(server, connect, line_peer):
    nc = line_peer()
    nc.send("NICK carol\nUSER carol 0 * :Carol\nJOIN #lobby")
    nc.lines(lambda line: " 366 " in line)
    bob = connect("bob")
    assert nc.lines(lambda line: "JOIN" in line)[-1] == ":bob!bob@chatlab JOIN #lobby"
    bob.join("team")
    assert nc.lines(lambda line: "PART" in line)[-1] == ":bob!bob@chatlab PART #lobby :bob left for team"
    nc.send("JOIN #team")
    got = nc.lines(lambda line: " 366 " in line)
    assert got[0] == ":carol!carol@chatlab JOIN #team"  # and carol is still in #lobby: no PART
    assert ":chatlab 353 carol = #team :@bob carol" in got
    bob.close("lunch")
    assert nc.lines(lambda line: "QUIT" in line)[-1] == ":bob!bob@chatlab QUIT :lunch"


def test_nick_collisions_with_binary_users_fold_case_and_look_alikes(server, connect, line_peer):
    connect("alice")
    nc = line_peer()
    nc.sock.sendall("NICK ＡＬＩＣＥ\r\nUSER a 0 * :A\r\n".encode())
    assert numeric(nc.lines(lambda line: " 433 " in line)[-1]) == "433"  # a look-alike of alice
    nc.send("NICK ALICE")
    assert numeric(nc.lines(lambda line: " 433 " in line)[-1]) == "433"
    nc.send("NICK admin")
    assert numeric(nc.lines(lambda line: " 432 " in line)[-1]) == "432"  # reserved
    nc.send("NICK 9lives")
    assert numeric(nc.lines(lambda line: " 432 " in line)[-1]) == "432"  # not a valid nick
    nc.send("NICK alice2")
    assert nc.lines(lambda line: " 001 " in line)[-1].startswith(":chatlab 001 alice2 ")


def test_a_room_password_is_an_irc_channel_key():
    with chatlab.Server(port=0, room_passwords={"staff": "sesame"}) as srv:
        nc = LinePeer(srv.address)
        try:
            nc.send("NICK dana\nUSER dana 0 * :Dana")
            nc.lines(lambda line: " 376 " in line)
            nc.send("JOIN #staff wrong")
            assert nc.lines(lambda line: " 475 " in line)[-1].startswith(":chatlab 475 dana #staff :")
            nc.send("JOIN #staff sesame")
            assert ":dana!dana@chatlab JOIN #staff" in nc.lines(lambda line: " 366 " in line)
        finally:
            nc.close()


# ------------------------------------- the server's guarantees, for text too


def test_flood_control_slows_a_text_client_and_loses_nothing():
    with chatlab.Server(port=0, flood_limit=chatlab.FloodLimit(rate=50, burst=5)) as srv, \
         chatlab.Client.connect(srv.address, nick="bob") as bob:  # fmt: skip
        nc = LinePeer(srv.address)
        try:
            nc.send("NICK eve\nUSER eve 0 * :Eve\nJOIN #lobby")
            nc.lines(lambda line: " 366 " in line)
            nc.send("\n".join(f"PRIVMSG #lobby :line {i}" for i in range(30)))
            notice = nc.lines(lambda line: "NOTICE" in line)[-1]
            assert "faster than 50 messages/s" in notice
            texts = [bob.wait_for(chatlab.ChatMessage, predicate=lambda m: m.sender == "eve").text for _ in range(30)]
            assert texts == [f"line {i}" for i in range(30)]
        finally:
            nc.close()


def test_keepalive_pings_a_silent_text_client_and_drops_it_if_it_never_answers():
    with chatlab.Server(port=0, flood_limit=None, ping_interval=0.3, ping_timeout=0.6) as srv:
        answering, silent = LinePeer(srv.address), LinePeer(srv.address)
        try:
            for peer, nick in ((answering, "ann"), (silent, "sid")):
                peer.send(f"NICK {nick}\nUSER {nick} 0 * :x")
                peer.lines(lambda line: " 376 " in line)
            ping = answering.lines(lambda line: line.startswith("PING "), timeout=5)[-1]
            answering.send("PONG " + ping.split(" ", 1)[1])
            silent.until_closed(timeout=5)
            assert silent.closed
            assert srv.nicks == ["ann"]
        finally:
            answering.close()
            silent.close()


def test_registration_never_finished_ends_with_an_error_line():
    with chatlab.Server(port=0, hello_timeout=0.4, text_hello_timeout=0.4) as srv:
        lurker = LinePeer(srv.address)
        try:
            lurker.send("NICK lurker")
            got = lurker.lines(lambda line: "ERROR" in line, timeout=5)
            assert got[-1] == ":chatlab ERROR :Closing link: * (no registration (NICK and USER) within 0.4 s)"
            lurker.until_closed()
            assert lurker.closed
        finally:
            lurker.close()


def test_max_clients_counts_text_connections():
    with chatlab.Server(port=0, max_clients=1) as srv:
        first, second = LinePeer(srv.address), LinePeer(srv.address)
        try:
            first.send("NICK first\nUSER first 0 * :x")
            first.lines(lambda line: " 001 " in line)
            second.until_closed()
            assert second.closed
        finally:
            first.close()
            second.close()


def test_ten_thousand_pings_are_answered_and_the_others_chat_on(server, connect, line_peer):
    alice, bob = connect("alice"), connect("bob")
    nc = line_peer()
    nc.send("NICK pinger\nUSER p 0 * :p")
    nc.lines(lambda line: " 376 " in line)
    nc.sock.sendall(b"PING :x\r\n" * 10_000)
    alice.say("still here")
    assert bob.wait_for(chatlab.ChatMessage, predicate=lambda m: m.text == "still here").sender == "alice"
    pongs = 0

    def ten_thousandth_pong(line: str) -> bool:
        nonlocal pongs
        pongs += line == ":chatlab PONG chatlab :x"
        return pongs == 10_000

    nc.lines(ten_thousandth_pong, timeout=60)


# ------------------------------------- the corpus's text entries, live


def corpus_replies(entry_name: str) -> list[str]:
    """The ``# reply: X`` headers of a corpus file: commands or numerics the answer must include."""
    text = (CORPUS / f"{entry_name}.hex").read_text(encoding="utf-8")
    return [m.group(1) for m in re.finditer(r"#\s*reply:\s*(\S+)", text)]


def is_text_entry(entry: Any) -> bool:
    """Does a corpus entry speak text (IRC) rather than frames?  Its first bytes say, as they tell the server."""
    return entry.after == "start" and not isinstance(codecs.sniff(entry.data[: codecs.SNIFF_BYTES]), codecs.BinaryCodec)


def replay_text_entry(server: chatlab.Server, entry: Any) -> None:
    """Send a text entry's bytes and check the answer it must get (``tests/corpus/README.md``), in IRC terms."""
    peer = LinePeer(server.address)
    try:
        peer.sock.sendall(entry.data)
        if entry.outcome == "closed":  # nothing the server could say would be read: it just hangs up
            got = peer.until_closed()
            assert peer.closed and not got, f"{entry.name}: {got}"
        elif entry.outcome == "kicked":
            got = peer.until_closed()
            assert peer.closed, f"{entry.name}: still connected after {got}"
            assert any(line.startswith(":chatlab ERROR ") for line in got), f"{entry.name}: {got}"
        elif entry.outcome in ("ok", "error"):  # still connected: a PING after it is answered
            peer.sock.sendall(b"\r\nPING :424242\r\n")  # the CR LF ends whatever line the entry left open
            got = peer.lines(lambda line: line == ":chatlab PONG chatlab :424242", timeout=30)
            assert not any(line.startswith(":chatlab ERROR ") for line in got), f"{entry.name}: {got}"
            if entry.outcome == "error":
                assert ERROR_NUMERICS[entry.code] in [numeric(line) for line in got], f"{entry.name}: {got}"
        else:  # waiting: nothing to answer yet, and no hang-up
            peer.sock.settimeout(0.3)
            try:
                data = peer.sock.recv(65536)
            except socket.timeout:
                data = None
            assert data is None, f"{entry.name}: {data!r}"
            got = []
        commands = [numeric(line) for line in got]
        for expected in corpus_replies(entry.name):
            assert expected in commands, f"{entry.name}: no {expected} in {got}"
    finally:
        peer.close()


def irc_lines_until_closed(sock: socket.socket, timeout: float = 5.0) -> bool:
    """Read until the server hangs up (True) or ``timeout`` (False); all it sent must be IRC lines of <= 512 bytes."""
    data = b""
    deadline = time.monotonic() + timeout
    closed = False
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            closed = True
            break
        data += chunk
    assert data == b"" or data.endswith(b"\r\n"), data[-200:]
    for line in data.split(b"\r\n")[:-1]:
        assert len(line) + 2 <= MAX_LINE and b"\r" not in line and b"\n" not in line, line
        line.decode("utf-8")  # the server sends UTF-8 only
    return closed


# ------------------------------------------------- the benchmark, at a tiny size


def test_bench_irc_runs_both_servers_and_loses_nothing(tmp_path, capsys):
    """``python -m chatlab bench irc`` at a tiny size: every line reaches every member (no timing asserted)."""
    from chatlab.bench import irc_fanout, main

    assert main(["irc", "--out", str(tmp_path), "--no-progress", "--clients", "8", "--seconds", "0.3",
                 "--senders", "2", "--window", "4", "--idle", "30", "--idle-rounds", "50"]) == 0
    rows = bench_rows(tmp_path / "irc.csv")
    have_ngircd = irc_fanout.ngircd_path() is not None
    assert [r["kind"] for r in rows] == (["chatlab", "ngircd"] if have_ngircd else ["chatlab"])
    for r in rows:
        assert int(r["lost"]) == 0 and r["errors"] == "", r
        assert float(r["deliveries_per_s"]) > 0
    out = capsys.readouterr().out
    assert "delivered/s" in out
    assert ("x ngircd" in out) if have_ngircd else ("ngircd is not installed" in out)
    idle = bench_rows(tmp_path / "irc-idle.csv")  # the loop's cost per turn with idle connections
    assert [r["server"] for r in idle] == [r["kind"] for r in rows]
    assert all(float(r["rtt_us"]) > 0 and r["idle_connections"] == "30" for r in idle)


def test_bench_irc_without_ngircd_skips_it_with_a_note(tmp_path, capsys, monkeypatch):
    from chatlab.bench import irc_fanout, main

    monkeypatch.setattr(irc_fanout, "ngircd_path", lambda: None)
    assert main(["irc", "--out", str(tmp_path), "--no-progress", "--clients", "5", "--seconds", "0.2",
                 "--idle", "0"]) == 0
    assert [r["kind"] for r in bench_rows(tmp_path / "irc.csv")] == ["chatlab"]
    out = capsys.readouterr().out
    assert "ngircd is not installed" in out and "[SKIPPED] chatlab text mode >= ngircd at 5 clients" in out


def bench_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))
