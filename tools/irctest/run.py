"""Run irctest's RFC 1459 / RFC 2812 selection against chatlab, and against ngircd side by side.

    python tools/irctest/run.py /path/to/irctest [--ngircd] [-k EXPR]

``/path/to/irctest`` is a clone of https://github.com/progval/irctest with its requirements
installed (``pip install -r requirements.txt``).  Both servers listen on 127.0.0.1 only (the
controllers here override irctest's default of every interface).  Prints pytest's summary for
each server and one line with the counts; exits 0 when chatlab passes at least as many tests as
ngircd did in the same run (or than ``--at-least N`` without ``--ngircd``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SELECTION = "(RFC1459 or RFC2812) and not deprecated and not strict and not IRCv3 and not services"
CONTROLLERS = {"chatlab": "irctest_chatlab", "ngircd": "irctest_ngircd_local"}


def run(irctest: Path, server: str, extra: list[str]) -> tuple[dict[str, int], str]:
    """Run the selection against ``server``; the counts pytest reported, and its output."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(irctest), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "--controller",
               CONTROLLERS[server], "-m", SELECTION, "-q", "-rfsx", "--no-header", *extra]
    done = subprocess.run(command, cwd=irctest, env=env, capture_output=True, text=True, timeout=1800)
    output = done.stdout + done.stderr
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|xfailed|xpassed|error)", summary)}
    return counts, output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("irctest", type=Path, help="a clone of progval/irctest")
    parser.add_argument("--ngircd", action="store_true", help="run ngircd too (needs ngircd on PATH), side by side")
    parser.add_argument("--at-least", type=int, default=69, help="chatlab's goal without --ngircd (default 69)")
    parser.add_argument("-k", default="", help="pytest -k expression (a subset of the selection)")
    args = parser.parse_args(argv)
    extra = ["-k", args.k] if args.k else []
    results = {}
    for server in ["chatlab", "ngircd"] if args.ngircd else ["chatlab"]:
        counts, output = run(args.irctest, server, extra)
        print(f"===== {server}")
        outcomes = ("FAILED", "SKIPPED", "XFAIL", "ERROR")
        print("\n".join(line for line in output.splitlines() if line.startswith(outcomes)))
        results[server] = counts
    goal = results.get("ngircd", {}).get("passed", args.at_least)
    print(" | ".join(f"{server}: " + ", ".join(f"{n} {word}" for word, n in counts.items())
                     for server, counts in results.items()))
    return 0 if results["chatlab"].get("passed", 0) >= goal else 1


if __name__ == "__main__":
    sys.exit(main())
