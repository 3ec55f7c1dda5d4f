"""The Chinese edition of the notebooks: every cell translated and current, mostly Chinese, and it runs.

The English notebooks are the source; ``notebooks/locale/zh_CN/NN_name.po`` holds
the Chinese of each markdown cell and exercise docstring, keyed by the English
(chatlab/nbcatalog.py).  An English edit leaves its entry missing or fuzzy, and
``test_every_cell_has_a_current_translation`` fails until a translator updates it
(``python tools/notebook_catalogs.py update``, then edit the ``.po``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("babel", reason='the notebook catalogs need Babel: pip install -e ".[test]"')

from chatlab import edition, nbcatalog

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "notebooks"
NOTEBOOKS = sorted(SOURCE.glob("[0-9][0-9]_*.ipynb"))
LANG = "zh_CN"
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
LATIN = re.compile(r"[A-Za-z]")
MIN_CHINESE_SHARE = 0.6  # of the letters of each notebook's prose, code spans and blocks left out


def catalog(path: Path):
    return nbcatalog.read_catalog(nbcatalog.catalog_path(path.parent, LANG, path.stem), LANG)


def prose(text: str) -> str:
    """Markdown without its code: fenced blocks, inline code spans, links' targets, HTML tags."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return re.sub(r"<[^>]+>", "", text)


def chinese_share(text: str) -> float:
    """Chinese characters over Chinese characters plus Latin letters (a word of English counts its letters)."""
    text = prose(text)
    cjk, latin = len(CJK.findall(text)), len(LATIN.findall(text))
    return cjk / max(1, cjk + latin)


def notebook(cells: list) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    return nb


def exercise() -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(
        'def f(x):\n    """Return x twice."""\n'
        "    ### BEGIN SOLUTION\n    # the answer\n    return 2 * x\n    ### END SOLUTION\n"
        "LIMIT = 3  # seconds at most\n")
    cell.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False, "grade_id": "x",
                                 "schema_version": 3}
    return cell


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_cell_has_a_current_translation(path: Path) -> None:
    found = nbcatalog.problems(nbformat.read(path, as_version=4), catalog(path))
    assert not found, (f"{path.name}: {len(found)} problems; run python tools/notebook_catalogs.py update "
                       f"and translate notebooks/locale/{LANG}/{path.stem}.po:\n" + "\n".join(found[:10]))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_chinese_notebook_is_mostly_chinese(path: Path) -> None:
    nb, _missing = nbcatalog.translate(nbformat.read(path, as_version=4), catalog(path))
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    share = chinese_share(markdown)
    assert share >= MIN_CHINESE_SHARE, f"{path.name}: only {share:.0%} of the prose is Chinese"
    for unit in nbcatalog.units(nb):  # and every markdown cell on its own, not just the total
        if unit.context is None and len(prose(unit.text)) > 80:
            share = chinese_share(unit.text)
            assert share >= 0.3, f"{path.name} cell {unit.cell + 1} is mostly English: {unit.text[:80]!r}"


def test_the_handout_readme_is_translated() -> None:
    readme = edition.handout_readme(SOURCE, LANG)
    assert chinese_share(readme) >= 0.5 and "# YOUR CODE HERE" in readme  # it names packages and commands


def test_an_english_edit_makes_its_translation_stale(tmp_path: Path) -> None:
    nb = notebook([nbformat.v4.new_markdown_cell("## 1. Ports\n\nA port names a process."), exercise()])
    cat = nbcatalog.update(nbcatalog.read_catalog(tmp_path / "x.po", LANG), nb, "x")
    assert len(nbcatalog.problems(nb, cat)) == 3  # the cell, the docstring, the comment outside the solution
    for message in cat:
        if message.id:
            message.string = {"Return x twice.": "返回 x 的两倍。", "seconds at most": "最多几秒"}.get(
                message.id, "## 1. 端口\n\n端口标志进程。")
    nbcatalog.write_catalog(cat, tmp_path / "x.po")
    cat = nbcatalog.read_catalog(tmp_path / "x.po", LANG)
    assert nbcatalog.problems(nb, cat) == []
    chinese, missing = nbcatalog.translate(nb, cat)
    assert missing == [] and chinese.cells[0].source == "## 1. 端口\n\n端口标志进程。"
    assert '"""返回 x 的两倍。"""' in chinese.cells[1].source and "# 最多几秒" in chinese.cells[1].source
    assert "# the answer" in chinese.cells[1].source  # the solution region is the instructor's: left as it is

    nb.cells[0].source = "## 1. Ports\n\nA port names an application process."  # the English is corrected
    assert any("no translation" in p for p in nbcatalog.problems(nb, cat))
    _chinese, missing = nbcatalog.translate(nb, cat)
    assert [m.cell for m in missing] == [0]
    cat = nbcatalog.update(cat, nb, "x")  # the old Chinese is kept, marked fuzzy, the old English beside it
    message = cat.get(nb.cells[0].source)
    assert message.fuzzy and message.string == "## 1. 端口\n\n端口标志进程。" and message.previous_id
    assert any("stale" in p for p in nbcatalog.problems(nb, cat))


def test_the_build_names_a_stale_translation(tmp_path: Path) -> None:
    nb = notebook([nbformat.v4.new_markdown_cell("Hello.")])
    nbformat.write(nb, tmp_path / "00_x.ipynb")
    with pytest.raises(SystemExit, match=r"00_x.ipynb have no current translation \(first: cell 0, 'Hello.'\)"):
        edition.write_edition(tmp_path / "out", edition.Edition(source=tmp_path, lang=LANG, instructor=True))


def test_the_exercises_key_points_come_after_the_checker_and_out_of_the_chinese_student_edition() -> None:
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        answers = edition.answer_key_points(nb)
        assert answers, f"{path.name}: no key points in its exercise section"
        checkers = edition.checker_cell_indices(nb)
        for index in answers:
            assert any(checker < index for checker in checkers), f"{path.name}: key points before the checker"
        student = edition.edition_notebook(path, edition.Edition(lang=LANG))
        assert not edition.answer_key_points(student), f"{path.name}: the Chinese student edition keeps them"
        assert any(edition.is_solution_cell(c) for c in student.cells)


@pytest.fixture(scope="module")
def chinese_edition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("nbgrader")
    out = tmp_path_factory.mktemp("zh")
    command = [sys.executable, "-m", "chatlab", "student-edition", "--lang", "zh", "--no-execute", str(out)]
    done = subprocess.run(command,
                          capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return out


def test_the_chinese_student_edition_is_written(chinese_edition: Path) -> None:
    assert sorted(p.name for p in chinese_edition.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    assert "NotImplementedError" in (chinese_edition / "README.md").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        cells = json.loads((chinese_edition / path.name).read_text(encoding="utf-8"))["cells"]
        text = "".join("".join(c["source"]) for c in cells)
        assert "BEGIN SOLUTION" not in text and "# YOUR CODE HERE" in text
        markdown = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        assert chinese_share(markdown) >= MIN_CHINESE_SHARE


@pytest.mark.slow
def test_a_chinese_student_notebook_runs_and_its_checker_speaks_chinese(monkeypatch: pytest.MonkeyPatch) -> None:
    """Notebook 00 as a Chinese student gets it (run with CHATLAB_LANG=zh), then run again as they would."""
    pytest.importorskip("nbgrader")
    nbclient = pytest.importorskip("nbclient")
    options = edition.Edition(lang=LANG, execute=True)
    student = edition.edition_notebook(SOURCE / "00_first_socket.ipynb", options)
    checker = edition.checker_cell_indices(student)[-1]
    assert student.cells[checker].outputs == []  # the answer's run is not shown
    teaching = "".join(o.get("text", "") for c in student.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "ESTABLISHED" in teaching  # the teaching outputs are there, from the Chinese run

    monkeypatch.setenv("CHATLAB_LANG", "zh")  # the kernel inherits it
    nbclient.NotebookClient(student, timeout=edition.CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(SOURCE)}}).execute()
    printed = "".join(o.get("text", "") for o in student.cells[checker].outputs if o.get("output_type") == "stream")
    assert "未通过" in printed and len(CJK.findall(printed)) > 20, printed


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_chinese_markdown_renders_its_emphasis(path: Path) -> None:
    """CommonMark cannot close ``**`` after a full-width colon before a Chinese character (``**是：**一``)."""
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark").enable("table")
    nb, _missing = nbcatalog.translate(nbformat.read(path, as_version=4), catalog(path))
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            html = re.sub(r"<code>.*?</code>|<pre>.*?</pre>", "", md.render(cell.source), flags=re.DOTALL)
            assert "**" not in html, f"{path.name} cell {index + 1}: a ** shows as text: {html[:200]!r}"
