"""``chatlab send``'s progress bar and its summary tell the same story, in decimal units with their B."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import chatlab
from chatlab.sendfile import follow

RATE = re.compile(r"([\d.]+)([kMG]?)B/s\]")
SCALE = {"": 1e-6, "k": 1e-3, "M": 1.0, "G": 1e3}


def last_line(bar: str) -> str:
    return bar.replace("\r", "\n").strip().splitlines()[-1]


def mb_per_s(line: str) -> float:
    value, prefix = RATE.search(line).groups()  # type: ignore[union-attr]
    return float(value) * SCALE[prefix]


def test_the_bar_s_last_rate_is_the_summary_s_rate(tmp_path: Path):
    source = tmp_path / "f.bin"
    source.write_bytes(bytes(range(256)) * 20_000)  # 5.12 MB
    (tmp_path / "in").mkdir()
    with chatlab.Server(port=0) as server, chatlab.Client.connect(server.address, "alice") as alice, \
            chatlab.Client.connect(server.address, "bob", download_dir=tmp_path / "in"):
        transfer = alice.send_file(source, "bob")
        out = io.StringIO()
        follow(transfer, 30, file=out)
        stats = transfer.stats
    line = last_line(out.getvalue())
    assert "5.12MB/5.12MB" in line, line  # sizes carry their unit, in decimal MB
    assert abs(mb_per_s(line) - stats.mb_per_s) <= 0.06 * stats.mb_per_s + 0.1, (line, stats)


def test_a_resumed_transfer_counts_only_this_session_s_bytes(tmp_path: Path):
    data = bytes(range(256)) * 20_000
    source = tmp_path / "f.bin"
    source.write_bytes(data)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "f.bin.part").write_bytes(data[:3_000_000])  # an earlier transfer left 3 MB
    with chatlab.Server(port=0) as server, chatlab.Client.connect(server.address, "alice") as alice, \
            chatlab.Client.connect(server.address, "bob", download_dir=tmp_path / "in"):
        transfer = alice.send_file(source, "bob")
        out = io.StringIO()
        follow(transfer, 30, file=out)
        stats = transfer.stats
    assert transfer.resumed_from == 3_000_000
    assert stats.bytes == len(data) - 3_000_000
    first, line = out.getvalue().replace("\r", "\n").strip().splitlines()[0], last_line(out.getvalue())
    assert "3.00MB/5.12MB" in first, first  # the bar starts where the receiver's .part ended
    assert abs(mb_per_s(line) - stats.mb_per_s) <= 0.06 * stats.mb_per_s + 0.1, (line, stats)


def test_piped_output_has_no_bar_fragments(tmp_path: Path):
    source = tmp_path / "f.bin"
    source.write_bytes(b"x" * 200_000)
    (tmp_path / "in").mkdir()
    with chatlab.Server(port=0) as server, \
            chatlab.Client.connect(server.address, "bob", download_dir=tmp_path / "in"):
        host, port = server.address
        done = subprocess.run([sys.executable, "-m", "chatlab", "send", str(source), "--to", "bob", f"{host}:{port}"],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stdout + done.stderr
    assert "the receiver verified its SHA-256" in done.stdout
