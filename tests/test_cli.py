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
    assert "lab-data.bin: 5,000,000 bytes from alice, SHA-256 verified" in text
    assert "carol quit (bye!)" in text


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
    assert "no such file" in capsys.readouterr().out


def test_send_to_an_absent_nick_fails_with_the_reason(capsys, server, tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("hi")
    host, port = server.address
    assert main(["send", str(path), "--to", "ghost", f"{host}:{port}"]) == 1
    assert "ghost" in capsys.readouterr().out


def test_send_delivers_with_the_cli(server, connect, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    bob = connect("bob", download_dir=tmp_path / "in")
    path = tmp_path / "report.bin"
    path.write_bytes(os.urandom(300_000))
    host, port = server.address
    assert main(["send", str(path), "--to", "bob", "--strategy", "fixed", f"{host}:{port}"]) == 0
    assert bob.wait_for(chatlab.FileReceived, timeout=10).path.read_bytes() == path.read_bytes()
    assert "verified its SHA-256" in capsys.readouterr().out


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
    proc = subprocess.Popen([sys.executable, "-m", "chatlab", "server", "--port", "0"], stdout=subprocess.PIPE, text=True)
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
