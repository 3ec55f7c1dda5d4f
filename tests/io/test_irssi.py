"""irssi, a real IRC client, in tmux against chatlab: a scripted session whose screen shows no error.

irssi paces its own commands (one every ~2.2 s after a burst of five: its ``cmd_queue_speed``),
so the session takes half a minute whatever the server does.

carol (irssi) joins two channels, renames herself, sets a topic, kicks bob (a chatlab
client) out of the channel she created, gives it a key, goes away, asks WHOIS and quits.
bob's client sees each step as a core notice; irssi's screen is checked for the words
IRC servers use when something is refused.  Skipped where irssi or tmux is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import chatlab
from chatlab.core import protocol as p

ERROR_WORDS = ("Unknown command", "not channel operator", "You're not", "No such", "Erroneous", "is already in use",
               "Cannot", "ERROR", "Not enough parameters", "Permission Denied")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10).stdout


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-S", "-200", "-t", session)


def type_line(session: str, line: str) -> None:
    tmux("send-keys", "-t", session, "-l", line)
    tmux("send-keys", "-t", session, "Enter")


def wait_screen(session: str, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        shown = screen(session)
        if text in shown:
            return shown
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} never showed; the screen:\n{shown}")
        time.sleep(0.1)


@pytest.mark.slow
def test_an_irssi_session_in_tmux_shows_no_error(tmp_path: Path):
    if shutil.which("irssi") is None or shutil.which("tmux") is None:
        pytest.skip("irssi and tmux are needed (apt install irssi tmux)")
    session = f"chatlab-irssi-{uuid.uuid4().hex[:8]}"
    home = tmp_path / "irssi"
    home.mkdir()
    (home / "config").write_text('settings = { core = { real_name = "Carol"; user_name = "carol"; nick = "carol"; }; '
                                 '"fe-common/core" = { theme = "default"; }; };\n')
    with chatlab.Server(port=0, flood_limit=None) as server, chatlab.Client.connect(server.address, "bob") as bob:
        host, port = server.address
        tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "50",
             f"irssi --home={home} --noconnect")
        try:
            wait_screen(session, "Irssi")
            type_line(session, f"/connect {host} {port}")
            wait_screen(session, "End of /MOTD")
            type_line(session, "/join #one")
            wait_screen(session, "Channel #one created")
            type_line(session, "/join #two")
            wait_screen(session, "Channel #two created")
            type_line(session, "/window goto #one")
            bob.join("one", stay=True)
            wait_screen(session, "bob")
            type_line(session, "/nick caroline")
            renamed = bob.wait_for(p.Notice, timeout=30, predicate=lambda e: e.kind == "nick")
            assert (renamed.nick, renamed.target) == ("carol", "caroline")
            type_line(session, "/topic #one plans for friday")
            topic = bob.wait_for(p.Notice, timeout=30, predicate=lambda e: e.kind == "topic")
            assert (topic.nick, topic.detail) == ("caroline", "plans for friday")
            type_line(session, "/kick #one bob meeting over")
            kicked = bob.wait_for(p.Notice, timeout=30, predicate=lambda e: e.kind == "kick")
            assert (kicked.nick, kicked.target, kicked.detail) == ("caroline", "bob", "meeting over")
            type_line(session, "/mode #one +k sesame")
            wait_screen(session, "+k sesame")
            type_line(session, "/away lunch")
            wait_screen(session, "zZzZ")  # irssi's status bar: away
            type_line(session, "/whois bob")
            channel_window = screen(session)
            type_line(session, "/window 1")  # irssi shows WHOIS, 306 and the server's notices in its status window
            shown = channel_window + wait_screen(session, "End of WHOIS")
            assert "bob [bob@chatlab]" in shown and "#lobby" in shown
            errors = [line for line in shown.splitlines() if any(word in line for word in ERROR_WORDS)]
            assert not errors, shown
            with pytest.raises(chatlab.ServerError, match="bad-password"):
                bob.join("one", stay=True)  # the key irssi set holds
            type_line(session, "/quit see you")  # bob shares no room with her any more: no notice for him
            deadline = time.monotonic() + 30
            while "caroline" in server.nicks:
                assert time.monotonic() < deadline, server.nicks
                time.sleep(0.1)
        finally:
            tmux("kill-session", "-t", session)
