"""The student edition: made by nbgrader's preprocessors, free of answers, and it runs to the end.

``python -m chatlab student-edition OUT`` is run once for the module; then every
student notebook is executed with nbclient, in a kernel of this environment,
with a time limit per cell. A student who runs all cells of an unsolved
notebook must reach the end without an exception, and every checker must have
printed FAIL lines (not raised) on the stubs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader", reason='the student edition needs nbgrader: pip install -e ".[test]"')
nbclient = pytest.importorskip("nbclient")

from chatlab.edition import (  # noqa: E402
    answer_key_points,
    answer_output_indices,
    exercise_cell_indices,
    is_solution_cell,
    student_notebook,
    write_student_edition,
)

ROOT = Path(__file__).resolve().parent.parent
SOURCE = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT = 180  # seconds per cell: generous for a loaded CI machine; a hung accept() still ends


@pytest.fixture(scope="module")
def edition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("student-edition")
    done = subprocess.run([sys.executable, "-m", "chatlab", "student-edition", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{len(SOURCE)} student notebooks" in done.stdout, done.stdout
    return out


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernel spec that runs this very interpreter (what nbval's --nbval-current-env does)."""
    kernels = tmp_path_factory.mktemp("kernels")
    spec = kernels / "kernels" / "chatlab-current-env"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "chatlab tests", "language": "python",
    }))
    return kernels


def solution_cell(source: str, metadata: bool = True) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if metadata:
        cell.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False, "grade_id": "x",
                                     "schema_version": 3}
    return cell


def small_notebook(metadata: bool = True) -> nbformat.NotebookNode:
    taught = nbformat.v4.new_code_cell("print('taught')", outputs=[nbformat.v4.new_output("stream", text="taught\n")])
    exercise = solution_cell("def f():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION", metadata)
    passed = nbformat.v4.new_output("stream", text="1/1 cases pass\n")
    checker = nbformat.v4.new_code_cell("check_f(f)", outputs=[passed])
    after = nbformat.v4.new_code_cell("print('after')", outputs=[nbformat.v4.new_output("stream", text="after\n")])
    nb = nbformat.v4.new_notebook(cells=[taught, exercise, nbformat.v4.new_markdown_cell("check it:"), checker, after])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    return nb


def test_the_preprocessors_clear_the_answer_and_the_checker_output_only() -> None:
    nb = small_notebook()
    assert exercise_cell_indices(nb) == [1, 3]  # the solution cell and the next code cell
    student = student_notebook(nb)
    assert student.cells[1].source == "def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert student.cells[3].outputs == [] and student.cells[3].source == "check_f(f)"
    assert student.cells[0].outputs[0]["text"] == "taught\n" and student.cells[4].outputs[0]["text"] == "after\n"
    assert "return 42" in nb.cells[1].source  # the instructor's notebook is left as it was


def test_a_solution_region_outside_a_solution_cell_is_refused() -> None:
    with pytest.raises(RuntimeError, match="non-solution cell"):  # nbgrader's own check (enforce_metadata)
        student_notebook(small_notebook(metadata=False))


def test_the_edition_never_overwrites_the_instructor_notebooks(tmp_path: Path) -> None:
    nbformat.write(small_notebook(), tmp_path / "00_x.ipynb")
    with pytest.raises(SystemExit, match="must not overwrite"):
        write_student_edition(tmp_path, source=tmp_path)
    assert "return 42" in (tmp_path / "00_x.ipynb").read_text()


def test_every_notebook_is_written(edition: Path) -> None:
    assert sorted(p.name for p in edition.glob("*.ipynb")) == [p.name for p in SOURCE]
    assert (edition / "README.md").exists()


@pytest.mark.parametrize("source", SOURCE, ids=lambda p: p.name)
def test_no_answer_is_left_and_the_teaching_outputs_are(edition: Path, source: Path) -> None:
    instructor = nbformat.read(source, as_version=4)
    student = nbformat.read(edition / source.name, as_version=4)
    answers = answer_key_points(instructor)
    assert answers, f"{source.name}: no key points after its exercise"  # they state the answer: left out
    instructor.cells = [cell for i, cell in enumerate(instructor.cells) if i not in answers]
    assert len(student.cells) == len(instructor.cells)
    cleared = set(answer_output_indices(instructor))
    for index, (theirs, ours) in enumerate(zip(student.cells, instructor.cells)):
        assert "BEGIN SOLUTION" not in theirs.source and "END SOLUTION" not in theirs.source
        if is_solution_cell(ours):
            assert "# YOUR CODE HERE" in theirs.source and "raise NotImplementedError()" in theirs.source
            answer = ours.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
            body = [line.strip() for line in answer.splitlines() if line.strip() and not line.strip().startswith("#")]
            assert not any(line in theirs.source.splitlines() for line in body if len(line) > 25), (
                f"cell {index}: a line of the answer survived")
        if theirs.cell_type != "code":
            assert theirs.source == ours.source
        elif index in cleared:
            assert theirs.outputs == [] and theirs.execution_count is None, f"cell {index}: outputs not cleared"
        else:
            assert theirs.outputs == ours.outputs, f"cell {index}: a teaching output was lost"


def run(path: Path, kernel_dir: Path) -> nbformat.NotebookNode:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    nb = nbformat.read(path, as_version=4)
    specs = KernelSpecManager(kernel_dirs=[str(kernel_dir / "kernels")])
    km = KernelManager(kernel_name="chatlab-current-env", kernel_spec_manager=specs)
    client = nbclient.NotebookClient(nb, km=km, timeout=CELL_TIMEOUT, kernel_name="chatlab-current-env",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError on the first cell that raises
    return nb


@pytest.mark.parametrize("source", SOURCE, ids=lambda p: p.name)
def test_the_student_edition_runs_to_the_end_and_every_checker_fails(
    edition: Path, kernel_dir: Path, source: Path
) -> None:
    nb = run(edition / source.name, kernel_dir)
    for index, cell in enumerate(nb.cells):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"cell {index} raised {errors[0].get('ename')}"
        streams = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
        assert "Traceback (most recent call last)" not in streams, f"cell {index} printed a traceback:\n{streams}"
    for index in exercise_cell_indices(nb):
        cell = nb.cells[index]
        if is_solution_cell(cell):
            continue
        printed = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
        assert "FAIL" in printed, f"{source.name} cell {index}: the checker printed no FAIL on the stub:\n{printed}"


def test_without_the_instructor_tools_it_says_how_to_install_them(monkeypatch, tmp_path):
    """A plain install has neither nbgrader nor nbformat: a clear message, not an ImportError traceback."""
    from chatlab import edition

    monkeypatch.setitem(sys.modules, "nbgrader", None)  # None in sys.modules: importing it raises ImportError
    monkeypatch.setitem(sys.modules, "nbformat", None)
    with pytest.raises(SystemExit, match=r"needs nbgrader: .*\[instructor\]"):
        edition.write_student_edition(tmp_path / "out")
    assert not (tmp_path / "out").exists()
