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

from collections.abc import Callable

from ..core.transfer import FixedWindow, SendStrategy
from ..experiments.links import Link, get_link
from ..experiments.simulation import SimulatedRun, simulate_transfer
from ..i18n import _
from ._report import Report, run_cases

__all__ = ["check_send_strategy", "check_chat_delay_prediction", "LINKS", "MIN_LINK_SHARE", "MAX_QUEUE_MS"]

# The links of the checker: one chunk of 16 KiB crosses each in under 7 ms, so a
# queueing target of 10 ms is never smaller than one chunk.
LINKS = ("20mbit-20ms", "50mbit-40ms")
MIN_LINK_SHARE = 0.8  # once started, at least this share of the link rate
MAX_QUEUE_MS = 40.0  # the 90th percentile of the queueing delay, once started
FILE_SECONDS = 4.0  # each file keeps the link busy this long at full rate

MakeStrategy = Callable[[], SendStrategy]


def _fresh(make: MakeStrategy) -> SendStrategy:
    try:
        strategy = make()
    except NotImplementedError:
        raise AssertionError(_("not written yet: creating the strategy still raises NotImplementedError (write the missing code, then run this again)")) from None
    if not isinstance(strategy, SendStrategy):
        raise AssertionError(
            _("got a {type}, not a SendStrategy: subclass chatlab.core.transfer.SendStrategy").format(type=type(strategy).__name__)
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


def _check_run(run: SimulatedRun, chunk_size: int) -> None:
    """Fail with a hint when the run broke, stalled or ran out of time."""
    if run.error is not None:
        if isinstance(run.error, NotImplementedError):
            raise AssertionError(_("not written yet: the strategy still raises NotImplementedError (write the missing code, then run this again)"))
        raise AssertionError(
            _("the strategy raised {error}: {message}").format(error=type(run.error).__name__, message=run.error)
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

    def run_on(link_name: str) -> tuple[SimulatedRun, int]:
        strategy = _fresh(make_strategy)
        if link_name not in runs:
            link = get_link(link_name)
            assert link.rate is not None
            runs[link_name] = simulate_transfer(strategy, link, int(link.rate * FILE_SECONDS))
        return runs[link_name], strategy.chunk_size

    def first_window() -> str:
        strategy = _fresh(make_strategy)
        try:
            strategy.start(0.0)
            window = strategy.window_bytes
            allowance = strategy.allowance(0.0)
        except NotImplementedError:
            raise AssertionError(_("not written yet: window_bytes still raises NotImplementedError (write the missing code, then run this again)")) from None
        assert isinstance(window, int), _("window_bytes is a {type}: make it an int (bytes)").format(type=type(window).__name__)
        assert allowance >= strategy.chunk_size, _(
            "at the start the strategy allows {allowance} bytes, less than one chunk of {chunk_size}:"
            " only full chunks are sent, so the transfer could never begin"
        ).format(allowance=allowance, chunk_size=strategy.chunk_size)
        return _("{kib} KiB ({chunks:g} chunks)").format(kib=window // 1024, chunks=window / strategy.chunk_size)

    def delivers_the_file() -> str:
        run, chunk_size = run_on(LINKS[0])
        _check_run(run, chunk_size)
        return _("{mb:.0f} MB in {seconds:.1f} s of simulated time").format(mb=run.file_bytes / 1e6, seconds=run.seconds)

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

    cases: list[tuple[str, Callable[[], str | None]]] = [
        (_("the first window holds a chunk"), first_window),
        (_("delivers a whole file ({link})").format(link=get_link(LINKS[0]).label), delivers_the_file),
    ]
    for name in LINKS:
        label = get_link(name).label
        cases.append((_("fills the link ({link})").format(link=label), fills(name)))
        cases.append((_("keeps the queue short ({link})").format(link=label), short_queue(name)))
    return run_cases("check_send_strategy", cases, show=show)


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
                raise AssertionError(_("not written yet: predict_chat_delay_ms still raises NotImplementedError (write the missing code, then run this again)")) from None
            assert isinstance(predicted, (int, float)), _("returned {value!r}, not a number of milliseconds").format(
                value=predicted
            )
            simulated = simulated_chat_delay_ms(chunks, chunk_size, link)
            window = chunks * chunk_size
            detail = _("predicted {predicted:.0f} ms, the simulated link says {simulated:.0f} ms").format(
                predicted=predicted, simulated=simulated
            )
            if abs(predicted - simulated) > max(3.0, PREDICTION_TOLERANCE * simulated):
                if predicted < link.rtt_ms:
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
            chunks=chunks, chunk=chunk_size // 1024, window=window // 1024, link=get_link(link_name).label
        )
        cases.append((label, case(chunks, chunk_size, link_name)))
    return run_cases("check_chat_delay_prediction", cases, show=show)
