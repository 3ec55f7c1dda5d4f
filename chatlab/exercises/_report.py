"""Shared machinery for the notebooks' self-checking exercises.

A checker runs the student's function against a list of named cases and
prints one line per case, so a failure says which condition broke it and why.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Callable, Sequence


@dataclass
class CaseResult:
    name: str
    passed: bool
    detail: str = ""


@dataclass
class Report:
    """The outcome of one checker run; ``bool(report)`` is True when every case passed."""

    title: str
    results: list[CaseResult] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    def summary(self) -> str:
        lines = [f"{self.title}: {self.passed}/{len(self.results)} cases pass"]
        for r in self.results:
            mark = "PASS" if r.passed else "FAIL"
            lines.append(f"  [{mark}] {r.name}" + (f" - {r.detail}" if r.detail else ""))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython shows the summary, not a dataclass dump
        printer.text(self.summary())


def run_cases(title: str, cases: Sequence[tuple[str, Callable[[], str | None]]], show: bool = True) -> Report:
    """Run each ``(name, case)``; a case passes when it returns without raising.

    A case may return a short string to show next to PASS.  An AssertionError's
    message, or any other exception's type and message, is shown next to FAIL.
    """
    report = Report(title)
    for name, case in cases:
        try:
            detail = case() or ""
            report.results.append(CaseResult(name, True, detail))
        except AssertionError as exc:
            report.results.append(CaseResult(name, False, str(exc) or "assertion failed"))
        except Exception as exc:  # the student's code may raise anything; report it, don't crash
            where = traceback.extract_tb(exc.__traceback__)[-1]
            report.results.append(CaseResult(name, False, f"{type(exc).__name__}: {exc} (line {where.lineno})"))
    if show:
        print(report.summary())
    return report
