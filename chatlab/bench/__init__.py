"""``python -m chatlab bench [SCENARIO] [--quick] [--out DIR]``: measure what the kit claims.

Each scenario writes ``NAME.csv``, ``NAME.png`` and ``NAME-targets.csv`` to
``--out DIR``; without it, to a new folder in the system's temporary folder
(printed at the start), so a run never overwrites earlier results.
``--out data/bench`` refreshes the figures committed with the kit.

Scenarios:

* ``transfer``: raw ``sendall``, ``socket.sendfile``, the tools a user would
  pick instead (nc, nc through socat, nc + sha256sum on both ends, rsync to a
  local daemon, magic-wormhole) and each chatlab strategy direct and through
  the server, file to file, verified; chat round trips while a transfer runs;
  the same through the link emulator.
* ``fanout``: one room of N clients, every message delivered to all:
  chatlab's server with select, poll and epoll against a reference asyncio
  server, driven by the same load generator from another process.
* ``scaling``: idle connections 10 -> 1,000 (-> 5,000 with poll and epoll):
  CPU per loop iteration, round-trip time and memory per connection; where
  select() stops (FD_SETSIZE).
* ``memory``: the server's peak RSS and queue while relaying a file to a
  receiver that reads a few MB/s, per strategy, against the promised bound.
* ``chat``: chat round trips during a transfer, priority writer vs FIFO writer.
* ``irc``: IRC fan-out, N IRC clients in one channel: chatlab's text mode against
  ngircd (a C IRC server, if installed), driven by the same IRC load generator;
  and the loop's cost per turn with 1,000 idle connections.
* ``classday``: a class day: N students (``--students``, 60) chat, whisper, send
  files, run bots and leave in every way there is; nothing lost, and once all
  have left the server idles at ~0 CPU with no descriptor leaked.
* ``load``: many clients at once with nothing lost, and slow or dead peers
  dropped without slowing the others.
* ``sweep``: the throughput sweeps and chat latencies behind notebooks 06 and 07
  (in ``OUT/sweep/``).
* ``all`` (the default): every scenario above, one after the other
  (``--skip sweep,load`` leaves some out).

Ratios, not absolute times, are the headline: the machine is shared and noisy.
Every promise the kit makes about speed or memory (docs/PERFORMANCE.md) is
printed as PASS, NOT MET or SKIPPED, with the reason.  A target not met is
not an error; a scenario that finds something wrong (a line lost, a bad peer
not dropped) or fails to run makes the command exit with status 1.

Adding a scenario (the contract every scenario here follows):

* a module ``chatlab/bench/NAME.py`` whose docstring starts
  ``"``bench NAME``: what it measures"``: the words after ": " are its help
  line and the heading printed when it runs, the whole docstring its
  ``--help``;
* ``add_arguments(parser)``: adds its own options to an ``argparse`` parser
  that already has ``--out``, ``--quick`` and ``--no-progress`` (it must not
  add those); every option has a default, since ``all`` runs it without any;
* ``run(args, out) -> Scenario``: ``args`` holds its options and ``out``
  (a :class:`~pathlib.Path`), ``quick`` and ``progress`` (show bars with
  :func:`~chatlab.bench.common.iter_progress`); ``out`` exists.  It measures,
  prints its tables as it goes (:func:`~chatlab.bench.common.table`), writes
  its files into ``out`` and returns a :class:`~chatlab.bench.common.Scenario`
  with its rows, its verdicts (``sc.verdict(target, ok, measured, reason)``,
  ``sc.info(...)``), its notes, the files it wrote and its errors;
  :func:`run_scenario` times it, prints the verdicts and notes and writes
  ``NAME-targets.csv``;
* an entry ``"NAME": "module"`` in :data:`SCENARIOS` (the order ``all`` runs
  them in), and a line in the list above.

Helpers live in :mod:`chatlab.bench.common`, one of each: a server or any
helper process in a child process (:func:`~chatlab.bench.common.server_child`,
:class:`~chatlab.bench.common.Child`), :func:`~chatlab.bench.common.raise_nofile_limit`,
:func:`~chatlab.bench.common.available_selectors`, and :func:`chatlab.stats.percentile`.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import time
from pathlib import Path
from types import ModuleType

from .common import Scenario, Verdict, bench_logging, machine_summary, raise_nofile_limit, resolve_out, write_csv

COMMITTED_OUT = Path("data") / "bench"  # where the figures of the README and docs/PERFORMANCE.md live
# scenario -> its module in this package, in the order ``all`` runs them
SCENARIOS: dict[str, str] = {
    "transfer": "transfer", "fanout": "fanout", "scaling": "scaling", "memory": "memory", "chat": "chat_latency",
    "irc": "irc_fanout", "classday": "classday", "load": "load", "sweep": "sweep",
}


def scenario_module(name: str) -> ModuleType:
    """The module of scenario ``name`` (a key of :data:`SCENARIOS`)."""
    return importlib.import_module(f"{__name__}.{SCENARIOS[name]}")


def _summary(module: ModuleType) -> str:
    """The words after ": " on the first line of a scenario's docstring."""
    return (module.__doc__ or "").split("\n")[0].split(": ", 1)[-1]


def _for_people(doc: str | None) -> str:
    """A docstring as ``--help`` shows it: no reST roles, quotes for literals."""
    text = re.sub(r":\w+:`~[\w.]*?(\w+)`", r"\1", doc or "")  # :func:`~chatlab.x.name` -> name
    text = re.sub(r":\w+:`([^`]+)`", r"\1", text)
    return text.replace("``", "'").replace("**", "")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder for the CSV and PNG files (default: a new folder in the system's temporary"
                             f" folder; --out {COMMITTED_OUT} refreshes the committed figures)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and short runs (a minute or two for everything)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chatlab bench",
                                     description=_for_people((__doc__ or "").split("\nAdding a scenario")[0]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Run 'python -m chatlab bench SCENARIO --help' for a scenario's options.\n")
    sub = parser.add_subparsers(dest="scenario", metavar="SCENARIO")
    everything = sub.add_parser("all", help="every scenario (the default)")
    _common(everything)
    everything.add_argument("--skip", default="", help="comma-separated scenarios to leave out, e.g. sweep,load")
    for name in SCENARIOS:
        module = scenario_module(name)
        p = sub.add_parser(name, help=_summary(module), description=_for_people(module.__doc__),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        _common(p)
        module.add_arguments(p)
    return parser


def _scenario_args(name: str, out: Path, quick: bool, progress: bool) -> argparse.Namespace:
    """The defaults of one scenario's options, as ``all`` runs it."""
    p = argparse.ArgumentParser()
    _common(p)
    scenario_module(name).add_arguments(p)
    args = p.parse_args([])
    args.out, args.quick, args.progress = out, quick, progress
    return args


def report(sc: Scenario, out: Path) -> None:
    print()
    for v in sc.verdicts:
        print(v.line())
    for note in sc.notes:
        print(f"  note: {note}")
    for error in sc.errors:
        print(f"  ERROR: {error}")
    if sc.verdicts:
        sc.files.append(write_csv(out / f"{sc.name}-targets.csv", [_verdict_row(sc.name, v) for v in sc.verdicts]))
    print(f"  {sc.name}: {sc.seconds:.0f} s; wrote " + ", ".join(str(f) for f in sc.files), flush=True)


def _verdict_row(scenario: str, v: Verdict) -> dict[str, str]:
    return {"scenario": scenario, "target": v.target, "status": v.status, "measured": v.measured, "reason": v.reason}


def run_scenario(name: str, args: argparse.Namespace) -> Scenario:
    """Run one scenario with ``args`` (its options, ``out``, ``quick``, ``progress``), print and save its verdicts."""
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    title = _summary(scenario_module(name)) or name
    print(f"\n=== {title[:1].upper()}{title[1:]}", flush=True)
    started = time.monotonic()
    sc: Scenario = scenario_module(name).run(args, out)
    sc.seconds = time.monotonic() - started
    report(sc, out)
    return sc


def _to_skip(text: str) -> set[str]:
    """The scenarios ``--skip`` names; ValueError for one that does not exist."""
    skip = {s.strip() for s in text.split(",") if s.strip()}
    unknown = skip - set(SCENARIOS)
    if unknown:
        raise ValueError(f"unknown scenario(s) to skip: {', '.join(sorted(unknown))}")
    return skip


def run_everything(args: argparse.Namespace) -> int:
    """``bench all``: every scenario not skipped, one after the other; then every verdict in one table."""
    try:
        skip = _to_skip(args.skip)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    results: list[Scenario] = []
    failed: list[str] = []
    for name in SCENARIOS:
        if name in skip:
            continue
        try:
            sc = run_scenario(name, _scenario_args(name, args.out, args.quick, args.progress))
        except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others
            print(f"\nbench {name}: FAILED: {type(exc).__name__}: {exc}", flush=True)
            failed.append(name)
            continue
        results.append(sc)
        if sc.errors:
            failed.append(name)
    _print_targets(results, args.out, time.monotonic() - started)
    if failed:
        print(f"scenarios that failed to run or found errors: {', '.join(failed)}")
    return 1 if failed else 0


def _print_targets(results: list[Scenario], out: Path, seconds: float) -> None:
    print(f"\n=== Targets ({machine_summary()}; {seconds:.0f} s in all)")
    for sc in results:
        for v in sc.verdicts:
            print(f"{sc.name:>9} {v.line()}")
    verdicts = [_verdict_row(sc.name, v) for sc in results for v in sc.verdicts]
    if verdicts:
        write_csv(out / "targets.csv", verdicts)
        print(f"\nwrote {out / 'targets.csv'}")


def main(argv: list[str] | None = None) -> int:
    """``python -m chatlab bench ...``; returns the exit status (targets not met are not errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["all", *argv]
    raise_nofile_limit()
    with bench_logging():
        args = build_parser().parse_args(argv)
        args.out = resolve_out(args.out)
        if args.scenario == "all":
            return run_everything(args)
        return 1 if run_scenario(args.scenario, args).errors else 0


__all__ = ["main", "run_scenario", "scenario_module", "build_parser", "SCENARIOS"]
