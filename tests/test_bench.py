"""Smoke tests of ``python -m chatlab bench``: every scenario runs at a tiny size and writes its files.

No timing assertions: the numbers only have to be sane (positive, verified).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from chatlab.bench import main
from chatlab.bench.common import PASS, NOT_MET, SKIPPED, fmt, parse_rate, parse_size, percentile, table


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_outputs(out: Path, name: str) -> list[dict[str, str]]:
    assert (out / f"{name}.png").stat().st_size > 1000
    rows = rows_of(out / f"{name}.csv")
    assert rows
    return rows


def test_transfer(tmp_path, capsys):
    assert main(["transfer", "--out", str(tmp_path), "--no-progress", "--size", "2MiB", "--sleep-size", "128KiB",
                 "--reps", "1", "--netem-size", "512KiB", "--rate-mbit", "100", "--rtt-ms", "10"]) == 0
    rows = check_outputs(tmp_path, "transfer")
    methods = {r["method"] for r in rows}
    for strategy in ("sleep", "fixed", "adaptive"):
        assert f"chatlab direct, {strategy}" in methods and f"chatlab via server, {strategy}" in methods
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
    assert "x raw" in out and "x link rate" in out


def test_fanout(tmp_path, capsys):
    assert main(["fanout", "--out", str(tmp_path), "--no-progress", "--clients", "5,20", "--servers", "select,epoll,asyncio",
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
    assert [(r["selector"], int(r["connections"])) for r in rows] == [("select", 5), ("select", 20), ("epoll", 5), ("epoll", 20)]
    for r in rows:
        assert float(r["cpu_us_per_iteration"]) > 0 and float(r["rtt_p50_ms"]) > 0


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
