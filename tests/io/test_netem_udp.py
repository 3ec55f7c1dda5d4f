"""Tests for chatlab.netem's UDP side: DatagramPath's decisions (no sockets) and DatagramLink on loopback.

Timing assertions are lower bounds, or generous upper ones: nothing can
arrive before the link releases it, but a busy machine may deliver late.
Every socket binds port 0 and is closed in a ``with`` block.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import time

import pytest

from chatlab.netem import (
    DatagramLink,
    DatagramPath,
    DatagramProfile,
    DatagramStats,
    PathStats,
)
from chatlab.netem_udp import main


def path(seed: int = 1, **kw) -> DatagramPath:
    return DatagramPath(DatagramProfile(**kw), random.Random(seed))


# ------------------------------------------------------------ the profile

@pytest.mark.parametrize("kw, words", [
    ({"loss": 10}, "probability from 0 to 1"),
    ({"duplicate": -0.1}, "probability"),
    ({"reorder": 1.5}, "probability"),
    ({"delay": -1}, "delay must be >= 0"),
    ({"jitter": float("nan")}, "jitter must be >= 0"),
    ({"rate": 0}, "rate must be > 0"),
    ({"queue_bytes": 0}, "queue_bytes"),
])
def test_a_bad_profile_is_refused_with_a_clear_error(kw, words):
    with pytest.raises(ValueError, match=words):
        DatagramProfile(**kw)


def test_describe_speaks_netems_words():
    text = DatagramProfile(delay=0.02, jitter=0.005, loss=0.1, duplicate=0.05, reorder=0.25, rate=125_000).describe()
    assert text == "delay 20 ms ± 5 ms, loss 10%, duplicate 5%, reorder 25%, rate 1 Mbit/s"
    assert DatagramProfile().describe() == "delay 0 ms"


# ------------------------------------------------- the decisions, sans I/O

def test_a_perfect_path_delivers_each_datagram_once_after_the_delay():
    p = path(delay=0.02)
    assert [p.send(t, 100) for t in (0.0, 1.0, 2.0)] == [[0.02], [1.02], [2.02]]
    assert p.stats() == PathStats(sent=3)


@pytest.mark.parametrize("knob", ["loss", "duplicate", "reorder"])
def test_each_probability_is_what_it_says(knob):
    p = path(seed=7, delay=0.01, **{knob: 0.2})
    for i in range(20_000):
        p.send(i * 0.001, 100)
    counted = {"loss": p.lost, "duplicate": p.duplicated, "reorder": p.reordered}[knob]
    assert 0.18 < counted / 20_000 < 0.22, counted
    others = {"loss": p.lost, "duplicate": p.duplicated, "reorder": p.reordered}
    assert all(v == 0 for k, v in others.items() if k != knob)


def test_the_same_seed_makes_the_same_decisions_and_another_seed_others():
    def run(seed: int) -> list[list[float]]:
        p = path(seed=seed, delay=0.01, jitter=0.005, loss=0.2, duplicate=0.1, reorder=0.1)
        return [p.send(i * 0.01, 100) for i in range(200)]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_one_knob_does_not_change_which_datagrams_another_knob_hits():
    lossy = path(seed=5, loss=0.3)
    lossy_and_copied = path(seed=5, loss=0.3, duplicate=0.5)
    lost_a = [not lossy.send(i, 10) for i in range(500)]
    lost_b = [not lossy_and_copied.send(i, 10) for i in range(500)]
    assert lost_a == lost_b


def test_a_duplicate_is_two_arrivals_and_a_reordered_datagram_skips_the_delay():
    p = path(delay=0.05, duplicate=1.0)
    assert p.send(0.0, 10) == [0.05, 0.05]
    p = path(delay=0.05, reorder=1.0)
    assert p.send(0.0, 10) == [0.0]


def test_jitter_stays_within_its_bounds_and_reorders_close_datagrams():
    p = path(seed=2, delay=0.05, jitter=0.02)
    arrivals = [p.send(i * 0.001, 10)[0] for i in range(2000)]
    delays = [a - i * 0.001 for i, a in enumerate(arrivals)]
    assert 0.03 - 1e-9 <= min(delays) and max(delays) <= 0.07 + 1e-9
    assert arrivals != sorted(arrivals)  # 1 ms apart, ±20 ms of jitter: later ones overtake


def test_the_rate_spaces_datagrams_out_and_a_full_queue_drops_the_tail():
    p = path(rate=1000.0, queue_bytes=300)  # 1000 bytes/s: a 100-byte datagram takes 0.1 s
    times = [p.send(0.0, 100) for _ in range(5)]
    assert times[:3] == [[pytest.approx(0.1)], [pytest.approx(0.2)], [pytest.approx(0.3)]]
    assert times[3:] == [[], []] and p.dropped == 2  # 300 bytes waiting: the queue of 300 is full
    assert p.send(10.0, 100) == [pytest.approx(10.1)]  # drained by then


# ------------------------------------------------------- on real sockets

class Echo:
    """A UDP echo server on port 0 (a thread), closed on exit."""

    def __init__(self) -> None:
        import threading

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.address = self.sock.getsockname()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop:
            try:
                data, peer = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            self.sock.sendto(data, peer)

    def __enter__(self) -> Echo:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop = True
        self.thread.join(5)
        self.sock.close()


def eventually(condition, timeout: float = 2.0) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` seconds have passed; return its last value."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return bool(condition())


def client() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    return sock


def drain(sock: socket.socket, quiet: float = 0.3) -> list[bytes]:
    got = []
    sock.settimeout(quiet)
    try:
        while True:
            got.append(sock.recv(65535))
    except (TimeoutError, BlockingIOError):
        return got


def test_a_perfect_link_echoes_every_datagram_whole_and_in_order():
    with Echo() as echo, DatagramLink(echo.address) as link, client() as sock:
        sent = [bytes([i]) * (i * 100 + 1) for i in range(20)]
        for data in sent:
            sock.sendto(data, link.address)
        assert [sock.recvfrom(65535) for _ in sent] == [(d, link.address) for d in sent]
        assert link.wait_idle()
        # the loop publishes its counts just after the send that woke us: give it that moment
        assert eventually(lambda: link.stats.up.delivered == link.stats.down.delivered == 20), link.stats
        assert link.stats.flows == 1


def test_the_delay_is_a_lower_bound_on_the_round_trip():
    with Echo() as echo, DatagramLink(echo.address, DatagramProfile(delay=0.03)) as link, client() as sock:
        started = time.perf_counter()
        sock.sendto(b"ping", link.address)
        assert sock.recv(100) == b"ping"
        assert time.perf_counter() - started >= 0.06


def test_loss_and_duplicates_on_the_wire_match_the_links_own_count():
    profile = DatagramProfile(loss=0.2, duplicate=0.1, seed=11)
    with Echo() as echo, DatagramLink(echo.address, upstream=profile) as link, client() as sock:
        got = []
        for i in range(300):
            sock.sendto(i.to_bytes(2, "big"), link.address)
            time.sleep(0.0005)
            got += drain(sock, quiet=0)  # read as we go: 300 unread datagrams would overflow our receive buffer
        got += drain(sock)
        link.wait_idle()
        eventually(lambda: link.stats.down.delivered == len(got))
        up, down = link.stats.up, link.stats.down
    assert up.sent == 300 and 40 < up.lost < 80 and 10 < up.duplicated < 50, up
    assert up.delivered == 300 - up.lost + up.duplicated, up
    assert len(got) == down.delivered == up.delivered, (len(got), up, down)
    assert len(set(got)) == 300 - up.lost


def test_each_client_gets_its_own_replies():
    with Echo() as echo, DatagramLink(echo.address) as link, client() as a, client() as b:
        a.sendto(b"from a", link.address)
        b.sendto(b"from b", link.address)
        assert a.recv(100) == b"from a" and b.recv(100) == b"from b"
        assert link.stats.flows == 2


def test_a_target_where_nothing_listens_is_counted_as_refused():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as nobody:
        nobody.bind(("127.0.0.1", 0))
        target = nobody.getsockname()
    # closed now: an ICMP port unreachable answers datagrams sent there
    with DatagramLink(target) as link, client() as sock:
        for _ in range(3):
            sock.sendto(b"anyone?", link.address)
            time.sleep(0.05)
        deadline = time.monotonic() + 2
        while not link.stats.refused and time.monotonic() < deadline:
            time.sleep(0.01)
        assert link.stats.refused >= 1 and link.running


def test_close_is_safe_twice_and_start_only_once():
    link = DatagramLink(("127.0.0.1", 9))
    link.close()
    with Echo() as echo:
        link = DatagramLink(echo.address).start()
        try:
            with pytest.raises(RuntimeError, match="only be started once"):
                link.start()
        finally:
            link.close()
            link.close()
    assert not link.running and isinstance(link.stats, DatagramStats)
    with pytest.raises(RuntimeError, match="not started"):
        print(DatagramLink(("127.0.0.1", 9)).address)


def test_the_command_line_refuses_a_bad_percentage():
    assert main(["--udp", "--target", "127.0.0.1:9", "--loss-pct", "150"]) == 2


@pytest.mark.slow
def test_the_command_line_forwards_datagrams():
    with Echo() as echo:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatlab", "netem", "--udp", "--target", f"127.0.0.1:{echo.address[1]}",
             "--delay-ms", "5", "--loss-pct", "0"],
            stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("netem: UDP on 127.0.0.1:"), line
            port = int(line.split()[3].rsplit(":", 1)[1].rstrip(","))
            with client() as sock:
                sock.sendto(b"hello", ("127.0.0.1", port))
                assert sock.recv(100) == b"hello"
        finally:
            proc.terminate()
            proc.wait(10)
            if proc.stdout:
                proc.stdout.close()


def test_the_link_emulators_loops_stay_readable():
    """Cyclomatic complexity (radon) of every function in netem.py, netem_pipe.py and netem_udp.py is at most 15."""
    radon = pytest.importorskip("radon.complexity", reason="pip install radon (in the test extra)")
    from pathlib import Path

    import chatlab

    too_complex = []
    for name in ("netem.py", "netem_pipe.py", "netem_udp.py"):
        source = (Path(chatlab.__file__).parent / name).read_text(encoding="utf-8")
        for block in radon.cc_visit(source):
            for item in [block, *getattr(block, "methods", [])]:
                if item.complexity > 15:
                    too_complex.append(f"{name}: {item.fullname} {item.complexity}")
    assert not too_complex, too_complex
