"""Chat while sending: how long a chat line waits while a file is on its way (notebook 07).

alice says ``ping N`` every few milliseconds while she sends bob a file, and times
the echo of each line (the server sends a SAY back to its sender too).  Each
:class:`ChatConfig` is one way of sending the file: a FIFO or a priority writer,
the kernel's queue bounded or not, the adaptive window, or a second connection
for the file.  :func:`chat_latency` measures them one after the other and returns
a :class:`~chatlab.experiments.results.ChatSummary` each, and every
:class:`~chatlab.experiments.results.ChatSample`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ..client import UNSENT_LIMIT, Client, Transfer
from ..core.protocol import ChatMessage
from ..core.transfer import make_strategy
from ..errors import ChatlabError, TransferError
from ..stats import percentile
from .links import CHAT_LINK, KiB, Link, MiB, get_link
from .measure import HAS_UNSENT_LIMIT, Progress, Workspace, chat_setup, open_workspace, quiet
from .results import ChatSample, ChatSummary, ms, sig, sig_or_none

__all__ = ["ChatConfig", "CHAT_CONFIGS", "BIG_WINDOW", "chat_latency"]


@dataclass(frozen=True)
class ChatConfig:
    """How alice sends a file while she chats (notebook 07).

    Attributes:
        name: a short id for CSV files.
        label: the legend text.
        writer: ``"priority"`` (chat before released file chunks) or ``"fifo"`` (in order).
        strategy: ``"fixed"``, ``"adaptive"``, ``"sleep"``, or ``"none"`` (no transfer: the baseline).
        options: strategy options as ``(name, value)`` pairs.
        second_connection: option 1: the file goes over a second connection, the direct
            path from alice to bob (``send_file(via="direct")``); chat keeps the first.
        unsent_limit: ``Client.connect(unsent_limit=...)`` for alice's connection(s): the
            most bytes her kernel holds unsent (``TCP_NOTSENT_LOWAT``); ``None``: the OS
            default, which lets the kernel queue megabytes.
    """

    name: str
    label: str
    writer: str = "priority"
    strategy: str = "fixed"
    options: tuple[tuple[str, float], ...] = ()
    second_connection: bool = False
    unsent_limit: int | None = UNSENT_LIMIT


BIG_WINDOW = (("chunks", 64),)  # 64 x 64 KiB = 4 MiB: the whole file released at once
CHAT_CONFIGS: tuple[ChatConfig, ...] = (
    ChatConfig("idle", "no transfer", strategy="none"),
    ChatConfig("fifo", "FIFO writer, big window", writer="fifo", options=BIG_WINDOW),
    ChatConfig("priority-no-limit", "priority writer, big window, OS default kernel queue",
               options=BIG_WINDOW, unsent_limit=None),
    ChatConfig("priority", f"priority writer, big window, {UNSENT_LIMIT // KiB} KiB unsent limit",
               options=BIG_WINDOW),
    ChatConfig("adaptive", "priority writer, adaptive window", strategy="adaptive"),
    ChatConfig("second-connection", "option 1: the direct path (a second connection to bob)", options=BIG_WINDOW,
               second_connection=True),
)  # fmt: skip


class _Pinger:
    """alice says numbered lines and times the echo the server sends back to her."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.sent: dict[str, float] = {}
        self.arrived: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="chatlab-pinger", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        me = self.client.nick
        while not self._stop.is_set():
            try:
                message = self.client.wait_for(ChatMessage, timeout=0.1, predicate=lambda m: m.sender == me)
            except TimeoutError:
                continue
            except ChatlabError:  # the connection closed
                return
            self.arrived.setdefault(message.text, time.monotonic())

    def ping(self, n: int) -> None:
        text = f"ping {n}"
        self.sent[text] = time.monotonic()
        self.client.say(text)

    def wait_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrived) < len(self.sent) and time.monotonic() < deadline:
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1.0)




def _start_file(config: ChatConfig, sender: Client, ws: Workspace, file_bytes: int) -> Transfer | None:
    """Start the file of ``config`` on its way (``None`` for the no-transfer baseline)."""
    if config.strategy == "none":
        return None
    strategy = make_strategy(config.strategy, **dict(config.options))
    via = "direct" if config.second_connection else "server"
    return sender.send_file(ws.file(file_bytes), to="bob", strategy=strategy, via=via)


def _still_sending(transfer: Transfer | None, elapsed: float, idle_seconds: float, time_limit: float) -> bool:
    """Whether to keep chatting: ``idle_seconds`` without a transfer, else until it ends or ``time_limit``."""
    if transfer is None:
        return elapsed < idle_seconds
    return not (transfer.done or transfer.failed or elapsed >= time_limit)


def _file_rate(transfer: Transfer | None, timeout: float) -> float | None:
    """The file's throughput in MB/s once it is done (or so far, if it failed or is still going)."""
    if transfer is None:
        return None
    try:
        return transfer.wait(timeout=timeout).mb_per_s
    except (TimeoutError, TransferError):
        return transfer.stats.mb_per_s


def _summarize(
    config: ChatConfig, link: Link, pinger: _Pinger, start: float, file_bytes: int, mb_per_s: float | None
) -> tuple[ChatSummary, list[ChatSample]]:
    samples = []
    for text, sent_at in pinger.sent.items():
        arrived = pinger.arrived.get(text)
        rtt = None if arrived is None else ms(arrived - sent_at)
        samples.append(ChatSample(config.name, sig(sent_at - start), rtt))
    rtts = [s.rtt_ms for s in samples if s.rtt_ms is not None]
    summary = ChatSummary(
        config=config.name,
        label=config.label,
        link=link.name,
        link_rtt_ms=link.rtt_ms,
        writer=config.writer,
        strategy=config.strategy,
        second_connection=config.second_connection,
        unsent_limit=config.unsent_limit if HAS_UNSENT_LIMIT else None,
        pings=len(samples),
        lost=len(samples) - len(rtts),
        p50_ms=sig_or_none(percentile(rtts, 50)),
        p99_ms=sig_or_none(percentile(rtts, 99)),
        max_ms=max(rtts) if rtts else None,
        file_bytes=file_bytes,
        mb_per_s=sig_or_none(mb_per_s),
    )
    return summary, samples


def _measure_chat(
    config: ChatConfig, link: Link, ws: Workspace, file_bytes: int, interval: float, idle_seconds: float,
    time_limit: float,
) -> tuple[ChatSummary, list[ChatSample]]:
    with chat_setup(
        link, ws, priority_writer=config.writer != "fifo", second_connection=config.second_connection,
        unsent_limit=config.unsent_limit,
    ) as setup:
        pinger = _Pinger(setup.alice)
        try:
            start = time.monotonic()
            transfer = _start_file(config, setup.sender, ws, file_bytes)
            n = 0
            while _still_sending(transfer, time.monotonic() - start, idle_seconds, time_limit):
                n += 1
                pinger.ping(n)
                time.sleep(interval)
            mb_per_s = _file_rate(transfer, max(0.1, time_limit - (time.monotonic() - start)))
            pinger.wait_all(timeout=5.0)
        finally:
            pinger.stop()
    return _summarize(config, link, pinger, start, 0 if transfer is None else file_bytes, mb_per_s)


def chat_latency(
    link: str | Link = CHAT_LINK,
    configs: Iterable[ChatConfig] = CHAT_CONFIGS,
    *,
    file_bytes: int = 4 * MiB,
    interval: float = 0.03,
    idle_seconds: float = 1.0,
    time_limit: float = 20.0,
    progress: Progress = quiet,
) -> tuple[list[ChatSummary], list[ChatSample]]:
    """Chat round-trip time while alice sends ``file_bytes`` to bob, for each configuration.

    alice says ``ping N`` every ``interval`` seconds while the file is on its
    way, and times the echo of each line (the server sends a SAY back to its
    sender too).  Her chat crosses the same emulated link as the file, unless
    the file has a second connection (which, in the emulator, is a link of its
    own: see notebook 07 for what that means).

    Returns:
        One :class:`ChatSummary` per configuration, and every :class:`ChatSample`.
    """
    link = get_link(link)
    summaries: list[ChatSummary] = []
    samples: list[ChatSample] = []
    with open_workspace(None) as ws:
        for config in configs:
            summary, config_samples = _measure_chat(config, link, ws, file_bytes, interval, idle_seconds, time_limit)
            summaries.append(summary)
            samples.extend(config_samples)
            rate = "" if summary.mb_per_s is None else f", file at {summary.mb_per_s:.2f} MB/s"
            p50, p99 = summary.p50_ms or 0, summary.p99_ms or 0
            progress(f"{config.name:22s} chat RTT p50 {p50:6.0f} ms, p99 {p99:6.0f} ms{rate}")
    return summaries, samples
