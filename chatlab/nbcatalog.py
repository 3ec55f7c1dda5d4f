"""The notebooks in another language: the English notebooks plus one gettext catalog per notebook.

The English notebooks in ``notebooks/`` are the one source.  A translation lives
beside them, one ``.po`` file per notebook (``notebooks/locale/zh_CN/00_first_socket.po``),
in the format every translation tool reads.  Its entries are keyed by the English
text itself (the ``msgid``):

* every markdown cell, whole (a cell tagged ``zh-key-points`` is Chinese already
  and is copied as it is);
* in an exercise cell (an nbgrader solution cell), each docstring and each comment
  outside the ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region: the lines a
  student reads above the stub; and the comments of the graded-tests cell after it.
  These carry the context ``code``.

Code and outputs are shared: a translated notebook differs from the English one in
the text of those cells only.  An English edit changes a msgid, so the translation
of the old text no longer applies: :func:`translate` reports that unit as missing
and :func:`problems` (run by ``tests/notebooks/test_notebook_catalogs.py``) fails until a
translator updates the entry.  ``tools/notebook_catalogs.py update`` brings the
catalogs up to date with the notebooks, keeping the old translation of a changed
cell as a *fuzzy* entry with its previous English (``#| msgid``) beside it, as
``msgmerge`` does: the translator sees what changed and edits the Chinese.

Babel reads and writes the catalogs (``pip install -e ".[instructor]"``).
"""

from __future__ import annotations

import io
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Jupyter's and Babel's tools are optional extras, imported when used
    import nbformat
    from babel.messages.catalog import Catalog

__all__ = [
    "CODE",
    "KEY_POINTS_TAG",
    "Unit",
    "catalog_path",
    "problems",
    "read_catalog",
    "template",
    "translate",
    "translated_text",
    "units",
    "update",
    "write_catalog",
]

KEY_POINTS_TAG = "zh-key-points"  # a markdown cell of Chinese key points (本节要点): not translated
CODE = "code"  # the context of a docstring or comment in an exercise cell
LOCALE_DIR = "locale"  # beside the notebooks: locale/<lang>/<notebook name>.po
HEADER = ("# The translation of notebooks/{name}.ipynb, one entry per markdown cell and per exercise\n"
          "# docstring or comment (msgctxt \"code\"), keyed by the English. See docs/TRANSLATING.md.")
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


@dataclass(frozen=True)
class Unit:
    """One piece of English a student reads: its cell, its context (``None`` or ``"code"``) and its text.

    ``start`` and ``end`` are character offsets in the cell's source (the whole cell
    for markdown, the text between the quotes of a docstring or after ``# `` of a comment).
    """

    cell: int
    context: str | None
    text: str
    start: int
    end: int


def is_key_points(cell: Any) -> bool:
    return cell.cell_type == "markdown" and KEY_POINTS_TAG in cell.get("metadata", {}).get("tags", [])


def is_solution_cell(cell: Any) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution", False))


def is_grade_cell(cell: Any) -> bool:
    """An nbgrader autograded-tests cell (locked, read by students above the exercise's points)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade", False)) and not meta.get("solution", False)


def _offsets(source: str) -> list[int]:
    """The offset of the start of each line (1-based rows, as tokenize counts them)."""
    starts = [0, 0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def _solution_rows(source: str) -> set[int]:
    """The rows (1-based) from ``### BEGIN SOLUTION`` to ``### END SOLUTION``, both included."""
    rows: set[int] = set()
    inside = False
    for row, line in enumerate(source.splitlines(), start=1):
        if line.strip() == BEGIN:
            inside = True
        if inside:
            rows.add(row)
        if line.strip() == END:
            inside = False
    return rows


def _code_piece(token: tokenize.TokenInfo, starts: list[int]) -> tuple[int, int] | None:
    """The offsets of the prose inside a docstring or comment token, or None for any other token."""
    start = starts[token.start[0]] + token.start[1]
    end = starts[token.end[0]] + token.end[1]
    if token.type == tokenize.COMMENT and not token.string.startswith(("###", "# NBVAL")):
        return (start + 2, end) if token.string.startswith("# ") else None
    if token.type == tokenize.STRING and token.string.startswith('"""'):
        return start + 3, end - 3
    return None


def code_units(index: int, source: str) -> Iterator[Unit]:
    """The docstrings and comments of an exercise cell that lie outside its solution region."""
    skip = _solution_rows(source)
    starts = _offsets(source)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):  # not Python: nothing to translate in it
        return
    for token in tokens:
        if token.start[0] in skip:
            continue
        piece = _code_piece(token, starts)
        if piece and source[piece[0]:piece[1]].strip():
            yield Unit(index, CODE, source[piece[0]:piece[1]], piece[0], piece[1])


def units(nb: nbformat.NotebookNode) -> list[Unit]:
    """Every piece of English in ``nb`` that a translation replaces, in reading order."""
    found: list[Unit] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and not is_key_points(cell) and cell.source.strip():
            found.append(Unit(index, None, cell.source, 0, len(cell.source)))
        elif cell.cell_type == "code" and (is_solution_cell(cell) or is_grade_cell(cell)):
            found.extend(code_units(index, cell.source))
    return found


def catalog_path(source: Path, lang: str, name: str) -> Path:
    """``notebooks/locale/zh_CN/00_first_socket.po`` for notebook ``00_first_socket``."""
    return source / LOCALE_DIR / lang / f"{name}.po"


def _babel() -> Any:
    try:
        from babel.messages import catalog, pofile
    except ImportError:  # an optional extra: say how to get it
        raise SystemExit('the translated notebooks need Babel: python -m pip install -e ".[instructor]" '
                         "in the chatlab repository (or python -m pip install Babel)") from None
    return catalog, pofile


def read_catalog(path: Path, lang: str) -> Catalog:
    """The catalog at ``path``, or an empty one for ``lang`` when there is none yet."""
    catalog, pofile = _babel()
    if not path.exists():
        return catalog.Catalog(locale=lang, project="chatlab notebooks", fuzzy=False,
                               header_comment=HEADER.format(name=path.stem))
    with path.open("rb") as f:
        return pofile.read_po(f, locale=lang)


def write_catalog(cat: Catalog, path: Path) -> None:
    """Write ``cat`` as a ``.po`` file: one line per source line, the previous English of fuzzy entries kept."""
    _catalog, pofile = _babel()
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    pofile.write_po(buffer, cat, width=0, include_previous=True, sort_output=False)
    new = buffer.getvalue()
    if path.exists() and _without_date(path.read_bytes()) == _without_date(new):
        return  # nothing but the creation date would change: leave the file (and git) alone
    path.write_bytes(new)


def _without_date(po: bytes) -> bytes:
    return b"\n".join(line for line in po.split(b"\n") if not line.startswith(b'"POT-Creation-Date:'))


def template(nb: nbformat.NotebookNode, name: str, lang: str) -> Catalog:
    """A catalog with one empty entry per unit of ``nb``, located as ``name.ipynb:<cell>``."""
    catalog, _pofile = _babel()
    cat = catalog.Catalog(locale=lang, project="chatlab notebooks", fuzzy=False,
                          header_comment=HEADER.format(name=name))
    for unit in units(nb):  # located by cell number, counted from 1 as a reader counts
        cat.add(unit.text, context=unit.context, locations=[(f"{name}.ipynb", unit.cell + 1)])
    return cat


def update(old: Catalog, nb: nbformat.NotebookNode, name: str) -> Catalog:
    """``old`` brought up to date with ``nb``: new units added, changed ones fuzzy, gone ones obsolete."""
    fresh = template(nb, name, str(old.locale))
    old.update(fresh, no_fuzzy_matching=False, update_header_comment=False)
    old.fuzzy = False  # the header is not a translation
    return old


def translated_text(cat: Catalog, unit: Unit) -> str | None:
    """The translation of ``unit``, or None when it is missing, empty or fuzzy (stale)."""
    message = cat.get(unit.text, context=unit.context)
    if message is None or message.fuzzy or not message.string:
        return None
    return str(message.string)


def translate(nb: nbformat.NotebookNode, cat: Catalog) -> tuple[nbformat.NotebookNode, list[Unit]]:
    """A translated copy of ``nb`` and the units that had no (current) translation (left in English)."""
    import copy

    out = copy.deepcopy(nb)
    missing: list[Unit] = []
    # replace from the end of each cell so that earlier offsets stay valid
    for unit in sorted(units(nb), key=lambda u: (u.cell, -u.start)):
        text = translated_text(cat, unit)
        if text is None:
            missing.append(unit)
            continue
        cell = out.cells[unit.cell]
        cell.source = cell.source[:unit.start] + text + cell.source[unit.end:]
    missing.sort(key=lambda u: (u.cell, u.start))
    return out, missing


def problems(nb: nbformat.NotebookNode, cat: Catalog) -> list[str]:
    """What keeps ``cat`` from being a current translation of ``nb``: missing, stale, unused entries."""
    wanted = {(unit.text, unit.context) for unit in units(nb)}
    found = []
    for unit in units(nb):
        message = cat.get(unit.text, context=unit.context)
        where = f"cell {unit.cell}" + (" (code)" if unit.context else "")
        if message is None or not message.string:
            found.append(f"{where}: no translation for {unit.text[:60]!r}")
        elif message.fuzzy:
            found.append(f"{where}: the English changed, the translation is stale (fuzzy): {unit.text[:60]!r}")
    for message in cat:
        if message.id and (message.id, message.context) not in wanted:
            found.append("an entry no cell has (remove it, or run tools/notebook_catalogs.py update): "
                         f"{str(message.id)[:60]!r}")
    return found
