"""The Chinese catalog: complete, fresh, placeholder-safe, chosen the documented way, and used.

What a catalog test guards against:

* a message wrapped in ``_()`` in the code but missing from the catalog (the
  code changed and nobody ran ``pybabel extract`` / ``update``): the test
  re-extracts into a temporary folder and compares the msgids;
* a message in the catalog without its Chinese, or still marked fuzzy;
* a translation whose placeholders differ from the English one (``{nick}``
  renamed or dropped: ``str.format`` would raise ``KeyError`` in front of a
  student, or silently lose a number);
* a ``.mo`` that was not recompiled after the ``.po`` changed;
* a ``_()`` call gettext cannot extract (an f-string, a variable), or a
  module that shadows ``_`` with a throwaway variable (``conn, _ = accept()``).

Then, end to end: a checker, the terminal client's ``/help`` and the command
line's errors speak Chinese under ``CHATLAB_LANG=zh`` and English by default.
"""

from __future__ import annotations

import ast
import io
import os
import socket
import string
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

babel = pytest.importorskip("babel")
from babel.messages.mofile import read_mo  # noqa: E402
from babel.messages.pofile import read_po  # noqa: E402

import chatlab  # noqa: E402
import chatlab.terminal  # noqa: E402
from chatlab import i18n  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "chatlab"
POT = PACKAGE / "locale" / "chatlab.pot"
PO = PACKAGE / "locale" / "zh_CN" / "LC_MESSAGES" / "chatlab.po"
MO = PACKAGE / "locale" / "zh_CN" / "LC_MESSAGES" / "chatlab.mo"
LANGUAGE_VARIABLES = ("CHATLAB_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def _load(path: Path):
    with open(path, "rb") as f:
        return read_po(f, locale="zh_CN" if path.suffix == ".po" else None)


def _ids(catalog) -> set:
    return {m.id for m in catalog if m.id}


def _fields(text: str) -> Counter:
    """The replacement fields of a format string, with conversion and spec: ``{n}``, ``{data!r}``, ``{s:.1f}``."""
    found: Counter = Counter()
    for _literal, name, spec, conversion in string.Formatter().parse(text):
        if name is not None:
            found[(name, conversion or "", spec or "")] += 1
    return found


@pytest.fixture
def lang(monkeypatch):
    """Set the language through the environment only, as a student would; restore it afterwards."""
    for variable in LANGUAGE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    i18n.set_language(None)

    def choose(value: str | None) -> None:
        if value is None:
            monkeypatch.delenv("CHATLAB_LANG", raising=False)
        else:
            monkeypatch.setenv("CHATLAB_LANG", value)

    yield choose
    i18n.set_language(None)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LANGUAGE_VARIABLES}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


# --------------------------------------------------------------------------
# The catalog itself
# --------------------------------------------------------------------------


def test_every_message_has_its_chinese():
    catalog = _load(PO)
    missing = [m.id for m in catalog if m.id and not (all(m.string) if isinstance(m.string, tuple) else m.string)]
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert not missing, f"{len(missing)} messages have no Chinese yet, e.g. {missing[:3]}"
    assert not fuzzy, f"fuzzy (unchecked) translations: {fuzzy[:3]}"


def test_catalog_is_fresh_against_the_code(tmp_path):
    """Re-extract the messages from the code now: the .pot and the .po must hold exactly those msgids."""
    out = tmp_path / "fresh.pot"
    result = subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-o", str(out)],
        cwd=ROOT, capture_output=True, text=True, env=_env(),
    )
    assert result.returncode == 0, result.stderr
    fresh = _ids(_load(out))
    assert len(fresh) > 200  # the extraction found the checkers, the terminal client and the CLI
    pot, po = _ids(_load(POT)), _ids(_load(PO))
    hint = "run `pybabel extract && pybabel update && pybabel compile` (docs/TRANSLATING.md)"
    assert fresh - pot == set(), f"wrapped in _() but not in chatlab.pot: {sorted(fresh - pot)[:5]}; {hint}"
    assert pot - fresh == set(), f"in chatlab.pot but gone from the code: {sorted(pot - fresh)[:5]}; {hint}"
    assert fresh - po == set(), f"not in the Chinese catalog: {sorted(fresh - po)[:5]}; {hint}"
    assert po - fresh == set(), f"obsolete in the Chinese catalog: {sorted(po - fresh)[:5]}; {hint}"


def test_placeholders_are_the_english_ones():
    wrong = []
    for m in _load(PO):
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        for form in strings:
            if _fields(form) != _fields(ids[-1]) and _fields(form) != _fields(ids[0]):
                wrong.append((ids[0], form))
    assert not wrong, f"placeholders differ from the English: {wrong[:3]}"


def test_placeholder_check_catches_a_renamed_field():
    assert _fields("{n} bytes") != _fields("{count} 字节")
    assert _fields("got {data!r}") != _fields("得到 {data}")
    assert _fields("{a} and {b}") == _fields("{b} 和 {a}")  # reordering is what named fields are for


def test_compiled_mo_matches_the_po():
    def entries(catalog) -> dict:
        as_tuple = lambda v: tuple(v) if isinstance(v, (list, tuple)) else v  # noqa: E731 (read_mo gives lists)
        return {as_tuple(m.id): as_tuple(m.string) for m in catalog if m.id}

    po = entries(_load(PO))
    with open(MO, "rb") as f:
        mo = entries(read_mo(f))
    assert mo == po, "chatlab.mo is older than chatlab.po: run `pybabel compile` (docs/TRANSLATING.md)"


def test_the_package_data_ships_the_catalogs():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["chatlab"]
    shipped = {p for pattern in patterns for p in PACKAGE.glob(pattern)}
    assert MO in shipped and PO in shipped


# --------------------------------------------------------------------------
# The code: every message extractable, _ never shadowed
# --------------------------------------------------------------------------

_MARKERS = {"_": 1, "N_": 1, "ngettext": 2}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_every_wrapped_message_is_a_literal():
    """``_(f"...")`` or ``_(text)`` cannot be extracted: the student would see English forever.

    One exception: ``_(name)`` of a plain variable in a module that marks its
    English texts with ``N_("...")`` where they are defined (a table of case
    names, the terminal's HELP), which is how gettext translates them later.
    """
    bad = []
    for path, tree in _modules():
        calls = [n for n in ast.walk(tree)
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in _MARKERS]
        defers = any(n.func.id == "N_" for n in calls)
        for node in calls:
            texts = node.args[: _MARKERS[node.func.id]]
            literal = all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in texts)
            deferred = defers and node.func.id == "_" and all(isinstance(a, ast.Name) for a in texts)
            if not (literal or deferred):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:60]}")
    assert not bad, "\n".join(bad)


def test_no_module_shadows_underscore():
    """``conn, _ = sock.accept()`` in a function that also calls ``_()`` breaks it (UnboundLocalError)."""
    bad = []
    for path, tree in _modules():
        imports_it = any(
            isinstance(n, ast.ImportFrom) and n.module and n.module.endswith("i18n")
            and any(a.name == "_" for a in n.names)
            for n in ast.walk(tree)
        )
        if not imports_it:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == "_" and isinstance(node.ctx, ast.Store):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, f"`_` assigned where it is the translation function: {bad}"


# --------------------------------------------------------------------------
# Choosing the language
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag, expected",
    [
        ("zh", "zh_CN"), ("zh_CN", "zh_CN"), ("zh-CN", "zh_CN"), ("zh_CN.UTF-8", "zh_CN"), ("ZH-cn", "zh_CN"),
        ("zh_TW", "zh_CN"), ("zh-Hans", "zh_CN"), ("Chinese (Simplified)_China.936", "zh_CN"),
        ("en", "en"), ("en_US.UTF-8", "en"), ("C", "en"), ("C.UTF-8", "en"), ("POSIX", "en"),
        ("fr_FR", None), ("", None), (None, None),
    ],
)
def test_normalise(tag, expected):
    assert i18n.normalise(tag) == expected


def test_english_is_the_default(lang, monkeypatch):
    monkeypatch.setattr(i18n.locale, "getlocale", lambda *a: (None, None))
    monkeypatch.setattr(i18n, "_windows_ui_language", lambda: None)
    assert i18n.language() == "en"
    assert i18n._("PASS") == "PASS"


@pytest.mark.parametrize("value", ["zh", "zh_CN", "zh-CN", "zh_TW"])
def test_chatlab_lang_chooses_chinese(lang, value):
    lang(value)
    assert i18n.language() == "zh_CN"
    assert i18n._("PASS") == "通过"
    assert i18n._("a message nobody translated") == "a message nobody translated"


def test_chatlab_lang_beats_the_os_locale(lang, monkeypatch):
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert i18n.language() == "zh_CN"
    lang("en")
    assert i18n.language() == "en"


@pytest.mark.parametrize("variable", ["LANG", "LC_ALL", "LC_MESSAGES"])
def test_the_os_locale_chooses_chinese(lang, monkeypatch, variable):
    monkeypatch.setenv(variable, "zh_CN.UTF-8")
    assert i18n.language() == "zh_CN"


def test_language_list_and_unknown_locales(lang, monkeypatch):
    monkeypatch.setenv("LANGUAGE", "fr_FR:zh_CN:en")
    assert i18n.language() == "zh_CN"  # the first language of the list that chatlab has
    monkeypatch.delenv("LANGUAGE")
    monkeypatch.setenv("LANG", "fr_FR.UTF-8")
    assert i18n.language() == "en"  # a language without a catalog: English, as gettext does


def test_set_language_from_a_notebook(lang):
    i18n.set_language("zh")
    assert i18n._("FAIL") == "未通过"
    i18n.set_language("en")
    assert i18n._("FAIL") == "FAIL"
    with pytest.raises(ValueError, match="no catalog"):
        i18n.set_language("klingon")


def test_plural_forms(lang):
    assert i18n.ngettext("{users} online in {rooms} room: ", "{users} online in {rooms} rooms: ",
                         2).startswith("{users}")
    lang("zh")
    assert i18n.ngettext("{users} online in {rooms} room: ", "{users} online in {rooms} rooms: ",
                         2) == "{users} 人在线，{rooms} 个房间："


# --------------------------------------------------------------------------
# What a student sees
# --------------------------------------------------------------------------

_STUB_CHECK = """
from chatlab.exercises import check_framing
def encode_frame(kind, payload):
    raise NotImplementedError()
def decode_frames(buffer):
    raise NotImplementedError()
check_framing(encode_frame, decode_frames)
"""


def _has_chinese(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)


def test_a_checker_prints_chinese_under_chatlab_lang_zh():
    result = subprocess.run([sys.executable, "-c", _STUB_CHECK], capture_output=True, text=True, encoding="utf-8",
                            env=_env(CHATLAB_LANG="zh"), timeout=60)
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr
    assert lines[0] == "check_framing：0/10 个测试用例通过"
    assert all(_has_chinese(line) for line in lines), result.stdout
    assert "[未通过] 帧的字节格式 - 还没写：encode_frame() 仍然抛出 NotImplementedError" in result.stdout


def test_a_checker_prints_english_by_default():
    result = subprocess.run([sys.executable, "-c", _STUB_CHECK], capture_output=True, text=True, encoding="utf-8",
                            env=_env(LANG="C.UTF-8"), timeout=60)
    assert "check_framing: 0/10 cases pass" in result.stdout
    assert "[FAIL] wire format - not written yet" in result.stdout
    assert not _has_chinese(result.stdout)


def test_a_failing_case_explains_in_chinese(lang):
    lang("zh")
    from chatlab.exercises import check_framing

    def encode_frame(kind: int, payload: bytes) -> bytes:
        return bytes([kind]) + len(payload).to_bytes(2, "little") + payload  # little-endian: the classic slip

    def decode_frames(buffer: bytearray) -> list:
        return []

    report = check_framing(encode_frame, decode_frames, show=False)
    wire = report.results[0]
    assert wire.name == "帧的字节格式" and not wire.passed
    assert "网络字节序，即大端序" in wire.detail


def test_terminal_help_is_chinese(lang):
    lang("zh")
    out = io.StringIO()
    with chatlab.Server(port=0) as server:
        code = chatlab.terminal.run_terminal_client(server.address, "小明", input=io.StringIO("/help\n/nonsense\n"),
                                                    output=out)
    text = out.getvalue()
    assert code == 0, text
    assert "昵称 小明；输入 /help 查看命令" in text
    assert "命令：" in text and "/who                   谁在线，各在哪个房间" in text
    assert "未知命令 '/nonsense'：输入 /help 查看命令列表" in text


def test_terminal_help_is_english_by_default(lang):
    lang("en")
    out = io.StringIO()
    with chatlab.Server(port=0) as server:
        chatlab.terminal.run_terminal_client(server.address, "alice", input=io.StringIO("/help\n"), output=out)
    assert "/who                   who is online, and in which room" in out.getvalue()


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatlab", *args], capture_output=True, text=True, encoding="utf-8",
                          env=_env(**env), timeout=60)


def test_cli_errors_are_chinese():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _cli("server", "--port", str(port), CHATLAB_LANG="zh_CN")
    assert result.returncode == 1
    assert f"127.0.0.1 上的端口 {port} 已被占用" in result.stderr
    assert "--port 0 让操作系统挑一个空闲端口" in result.stderr
    assert "无效的端口 '99999'" in _cli("server", "--port", "99999", CHATLAB_LANG="zh").stderr
    sent = _cli("send", "no-such-file.bin", "--to", "bob", "127.0.0.1:1", CHATLAB_LANG="zh-CN")
    assert sent.returncode == 1 and "没有这个文件：no-such-file.bin" in sent.stderr


def test_cli_errors_are_english_by_default():
    result = _cli("server", "--port", "99999", LANG="C.UTF-8")
    assert "invalid port '99999'" in result.stderr


def test_the_terminal_shows_the_client_libraries_reasons_in_chinese(lang):
    from chatlab.client import CLOSED_BY_SERVER

    lang("zh")
    shown = chatlab.terminal.format_event(chatlab.Disconnected(CLOSED_BY_SERVER), "me")
    assert shown == "-- 连接已断开：服务器关闭了连接"
    broken = chatlab.terminal.shown_reason("connection broken: Connection reset by peer")
    assert broken == "连接中断：Connection reset by peer"  # the OS's own words stay as the OS said them
    lang("en")
    assert chatlab.terminal.shown_reason(CLOSED_BY_SERVER) == CLOSED_BY_SERVER


def _unsolved(*args, **kwargs):
    raise NotImplementedError()


async def _unsolved_handler(reader, writer, room):
    raise NotImplementedError()


class _UnsolvedClass:
    def __init__(self, *args):
        raise NotImplementedError()


def _every_checker_on_an_unsolved_exercise():
    from chatlab import exercises as ex

    yield "check_echo_server", lambda: ex.check_echo_server(_unsolved, show=False)
    yield "check_predictions", lambda: ex.check_predictions(_unsolved, show=False)
    yield "check_make_listener", lambda: ex.check_make_listener(_unsolved, show=False)
    yield "check_select_step", lambda: ex.check_select_step(_unsolved, show=False)
    yield "check_framing", lambda: ex.check_framing(_unsolved, _unsolved, show=False)
    yield "check_recv_exact", lambda: ex.check_recv_exact(_unsolved, show=False)
    yield "check_bot", lambda: ex.check_bot(_unsolved, show=False)
    yield "check_send_strategy", lambda: ex.check_send_strategy(_UnsolvedClass, show=False)
    yield "check_chat_delay_prediction", lambda: ex.check_chat_delay_prediction(_unsolved, show=False)
    yield "check_priority_writer", lambda: ex.check_priority_writer(_UnsolvedClass, show=False)
    yield "check_broadcast_handler", lambda: ex.check_broadcast_handler(_unsolved_handler, show=False)
    yield "check_upload_lines", lambda: ex.check_upload_lines(_unsolved, show=False)
    yield "check_tls_client", lambda: ex.check_tls_client(_unsolved, show=False)
    yield "check_pinger", lambda: ex.check_pinger(_unsolved, show=False)


def test_every_checker_speaks_chinese_on_an_unsolved_exercise(lang):
    """Every exported checker, every line of its report: a case name and a hint in Chinese."""
    from chatlab import exercises

    lang("zh")
    runs = dict(_every_checker_on_an_unsolved_exercise())
    checkers = {name for name in exercises.__all__ if name.startswith("check_")}
    assert set(runs) == checkers, f"a checker this test does not run: {sorted(checkers - set(runs))}"
    english = []
    for name, run in runs.items():
        report = run()
        assert report.results and not report, name
        english += [f"{name}: {line}" for line in report.summary().splitlines() if not _has_chinese(line)]
    assert not english, "\n".join(english)
