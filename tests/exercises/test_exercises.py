"""The exercise package's public face: every checker importable from chatlab.exercises,
each passing its reference solution, and no reference solution in the wheel students install."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from chatlab import exercises
from chatlab.exercises._report import NotWrittenYet, differ, returned, student
from solutions.bot import run_bot
from solutions.framing_recv import decode_frames, encode_frame, recv_exact
from solutions.sockopt_select import make_listener, serve_step

ROOT = Path(__file__).resolve().parents[2]


def test_every_checker_is_exported_and_passes_its_reference_solution():
    assert set(exercises.__all__) >= {
        "check_make_listener", "check_select_step", "check_framing", "check_recv_exact", "check_bot",
    }
    assert exercises.check_make_listener(make_listener, show=False)
    assert exercises.check_select_step(serve_step, show=False)
    assert exercises.check_framing(encode_frame, decode_frames, show=False)
    assert exercises.check_recv_exact(recv_exact, show=False)
    assert exercises.check_bot(run_bot, show=False, only="in its room")


def test_nothing_in_the_package_imports_a_solution():
    for path in (ROOT / "chatlab").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "import solution" not in text and ".solutions" not in text, path
    assert not list((ROOT / "chatlab").rglob("solution*.py"))


def test_the_wheel_holds_the_checkers_but_no_solution(tmp_path):
    # Build from a copy, so the worktree gets no build/ or egg-info.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "chatlab", src / "chatlab", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(wheels), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    if done.returncode != 0 and ("No module named" in done.stderr or "invalid command 'bdist_wheel'" in done.stderr):
        pytest.skip(f"cannot build a wheel here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = wheels.glob("chatlab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "chatlab/exercises/recv.py" in names and "chatlab/exercises/bot.py" in names
    modules = [Path(n).stem for n in names if n.endswith(".py")]
    assert not [m for m in modules if m.startswith("solution")], names


# -- the student edition: every checker against an unsolved stub --------------
# nbgrader's ClearSolutions leaves `raise NotImplementedError()` as the body.


def _stub(*args, **kwargs):
    # YOUR CODE HERE
    raise NotImplementedError()


def _stub_returning_none(*args, **kwargs):
    pass


STUB_RUNS = {
    "check_make_listener": lambda stub: exercises.check_make_listener(stub),
    "check_select_step": lambda stub: exercises.check_select_step(stub, only="accepts"),
    "check_framing": lambda stub: exercises.check_framing(stub, stub),
    "check_recv_exact": lambda stub: exercises.check_recv_exact(stub, timeout=0.3),
    "check_bot": lambda stub: exercises.check_bot(stub, only="in its room"),
}


@pytest.mark.parametrize("checker", sorted(STUB_RUNS))
def test_a_checker_run_on_an_unsolved_stub_prints_fail_lines_and_never_raises(checker, capsys):
    report = STUB_RUNS[checker](_stub)  # must not raise
    printed = capsys.readouterr().out
    assert not report and report.results
    assert all(not r.passed for r in report.results), report.summary()  # even "any error will do" cases
    assert printed.count("[FAIL]") == len(report.results)
    assert all("not written yet: _stub() still raises NotImplementedError" in r.detail for r in report.results)


def test_the_whole_select_and_bot_checkers_fail_a_stub_case_by_case(capsys):
    for report in (exercises.check_select_step(_stub), exercises.check_bot(_stub, only="returns")):
        assert report.results and not any(r.passed for r in report.results), report.summary()
        assert all("not written yet" in r.detail for r in report.results)


@pytest.mark.parametrize("checker", ["check_make_listener", "check_framing", "check_recv_exact"])
def test_a_stub_that_returns_none_is_told_about_return(checker, capsys):
    report = STUB_RUNS[checker](_stub_returning_none)
    assert not report
    assert "did you forget to `return`" in report.summary()
    assert "NoneType" not in report.summary()


# -- how failures are worded ------------------------------------------------------


def test_where_names_the_deepest_line_of_the_students_code_not_the_librarys():
    import json

    def parse(text):
        return json.loads(text)  # raises inside json/decoder.py

    def student_fn(text):
        return parse(text + "{")

    report = exercises.run_cases("demo", [("parses", lambda: student(student_fn)("{"))], show=False,
                                 student_fns=[student_fn])
    detail = report.results[0].detail
    assert detail.startswith("JSONDecodeError: ")
    assert f"(line {parse.__code__.co_firstlineno + 1}, in parse)" in detail, detail
    assert "decoder" not in detail


def test_returned_and_differ_say_what_differs():
    assert returned(None, "bytes") == "returned None, expected bytes: did you forget to `return` the result?"
    assert returned("abc", "bytes") == "returned str 'abc', expected bytes"
    assert differ((2, b""), (2, b"x")) == "got (2, b''), expected (2, b'x')"

    class Kind(int):
        def __repr__(self):
            return "2"

    text = differ((Kind(2), bytearray(b"")), (2, b""))
    assert "bytearray" in text
    text = differ((Kind(2), b""), (2, b""))  # issue 10: "(2, b'') vs (2, b'')" read as identical
    assert text == "got (2, b'') [tuple(Kind, bytes of length 0)], expected (2, b'') [tuple(int, bytes of length 0)]"
    same_repr = differ([Kind(3)], [2])
    assert "Kind" in same_repr and "int" in same_repr


def test_not_written_yet_is_no_ordinary_exception():
    wrapped = student(_stub)
    with pytest.raises(NotWrittenYet) as info:
        wrapped()
    assert not isinstance(info.value, Exception)  # `except Exception` in a checker cannot count it as a pass
    assert "not written yet" in str(info.value)


def test_report_passed_is_true_only_when_every_case_passed():
    from chatlab.exercises import CaseResult, Report

    partial = Report("check_x", [CaseResult("a", True), CaseResult("b", False, "why")])
    assert partial.passed == 1 and f"{partial.passed}/{len(partial.results)}" == "1/2"
    assert not partial.passed and not partial.all_passed and not partial  # `assert report.passed` fails
    assert partial.failed == ["b"]
    whole = Report("check_x", [CaseResult("a", True), CaseResult("b", True)])
    assert whole.passed == 2 and whole.passed and whole.all_passed and whole and whole.failed == []
    assert not Report("check_x").all_passed and not Report("check_x").passed  # no case is no pass
    assert "check_x: 1/2 cases pass" in partial.summary()


def test_a_real_checker_with_one_failing_case_is_not_passed():
    def listener_never_listening(port, host="127.0.0.1"):
        import socket

        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        return sock

    report = exercises.check_make_listener(listener_never_listening, show=False)
    assert 0 < report.passed < len(report.results) or report.passed == 0
    assert not report.passed and not report.all_passed
