"""Smoke tests of ``python -m chatlab bench``: every scenario runs at a tiny size and writes its files.

No timing assertions: the numbers only have to be sane (positive, verified).  The scenario
runs are marked ``slow`` (``pytest -m "not slow"`` leaves them out); the contract and the
helpers are checked in the everyday loop.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import logging
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import chatlab.bench
from chatlab.bench import SCENARIOS, build_parser, main, scenario_module
from chatlab.bench.common import (
    NOT_MET,
    PASS,
    SKIPPED,
    Scenario,
    available_selectors,
    bench_logging,
    expected_warnings,
    fmt,
    iter_progress,
    parse_rate,
    parse_size,
    raise_nofile_limit,
    table,
)
from chatlab.bench.slowpeers import run_slow_peers
from chatlab.server import SELECTORS
from chatlab.stats import percentile

ROOT = Path(__file__).resolve().parents[2]


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_outputs(out: Path, name: str) -> list[dict[str, str]]:
    assert (out / f"{name}.png").stat().st_size > 1000
    rows = rows_of(out / f"{name}.csv")
    assert rows
    return rows


@pytest.mark.slow
def test_transfer(tmp_path, capsys):
    assert main(["transfer", "--out", str(tmp_path), "--no-progress", "--size", "2MiB", "--sleep-size", "128KiB",
                 "--reps", "1", "--netem-size", "512KiB", "--rate-mbit", "100", "--rtt-ms", "10", "--no-profile"]) == 0
    rows = check_outputs(tmp_path, "transfer")
    methods = {r["method"] for r in rows}
    for strategy in ("sleep", "fixed", "adaptive"):
        assert f"chatlab via server, {strategy}" in methods
    # the five rows side by side (nc's two are 'skipped' rows where nc or socat is not installed)
    assert {"nc (file -> file)", "nc through socat (a relay)", "chatlab direct",
            "chatlab via server, one process"} <= methods
    assert {r["via"] for r in rows if r["method"] == "chatlab direct"} == {"direct"}
    for r in rows:
        if r["verified"].startswith("skipped"):
            continue  # nc is not installed here
        assert float(r["mb_per_s"]) > 0
        assert not r["verified"].startswith("MISMATCH")
        if r["method"].startswith("chatlab"):
            assert r["verified"] == "sha256 by receiver"
            assert float(r["chat_p99_ms"]) > 0
    loop = [r for r in rows if r["path"] == "loopback" and r.get("ratio_to_raw")]
    assert any(float(r["ratio_to_raw"]) == 1.0 for r in loop)
    targets = rows_of(tmp_path / "transfer-targets.csv")
    assert {t["status"] for t in targets} <= {PASS, NOT_MET, SKIPPED, "INFO"}
    out = capsys.readouterr().out
    assert "x raw" in out and "x link rate" in out and "side by side" in out


@pytest.mark.slow
def test_fanout(tmp_path, capsys):
    assert main(["fanout", "--out", str(tmp_path), "--no-progress", "--clients", "5,20",
                 "--servers", "select,epoll,asyncio",
                 "--seconds", "0.3", "--senders", "3", "--window", "2"]) == 0
    rows = check_outputs(tmp_path, "fanout")
    assert len(rows) == 6
    for r in rows:
        assert float(r["deliveries_per_s"]) > 0
        assert float(r["latency_p99_ms"]) >= float(r["latency_p50_ms"]) > 0
        assert r["errors"] == ""
    assert all(r["ratio_to_asyncio"] for r in rows)
    assert "delivered/s" in capsys.readouterr().out


def test_scaling_shows_where_select_stops(tmp_path, capsys):
    assert main(["scaling", "--out", str(tmp_path), "--no-progress", "--counts", "5,20", "--selectors", "select,epoll",
                 "--pings", "20"]) == 0
    rows = check_outputs(tmp_path, "scaling")
    assert [(r["selector"], int(r["connections"])) for r in rows] == [("select", 5), ("select", 20),
                                                                      ("epoll", 5), ("epoll", 20)]
    for r in rows:
        assert float(r["cpu_us_per_iteration"]) > 0 and float(r["rtt_p50_ms"]) > 0


@pytest.mark.slow
def test_scaling_select_limit(tmp_path, capsys):
    assert main(["scaling", "--out", str(tmp_path), "--no-progress", "--counts", "1100", "--selectors", "select",
                 "--pings", "10"]) == 0
    rows = rows_of(tmp_path / "scaling.csv")
    assert int(rows[0]["connections"]) < 1024 and "server-full" in rows[0]["note"]
    targets = rows_of(tmp_path / "scaling-targets.csv")
    assert targets[0]["status"] == PASS


def test_memory(tmp_path, capsys):
    assert main(["memory", "--out", str(tmp_path), "--no-progress", "--size", "1MiB", "--rate", "8MB/s"]) == 0
    rows = check_outputs(tmp_path, "memory")
    assert [r["strategy"] for r in rows] == ["sleep", "fixed", "adaptive"]
    for r in rows:
        assert r["verified"] == "sha256 in receiver"
        assert 0 < int(r["peak_queued"]) <= int(r["queue_bound"])
        assert float(r["peak_rss_mib"]) > 0


@pytest.mark.slow
def test_chat_priority_vs_fifo(tmp_path, capsys):
    assert main(["chat", "--out", str(tmp_path), "--no-progress", "--size", "512KiB", "--rate-mbit", "100",
                 "--rtt-ms", "10", "--probe-ms", "10"]) == 0
    rows = check_outputs(tmp_path, "chat")
    assert len(rows) == 6  # 2 strategies x (priority, FIFO, priority without the unsent limit)
    assert {r["writer"] for r in rows} == {"priority", "fifo", "priority, no unsent limit"}
    for r in rows:
        assert r["verified"] == "sha256 by receiver"
        assert int(r["samples"]) > 0


def test_helpers():
    assert parse_size("64MiB") == 64 * 1024 * 1024
    assert parse_size("1GiB") == 1024**3
    assert parse_size("500KB") == 500_000
    assert parse_size("4096") == 4096
    assert parse_rate("4MB/s") == 4e6
    assert parse_rate("50Mbit/s") == 50e6 / 8
    with pytest.raises(ValueError):
        parse_size("lots")
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([], 99) is None
    assert fmt(1234567.0) == "1,234,567" and fmt(0.01234) == "0.0123" and fmt(None) == "-"
    text = table([{"a": "x", "b": 1.5}], [("a", "name"), ("b", "value")])
    assert "name" in text and "1.50" in text


def test_usage_errors(capsys):
    with pytest.raises(SystemExit):
        main(["nonsense"])
    assert main(["all", "--skip", "nonsense"]) == 2


# -- where results go: never over tracked files unless --out says so (issue 10, item 3)


def _git_status() -> str | None:
    if shutil.which("git") is None:
        return None
    done = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=all"],
                          capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def test_a_run_without_out_leaves_the_repository_as_it_was(monkeypatch, capsys):
    before = _git_status()
    if before is None:
        pytest.skip("not a git checkout")
    monkeypatch.chdir(ROOT)  # where a teacher types the README's command
    assert main(["scaling", "--quick", "--no-progress", "--counts", "5", "--selectors", "select", "--pings", "5"]) == 0
    printed = capsys.readouterr().out
    match = re.search(r"results go to (\S+) \(choose with --out DIR", printed)
    assert match, printed
    out = Path(match.group(1))
    try:
        assert (out / "scaling.csv").is_file() and (out / "scaling.png").is_file()
        assert ROOT not in out.resolve().parents
        assert _git_status() == before
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_every_command_defaults_to_a_fresh_folder():
    parser = build_parser()
    for argv in (["all"], *([name] for name in SCENARIOS)):
        assert parser.parse_args(argv).out is None, argv


def test_help_is_written_for_users(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "issue" not in text.lower()
    assert "--out data/bench" in text and "temporary folder" in text


# -- what a run prints (issue 10, item 11)


def test_log_lines_go_through_tqdm_while_bars_run(capsys):
    from tqdm.contrib.logging import _TqdmLoggingHandler

    with bench_logging():
        assert any(isinstance(h, _TqdmLoggingHandler) for h in logging.getLogger().handlers)
        for _ in iter_progress(range(3), "demo"):
            logging.getLogger("chatlab.server").warning("dropping somebody: a test")
    assert not any(isinstance(h, _TqdmLoggingHandler) for h in logging.getLogger().handlers)
    err = capsys.readouterr().err
    assert "dropping somebody: a test" in err


def test_the_slow_peer_scenarios_mark_their_drops_as_expected(caplog):
    caplog.set_level(logging.INFO, logger="chatlab.server")
    with expected_warnings("chatlab.server", ("dropping ",), "on purpose") as expected:
        logging.getLogger("chatlab.server").warning("dropping %s: %s", "loris", "no HELLO in time")
        logging.getLogger("chatlab.server").warning("refusing a connection: full")
    logging.getLogger("chatlab.server").warning("dropping %s: %s", "later", "not expected")
    levels = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert levels == [
        ("INFO", "dropping loris: no HELLO in time (expected: on purpose)"),
        ("WARNING", "refusing a connection: full"),
        ("WARNING", "dropping later: not expected"),
    ]
    assert expected.seen == 1


def test_run_slow_peers_logs_no_warning(caplog):
    caplog.set_level(logging.INFO, logger="chatlab")
    results = run_slow_peers(("slowloris",), hello_timeout=0.5, ping_interval=0.5, ping_timeout=0.5,
                                        trickle_interval=0.2, samples=5)
    assert results and all(r.dropped for r in results)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert any("expected" in r.getMessage() for r in caplog.records), caplog.text


# -- one contract for every scenario (issue 19)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_follows_the_contract(name):
    module = scenario_module(name)
    first_line = (module.__doc__ or "").split("\n")[0]
    assert first_line.startswith(f"``bench {name}``: "), first_line
    assert list(inspect.signature(module.add_arguments).parameters) == ["parser"]
    assert len(inspect.signature(module.run).parameters) == 2
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    parser.parse_args([])  # every option has a default: ``all`` runs it without any
    options = {a.dest for a in parser._actions}
    assert not {"out", "quick", "progress"} & options, "the common options are added once, by chatlab.bench"
    assert not hasattr(module, "main"), "a scenario has no command line of its own"


def _fake_scenario(monkeypatch, errors: list[str]) -> None:
    """Register a scenario ``fake`` made on the contract, as a new one (bench classday) would be."""
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--lines", type=int, default=3)

    def run(args: argparse.Namespace, out: Path) -> Scenario:
        sc = Scenario("fake", "A fake scenario")
        sc.rows = [{"line": i} for i in range(args.lines)]
        sc.verdict("three lines", len(sc.rows) == 3, f"{len(sc.rows)} lines", "")
        sc.errors += errors
        return sc

    module = types.ModuleType("chatlab.bench.fake", "``bench fake``: a scenario made for the tests")
    module.add_arguments, module.run = add_arguments, run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "chatlab.bench.fake", module)
    monkeypatch.setitem(chatlab.bench.SCENARIOS, "fake", "fake")


def test_a_new_scenario_needs_only_its_module_and_an_entry(monkeypatch, tmp_path, capsys):
    _fake_scenario(monkeypatch, errors=[])
    assert main(["fake", "--out", str(tmp_path), "--lines", "3"]) == 0
    out = capsys.readouterr().out
    assert "=== A scenario made for the tests" in out and "[   PASS] three lines: 3 lines." in out
    assert rows_of(tmp_path / "fake-targets.csv")[0]["status"] == PASS


def test_a_scenario_that_finds_errors_makes_the_command_fail(monkeypatch, tmp_path, capsys):
    _fake_scenario(monkeypatch, errors=["2 lines lost"])
    assert main(["fake", "--out", str(tmp_path)]) == 1
    assert "ERROR: 2 lines lost" in capsys.readouterr().out
    skip = ",".join(name for name in SCENARIOS if name != "fake")
    assert main(["all", "--out", str(tmp_path), "--skip", skip]) == 1


def test_the_selector_names_come_from_the_server():
    assert set(available_selectors()) <= set(SELECTORS) and "select" in available_selectors()
    assert build_parser().parse_args(["fanout"]).servers == ",".join([*SELECTORS, "asyncio"])
    assert build_parser().parse_args(["scaling"]).selectors == ",".join(SELECTORS)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["load", "--backend", "kqueue-or-nothing"])


def test_raise_nofile_limit_never_lowers_the_limit():
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert raise_nofile_limit(16) >= soft
    assert raise_nofile_limit() >= soft


def test_load_on_the_contract(tmp_path, capsys):
    assert main(["load", "--out", str(tmp_path), "--no-progress", "--quick", "--no-slow", "--backend", "select",
                 "--clients", "20", "--room-size", "5", "--messages", "3", "--rate", "200", "--server", "thread"]) == 0
    rows = rows_of(tmp_path / "load.csv")
    assert [r["offered"] for r in rows] == ["max", "200/s"]
    assert all(int(r["lost"]) == 0 and int(r["received"]) == int(r["expected"]) > 0 for r in rows)
    targets = rows_of(tmp_path / "load-targets.csv")
    assert {t["status"] for t in targets} <= {PASS, "INFO"} and PASS in {t["status"] for t in targets}
    assert "deliv/s" in capsys.readouterr().out
