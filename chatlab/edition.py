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
  for cell (``tests/notebooks/test_nbgrader_course.py`` compares them);
* ``ClearOutput`` clears the outputs of the cells that would show a reference
  result: the solution cells, the checker cell right after each, the graded
  test cells, and every later code cell that uses a name a solution or checker
  cell defines (a guard such as ``if not report:``, a demonstration run on the
  answer).  Every other output stays, so students read the teaching outputs
  before they run anything (nbgrader's release clears them all).

``--lang zh`` makes the Chinese edition of either: the markdown cells and the
exercises' docstrings come from ``notebooks/locale/zh_CN/NN_name.po``
(:mod:`chatlab.nbcatalog`; a missing or stale translation stops the build), a
setup cell sets the language and a CJK font for the figures, and the notebooks
are run with ``CHATLAB_LANG=zh`` so that their outputs are Chinese too (then
the student edition clears the exercises' outputs as above, and leaves out the
key points (本节要点) of the exercise sections, which the instructor edition
keeps after the checker).  ``--instructor`` writes the instructor edition of
that language.

nbgrader and Babel are optional dependencies: ``python -m pip install -e ".[instructor]"``.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .i18n import _

if TYPE_CHECKING:  # imported when used: a plain install of chatlab has no Jupyter tools
    import nbformat

CELL_TIMEOUT = 180  # seconds per cell when an edition is run: a hung accept() still ends
HANDOUT = "handout"  # locale/<lang>/handout.po: the README of the edition


@dataclass(frozen=True)
class Edition:
    """Which edition to write: its language, instructor or student, run or not."""

    source: Path | None = None  # the English instructor notebooks (default: notebooks/ of this checkout)
    lang: str = "en"  # "en" or a catalog language ("zh_CN")
    instructor: bool = False  # keep the solutions and the exercises' key points
    execute: bool = False  # run the translated notebooks, so that outputs are in their language
    enforce_metadata: bool = True
    progress: bool = False


# The first code cell of a translated edition: checkers in its language even when CHATLAB_LANG is not set
# (set_language beats the environment), and figures drawn with a font that has the language's glyphs.
SETUP_CELLS = {
    "zh_CN": (
        "# 中文版：检查程序用中文报告（与设置 CHATLAB_LANG=zh 的效果相同），图表使用本机的中文字体\n"
        "import chatlab.i18n\n"
        "import chatlab.plotfonts\n"
        "\n"
        "chatlab.i18n.set_language(\"zh\")\n"
        "cjk_font = chatlab.plotfonts.use_cjk_font()"
    ),
}
SETUP_TAG = "edition-setup"


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


def sections(nb: nbformat.NotebookNode) -> list[range]:
    """The cells of each ``## `` section, heading included (cells before the first heading belong to none)."""
    starts = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("## ")]
    ends = [*starts[1:], len(nb.cells)]
    return [range(start, end) for start, end in zip(starts, ends)]


def answer_key_points(nb: nbformat.NotebookNode) -> list[int]:
    """The key-point cells (本节要点) of the exercise sections: they state the answer.

    An exercise section is a ``## `` section that holds a solution cell; its key points
    close it, after the checker.  The instructor edition keeps them there, the
    student edition leaves them out.
    """
    from .nbcatalog import is_key_points

    found: list[int] = []
    for section in sections(nb):
        if any(is_solution_cell(nb.cells[i]) for i in section):
            found.extend(i for i in section if is_key_points(nb.cells[i]))
    return found


def without_answer_key_points(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    drop = set(answer_key_points(nb))
    nb.cells = [cell for i, cell in enumerate(nb.cells) if i not in drop]
    return nb


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


def default_out_dir(source: Path | None = None, lang: str = "en", instructor: bool = False) -> Path:
    """Where the student edition goes without OUT_DIR: beside the checkout, never inside it.

    A folder inside the clone would be one more untracked folder there (and one a teacher
    might commit next to the answers); ``handout/`` is in .gitignore all the same.  Another
    language or the instructor edition gets its own folder (``chatlab-handout-zh``).
    """
    source = (source or default_source()).resolve()
    root = source.parent if source.name == "notebooks" else source
    suffix = ("" if lang == "en" else "-" + lang.split("_")[0]) + ("-instructor" if instructor else "")
    return root.parent / f"chatlab-handout{suffix}"


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


def catalog_language(lang: str) -> str:
    """``"zh"`` -> ``"zh_CN"``, ``"en"`` -> ``"en"``; a language without notebook catalogs is refused."""
    from .i18n import normalise

    found = normalise(lang)
    if found is None:
        raise SystemExit(f"no notebooks in {lang!r}: the editions are en and zh")
    return found


def handout_catalog(source: Path, lang: str) -> Any:
    """The catalog of the edition's README (``locale/<lang>/handout.po``), up to date with its English."""
    from babel.messages.catalog import Catalog

    from . import nbcatalog

    fresh = Catalog(locale=lang, project="chatlab notebooks", fuzzy=False)
    fresh.add(STUDENT_README, locations=[("chatlab/edition.py", 0)])
    cat = nbcatalog.read_catalog(nbcatalog.catalog_path(source, lang, HANDOUT), lang)
    cat.update(fresh, update_header_comment=False)
    cat.fuzzy = False
    return cat


def translated(nb: nbformat.NotebookNode, source: Path, lang: str, name: str) -> nbformat.NotebookNode:
    """``nb`` in ``lang`` through its catalog; a missing or stale translation stops the build, named."""
    from . import nbcatalog

    path = nbcatalog.catalog_path(source, lang, name)
    out, missing = nbcatalog.translate(nb, nbcatalog.read_catalog(path, lang))
    if missing:
        first = missing[0]
        raise SystemExit(f"{path}: {len(missing)} cells of {name}.ipynb have no current translation "
                         f"(first: cell {first.cell}, {first.text[:50]!r}); "
                         "run python tools/notebook_catalogs.py update and translate them")
    return out


def with_setup_cell(nb: nbformat.NotebookNode, lang: str) -> nbformat.NotebookNode:
    """``nb`` with the edition's setup cell (:data:`SETUP_CELLS`) before its first code cell."""
    import nbformat

    source = SETUP_CELLS.get(lang)
    if source is None:
        return nb
    first_code = next((i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"), len(nb.cells))
    nb.cells.insert(first_code, nbformat.v4.new_code_cell(source, metadata={"tags": [SETUP_TAG]}))
    return nb


def execute(nb: nbformat.NotebookNode, cwd: Path, lang: str) -> nbformat.NotebookNode:
    """Run every cell of ``nb`` in a fresh kernel with ``CHATLAB_LANG=lang``, so chatlab prints in ``lang``."""
    import os

    from nbclient import NotebookClient

    before = os.environ.get("CHATLAB_LANG")
    os.environ["CHATLAB_LANG"] = lang  # the kernel inherits this process's environment
    try:
        NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=nb.metadata.get("kernelspec", {}).get("name", "python3"),
                       resources={"metadata": {"path": str(cwd)}}).execute()
    finally:
        if before is None:
            del os.environ["CHATLAB_LANG"]
        else:
            os.environ["CHATLAB_LANG"] = before
    return nb


def edition_notebook(path: Path, options: Edition) -> nbformat.NotebookNode:
    """One notebook of the edition ``options`` describes."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if options.lang != "en":
        nb = with_setup_cell(translated(nb, path.parent, options.lang, path.stem), options.lang)
        if options.execute:
            nb = execute(nb, path.parent, options.lang)
    if options.instructor:
        return nb
    student = student_notebook(nb, options.enforce_metadata)
    # The English student edition agrees cell for cell with nbgrader's release (tests/test_nbgrader_course.py);
    # a translated one leaves out the key points of the exercise sections, which come after the checker.
    return student if options.lang == "en" else without_answer_key_points(student)


def handout_readme(source: Path, lang: str) -> str:
    if lang == "en":
        return STUDENT_README
    from . import nbcatalog

    text = nbcatalog.read_catalog(nbcatalog.catalog_path(source, lang, HANDOUT), lang).get(STUDENT_README)
    if text is None or text.fuzzy or not text.string:
        path = nbcatalog.catalog_path(source, lang, HANDOUT)
        raise SystemExit(f"{path}: the README's translation is missing or stale")
    return str(text.string)


def write_edition(out_dir: Path, options: Edition) -> list[Path]:
    """Write the edition ``options`` describes of every ``NN_*.ipynb`` into ``out_dir``; return the paths."""
    if not options.instructor:
        _require_nbgrader()  # before anything is imported or written: say how to install it (it brings nbformat)
    import nbformat

    source = options.source or default_source()
    notebooks = sorted(source.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise SystemExit(f"no notebooks (NN_name.ipynb) in {source}")
    if out_dir.resolve() == source.resolve():
        raise SystemExit("the student edition must not overwrite the instructor notebooks: choose another OUT_DIR")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        if options.progress:
            print(f"{path.name} ...", flush=True)
        target = out_dir / path.name
        nbformat.write(edition_notebook(path, options), target)
        written.append(target)
    (out_dir / "README.md").write_text(handout_readme(source, options.lang), encoding="utf-8")
    return written


def write_student_edition(out_dir: Path, source: Path | None = None, enforce_metadata: bool = True) -> list[Path]:
    """Write the English student edition of every ``NN_*.ipynb`` in ``source`` into ``out_dir``; return the paths."""
    return write_edition(out_dir, Edition(source=source, enforce_metadata=enforce_metadata))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chatlab student-edition",
        description=_("Write the student edition of the notebooks: solutions replaced by stubs "
                      "(nbgrader's ClearSolutions), exercise outputs cleared (ClearOutput), "
                      "every other output kept. With --lang zh, the Chinese edition: the prose "
                      "from notebooks/locale/zh_CN/*.po, run with CHATLAB_LANG=zh."))
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, nargs="?", default=None,
                        help=_("where to write the notebooks (default: chatlab-handout/ beside the repository,"
                               " outside it; chatlab-handout-zh/ for --lang zh)"))
    parser.add_argument("--source", type=Path, default=None,
                        help=_("the instructor notebooks (default: notebooks/ of this checkout)"))
    parser.add_argument("--wheel", action="store_true",
                        help=_("also build chatlab's wheel into OUT_DIR: what the students install"
                               " (README.md says how)"))
    parser.add_argument("--lang", default="en", help=_("en (default) or zh"))
    parser.add_argument("--instructor", action="store_true",
                        help=_("the instructor edition: solutions and the exercises' key points kept"))
    parser.add_argument("--no-execute", dest="execute", action="store_false",
                        help=_("with --lang zh: keep the outputs of the English run instead of running "
                               "the Chinese notebooks (minutes) with CHATLAB_LANG=zh"))
    args = parser.parse_args(argv)
    lang = catalog_language(args.lang)
    options = Edition(source=args.source, lang=lang, instructor=args.instructor,
                      execute=args.execute and lang != "en", progress=True)
    out_dir = args.out_dir if args.out_dir is not None else default_out_dir(args.source, lang, args.instructor)
    written = write_edition(out_dir, options)
    for path in written:
        print(f"wrote {path}")
    if args.wheel:
        print(f"wrote {build_wheel(out_dir)}")
    kind = "instructor" if args.instructor else "student"
    what = "solutions kept: not for students" if args.instructor else "hand out that folder (solutions removed)"
    print(f"{len(written)} {kind} notebooks in {out_dir}; {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
