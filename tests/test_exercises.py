"""The exercise package's public face: every checker importable from chatlab.exercises,
each passing its reference solution, and no reference solution in the wheel students install."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from chatlab import exercises
from solutions.bot import run_bot
from solutions.framing_recv import decode_frames, encode_frame, recv_exact
from solutions.sockopt_select import make_listener, serve_step

ROOT = Path(__file__).resolve().parent.parent


def test_every_checker_is_exported_and_passes_its_reference_solution():
    assert set(exercises.__all__) >= {
        "check_make_listener", "check_select_step", "check_framing", "check_recv_exact", "check_bot",
    }
    assert exercises.check_make_listener(make_listener, show=False)
    assert exercises.check_select_step(serve_step, show=False)
    assert exercises.check_framing(encode_frame, decode_frames, show=False)
    assert exercises.check_recv_exact(recv_exact, show=False)
    assert exercises.check_bot(run_bot, show=False, only="in its room")


def test_nothing_in_the_package_imports_a_solution():
    for path in (ROOT / "chatlab").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "import solution" not in text and ".solutions" not in text, path
    assert not list((ROOT / "chatlab").rglob("solution*.py"))


def test_the_wheel_holds_the_checkers_but_no_solution(tmp_path):
    # Build from a copy, so the worktree gets no build/ or egg-info.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "chatlab", src / "chatlab", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(wheels), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    if done.returncode != 0 and ("No module named" in done.stderr or "invalid command 'bdist_wheel'" in done.stderr):
        pytest.skip(f"cannot build a wheel here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = wheels.glob("chatlab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "chatlab/exercises/recv.py" in names and "chatlab/exercises/bot.py" in names
    modules = [Path(n).stem for n in names if n.endswith(".py")]
    assert not [m for m in modules if m.startswith("solution")], names
