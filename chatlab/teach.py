"""Small helpers the notebooks use to point at chatlab's own code."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType


def show_source(module: str | ModuleType, pattern: str, context: int = 0) -> list[int]:
    """Print the lines of a chatlab module that match ``pattern`` (a regex).

    Prints each hit as ``chatlab/server.py:LINE: text`` (a path relative to the
    package, never this machine's absolute path) and returns the line numbers,
    so a notebook can point at "the line that does it" and stay right when the
    code moves.
    """
    if isinstance(module, str):
        module = importlib.import_module(module if module.startswith("chatlab") else f"chatlab.{module}")
    path = Path(inspect.getfile(module))
    shown = f"chatlab/{path.name}" if path.parent.name == "chatlab" else f"chatlab/{path.parent.name}/{path.name}"
    lines = path.read_text(encoding="utf-8").splitlines()
    hits = [i for i, line in enumerate(lines) if re.search(pattern, line)]
    for i in hits:
        for j in range(max(0, i - context), min(len(lines), i + context + 1)):
            print(f"{shown}:{j + 1}: {lines[j]}")
    if not hits:
        print(f"{shown}: no line matches {pattern!r}")
    return [i + 1 for i in hits]
