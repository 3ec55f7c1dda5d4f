"""Shared pieces of the benchmarks: results, verdicts, tables, CSV, plots, child processes.

Every scenario returns a :class:`Scenario`: rows (one dict per measurement,
written as CSV), verdicts (one per target the kit promises, PASS / NOT MET /
SKIPPED with a one-line reason), notes (what limits the figures) and errors
(what went wrong, as opposed to slow: the command then exits with status 1).
One of each helper lives here: :class:`Child` (any helper process, a server
among them: :func:`server_child`), :func:`raise_nofile_limit`,
:func:`available_selectors`; :func:`percentile` is :func:`chatlab.stats.percentile`.  The
printing, CSV and PNG writing are the same for all of them, and so are the
output folder (a fresh one unless ``--out`` names one) and the logging (log
lines printed above the progress bars, never through them).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import re
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Sequence

from ..server import SELECTORS
from ..stats import percentile

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

PASS, NOT_MET, SKIPPED, INFO = "PASS", "NOT MET", "SKIPPED", "INFO"


# ----------------------------------------------------------------- results


@dataclass
class Verdict:
    """One target the kit promises (docs/PERFORMANCE.md), checked against this run's numbers."""

    target: str
    status: str  # PASS, NOT MET, SKIPPED (INFO for comparisons that set no target)
    measured: str
    reason: str

    def line(self) -> str:
        return f"[{self.status:>7}] {self.target}: {self.measured}. {self.reason}".rstrip()


@dataclass
class Scenario:
    """What one ``bench`` subcommand measured."""

    name: str
    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # not slow but wrong (a line lost, a peer not dropped): exit 1
    seconds: float = 0.0

    def verdict(self, target: str, ok: bool | None, measured: str, reason: str) -> Verdict:
        """Record a target: ``ok`` True -> PASS, False -> NOT MET, None -> SKIPPED."""
        status = SKIPPED if ok is None else PASS if ok else NOT_MET
        v = Verdict(target, status, measured, reason)
        self.verdicts.append(v)
        return v

    def info(self, target: str, measured: str, reason: str = "") -> Verdict:
        v = Verdict(target, INFO, measured, reason)
        self.verdicts.append(v)
        return v


# ------------------------------------------------------------------ output


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table: a few significant digits, thousands separated; '-' for None."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value == 0:
            return "0"
        magnitude = abs(value)
        if magnitude >= 10 ** digits:
            return f"{value:,.0f}"
        decimals = max(0, digits - 1 - int(math.floor(math.log10(magnitude))))
        return f"{value:.{decimals}f}"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], out: IO[str] | None = None) -> str:
    """Print ``rows`` as an aligned text table; ``columns`` is ``[(key, heading), ...]``."""
    cells = [[heading for _, heading in columns]] + [[fmt(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = []
    for n, r in enumerate(cells):
        # text left-aligned, numbers right-aligned
        parts = [c.ljust(w) if n == 0 or i == 0 or not _numeric(c) else c.rjust(w)
                 for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    text = "\n".join(lines)
    print(text, file=out or sys.stdout, flush=True)
    return text


def _numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d,]*\.?\d+(e[-+]?\d+)?x?%?", text))


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write rows as CSV; the header is the union of keys, in first-seen order."""
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row.get(k)) for k in keys})
    return path


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    """Lay out, write a PNG and close the figure (so a long run does not keep every figure)."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


# ------------------------------------------------------------- fan-out rows


def delivery_row(result: Any, server_cpu: float, rss_kib: float) -> dict[str, Any]:
    """The columns every fan-out row shares, whatever the server: one load generator's result
    (deliveries/s, latencies, its own CPU, set-up time, errors) and the server's CPU and memory."""
    per_s = result.deliveries_per_s
    return {
        "deliveries_per_s": per_s,
        "latency_p50_ms": percentile(result.latencies_ms, 50), "latency_p99_ms": percentile(result.latencies_ms, 99),
        "latency_samples": len(result.latencies_ms), "server_cpu": server_cpu, "driver_cpu": result.driver_cpu,
        "server_cpu_us_per_delivery": server_cpu * 1e6 / per_s if per_s else None,
        "server_rss_mib": rss_kib / 1024, "setup_seconds": result.setup_seconds, "errors": "; ".join(result.errors),
    }


def add_ratio(rows: list[dict[str, Any]], column: str, is_reference: Any) -> None:
    """Give each row ``column``: its deliveries/s over those of the reference row with as many clients."""
    for r in rows:
        ref = next((x for x in rows if x["clients"] == r["clients"] and is_reference(x)), None)
        r[column] = r["deliveries_per_s"] / ref["deliveries_per_s"] if ref and ref["deliveries_per_s"] else None


# ------------------------------------------------------------------- sizes


_SIZE_RE = re.compile(r"^\s*([\d.]+)\s*([KMG]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": KiB, "KB": 1000, "KIB": KiB, "KI": KiB, "M": MiB, "MB": 10**6, "MIB": MiB, "MI": MiB,
          "G": GiB, "GB": 10**9, "GIB": GiB, "GI": GiB}


def parse_size(text: str) -> int:
    """``"64MiB"`` -> 67108864; ``"1GiB"``, ``"500KB"``, ``"4096"`` work too (K/M/G alone are binary)."""
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (try 64MiB or 1GiB)")
    number, unit = m.groups()
    return int(float(number) * _UNITS[(unit or "").upper()])


def parse_rate(text: str) -> float:
    """``"4MB/s"`` or ``"4"`` (MB/s) -> bytes per second; ``"50Mbit"`` -> 6.25e6."""
    t = text.strip().lower().replace("/s", "").replace("ps", "")
    m = re.fullmatch(r"([\d.]+)\s*(mbit|kbit|gbit|mb|kb|gb|mib|kib|b)?", t)
    if not m:
        raise ValueError(f"not a rate: {text!r} (try 4MB/s or 50Mbit/s)")
    number, unit = float(m.group(1)), m.group(2) or "mb"
    factor = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": KiB, "mib": MiB,
              "kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8}[unit]
    return number * factor


def human_bytes(n: float) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def make_file(path: Path, size: int) -> Path:
    """A file of ``size`` pseudo-random bytes (not compressible, not all the same)."""
    block = os.urandom(min(size, 4 * MiB)) if size else b""
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
    return path


# ----------------------------------------------------------- the machine


def raise_nofile_limit(needed: int | None = None) -> int:
    """Raise this process's soft RLIMIT_NOFILE; returns the soft limit now in force.

    With ``needed``, up to that many descriptors (never above the hard limit,
    never lowering the limit); without, as far as the hard limit goes (65,536
    when it is unlimited).  Compare the result with what you need: the hard
    limit may be lower.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    target = ceiling if needed is None else min(ceiling, needed)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft


def available_selectors() -> list[str]:
    """The names of :data:`chatlab.server.SELECTORS` this platform has (select everywhere, epoll on Linux)."""
    return [name for name, cls in SELECTORS.items() if hasattr(selectors, cls)]


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS / VmHWM / VmSize in KiB from /proc/PID/status (empty off Linux)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "VmSize", "Threads"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def proc_cpu_seconds(pid: int | str = "self") -> float | None:
    """User + system CPU seconds of a process, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_summary() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu_count()} CPU(s){' (' + model + ')' if model else ''}, Python {sys.version.split()[0]}, {sys.platform}"


def pin(pid: int, cpus: set[int]) -> bool:
    """Pin a process to some CPUs (Linux); False if not possible."""
    try:
        os.sched_setaffinity(pid, cpus)
        return True
    except (AttributeError, OSError):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------- child processes


class Child:
    """A helper process (``python -m chatlab.bench.procs KIND ...``) that speaks JSON lines.

    Its first stdout line is a JSON object (its port, its pid); afterwards
    :meth:`ask` sends one command line on stdin and reads one JSON line back.
    stderr goes to a temporary file shown if the child fails.
    """

    def __init__(self, kind: str, *args: str, cpus: set[int] | None = None, timeout: float = 30.0) -> None:
        self.kind = kind
        self._err = tempfile.TemporaryFile(mode="w+")
        cmd = [sys.executable, "-m", "chatlab.bench.procs", kind, *args]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err,
                                     text=True, bufsize=1)
        if cpus is not None:
            pin(self.proc.pid, cpus)
        self.hello = self.read(timeout)
        self.pid = self.proc.pid
        self.port: int = int(self.hello.get("port", 0))

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def read(self, timeout: float = 30.0) -> dict[str, Any]:
        """The next JSON line from the child."""
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                raise TimeoutError(f"bench helper {self.kind!r} said nothing within {timeout:g} s{self.stderr_tail()}")
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(5)
            raise RuntimeError(f"bench helper {self.kind!r} exited (code {self.proc.returncode}){self.stderr_tail()}")
        return dict(json.loads(line))

    def ask(self, command: str, timeout: float = 30.0) -> dict[str, Any]:
        self.send(command)
        return self.read(timeout)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def stderr_tail(self, lines: int = 12) -> str:
        try:
            self._err.flush()
            self._err.seek(0)
            tail = self._err.read().strip().splitlines()[-lines:]
        except (OSError, ValueError):
            return ""
        return (":\n    " + "\n    ".join(tail)) if tail else ""

    def rss_kib(self) -> int:
        return proc_status(self.pid).get("VmRSS", 0)

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid) or 0.0

    def close(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()  # EOF: the helper exits on its own
            except (OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdout,):
            if stream is not None:
                stream.close()
        self._err.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def server_child(selector: str = "select", *, cpus: set[int] | None = None, **options: Any) -> Child:
    """A chatlab server in a process of its own (``procs server``), flood control off, limits raised.

    ``options`` are the helper's flags (``max_clients=1016`` -> ``--max-clients 1016``); its
    ``stats`` command answers its counters (``peak_queued``, ``VmHWM``, loop iterations...).
    """
    flags = [arg for name, value in options.items() for arg in (f"--{name.replace('_', '-')}", str(value))]
    return Child("server", "--selector", selector, *flags, cpus=cpus)


def nc_path() -> str | None:
    """The ``nc`` to compare against, if it is OpenBSD netcat (Debian's netcat-openbsd)."""
    path = shutil.which("nc")
    if path is None:
        return None
    try:
        out = subprocess.run([path, "-h"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if "OpenBSD netcat" in (out.stdout + out.stderr) else None


def wait_listening(port: int, timeout: float = 5.0) -> bool:
    """Wait until something listens on 127.0.0.1:port, without connecting to it (reads /proc/net/tcp)."""
    deadline = time.monotonic() + timeout
    needle = f"0100007F:{port:04X}"
    while time.monotonic() < deadline:
        try:
            with open("/proc/net/tcp") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) > 3 and parts[1] == needle and parts[3] == "0A":
                        return True
        except OSError:
            time.sleep(0.2)  # no /proc: give it a moment and hope
            return True
        time.sleep(0.005)
    return False


def iter_progress(iterable: Iterable[Any], desc: str, total: int | None = None, enabled: bool = True) -> Iterable[Any]:
    """tqdm over ``iterable`` on stderr (plain iteration when disabled, or when stderr is not a terminal:
    piped to a file, the output keeps its tables and loses the carriage-return fragments)."""
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, file=sys.stderr, dynamic_ncols=True, disable=None)


# ------------------------------------------------------ output folder and logging


def fresh_out_dir() -> Path:
    """A new, empty folder for one run's files, in the system's temporary folder.

    The default output of every scenario: a run never overwrites the results
    of an earlier one, nor the figures committed in ``data/bench/``, which
    change only when ``--out data/bench`` says so.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(tempfile.mkdtemp(prefix=f"chatlab-bench-{stamp}-"))


def resolve_out(out: Path | None) -> Path:
    """``out``, or a fresh folder (announced) when the user named none."""
    if out is not None:
        return out
    chosen = fresh_out_dir()
    print(f"bench: results go to {chosen} (choose with --out DIR; --out data/bench refreshes the committed figures)",
          flush=True)
    return chosen


@contextlib.contextmanager
def bench_logging() -> Iterator[None]:
    """Print log records on stderr above the progress bars, not through them.

    The servers a benchmark starts in this process log through ``logging``
    (warnings only, unless the caller configured more); tqdm's
    ``logging_redirect_tqdm`` writes each record with ``tqdm.write``, which
    clears the bars, prints the line and draws the bars again.
    """
    from tqdm.contrib.logging import logging_redirect_tqdm

    root = logging.getLogger()
    handler: logging.Handler | None = None
    if not root.handlers:  # nobody configured logging: do it for this run only
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    try:
        with logging_redirect_tqdm():
            yield
    finally:
        if handler is not None:
            root.removeHandler(handler)


class _Expected(logging.Filter):
    """Turns matching WARNING records into INFO records that say they were expected."""

    def __init__(self, prefixes: tuple[str, ...], why: str) -> None:
        super().__init__()
        self.prefixes, self.why, self.seen = prefixes, why, 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and record.getMessage().startswith(self.prefixes):
            record.msg, record.args = f"{record.getMessage()} (expected: {self.why})", None
            record.levelno, record.levelname = logging.INFO, "INFO"
            self.seen += 1
        return True


@contextlib.contextmanager
def expected_warnings(logger: str, prefixes: tuple[str, ...], why: str) -> Iterator[_Expected]:
    """While the block runs, ``logger``'s warnings starting with one of ``prefixes`` are expected.

    A scenario that makes the server drop misbehaving peers on purpose would
    otherwise print warnings that read like failures of the run.
    """
    expected = _Expected(prefixes, why)
    target = logging.getLogger(logger)
    target.addFilter(expected)
    try:
        yield expected
    finally:
        target.removeFilter(expected)
