"""The student edition: made by nbgrader's preprocessors, free of answers, and it runs to the end.

``python -m chatlab student-edition OUT`` is run once for the module; then every
student notebook is executed with nbclient, in a kernel of this environment,
with a time limit per cell. A student who runs all cells of an unsolved
notebook must reach the end without an exception, and every checker must have
printed FAIL lines (not raised) on the stubs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader", reason='the student edition needs nbgrader: pip install -e ".[test]"')
nbclient = pytest.importorskip("nbclient")

from chatlab.edition import (  # noqa: E402
    checker_cell_indices,
    default_out_dir,
    exercise_cell_indices,
    is_grade_cell,
    is_solution_cell,
    student_notebook,
    write_student_edition,
)

ROOT = Path(__file__).resolve().parents[2]
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
    checker = nbformat.v4.new_code_cell("check_f(f)",
                                        outputs=[nbformat.v4.new_output("stream", text="1/1 cases pass\n")])
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
    assert len(student.cells) == len(instructor.cells)
    cleared = set(exercise_cell_indices(instructor))
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


def check_run_to_the_end(nb: nbformat.NotebookNode, name: str) -> None:
    """No cell raised but the graded tests (an AssertionError each: the stubs earn no points); every checker FAILs."""
    for index, cell in enumerate(nb.cells):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if is_grade_cell(cell):
            assert [e.get("ename") for e in errors] == ["AssertionError"], (
                f"{name} cell {index}: a graded cell on a stub must fail its assertion, got {errors}")
        else:
            assert not errors, f"{name} cell {index} raised {errors[0].get('ename')}: {errors[0].get('evalue')}"
        streams = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
        assert "Traceback (most recent call last)" not in streams, f"cell {index} printed a traceback:\n{streams}"
    for index in checker_cell_indices(nb):
        cell = nb.cells[index]
        printed = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
        assert "FAIL" in printed, f"{name} cell {index}: the checker printed no FAIL on the stub:\n{printed}"


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCE, ids=lambda p: p.name)
def test_the_student_edition_runs_to_the_end_and_every_checker_fails(edition: Path, kernel_dir: Path,
                                                                     source: Path) -> None:
    check_run_to_the_end(run(edition / source.name, kernel_dir), source.name)


# ------------------------------------------------------------------ nothing answers an exercise

ALL_PASS = re.compile(r"\b(check_\w+): (\d+)/\2 cases pass"
                      r"|\bgraded: check_\w+ (\d+)/\3 cases pass"
                      r"|\b(\d+) of \4 cases pass")

# Text that answered an exercise in a cell a student reads before (or instead of) solving it.
ANSWERS = {
    "00_first_socket.ipynb": ["把收到的每个字节用 `sendall()` 发回"],
    "01_setsockopt.ipynb": ["TIME_WAIT belongs to the side that sends the first FIN",
                            "An option set after `bind()` comes too late",
                            "does not let two live listeners share",
                            "TIME_WAIT 属于先发送 FIN 的一方", "在 `bind()` 之后才设置选项就太晚了",
                            "在 POSIX 系统上于 `bind()` 之前打开 `SO_REUSEADDR`"],
    "02_select.ipynb": ["写集合只放 outbox 不为空的客户端"],
    "04_recv.ipynb": ["每次最多只要还缺的字节数"],
    "07_chat_while_sending.ipynb": ["`run(stop)` 是唯一的发送者"],
    "08_four_servers.ipynb": ["用 `readexactly()` 读整帧并检查首部"],
}


def outputs_text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif output.get("output_type") in ("execute_result", "display_data"):
            parts.append(str(output.get("data", {}).get("text/plain", "")))
    return "".join(parts)


@pytest.mark.parametrize("source", SOURCE, ids=lambda p: p.name)
def test_no_handout_cell_shows_a_reference_result(edition: Path, source: Path) -> None:
    """No output of the reference answers, no passing verdict, no text that gives an answer away."""
    instructor = nbformat.read(source, as_version=4)
    student = nbformat.read(edition / source.name, as_version=4)
    reference_lines, teaching_lines = set(), set()
    answers = set(exercise_cell_indices(instructor))
    for index, cell in enumerate(instructor.cells):  # what the answers printed in the instructor edition
        lines = {line.strip() for line in outputs_text(cell).splitlines() if len(line.strip()) > 12}
        (reference_lines if index in answers else teaching_lines).update(lines)
    reference_lines -= teaching_lines  # a wrong answer's demonstration passes some cases too, and is kept
    assert reference_lines, f"{source.name}: the instructor edition should show its answers passing"
    for index, cell in enumerate(student.cells):
        text = outputs_text(cell)
        assert not ALL_PASS.search(text), f"{source.name} cell {index}: a passing verdict in the handout:\n{text}"
        shown = {line.strip() for line in text.splitlines()} & reference_lines
        assert not shown, f"{source.name} cell {index} shows a reference result: {sorted(shown)[:3]}"
        for answer in ANSWERS.get(source.name, []):
            assert answer not in cell.source, f"{source.name} cell {index} gives an answer away: {answer!r}"


def test_every_exercise_dependent_output_is_cleared() -> None:
    """The cells that show a reference result (guards and demonstrations on the answer) are found by name."""
    nb = nbformat.read(ROOT / "notebooks" / "04_recv.ipynb", as_version=4)
    cleared = exercise_cell_indices(nb)
    for marker in ("def read_frame(", "truncated = encode("):
        index = next(i for i, c in enumerate(nb.cells) if marker in c.source)
        assert index in cleared, marker
    teaching = next(i for i, c in enumerate(nb.cells) if "captures.read(\"chat.pcap\")" in c.source)
    assert teaching not in cleared  # a teaching output after the exercise stays


def test_the_default_output_is_outside_the_repository() -> None:
    out = default_out_dir(ROOT / "notebooks").resolve()
    assert ROOT.resolve() not in out.parents and out != ROOT.resolve(), out
    assert "/handout/" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_student_readme_gives_a_route_without_the_answers(edition: Path) -> None:
    readme = (edition / "README.md").read_text()
    assert "pip install -e" not in readme and ".whl[notebooks]" in readme, readme


def test_without_the_instructor_tools_it_says_how_to_install_them(monkeypatch, tmp_path):
    """A plain install has neither nbgrader nor nbformat: a clear message, not an ImportError traceback."""
    from chatlab import edition

    monkeypatch.setitem(sys.modules, "nbgrader", None)  # None in sys.modules: importing it raises ImportError
    monkeypatch.setitem(sys.modules, "nbformat", None)
    with pytest.raises(SystemExit, match=r"needs nbgrader: .*\[instructor\]"):
        edition.write_student_edition(tmp_path / "out")
    assert not (tmp_path / "out").exists()
