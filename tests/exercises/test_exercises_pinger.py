"""check_pinger (notebook 10): the reference passes, and each classic wrong answer fails with its hint.

The wrong answers are the reference pinger with one mistake switched on
(``pinger(bug=...)``), so each row of the table differs from the right
answer in exactly the way its name says.
"""

from __future__ import annotations

import math
import select
import socket
import time

import pytest

from chatlab.exercises import check_pinger
from chatlab.exercises.pinger import format_ping
from solutions.pinger import ping as reference


def pinger(bug: str):
    """The reference pinger with one mistake in it."""

    def ping(sock: socket.socket, server: tuple, count: int, timeout: float) -> dict:
        rtts: list[float] = []
        answered: set[int] = set()
        duplicates = 0
        run_started = time.perf_counter()
        for seq in range(1, count + 1):
            sent_at = time.perf_counter()
            sock.sendto(f"PING {seq} {sent_at}".encode(), server)
            deadline = sent_at + (0.1 if bug == "fixed timeout" else timeout)
            while True:
                if bug == "no timeout":
                    sock.settimeout(None)
                elif bug == "timeout restarted":
                    sock.settimeout(timeout)  # the full timeout again after every datagram
                else:
                    left = deadline - time.perf_counter()
                    if left <= 0:
                        break
                    sock.settimeout(left)
                if bug == "busy":
                    sock.setblocking(False)
                    try:
                        data, peer = sock.recvfrom(2048)
                    except BlockingIOError:
                        continue  # asks again at once: 100 % CPU while it waits
                    if time.perf_counter() > deadline:
                        break
                else:
                    try:
                        data, peer = sock.recvfrom(2048)
                    except TimeoutError:
                        break
                now = time.perf_counter()
                if bug == "parses everything":
                    k = int(data.split()[1])  # b"hello? ..." has no number there
                else:
                    words = data.split()
                    if len(words) < 2 or words[0] != b"PING" or not words[1].isdigit():
                        continue
                    k = int(words[1])
                if bug == "gives up on a stray" and (peer != server or k != seq):
                    break  # any datagram but the expected reply ends the wait: the ping is counted lost
                if bug != "any sender" and peer != server:
                    continue
                if bug == "no sequence check":
                    k = seq  # whatever arrives is taken for the current ping's reply
                if k in answered:
                    if bug == "duplicates as replies":
                        rtts.append((now - sent_at) * 1000)  # a copy counted as one more reply
                    elif bug != "duplicates not counted":
                        duplicates += 1
                elif k == seq:
                    answered.add(k)
                    began = run_started if bug == "rtt from the start" else sent_at
                    rtts.append((now - began) * (1 if bug == "seconds" else 1000))
                    break
        received = len(rtts)
        if bug == "integer loss":
            loss = 100 * (count - received) // count  # 1 lost of 3 gives 33, not 33.33
        else:
            loss = (count - received) / count * (1 if bug == "fraction" else 100)
        nothing = 0.0 if bug == "zeros for no RTT" else None
        stats = {"sent": count, "received": received, "duplicates": duplicates, "loss": loss,
                 "min": nothing, "avg": nothing, "max": nothing, "mdev": nothing}
        if rtts or bug == "divides by zero":
            mean = sum(rtts) / received
            var = sum(r * r for r in rtts) / received - mean * mean
            mdev = max(0.0, var) if bug == "variance for mdev" else math.sqrt(max(0.0, var))
            stats.update(min=min(rtts), avg=mean, max=max(rtts), mdev=mdev)
        return stats

    ping.__name__ = "ping"
    return ping


def failed(report) -> set[str]:
    return {r.name for r in report.results if not r.passed}


def test_the_reference_passes_every_case():
    report = check_pinger(reference, show=False)
    assert report, report.summary()


WRONG_ANSWERS = [
    # (bug, cases that must fail, words the hint must hold)
    ("no timeout", {"a lost reply: ping 2 is never answered", "every reply lost"},
     "without a timeout waits forever"),
    ("no sequence check", {"a late reply: ping 2's comes after its timeout, while ping 3 waits",
                           "duplicates: pings 1 and 3 are answered twice"}, "matched to the wrong ping"),
    ("fixed timeout", {"a slow link: RTT 300 ms, timeout 1 s"}, "timeout shorter than the one you were given"),
    ("duplicates as replies", {"duplicates: pings 1 and 3 are answered twice"}, "received is 7, expected 5"),
    ("duplicates not counted", {"duplicates: pings 1 and 3 are answered twice"}, "duplicates is 0, expected 2"),
    ("any sender", {"a stranger answers first, from another address"}, "came from the server"),
    ("parses everything", {"noise: a datagram that is not a reply, then a reply after the timeout"},
     "ValueError"),
    ("timeout restarted", {"noise: a datagram that is not a reply, then a reply after the timeout"},
     "measure the timeout from the moment the ping was sent"),
    ("seconds", {"no loss: 5 pings, RTT 20 to 60 ms"}, "milliseconds, not seconds"),
    ("fraction", {"a lost reply: ping 2 is never answered"}, "in percent"),
    ("divides by zero", {"every reply lost"}, "ZeroDivisionError"),
    ("rtt from the start", {"no loss: 5 pings, RTT 20 to 60 ms"}, "from its own ping's sendto()"),
    ("zeros for no RTT", {"every reply lost"}, "should be None"),
    ("variance for mdev", {"no loss: 5 pings, RTT 20 to 60 ms"}, "that is the variance"),
    ("integer loss", {"one of three lost: the loss is not a whole percentage"}, "integer division (//)"),
    ("busy", {"a lost reply: ping 2 is never answered", "every reply lost"}, "a busy loop"),
    ("gives up on a stray", {"a stranger answers first, from another address"}, "keep waiting for the rest"),
]


def ping_with_select(sock: socket.socket, server: tuple, count: int, timeout: float) -> dict:
    """Correct, written differently: a non-blocking socket, and select() does the waiting."""
    sock.setblocking(False)
    rtts: list[float] = []
    answered: set[int] = set()
    duplicates = 0
    for seq in range(1, count + 1):
        sent_at = time.monotonic()
        sock.sendto(b"PING %d x" % seq, server)
        while (left := sent_at + timeout - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            try:
                data, peer = sock.recvfrom(2048)
            except BlockingIOError:
                continue
            words = data.split()
            if peer != server or len(words) < 2 or words[0] != b"PING" or not words[1].isdigit():
                continue
            if int(words[1]) in answered:
                duplicates += 1
            elif int(words[1]) == seq:
                answered.add(seq)
                rtts.append((time.monotonic() - sent_at) * 1000)
                break
    n = len(rtts)
    mean = sum(rtts) / n if n else None
    return {"sent": count, "received": n, "duplicates": duplicates, "loss": 100 * (count - n) / count,
            "min": min(rtts) if n else None, "avg": mean, "max": max(rtts) if n else None,
            "mdev": math.sqrt(max(0.0, sum(r * r for r in rtts) / n - mean * mean)) if n else None}


@pytest.mark.slow
def test_a_pinger_waiting_in_select_passes():
    report = check_pinger(ping_with_select, show=False)
    assert report.all_passed, report.summary()


def ping_on_a_connected_socket(sock: socket.socket, server: tuple, count: int, timeout: float) -> dict:
    """Correct, written differently: connect() makes the kernel drop datagrams from other addresses."""
    sock.connect(server)
    rtts: list[float] = []
    answered: set[int] = set()
    duplicates = 0
    for seq in range(1, count + 1):
        sent_at = time.monotonic()
        sock.send(b"PING %d hello" % seq)
        while (left := sent_at + timeout - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                words = sock.recv(2048).split()
            except (TimeoutError, ConnectionRefusedError):
                break
            if len(words) < 2 or words[0] != b"PING" or not words[1].isdigit():
                continue
            if int(words[1]) in answered:
                duplicates += 1
            elif int(words[1]) == seq:
                answered.add(seq)
                rtts.append((time.monotonic() - sent_at) * 1000)
                break
    n = len(rtts)
    mean = sum(rtts) / n if n else None
    return {"sent": count, "received": n, "duplicates": duplicates, "loss": 100 * (count - n) / count,
            "min": min(rtts) if n else None, "avg": mean, "max": max(rtts) if n else None,
            "mdev": math.sqrt(max(0.0, sum(r * r for r in rtts) / n - mean * mean)) if n else None}


@pytest.mark.slow
def test_a_pinger_on_a_connected_socket_passes():
    report = check_pinger(ping_on_a_connected_socket, show=False)
    assert report.all_passed, report.summary()


@pytest.mark.slow
@pytest.mark.parametrize("bug, must_fail, hint", WRONG_ANSWERS, ids=[row[0] for row in WRONG_ANSWERS])
def test_check_pinger_fails_a_classic_wrong_answer(bug, must_fail, hint):
    report = check_pinger(pinger(bug), show=False)
    assert not report
    assert failed(report) >= must_fail, report.summary()
    details = " | ".join(r.detail for r in report.results if r.name in must_fail)
    assert hint in details, report.summary()


def test_an_unwritten_pinger_fails_every_case_without_raising():
    def ping(sock, server, count, timeout):
        raise NotImplementedError()

    report = check_pinger(ping, show=False)
    assert not report.passed and all("not written yet" in r.detail for r in report.results)


def test_only_picks_cases_and_refuses_a_name_that_matches_none():
    assert [r.name for r in check_pinger(reference, show=False, only="stranger").results] == [
        "a stranger answers first, from another address"]
    with pytest.raises(ValueError, match="no case name contains"):
        check_pinger(reference, show=False, only="no such case")


def test_format_ping_prints_what_ping_prints():
    stats = {"sent": 5, "received": 4, "duplicates": 1, "loss": 20.0,
             "min": 20.1, "avg": 40.25, "max": 60.5, "mdev": 14.0}
    assert format_ping(stats, "example") == (
        "--- example ping statistics ---\n"
        "5 packets transmitted, 4 received, +1 duplicates, 20% packet loss\n"
        "rtt min/avg/max/mdev = 20.100/40.250/60.500/14.000 ms")
    lost = {"sent": 3, "received": 0, "duplicates": 0, "loss": 100.0,
            "min": None, "avg": None, "max": None, "mdev": None}
    assert format_ping(lost).splitlines()[1] == "3 packets transmitted, 0 received, 100% packet loss"
