"""Chat probes: a line said every few milliseconds during a transfer, and the server's echo timed."""

from __future__ import annotations

import threading
import time

from ..client import Client
from ..core.protocol import ChatMessage


class ChatProbe:
    """Says a line every ``interval`` seconds (whether or not the last one came back) and times the server's echoes."""

    def __init__(self, client: Client, interval: float) -> None:
        self.client = client
        self.interval = interval
        self.rtts_ms: list[float] = []
        self.lost = 0
        self._sent: dict[int, float] = {}
        self._stop = threading.Event()
        self._sending = threading.Thread(target=self._send_loop, name="bench-chat-probe-send", daemon=True)
        self._receiving = threading.Thread(target=self._receive_loop, name="bench-chat-probe-recv", daemon=True)

    def __enter__(self) -> ChatProbe:
        self._receiving.start()
        self._sending.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sending.join(10)
        deadline = time.monotonic() + 3.0  # let the last echoes come back
        while self._sent and time.monotonic() < deadline:
            time.sleep(0.01)
        self._receiving.join(0.5)
        self.lost = len(self._sent)

    def _send_loop(self) -> None:
        n = 0
        next_at = time.perf_counter()
        while not self._stop.is_set():
            n += 1
            self._sent[n] = time.perf_counter()
            try:
                self.client.say(f"probe {n}")
            except Exception:  # noqa: BLE001 - the connection closed: the run reports it
                return
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.perf_counter()))

    def _receive_loop(self) -> None:
        nick = self.client.nick
        while not (self._stop.is_set() and not self._sent):
            try:
                m = self.client.wait_for(ChatMessage, timeout=0.1,
                                         predicate=lambda m: m.sender == nick and m.text.startswith("probe "))
            except TimeoutError:
                continue
            except Exception:  # noqa: BLE001
                return
            t0 = self._sent.pop(int(m.text.split()[1]), None)
            if t0 is not None:
                self.rtts_ms.append((time.perf_counter() - t0) * 1000)


__all__ = ["ChatProbe"]
