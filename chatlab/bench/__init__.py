"""``python -m chatlab bench [SCENARIO] [--quick] [--out DIR]``: measure what the kit claims.

Each scenario writes ``NAME.csv``, ``NAME.png`` and ``NAME-targets.csv`` to
``--out DIR``; without it, to a new folder in the system's temporary folder
(printed at the start), so a run never overwrites earlier results.
``--out data/bench`` refreshes the figures committed with the kit.

Scenarios:

* ``transfer``: raw ``sendall``, ``socket.sendfile``, ``nc`` and each chatlab
  strategy direct and through the server, file to file, SHA-256 verified;
  chat round trips while a transfer runs; the same through the link emulator.
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
  ngircd (a C IRC server, if installed), driven by the same IRC load generator.
* ``classday``: a class day: N students (``--students``, 60) chat, whisper, send
  files, run bots and leave in every way there is; nothing lost, and once all
  have left the server idles at ~0 CPU with no descriptor leaked.
* ``load``: many clients at once with nothing lost, and slow or dead peers
  dropped without slowing the others (its own options: ``bench load --help``).
* ``sweep``: the throughput sweeps and chat latencies behind notebooks 06 and 07.
* ``all`` (the default): every scenario above, one after the other.

Ratios, not absolute times, are the headline: the machine is shared and noisy.
Every promise the kit makes about speed or memory (docs/PERFORMANCE.md) is
printed as PASS, NOT MET or SKIPPED, with the reason.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .common import Scenario, Verdict, bench_logging, machine_summary, raise_nofile_limit, resolve_out, write_csv

COMMITTED_OUT = Path("data") / "bench"  # where the figures of the README and docs/PERFORMANCE.md live
SCENARIOS = ("transfer", "fanout", "scaling", "memory", "chat", "irc", "classday")
MODULES = {"chat": "chat_latency", "irc": "irc_fanout"}  # scenario -> module, where the names differ
EXTRA = ("load", "sweep")


def _module(name: str) -> Any:
    return importlib.import_module(f"{__name__}.{MODULES.get(name, name)}")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder for the CSV and PNG files (default: a new folder in the system's temporary"
                             f" folder; --out {COMMITTED_OUT} refreshes the committed figures)")
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs (about a minute for everything)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chatlab bench", description=(__doc__ or "").replace("``", "'"),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Run 'python -m chatlab bench SCENARIO --help' for a scenario's own options.\n")
    sub = parser.add_subparsers(dest="scenario", metavar="SCENARIO")
    everything = sub.add_parser("all", help="every scenario (the default)")
    _common(everything)
    everything.add_argument("--skip", default="", help="comma-separated scenarios to leave out, e.g. sweep,load")
    for name in SCENARIOS:
        module = _module(name)
        p = sub.add_parser(name, help=(module.__doc__ or "").split("\n")[0].split(": ", 1)[-1])
        _common(p)
        module.add_arguments(p)
    for name, text in (("load", "many clients, nothing lost; slow and dead peers dropped (see 'bench load --help')"),
                       ("sweep", "the throughput sweeps and chat latencies behind notebooks 06 and 07")):
        p = sub.add_parser(name, help=text, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _scenario_args(name: str, out: Path, quick: bool, progress: bool) -> argparse.Namespace:
    """The defaults of one scenario's options, as ``all`` runs it."""
    p = argparse.ArgumentParser()
    _common(p)
    _module(name).add_arguments(p)
    args = p.parse_args([])
    args.out, args.quick, args.progress = out, quick, progress
    return args


def report(sc: Scenario, out: Path) -> None:
    print()
    for v in sc.verdicts:
        print(v.line())
    for note in sc.notes:
        print(f"  note: {note}")
    if sc.verdicts:
        sc.files.append(write_csv(out / f"{sc.name}-targets.csv", [_verdict_row(sc.name, v) for v in sc.verdicts]))
    print(f"  {sc.name}: {sc.seconds:.0f} s; wrote " + ", ".join(str(f) for f in sc.files), flush=True)


def _verdict_row(scenario: str, v: Verdict) -> dict[str, str]:
    return {"scenario": scenario, "target": v.target, "status": v.status, "measured": v.measured, "reason": v.reason}


def run_scenario(name: str, args: argparse.Namespace) -> Scenario:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    module = _module(name)
    title = (module.__doc__ or name).split("\n")[0].split(": ", 1)[-1]
    print(f"\n=== {title[:1].upper()}{title[1:]}", flush=True)
    started = time.monotonic()
    sc: Scenario = module.run(args, out)
    sc.seconds = time.monotonic() - started
    report(sc, out)
    return sc


def run_load(rest: list[str]) -> int:
    try:
        from . import load  # written separately; may not be there
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.load":
            raise
        print("bench load: not available in this copy of chatlab (chatlab/bench/load.py is missing)")
        return 2
    result = load.main(rest)
    return int(result or 0)


def run_sweep(out: Path, quick: bool) -> int:
    try:
        experiments = importlib.import_module("chatlab.experiments")
    except ModuleNotFoundError as exc:
        if exc.name != "chatlab.experiments":
            raise
        print("bench sweep: not available in this copy of chatlab (chatlab/experiments.py is missing)")
        return 2
    run_all: Callable[..., Any] | None = getattr(experiments, "run_all", None)
    if run_all is None:
        print("bench sweep: chatlab.experiments has no run_all(out_dir, quick=...)")
        return 2
    out.mkdir(parents=True, exist_ok=True)
    print("\n=== Throughput sweeps and chat latency during transfers (chatlab.experiments.run_all)", flush=True)
    started = time.monotonic()
    if "quick" in inspect.signature(run_all).parameters:
        run_all(out, quick=quick)
    else:
        run_all(out)
    print(f"  sweep: {time.monotonic() - started:.0f} s; results in {out}", flush=True)
    return 0


def run_everything(args: argparse.Namespace) -> int:
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - set(SCENARIOS) - set(EXTRA)
    if unknown:
        print(f"bench: unknown scenario(s) to skip: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    started = time.monotonic()
    results: list[Scenario] = []
    failed: list[str] = []
    for name in SCENARIOS:
        if name in skip:
            continue
        try:
            results.append(run_scenario(name, _scenario_args(name, args.out, args.quick, args.progress)))
        except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others
            print(f"\nbench {name}: FAILED: {type(exc).__name__}: {exc}", flush=True)
            failed.append(name)
    if "load" not in skip:
        print("\n=== Reliability under load (chatlab.bench.load)", flush=True)
        try:
            run_load((["--quick"] if args.quick else []) + ["--out", str(args.out)])
        except Exception as exc:  # noqa: BLE001
            print(f"\nbench load: FAILED: {type(exc).__name__}: {exc}", flush=True)
            failed.append("load")
    if "sweep" not in skip:
        try:
            run_sweep(args.out / "sweep", args.quick)
        except Exception as exc:  # noqa: BLE001
            print(f"\nbench sweep: FAILED: {type(exc).__name__}: {exc}", flush=True)
            failed.append("sweep")
    verdicts = [_verdict_row(sc.name, v) for sc in results for v in sc.verdicts]
    print(f"\n=== Targets ({machine_summary()}; {time.monotonic() - started:.0f} s in all)")
    for sc in results:
        for v in sc.verdicts:
            print(f"{sc.name:>9} {v.line()}")
    if verdicts:
        write_csv(args.out / "targets.csv", verdicts)
        print(f"\nwrote {args.out / 'targets.csv'}")
    if failed:
        print(f"scenarios that failed to run: {', '.join(failed)}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m chatlab bench ...``; returns the exit status (targets not met are not errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["all", *argv]
    raise_nofile_limit()
    with bench_logging():
        if argv[0] == "load":  # its own options, parsed by chatlab.bench.load
            return run_load(argv[1:])
        if argv[0] == "sweep":
            sweep = argparse.ArgumentParser(prog="python -m chatlab bench sweep",
                                            description="the throughput sweeps and chat latency measurements of"
                                                        " notebooks 06 and 07 (chatlab.experiments)")
            _common(sweep)
            sargs = sweep.parse_args(argv[1:])
            return run_sweep(resolve_out(sargs.out), sargs.quick)
        parser = build_parser()
        args = parser.parse_args(argv)
        args.out = resolve_out(args.out)
        if args.scenario == "all":
            return run_everything(args)
        run_scenario(args.scenario, args)
        return 0


__all__ = ["main", "run_scenario", "SCENARIOS"]
