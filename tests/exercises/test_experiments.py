"""Fast tests of chatlab.experiments (tiny files, short runs) and of the notebook 05 bot checker."""

from __future__ import annotations

import dataclasses
import datetime
import math
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

import chatlab
from chatlab import experiments as ex
from chatlab.core.transfer import AdaptiveWindow, FixedWindow, SleepPaced
from chatlab.exercises.bot import check_bot
from chatlab.experiments.measure import Workspace, chat_setup
from solutions.bot import run_bot as reference_bot

KiB = 1024
TINY = 256 * KiB


# ---------------------------------------------------------------- the package


def test_the_pure_modules_load_no_socket_client_server_or_emulator() -> None:
    """What the exercise checkers import (the simulated link) runs without any network code."""
    code = (
        "import sys\n"
        "import chatlab.experiments.simulation, chatlab.experiments.links, chatlab.experiments.results\n"
        "import chatlab.experiments as ex\n"
        "ex.simulate_transfer, ex.get_link, ex.write_csv\n"
        "heavy = ('socket', 'selectors', 'select', 'chatlab.server', 'chatlab.client', 'chatlab.netem')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_every_public_name_resolves_from_its_module() -> None:
    assert sorted(ex.__all__) == sorted(ex._EXPORTS)
    for name in ex.__all__:
        assert getattr(ex, name) is not None, name
    assert "Settings" not in ex.__all__
    with pytest.raises(AttributeError, match="no attribute 'Settings'"):
        ex.Settings  # noqa: B018  (renamed MeasurementGrid: it is the grid of one run)


@pytest.mark.slow
def test_the_command_line_redraws_the_figures_from_stored_csv_files(tmp_path: Path) -> None:
    data = Path(__file__).resolve().parents[2] / "data"
    for name in ex.CSV_FILES.values():
        if (data / name).exists():
            shutil.copy(data / name, tmp_path / name)
    done = subprocess.run([sys.executable, "-m", "chatlab.experiments", str(tmp_path), "--replot"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote ")
    for name in ex.FIGURE_FILES.values():
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_modules_stay_short_and_functions_simple() -> None:
    """Issue 19's bounds, for the code this package was split from and the functions split with it."""
    radon_complexity = pytest.importorskip("radon.complexity")
    root = Path(ex.__file__).resolve().parent.parent
    files = [*sorted((root / "experiments").glob("*.py")), root / "fourways" / "measure.py",
             root / "core" / "protocol.py"]
    for path in files:
        text = path.read_text(encoding="utf-8")
        if path.parent.name == "experiments":
            assert len(text.splitlines()) <= 700, path.name
        blocks = radon_complexity.cc_visit(text)
        functions = [f for b in blocks for f in ([*b.methods, *b.inner_classes] if hasattr(b, "methods") else [b])]
        complex_ = [(f.name, f.complexity) for f in functions if f.complexity > 15]
        assert not complex_, f"{path.name}: {complex_}"


# ------------------------------------------------------------------ links


def test_links_by_name_and_parsed() -> None:
    assert ex.get_link("loopback").mbit is None
    assert ex.get_link("loopback").profile() is None
    link = ex.get_link("50mbit-40ms")
    assert link.mb_per_s == pytest.approx(6.25)
    assert link.bdp_bytes == pytest.approx(250_000)
    profile = link.profile()
    assert profile is not None and profile.delay == pytest.approx(0.020)  # one way: half the RTT
    custom = ex.get_link("12.5mbit-8ms")
    assert (custom.mbit, custom.rtt_ms, custom.label) == (12.5, 8.0, "12.5 Mbit/s, 8 ms RTT")
    assert ex.get_link(custom) is custom
    with pytest.raises(ValueError):
        ex.get_link("fast-wifi")
    for name in ex.FULL_LINKS + ex.QUICK_LINKS + (ex.CHAT_LINK,):
        assert name in ex.LINKS


def test_file_sizes_follow_the_link() -> None:
    assert ex.get_link("10mbit-5ms").file_bytes(1.0) == 1_250_000
    assert ex.get_link("10mbit-5ms").file_bytes(0.001) == ex.MIN_FILE
    assert ex.get_link("loopback").file_bytes(100.0, max_bytes=2_000_000) == 2_000_000


# --------------------------------------------------------------- transfers


def _sane(row: ex.TransferRow, file_bytes: int) -> None:
    assert row.file_bytes == file_bytes
    assert row.completed
    assert row.bytes_acked == file_bytes
    assert row.seconds > 0 and row.mb_per_s > 0
    assert row.mb_per_s == pytest.approx(row.bytes_acked / row.seconds / 1e6, rel=1e-4)  # rows keep 6 digits
    assert row.rtt_min_ms is not None and row.rtt_p50_ms is not None and row.rtt_max_ms is not None
    assert 0 <= row.rtt_min_ms <= row.rtt_p50_ms <= row.rtt_max_ms
    assert 0 < row.max_in_flight <= file_bytes


def test_measure_each_strategy_on_loopback() -> None:
    sleep = ex.measure_transfer("sleep", "loopback", file_bytes=TINY, pause=0.001, chunk_size=16 * KiB).row
    _sane(sleep, TINY)
    assert (sleep.strategy, sleep.pause_ms, sleep.window_chunks, sleep.chunk_size) == ("sleep", 1.0, None, 16 * KiB)
    assert sleep.setting == "16 KiB / 1 ms"

    fixed = ex.measure_transfer(FixedWindow(4, 16 * KiB), "loopback", file_bytes=TINY, experiment="window").row
    _sane(fixed, TINY)
    assert (fixed.experiment, fixed.strategy, fixed.window_chunks, fixed.pause_ms) == ("window", "fixed", 4, None)
    assert fixed.max_in_flight <= 4 * 16 * KiB

    result = ex.measure_transfer(AdaptiveWindow(16 * KiB), "loopback", file_bytes=TINY)
    _sane(result.row, TINY)
    assert result.row.mean_window is not None and result.row.mean_window >= 16 * KiB
    assert result.trace and result.trace[-1].bytes_acked == TINY


def test_measure_through_the_link_emulator() -> None:
    row = ex.measure_transfer(FixedWindow(8, 16 * KiB), "50mbit-5ms", file_bytes=TINY).row
    _sane(row, TINY)
    assert (row.link, row.link_mbit, row.link_rtt_ms, row.link_mb_per_s) == ("50mbit-5ms", 50, 5, 6.25)
    assert row.rtt_min_ms is not None and row.rtt_min_ms >= 5 * 0.9  # no ack comes back before the link's round trip


def test_time_limit_stops_a_slow_transfer_and_reports_so_far() -> None:
    start = time.monotonic()
    row = ex.measure_transfer(SleepPaced(16 * KiB, 0.1), "loopback", file_bytes=TINY, time_limit=0.35).row
    assert time.monotonic() - start < 5
    assert not row.completed
    assert 0 < row.bytes_acked < TINY
    assert row.mb_per_s == pytest.approx(row.bytes_acked / row.seconds / 1e6, rel=1e-4)  # rows keep 6 digits


def test_sweeps_return_one_row_per_setting() -> None:
    sleep = ex.sleep_sweep(["loopback"], [0, 2], [16 * KiB], seconds=0.001, time_limit=5)
    assert [(r.experiment, r.pause_ms) for r in sleep] == [("sleep", 0.0), ("sleep", 2.0)]
    window = ex.window_sweep(["loopback"], [1, 4], seconds=0.001, time_limit=5)
    assert [(r.experiment, r.window_chunks, r.chunk_size) for r in window] == [
        ("window", 1, ex.CHUNK),
        ("window", 4, ex.CHUNK),
    ]
    adaptive, points = ex.adaptive_runs(["loopback"], seconds=0.001, time_limit=5)
    assert [r.experiment for r in adaptive] == ["adaptive"]
    assert points[0].time == 0 and points[0].link == "loopback"
    assert all(a.time <= b.time and a.bytes_acked <= b.bytes_acked for a, b in zip(points, points[1:]))
    assert points[-1].bytes_acked == adaptive[0].file_bytes
    for row in sleep + window + adaptive:
        assert row.completed and row.bytes_acked == row.file_bytes == ex.MIN_FILE
    summary = ex.summary_rows(
        sleep + [dataclasses.replace(sleep[0], pause_ms=ex.SUMMARY_SLEEP["pause_ms"])],
        window + [dataclasses.replace(window[0], window_chunks=ex.SUMMARY_WINDOW["window_chunks"])],
        adaptive,
    )
    assert [r.strategy for r in summary] == ["sleep", "fixed", "adaptive"]


# -------------------------------------------------------------------- chat


def test_chat_latency_rows() -> None:
    configs = [c for c in ex.CHAT_CONFIGS if c.name in ("idle", "fifo", "priority-no-limit", "second-connection")]
    summaries, samples = ex.chat_latency("50mbit-5ms", configs, file_bytes=512 * KiB, interval=0.02, idle_seconds=0.2)
    assert [s.config for s in summaries] == ["idle", "fifo", "priority-no-limit", "second-connection"]
    for s in summaries:
        assert s.pings > 0 and s.lost == 0
        assert s.link == "50mbit-5ms" and s.link_rtt_ms == 5
        assert s.p50_ms is not None and s.p99_ms is not None and s.max_ms is not None
        assert 5 * 0.9 <= s.p50_ms <= s.p99_ms <= s.max_ms
    idle, fifo, no_limit, second = summaries
    assert idle.file_bytes == 0 and idle.mb_per_s is None
    assert fifo.writer == "fifo" and fifo.file_bytes == 512 * KiB and (fifo.mb_per_s or 0) > 0
    assert fifo.unsent_limit == (ex.UNSENT_LIMIT if ex.HAS_UNSENT_LIMIT else None)  # chatlab's default
    assert no_limit.writer == "priority" and no_limit.unsent_limit is None
    assert second.second_connection
    assert {s.config for s in samples} == {c.name for c in configs}
    assert sum(s.config == "fifo" for s in samples) == fifo.pings


def test_chat_configs() -> None:
    names = [c.name for c in ex.CHAT_CONFIGS]
    assert len(set(names)) == len(names)
    assert set(ex.TIMELINE_CONFIGS) <= set(names)
    by_name = {c.name: c for c in ex.CHAT_CONFIGS}
    assert by_name["priority-no-limit"].unsent_limit is None
    assert by_name["priority"].unsent_limit == ex.UNSENT_LIMIT == chatlab.client.UNSENT_LIMIT
    assert by_name["priority"].options == by_name["priority-no-limit"].options == by_name["fifo"].options


@pytest.mark.skipif(not ex.HAS_UNSENT_LIMIT, reason="no TCP_NOTSENT_LOWAT on this OS")
def test_unsent_limit_reaches_the_sockets(tmp_path: Path) -> None:
    def lowat(client: chatlab.Client) -> int | None:
        return client.unsent_limit  # the kernel's TCP_NOTSENT_LOWAT, read back from the socket

    ws = Workspace(str(tmp_path))
    with chat_setup(ex.get_link("loopback"), ws, second_connection=True) as setup:
        assert lowat(setup.alice) == lowat(setup.sender) == ex.UNSENT_LIMIT
    with chat_setup(ex.get_link("loopback"), ws, unsent_limit=32 * KiB) as setup:
        assert lowat(setup.alice) == 32 * KiB
    with chat_setup(ex.get_link("loopback"), ws, unsent_limit=None) as setup:
        assert lowat(setup.alice) != ex.UNSENT_LIMIT  # the OS default (Linux: unlimited)


# --------------------------------------------------------------------- CSV


def test_csv_round_trip(tmp_path: Path) -> None:
    row = ex.TransferRow(
        "sleep", "loopback", None, 0.0, "sleep", 16384, 0.0, None, 1000, 1000, 0.5, 0.002, True,
        None, 1.25, 3.0, 16384, None, 0,
    )  # fmt: skip
    other = dataclasses.replace(
        row, link="10mbit-5ms", link_mbit=10.0, link_rtt_ms=5.0, completed=False, rtt_min_ms=5.5
    )
    rows = [row, other]
    path = ex.write_csv(rows, tmp_path / "sub" / "rows.csv")
    assert path.read_text().splitlines()[0].split(",") == [f.name for f in dataclasses.fields(ex.TransferRow)]
    back = ex.read_csv(path, ex.TransferRow)
    assert back == rows
    assert back[0].link_mbit is None and back[1].completed is False
    assert ex.read_csv(path)[0]["link_mbit"] == ""  # without a class: strings

    points = [ex.TracePoint("x", 0.0, 0, 0, 32768, None), ex.TracePoint("x", 0.1, 16384, 0, 32768, 12.5)]
    assert ex.read_csv(ex.write_csv(points, tmp_path / "t.csv"), ex.TracePoint) == points
    empty = ex.write_csv([], tmp_path / "empty.csv", ex.ChatSample)
    assert ex.read_csv(empty, ex.ChatSample) == []
    assert empty.read_text().strip() == "config,time,rtt_ms"


@pytest.mark.slow
def test_run_all_writes_and_reloads(tmp_path: Path) -> None:
    tiny = ex.MeasurementGrid(
        ("loopback", "50mbit-5ms"), (0, 5), (16 * KiB,), (1, 8), 0.001, 5.0, "50mbit-5ms", 256 * KiB
    )
    configs = tuple(c for c in ex.CHAT_CONFIGS if c.name in ("fifo", "adaptive"))
    lines: list[str] = []
    results = ex.run_all(tmp_path, progress=lines.append, grid=tiny, chat_configs=configs)
    assert lines and lines[-1].startswith("wrote ")
    for key, name in ex.CSV_FILES.items():
        assert (tmp_path / name).is_file(), name
        assert results.files[key] == tmp_path / name
    for name in ex.FIGURE_FILES.values():
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    loaded = ex.load_results(tmp_path)
    assert loaded.sleep == results.sleep and loaded.window == results.window and loaded.adaptive == results.adaptive
    assert len(loaded.trace) == len(results.trace)
    assert [c.config for c in loaded.chat] == ["fifo", "adaptive"]
    assert len(loaded.sleep) == 4 and len(loaded.window) == 4 and len(loaded.adaptive) == 2
    summary = ex.read_csv(tmp_path / ex.CSV_FILES["summary"], ex.TransferRow)
    assert [r.strategy for r in summary] == ["sleep", "sleep", "fixed", "fixed", "adaptive", "adaptive"]
    assert all(math.isfinite(r.mb_per_s) and r.mb_per_s > 0 for r in summary)


def test_load_results_of_an_empty_directory(tmp_path: Path) -> None:
    results = ex.load_results(tmp_path)
    assert results.sleep == [] and results.chat == [] and results.summary == []


# --------------------------------------------------------------- the bot


def test_bot_checker_passes_the_reference() -> None:
    report = check_bot(reference_bot, show=False)
    assert report, report.summary()
    assert report.passed == 8


# The classic wrong answers to notebook 05's exercise.  Each must fail the
# checker, in the cases named, with a hint that names the idea it misses
# without writing the bot for the student.


def _naive_bot(bot: chatlab.Client, stop: threading.Event) -> None:
    # Answers any line containing !time, its own included, and answers whispers in the room.
    while not stop.is_set():
        try:
            message = bot.wait_for((chatlab.ChatMessage, chatlab.PrivateMessage), timeout=0.2)
        except TimeoutError:
            continue
        except chatlab.ConnectionClosed:
            return
        if "!time" in message.text:
            bot.say(time.strftime("the time is %H:%M:%S"))


def _bot(*, whispers: bool = True, own_lines: bool = False, strip: bool = True, stop_checked: bool = True,
         closed_returns: bool = True, timeout_returns: bool = False, whisper_in_room: bool = False,
         text: str = "the time is %H:%M:%S") -> Callable[[chatlab.Client, threading.Event], None]:
    """The reference bot with one classic mistake switched on."""
    kinds = (chatlab.ChatMessage, chatlab.PrivateMessage) if whispers else chatlab.ChatMessage

    def run_bot(bot: chatlab.Client, stop: threading.Event) -> None:
        while not stop_checked or not stop.is_set():
            try:
                message = bot.wait_for(kinds, timeout=0.2)
            except TimeoutError:
                if timeout_returns:
                    return
                continue
            except chatlab.ConnectionClosed:
                if closed_returns:
                    return
                raise
            if message.sender == bot.nick and not own_lines:
                continue
            if (message.text.strip() if strip else message.text) != "!time":
                continue
            answer = time.strftime(text)
            if isinstance(message, chatlab.PrivateMessage) and not whisper_in_room:
                bot.whisper(message.sender, answer)
            else:
                bot.say(answer)

    return run_bot


def _deaf_bot(bot: chatlab.Client, stop: threading.Event) -> None:
    # Blocks forever in wait_for and lets ConnectionClosed escape.
    while True:
        message = bot.wait_for(chatlab.ChatMessage, timeout=1e9)
        if message.sender != bot.nick and message.text.strip() == "!time":
            bot.say(time.strftime("the time is %H:%M:%S"))


def _crashes_on_whispers(bot: chatlab.Client, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            message = bot.wait_for((chatlab.ChatMessage, chatlab.PrivateMessage), timeout=0.2)
        except TimeoutError:
            continue
        except chatlab.ConnectionClosed:
            return
        if message.sender != bot.nick and message.text.strip() == "!time":
            print(f"asked in {message.room}")  # a whisper has no room: AttributeError
            bot.say(time.strftime("the time is %H:%M:%S"))


def _answers_once_then_returns(bot: chatlab.Client, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            message = bot.wait_for(chatlab.ChatMessage, timeout=0.2)
        except TimeoutError:
            continue
        except chatlab.ConnectionClosed:
            return
        if message.sender != bot.nick and message.text.strip() == "!time":
            bot.say(time.strftime("the time is %H:%M:%S"))
            return  # BUG: one answer and the bot is gone


def _swallows_every_error(bot: chatlab.Client, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            message = bot.wait_for((chatlab.ChatMessage, chatlab.PrivateMessage), timeout=0.2)
            if message.sender != bot.nick and message.text.strip() == "!time":
                bot.say(time.strftime("the time is %H:%M:%S"))
        except Exception:  # BUG: ConnectionClosed too, so a bot whose server is gone spins on
            continue


def _whispers_to_itself(bot: chatlab.Client, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            message = bot.wait_for((chatlab.ChatMessage, chatlab.PrivateMessage), timeout=0.2)
        except TimeoutError:
            continue
        except chatlab.ConnectionClosed:
            return
        if message.sender == bot.nick or message.text.strip() != "!time":
            continue
        if isinstance(message, chatlab.PrivateMessage):
            bot.whisper(message.to, time.strftime("the time is %H:%M:%S"))  # BUG: `to` is the bot itself
        else:
            bot.say(time.strftime("the time is %H:%M:%S"))


def _returns_after_1s_silence(bot: chatlab.Client, stop: threading.Event) -> None:
    """From a reviewer's attempts to fool the checker: a 1 s wait_for timeout taken for 'done'."""
    while not stop.is_set():
        try:
            message = bot.wait_for((chatlab.ChatMessage, chatlab.PrivateMessage), timeout=1.0)
        except TimeoutError:
            return  # BUG: one second of silence ends the bot
        except chatlab.ConnectionClosed:
            return
        if message.sender != bot.nick and message.text.strip() == "!time":
            bot.say(time.strftime("the time is %H:%M:%S"))


def _catch_all_return(bot: chatlab.Client, stop: threading.Event) -> None:
    """From a reviewer's attempts to fool the checker: any error, a 1 s timeout too, ends the bot."""
    while not stop.is_set():
        try:
            message = bot.wait_for((chatlab.ChatMessage, chatlab.PrivateMessage), timeout=1.0)
            if message.sender != bot.nick and message.text.strip() == "!time":
                bot.say(time.strftime("the time is %H:%M:%S"))
        except Exception:
            return


def _answers_in_utc(bot: chatlab.Client, stop: threading.Event) -> None:
    """From a reviewer's attempts to fool the checker: UTC, which a machine that keeps UTC cannot tell apart."""
    while not stop.is_set():
        try:
            message = bot.wait_for((chatlab.ChatMessage, chatlab.PrivateMessage), timeout=0.2)
        except TimeoutError:
            continue
        except chatlab.ConnectionClosed:
            return
        if message.sender == bot.nick or message.text.strip() != "!time":
            continue
        now = datetime.datetime.now(datetime.timezone.utc)  # BUG: the exercise asks for local time
        answer = now.strftime("the time is %H:%M:%S")
        if isinstance(message, chatlab.PrivateMessage):
            bot.whisper(message.sender, answer)
        else:
            bot.say(answer)


def _reviewer_bot(*, own: str | None = None, reply_to: str | None = None, fixed_answer: bool = False,
                  poll: float = 0.2) -> Callable[[chatlab.Client, threading.Event], None]:
    """From a reviewer's attempts to fool the checker: one mistake each (a hard-coded nick, a hard-coded
    person to whisper to, the time read once at the start, wait_for with timeout 0 in a tight loop)."""
    started = time.strftime("the time is %H:%M:%S")

    def run_bot(bot: chatlab.Client, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                message = bot.wait_for((chatlab.ChatMessage, chatlab.PrivateMessage), timeout=poll)
            except TimeoutError:
                continue
            except chatlab.ConnectionClosed:
                return
            if message.sender == (own or bot.nick) or message.text.strip() != "!time":
                continue
            answer = started if fixed_answer else time.strftime("the time is %H:%M:%S")
            if isinstance(message, chatlab.PrivateMessage):
                bot.whisper(reply_to or message.sender, answer)
            else:
                bot.say(answer)

    return run_bot


BOT_WRONG_ANSWERS = [
    # (name, run_bot, the cases that must fail, words the hint must hold)
    ("answers anything containing !time, itself included", _naive_bot,
     ("ignores other lines", "never answers itself", "whisper"), "merely contains"),
    ("answers its own lines", _bot(own_lines=True), ("never answers itself",), "sends every line back to its sender"),
    ("no spaces allowed around the command", _bot(strip=False), ("ignores other lines",), "spaces around"),
    ("waits for room lines only", _bot(whispers=False), ("whisper",), "different kind of message"),
    ("answers a whisper in the room", _bot(whisper_in_room=True), ("whisper",), "went to the whole room"),
    ("never looks at stop", _bot(stop_checked=False), ("stop is set",), "notice stop"),
    ("lets ConnectionClosed escape", _bot(closed_returns=False), ("server goes away",), "normal end"),
    ("blocks in wait_for forever", _deaf_bot, ("stop is set", "server goes away"), "even while nobody says"),
    ("returns at the first silence", _bot(timeout_returns=True), ("in its room",), "through any stretch of silence"),
    ("returns after 1 s of silence", _returns_after_1s_silence, ("in its room",), "means nobody spoke"),
    ("a catch-all except returns", _catch_all_return, ("in its room",), "means nobody spoke"),
    ("a wrong answer format", _bot(text="It is %H:%M"), ("in its room",), "should read 'the time is HH:MM:SS'"),
    ("crashes on a whisper", _crashes_on_whispers, ("whisper",), "AttributeError"),
    ("answers once, then returns", _answers_once_then_returns, ("each of two people",), "should still be running"),
    ("swallows ConnectionClosed with every other error", _swallows_every_error, ("server goes away",),
     "a closed connection is the end"),
    ("whispers the answer to message.to", _whispers_to_itself, ("whisper",), "a whisper's sender is the person"),
    ("its own nick hard-coded", _reviewer_bot(own="timebot"), ("never answers itself",), "whatever it connected with"),
    ("always whispers to alice", _reviewer_bot(reply_to="alice"), ("whisper",), "not to carol who asked"),
    ("the time read once, at the start", _reviewer_bot(fixed_answer=True), ("in its room",),
     "older than the question"),
    ("wait_for with timeout 0 in a tight loop", _reviewer_bot(poll=0), ("in its room",), "keeps a CPU core busy"),
    ("the time in UTC", _answers_in_utc, ("in its room",), "the time in UTC"),
    ("a 12-hour clock without AM/PM", _bot(text="the time is %I:%M:%S"), ("in its room",), "12-hour clock"),
]


@pytest.mark.parametrize("name, run_bot, must_fail, hint", BOT_WRONG_ANSWERS, ids=[row[0] for row in BOT_WRONG_ANSWERS])
def test_bot_checker_fails_a_classic_wrong_answer(name: str, run_bot: Any, must_fail: tuple[str, ...],
                                                  hint: str) -> None:
    results = []
    for case in must_fail:
        report = check_bot(run_bot, show=False, only=case)
        assert report.results and not report, report.summary()
        results += report.results
    assert hint in " | ".join(r.detail for r in results), "\n".join(f"{r.name}: {r.detail}" for r in results)


def test_bot_checker_fails_a_naive_bot_in_exactly_three_cases() -> None:
    report = check_bot(_naive_bot, show=False)
    failed = {r.name for r in report.results if not r.passed}
    assert failed == {
        "ignores other lines, even ones containing !time",
        "never answers itself",
        "answers a whisper with a whisper, to that person only",
    }
    assert not report


def test_bot_checker_hints_do_not_write_the_bot() -> None:
    # Issue 11: the checker points at the idea, never at the code that answers the exercise.
    source = Path(check_bot.__code__.co_filename).read_text(encoding="utf-8")
    messages = source[source.index("class _Harness"):]
    for giveaway in ("bot.nick", ".strip()", "wait_for", "timeout=0.2", "except ConnectionClosed", "catch "):
        for line in messages.splitlines():
            if '"' in line and giveaway in line.split('"', 1)[1]:
                raise AssertionError(f"a message of check_bot gives away {giveaway!r}: {line.strip()}")


def test_bot_checker_reports_a_crash_and_unknown_filters() -> None:
    def crashing(bot: chatlab.Client, stop: threading.Event) -> None:
        raise RuntimeError("boom")

    report = check_bot(crashing, show=False, only="in its room")
    assert not report and "RuntimeError: boom" in report.results[0].detail
    with pytest.raises(ValueError):
        check_bot(reference_bot, show=False, only="no such case")
