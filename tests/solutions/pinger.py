"""Notebook 10's exercise: a UDP pinger (same body as in the notebook)."""

from __future__ import annotations

import math
import socket
import time


def ping(sock: socket.socket, server: tuple, count: int, timeout: float) -> dict:
    rtts: list[float] = []  # milliseconds, one per ping answered in time
    answered: set[int] = set()
    duplicates = 0
    for seq in range(1, count + 1):
        sent_at = time.perf_counter()
        sock.sendto(f"PING {seq} {sent_at}".encode(), server)
        deadline = sent_at + timeout  # measured from the send, not restarted by each stray datagram
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                break  # lost: a reply after this does not count
            sock.settimeout(left)
            try:
                data, peer = sock.recvfrom(2048)
            except TimeoutError:
                break
            now = time.perf_counter()
            words = data.split()
            if peer != server or len(words) < 2 or words[0] != b"PING" or not words[1].isdigit():
                continue  # not a reply from the server: ignore it
            k = int(words[1])
            if k in answered:
                duplicates += 1  # ping prints DUP!
            elif k == seq:
                answered.add(k)
                rtts.append((now - sent_at) * 1000)
                break
            # else: a late reply to an earlier ping, already counted as lost
    received = len(rtts)
    stats: dict = {"sent": count, "received": received, "duplicates": duplicates,
                   "loss": 100.0 * (count - received) / count,
                   "min": None, "avg": None, "max": None, "mdev": None}
    if rtts:
        mean = sum(rtts) / received
        stats.update(min=min(rtts), avg=mean, max=max(rtts),
                     mdev=math.sqrt(max(0.0, sum(r * r for r in rtts) / received - mean * mean)))
    return stats
