"""check_send_strategy (notebook 06): the reference passes, classic wrong answers FAIL with a hint.

Each wrong answer is one a student is likely to write for the AIMD exercise;
the test asserts which case fails and that the hint names the concept.
Everything runs on the simulated link: milliseconds, the same on every machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from chatlab import experiments as ex
from chatlab.core.transfer import AdaptiveWindow, FixedWindow, SendStrategy, SleepPaced
from chatlab.exercises import check_chat_delay_prediction, check_send_strategy
from solutions.send_strategy import AIMDWindow

KiB = 1024


class Unsolved(SendStrategy):
    """The student edition's stub: the solution replaced by raise NotImplementedError()."""

    def __init__(self, chunk_size: int = 16 * KiB, target: float = 0.010) -> None:
        super().__init__(chunk_size)
        raise NotImplementedError()


class AdditiveIncreaseOnly(AIMDWindow):
    """Grows by a chunk per round trip and never shrinks."""

    def on_ack(self, now: float, acked: int) -> None:
        newly_acked = acked - self.acked
        SendStrategy.on_ack(self, now, acked)
        if newly_acked > 0:
            self.window += self.chunk_size * newly_acked / self.window


class HalvesOnEveryAck(AIMDWindow):
    """Halves on every ack that reports a queue, not once per round trip."""

    def on_ack(self, now: float, acked: int) -> None:
        newly_acked = acked - self.acked
        SendStrategy.on_ack(self, now, acked)
        if newly_acked <= 0 or self.rtt is None or self.base_rtt is None:
            return
        if self.rtt - self.base_rtt > self.target:
            self.window = max(self.chunk_size, self.window / 2)
        else:
            self.window += self.chunk_size * newly_acked / self.window


class ComparesTheRawRtt(AIMDWindow):
    """Takes the RTT itself for the queueing delay (it includes the link's own delay)."""

    def on_ack(self, now: float, acked: int) -> None:
        newly_acked = acked - self.acked
        SendStrategy.on_ack(self, now, acked)
        if newly_acked <= 0 or self.rtt is None:
            return
        if self.rtt > self.target:
            if now >= self.hold_until:
                self.window = max(self.chunk_size, self.window / 2)
                self.hold_until = now + self.rtt
        else:
            self.window += self.chunk_size * newly_acked / self.window


class ForgetsSuperOnAck(AIMDWindow):
    """Overrides on_ack without calling SendStrategy.on_ack: acked never moves."""

    def on_ack(self, now: float, acked: int) -> None:
        self.window += self.chunk_size / self.window


class WindowInChunks(AIMDWindow):
    """window_bytes returns chunks, not bytes."""

    @property
    def window_bytes(self) -> int:
        return int(self.window // self.chunk_size)


class AdditiveDecrease(AIMDWindow):
    """AIAD: takes one chunk off instead of halving."""

    def on_ack(self, now: float, acked: int) -> None:
        newly_acked = acked - self.acked
        SendStrategy.on_ack(self, now, acked)
        if newly_acked <= 0 or self.rtt is None or self.base_rtt is None:
            return
        if self.rtt - self.base_rtt > self.target:
            if now >= self.hold_until:
                self.window = max(self.chunk_size, self.window - self.chunk_size)  # BUG: additive decrease
                self.hold_until = now + self.rtt
        else:
            self.window += self.chunk_size * newly_acked / self.window


class ExponentialIncreaseForever(AIMDWindow):
    """Slow start that never ends: a chunk per acked chunk doubles the window every round trip."""

    def on_ack(self, now: float, acked: int) -> None:
        newly_acked = acked - self.acked
        SendStrategy.on_ack(self, now, acked)
        if newly_acked <= 0 or self.rtt is None or self.base_rtt is None:
            return
        if self.rtt - self.base_rtt > self.target:
            if now >= self.hold_until:
                self.window = max(self.chunk_size, self.window / 2)
                self.hold_until = now + self.rtt
        else:
            self.window += newly_acked  # BUG: multiplicative increase


class WallClockHold(AIMDWindow):
    """Holds the next decrease for a round trip of *real* time, not of the clock it is given."""

    def on_ack(self, now: float, acked: int) -> None:
        newly_acked = acked - self.acked
        SendStrategy.on_ack(self, now, acked)
        if newly_acked <= 0 or self.rtt is None or self.base_rtt is None:
            return
        if self.rtt - self.base_rtt > self.target:
            if time.monotonic() >= self.hold_until:  # BUG: the wall clock
                self.window = max(self.chunk_size, self.window / 2)
                self.hold_until = time.monotonic() + self.rtt
        else:
            self.window += self.chunk_size * newly_acked / self.window


class ForgetsNone(AIMDWindow):
    """Computes with rtt before the first sample exists."""

    def on_ack(self, now: float, acked: int) -> None:
        queueing = self.rtt - self.base_rtt  # BUG: None before the first ack
        SendStrategy.on_ack(self, now, acked)
        if queueing > self.target:
            self.window = max(self.chunk_size, self.window / 2)
        else:
            self.window += self.chunk_size * self.chunk_size / self.window


class ForgetsSuperInit(AIMDWindow):
    """Sets its own fields and never calls SendStrategy.__init__."""

    def __init__(self) -> None:  # BUG: no super().__init__(chunk_size)
        self.chunk_size = 16 * KiB
        self.target = 0.010
        self.window = 2.0 * self.chunk_size
        self.hold_until = 0.0


class FloatWindow(AIMDWindow):
    """From a reviewer: window_bytes an int at the start, a float after the first ack."""

    @property
    def window_bytes(self) -> int:
        return self.window if self.acked else int(self.window)  # type: ignore[return-value]


class SharedSamples(AIMDWindow):
    """From a reviewer: its RTT samples a class attribute, shared by every instance (and every run)."""

    samples: list[float] = []  # BUG: one list for all instances

    def on_ack(self, now: float, acked: int) -> None:
        new = acked - self.acked
        SendStrategy.on_ack(self, now, acked)
        if new <= 0 or self.rtt is None:
            return
        self.samples.append(self.rtt)
        if self.rtt - min(self.samples) > self.target:
            if now >= self.hold_until:
                self.window = max(self.chunk_size, self.window / 2)
                self.hold_until = now + self.rtt
        else:
            self.window += self.chunk_size * new / self.window


class IgnoresTheTarget(AIMDWindow):
    """Compares the queueing delay with a constant 10 ms: the target the caller chose means nothing."""

    def on_ack(self, now: float, acked: int) -> None:
        newly_acked = acked - self.acked
        SendStrategy.on_ack(self, now, acked)
        if newly_acked <= 0 or self.rtt is None or self.base_rtt is None:
            return
        if self.rtt - self.base_rtt > 0.010:  # BUG: self.target
            if now >= self.hold_until:
                self.window = max(self.chunk_size, self.window / 2)
                self.hold_until = now + self.rtt
        else:
            self.window += self.chunk_size * newly_acked / self.window


class DropsTheTargetArgument(AIMDWindow):
    """Takes a target, and stores 10 ms whatever it was."""

    def __init__(self, chunk_size: int = 16 * KiB, target: float = 0.010) -> None:
        super().__init__(chunk_size)
        self.target = 0.010  # BUG: self.target = target


class CutsByFourFifths(AIMDWindow):
    """Multiplicative decrease, but by x0.8 where the exercise asks to halve."""

    def on_ack(self, now: float, acked: int) -> None:
        newly_acked = acked - self.acked
        SendStrategy.on_ack(self, now, acked)
        if newly_acked <= 0 or self.rtt is None or self.base_rtt is None:
            return
        if self.rtt - self.base_rtt > self.target:
            if now >= self.hold_until:
                self.window = max(self.chunk_size, self.window * 0.8)  # BUG: halve
                self.hold_until = now + self.rtt
        else:
            self.window += self.chunk_size * newly_acked / self.window


def big_fixed_window() -> SendStrategy:
    return FixedWindow(chunks=64, chunk_size=16 * KiB)


def small_fixed_window() -> SendStrategy:
    return FixedWindow(chunks=4, chunk_size=16 * KiB)


def sleep_paced() -> SendStrategy:
    return SleepPaced(chunk_size=16 * KiB, pause=0.005)


# (wrong answer, a case that must fail, words its hint must contain)
WRONG_ANSWERS: list[tuple[Callable[[], SendStrategy], str, str]] = [
    (Unsolved, "the first window", "not written yet"),
    (AdditiveIncreaseOnly, "keeps the queue short", "must shrink"),
    (HalvesOnEveryAck, "fills the link (50 Mbit/s", "once per round trip"),
    (ComparesTheRawRtt, "fills the link (20 Mbit/s", "RTT minus base RTT"),
    (ForgetsSuperOnAck, "delivers a whole file", "SendStrategy.on_ack"),
    (WindowInChunks, "the first window", "less than one chunk"),
    (WindowInChunks, "delivers a whole file", "in bytes"),
    (big_fixed_window, "keeps the queue short (20 Mbit/s", "bandwidth-delay product"),
    (small_fixed_window, "fills the link (50 Mbit/s", "below the bandwidth-delay product"),
    (sleep_paced, "keeps the queue short (20 Mbit/s", "waits in the queue"),
    (AdditiveDecrease, "two flows sharing a link", "additive decrease"),
    (ExponentialIncreaseForever, "two flows sharing a link", "multiplicative increase"),
    (WallClockHold, "uses the clock it is given", "wall clock"),
    (ForgetsNone, "delivers a whole file", "check for None"),
    (ForgetsSuperInit, "delivers a whole file", "super().__init__(chunk_size)"),
    (FloatWindow, "delivers a whole file", "after every ack"),
    (SharedSamples, "delivers a whole file", "class attribute 'samples'"),
    (IgnoresTheTarget, "follows the target it is given", "ignores the target"),
    (DropsTheTargetArgument, "follows the target it is given", "ignores the target"),
    (CutsByFourFifths, "halves the window", "asks to halve the window"),
]


class AIMDByRoundTrips(SendStrategy):
    """A correct AIMD written differently: counts round trips by acked bytes, not by time."""

    def __init__(self, chunk_size: int = 16 * KiB, target: float = 0.010) -> None:
        super().__init__(chunk_size)
        self.target = target
        self.cwnd = 2 * chunk_size
        self.cut_at = -1  # no cut until the bytes sent after the last one are acked

    @property
    def window_bytes(self) -> int:
        return max(self.chunk_size, int(self.cwnd))

    def _on_ack(self, now: float, newly_acked: int, rtt: float | None) -> None:
        if rtt is None or self.base_rtt is None:
            return
        if rtt - self.base_rtt > self.target:
            if self.acked > self.cut_at:
                self.cwnd = max(self.chunk_size, self.cwnd * 0.5)
                self.cut_at = self.sent  # one cut per window of data
        else:
            self.cwnd += self.chunk_size * newly_acked / self.cwnd


@pytest.mark.parametrize("make", [AIMDByRoundTrips])
def test_a_correct_strategy_written_differently_passes(make: Callable[[], SendStrategy]) -> None:
    report = check_send_strategy(make, show=False)
    assert report.all_passed, report.summary()


def test_the_reference_and_the_library_strategy_pass() -> None:
    report = check_send_strategy(AIMDWindow, show=False)
    assert report, report.summary()
    # chatlab's own strategy is not the AIMD the exercise asks for: it moves towards its target like
    # LEDBAT instead of halving; every other case passes.
    report = check_send_strategy(AdaptiveWindow, show=False)
    failed = [r.name for r in report.results if not r.passed]
    assert failed == ["halves the window when the queue passes the target"], report.summary()


@pytest.mark.parametrize(
    ("make", "case", "hint"), WRONG_ANSWERS, ids=[f"{getattr(m, '__name__', m)}-{c}" for m, c, _ in WRONG_ANSWERS]
)
def test_a_classic_wrong_answer_fails_with_a_hint(make: Callable[[], SendStrategy], case: str, hint: str) -> None:
    report = check_send_strategy(make, show=False)
    assert not report
    failed = {r.name: r.detail for r in report.results if not r.passed}
    matching = [name for name in failed if name.startswith(case)]
    assert matching, f"no failing case starts with {case!r}: {report.summary()}"
    assert hint in failed[matching[0]], failed[matching[0]]


def test_an_unsolved_stub_prints_fail_lines_and_never_raises(capsys: pytest.CaptureFixture[str]) -> None:
    class StubbedOnAck(AIMDWindow):
        def on_ack(self, now: float, acked: int) -> None:
            raise NotImplementedError()

    for stub in (Unsolved, StubbedOnAck):
        report = check_send_strategy(stub)
        out = capsys.readouterr().out
        assert report.passed < len(report.results)
        assert "[FAIL]" in out and "not written yet" in out


def test_the_simulated_link_is_deterministic_and_matches_the_link_model() -> None:
    link = ex.get_link("20mbit-20ms")
    assert link.rate is not None and link.bdp_bytes is not None
    first = ex.simulate_transfer(FixedWindow(chunks=64, chunk_size=16 * KiB), link, 4_000_000)
    again = ex.simulate_transfer(FixedWindow(chunks=64, chunk_size=16 * KiB), link, 4_000_000)
    assert first.completed and first.queue_delays == again.queue_delays
    assert first.mb_per_s == pytest.approx(link.rate / 1e6, rel=0.05)
    # 1 MiB in flight on a path that holds one BDP: the rest waits, (window - BDP) / rate
    expected_ms = (64 * 16 * KiB - link.bdp_bytes) / link.rate * 1000
    assert first.queue_ms(0.5) == pytest.approx(expected_ms, rel=0.1)
    # a window of one chunk never queues
    single = ex.simulate_transfer(FixedWindow(chunks=1, chunk_size=16 * KiB), link, 1_000_000)
    assert single.completed and single.queue_ms(0.9) == 0


def test_a_strategy_that_allows_nothing_is_reported_as_stalled() -> None:
    run = ex.simulate_transfer(WindowInChunks(), "20mbit-20ms", 1_000_000)
    assert run.stalled and not run.completed and run.bytes_acked == 0


# ------------------------------------------------ predict, then measure


def predicted_ms(chunks: int, chunk_size: int, link: ex.Link) -> float:
    """The reference: the round trip, plus the window beyond the BDP drained at the link rate."""
    assert link.rate is not None and link.bdp_bytes is not None
    return link.rtt_ms + max(0.0, chunks * chunk_size - link.bdp_bytes) / link.rate * 1000


def whole_window_queues(chunks: int, chunk_size: int, link: ex.Link) -> float:
    assert link.rate is not None
    return link.rtt_ms + chunks * chunk_size / link.rate * 1000


def forgets_the_round_trip(chunks: int, chunk_size: int, link: ex.Link) -> float:
    assert link.rate is not None and link.bdp_bytes is not None
    return max(0.0, chunks * chunk_size - link.bdp_bytes) / link.rate * 1000


def megabits_as_bytes(chunks: int, chunk_size: int, link: ex.Link) -> float:
    assert link.mbit is not None and link.bdp_bytes is not None
    return link.rtt_ms + max(0.0, chunks * chunk_size - link.bdp_bytes) / (link.mbit * 1e6) * 1000


def window_in_chunks(chunks: int, chunk_size: int, link: ex.Link) -> float:
    assert link.rate is not None and link.bdp_bytes is not None
    return link.rtt_ms + max(0.0, chunks - link.bdp_bytes) / link.rate * 1000


def answers_in_seconds(chunks: int, chunk_size: int, link: ex.Link) -> float:
    return predicted_ms(chunks, chunk_size, link) / 1000


def negative_queue(chunks: int, chunk_size: int, link: ex.Link) -> float:
    assert link.rate is not None and link.bdp_bytes is not None
    return link.rtt_ms + (chunks * chunk_size - link.bdp_bytes) / link.rate * 1000  # no max(0, ...)


def one_way_delay(chunks: int, chunk_size: int, link: ex.Link) -> float:
    return predicted_ms(chunks, chunk_size, link) - link.rtt_ms / 2


def unsolved_prediction(chunks: int, chunk_size: int, link: ex.Link) -> float:
    raise NotImplementedError()


PREDICTION_WRONG_ANSWERS = [
    (whole_window_queues, "only the part of the window beyond the bandwidth-delay product"),
    (forgets_the_round_trip, "needs the round trip"),
    (megabits_as_bytes, "1 Mbit/s is 125,000 bytes/s"),
    (window_in_chunks, "waits in the queue"),
    (unsolved_prediction, "not written yet"),
    (answers_in_seconds, "returns milliseconds"),
    (negative_queue, "not negative"),
    (one_way_delay, "needs the round trip"),
]


def test_the_reference_prediction_passes() -> None:
    report = check_chat_delay_prediction(predicted_ms, show=False)
    assert report, report.summary()


@pytest.mark.parametrize(("predict", "hint"), PREDICTION_WRONG_ANSWERS,
                         ids=[f.__name__ for f, _ in PREDICTION_WRONG_ANSWERS])
def test_a_wrong_prediction_fails_with_a_hint(predict: Callable[[int, int, ex.Link], float], hint: str) -> None:
    report = check_chat_delay_prediction(predict, show=False)
    assert not report
    assert any(hint in r.detail for r in report.results if not r.passed), report.summary()
