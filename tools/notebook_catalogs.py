"""Keep the notebooks' translation catalogs (notebooks/locale/<lang>/NN_name.po) in step with the English.

    python tools/notebook_catalogs.py update [--lang zh_CN] [NOTEBOOK ...]
    python tools/notebook_catalogs.py check  [--lang zh_CN] [NOTEBOOK ...]

``update`` adds an empty entry for every new markdown cell (and exercise docstring
or comment), marks the entry of a changed cell *fuzzy* with its previous English
beside it (``#| msgid``), and keeps entries no cell has any more as obsolete
(``#~``), as ``msgmerge`` does.  Then a translator edits the ``msgstr`` lines and
removes the ``#, fuzzy`` flags.  ``check`` lists what is missing or stale and exits
1 if anything is (``tests/notebooks/test_notebook_catalogs.py`` runs the same check).

Also ``handout``: the catalog of the student edition's README
(``notebooks/locale/<lang>/handout.po``).  See docs/TRANSLATING.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from chatlab import edition, nbcatalog

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _notebooks(paths: list[str]) -> list[Path]:
    if paths:
        return [Path(p) for p in paths]
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def update(paths: list[Path], lang: str) -> int:
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        target = nbcatalog.catalog_path(path.parent, lang, path.stem)
        cat = nbcatalog.update(nbcatalog.read_catalog(target, lang), nb, path.stem)
        nbcatalog.write_catalog(cat, target)
        print(f"{target}: {len(nbcatalog.problems(nb, cat))} entries to translate")
    handout = edition.handout_catalog(NOTEBOOKS, lang)
    nbcatalog.write_catalog(handout, nbcatalog.catalog_path(NOTEBOOKS, lang, edition.HANDOUT))
    return 0


def check(paths: list[Path], lang: str) -> int:
    failed = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        cat = nbcatalog.read_catalog(nbcatalog.catalog_path(path.parent, lang, path.stem), lang)
        found = nbcatalog.problems(nb, cat)
        failed += len(found)
        for line in found:
            print(f"{path.name}: {line}")
    print(f"{failed} problems")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["update", "check"])
    parser.add_argument("notebooks", nargs="*", help="the English notebooks (default: notebooks/NN_*.ipynb)")
    parser.add_argument("--lang", default="zh_CN", help="the catalog's language (default: zh_CN)")
    args = parser.parse_args(argv)
    paths = _notebooks(args.notebooks)
    if args.action == "update":
        return update(paths, args.lang)
    return check(paths, args.lang)


if __name__ == "__main__":
    sys.exit(main())
