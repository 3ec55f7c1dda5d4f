"""``bench sweep``: the throughput sweeps and chat latencies behind notebooks 06 and 07.

:func:`chatlab.experiments.run_all`: the sleep-paced sweep over pauses and
chunk sizes, the fixed-window sweep, the adaptive window, and the chat round
trip during a transfer for each writer, on emulated links.  Its CSV and PNG
files go to ``OUT/sweep/`` (``--out data/bench`` refreshes ``data/bench/sweep/``,
which the notebooks read).  It checks no target of its own: the notebooks
discuss its figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Scenario


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options beyond ``--out`` and ``--quick`` (the quick grid: three links, about a minute)."""


def run(args: argparse.Namespace, out: Path) -> Scenario:
    from ..experiments import run_all  # the experiments load the client, the server and the link emulator

    sc = Scenario("sweep", "Throughput sweeps and chat latency during transfers")
    folder = out / "sweep"
    run_all(folder, quick=args.quick)  # it prints each measurement and the names of the files it wrote
    sc.files.append(folder)
    sc.notes.append("the figures of notebooks 06 and 07")
    return sc
