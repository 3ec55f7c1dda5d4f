"""``python -m chatlab student-edition OUT_DIR``: the notebooks a teacher hands out.

The notebooks in ``notebooks/`` are the *instructor edition*: every exercise
cell holds the reference answer between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` lines and carries nbgrader's cell metadata, so they run
green top to bottom (and a teacher who uses nbgrader can take them as a
course source as they are).

The *student edition* is made with nbgrader's own preprocessors, run through
nbconvert, not by code of ours that imitates them:

* ``ClearSolutions`` replaces each solution region with
  ``# YOUR CODE HERE`` / ``raise NotImplementedError()``;
* ``ClearOutput`` clears the outputs of the exercise cells only: the solution
  cells and the checker cell right after each (those outputs would show the
  answer passing).  Every other output stays, so students read the teaching
  outputs before they run anything.

nbgrader is an optional dependency: ``python -m pip install -e ".[instructor]"``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # imported when used: a plain install of chatlab has no Jupyter tools
    import nbformat

STUDENT_README = """\
# chatlab notebooks: student edition

Open these notebooks with `jupyter lab` in an environment where chatlab is installed
(from a copy of the kit's repository: `python -m pip install -e ".[notebooks]"`).

Each notebook ends with an exercise: a cell with `# YOUR CODE HERE` and
`raise NotImplementedError()` where your code goes, and a checker cell right after it.
Run the checker as often as you like: it prints one PASS or FAIL line per case, with a hint.
Until you write your answer every case FAILs; nothing else in the notebook depends on it.
"""


def _require_nbgrader() -> Any:
    try:
        from nbgrader import preprocessors
    except ImportError:  # an optional extra: say how to get it
        raise SystemExit('the student edition needs nbgrader: python -m pip install -e ".[instructor]" '
                         "in the chatlab repository (or python -m pip install nbgrader)") from None
    return preprocessors


def is_solution_cell(cell: nbformat.NotebookNode) -> bool:
    """A cell nbgrader treats as the student's answer (``"solution": true`` in its metadata)."""
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution", False))


def exercise_cell_indices(nb: nbformat.NotebookNode) -> list[int]:
    """The solution cells and, after each, the next code cell: the one that runs the checker."""
    indices: list[int] = []
    for i, cell in enumerate(nb.cells):
        if not is_solution_cell(cell):
            continue
        indices.append(i)
        checker = next((j for j in range(i + 1, len(nb.cells)) if nb.cells[j].cell_type == "code"), None)
        if checker is not None and not is_solution_cell(nb.cells[checker]):
            indices.append(checker)
    return sorted(set(indices))


def _preprocessors(enforce_metadata: bool) -> list[Any]:
    nbgrader: Any = _require_nbgrader()

    class ClearExerciseOutput(nbgrader.ClearOutput):
        """nbgrader's ClearOutput, applied to the exercise cells only."""

        def preprocess(self, nb: nbformat.NotebookNode, resources: dict) -> tuple[nbformat.NotebookNode, dict]:
            for index in exercise_cell_indices(nb):
                nb.cells[index], resources = self.preprocess_cell(nb.cells[index], resources, index)
            return nb, resources

    # enforce_metadata: every solution region must sit in a cell marked as a solution
    # cell, which is what nbgrader's full pipeline needs too.
    return [nbgrader.ClearSolutions(enforce_metadata=enforce_metadata), ClearExerciseOutput()]


def student_notebook(nb: nbformat.NotebookNode, enforce_metadata: bool = True) -> nbformat.NotebookNode:
    """Return the student edition of one instructor notebook (``nb`` itself is left as it was)."""
    import nbformat
    from nbconvert.exporters import NotebookExporter

    exporter = NotebookExporter()
    for preprocessor in _preprocessors(enforce_metadata):
        exporter.register_preprocessor(preprocessor, enabled=True)
    body, _resources = exporter.from_notebook_node(nbformat.from_dict(nb))
    return nbformat.reads(body, as_version=4)


def default_source() -> Path:
    """The instructor notebooks of a source checkout (the wheel does not ship them)."""
    for candidate in (Path(__file__).resolve().parent.parent / "notebooks", Path.cwd() / "notebooks"):
        if any(candidate.glob("[0-9][0-9]_*.ipynb")):
            return candidate
    raise SystemExit("no instructor notebooks found: run this from a clone of the chatlab repository, or pass --source DIR")


def write_student_edition(out_dir: Path, source: Path | None = None, enforce_metadata: bool = True) -> list[Path]:
    """Write the student edition of every ``NN_*.ipynb`` in ``source`` into ``out_dir``; return the paths."""
    _require_nbgrader()  # before anything is imported or written: say how to install it (it brings nbformat)
    import nbformat

    source = source or default_source()
    notebooks = sorted(source.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise SystemExit(f"no notebooks (NN_name.ipynb) in {source}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if out_dir.resolve() == source.resolve():
        raise SystemExit("the student edition must not overwrite the instructor notebooks: choose another OUT_DIR")
    written = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        target = out_dir / path.name
        nbformat.write(student_notebook(nb, enforce_metadata), target)
        written.append(target)
    (out_dir / "README.md").write_text(STUDENT_README, encoding="utf-8")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chatlab student-edition",
        description="Write the student edition of the notebooks: solutions replaced by stubs "
                    "(nbgrader's ClearSolutions), exercise outputs cleared (ClearOutput), "
                    "every other output kept.")
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="where to write the student notebooks")
    parser.add_argument("--source", type=Path, default=None,
                        help="the instructor notebooks (default: notebooks/ of this checkout)")
    args = parser.parse_args(argv)
    written = write_student_edition(args.out_dir, args.source)
    for path in written:
        print(f"wrote {path}")
    print(f"{len(written)} student notebooks in {args.out_dir}; hand out that folder (solutions removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
