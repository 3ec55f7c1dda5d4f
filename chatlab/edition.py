"""``python -m chatlab student-edition [OUT_DIR] [--wheel]``: the notebooks a teacher hands out.

The notebooks in ``notebooks/`` are the *instructor edition*: every exercise
cell holds the reference answer between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` lines and carries nbgrader's cell metadata, so they run
green top to bottom (and a teacher who uses nbgrader can take them as a
course source as they are).

The *student edition* is made with nbgrader's own preprocessors, run through
nbconvert, not by code of ours that imitates them:

* ``ClearSolutions`` replaces each solution region with
  ``# YOUR CODE HERE`` / ``raise NotImplementedError()``;
* ``LockCells`` makes the autograded-tests cells (one after each checker cell,
  ``"grade": true`` with its points) read-only, as ``nbgrader generate_assignment``
  does, so the sources of the student edition and of nbgrader's release agree cell
  for cell (``tests/test_nbgrader_course.py`` compares them);
* ``ClearOutput`` clears the outputs of the cells that would show a reference
  result: the solution cells, the checker cell right after each, the graded
  test cells, and every later code cell that uses a name a solution or checker
  cell defines (a guard such as ``if not report:``, a demonstration run on the
  answer).  Every other output stays, so students read the teaching outputs
  before they run anything (nbgrader's release clears them all).

nbgrader is an optional dependency: ``python -m pip install -e ".[instructor]"``.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # imported when used: a plain install of chatlab has no Jupyter tools
    import nbformat

STUDENT_README = """\
# chatlab notebooks: student edition

These notebooks need Python 3.10 or newer and the chatlab package with its notebook tools.
Install chatlab from the wheel your teacher hands out with this folder (a file named
`chatlab-<version>-py3-none-any.whl`), in a virtual environment of your own:

    python -m venv chatlab-env
    . chatlab-env/bin/activate          (Windows: chatlab-env\\Scripts\\activate)
    python -m pip install "chatlab-<version>-py3-none-any.whl[notebooks]"
    jupyter lab

(Your teacher may instead give you a package index to install `chatlab[notebooks]` from.)
The package holds everything the notebooks read, the packet captures included, but no answer:
do not install from a copy of the kit's repository, which holds the instructor notebooks.

Each notebook ends with an exercise: a cell with `# YOUR CODE HERE` and
`raise NotImplementedError()` where your code goes, a checker cell right after it, and a
locked cell that grades it (it runs the checker again and fails with an AssertionError until
every case passes). Run the checker as often as you like: it prints one PASS or FAIL line per
case, with a hint. Until you write your answer every case FAILs; nothing else in the notebook
depends on it. Cells that build on your answer say so, and what to run first.
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


def is_grade_cell(cell: nbformat.NotebookNode) -> bool:
    """An nbgrader autograded-tests cell: ``"grade": true`` (with points) and not a solution cell."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade", False)) and not meta.get("solution", False) and cell.get("cell_type") == "code"


def checker_cell_indices(nb: nbformat.NotebookNode) -> list[int]:
    """The code cell right after each solution cell: the one that runs the exercise's checker."""
    indices = []
    for i, cell in enumerate(nb.cells):
        if not is_solution_cell(cell):
            continue
        checker = next((j for j in range(i + 1, len(nb.cells)) if nb.cells[j].cell_type == "code"), None)
        if checker is not None and not is_solution_cell(nb.cells[checker]) and not is_grade_cell(nb.cells[checker]):
            indices.append(checker)
    return indices


def _used_names(source: str) -> set[str]:
    """The identifiers a cell's code mentions (not the words inside its strings and comments)."""
    import io
    import tokenize

    names = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.NAME:
                names.add(token.string)
            elif token.type == tokenize.STRING and "f" in token.string.split("'")[0].split('"')[0].lower():
                names.update(re.findall(r"[A-Za-z_]\w*", token.string))  # an f-string's fields (Python < 3.12)
    except (tokenize.TokenError, IndentationError, SyntaxError):  # a half-written cell: every word counts
        names = set(re.findall(r"\w+", source))
    return names


def _defined_names(source: str, functions_only: bool = False) -> set[str]:
    """The names a cell binds at its top level (functions, classes, assignments, imports)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # an IPython magic or a half-written cell: fall back to the obvious forms
        pairs = re.findall(r"^(?:def|class)\s+(\w+)|^(\w+)\s*=", source, re.MULTILINE)
        return {name for pair in pairs for name in pair if name}
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif functions_only:
            continue
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def exercise_cell_indices(nb: nbformat.NotebookNode) -> list[int]:
    """Every cell whose output would show a reference result, so the student edition clears it.

    The solution cells; the checker cell after each; the autograded-tests cells; and every
    later code cell whose code uses a name a solution or checker cell binds (``report``,
    ``recv_exact``, ``AIMDWindow`` ...), directly or through a function such a cell defines
    in turn: a demonstration run on the answer shows the answer's results.
    """
    solutions = [i for i, cell in enumerate(nb.cells) if is_solution_cell(cell)]
    if not solutions:
        return []
    checkers = checker_cell_indices(nb)
    indices = set(solutions) | set(checkers) | {i for i, cell in enumerate(nb.cells) if is_grade_cell(cell)}
    names: set[str] = set()
    for i in sorted(indices):
        names |= _defined_names(nb.cells[i].source)
    names.discard("_")
    for i in range(solutions[0] + 1, len(nb.cells)):
        cell = nb.cells[i]
        if cell.cell_type != "code" or i in indices or not names:
            continue
        if names & _used_names(cell.source):
            indices.add(i)
            names |= _defined_names(cell.source, functions_only=True)  # read_frame() built on recv_exact()
    return sorted(indices)


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
    # LockCells: the graded tests read-only, as nbgrader's release has them.
    return [nbgrader.ClearSolutions(enforce_metadata=enforce_metadata), nbgrader.LockCells(), ClearExerciseOutput()]


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
    raise SystemExit("no instructor notebooks found: run this from a clone of the chatlab repository, "
                     "or pass --source DIR")


def default_out_dir(source: Path | None = None) -> Path:
    """Where the student edition goes without OUT_DIR: beside the checkout, never inside it.

    A folder inside the clone would be one more untracked folder there (and one a teacher
    might commit next to the answers); ``handout/`` is in .gitignore all the same.
    """
    source = (source or default_source()).resolve()
    root = source.parent if source.name == "notebooks" else source
    return root.parent / "chatlab-handout"


def build_wheel(out_dir: Path) -> Path:
    """Build chatlab's wheel (no dependencies) into ``out_dir``: the package students install."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").exists():
        raise SystemExit("--wheel needs a clone of the chatlab repository (it builds the wheel from it)")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out_dir), str(root)], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"building the wheel failed:\n{done.stderr.strip()}")
    wheels = sorted(out_dir.glob("chatlab-*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels:
        raise SystemExit("pip wheel wrote no chatlab wheel")
    return wheels[-1]


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
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, nargs="?", default=None,
                        help="where to write the student notebooks (default: chatlab-handout/ beside the "
                             "repository, outside it)")
    parser.add_argument("--source", type=Path, default=None,
                        help="the instructor notebooks (default: notebooks/ of this checkout)")
    parser.add_argument("--wheel", action="store_true",
                        help="also build chatlab's wheel into OUT_DIR: what the students install (README.md says how)")
    args = parser.parse_args(argv)
    out_dir = args.out_dir if args.out_dir is not None else default_out_dir(args.source)
    written = write_student_edition(out_dir, args.source)
    for path in written:
        print(f"wrote {path}")
    if args.wheel:
        print(f"wrote {build_wheel(out_dir)}")
    print(f"{len(written)} student notebooks in {out_dir}; hand out that folder (solutions removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
