"""The command line: the demo a newcomer runs first, and the verbs' error handling."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys

import pytest

import chatlab
from chatlab.cli import main
from chatlab.demo import run_demo


def test_demo_transcript_shows_who_saw_what():
    out = io.StringIO()
    assert run_demo(out=out) == 0
    text = out.getvalue()
    assert "[lobby] <alice> hello, everyone!" in text and "(seen by alice, bob, carol)" in text
    assert "[private] <alice -> bob> psst, team1 in 5?           (seen by alice, bob)" in text
    assert "[team1] <bob> just us here                           (seen by alice, bob)" in text
    assert "lab-data.bin: 5.0 MB from alice, SHA-256 verified" in text
    assert "carol quit (bye!)" in text


def test_demo_transcript_tells_the_truth_in_order():
    """Issue 10, item 6: no "0 of 5,000,000 bytes", each line once, notices in the order they happened."""
    out = io.StringIO()
    run_demo(out=out)
    lines = out.getvalue().splitlines()
    said = [line for line in lines if "<alice> sending you the lab data now" in line]
    assert len(said) == 1 and "(seen by alice, bob; it arrived " in said[0]
    assert " 0 bytes of " not in said[0] and "0 of 5" not in said[0]
    assert said[0].endswith("after the whole file)") or " of 5.0 MB)" in said[0]
    saved = next(line for line in lines if line.startswith("-- saved as "))
    assert saved.split()[3].endswith(os.path.join("inbox", "lab-data.bin"))
    notices = [line.split("  ")[0] for line in lines
               if line.startswith("-- ") and (" left for " in line or " joined " in line)]
    assert notices == ["-- bob left for team1", "-- bob joined team1", "-- alice left for team1",
                       "-- alice joined team1", "-- alice left for lobby", "-- alice joined lobby"]


def test_demo_shows_a_text_client_among_the_binary_ones():
    """Issue 13: dave speaks IRC on a plain socket; both framings see each other's lines."""
    out = io.StringIO()
    run_demo(out=out)
    text = out.getvalue()
    assert "    dave (IRC) reads: :alice!alice@chatlab PRIVMSG #lobby :hello, everyone!" in text
    assert "    dave (IRC) reads: :bob!bob@chatlab PRIVMSG #lobby :\\x01ACTION waves back\\x01" in text
    assert "[lobby] <dave> hi from nc!" in text and "(seen by alice, bob, carol)" in text
    assert "    dave (IRC) reads: :carol!carol@chatlab QUIT :bye!" in text
    assert "psst" not in "".join(line for line in text.splitlines() if "dave (IRC)" in line)  # a whisper is private


def test_demo_merges_what_each_client_saw_in_order():
    from chatlab.demo import in_order

    received = {"alice": ["-- alice joined team1"], "bob": ["-- alice joined team1"],
                "carol": ["-- alice left for team1"]}
    assert in_order(received) == ["-- alice left for team1", "-- alice joined team1"]
    assert in_order({"a": ["x", "y"], "b": ["y", "z"], "c": ["x", "z"]}) == ["x", "y", "z"]


@pytest.mark.parametrize("backend", ["poll"] if hasattr(__import__("selectors"), "PollSelector") else [])
def test_demo_runs_on_another_backend(backend):
    assert run_demo(selector=backend, out=io.StringIO()) == 0


def test_python_dash_m_chatlab_demo_exits_zero():
    result = subprocess.run([sys.executable, "-m", "chatlab", "demo"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "The demo server stopped" in result.stdout


def test_no_verb_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_send_reports_a_missing_file(capsys, server):
    host, port = server.address
    assert main(["send", "no-such-file.bin", "--to", "bob", f"{host}:{port}"]) == 1
    out, err = capsys.readouterr()
    assert "chatlab send: no such file: no-such-file.bin" in err and "no such file" not in out


def test_send_to_an_absent_nick_fails_with_the_reason(capsys, server, tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("hi")
    host, port = server.address
    assert main(["send", str(path), "--to", "ghost", f"{host}:{port}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chatlab send: ") and "nobody else called 'ghost' is online" in err


def test_send_delivers_with_the_cli(server, connect, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    bob = connect("bob", download_dir=tmp_path / "in")
    path = tmp_path / "report.bin"
    path.write_bytes(os.urandom(300_000))
    host, port = server.address
    assert main(["send", str(path), "--to", "bob", "--strategy", "fixed", f"{host}:{port}"]) == 0
    assert bob.wait_for(chatlab.FileReceived, timeout=10).path.read_bytes() == path.read_bytes()
    out = capsys.readouterr().out
    assert "(300.0 KB) to bob" in out and "verified its SHA-256" in out


def test_send_direct_with_the_cli(server, connect, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    bob = connect("bob", download_dir=tmp_path / "in")
    path = tmp_path / "report.bin"
    path.write_bytes(os.urandom(300_000))
    host, port = server.address
    assert main(["send", str(path), "--to", "bob", "--direct", f"{host}:{port}"]) == 0
    assert bob.wait_for(chatlab.FileReceived, timeout=10).path.read_bytes() == path.read_bytes()
    assert "direct); the receiver verified its SHA-256" in capsys.readouterr().out


def test_client_to_nothing_is_one_clear_line(capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        code = main(["send", __file__, "--to", "bob", f"127.0.0.1:{port}"])
    assert code == 1
    assert "could not connect" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_server_verb_stops_cleanly_on_ctrl_c():
    proc = subprocess.Popen([sys.executable, "-m", "chatlab", "server", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening on 127.0.0.1:" in line
        port = int(line.split("127.0.0.1:")[1].split()[0])
        with chatlab.Client.connect(("127.0.0.1", port), nick="alice") as alice:
            alice.say("hi")
            assert alice.wait_for(chatlab.ChatMessage).text == "hi"
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
            notice = alice.wait_for(chatlab.Notice, timeout=5, predicate=lambda n: n.kind == "info")
            assert "shutting down" in notice.text
            assert isinstance(alice.wait_for(chatlab.Disconnected, timeout=5), chatlab.Disconnected)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()


# ------------------------------------------------------------ errors that say what to try (item 10)


def test_a_busy_port_names_the_port_and_what_to_try(capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["server", "--port", str(port)]) == 1
    out, err = capsys.readouterr()
    assert f"chatlab server: port {port} on 127.0.0.1 is already in use" in err and "--port 0" in err
    assert "Errno" not in err and out == ""


@pytest.mark.parametrize("verb", [["server", "--port", "99999"], ["server", "--port", "-1"]])
def test_an_impossible_server_port_says_invalid_port(verb, capsys):
    with pytest.raises(SystemExit) as exited:
        main(verb)
    assert exited.value.code == 2
    assert "invalid port" in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["client", "send"])
def test_an_impossible_client_port_says_invalid_port(verb, capsys, monkeypatch):
    args = (["client", "--nick", "alice", "127.0.0.1:99999"] if verb == "client"
            else ["send", __file__, "--to", "bob", "127.0.0.1:99999"])
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "invalid port 99999" in err and "refused" not in err


# --------------------------------------------------------- client defaults (item 8)


def test_client_defaults_to_the_servers_address():
    from chatlab.cli import build_parser

    parser = build_parser()
    server = parser.parse_args(["server"])
    address = parser.parse_args(["client", "--nick", "alice"]).address
    assert address == f"{server.host}:{server.port}" == "127.0.0.1:7777"


def test_client_without_nick_and_without_a_terminal_fails_clearly(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("/quit\n"))
    assert main(["client", "127.0.0.1:1"]) == 2
    assert "--nick is missing, and stdin is not a terminal" in capsys.readouterr().err


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_client_without_nick_asks_for_one(server, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", FakeTerminal("\nalice\n/quit\n"))  # an empty answer is asked again
    host, port = server.address
    assert main(["client", f"{host}:{port}"]) == 0
    out = capsys.readouterr().out
    assert out.count("nickname: ") == 2 and f"connected to {host}:{port} as alice" in out


# ------------------------------------------------------------ room passwords (item 4)


def test_room_password_options_preset_the_servers_passwords():
    from chatlab.cli import build_parser, server_options

    args = build_parser().parse_args(["server", "--port", "0", "--room-password", "secret=pw123",
                                      "--room-password", "team=a=b"])
    options = server_options(args)
    assert options["room_passwords"] == {"secret": "pw123", "team": "a=b"}
    with chatlab.Server(port=0, **options) as srv, chatlab.Client.connect(srv.address, nick="alice") as alice:  # type: ignore[arg-type]
        with pytest.raises(chatlab.ServerError, match="bad-password"):
            alice.join("secret")
        alice.join("secret", "pw123")
        assert alice.room == "secret"


@pytest.mark.parametrize("value, message", [("secret", "expected ROOM=PASSWORD"), ("=pw", "expected ROOM=PASSWORD"),
                                            ("my room=pw", "room names have no spaces")])
def test_a_malformed_room_password_is_refused(value, message, capsys):
    with pytest.raises(SystemExit):
        main(["server", "--room-password", value])
    assert message in capsys.readouterr().err


def test_a_room_given_twice_is_refused(capsys):
    assert main(["server", "--port", "0", "--room-password", "a=1", "--room-password", "A=2"]) == 2
    assert "gives room 'A' twice" in capsys.readouterr().err


def test_a_room_given_twice_in_look_alike_letters_is_refused():
    """The duplicate check keys rooms as the server does (normalize_name): full-width ｔｅａｍ is team."""
    from chatlab.cli import build_parser, server_options

    args = build_parser().parse_args(["server", "--room-password", "team=1", "--room-password", "ｔｅａｍ=2"])
    with pytest.raises(ValueError, match="twice"):
        server_options(args)
