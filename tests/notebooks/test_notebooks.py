"""The committed notebooks (the instructor edition): clean outputs, fresh line numbers, marked solutions.

These read the stored notebooks without running them (nbval runs them):

* no output holds a stderr stream or a traceback (a thread that died in a demo
  would otherwise be committed as "teaching");
* every ``show_source(...)`` output is what the call prints today, so no
  printed line number goes stale when chatlab's code moves;
* every exercise is marked for nbgrader: each solution cell has the markers
  and the metadata, each is followed by the cell that checks it, and every
  checker run that passes in full runs on a function from a solution cell
  (never on a reference imported from somewhere else).
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
from pathlib import Path

import nbformat
import pytest

from chatlab.teach import show_source

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def stdout_of(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")


def is_solution(cell: nbformat.NotebookNode) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("solution"))


def test_the_notebooks_are_found() -> None:
    assert len(NOTEBOOKS) >= 4, NOTEBOOKS


# ------------------------------------------------------------ clean outputs

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_committed_output_holds_stderr_or_a_traceback(path: Path) -> None:
    problems = []
    for index, cell in enumerate(read(path).cells):
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            text = output.get("text", "") if kind == "stream" else str(output.get("data", {}).get("text/plain", ""))
            if kind == "error":
                problems.append(f"cell {index}: an error output ({output.get('ename')}: {output.get('evalue')})")
            elif kind == "stream" and output.get("name") == "stderr":
                problems.append(f"cell {index}: stderr: {text[:200]!r}")
            elif "Traceback (most recent call last)" in text:
                problems.append(f"cell {index}: a traceback in {kind}: {text[:200]!r}")
    assert not problems, f"{path.name}: re-execute it after fixing the cause:\n" + "\n".join(problems)


# ------------------------------------------------------ show_source outputs

def show_source_calls(source: str) -> list[tuple[list[object], dict[str, object]]]:
    """The literal arguments of every ``show_source(...)`` / ``chatlab.teach.show_source(...)`` call."""
    calls = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name != "show_source":
            continue
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        except ValueError:
            raise AssertionError(f"show_source({ast.unparse(node)[12:-1]}): pass literal strings and numbers, "
                                 "so this test can recompute what it prints") from None
        calls.append((args, kwargs))
    return calls


def cells_with_show_source() -> list[tuple[Path, int]]:
    found = []
    for path in NOTEBOOKS:
        for index, cell in enumerate(read(path).cells):
            if cell.cell_type == "code" and "show_source(" in cell.source:
                found.append((path, index))
    return found


def test_show_source_calls_are_found() -> None:
    assert cells_with_show_source(), "no notebook calls show_source(): is the test looking in the right place?"


@pytest.mark.parametrize("path, index", cells_with_show_source(),
                         ids=lambda v: v.name if isinstance(v, Path) else f"cell{v}")
def test_show_source_output_is_not_stale(path: Path, index: int) -> None:
    cell = read(path).cells[index]
    # IPython magics would not parse; these cells are plain Python.
    calls = show_source_calls(cell.source)
    assert calls, f"{path.name} cell {index}: show_source( appears but no call was parsed"
    stored = stdout_of(cell)
    for args, kwargs in calls:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            show_source(*args, **kwargs)  # type: ignore[arg-type]
        assert printed.getvalue() in stored, (
            f"{path.name} cell {index}: show_source{tuple(args)} prints today\n{printed.getvalue()}"
            f"but the committed output is\n{stored}\nre-execute the notebook")


# ------------------------------------------------------- marked solutions

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_solution_is_marked_for_nbgrader(path: Path) -> None:
    cells = read(path).cells
    solutions = [i for i, c in enumerate(cells) if is_solution(c)]
    assert solutions, f"{path.name} has no exercise cell with nbgrader solution metadata"
    grade_ids = [cells[i].metadata["nbgrader"].get("grade_id") for i in solutions]
    assert len(set(grade_ids)) == len(grade_ids) and all(grade_ids), (
        f"{path.name}: grade_ids must be unique: {grade_ids}")
    for i, cell in enumerate(cells):
        has_markers = BEGIN in cell.source
        if is_solution(cell):
            meta = cell.metadata["nbgrader"]
            assert cell.cell_type == "code", f"{path.name} cell {i}: a solution cell must be code"
            assert has_markers and cell.source.count(BEGIN) == cell.source.count(END), (
                f"{path.name} cell {i}: a solution cell needs {BEGIN} ... {END} around the answer")
            assert meta.get("grade") is False and meta.get("locked") is False and meta.get("schema_version") == 3, meta
            checker = next((c for c in cells[i + 1:] if c.cell_type == "code"), None)
            assert checker is not None and re.search(r"\bcheck_\w+\(", checker.source), (
                f"{path.name} cell {i}: the code cell after a solution cell should run its checker")
        else:
            assert not has_markers, (
                f"{path.name} cell {i}: solution markers in a cell without nbgrader solution metadata")


ALL_PASS = re.compile(r"^(check_\w+): (\d+)/\2 cases pass$", re.MULTILINE)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checkers_pass_only_on_the_students_own_functions(path: Path) -> None:
    """A checker that passes in full ran on a function (or class) defined in a solution cell, never on an import."""
    cells = read(path).cells
    defined_in_solutions: set[str] = set()
    for cell in cells:
        if is_solution(cell):
            defined_in_solutions |= {n.name for n in ast.walk(ast.parse(cell.source))
                                     if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    for index, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        assert not re.search(r"(chatlab\.exercises\.solutions|from solutions)", cell.source), (
            f"{path.name} cell {index} imports a reference solution: notebooks hold the answers between markers")
        if not ALL_PASS.search(stdout_of(cell)):
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("check_"):
                names = [a.id for a in node.args if isinstance(a, ast.Name)]
                assert names and all(n in defined_in_solutions for n in names), (
                    f"{path.name} cell {index}: {node.func.id}({', '.join(names)}) passes in full, "
                    f"but {names} are not defined in a solution cell")
