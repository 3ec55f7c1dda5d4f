"""check_predictions (notebook 01, exercise 1): right predictions pass, wrong ones FAIL with the lesson."""

from __future__ import annotations

import os

import pytest

from chatlab.exercises import check_predictions
from chatlab.exercises.predictions import option_after_bind, the_client_closes_first, two_live_listeners

RIGHT = ("client", "bound", "bound") if os.name == "nt" else ("client", "EADDRINUSE", "EADDRINUSE")


def my_predictions() -> tuple[str, str, str]:
    return RIGHT


def test_the_right_predictions_pass() -> None:
    report = check_predictions(my_predictions, show=False)
    assert report.all_passed, report.summary()
    assert check_predictions(RIGHT, show=False).all_passed


def test_the_experiments_show_what_the_lesson_says() -> None:
    assert the_client_closes_first() in ("client", "unknown")
    assert option_after_bind().split()[0] == RIGHT[1]
    assert two_live_listeners().split()[0] == RIGHT[2]


def unsolved() -> tuple[str, str, str]:
    raise NotImplementedError()


# (predictions, the case that must fail, words its hint must contain)
WRONG = [
    (("server",) + RIGHT[1:], "the client closes first", "whichever side sends the first FIN"),
    ((RIGHT[0], "bound" if RIGHT[1] != "bound" else "EADDRINUSE", RIGHT[2]), "after bind()",
     "the moment the kernel checks the port"),
    (RIGHT[:2] + ("bound" if RIGHT[2] != "bound" else "EADDRINUSE",), "live port", "not a listener that is running"),
    (("Client",) + RIGHT[1:], "the client closes first", "spelled exactly so: 'client'"),
    (("client", "address already in use", RIGHT[2]), "after bind()", "not one of the answers"),
    (("client", "EADDRINUSE"), "the client closes first", "return three strings"),
    ("client EADDRINUSE EADDRINUSE", "the client closes first", "return three strings"),
    (lambda: None, "the client closes first", "returned None"),
    (unsolved, "the client closes first", "no prediction yet"),
]


@pytest.mark.parametrize(("predictions", "case", "hint"), WRONG, ids=[str(i) for i in range(len(WRONG))])
def test_a_wrong_prediction_fails_with_a_hint(predictions, case: str, hint: str) -> None:
    report = check_predictions(predictions, show=False)
    assert not report.all_passed and not report.passed
    failed = {r.name: r.detail for r in report.results if not r.passed}
    matching = [name for name in failed if case in name]
    assert matching, report.summary()
    assert hint in failed[matching[0]], report.summary()


def test_an_unsolved_prediction_prints_fail_lines_and_never_raises(capsys: pytest.CaptureFixture[str]) -> None:
    report = check_predictions(unsolved)
    assert report.passed == 0 and len(report.results) == 3
    assert capsys.readouterr().out.count("[FAIL]") == 3
