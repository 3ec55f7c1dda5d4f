"""Shared machinery for the notebooks' self-checking exercises.

A checker runs the student's function against a list of named cases and
prints one line per case, so a failure says which condition broke it and why.

What a student sees when their code fails is worded here, once, for every
checker: the line of *their* code an exception came from (not a line deep in
the standard library), ``None`` returned by a function that forgot its
``return``, values whose ``repr`` looks the same, and an exercise that is not
written yet (its body still raises ``NotImplementedError``, as nbgrader's
student edition leaves it).
"""

from __future__ import annotations

import functools
import os
import sysconfig
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from ..i18n import _

__all__ = [
    "CaseResult",
    "PassCount",
    "Report",
    "NotWrittenYet",
    "run_cases",
    "student",
    "where",
    "describe_error",
    "returned",
    "differ",
]


@dataclass
class CaseResult:
    name: str
    passed: bool
    detail: str = ""


class PassCount(int):
    """How many cases passed: an ``int`` that is true only when *every* case passed.

    So ``assert report.passed`` (as a grading cell may write it) fails unless the
    whole exercise passes, while ``f"{report.passed}/{len(report.results)}"`` and
    ``report.passed == 0`` still count.
    """

    all_passed: bool

    def __new__(cls, count: int, all_passed: bool) -> PassCount:
        value = super().__new__(cls, count)
        value.all_passed = all_passed
        return value

    def __bool__(self) -> bool:
        return self.all_passed


@dataclass
class Report:
    """The outcome of one checker run.

    ``report.all_passed`` (also ``bool(report)`` and ``bool(report.passed)``) is True
    only when there was at least one case and every case passed: the one thing a
    grading cell asserts.  ``report.passed`` counts the cases that passed (an int),
    ``report.failed`` lists the names of those that failed, ``report.results`` holds
    one :class:`CaseResult` (``name``, ``passed``, ``detail``) per case.
    """

    title: str
    results: list[CaseResult] = field(default_factory=list)

    @property
    def all_passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    def __bool__(self) -> bool:
        return self.all_passed

    @property
    def passed(self) -> PassCount:
        return PassCount(sum(r.passed for r in self.results), self.all_passed)

    @property
    def failed(self) -> list[str]:
        return [r.name for r in self.results if not r.passed]

    def summary(self) -> str:
        lines = [_("{title}: {passed}/{total} cases pass").format(title=self.title, passed=int(self.passed),
                                                                  total=len(self.results))]
        for r in self.results:
            # TRANSLATORS: the mark of a case that passed, printed as [PASS]
            mark = _("PASS") if r.passed else _("FAIL")
            lines.append(f"  [{mark}] {r.name}" + (f" - {r.detail}" if r.detail else ""))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython shows the summary, not a dataclass dump
        printer.text(self.summary())


# --------------------------------------------------------------------------
# The student's functions
# --------------------------------------------------------------------------


class NotWrittenYet(BaseException):
    """The student's function raised ``NotImplementedError``: the exercise is not done yet.

    A BaseException, so that a case in which any exception is the right answer
    (``except Exception``: "refuse an oversized payload") does not count an
    unwritten stub as a pass; :func:`run_cases` reports it as a FAIL.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return _(
            "not written yet: {name}() still raises NotImplementedError (write its body, then run this again)"
        ).format(name=self.name)


def student(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap the student's ``fn`` so that ``NotImplementedError`` becomes :class:`NotWrittenYet`."""
    name = getattr(fn, "__name__", None) or type(fn).__name__

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NotImplementedError:
            raise NotWrittenYet(name) from None

    return call


def _not_the_students(filename: str) -> bool:
    """True for files of Python itself, of installed packages and of chatlab."""
    roots = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the chatlab package
    path = os.path.abspath(filename)
    return filename.startswith("<frozen") or any(path.startswith(os.path.abspath(root) + os.sep) for root in roots)


def _code_files(fns: Iterable[Callable[..., Any]]) -> set[str]:
    files = set()
    for fn in fns:
        fn = getattr(fn, "__wrapped__", fn)
        code = getattr(fn, "__code__", None)
        if code is not None:
            files.add(code.co_filename)
    return files


def where(exc: BaseException, fns: Iterable[Callable[..., Any]] = ()) -> str:
    """`` (line 7, in recv_exact)``: the deepest line of the student's code in ``exc``'s traceback.

    A ``recv()`` that times out fails inside the standard library; the line
    worth showing is the student's line that called it.  Frames from the
    files of ``fns`` are the student's; failing that, any frame outside
    Python, installed packages and chatlab is.  ``""`` when there is none.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    files = _code_files(fns)
    for pick in (lambda f: f.filename in files, lambda f: not _not_the_students(f.filename)):
        for frame in reversed(frames):
            if pick(frame):
                return _(" (line {line}, in {function})").format(line=frame.lineno, function=frame.name)
    return ""


def describe_error(exc: BaseException, fns: Iterable[Callable[..., Any]] = ()) -> str:
    """``TimeoutError: timed out (line 7, in recv_exact)``, or the not-written-yet hint."""
    if isinstance(exc, NotWrittenYet):
        return str(exc)
    message = str(exc)
    return f"{type(exc).__name__}" + (f": {message}" if message else "") + where(exc, fns)


# --------------------------------------------------------------------------
# Wording of common failures
# --------------------------------------------------------------------------


def returned(value: Any, expected: str, who: str = "") -> str:
    """``returned None: did you forget `return`?`` or ``returned str 'abc', expected bytes``."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    if value is None:
        if who:
            return _("{who} returned None, expected {expected}: did you forget to `return` the result?").format(
                who=who, expected=expected
            )
        return _("returned None, expected {expected}: did you forget to `return` the result?").format(expected=expected)
    if who:
        return _("{who} returned {type} {value}, expected {expected}").format(
            who=who, type=type(value).__name__, value=text, expected=expected
        )
    return _("returned {type} {value}, expected {expected}").format(type=type(value).__name__, value=text,
                                                                    expected=expected)


def _shape(value: Any) -> str:
    """``tuple(int, bytes of length 0)``: the types inside a value, for reprs that look alike."""
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_shape(v) for v in value[:4]) + (", ..." if len(value) > 4 else "")
        return f"{type(value).__name__}({inner})"
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        return _("{type} of length {length}").format(type=type(value).__name__, length=len(value))
    return type(value).__name__


def differ(got: Any, want: Any) -> str:
    """``got X, expected Y``, with the types spelled out when the two reprs read the same."""
    g, w = repr(got), repr(want)
    if g == w:
        return _("got {got} [{got_shape}], expected {want} [{want_shape}]").format(
            got=g, got_shape=_shape(got), want=w, want_shape=_shape(want)
        )
    return _("got {got}, expected {want}").format(got=g, want=w)


# --------------------------------------------------------------------------
# Running the cases
# --------------------------------------------------------------------------


def run_cases(
    title: str,
    cases: Sequence[tuple[str, Callable[[], str | None]]],
    show: bool = True,
    student_fns: Sequence[Callable[..., Any]] = (),
) -> Report:
    """Run each ``(name, case)``; a case passes when it returns without raising.

    A case may return a short string to show next to PASS.  An AssertionError's
    message, or any other exception's type and message with the student's line
    it came from (found through ``student_fns``), is shown next to FAIL.  An
    exercise not written yet fails every case with the same hint.  Nothing the
    student's code raises escapes: a checker never stops a notebook.
    """
    report = Report(title)
    for name, case in cases:
        try:
            detail = case() or ""
            report.results.append(CaseResult(name, True, detail))
        except NotWrittenYet as exc:
            report.results.append(CaseResult(name, False, str(exc)))
        except AssertionError as exc:
            report.results.append(CaseResult(name, False, str(exc) or _("assertion failed")))
        except Exception as exc:  # the student's code may raise anything; report it, don't crash
            report.results.append(CaseResult(name, False, describe_error(exc, student_fns)))
    if show:
        print(report.summary())
    return report
