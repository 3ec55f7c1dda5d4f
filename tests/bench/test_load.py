"""Load with nothing lost: hundreds of clients, every line of their room exactly once, in order.

The clients are raw non-blocking sockets driven by one selector loop in this process
(``chatlab.bench.load``, the same code as ``python -m chatlab bench load``), so a
thousand of them cost one thread.  Each line carries its sender, a sequence number and
the time it was sent; every receiver checks it got every line of its room once, in each
sender's order, with the right sender and room.  The figures are printed (``-s``).
"""

from __future__ import annotations

import selectors

import pytest

from chatlab.bench.common import raise_nofile_limit
from chatlab.bench.load import run_load


def report(result) -> str:
    return (f"\n{result.backend}: {result.clients} clients in rooms of {result.room_size}, {result.sent} lines, "
            f"{result.received}/{result.expected} deliveries, lost {result.lost}, {result.msgs_per_s:,.0f} lines/s "
            f"({result.deliveries_per_s:,.0f} deliveries/s), p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms"
            + (f" at {result.rate:,.0f} lines/s offered" if result.rate else ""))


@pytest.mark.slow
@pytest.mark.parametrize("backend, clients, room_size, messages", [
    ("select", 200, 50, 10),
    ("epoll", 1000, 10, 10),
], ids=["select-200", "epoll-1000"])
def test_every_client_gets_every_line_of_its_room_once_and_in_order(backend, clients, room_size, messages):
    if not hasattr(selectors, backend.capitalize() + "Selector"):
        pytest.skip(f"no {backend} here")
    needed = 2 * clients + 256  # both ends of every connection live in this process
    if raise_nofile_limit(needed) < needed:
        pytest.skip(f"cannot open {needed} descriptors here")
    result = run_load(clients, messages, room_size, backend, server="thread", window=4)
    print(report(result))
    assert result.refused == 0 and result.errors == 0, result.error_texts[:5]
    assert result.sent == clients * messages
    assert result.expected == clients * messages * room_size
    assert (result.lost, result.duplicates, result.out_of_order) == (0, 0, 0)
    assert (result.forged, result.misrouted) == (0, 0)
    assert result.peak_queued < 256 * 1024  # every client reads: nothing piles up in the server


def test_latency_at_a_steady_rate_with_a_server_in_its_own_process():
    """The figure to quote: p99 latency when the offered load is below what the server can do."""
    result = run_load(200, 5, 20, "select", server="process", rate=1000)
    print(report(result))
    assert result.ok, result.error_texts[:5]
    assert 300 <= result.msgs_per_s <= 1100  # it kept up with the offered rate (loosely: CI machines are busy)


def test_a_small_load_in_a_thread_loses_nothing():
    """The everyday-loop version: 30 clients, a few lines each, the server in a thread (about a second)."""
    result = run_load(30, 4, 10, "select", server="thread", window=2)
    print(report(result))
    assert result.ok, result.error_texts[:5]
    assert result.expected == 30 * 4 * 10 and result.received == result.expected
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms
