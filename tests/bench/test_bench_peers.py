"""``bench transfer``'s peers (nc, nc + sha256sum, rsync daemon, magic-wormhole) and the bench modules' size."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from chatlab.bench import main, peers, transfer
from chatlab.bench.common import make_file

BENCH = Path(transfer.__file__).resolve().parent


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, str]:
    path = make_file(tmp_path / "source.bin", 3 * 1024 * 1024 + 17)
    return path, sha256(path)


LOCAL_PEERS = [p for p in peers.PEERS if "wormhole" not in p.name]


@pytest.mark.parametrize("peer", LOCAL_PEERS, ids=lambda p: p.name.split(" (")[0])
def test_each_local_peer_copies_the_file_and_says_what_it_checked(peer, source, tmp_path):
    why = peer.missing()
    if why:
        pytest.skip(why)
    path, digest = source
    target = tmp_path / "out" / "copy.bin"
    target.parent.mkdir()
    result = peer.run(path, target, digest)
    assert result.seconds > 0
    assert sha256(target) == digest
    assert result.verified != "MISMATCH"
    if peer.name == peers.NC_SHA:
        assert result.verified == "sha256sum both ends, compared"


def test_nc_sha256_says_mismatch_when_the_digest_is_not_the_file(source, tmp_path):
    if peers.missing_nc_sha():
        pytest.skip(peers.missing_nc_sha())
    path, _ = source
    assert peers.time_nc_sha(path, tmp_path / "copy.bin", "0" * 64).verified == "MISMATCH"


@pytest.mark.slow
@pytest.mark.parametrize("relayed", [False, True], ids=["direct", "relayed"])
def test_magic_wormhole_in_a_namespace_copies_the_file(relayed, source, tmp_path):
    why = peers.missing_wormhole()
    if why:
        pytest.skip(why)
    path, digest = source
    target = tmp_path / "copy.bin"
    result = (peers.time_wormhole_relayed if relayed else peers.time_wormhole)(path, target, digest)
    assert result.seconds > 0 and sha256(target) == digest


def test_missing_tools_are_named_with_how_to_install_them(monkeypatch):
    monkeypatch.setattr(peers.shutil, "which", lambda name: None)
    monkeypatch.setattr(peers, "_beside_python", lambda name: None)
    monkeypatch.setattr(peers, "nc_path", lambda: None)
    assert "apt-get install rsync" in (peers.missing_rsync() or "")
    assert "netcat-openbsd" in (peers.missing_nc() or "")
    assert "apt-get install" in (peers.missing_socat() or "")
    assert "pip install 'chatlab[bench]'" in (peers.missing_wormhole() or "")


def test_a_missing_peer_is_a_skipped_row_with_its_reason(tmp_path, capsys, monkeypatch):
    gone = [p._replace(missing=lambda: "rsync is not installed (apt-get install rsync)") if "rsync" in p.name else p
            for p in peers.PEERS]
    monkeypatch.setattr(transfer, "PEERS", tuple(gone))
    assert main(["transfer", "--out", str(tmp_path), "--no-progress", "--size", "1MiB", "--sleep-size", "64KiB",
                 "--reps", "1", "--no-netem", "--no-profile", "--peers", "rsync"]) == 0
    with open(tmp_path / "transfer.csv", newline="") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert rows[peers.RSYNC]["verified"] == "skipped: rsync is not installed (apt-get install rsync)"
    assert rows[peers.RSYNC_SUM]["reps"] == "0"
    assert peers.NC not in rows  # left out with --peers
    out = capsys.readouterr().out
    assert "[SKIPPED] chatlab direct ahead of rsync and magic-wormhole" in out
    assert "plain nc was not measured" in out


def test_bench_modules_stay_small_and_simple():
    radon_complexity = pytest.importorskip("radon.complexity")
    for name in ("transfer.py", "irc_fanout.py", "peers.py", "profiling.py"):
        text = (BENCH / name).read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 700, name
        blocks = radon_complexity.cc_visit(text)
        functions = [f for b in blocks for f in ([*b.methods, *b.inner_classes] if hasattr(b, "methods") else [b])]
        assert not [(f.name, f.complexity) for f in functions if f.complexity > 15], name
