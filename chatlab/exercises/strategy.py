"""Exercise for notebook 06: a sending strategy of your own, checked on a simulated link.

The student writes a :class:`~chatlab.core.transfer.SendStrategy` subclass (the
notebook's suggestion: an AIMD window driven by the queueing delay) and
checks it::

    from chatlab.exercises import check_send_strategy
    check_send_strategy(AIMDWindow)      # the class, or any function returning a fresh strategy

Each case sends a file with a fresh strategy over a simulated link
(:func:`chatlab.experiments.simulate_transfer`: a bottleneck with a FIFO
queue and a round-trip delay, on a fake clock), so a run takes milliseconds
and gives the same numbers on every machine.  A good strategy keeps the link
busy (throughput near the link rate once it has started) and the queue
short (the delay a chat line sharing the connection would wait); it never
stalls and never raises.  Hints name the concept that went wrong, from what
the run shows (a window stuck at its minimum, a window that only grows).
"""

from __future__ import annotations

import collections
import copy
import heapq
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from ..core.transfer import FixedWindow, SendStrategy
from ..experiments.links import Link, get_link
from ..experiments.simulation import FRAME_OVERHEAD, SimulatedRun, simulate_transfer
from ..i18n import _
from ._report import Report, run_cases


def shown_link(link: Link) -> str:
    """A link's label in the current language (``10 Mbit/s, 5 ms RTT``; ``10 Mbit/s，RTT 5 毫秒``)."""
    if link.mbit is None:
        return _("loopback")
    return _("{rate:g} Mbit/s, {rtt:g} ms RTT").format(rate=link.mbit, rtt=link.rtt_ms)


__all__ = [
    "check_send_strategy",
    "check_chat_delay_prediction",
    "simulate_shared_link",
    "LINKS",
    "MIN_LINK_SHARE",
    "MAX_QUEUE_MS",
    "MIN_FAIR_RATIO",
]

# The links of the checker: one chunk of 16 KiB crosses each in under 7 ms, so a
# queueing target of 10 ms is never smaller than one chunk.
LINKS = ("20mbit-20ms", "50mbit-40ms")
MIN_LINK_SHARE = 0.8  # once started, at least this share of the link rate
MAX_QUEUE_MS = 40.0  # the 90th percentile of the queueing delay, once started
FILE_SECONDS = 4.0  # each file keeps the link busy this long at full rate

# Two flows of the same strategy share FAIR_LINK; the second starts FAIR_DELAY seconds after the
# first, while the first is still below the bandwidth-delay product (so both measure the true base
# RTT).  Over the last half of FAIR_SECONDS the smaller flow's throughput must be at least
# MIN_FAIR_RATIO of the larger one's.  The reference AIMD gets 0.96 there, additive decrease 0.08,
# multiplicative increase 0.3 (simulated, the same on every machine).
FAIR_LINK = "50mbit-40ms"
FAIR_DELAY = 0.5
FAIR_SECONDS = 12.0
MIN_FAIR_RATIO = 0.7
# The wall-clock probe: the same transfer twice, the second with a real pause in every on_ack.
PROBE_LINK = "20mbit-20ms"
PROBE_BYTES = 1_500_000
PROBE_PAUSE = 0.003  # seconds of real time per ack in the slow replay
# The target probe: the same link with a small and a large target; the queue must follow the target.
# The reference's p90 queueing delay there: 6.6 ms and 32.5 ms; a strategy that ignores its target: equal.
TARGET_LINK = "20mbit-20ms"
SMALL_TARGET, LARGE_TARGET = 0.003, 0.030
MIN_TARGET_EFFECT_MS = 10.0  # the large target's p90 queueing delay must exceed the small one's by this much
# The exercise asks to halve the window on congestion: the median cut (window after / before, cuts that
# do not land on the one-chunk floor) must lie in this range (the reference: 0.50; a cut by x0.8: 0.80).
HALVING = (0.45, 0.55)

MakeStrategy = Callable[[], SendStrategy]


def simulate_shared_link(
    strategies: list[SendStrategy], starts: list[float], link: str | Link, seconds: float, max_events: int = 400_000
) -> list[list[tuple[float, int]]]:
    """Run several flows (endless files) through one bottleneck FIFO, on a fake clock.

    The model of :func:`chatlab.experiments.simulate_transfer`, with one queue shared by
    every flow: flow ``i`` starts at ``starts[i]`` and sends full chunks while its
    strategy's allowance lets them go.  Returns, per flow, the ``(time, bytes acked)``
    of every ack until ``seconds``.  An exception from a strategy propagates.
    """
    link = get_link(link)
    rate = link.rate
    if rate is None:
        raise ValueError("simulate_shared_link needs a link with a rate, e.g. '50mbit-40ms'")
    one_way = link.rtt_ms / 2000
    busy_until = 0.0
    events: list[tuple[float, int, str, int, int]] = []  # (time, order, kind, flow, bytes acked)
    order = 0
    log: list[list[tuple[float, int]]] = [[] for _flow in strategies]
    woken: list[float | None] = [None] * len(strategies)
    for i, at in enumerate(starts):
        heapq.heappush(events, (at, order, "start", i, 0))
        order += 1

    def send(i: int, now: float) -> None:
        nonlocal busy_until, order
        strategy = strategies[i]
        while strategy.allowance(now) >= strategy.chunk_size:
            offset = strategy.sent
            strategy.on_sent(now, offset, strategy.chunk_size)
            if strategy.sent <= offset:
                raise RuntimeError("on_sent() did not advance strategy.sent")
            busy_until = max(now, busy_until) + (strategy.chunk_size + FRAME_OVERHEAD) / rate
            heapq.heappush(events, (busy_until + 2 * one_way, order, "ack", i, offset + strategy.chunk_size))
            order += 1
        wake = strategy.wake_at(now)
        if wake is not None and wake != woken[i]:
            woken[i] = wake
            heapq.heappush(events, (max(wake, now), order, "wake", i, 0))
            order += 1

    for _event in range(max_events):
        if not events:
            break
        now, _order, kind, i, acked = heapq.heappop(events)
        if now > seconds:
            break
        if kind == "start":
            strategies[i].start(now)
        elif kind == "ack":
            strategies[i].on_ack(now, acked)
            log[i].append((now, acked))
        send(i, now)
    return log


def _acked_between(log: list[tuple[float, int]], t0: float, t1: float) -> int:
    before = max((acked for t, acked in log if t <= t0), default=0)
    after = max((acked for t, acked in log if t <= t1), default=0)
    return after - before


def _how_it_changes(strategy: SendStrategy) -> str:
    """What the window trace shows about the rules: a fixed-size cut, or growth in proportion."""
    windows = [row.window_bytes for row in strategy.trace]
    drops = [(a - b) / a for a, b in zip(windows, windows[1:]) if a > 0 and b < a]
    big = [d for d in drops if d * max(windows) > strategy.chunk_size / 2]
    if big and sorted(big)[len(big) // 2] < 0.2:
        return _("your window shrinks by small fixed steps (additive decrease)") + "; "
    fastest = _fastest_growth(strategy)
    if fastest >= 1.6:
        return _("your window grows {times:.1f}-fold in one round trip (multiplicative increase)").format(
            times=fastest
        ) + "; "
    return ""


def _fastest_growth(strategy: SendStrategy) -> float:
    """The largest factor the window grew by within one base RTT (from at least 4 chunks); 0 if no RTT yet."""
    rtt = strategy.base_rtt or 0.0
    if rtt <= 0:
        return 0.0
    times = [(row.time, row.window_bytes) for row in strategy.trace]
    fastest = 0.0
    j = 0
    for t0, w0 in times:
        while j < len(times) and times[j][0] < t0 + rtt:
            j += 1
        if j < len(times) and w0 >= 4 * strategy.chunk_size:
            fastest = max(fastest, times[j][1] / w0)
    return fastest


def _class_state(kind: type) -> dict[str, tuple[Any, Any]]:
    """The mutable containers held as class attributes by the student's classes: name -> (object, copy)."""
    found: dict[str, tuple[Any, Any]] = {}
    for cls in kind.__mro__:
        if cls.__module__.startswith("chatlab.") or cls is object:
            continue
        for name, value in vars(cls).items():
            if name not in found and isinstance(value, (list, dict, set, bytearray, collections.deque)):
                found[name] = (value, copy.copy(value))
    return found


def _check_not_shared(before: dict[str, tuple[Any, Any]]) -> None:
    """Fail when a run changed a container that is a class attribute (shared by every instance)."""
    for name, (value, old) in before.items():
        if value != old:
            raise AssertionError(
                _(
                    "the class attribute {name!r} (a {type}) changed during a run: a class attribute is shared by"
                    " every instance, so each new strategy starts with what the earlier ones left in it; per-run"
                    " state belongs to the instance"
                ).format(name=name, type=type(value).__name__)
            )


def _fresh(make: MakeStrategy) -> SendStrategy:
    try:
        strategy = make()
    except NotImplementedError:
        raise AssertionError(_("not written yet: creating the strategy still raises NotImplementedError (write the"
                               " missing code, then run this again)")) from None
    if not isinstance(strategy, SendStrategy):
        raise AssertionError(
            _("got a {type}, not a SendStrategy: subclass chatlab.core.transfer.SendStrategy").format(
                type=type(strategy).__name__
            )
        )
    return strategy


def _mean_window(run: SimulatedRun) -> float:
    """The time-weighted mean window over the run, in bytes."""
    trace = run.trace
    if len(trace) < 2:
        return float(trace[-1].window_bytes) if trace else 0.0
    area = sum(a.window_bytes * (b.time - a.time) for a, b in zip(trace, trace[1:]))
    span = trace[-1].time - trace[0].time
    return area / span if span > 0 else float(trace[-1].window_bytes)


def _explain(exc: BaseException) -> str:
    """The strategy raised ``exc``: say so, with the usual cause when there is one."""
    text = _("the strategy raised {error}: {message}").format(error=type(exc).__name__, message=exc)
    if isinstance(exc, TypeError) and "NoneType" in str(exc):
        text += _(
            " (rtt and base_rtt are None until the first ack of a chunk has come back: check for None"
            " before computing with them)"
        )
    elif isinstance(exc, AttributeError) and any(
        name in str(exc) for name in ("acked", "sent", "trace", "_send_times", "chunk_size")
    ):
        text += _(
            " (SendStrategy keeps sent, acked, rtt and the trace: call super().__init__(chunk_size) in your"
            " __init__, and super().on_ack(now, acked) in your on_ack)"
        )
    return text


def _explained(case: Callable[[], str | None]) -> Callable[[], str | None]:
    """The case, with an exception from the strategy's code explained (failed checks pass through)."""

    def run() -> str | None:
        try:
            return case()
        except AssertionError:
            raise
        except NotImplementedError:
            raise AssertionError(_("not written yet: the strategy still raises NotImplementedError (write the missing"
                                   " code, then run this again)")) from None
        except Exception as exc:
            raise AssertionError(_explain(exc)) from None

    return run


def _check_run(run: SimulatedRun, chunk_size: int) -> None:
    """Fail with a hint when the run broke, stalled or ran out of time."""
    if run.error is not None:
        if isinstance(run.error, NotImplementedError):
            raise AssertionError(_("not written yet: the strategy still raises NotImplementedError (write the missing"
                                   " code, then run this again)"))
        raise AssertionError(_explain(run.error))
    not_int = next((row for row in run.trace if not isinstance(row.window_bytes, int)), None)
    if not_int is not None:
        raise AssertionError(
            _(
                "window_bytes is a {type} ({value!r}) after {kib:.0f} KiB were acked: it must be an int (bytes)"
                " after every ack, not only at the start"
            ).format(
                type=type(not_int.window_bytes).__name__, value=not_int.window_bytes, kib=not_int.bytes_acked / 1024
            )
        )
    if run.stalled:
        kib = run.bytes_acked / 1024
        window = run.trace[-1].window_bytes if run.trace else 0
        hint = (
            _(
                "the window is {window} bytes, less than one chunk of {chunk_size}: only full chunks are sent,"
                " so nothing is in flight and no ack will ever come to grow it (window_bytes is in bytes; keep it"
                " at least one chunk)"
            ).format(window=window, chunk_size=chunk_size)
            if window < chunk_size
            else _(
                "the window has room but the bytes in flight never go down: acks must reach"
                " SendStrategy.on_ack (it keeps acked, rtt and base_rtt up to date)"
            )
        )
        raise AssertionError(_("stalled after {kib:.0f} KiB: {hint}").format(kib=kib, hint=hint))
    if run.timed_out:
        raise AssertionError(
            _(
                "only {share:.0%} of the file was acknowledged after {seconds:.0f} s"
                " of simulated time: the strategy lets too little go at a time"
            ).format(share=run.bytes_acked / run.file_bytes, seconds=run.seconds)
        )


def check_send_strategy(make_strategy: MakeStrategy, *, show: bool = True) -> Report:
    """Send files with fresh strategies from ``make_strategy()`` over simulated links.

    ``make_strategy`` is the strategy's class (called without arguments) or
    any function returning a new :class:`~chatlab.core.transfer.SendStrategy`.
    The cases: the first window, a whole file delivered, and on each link of
    :data:`LINKS` the throughput once started (at least :data:`MIN_LINK_SHARE`
    of the link rate) and the queueing delay (90th percentile at most
    :data:`MAX_QUEUE_MS`).  Prints one line per case (unless ``show=False``)
    and returns the :class:`Report`.
    """
    runs: dict[str, SimulatedRun] = {}
    shared: dict[str, AssertionError] = {}  # link -> the class-attribute sharing its run showed

    def run_on(link_name: str) -> tuple[SimulatedRun, int]:
        strategy = _fresh(make_strategy)
        if link_name not in runs:
            link = get_link(link_name)
            assert link.rate is not None
            before = _class_state(type(strategy))
            runs[link_name] = simulate_transfer(strategy, link, int(link.rate * FILE_SECONDS))
            try:
                _check_not_shared(before)
            except AssertionError as exc:
                shared[link_name] = exc
        if link_name in shared:
            raise shared[link_name]
        return runs[link_name], strategy.chunk_size

    def first_window() -> str:
        strategy = _fresh(make_strategy)
        try:
            strategy.start(0.0)
            window = strategy.window_bytes
            allowance = strategy.allowance(0.0)
        except NotImplementedError:
            raise AssertionError(_("not written yet: window_bytes still raises NotImplementedError (write the missing"
                                   " code, then run this again)")) from None
        assert isinstance(window, int), (
            _("window_bytes is a {type}: make it an int (bytes)").format(type=type(window).__name__))
        assert allowance >= strategy.chunk_size, _(
            "at the start the strategy allows {allowance} bytes, less than one chunk of {chunk_size}:"
            " only full chunks are sent, so the transfer could never begin"
        ).format(allowance=allowance, chunk_size=strategy.chunk_size)
        return _("{kib} KiB ({chunks:g} chunks)").format(kib=window // 1024, chunks=window / strategy.chunk_size)

    def delivers_the_file() -> str:
        run, chunk_size = run_on(LINKS[0])
        _check_run(run, chunk_size)
        return _("{mb:.0f} MB in {seconds:.1f} s of simulated time").format(mb=run.file_bytes / 1e6,
                                                                            seconds=run.seconds)

    def fills(link_name: str) -> Callable[[], str]:
        def case() -> str:
            run, chunk_size = run_on(link_name)
            _check_run(run, chunk_size)
            link = get_link(link_name)
            assert link.rate is not None and link.bdp_bytes is not None
            share = run.steady_mb_per_s() * 1e6 / link.rate
            window = _mean_window(run)
            detail = _("{share:.0%} of the link, mean window {window:.0f} KiB (BDP {bdp:.0f} KiB)").format(
                share=share, window=window / 1024, bdp=link.bdp_bytes / 1024
            )
            if share < MIN_LINK_SHARE:
                if window < 0.9 * link.bdp_bytes:
                    hint = _(
                        "the window stays below the bandwidth-delay product, so the link idles part of every"
                        " round trip. It should grow while the queueing delay is under the target: the queueing"
                        " delay is RTT minus base RTT (the RTT alone includes the link's own delay). And all the"
                        " acks of one window report the same queue: shrink at most once per round trip"
                    )
                else:
                    hint = _(
                        "the window is as large as the link needs on average, but it swings too far: after a cut"
                        " the link idles. All the acks of one window report the same queue: shrink at most once"
                        " per round trip"
                    )
                raise AssertionError(
                    _("{detail}, need {need:.0%}: {hint}").format(detail=detail, need=MIN_LINK_SHARE, hint=hint)
                )
            return detail

        return case

    def short_queue(link_name: str) -> Callable[[], str]:
        def case() -> str:
            run, chunk_size = run_on(link_name)
            _check_run(run, chunk_size)
            link = get_link(link_name)
            assert link.bdp_bytes is not None
            p90 = run.queue_ms(0.9) or 0.0
            detail = _("queueing delay p90 {p90:.0f} ms").format(p90=p90)
            if p90 > MAX_QUEUE_MS:
                biggest = max(row.window_bytes for row in run.trace)
                grows = biggest > 3 * link.bdp_bytes
                hint = (
                    _(
                        "the window reached {kib:.0f} KiB, {times:.0f} times the"
                        " bandwidth-delay product: everything beyond it waits in the queue. It must shrink when"
                        " the queueing delay (RTT minus base RTT) passes the target"
                    ).format(kib=biggest / 1024, times=biggest / link.bdp_bytes)
                    if grows
                    else _("more is in flight than the link carries: the extra waits in the queue")
                )
                raise AssertionError(
                    _("{detail}, allowed {allowed:.0f} ms: a chat line would wait as long; {hint}").format(
                        detail=detail, allowed=MAX_QUEUE_MS, hint=hint
                    )
                )
            return detail

        return case

    def fair_shares() -> str:
        flows = [_fresh(make_strategy), _fresh(make_strategy)]
        random.seed(1)
        try:
            logs = simulate_shared_link(flows, [0.0, FAIR_DELAY], FAIR_LINK, FAIR_SECONDS)
        except NotImplementedError:
            raise AssertionError(_("not written yet: the strategy still raises NotImplementedError (write the missing"
                                   " code, then run this again)")) from None
        except Exception as exc:
            raise AssertionError(_explain(exc)) from None
        half = FAIR_SECONDS / 2
        got = [_acked_between(log, half, FAIR_SECONDS) / half / 1e6 for log in logs]
        detail = _("the first flow {a:.2f} MB/s, the second {b:.2f} MB/s").format(a=got[0], b=got[1])
        small, large = min(got), max(got)
        if large <= 0 or small / large < MIN_FAIR_RATIO:
            bigger = flows[got.index(large)]
            raise AssertionError(
                _(
                    "{detail}: two flows of your strategy sharing one link do not converge towards equal"
                    " shares ({how}the smaller gets {ratio:.0%} of the larger, need {need:.0%}). Chiu and Jain's"
                    " argument: when both cut their windows by the same factor, the larger loses more, so the gap"
                    " shrinks at every cut, and growing both by the same constant keeps it. A cut by a fixed"
                    " amount (additive decrease) keeps the gap, growth in proportion to the window (multiplicative"
                    " increase) keeps the ratio: add a constant per round trip, cut by a factor (AIMD)"
                ).format(
                    detail=detail, how=_how_it_changes(bigger), ratio=small / large if large > 0 else 0.0,
                    need=MIN_FAIR_RATIO,
                )
            )
        return detail

    def own_clock() -> str:
        def replay(pause: float) -> list[tuple[int, int]]:
            strategy = _fresh(make_strategy)
            if pause:
                on_ack = strategy.on_ack

                def slow_on_ack(now: float, acked: int) -> None:
                    time.sleep(pause)  # real time passes; the simulated clock does not care
                    on_ack(now, acked)

                try:
                    strategy.on_ack = slow_on_ack  # type: ignore[method-assign]
                except AttributeError:  # __slots__: nothing to probe with
                    return []
            random.seed(2)
            run = simulate_transfer(strategy, PROBE_LINK, PROBE_BYTES)
            _check_run(run, strategy.chunk_size)
            return [(row.bytes_sent, row.window_bytes) for row in run.trace]

        fast, slow = replay(0.0), replay(PROBE_PAUSE)
        if fast != slow:
            raise AssertionError(
                _(
                    "the same transfer on the same simulated link gave other windows when the computer ran it"
                    " more slowly: your strategy reads the wall clock (time.time(), time.monotonic()). Use the"
                    " `now` that on_ack() and allowance() are given: the simulation runs on its own clock, and"
                    " chatlab's sender passes its clock the same way"
                )
            )
        return _("the same windows at two real speeds")

    def follows_the_target() -> str:
        import inspect

        def made(target: float) -> SendStrategy | None:
            try:
                parameters = inspect.signature(make_strategy).parameters
            except (TypeError, ValueError):
                parameters = {}  # type: ignore[assignment]
            for name in ("target", "target_delay"):  # the exercise's name, chatlab's AdaptiveWindow's
                if name in parameters:
                    strategy = make_strategy(**{name: target})
                    return _fresh(lambda: strategy)
            strategy = _fresh(make_strategy)
            try:
                strategy.target = target  # type: ignore[attr-defined]
            except AttributeError:
                return None
            return strategy

        small, large = made(SMALL_TARGET), made(LARGE_TARGET)
        if small is None or large is None:
            return _("no target parameter: not checked")
        p90s = []
        for strategy in (small, large):
            run = simulate_transfer(strategy, TARGET_LINK, PROBE_BYTES * 3)
            _check_run(run, strategy.chunk_size)
            p90s.append(run.queue_ms(0.9) or 0.0)
        detail = _(
            "queueing delay p90 {small:.0f} ms with a target of {t1:g} ms, {large:.0f} ms with {t2:g} ms"
        ).format(small=p90s[0], t1=SMALL_TARGET * 1000, large=p90s[1], t2=LARGE_TARGET * 1000)
        if p90s[1] - p90s[0] < MIN_TARGET_EFFECT_MS:
            raise AssertionError(
                _(
                    "{detail}: the queue does not follow the target, so your strategy ignores the target it is"
                    " given (a constant such as 0.010 in on_ack?). Compare the queueing delay with self.target,"
                    " the value the caller chose"
                ).format(detail=detail)
            )
        return detail

    def halves() -> str:
        run, chunk_size = run_on(LINKS[0])
        _check_run(run, chunk_size)
        cuts = [b.window_bytes / a.window_bytes for a, b in zip(run.trace, run.trace[1:])
                if b.window_bytes < a.window_bytes and b.window_bytes > chunk_size]
        if not cuts:
            raise AssertionError(_("the window never shrank: halve it when the queueing delay (RTT minus base RTT)"
                                   " passes the target"))
        typical = statistics.median(cuts)
        detail = _("the window cut to {ratio:.0%} of itself (median of {n} cuts)").format(ratio=typical, n=len(cuts))
        low, high = HALVING
        if not low <= typical <= high:
            raise AssertionError(
                _(
                    "{detail}: the exercise asks to halve the window (x0.5) when the queueing delay passes the"
                    " target. A gentler cut leaves the queue longer after each signal, a harsher one idles the"
                    " link; halving is TCP's multiplicative decrease"
                ).format(detail=detail)
            )
        return detail

    cases: list[tuple[str, Callable[[], str | None]]] = [
        (_("the first window holds a chunk"), first_window),
        (_("delivers a whole file ({link})").format(link=shown_link(get_link(LINKS[0]))), delivers_the_file),
    ]
    for name in LINKS:
        label = shown_link(get_link(name))
        cases.append((_("fills the link ({link})").format(link=label), fills(name)))
        cases.append((_("keeps the queue short ({link})").format(link=label), short_queue(name)))
    fair = _("two flows sharing a link converge to fair shares ({link})").format(link=shown_link(get_link(FAIR_LINK)))
    cases.append((fair, fair_shares))
    cases.append((_("halves the window when the queue passes the target"), halves))
    cases.append((_("follows the target it is given ({link})").format(link=shown_link(get_link(TARGET_LINK))),
                  follows_the_target))
    cases.append((_("uses the clock it is given, not the wall clock"), own_clock))
    return run_cases("check_send_strategy", [(name, _explained(case)) for name, case in cases], show=show)


# --------------------------------------------------------------------------
# Predict, then measure: the chat delay behind a fixed window
# --------------------------------------------------------------------------

# (chunks, chunk size, link): a window far above the BDP, one about equal to it, one below it
PREDICTIONS = (
    (8, 16 * 1024, "10mbit-5ms"),
    (64, 16 * 1024, "20mbit-20ms"),
    (16, 16 * 1024, "50mbit-40ms"),
    (2, 16 * 1024, "50mbit-40ms"),
)
PREDICTION_TOLERANCE = 0.2  # within 20% (or 3 ms) of the simulated link


def simulated_chat_delay_ms(chunks: int, chunk_size: int, link: str | Link) -> float:
    """What a chat line sent behind a running FixedWindow transfer waits on the simulated link, in ms:
    the link's RTT plus the median queueing delay once the transfer has started."""
    link = get_link(link)
    assert link.rate is not None
    run = simulate_transfer(FixedWindow(chunks, chunk_size), link, int(link.rate * 2))
    return link.rtt_ms + (run.queue_ms(0.5) or 0.0)


def check_chat_delay_prediction(
    predict_chat_delay_ms: Callable[[int, int, Link], float], *, show: bool = True
) -> Report:
    """Compare ``predict_chat_delay_ms(chunks, chunk_size, link)`` with the simulated link.

    ``link`` is a :class:`chatlab.experiments.Link` (``.rate`` in bytes/s,
    ``.rtt_ms``, ``.bdp_bytes``).  A prediction passes within 20% (or 3 ms) of
    what a chat line waits behind a :class:`~chatlab.core.transfer.FixedWindow`
    transfer on the simulated link of the same rate and RTT.
    """

    def case(chunks: int, chunk_size: int, link_name: str) -> Callable[[], str]:
        def run() -> str:
            link = get_link(link_name)
            assert link.bdp_bytes is not None
            try:
                predicted = predict_chat_delay_ms(chunks, chunk_size, link)
            except NotImplementedError:
                raise AssertionError(_("not written yet: predict_chat_delay_ms still raises NotImplementedError (write"
                                       " the missing code, then run this again)")) from None
            assert isinstance(predicted, (int, float)), _("returned {value!r}, not a number of milliseconds").format(
                value=predicted
            )
            simulated = simulated_chat_delay_ms(chunks, chunk_size, link)
            window = chunks * chunk_size
            detail = _("predicted {predicted:.0f} ms, the simulated link says {simulated:.0f} ms").format(
                predicted=predicted, simulated=simulated
            )
            if abs(predicted - simulated) > max(3.0, PREDICTION_TOLERANCE * simulated):
                if 0 < predicted and abs(predicted * 1000 - simulated) <= PREDICTION_TOLERANCE * simulated:
                    hint = _("that is the right delay in seconds: the function returns milliseconds")
                elif predicted < link.rtt_ms and window < link.bdp_bytes and predicted < link.rtt_ms - 1:
                    hint = _(
                        "this window ({window} KiB) is smaller than the bandwidth-delay product ({bdp:.0f} KiB): the"
                        " queue is empty, not negative (max(0, window - BDP)), and a chat line still needs"
                        " the round trip"
                    ).format(window=window // 1024, bdp=link.bdp_bytes / 1024)
                elif predicted < link.rtt_ms:
                    hint = _("even with no queue at all a chat line needs the round trip")
                elif window <= link.bdp_bytes:
                    hint = _(
                        "this window ({window} KiB) is no bigger than the bandwidth-delay product"
                        " ({bdp:.0f} KiB): the path holds it all in flight, nothing waits in a queue"
                    ).format(window=window // 1024, bdp=link.bdp_bytes / 1024)
                else:
                    hint = _(
                        "only the part of the window beyond the bandwidth-delay product waits in the queue, and"
                        " it drains at the link rate (bytes per second: 1 Mbit/s is 125,000 bytes/s)"
                    )
                raise AssertionError(_("{detail}: {hint}").format(detail=detail, hint=hint))
            return detail

        return run

    cases: list[tuple[str, Callable[[], str | None]]] = []
    for chunks, chunk_size, link_name in PREDICTIONS:
        window = chunks * chunk_size
        label = _("{chunks} x {chunk} KiB = {window} KiB on {link}").format(
            chunks=chunks, chunk=chunk_size // 1024, window=window // 1024, link=shown_link(get_link(link_name))
        )
        cases.append((label, case(chunks, chunk_size, link_name)))
    return run_cases("check_chat_delay_prediction", cases, show=show)
