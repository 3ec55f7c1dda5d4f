"""Notebook 08's batching, measured: the selectors server's outbox makes one send() carry many frames."""

from __future__ import annotations

import pytest

from chatlab.fourways import measure

STRACE_C = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 74.19    0.000023           0        29           write
 25.81    0.000008           4      4321         3 sendto
------ ----------- ----------- --------- --------- ----------------
100.00    0.000031           1      4350         3 total
"""


def test_strace_summary_is_read() -> None:
    assert measure._strace_counts(STRACE_C) == {"write": 29, "sendto": 4321}


def test_without_strace_nothing_is_claimed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure, "strace_available", lambda: False)
    row = measure.send_calls("selector", clients=4, n_rounds=1)
    assert row.send_calls is None and row.frames_per_call is None


@pytest.mark.slow
def test_the_selectors_server_batches_and_the_others_do_not() -> None:
    if not measure.strace_available():
        pytest.skip("strace (Linux) is needed to count system calls")
    rows = {kind: measure.send_calls(kind, clients=32, n_rounds=5) for kind in ("threaded", "selector", "asyncio")}
    frames = 32 * 32 * 5 + 32 * 33 // 2
    for row in rows.values():
        assert row.frames == frames and row.send_calls, row
    assert rows["threaded"].frames_per_call < 1.2 and rows["asyncio"].frames_per_call < 1.2, rows
    assert rows["selector"].frames_per_call > 2, rows  # one send() carries several frames
