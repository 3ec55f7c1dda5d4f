"""irssi, a real IRC client, joins the chat over TLS (skipped where irssi or tmux is missing)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

import chatlab
from chatlab import certs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("irssi") is None or shutil.which("tmux") is None,
                       reason="irssi and tmux are needed (apt-get install irssi tmux)"),
]
pytest.importorskip("cryptography")


def _screen(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True).stdout


def _wait_for(session: str, text: str, seconds: float = 15.0) -> str:
    deadline = time.monotonic() + seconds
    screen = ""
    while time.monotonic() < deadline:
        screen = _screen(session)
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared on irssi's screen:\n{screen}")


def test_irssi_connects_over_tls_with_the_class_ca_and_chats_with_a_chatlab_client(tmp_path: Path):
    files = certs.write_class_files(tmp_path / "tls", ["localhost", "127.0.0.1"])
    session = f"chatlab-irssi-{tmp_path.name}"[:40]
    with chatlab.Server(port=0, tls_cert=str(files["cert"]), tls_key=str(files["key"])) as server:
        port = server.address[1]
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40",
                        f"irssi --home={tmp_path / 'irssi'} -n tlsuser"], check=True)
        try:
            _wait_for(session, "Irssi")
            subprocess.run(["tmux", "send-keys", "-t", session,
                            f"/connect -tls -tls_cafile {files['ca']} localhost {port}", "Enter"], check=True)
            _wait_for(session, "Welcome to chatlab")
            subprocess.run(["tmux", "send-keys", "-t", session, "/join #lobby", "Enter"], check=True)
            _wait_for(session, "has joined #lobby")
            with chatlab.Client.connect(server.address, "alice", tls=True, cafile=files["ca"],
                                        server_hostname="localhost") as alice:
                alice.say("hello irssi")
                screen = _wait_for(session, "hello irssi")
                subprocess.run(["tmux", "send-keys", "-t", session, "hi alice, over TLS", "Enter"], check=True)
                reply = alice.wait_for(chatlab.ChatMessage, 10, lambda m: m.sender == "tlsuser")
                assert reply.text == "hi alice, over TLS"
            assert "certificate" not in screen.lower() and "error" not in screen.lower(), screen
        finally:
            subprocess.run(["tmux", "send-keys", "-t", session, "/quit", "Enter"], check=False)
            time.sleep(0.5)
            subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)
