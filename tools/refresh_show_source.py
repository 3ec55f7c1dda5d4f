"""Recompute the stored output of notebook cells that only call ``show_source(...)``.

After code moves, ``tests/notebooks/test_notebooks.py`` says which ``show_source`` outputs went
stale.  Cells whose only statements are ``show_source`` calls get their stdout
recomputed here without running the notebook; any other stale cell needs the notebook
re-executed (``jupyter nbconvert --to notebook --execute --inplace``).

    python tools/refresh_show_source.py notebooks/*.ipynb
"""

from __future__ import annotations

import ast
import contextlib
import io
import sys
from pathlib import Path

import nbformat

from chatlab.teach import show_source


def only_show_source(source: str) -> list[ast.Call] | None:
    """The calls, if every statement of the cell is a ``show_source(...)`` call with literal arguments."""
    calls = []
    for statement in ast.parse(source).body:
        call = statement.value if isinstance(statement, ast.Expr) else None
        if not isinstance(call, ast.Call):
            return None
        func = call.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name != "show_source":
            return None
        calls.append(call)
    return calls


def printed_by(call: ast.Call) -> str:
    args = [ast.literal_eval(a) for a in call.args]
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        show_source(*args, **kwargs)
    return printed.getvalue()


def refresh(path: Path) -> int:
    notebook = nbformat.read(path, as_version=4)
    changed = 0
    for cell in notebook.cells:
        if cell.cell_type != "code" or "show_source(" not in cell.source:
            continue
        calls = only_show_source(cell.source)
        if not calls:
            continue
        text = "".join(printed_by(call) for call in calls)
        streams = [o for o in cell.outputs if o.get("output_type") == "stream" and o.get("name") == "stdout"]
        if len(streams) == 1 and streams[0]["text"] != text:
            streams[0]["text"] = text
            changed += 1
    if changed:
        nbformat.write(notebook, path)
    return changed


def main(paths: list[str]) -> None:
    for name in paths:
        count = refresh(Path(name))
        if count:
            print(f"{name}: {count} cell(s) refreshed")


if __name__ == "__main__":
    main(sys.argv[1:])
