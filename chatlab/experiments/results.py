"""The rows the experiments produce, and their CSV files.

Each measurement is one dataclass row (:class:`TransferRow`, :class:`TracePoint`,
:class:`ChatSummary`, :class:`ChatSample`); :func:`write_csv` and :func:`read_csv`
turn lists of them into CSV files and back, equal to what was written (six
significant digits, ``None`` as an empty cell).  :class:`Results` holds one run's
rows and :func:`load_results` reads a directory written by
:func:`chatlab.experiments.run_all` back.  Pure: no socket, no client, no server.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .links import KiB

__all__ = [
    "TransferRow", "TracePoint", "ChatSummary", "ChatSample", "Results", "CSV_FILES", "CHUNK",
    "SUMMARY_SLEEP", "SUMMARY_WINDOW", "summary_rows", "write_csv", "read_csv", "load_results",
]  # fmt: skip

CHUNK = 16 * KiB  # the chunk size of the window sweep (SleepPaced and FixedWindow default to 64 KiB)
# The settings the summary figure compares: the seed's way (a 16 KiB chunk, then
# a fixed pause), a window of 16 KiB chunks guessed once, and the adaptive window
# with AdaptiveWindow's defaults (32 KiB chunks).
SUMMARY_SLEEP = {"chunk_size": CHUNK, "pause_ms": 5.0}
SUMMARY_WINDOW = {"chunk_size": CHUNK, "window_chunks": 8}


@dataclass
class TransferRow:
    """One transfer: its settings, its throughput and how long its chunks waited.

    ``rtt_*_ms`` are the sender's RTT samples: from the moment the strategy
    released a chunk to the ack that covered it.  Above the link's own RTT
    (``link_rtt_ms``) that time is queueing: in the sender's process, the
    kernel's buffers, the link's queue.  A chat line sent behind those chunks
    waits about as long.  ``completed`` is false when the run hit its time
    limit; throughput is then bytes acked so far over the time so far.
    """

    experiment: str  # "sleep", "window", "adaptive" (or anything a caller chooses)
    link: str
    link_mbit: float | None
    link_rtt_ms: float
    strategy: str  # "sleep", "fixed", "adaptive"
    chunk_size: int
    pause_ms: float | None  # SleepPaced only
    window_chunks: int | None  # FixedWindow only
    file_bytes: int
    bytes_acked: int
    seconds: float
    mb_per_s: float
    completed: bool
    rtt_min_ms: float | None
    rtt_p50_ms: float | None
    rtt_max_ms: float | None
    max_in_flight: int  # most bytes released but not acked at once
    mean_window: float | None  # AdaptiveWindow: mean window in bytes over the transfer
    peak_server_queue: int  # the server's largest per-client queue, bytes

    @property
    def link_mb_per_s(self) -> float | None:
        return None if self.link_mbit is None else self.link_mbit / 8

    @property
    def setting(self) -> str:
        """A short label for plots: ``'64 KiB / 10 ms'``, ``'8 x 16 KiB'``, ``'adaptive'``."""
        if self.strategy == "sleep":
            return f"{self.chunk_size // KiB} KiB / {self.pause_ms:g} ms"
        if self.strategy == "fixed":
            return f"{self.window_chunks} x {self.chunk_size // KiB} KiB"
        return self.strategy


@dataclass
class TracePoint:
    """One row of an AdaptiveWindow trace, for time-sequence plots (times in seconds from accept)."""

    link: str
    time: float
    bytes_sent: int
    bytes_acked: int
    window_bytes: int
    rtt_ms: float | None



@dataclass
class ChatSummary:
    """Chat round-trip times of one :class:`ChatConfig` (one line of ``chat_latency.csv``)."""

    config: str
    label: str
    link: str
    link_rtt_ms: float
    writer: str
    strategy: str
    second_connection: bool
    unsent_limit: int | None  # in effect: None where the OS default applied (asked for, or no TCP_NOTSENT_LOWAT)
    pings: int
    lost: int  # no echo within the deadline
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    file_bytes: int
    mb_per_s: float | None  # the file's throughput meanwhile


@dataclass
class ChatSample:
    """One chat line: sent ``time`` seconds after the transfer began, echoed after ``rtt_ms``."""

    config: str
    time: float
    rtt_ms: float | None


def sig(value: float) -> float:
    """Six significant digits: what the CSV files keep, so rows read back equal the rows written."""
    return float(f"{value:.6g}")


def sig_or_none(value: float | None) -> float | None:
    return None if value is None else sig(value)


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else sig(seconds * 1000)


def summary_rows(
    sleep: Sequence[TransferRow], window: Sequence[TransferRow], adaptive: Sequence[TransferRow]
) -> list[TransferRow]:
    """Per link, the rows the summary figure compares: SUMMARY_SLEEP, SUMMARY_WINDOW and the adaptive run."""
    out = []
    for row in sleep:
        if row.chunk_size == SUMMARY_SLEEP["chunk_size"] and row.pause_ms == SUMMARY_SLEEP["pause_ms"]:
            out.append(row)
    for row in window:
        if row.chunk_size == SUMMARY_WINDOW["chunk_size"] and row.window_chunks == SUMMARY_WINDOW["window_chunks"]:
            out.append(row)
    out.extend(adaptive)
    return out



CSV_FILES = {
    "sleep": "throughput_sleep.csv",
    "window": "throughput_window.csv",
    "adaptive": "throughput_adaptive.csv",
    "trace": "adaptive_trace.csv",
    "summary": "throughput_summary.csv",
    "chat": "chat_latency.csv",
    "chat_samples": "chat_latency_samples.csv",
}


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_csv(rows: Iterable[Any], path: str | os.PathLike[str], row_class: type | None = None) -> Path:
    """Write dataclass rows (or dicts) to ``path`` as CSV; ``None`` becomes an empty cell.  Returns the path."""
    rows = list(rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if row_class is None and rows:
        row_class = type(rows[0])
    if row_class is not None and dataclasses.is_dataclass(row_class):
        names = [f.name for f in dataclasses.fields(row_class)]
    elif rows:
        names = list(rows[0])
    else:
        names = []
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            values = dataclasses.asdict(row) if dataclasses.is_dataclass(row) and not isinstance(row, type) else row
            writer.writerow([_format(values.get(name)) for name in names])
    return path


def _converter(hint: Any) -> Callable[[str], Any]:
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint

    def convert(text: str) -> Any:
        if text == "" and (optional or base is not str):
            return None
        if base is bool:
            return text.strip().lower() in ("true", "1", "yes")
        if base is int:
            return int(float(text))
        if base is float:
            return float(text)
        return text

    return convert


def read_csv(path: str | os.PathLike[str], row_class: type | None = None) -> list[Any]:
    """Read a CSV written by :func:`write_csv`: dataclass rows of ``row_class``, or dicts of strings."""
    with open(path, newline="", encoding="utf-8") as f:
        records = list(csv.DictReader(f))
    if row_class is None:
        return records
    hints = typing.get_type_hints(row_class)
    converters = {f.name: _converter(hints[f.name]) for f in dataclasses.fields(row_class)}
    return [row_class(**{name: conv(record.get(name, "")) for name, conv in converters.items()}) for record in records]


@dataclass
class Results:
    """Everything :func:`run_all` measures (or :func:`load_results` reads back)."""

    sleep: list[TransferRow] = field(default_factory=list)
    window: list[TransferRow] = field(default_factory=list)
    adaptive: list[TransferRow] = field(default_factory=list)
    trace: list[TracePoint] = field(default_factory=list)
    chat: list[ChatSummary] = field(default_factory=list)
    chat_samples: list[ChatSample] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)  # what run_all wrote

    @property
    def summary(self) -> list[TransferRow]:
        return summary_rows(self.sleep, self.window, self.adaptive)


ROW_CLASSES = {
    "sleep": TransferRow, "window": TransferRow, "adaptive": TransferRow, "trace": TracePoint,
    "chat": ChatSummary, "chat_samples": ChatSample,
}  # fmt: skip


def load_results(directory: str | os.PathLike[str]) -> Results:
    """Read the CSV files of a previous :func:`run_all` from ``directory`` (missing files give empty lists)."""
    directory = Path(directory)
    results = Results()
    for key, row_class in ROW_CLASSES.items():
        path = directory / CSV_FILES[key]
        if path.exists():
            setattr(results, key, read_csv(path, row_class))
    return results

