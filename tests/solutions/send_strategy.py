"""Reference solution for notebook 06's exercise: an AIMD window driven by the queueing delay.

The same code sits between the solution markers of the notebook's exercise cell.
"""

from __future__ import annotations

from chatlab.core.transfer import SendStrategy


class AIMDWindow(SendStrategy):
    """Additive increase, multiplicative decrease, with the queueing delay as the congestion signal.

    Grow by one chunk per round trip while the queueing delay (RTT minus base
    RTT) is at most ``target``; halve the window when it is above, at most
    once per round trip (the acks of one window all report the same queue);
    never below one chunk.
    """

    name = "aimd"

    def __init__(self, chunk_size: int = 16 * 1024, target: float = 0.010) -> None:
        super().__init__(chunk_size)
        self.target = target  # seconds of queueing delay that mean "the link is full"
        self.window = 2.0 * chunk_size  # bytes allowed in flight
        self.hold_until = 0.0  # no second decrease before this time

    @property
    def window_bytes(self) -> int:
        return int(self.window)

    def on_ack(self, now: float, acked: int) -> None:
        newly_acked = acked - self.acked
        super().on_ack(now, acked)  # updates self.acked, self.rtt and self.base_rtt
        if newly_acked <= 0 or self.rtt is None or self.base_rtt is None:
            return
        queueing = self.rtt - self.base_rtt
        if queueing > self.target:
            if now >= self.hold_until:
                self.window = max(self.chunk_size, self.window / 2)
                self.hold_until = now + self.rtt
        else:
            # newly_acked / window of a chunk per ack: one chunk per round trip in all
            self.window += self.chunk_size * newly_acked / self.window
