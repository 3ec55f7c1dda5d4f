"""Under CHATLAB_LANG=zh, the paths a student meets most have no English scaffolding.

argparse's own words, ``netem --help``, the server's start line, the demo, a
refused connection, and the server's notices and errors as the terminal client
shows them (rendered from their kind or code: the wire stays English).
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from chatlab import i18n, notices
from chatlab.core import protocol as p
from chatlab.terminal import format_event, run_terminal_client

ROOT = Path(__file__).resolve().parents[2]
CJK = re.compile(r"[\u4e00-\u9fff]")
ARGPARSE_ENGLISH = ("usage:", "options:", "show this help", "error:", "argument --", "invalid choice", "required")


def chatlab(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {**os.environ, "CHATLAB_LANG": "zh", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "chatlab", *args], capture_output=True, text=True, env=env,
                          check=False, cwd=ROOT, timeout=timeout)


@pytest.fixture
def zh():
    i18n.set_language("zh")
    yield
    i18n.set_language(None)


@pytest.mark.parametrize("args", [["server", "--port", "abc"], ["client", "--nick"], ["bogus"], ["send", "x"]],
                         ids=["bad type", "missing value", "bad choice", "missing required"])
def test_argparse_errors_are_chinese(args: list[str]) -> None:
    done = chatlab(*args)
    assert done.returncode == 2
    assert "用法：" in done.stderr and "错误：" in done.stderr, done.stderr
    assert not any(word in done.stderr for word in ARGPARSE_ENGLISH), done.stderr


@pytest.mark.parametrize("verb", ["server", "client", "send", "netem", "demo", "student-edition"])
def test_help_is_chinese(verb: str) -> None:
    done = chatlab(verb, "--help")
    assert done.returncode == 0, done.stderr
    assert "用法：" in done.stdout and "显示本帮助信息并退出" in done.stdout
    assert not any(word in done.stdout for word in ARGPARSE_ENGLISH), done.stdout
    descriptions = [line for line in done.stdout.splitlines() if line.startswith("  ") and "  " in line.strip()]
    assert all(CJK.search(line) for line in descriptions if not line.strip().startswith("{")), descriptions


def test_english_stays_english() -> None:
    env = {**os.environ, "CHATLAB_LANG": "en", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "chatlab", "server", "--port", "abc"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=30, check=False)
    assert "usage:" in done.stderr and "error: argument --port" in done.stderr


def test_the_server_start_line_is_chinese() -> None:
    env = {**os.environ, "CHATLAB_LANG": "zh", "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-m", "chatlab", "server", "--port", "0"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT) as server:
        try:
            line = server.stdout.readline()
        finally:
            server.terminate()
            server.communicate(timeout=10)
    assert line.startswith("chatlab 服务器正在 127.0.0.1:") and "按 Ctrl-C 停止" in line, line


def test_a_refused_connection_uses_the_catalog_and_the_os_words(zh) -> None:
    with socket.socket() as held:  # bound, not listening: connect() is refused
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        out = io.StringIO()
        assert run_terminal_client(("127.0.0.1", port), "小明", input=io.StringIO(""), output=out) == 1
    line = out.getvalue().strip()
    strerror = os.strerror(__import__("errno").ECONNREFUSED)
    assert line.startswith(f"chatlab: 无法连接到 127.0.0.1:{port}：") and "chatlab 服务器" in line, line
    assert "could not connect" not in line and (strerror in line or "refused" in line.lower() or "拒绝" in line), line


NOTICES = [
    (p.Notice("join", "小明 joined lobby", "小明", "lobby"), "-- 小明 加入了 lobby"),
    (p.Notice("leave", "bob left for team1", "bob", "lobby"), "-- bob 离开，去了 team1"),
    (p.Notice("quit", "bob quit (bye)", "bob", "lobby"), "-- bob 退出了（bye）"),
    (p.Notice("quit", "bob quit", "bob", "lobby"), "-- bob 退出了"),
    (p.ErrorMessage("no-such-nick", "nobody called 'zed' is online"), "!! 没有这个人: 没有名叫 'zed' 的人在线"),
    (p.ErrorMessage("nick-taken", "the nickname 'alice' is already in use"), "!! 昵称已被占用: 昵称 'alice' 已被占用"),
]


@pytest.mark.parametrize("event, shown", NOTICES, ids=lambda x: getattr(x, "kind", getattr(x, "code", "")))
def test_server_notices_are_shown_in_the_clients_language(zh, event, shown: str) -> None:
    assert format_event(event, "me") == shown


def test_an_unknown_notice_is_shown_as_the_server_wrote_it(zh) -> None:
    assert format_event(p.Notice("info", "a teacher's own words"), "me") == "-- a teacher's own words"
    welcome = notices.shown_motd("Welcome to chatlab. Type /help for commands.")
    assert welcome == "欢迎来到 chatlab。输入 /help 查看命令。"
    assert notices.shown_motd("Lab 3 today") == "Lab 3 today"


def test_every_notice_the_server_sends_has_a_rule(zh) -> None:
    """A real server, real clients: each notice and error they receive is rendered in Chinese."""
    import chatlab

    with chatlab.Server(port=0) as server, chatlab.Client.connect(server.address, nick="alice") as alice, \
            chatlab.Client.connect(server.address, nick="bob") as bob:  # fmt: skip
        alice.wait_for(p.Notice, timeout=5, predicate=lambda n: n.kind == "join" and n.nick == "bob")
        bob.join("team1")
        seen: list = [alice.wait_for(p.Notice, timeout=5)]
        bob.whisper("nobody-here", "hi")
        seen.append(bob.wait_for(p.ErrorMessage, timeout=5))
        with pytest.raises(chatlab.ServerError) as refused:
            bob.join("team1")
        seen.append(refused.value)
        bob.leave()  # back to the lobby, alice's room, to say goodbye there
        seen.append(alice.wait_for(p.Notice, timeout=5, predicate=lambda n: n.kind == "join" and n.nick == "bob"))
        bob.close("bye")
        seen.append(alice.wait_for(p.Notice, timeout=5, predicate=lambda n: n.kind == "quit"))
    for event in seen:
        text = notices.shown_notice(event) if isinstance(event, p.Notice) else notices.shown_error(event)
        assert isinstance(event, p.Notice) or event.code in {"no-such-nick", "already-in-room"}
        assert text != event.text and CJK.search(text), f"no rule for {event!r}"


def test_the_demo_transcript_is_chinese(zh) -> None:
    from chatlab.demo import run_demo

    out = io.StringIO()
    assert run_demo(out=out) == 0
    text = out.getvalue()
    assert "看到了" in text and "演示服务器已停止" in text and "加入了" in text
    assert "seen by" not in text and " joined " not in text.replace("PRIVMSG", "")


def test_figures_use_an_installed_cjk_font(monkeypatch) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    from matplotlib import font_manager

    from chatlab import plotfonts

    fake = font_manager.FontEntry(fname="/fonts/NotoSansCJK-Regular.ttc", name="Noto Sans CJK SC")
    monkeypatch.setattr(font_manager.fontManager, "ttflist", [*font_manager.fontManager.ttflist, fake])
    with matplotlib.rc_context():
        assert plotfonts.use_cjk_font() == "Noto Sans CJK SC"
        assert matplotlib.rcParams["font.sans-serif"][0] == "Noto Sans CJK SC"


def test_without_a_cjk_font_it_says_what_to_install(monkeypatch, zh) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    from matplotlib import font_manager

    from chatlab import plotfonts

    monkeypatch.setattr(font_manager.fontManager, "ttflist",
                        [e for e in font_manager.fontManager.ttflist if e.name not in plotfonts.CJK_FONTS])
    monkeypatch.setattr(sys, "platform", "linux")
    out = io.StringIO()
    with matplotlib.rc_context():
        before = list(matplotlib.rcParams["font.sans-serif"])
        assert plotfonts.use_cjk_font(out) is None
        assert matplotlib.rcParams["font.sans-serif"] == before
    assert "fonts-noto-cjk" in out.getvalue() and "中文字体" in out.getvalue()


@pytest.mark.parametrize("notice, shown", [
    (p.Notice("kick", "bob kicked carol out of #team (spam)", "bob", "#team"), "-- bob 把 carol 踢出了 #team（spam）"),
    (p.Notice("topic", "bob set the topic of #team: lab 3", "bob", "#team"), "-- bob 把 #team 的话题设为：lab 3"),
    (p.Notice("nick", "alice is now known as alicia", "alice"), "-- alice 改名为 alicia"),
    (p.Notice("mode", "bob sets mode +m on #team", "bob", "#team"), "-- bob 把 #team 的模式设为 +m"),
], ids=["kick", "topic", "nick", "mode"])
def test_the_operators_notices_are_shown_in_the_clients_language(zh, notice, shown: str) -> None:
    assert format_event(notice, "me") == shown
