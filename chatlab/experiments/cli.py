"""Everything at once, and the command line: ``python -m chatlab.experiments [OUT_DIR]``.

:func:`run_all` runs the sweeps of :mod:`.measure` and the chat measurements of
:mod:`.chat` over one :class:`~chatlab.experiments.measure.MeasurementGrid`, then
writes every CSV file (:mod:`.results`) and figure (:mod:`.plots`) into one
directory; :func:`main` is its command line (``--quick``, ``--no-figures``,
``--replot``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .chat import CHAT_CONFIGS, ChatConfig, chat_latency
from .measure import FULL, QUICK, MeasurementGrid, Progress, adaptive_runs, sleep_sweep, window_sweep
from .plots import save_figures
from .results import CSV_FILES, ROW_CLASSES, Results, TransferRow, load_results, write_csv

__all__ = ["run_all", "main"]


def run_all(
    out_dir: str | os.PathLike[str],
    quick: bool = False,
    progress: Progress = print,
    figures: bool = True,
    *,
    grid: MeasurementGrid | None = None,
    chat_configs: Iterable[ChatConfig] = CHAT_CONFIGS,
) -> Results:
    """Run every experiment and write its CSV files (and PNG figures) into ``out_dir``.

    Args:
        out_dir: created if missing; files are named as in :data:`CSV_FILES` and :data:`FIGURE_FILES`.
        quick: the :data:`QUICK` grid (three links, fewer pauses and windows, shorter
            transfers: about a minute) instead of :data:`FULL` (five links, several minutes).
        progress: called with one line per measurement (``print`` by default).
        figures: also save the PNG figures.
        grid: a grid of your own instead of :data:`QUICK` or :data:`FULL` (``quick`` is then ignored).
        chat_configs: the ways of sending a file to measure chat latency under (default: all of
            :data:`CHAT_CONFIGS`).

    Returns:
        The :class:`Results`; ``results.files`` maps each key to the file written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = grid if grid is not None else QUICK if quick else FULL
    results = Results()
    progress(f"SleepPaced sweep over {', '.join(s.links)}")
    results.sleep = sleep_sweep(s.links, s.pauses_ms, s.sleep_chunks, seconds=s.seconds, time_limit=s.time_limit,
                                progress=progress)
    progress("FixedWindow sweep")
    results.window = window_sweep(s.links, s.windows, seconds=s.seconds, time_limit=s.time_limit, progress=progress)
    progress("AdaptiveWindow")
    results.adaptive, results.trace = adaptive_runs(s.links, seconds=s.seconds, time_limit=s.time_limit,
                                                    progress=progress)
    progress(f"chat round-trip time during a transfer ({s.chat_link})")
    results.chat, results.chat_samples = chat_latency(s.chat_link, chat_configs, file_bytes=s.chat_file_bytes,
                                                      progress=progress)
    for key, row_class in ROW_CLASSES.items():
        results.files[key] = write_csv(getattr(results, key), out / CSV_FILES[key], row_class)
    results.files["summary"] = write_csv(results.summary, out / CSV_FILES["summary"], TransferRow)
    if figures:
        results.files.update(save_figures(results, out))
    progress("wrote " + ", ".join(sorted(p.name for p in results.files.values())))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m chatlab.experiments [OUT_DIR] [--quick] [--no-figures] [--replot]``."""
    parser = argparse.ArgumentParser(
        prog="python -m chatlab.experiments",
        description="Measure the file-transfer strategies and chat latency; write CSV and PNG files.",
    )
    parser.add_argument("out_dir", nargs="?", default="data", help="where to write the files (default: data)")
    parser.add_argument("--quick", action="store_true", help="a short run (about a minute) instead of the full one")
    parser.add_argument("--no-figures", action="store_true", help="CSV files only")
    parser.add_argument("--replot", action="store_true", help="measure nothing: redraw the figures from the CSV files")
    args = parser.parse_args(argv)
    if args.replot:
        written = save_figures(load_results(args.out_dir), args.out_dir)
        print("wrote " + ", ".join(sorted(p.name for p in written.values())))
        return 0
    run_all(args.out_dir, quick=args.quick, figures=not args.no_figures)
    return 0
