"""The figures of notebooks 06 and 07, drawn from the rows of :mod:`chatlab.experiments.results`.

Each ``plot_*`` function takes rows and returns a matplotlib Figure;
:func:`save_figures` draws them all and saves them as PNG files named as in
:data:`FIGURE_FILES`.  matplotlib is imported when a figure is drawn, not before.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .links import LINKS, KiB, Link, get_link, is_link_name
from .results import ChatSample, ChatSummary, Results, TracePoint, TransferRow

__all__ = [
    "FIGURE_FILES", "COLORS", "TIMELINE_CONFIGS", "plot_sleep_sweep", "plot_window_sweep", "plot_adaptive_trace",
    "plot_summary", "plot_chat_latency", "plot_chat_timeline", "save_figures",
]  # fmt: skip

FIGURE_FILES = {
    "sleep": "throughput_sleep.png",
    "window": "throughput_window.png",
    "trace": "adaptive_trace.png",
    "summary": "throughput_summary.png",
    "chat": "chat_latency.png",
    "chat_timeline": "chat_latency_timeline.png",
}
COLORS = {"sleep": "tab:red", "fixed": "tab:blue", "adaptive": "tab:green"}
TIMELINE_CONFIGS = ("fifo", "priority-no-limit", "priority", "adaptive", "second-connection")


def _links_in(rows: Iterable[Any]) -> list[Link]:
    names: list[str] = []
    for row in rows:
        if row.link not in names:
            names.append(row.link)
    order = list(LINKS)
    names.sort(key=lambda n: order.index(n) if n in order else len(order))
    found = {}
    for row in rows:
        if isinstance(row, TransferRow):
            found[row.link] = Link(row.link, row.link_mbit, row.link_rtt_ms)
    return [found.get(n) or get_link(n) for n in names]


def _subplots(n: int, rows: int = 1, height: float = 3.2, width: float = 3.6, sharey: Any = False) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, n, figsize=(max(6.0, width * n), height * rows), squeeze=False, sharey=sharey)
    return fig, axes


def _link_line(ax: Any, link: Link) -> None:
    if link.mb_per_s is not None:
        ax.axhline(link.mb_per_s, color="black", linestyle="--", linewidth=1, label="link rate")


def _rtt_line(ax: Any, link: Link) -> None:
    if link.rtt_ms:
        ax.axhline(link.rtt_ms, color="black", linestyle=":", linewidth=1, label="link RTT")


def _label_sweep_column(top: Any, bottom: Any, link: Link, col: int, xlabel: str) -> None:
    """The link lines, titles and axis labels both sweep figures share, on one column of panels."""
    _link_line(top, link)
    _rtt_line(bottom, link)
    top.set_title(link.label, fontsize=10)
    bottom.set_xlabel(xlabel)
    if col == 0:
        top.set_ylabel("throughput (MB/s)")
        bottom.set_ylabel("chunk RTT, median (ms)")


def _sleep_column(top: Any, bottom: Any, rows: Sequence[TransferRow], link: Link, pauses: list[float]) -> None:
    for chunk in sorted({r.chunk_size for r in rows}):
        mine = (r for r in rows if r.link == link.name and r.chunk_size == chunk)
        series = sorted(mine, key=lambda r: r.pause_ms or 0)
        if not series:
            continue
        x = [pauses.index(r.pause_ms or 0.0) for r in series]  # evenly spaced: 0 has no place on a log axis
        top.plot(x, [r.mb_per_s for r in series], marker="o", label=f"{chunk // KiB} KiB chunks")
        bottom.plot(x, [r.rtt_p50_ms for r in series], marker="o", label=f"{chunk // KiB} KiB chunks")


def plot_sleep_sweep(rows: Sequence[TransferRow]) -> Any:
    """Throughput (top) and chunk RTT (bottom) against the pause, one column per link, one line per chunk size."""
    links = _links_in(rows)
    pauses = sorted({r.pause_ms or 0.0 for r in rows})
    fig, axes = _subplots(len(links), rows=2, height=2.8)
    for col, link in enumerate(links):
        top, bottom = axes[0][col], axes[1][col]
        _sleep_column(top, bottom, rows, link, pauses)
        _label_sweep_column(top, bottom, link, col, "pause between chunks (ms)")
        for ax in (top, bottom):
            ax.set_xticks(range(len(pauses)))
            ax.set_xticklabels([f"{p:g}" for p in pauses])
            ax.set_ylim(bottom=0)  # after every line is drawn: a limit set stops the autoscaling
        top.legend(fontsize=7)
        bottom.legend(fontsize=7)
    fig.suptitle("SleepPaced: too slow with long pauses; with short ones the link is full and a queue grows",
                 fontsize=11)
    fig.tight_layout()
    return fig


def _window_ideal(top: Any, bottom: Any, link: Link, x: list[float]) -> None:
    """What a window of W bytes can carry, W per round trip and never more than the link; the BDP marked."""
    if link.rate is None or not link.rtt_ms:
        return
    xs = [x[0] * 2 ** (i / 8) for i in range(int(8 * math.log2(x[-1] / x[0])) + 1)]
    ideal = [min(w * KiB / (link.rtt_ms / 1000), link.rate) / 1e6 for w in xs]
    top.plot(xs, ideal, color="grey", linewidth=1, label="min(window / RTT, rate)")
    bdp = (link.bdp_bytes or 0) / KiB
    for ax in (top, bottom):
        ax.axvline(bdp, color="tab:orange", linestyle=":", linewidth=1.5, label=f"BDP {bdp:.0f} KiB")


def _window_column(top: Any, bottom: Any, series: list[TransferRow], link: Link, col: int) -> None:
    x = [(r.window_chunks or 0) * r.chunk_size / KiB for r in series]
    top.plot(x, [r.mb_per_s for r in series], marker="o", color=COLORS["fixed"], label="measured")
    bottom.plot(x, [r.rtt_p50_ms for r in series], marker="o", color=COLORS["fixed"], label="measured")
    _window_ideal(top, bottom, link, x)
    _label_sweep_column(top, bottom, link, col, "window (KiB)")
    for ax in (top, bottom):
        ax.set_xscale("log", base=2)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{v:g}" for v in x], fontsize=8)
        ax.set_ylim(bottom=0)  # after every line is drawn: a limit set stops the autoscaling


def plot_window_sweep(rows: Sequence[TransferRow]) -> Any:
    """Throughput (top) and chunk RTT (bottom) against the window, one column per link, the BDP marked."""
    links = _links_in(rows)
    fig, axes = _subplots(len(links), rows=2, height=2.8)
    for col, link in enumerate(links):
        top, bottom = axes[0][col], axes[1][col]
        series = sorted((r for r in rows if r.link == link.name), key=lambda r: r.window_chunks or 0)
        if not series:
            continue
        _window_column(top, bottom, series, link, col)
        top.legend(fontsize=7)
    fig.suptitle("FixedWindow: throughput grows as window / RTT until the link is full, then only the queue grows",
                 fontsize=11)
    fig.tight_layout()
    return fig


def _trace_sequence(ax: Any, pts: list[TracePoint], link: Link | None, name: str, row: TransferRow | None) -> None:
    """The top panel: bytes released and acked over time, the link rate as a slope, the throughput in a corner."""
    t = [p.time for p in pts]
    ax.step(t, [p.bytes_sent / 1e6 for p in pts], where="post", color="tab:blue", label="sent (released)")
    ax.step(t, [p.bytes_acked / 1e6 for p in pts], where="post", color="tab:green", label="acked")
    if link is not None and link.mb_per_s is not None:
        ax.plot([0, t[-1]], [0, link.mb_per_s * t[-1]], color="black", linestyle="--", linewidth=1,
                label="link rate")
    ax.set_ylabel("file offset (MB)")
    ax.set_title(link.label if link else name, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    if row is not None:
        ax.text(0.98, 0.04, f"{row.mb_per_s:.2f} MB/s", transform=ax.transAxes, ha="right", fontsize=9)


def _trace_window(ax: Any, pts: list[TracePoint], link: Link | None) -> None:
    """The bottom panel: the window (and the BDP) on the left axis, the RTT samples on the right one."""
    t = [p.time for p in pts]
    ax.plot(t, [p.window_bytes / KiB for p in pts], color="tab:purple", label="window (KiB)")
    if link is not None and link.bdp_bytes:
        ax.axhline(link.bdp_bytes / KiB, color="tab:orange", linestyle=":", label="BDP (KiB)")
    ax.set_ylabel("window (KiB)")
    ax.set_xlabel("time (s)")
    rtt_ax = ax.twinx()
    rt = [(p.time, p.rtt_ms) for p in pts if p.rtt_ms is not None]
    if rt:
        rtt_ax.plot([a for a, _ in rt], [b for _, b in rt], ".", color="tab:red", markersize=3, label="RTT (ms)")
    rtt_ax.set_ylabel("RTT (ms)", color="tab:red")
    rtt_ax.set_ylim(bottom=0)
    ax.set_ylim(bottom=0)
    rtt_ax.set_ylim(top=rtt_ax.get_ylim()[1] * 1.45)  # head room: the points stay below the legend
    ax.set_ylim(top=ax.get_ylim()[1] * 1.45)
    lines = ax.get_legend_handles_labels()
    more = rtt_ax.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper right", ncol=3, framealpha=0.9)


def plot_adaptive_trace(points: Sequence[TracePoint], rows: Sequence[TransferRow] = (), link: str | None = None) -> Any:
    """A tcptrace-style time-sequence plot (bytes sent and acked over time) and the window and RTT beneath it."""
    names = [link] if link else list(dict.fromkeys(p.link for p in points))
    fig, axes = _subplots(len(names), rows=2, height=2.9)
    by_link = {r.link: r for r in rows}
    for col, name in enumerate(names):
        pts = [p for p in points if p.link == name]
        if not pts:
            continue
        the_link = get_link(name) if is_link_name(name) else None
        _trace_sequence(axes[0][col], pts, the_link, name, by_link.get(name))
        _trace_window(axes[1][col], pts, the_link)
    fig.suptitle("AdaptiveWindow: slow start, then a window that holds the RTT near its floor", fontsize=11)
    fig.tight_layout()
    return fig


def _rtt_labels(ax: Any, bars: Any, chosen: list[TransferRow], top: float) -> None:
    """Each bar's median chunk RTT, at the foot of the bar (clear of the link-rate line), or above a short bar."""
    for bar, r in zip(bars, chosen):
        if r.rtt_p50_ms is None:
            continue
        tall = bar.get_height() > top * 0.2
        ax.text(bar.get_x() + bar.get_width() / 2, top * 0.02 if tall else bar.get_height() + top * 0.02,
                f"RTT\n{r.rtt_p50_ms:.0f} ms", ha="center", va="bottom", fontsize=8,
                color="white" if tall else "black", fontweight="bold" if tall else "normal")


def _summary_panel(ax: Any, rows: Sequence[TransferRow], link: Link) -> None:
    order = ["sleep", "fixed", "adaptive"]
    chosen = sorted((r for r in rows if r.link == link.name), key=lambda r: order.index(r.strategy))
    # one short item per line: side by side, "8 x 16 KiB" and "252 KiB chunks" ran together
    names = [f"adaptive\nchunks\n{r.chunk_size // KiB} KiB" if r.strategy == "adaptive"
             else f"{r.strategy}\n" + str(r.setting).replace(" x ", " x\n", 1) for r in chosen]
    bars = ax.bar(range(len(chosen)), [r.mb_per_s for r in chosen], color=[COLORS[r.strategy] for r in chosen])
    top = max([r.mb_per_s for r in chosen] + [link.mb_per_s or 0]) * 1.3
    _rtt_labels(ax, bars, chosen, top)
    _link_line(ax, link)
    ax.set_xticks(range(len(chosen)))
    ax.set_xticklabels(names, fontsize=7)
    ax.set_ylim(0, top or 1)
    ax.set_title(link.label, fontsize=10)
    if link.mb_per_s is not None:
        ax.legend(fontsize=7, loc="upper left")


def plot_summary(rows: Sequence[TransferRow]) -> Any:
    """One panel per link: each strategy's throughput as a bar, the link rate as a line, the chunk RTT on the bar."""
    links = _links_in(rows)
    fig, axes = _subplots(len(links), rows=1, height=3.8, width=2.9)
    for col, link in enumerate(links):
        _summary_panel(axes[0][col], rows, link)
        if col == 0:
            axes[0][col].set_ylabel("throughput (MB/s)")
    fig.suptitle("Throughput of each strategy against the link rate (dashed); median chunk RTT on each bar",
                 fontsize=11)
    fig.tight_layout()
    return fig


def plot_chat_latency(summaries: Sequence[ChatSummary]) -> Any:
    """Chat round-trip time during a transfer: p50 and p99 per configuration (log scale), link RTT marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.45 * len(summaries) + 1.4))
    ys = range(len(summaries))[::-1]
    for y, s in zip(ys, summaries):
        if s.p99_ms is not None:
            ax.barh(y, s.p99_ms, color="tab:orange", alpha=0.5, label="p99" if y == ys[0] else None)
        if s.p50_ms is not None:
            ax.barh(y, s.p50_ms, color="tab:blue", label="p50" if y == ys[0] else None)
            ax.text(s.p99_ms or s.p50_ms, y, f"  {s.p50_ms:.0f} / {s.p99_ms:.0f} ms", va="center", fontsize=8)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([s.label for s in summaries], fontsize=8)
    ax.set_xscale("log")
    rtt = summaries[0].link_rtt_ms if summaries else 0
    if rtt:
        ax.axvline(rtt, color="black", linestyle="--", linewidth=1, label=f"link RTT {rtt:g} ms")
    ax.set_xlabel("chat round-trip time while a file is sent (ms, log scale)")
    link = get_link(summaries[0].link).label if summaries else ""
    ax.set_title(f"Chatting while sending a file ({link})", fontsize=11)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_xlim(right=ax.get_xlim()[1] * 3)
    fig.tight_layout()
    return fig


def _timeline_names(samples: Sequence[ChatSample], configs: Sequence[str] | None) -> list[str]:
    """``configs``, or those of :data:`TIMELINE_CONFIGS` present in ``samples`` (all present if none is)."""
    if configs is not None:
        return list(configs)
    present = list(dict.fromkeys(s.config for s in samples))
    return [c for c in TIMELINE_CONFIGS if c in present] or present


def plot_chat_timeline(
    samples: Sequence[ChatSample], summaries: Sequence[ChatSummary] = (), configs: Sequence[str] | None = None
) -> Any:
    """Each chat line's round-trip time against when it was sent, one series per configuration.

    ``configs``: which configurations to draw (default: :data:`TIMELINE_CONFIGS`, those present).
    """
    import matplotlib.pyplot as plt

    labels = {s.config: s.label for s in summaries}
    fig, ax = plt.subplots(figsize=(8, 4))
    for name in _timeline_names(samples, configs):
        pts = [(s.time, s.rtt_ms) for s in samples if s.config == name and s.rtt_ms is not None]
        if pts:
            ax.plot([a for a, _ in pts], [b for _, b in pts], ".-", markersize=4, linewidth=0.8,
                    label=labels.get(name, name))
    ax.set_yscale("log")
    rtt = summaries[0].link_rtt_ms if summaries else 0
    if rtt:
        ax.axhline(rtt, color="black", linestyle="--", linewidth=1, label=f"link RTT {rtt:g} ms")
    ax.set_xlabel("time since the transfer started (s)")
    ax.set_ylabel("chat round-trip time (ms, log scale)")
    ax.set_title("Each chat line's round trip while the file is sent", fontsize=11)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save_figures(results: Results, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Draw every figure of ``results`` and save it as PNG in ``out_dir`` (names in :data:`FIGURE_FILES`)."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # no display needed from a shell
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    drawings: dict[str, Callable[[], Any]] = {
        "sleep": lambda: plot_sleep_sweep(results.sleep),
        "window": lambda: plot_window_sweep(results.window),
        "trace": lambda: plot_adaptive_trace(results.trace, results.adaptive),
        "summary": lambda: plot_summary(results.summary),
        "chat": lambda: plot_chat_latency(results.chat),
        "chat_timeline": lambda: plot_chat_timeline(results.chat_samples, results.chat),
    }
    written = {}
    for key, draw in drawings.items():
        fig = draw()
        path = out / FIGURE_FILES[key]
        fig.savefig(path, dpi=100, metadata={"Software": None})
        plt.close(fig)
        written[f"{key}_png"] = path
    return written


