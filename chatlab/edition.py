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
  cells, the checker cell right after each (those outputs would show the
  answer passing) and the later code cells of the exercise's section, which
  print what the answer does.  Every other output stays, so students read the
  teaching outputs before they run anything.

The key points (本节要点) of an exercise section state its answer: the student
edition leaves them out; the instructor notebooks keep them after the checker.

``--lang zh`` makes the Chinese edition of either: the markdown cells and the
exercises' docstrings come from ``notebooks/locale/zh_CN/NN_name.po``
(:mod:`chatlab.nbcatalog`; a missing or stale translation stops the build), a
setup cell sets the language and a CJK font for the figures, and the notebooks
are run with ``CHATLAB_LANG=zh`` so that their outputs are Chinese too (then
the student edition clears the exercises' outputs as above).  ``--instructor``
writes the instructor edition of that language.

nbgrader and Babel are optional dependencies: ``python -m pip install -e ".[instructor]"``.
"""

from __future__ import annotations

import argparse
import re
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


def sections(nb: nbformat.NotebookNode) -> list[range]:
    """The cells of each ``## `` section, heading included (cells before the first heading belong to none)."""
    starts = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("## ")]
    ends = [*starts[1:], len(nb.cells)]
    return [range(start, end) for start, end in zip(starts, ends)]


def answer_output_indices(nb: nbformat.NotebookNode) -> list[int]:
    """The exercise cells, and the later code cells of their section that use the answer.

    A later cell uses the answer when it names what the solution cell defines (its
    functions and classes) or what the checker cell assigns (``report``): the
    instructor run shows the reference answer there (a chat room built on it, a
    measurement with it), a student's run shows theirs.  So the student edition keeps
    none of those outputs, and nbval, which compares stored outputs, has none to compare.
    """
    found = set(exercise_cell_indices(nb))
    for section in sections(nb):
        exercise = [i for i in section if i in found]
        if not exercise:
            continue
        names = {name for i in exercise for name in _defined_names(nb.cells[i].source)}
        uses = re.compile(r"\b(" + "|".join(map(re.escape, sorted(names))) + r")\b") if names else None
        for i in section:
            if i > exercise[0] and nb.cells[i].cell_type == "code" and uses and uses.search(nb.cells[i].source):
                found.add(i)
    return sorted(found)


def _defined_names(source: str) -> set[str]:
    """The top-level functions, classes and variables a cell defines (``def f``, ``class C``, ``report = ...``)."""
    found = re.finditer(r"^(?:(?:async\s+def|def|class)\s+(\w+)|(\w+)\s*=)", source, flags=re.M)
    return {name for match in found for name in match.groups() if name}


def _preprocessors(enforce_metadata: bool) -> list[Any]:
    nbgrader: Any = _require_nbgrader()

    class ClearExerciseOutput(nbgrader.ClearOutput):
        """nbgrader's ClearOutput, applied to the exercise cells and the cells that print what the answer does."""

        def preprocess(self, nb: nbformat.NotebookNode, resources: dict) -> tuple[nbformat.NotebookNode, dict]:
            for index in answer_output_indices(nb):
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


def default_source() -> Path:
    """The instructor notebooks of a source checkout (the wheel does not ship them)."""
    for candidate in (Path(__file__).resolve().parent.parent / "notebooks", Path.cwd() / "notebooks"):
        if any(candidate.glob("[0-9][0-9]_*.ipynb")):
            return candidate
    raise SystemExit("no instructor notebooks found: run this from a clone of the chatlab repository,"
                     " or pass --source DIR")


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
    return without_answer_key_points(student_notebook(nb, options.enforce_metadata))


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
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, help=_("where to write the notebooks"))
    parser.add_argument("--source", type=Path, default=None,
                        help=_("the instructor notebooks (default: notebooks/ of this checkout)"))
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
    written = write_edition(args.out_dir, options)
    for path in written:
        print(f"wrote {path}")
    kind = "instructor" if args.instructor else "student"
    what = "solutions kept: not for students" if args.instructor else "hand out that folder (solutions removed)"
    print(f"{len(written)} {kind} notebooks in {args.out_dir}; {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
