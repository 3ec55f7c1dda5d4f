"""irctest (progval/irctest, the conformance suite IRC servers test with) against chatlab.

Its RFC 1459 / RFC 2812 selection runs with our controller (``tools/irctest/irctest_chatlab.py``),
on 127.0.0.1 only.  irctest is not on PyPI: point ``IRCTEST_DIR`` at a clone (with its
requirements installed: ``pip install -r requirements.txt``), or clone it next to this
repository as ``irctest``.  Without it the test is skipped, saying so.  The side-by-side count
with ngircd is ``python tools/irctest/run.py PATH --ngircd``; the figures are in docs/IRC.md.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NGIRCD_PASSES = 69  # ngircd 26.1, same selection, same machine (docs/IRC.md)


def irctest_dir() -> Path | None:
    candidates = [os.environ.get("IRCTEST_DIR", ""), str(ROOT.parent / "irctest")]
    for candidate in filter(None, candidates):
        path = Path(candidate)
        if (path / "irctest" / "cases.py").is_file():
            return path
    return None


@pytest.mark.slow
def test_irctest_rfc_selection_passes_at_least_as_many_as_ngircd():
    where = irctest_dir()
    if where is None:
        pytest.skip("irctest is not available: clone https://github.com/progval/irctest and set IRCTEST_DIR to it")
    missing = [m for m in ("ecdsa", "filelock") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"irctest's requirements are not installed ({', '.join(missing)}): pip install -r "
                    f"{where / 'requirements.txt'}")
    sys.path.insert(0, str(ROOT / "tools" / "irctest"))
    try:
        import run as irctest_run
    finally:
        sys.path.pop(0)
    counts, output = irctest_run.run(where, "chatlab", [])
    assert counts.get("passed", 0) >= NGIRCD_PASSES, output[-4000:]
    assert not counts.get("error"), output[-4000:]
