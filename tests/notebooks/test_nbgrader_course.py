"""Graded with nbgrader, end to end: a course built from notebooks/, a solved and a stub submission.

A temporary nbgrader course gets the instructor notebooks as ``source/chatlab/``;
``nbgrader generate_assignment`` makes ``release/chatlab/``; two students submit,
one the solved notebooks (the instructor's, answers in place) and one the release
as it is (every exercise still ``raise NotImplementedError()``);
``nbgrader autograde`` runs both. The solved copy gets every point, the stub none.

The student edition (``python -m chatlab student-edition``) and nbgrader's release
must agree: the same cells with the same sources and the same nbgrader metadata
(nbgrader clears every output, the student edition only the ones that show a
reference result, which is the one difference).

Slow: autograde executes every notebook twice (several minutes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader", reason='the nbgrader course needs nbgrader: pip install -e ".[test]"')

from chatlab.edition import is_grade_cell, is_solution_cell, write_student_edition  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SOURCE = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ASSIGNMENT = "chatlab"
NBGRADER = [sys.executable, "-m", "nbgrader"]


def points_in(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    return sum(float(c.metadata["nbgrader"]["points"]) for c in nb.cells if is_grade_cell(c))


def test_every_exercise_has_a_graded_test_cell_with_points() -> None:
    """Fast, but here beside the course it describes: one locked grade cell per exercise, after its checker."""
    for path in SOURCE:
        cells = nbformat.read(path, as_version=4).cells
        solutions = [i for i, c in enumerate(cells) if is_solution_cell(c)]
        grades = [i for i, c in enumerate(cells) if is_grade_cell(c)]
        assert len(grades) == len(solutions), f"{path.name}: {len(solutions)} exercises, {len(grades)} graded cells"
        for sol, grade in zip(solutions, grades):
            meta = cells[grade].metadata["nbgrader"]
            assert meta["points"] > 0 and meta["locked"] is True, (path.name, meta)
            assert meta["grade_id"] == cells[sol].metadata["nbgrader"]["grade_id"] + "-tests", (path.name, meta)
            checker = next(j for j in range(sol + 1, len(cells)) if cells[j].cell_type == "code")
            assert checker < grade, f"{path.name}: the graded cell {grade} comes before the checker cell {checker}"
            source = cells[grade].source
            assert "show=False" in source and "assert" in source and "passed == len(" in source, source
            assert "raises-exception" in cells[grade].metadata.get("tags", []), (
                f"{path.name} cell {grade}: without the tag, Run All stops at the first failing graded cell")


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               # nbgrader runs `alembic` (its database migrations) as a command: this environment's bin first
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    done = subprocess.run(NBGRADER + args, cwd=cwd, env=env, check=False, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("course")
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(root)!r}\n"
        "c.CourseDirectory.course_id = 'chatlab'\n"
        "c.Execute.timeout = 300\n"          # a cell's limit: the checkers of 06-09 take seconds, not minutes
        "c.Execute.execute_retries = 0\n"
        "c.ExecutePreprocessor.timeout = 300\n",
        encoding="utf-8")
    source = root / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    for path in SOURCE:
        shutil.copy(path, source / path.name)
    run(["generate_assignment", ASSIGNMENT, "--force"], root)
    release = root / "release" / ASSIGNMENT
    for student, origin in [("solved", source), ("stub", release)]:
        target = root / "submitted" / student / ASSIGNMENT
        target.mkdir(parents=True)
        for path in SOURCE:
            shutil.copy(origin / path.name, target / path.name)
        (target / "timestamp.txt").write_text("2026-12-07 12:00:00.000000 UTC")
    run(["autograde", ASSIGNMENT, "--force"], root)
    return root


def scores(course: Path, student: str) -> dict[str, tuple[float, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, student)
        return {nb.name: (nb.score, nb.max_score) for nb in submission.notebooks}


@pytest.mark.slow
def test_the_release_has_no_answer(course: Path) -> None:
    for path in SOURCE:
        released = nbformat.read(course / "release" / ASSIGNMENT / path.name, as_version=4)
        text = "\n".join(c.source for c in released.cells)
        assert "BEGIN SOLUTION" not in text and text.count("raise NotImplementedError()") >= 1, path.name


@pytest.mark.slow
def test_the_solved_copy_gets_full_marks(course: Path) -> None:
    got = scores(course, "solved")
    assert sorted(got) == sorted(p.stem for p in SOURCE), got
    for path in SOURCE:
        score, max_score = got[path.stem]
        assert max_score == points_in(path) > 0, (path.name, max_score)
        assert score == max_score, f"{path.name}: the solved notebook got {score} of {max_score}"


@pytest.mark.slow
def test_the_stub_gets_zero(course: Path) -> None:
    got = scores(course, "stub")
    for path in SOURCE:
        score, max_score = got[path.stem]
        assert max_score == points_in(path) > 0, (path.name, max_score)
        assert score == 0, f"{path.name}: the unsolved notebook got {score} of {max_score}"


@pytest.mark.slow
def test_student_edition_and_nbgrader_release_agree(course: Path, tmp_path: Path) -> None:
    """Cell for cell the same sources, cell types and nbgrader metadata; only outputs may differ."""
    edition = tmp_path / "edition"
    write_student_edition(edition, source=ROOT / "notebooks")
    for path in SOURCE:
        ours = nbformat.read(edition / path.name, as_version=4)
        theirs = nbformat.read(course / "release" / ASSIGNMENT / path.name, as_version=4)
        assert len(ours.cells) == len(theirs.cells), path.name
        for index, (a, b) in enumerate(zip(ours.cells, theirs.cells)):
            assert (a.cell_type, a.source) == (b.cell_type, b.source), f"{path.name} cell {index} differs"
            for key in ("grade", "solution", "locked", "points", "grade_id"):
                assert a.metadata.get("nbgrader", {}).get(key) == b.metadata.get("nbgrader", {}).get(key), (
                    f"{path.name} cell {index}: nbgrader {key} differs")
            assert a.metadata.get("editable", True) == b.metadata.get("editable", True), f"{path.name} cell {index}"
