"""Measurements on real sockets: one file transfer, the strategy sweeps, one plain ``sendall()``.

Each transfer is real: a :class:`chatlab.Server` on a free loopback port, a sender
``alice`` and a receiver ``bob``, and (except on plain loopback) a
:class:`chatlab.netem.LinkEmulator` on alice's side, so her bytes cross a link
with a rate and a round-trip time like a real one::

    alice --[ LinkEmulator: rate, delay, queue ]--> server --> bob (loopback)
          <-------------- acks, chat echoes ------------------

:func:`measure_transfer` sends one file and returns its :class:`TransferRow`;
:func:`sleep_sweep`, :func:`window_sweep` and :func:`adaptive_runs` repeat it over
a grid; :class:`MeasurementGrid` (``QUICK``, ``FULL``) is the grid
:func:`chatlab.experiments.run_all` uses.  :func:`measure_sendall` is notebook 06's
baseline: TCP's own flow control, no chatlab at all.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client import UNSENT_LIMIT, Client, FileFailed
from ..core.transfer import AdaptiveWindow, FixedWindow, SendStrategy, SleepPaced, TraceRow, make_strategy
from ..errors import ChatlabError
from ..netem import LinkEmulator
from ..server import Server
from ..stats import percentile
from .links import CHAT_LINK, FULL_LINKS, QUICK_LINKS, KiB, Link, MiB, get_link
from .results import CHUNK, TracePoint, TransferRow, ms, sig, sig_or_none

__all__ = [
    "HAS_UNSENT_LIMIT", "TransferResult", "measure_transfer", "sleep_sweep", "window_sweep", "adaptive_runs",
    "MeasurementGrid", "QUICK", "FULL", "SendallResult", "measure_sendall", "Workspace", "chat_setup",
]  # fmt: skip


@dataclass
class TransferResult:
    """What :func:`measure_transfer` returns: the summary row and the raw trace."""

    row: TransferRow
    trace: list[TraceRow] = field(default_factory=list)


# Whether this OS can bound the unsent bytes in the kernel (Linux, macOS: yes;
# Windows: no).  Without it ``Client.connect(unsent_limit=...)`` changes nothing,
# and the kernel's send buffer (megabytes, autotuned) is a queue no writer can reorder.
HAS_UNSENT_LIMIT = hasattr(socket, "TCP_NOTSENT_LOWAT")


class Workspace:
    """A temporary directory with random source files (one per size) and fresh download directories."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self._files: dict[int, Path] = {}
        self._runs = 0

    def file(self, size: int) -> Path:
        if size not in self._files:
            path = self.root / f"source-{size}.bin"
            with open(path, "wb") as f:
                remaining = size
                while remaining:
                    block = os.urandom(min(remaining, 1 * MiB))
                    f.write(block)
                    remaining -= len(block)
            self._files[size] = path
        return self._files[size]

    def download_dir(self) -> Path:
        self._runs += 1
        path = self.root / f"downloads-{self._runs}"
        path.mkdir()
        return path


@contextlib.contextmanager
def open_workspace(given: Workspace | None) -> Iterator[Workspace]:
    """``given``, or a fresh :class:`Workspace` in a temporary directory removed on exit."""
    if given is not None:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="chatlab-experiments-") as root:
        yield Workspace(root)


@dataclass
class Setup:
    """What :func:`chat_setup` yields: the server and the clients of one measurement."""

    server: Server
    alice: Client  # chats and sends the file
    sender: Client  # sends the file: alice (over the direct path with second_connection)
    bob: Client  # receives the file, on plain loopback


@contextlib.contextmanager
def chat_setup(
    link: Link,
    workspace: Workspace,
    *,
    priority_writer: bool = True,
    second_connection: bool = False,
    unsent_limit: int | None = UNSENT_LIMIT,
    on_frame: Callable[..., None] | None = None,
) -> Iterator[Setup]:
    """Server, optional link emulator on alice's side, alice, bob.  Everything closes on exit.

    ``priority_writer`` and ``unsent_limit`` go to ``Client.connect`` for alice.  With
    ``second_connection`` the file takes the direct path (``send_file(via="direct")``, option 1):
    bob's listener is put behind a link emulator of its own with alice's link profile, so the
    file's bytes cross the same kind of link as her chat, in a queue of their own.
    """
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(Server(port=0, flood_limit=None, on_frame=on_frame))
        address = server.address
        profile = link.profile()
        if profile is not None:
            address = stack.enter_context(LinkEmulator(server.address, profile)).address
        bob = stack.enter_context(Client.connect(server.address, nick="bob", download_dir=workspace.download_dir()))
        options: dict[str, Any] = {"priority_writer": priority_writer, "unsent_limit": unsent_limit}
        alice = stack.enter_context(Client.connect(address, nick="alice", **options))
        if second_connection and profile is not None:
            direct_links: list[LinkEmulator] = []

            def close_direct_links() -> None:
                for emulator in direct_links:
                    emulator.close()

            stack.callback(close_direct_links)

            def through_alices_link(listening: tuple[str, int]) -> tuple[str, int]:
                emulator = LinkEmulator(listening, profile).start()
                direct_links.append(emulator)
                return emulator.address[0], emulator.address[1]

            bob.advertise_direct = through_alices_link
        yield Setup(server, alice, alice, bob)


def stop_sender_first(setup: Setup) -> None:
    """End an unfinished transfer from the sender's side and let bob hear of it before anyone else closes.

    Closing bob while chunks are still arriving races his reader thread; once
    the sender is gone the server cancels the stream, bob reports a
    :class:`~chatlab.client.FileFailed`, and nothing more arrives for him.
    """
    setup.sender.close()
    with contextlib.suppress(TimeoutError, ChatlabError):
        setup.bob.wait_for(FileFailed, timeout=2.0)


def _strategy(strategy: str | SendStrategy, options: dict[str, float]) -> SendStrategy:
    return make_strategy(strategy, **options) if isinstance(strategy, str) else strategy


def _row_from_transfer(
    experiment: str, link: Link, strategy: SendStrategy, file_bytes: int, transfer: Any, completed: bool,
    peak_queue: int,
) -> TransferResult:
    trace = list(transfer.trace)
    stats = transfer.stats
    rtts = [r.rtt for r in trace if r.rtt is not None]
    t0 = trace[0].time if trace else 0.0
    mean_window: float | None = None
    if isinstance(strategy, AdaptiveWindow) and len(trace) > 1:
        # time-weighted mean of the window over the transfer
        area = sum(a.window_bytes * (b.time - a.time) for a, b in zip(trace, trace[1:]))
        span = trace[-1].time - t0
        mean_window = area / span if span > 0 else float(trace[-1].window_bytes)
    row = TransferRow(
        experiment=experiment,
        link=link.name,
        link_mbit=link.mbit,
        link_rtt_ms=link.rtt_ms,
        strategy=strategy.name,
        chunk_size=strategy.chunk_size,
        pause_ms=strategy.pause * 1000 if isinstance(strategy, SleepPaced) else None,
        window_chunks=strategy.chunks if isinstance(strategy, FixedWindow) else None,
        file_bytes=file_bytes,
        bytes_acked=stats.bytes,
        seconds=sig(stats.seconds),
        mb_per_s=sig(stats.mb_per_s),
        completed=completed,
        rtt_min_ms=ms(min(rtts)) if rtts else None,
        rtt_p50_ms=ms(percentile(rtts, 50)),
        rtt_max_ms=ms(max(rtts)) if rtts else None,
        max_in_flight=max((r.bytes_sent - r.bytes_acked for r in trace), default=0),
        mean_window=sig_or_none(mean_window),
        peak_server_queue=peak_queue,
    )
    return TransferResult(row, trace)


def measure_transfer(
    strategy: str | SendStrategy,
    link: str | Link = "loopback",
    *,
    seconds: float = 1.0,
    file_bytes: int | None = None,
    time_limit: float | None = None,
    experiment: str = "transfer",
    priority_writer: bool = True,
    unsent_limit: int | None = UNSENT_LIMIT,
    workspace: Workspace | None = None,
    **strategy_options: float,
) -> TransferResult:
    """Send one file from alice to bob over ``link`` and measure it.

    Args:
        strategy: ``"sleep"``, ``"fixed"``, ``"adaptive"`` or a fresh strategy object.
        link: a :class:`Link` or its name.
        seconds: size the file to keep the link busy this long (ignored with ``file_bytes``).
        file_bytes: the file size in bytes.
        time_limit: stop the transfer after this many seconds (default ``2 * seconds + 1``);
            the row then says ``completed=False`` and reports what was acked so far.
        experiment: the ``experiment`` column of the row.
        priority_writer: alice's writer: priority (chat first) or FIFO.
        unsent_limit: the most bytes alice's kernel holds unsent (``Client.connect``'s
            option: 128 KiB by default, ``None`` for the OS default of megabytes).
        **strategy_options: e.g. ``pause=0.01``, ``chunks=8``, ``chunk_size=16384``.

    Returns:
        A :class:`TransferResult`: ``.row`` (a :class:`TransferRow`) and ``.trace``.

    Raises:
        TransferError: the transfer failed (rejected, connection broken).
    """
    link = get_link(link)
    strat = _strategy(strategy, strategy_options)
    size = file_bytes if file_bytes is not None else link.file_bytes(seconds)
    limit = time_limit if time_limit is not None else 2 * seconds + 1.0
    with open_workspace(workspace) as ws:
        source = ws.file(size)
        with chat_setup(link, ws, priority_writer=priority_writer, unsent_limit=unsent_limit) as setup:
            transfer = setup.sender.send_file(source, to="bob", strategy=strat)
            try:
                transfer.wait(timeout=limit)
                completed = True
            except TimeoutError:
                completed = False
                stop_sender_first(setup)
            return _row_from_transfer(experiment, link, strat, size, transfer, completed, setup.server.peak_queued)



SLEEP_PAUSES_MS = (0, 1, 2, 5, 10, 20, 50)
SLEEP_PAUSES_MS_QUICK = (0, 1, 5, 20)
SLEEP_CHUNKS = (16 * KiB, 64 * KiB)
WINDOWS = (1, 2, 4, 8, 16, 32, 64)
WINDOWS_QUICK = (1, 2, 4, 8, 16, 64)



@dataclass(frozen=True)
class MeasurementGrid:
    """What :func:`chatlab.experiments.run_all` measures: which links, pauses, windows, how long each transfer lasts."""
    links: tuple[str, ...]
    pauses_ms: tuple[float, ...]
    sleep_chunks: tuple[int, ...]
    windows: tuple[int, ...]
    seconds: float  # each file keeps its link busy about this long
    time_limit: float  # a transfer still running after this many seconds is stopped and counted so far
    chat_link: str
    chat_file_bytes: int


QUICK = MeasurementGrid(QUICK_LINKS, SLEEP_PAUSES_MS_QUICK, SLEEP_CHUNKS, WINDOWS_QUICK, 0.6, 1.2, CHAT_LINK, 4 * MiB)
FULL = MeasurementGrid(FULL_LINKS, SLEEP_PAUSES_MS, SLEEP_CHUNKS, WINDOWS, 1.5, 3.0, CHAT_LINK, 4 * MiB)

Progress = Callable[[str], None]


def quiet(_: str) -> None:
    pass


def sleep_sweep(
    links: Iterable[str | Link] = QUICK_LINKS,
    pauses_ms: Iterable[float] = SLEEP_PAUSES_MS_QUICK,
    chunk_sizes: Iterable[int] = SLEEP_CHUNKS,
    *,
    seconds: float = QUICK.seconds,
    time_limit: float | None = QUICK.time_limit,
    progress: Progress = quiet,
) -> list[TransferRow]:
    """SleepPaced over every link x chunk size x pause.  One :class:`TransferRow` each."""
    rows = []
    with open_workspace(None) as ws:
        for link in map(get_link, links):
            for chunk in chunk_sizes:
                for pause in pauses_ms:
                    result = measure_transfer(
                        SleepPaced(chunk, pause / 1000), link, seconds=seconds, time_limit=time_limit,
                        experiment="sleep", workspace=ws,
                    )
                    rows.append(result.row)
                    progress(_describe(result.row))
    return rows


def window_sweep(
    links: Iterable[str | Link] = QUICK_LINKS,
    windows: Iterable[int] = WINDOWS_QUICK,
    chunk_size: int = CHUNK,
    *,
    seconds: float = QUICK.seconds,
    time_limit: float | None = QUICK.time_limit,
    progress: Progress = quiet,
) -> list[TransferRow]:
    """FixedWindow over every link x window (in chunks of ``chunk_size``).  One :class:`TransferRow` each."""
    rows = []
    with open_workspace(None) as ws:
        for link in map(get_link, links):
            for window in windows:
                result = measure_transfer(
                    FixedWindow(window, chunk_size), link, seconds=seconds, time_limit=time_limit,
                    experiment="window", workspace=ws,
                )
                rows.append(result.row)
                progress(_describe(result.row))
    return rows


def adaptive_runs(
    links: Iterable[str | Link] = QUICK_LINKS,
    *,
    seconds: float = QUICK.seconds,
    time_limit: float | None = QUICK.time_limit,
    chunk_size: int | None = None,
    progress: Progress = quiet,
    **options: float,
) -> tuple[list[TransferRow], list[TracePoint]]:
    """One AdaptiveWindow transfer per link: its rows and its whole trace (times from the accept).

    ``chunk_size`` (default: AdaptiveWindow's own, 32 KiB) and ``options`` go to
    :class:`AdaptiveWindow` (``max_chunks=``, ``target_delay=`` ...).
    """
    rows: list[TransferRow] = []
    points: list[TracePoint] = []
    with open_workspace(None) as ws:
        for link in map(get_link, links):
            if chunk_size is not None:
                options["chunk_size"] = chunk_size
            strategy = AdaptiveWindow(**options)  # type: ignore[arg-type]
            result = measure_transfer(
                strategy, link, seconds=seconds, time_limit=time_limit, experiment="adaptive", workspace=ws
            )
            rows.append(result.row)
            t0 = result.trace[0].time if result.trace else 0.0
            points.extend(
                TracePoint(link.name, sig(r.time - t0), r.bytes_sent, r.bytes_acked, r.window_bytes, ms(r.rtt))
                for r in result.trace
            )
            progress(_describe(result.row))
    return rows, points


def _describe(row: TransferRow) -> str:
    rtt = "" if row.rtt_p50_ms is None else f", chunk RTT p50 {row.rtt_p50_ms:.0f} ms"
    done = "" if row.completed else " (time limit)"
    return f"{row.link:12s} {row.strategy:8s} {row.setting:16s} {row.mb_per_s:7.2f} MB/s{rtt}{done}"


# --------------------------------------------------------------------------
# TCP alone: one sendall() on its own connection (notebook 06's baseline)
# --------------------------------------------------------------------------


@dataclass
class SendallResult:
    """One ``sendall()`` of a whole file on a plain TCP connection of its own, through the link emulator.

    Attributes:
        link: the link's name.
        file_bytes: the file size.
        returned_s: seconds until ``sendall()`` returned: the kernel had taken the last byte.
        delivered_s: seconds until the receiver had read the last byte.
    """

    link: str
    file_bytes: int
    returned_s: float
    delivered_s: float

    @property
    def mb_per_s(self) -> float:
        """Throughput as the receiver saw it, in MB/s."""
        return self.file_bytes / self.delivered_s / 1e6 if self.delivered_s > 0 else 0.0


def measure_sendall(link: str | Link, file_bytes: int, *, timeout: float = 30.0) -> SendallResult:
    """Send ``file_bytes`` random bytes with one ``sendall()`` to a receiver that reads and discards them.

    No chatlab, no strategy, no framing: TCP's own flow control (the
    receiver's window) and the emulator's bounded queue are all that pace the
    sender.  The receiver runs in a thread of this process, so both times come
    from the same clock.
    """
    link = get_link(link)
    arrived: dict[str, float] = {}
    data = os.urandom(file_bytes)
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
        listener.settimeout(timeout)

        def receive() -> None:
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(timeout)
                    while conn.recv(1 << 16):
                        arrived["last"] = time.monotonic()
                    conn.sendall(b"ok")  # after the sender's FIN: everything was read

        receiver = threading.Thread(target=receive, name="chatlab-sendall-receiver", daemon=True)
        receiver.start()
        address = listener.getsockname()[:2]
        profile = link.profile()
        if profile is not None:
            address = stack.enter_context(LinkEmulator(address, profile)).address
        with socket.create_connection(address, timeout=timeout) as sock:
            start = time.monotonic()
            sock.sendall(data)
            returned = time.monotonic() - start
            sock.shutdown(socket.SHUT_WR)
            sock.recv(2)  # the receiver's "ok": it has read everything
        receiver.join(timeout)
    if "last" not in arrived:
        raise ChatlabError("the receiver got nothing")
    return SendallResult(link.name, file_bytes, sig(returned), sig(arrived["last"] - start))

