"""The measurements behind notebooks 06 and 07, shared with the benchmarks.

Notebook 06 asks how fast a file goes with each sending strategy, notebook 07
how long a chat line waits while a file is being sent.  Both answers come from
real transfers: a :class:`chatlab.Server` on a free loopback port, a sender
``alice`` and a receiver ``bob``, and (except on plain loopback) a
:class:`chatlab.netem.LinkEmulator` on alice's side, so her bytes cross a link
with a rate and a round-trip time like a real one::

    alice --[ LinkEmulator: rate, delay, queue ]--> server --> bob (loopback)
          <-------------- acks, chat echoes ------------------

The package, one concern a module (pure ones first: they load no socket):

``links``       ``Link(name, mbit, rtt_ms)``, ``LINKS`` (name -> Link), ``get_link(name_or_link)``
                (also parses ``"20mbit-20ms"``), ``QUICK_LINKS``, ``FULL_LINKS``.  Pure.
``simulation``  ``simulate_transfer(strategy, link, file_bytes) -> SimulatedRun``: any
                :class:`~chatlab.core.transfer.SendStrategy` on a simulated bottleneck (a FIFO
                queue, a rate, a round-trip delay) on a fake clock: milliseconds per run, the
                same numbers everywhere; the exercise checkers of notebook 06 use it.  Pure.
``results``     the rows (``TransferRow``, ``TracePoint``, ``ChatSummary``, ``ChatSample``),
                ``summary_rows(sleep, window, adaptive)``, ``write_csv(rows, path)``,
                ``read_csv(path, RowClass)``, ``CSV_FILES``, ``Results``, ``load_results(directory)``.  Pure.
``measure``     real transfers: ``measure_transfer(strategy, link, *, seconds, ...) -> TransferResult``
                (``.row``: a TransferRow, ``.trace``: the strategy's TraceRows); the sweeps
                ``sleep_sweep``, ``window_sweep``, ``adaptive_runs`` (each a list of TransferRow;
                defaults: the ``QUICK`` grid); ``MeasurementGrid``, ``QUICK`` and ``FULL``: the
                two grids ``run_all`` uses; ``measure_sendall(link, file_bytes) -> SendallResult``:
                one ``sendall()`` on a plain TCP connection of its own (TCP's own flow control).
``chat``        ``chat_latency(link, configs, file_bytes, interval) -> (summaries, samples)``:
                chat round-trip time during a transfer for each ``ChatConfig`` in ``CHAT_CONFIGS``.
``plots``       ``plot_sleep_sweep``, ``plot_window_sweep``, ``plot_adaptive_trace``,
                ``plot_summary``, ``plot_chat_latency``, ``plot_chat_timeline`` (each returns a
                Figure), ``save_figures(results, out_dir)``, ``FIGURE_FILES``.
``cli``         ``run_all(out_dir, quick=False, progress=print) -> Results`` runs everything and
                writes every CSV and PNG into ``out_dir``; ``main``, the command line.

Every name above is also here, ``chatlab.experiments.<name>`` (the benchmarks and the
notebooks import them so; names and fields do not change).  They load on first use
(PEP 562): ``import chatlab.experiments.simulation`` loads neither the client, nor the
server, nor the link emulator, nor ``socket``.

From a shell: ``python -m chatlab.experiments data`` (``--quick`` for a short
run, about a minute) re-measures on your own machine and rewrites the CSV
files and figures in ``data/``; ``--replot`` only redraws the figures from the
CSV files already there.

Units: sizes in bytes, throughput in MB/s (10**6 bytes per second, what
``TransferStats.mb_per_s`` reports; 1 Mbit/s is 0.125 MB/s), times in
milliseconds in the rows, seconds in arguments.

Everything here is timing: expect different numbers on every run and every
machine, and more noise on a busy one.  The shapes of the curves are the
lesson, not the third digit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module of this package that defines it
_EXPORTS = {
    "KiB": ".links", "MiB": ".links", "Link": ".links", "LINKS": ".links", "QUICK_LINKS": ".links",
    "FULL_LINKS": ".links", "CHAT_LINK": ".links", "MIN_FILE": ".links", "get_link": ".links",
    "FRAME_OVERHEAD": ".simulation", "SimulatedRun": ".simulation", "simulate_transfer": ".simulation",
    "TransferRow": ".results", "TracePoint": ".results", "ChatSummary": ".results", "ChatSample": ".results",
    "Results": ".results", "CSV_FILES": ".results", "CHUNK": ".results", "SUMMARY_SLEEP": ".results",
    "SUMMARY_WINDOW": ".results", "summary_rows": ".results", "write_csv": ".results", "read_csv": ".results",
    "load_results": ".results",
    "HAS_UNSENT_LIMIT": ".measure", "UNSENT_LIMIT": ".measure", "TransferResult": ".measure",
    "measure_transfer": ".measure", "sleep_sweep": ".measure", "window_sweep": ".measure",
    "adaptive_runs": ".measure", "MeasurementGrid": ".measure", "QUICK": ".measure", "FULL": ".measure",
    "SendallResult": ".measure", "measure_sendall": ".measure",
    "ChatConfig": ".chat", "CHAT_CONFIGS": ".chat", "chat_latency": ".chat",
    "FIGURE_FILES": ".plots", "TIMELINE_CONFIGS": ".plots", "plot_sleep_sweep": ".plots",
    "plot_window_sweep": ".plots", "plot_adaptive_trace": ".plots", "plot_summary": ".plots",
    "plot_chat_latency": ".plots", "plot_chat_timeline": ".plots", "save_figures": ".plots",
    "run_all": ".cli", "main": ".cli",
}  # fmt: skip

__all__ = [  # the same names as _EXPORTS, written out for linters and `from chatlab.experiments import *`
    "KiB", "MiB", "Link", "LINKS", "QUICK_LINKS", "FULL_LINKS", "CHAT_LINK", "MIN_FILE", "get_link", "FRAME_OVERHEAD",
    "SimulatedRun", "simulate_transfer", "TransferRow", "TracePoint", "ChatSummary", "ChatSample", "Results",
    "CSV_FILES", "CHUNK", "SUMMARY_SLEEP", "SUMMARY_WINDOW", "summary_rows", "write_csv", "read_csv", "load_results",
    "HAS_UNSENT_LIMIT", "UNSENT_LIMIT", "TransferResult", "measure_transfer", "sleep_sweep", "window_sweep",
    "adaptive_runs", "MeasurementGrid", "QUICK", "FULL", "SendallResult", "measure_sendall", "ChatConfig",
    "CHAT_CONFIGS", "chat_latency", "FIGURE_FILES", "TIMELINE_CONFIGS", "plot_sleep_sweep", "plot_window_sweep",
    "plot_adaptive_trace", "plot_summary", "plot_chat_latency", "plot_chat_timeline", "save_figures", "run_all",
    "main",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    """Load ``chatlab.experiments.<name>`` from its module the first time it is asked for."""
    try:
        module_name = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'chatlab.experiments' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:  # what type checkers and editors see: the same names, imported eagerly
    from .chat import CHAT_CONFIGS, ChatConfig, chat_latency
    from .cli import main, run_all
    from .links import CHAT_LINK, FULL_LINKS, LINKS, MIN_FILE, QUICK_LINKS, KiB, Link, MiB, get_link
    from .measure import (
        FULL,
        HAS_UNSENT_LIMIT,
        QUICK,
        UNSENT_LIMIT,
        MeasurementGrid,
        SendallResult,
        TransferResult,
        adaptive_runs,
        measure_sendall,
        measure_transfer,
        sleep_sweep,
        window_sweep,
    )
    from .plots import (
        FIGURE_FILES,
        TIMELINE_CONFIGS,
        plot_adaptive_trace,
        plot_chat_latency,
        plot_chat_timeline,
        plot_sleep_sweep,
        plot_summary,
        plot_window_sweep,
        save_figures,
    )
    from .results import (
        CHUNK,
        CSV_FILES,
        SUMMARY_SLEEP,
        SUMMARY_WINDOW,
        ChatSample,
        ChatSummary,
        Results,
        TracePoint,
        TransferRow,
        load_results,
        read_csv,
        summary_rows,
        write_csv,
    )
    from .simulation import FRAME_OVERHEAD, SimulatedRun, simulate_transfer
