"""py-spy profiles of a benchmark run: where each process spent its samples (used by ``bench transfer``)."""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    """py-spy on the PATH, or next to this Python (a venv's bin/ need not be on the PATH)."""
    beside = Path(sys.executable).with_name("py-spy")
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def profile_run(run_once: Callable[[], Any], pids: dict[str, int], seconds: float, out: Path, top: int = 12) -> str:
    """Run ``run_once()`` while py-spy samples each of ``pids``; a summary of where each process spent its samples.

    py-spy's raw output is one line per distinct stack with its sample count; the
    summary counts, per process, the samples whose innermost Python function is
    each function ("self" time; native code such as SHA-256 or a system call
    shows as the Python line that called it).
    """
    spy = py_spy()
    if spy is None:
        return "py-spy is not installed (pip install py-spy): no profile"
    procs = {}
    for name, pid in pids.items():
        raw = out.with_name(f"{out.stem}-{name}.raw")
        procs[name] = (raw, subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--rate", "250", "--nonblocking", "--threads", "--format", "raw",
             "--duration", str(max(2, int(seconds) + 2)), "--output", str(raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.0)  # py-spy attaches
    try:
        run_once()
    finally:
        for _raw, proc in procs.values():
            try:
                proc.wait(seconds + 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    lines = []
    for name, (raw, _proc) in procs.items():
        counts: collections.Counter[str] = collections.Counter()
        threads: collections.Counter[str] = collections.Counter()
        total = 0
        try:
            text = raw.read_text()
        except OSError:
            lines.append(f"  {name}: no samples (py-spy could not attach; ptrace may be forbidden here)")
            continue
        for line in text.splitlines():
            stack, _, n = line.rpartition(" ")
            if not n.isdigit():
                continue
            frames = stack.split(";")
            counts[frames[-1]] += int(n)
            threads[frames[0].split(": ", 1)[-1]] += int(n)
            total += int(n)
        if not total:
            lines.append(f"  {name}: no samples")
            continue
        lines.append(f"  {name} ({total} samples; by thread: " +
                     ", ".join(f"{t} {c / total:.0%}" for t, c in threads.most_common(4)) + ")")
        lines += [f"    {c / total:6.1%}  {where}" for where, c in counts.most_common(top)]
    return "\n".join(lines)


__all__ = ["profile_run", "py_spy"]
