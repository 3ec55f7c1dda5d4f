"""chatlab.failures (notebook 09's tools) and the reconnect exercise's checker."""

from __future__ import annotations

import random
import socket
import sys
import threading
import time
from typing import Callable

import pytest

import chatlab
from chatlab.core import protocol as p
from chatlab.exercises.reconnect import check_upload_lines
from chatlab.failures import BlackHole, abort, full_backlog_listener, keepalive_settings, set_keepalive
from solutions.reconnect import next_count
from solutions.reconnect import upload_lines as reference


def test_abort_sends_a_rst_the_peer_sees_as_econnreset() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        with conn:
            abort(client)
            conn.settimeout(3)
            with pytest.raises(ConnectionResetError):
                conn.recv(100)


def test_full_backlog_listener_leaves_connect_unanswered_or_refused() -> None:
    listener, fillers = full_backlog_listener()
    try:
        assert fillers, "at least one connection fills the queue"
        with pytest.raises((TimeoutError, ConnectionRefusedError)):
            socket.create_connection(listener.getsockname(), timeout=0.5).close()
    finally:
        for sock in (listener, *fillers):
            sock.close()


def test_black_hole_forwards_then_swallows_without_closing() -> None:
    with socket.create_server(("127.0.0.1", 0)) as target, BlackHole(target.getsockname()) as hole:
        client = socket.create_connection(hole.address, timeout=3)
        conn, _ = target.accept()
        with client, conn:
            client.sendall(b"ping")
            conn.settimeout(3)
            assert conn.recv(100) == b"ping"
            hole.vanish()
            client.sendall(b"hello?")  # accepted by the hole's kernel: no error
            conn.sendall(b"answer")
            client.settimeout(0.5)
            with pytest.raises(TimeoutError):  # nothing comes back, and no FIN either
                client.recv(100)
            conn.settimeout(0.5)
            with pytest.raises(TimeoutError):
                conn.recv(100)


def test_the_servers_application_ping_drops_a_vanished_client() -> None:
    with chatlab.Server(port=0, ping_interval=0.3, ping_timeout=0.6) as server, BlackHole(server.address) as hole:
        with chatlab.Client.connect(server.address, nick="bob") as bob, \
                chatlab.Client.connect(hole.address, nick="alice") as alice:
            alice.say("hi")
            assert bob.wait_for(chatlab.ChatMessage, timeout=3).text == "hi"
            hole.vanish()
            notice = bob.wait_for(chatlab.Notice, timeout=5, predicate=lambda n: n.kind == "quit")
            assert notice.nick == "alice" and "ping timeout" in notice.text
            server.stop()  # before the clients close: no PING on its way to a closing client


def test_set_keepalive_sets_what_the_os_has() -> None:
    with socket.socket() as sock:
        described = set_keepalive(sock, idle=11, interval=4, count=3)
        settings = keepalive_settings(sock)
        assert settings["SO_KEEPALIVE"] != 0 and "SO_KEEPALIVE=1" in described
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert settings["TCP_KEEPIDLE"] == 11
        if hasattr(socket, "TCP_KEEPINTVL"):
            assert (settings["TCP_KEEPINTVL"], settings["TCP_KEEPCNT"]) == (4, 3)


# ------------------------------------------------------------------ the checker


def test_checker_passes_the_reference() -> None:
    report = check_upload_lines(reference, show=False)
    assert report, report.summary()


def stub(connect, lines):  # type: ignore[no-untyped-def]
    raise NotImplementedError()


def _session(sock: socket.socket, lines: list[str], start: Callable[[int], int]) -> None:
    sock.settimeout(1.0)
    decoder = p.MessageDecoder()
    held = start(next_count(sock, decoder))
    while held < len(lines):
        sock.sendall(p.encode(p.Say(lines[held])))
        held = next_count(sock, decoder)


def long_recv_timeout(connect, lines):  # type: ignore[no-untyped-def]
    """From a reviewer: a 5 s recv() timeout, so a half-open connection stalls the upload 5 s."""
    wait = 0.05
    while True:
        try:
            sock = connect()
        except (ConnectionRefusedError, TimeoutError):
            time.sleep(random.uniform(wait / 2, wait))
            wait = min(wait * 2, 2.0)
            continue
        wait = 0.05
        try:
            with sock:
                sock.settimeout(5.0)
                decoder = p.MessageDecoder()
                held = next_count(sock, decoder)
                while held < len(lines):
                    sock.sendall(p.encode(p.Say(lines[held])))
                    held = next_count(sock, decoder)
                return
        except (ConnectionError, TimeoutError, EOFError):
            continue


_GLOBAL_WAIT = [0.05]


def global_wait(connect, lines):  # type: ignore[no-untyped-def]
    """From a reviewer: the backoff delay kept at module level, so it carries over from call to call."""
    while True:
        try:
            sock = connect()
        except (ConnectionRefusedError, TimeoutError):
            time.sleep(random.uniform(_GLOBAL_WAIT[0] / 2, _GLOBAL_WAIT[0]))
            _GLOBAL_WAIT[0] = min(_GLOBAL_WAIT[0] * 2, 8.0)
            continue
        try:
            with sock:
                sock.settimeout(1.0)
                _session(sock, lines, lambda announced: announced)
                return
        except (ConnectionError, TimeoutError, EOFError):
            continue


def connects_once(connect, lines):  # type: ignore[no-untyped-def]
    with connect() as sock:
        _session(sock, lines, lambda announced: announced)


def no_timeout(connect, lines):  # type: ignore[no-untyped-def]
    while True:
        try:
            sock = connect()
        except (ConnectionRefusedError, TimeoutError):
            time.sleep(0.1)
            continue
        try:
            with sock:
                decoder = p.MessageDecoder()  # never sets a timeout: a silent server holds it forever
                held = next_count(sock, decoder)
                while held < len(lines):
                    sock.sendall(p.encode(p.Say(lines[held])))
                    held = next_count(sock, decoder)
                return
        except (ConnectionError, EOFError):
            continue


def _retrying(resume: Callable[[int, int], int]):  # type: ignore[no-untyped-def]
    """A reconnecting client that resumes at ``resume(announced, acknowledged_by_me)``."""
    def upload(connect, lines):  # type: ignore[no-untyped-def]
        acked = 0
        while True:
            try:
                sock = connect()
            except (ConnectionRefusedError, TimeoutError):
                time.sleep(0.1)
                continue
            try:
                with sock:
                    sock.settimeout(1.0)
                    decoder = p.MessageDecoder()
                    held = resume(next_count(sock, decoder), acked)
                    while held < len(lines):
                        sock.sendall(p.encode(p.Say(lines[held])))
                        acked = held = next_count(sock, decoder)
                    return
            except (ConnectionError, TimeoutError, EOFError):
                continue
    return upload


resumes_from_its_own_acks = _retrying(lambda announced, acked: acked)
restarts_from_scratch = _retrying(lambda announced, acked: 0)


def b_empty_is_not_eof(connect, lines):  # type: ignore[no-untyped-def]
    while True:
        try:
            sock = connect()
        except (ConnectionRefusedError, TimeoutError):
            time.sleep(0.1)
            continue
        try:
            with sock:
                sock.settimeout(1.0)
                decoder = p.MessageDecoder()

                def count() -> int:
                    while True:
                        for message in decoder:
                            if isinstance(message, p.Pong):
                                return message.token
                        decoder.feed(sock.recv(4096))  # b'' means "nothing yet"? no: the peer closed

                held = count()
                while held < len(lines):
                    sock.sendall(p.encode(p.Say(lines[held])))
                    held = count()
                return
        except (ConnectionError, TimeoutError):
            continue


def only_resets(connect, lines):  # type: ignore[no-untyped-def]
    while True:
        try:
            sock = connect()
        except ConnectionRefusedError:
            time.sleep(0.1)
            continue  # a connect timeout escapes
        try:
            with sock:
                _session(sock, lines, lambda announced: announced)
                return
        except (ConnectionResetError, EOFError, BrokenPipeError):
            continue


def _backing_off(delays, close: bool = True, one_recv_one_message: bool = False):  # type: ignore[no-untyped-def]
    """A reconnecting client whose n-th wait in a row is ``delays(n)`` seconds."""
    def upload(connect, lines):  # type: ignore[no-untyped-def]
        failures = 0
        while True:
            try:
                sock = connect()
            except (ConnectionRefusedError, TimeoutError):
                time.sleep(delays(failures))
                failures += 1
                continue
            failures = 0
            try:
                sock.settimeout(1.0)
                decoder = p.MessageDecoder()

                def count() -> int:
                    if one_recv_one_message:  # BUG: one recv() taken for one message
                        data = sock.recv(4096)
                        if not data:
                            raise EOFError
                        fresh = p.MessageDecoder()
                        fresh.feed(data)
                        return next(iter(fresh)).token
                    return next_count(sock, decoder)

                held = count()
                while held < len(lines):
                    sock.sendall(p.encode(p.Say(lines[held])))
                    held = count()
                if close:
                    sock.close()
                return
            except (ConnectionError, TimeoutError, EOFError):
                if close:
                    sock.close()
                continue
    return upload


hot_loop = _backing_off(lambda n: 0, close=False)  # BUG: no wait at all, and the failed sockets stay open
fixed_delay = _backing_off(lambda n: 0.1)  # BUG: no backoff
exponential_without_jitter = _backing_off(lambda n: min(0.05 * 2**n, 2.0))  # BUG: no jitter
leaks_failed_sockets = _backing_off(lambda n: random.uniform(0.5, 1) * min(0.05 * 2**n, 2.0), close=False)
random_wait_that_never_grows = _backing_off(lambda n: random.uniform(0.05, 0.15))  # BUG: jitter, no backoff
waits_seconds_from_the_start = _backing_off(lambda n: 1.0 * 2**n)  # BUG: 1 s, 2 s, 4 s... for a server back soon
one_recv_one_message = _backing_off(lambda n: random.uniform(0.5, 1) * min(0.05 * 2**n, 2.0), one_recv_one_message=True)


def decorrelated_jitter(connect, lines):  # type: ignore[no-untyped-def]
    """Correct, written differently: AWS's "decorrelated jitter", each wait drawn between the base and three
    times the previous wait, capped. Its waits may shrink from one failure to the next; their bounds grow."""
    base, cap = 0.05, 2.0
    wait = base
    while True:
        try:
            sock = connect()
        except (ConnectionRefusedError, TimeoutError):
            wait = min(cap, random.uniform(base, wait * 3))
            time.sleep(wait)
            continue
        wait = base
        with sock:
            sock.settimeout(1.0)
            decoder = p.MessageDecoder()
            try:
                held = next_count(sock, decoder)
                while held < len(lines):
                    sock.sendall(p.encode(p.Say(lines[held])))
                    held = next_count(sock, decoder)
                return
            except (OSError, EOFError):
                continue


linear_with_jitter = _backing_off(lambda n: random.uniform(0, 0.05 * (n + 1)))  # BUG: + base, not * 2
linear_with_half_jitter = _backing_off(lambda n: random.uniform(0.5, 1) * 0.1 * (n + 1))  # BUG: linear
capped_after_one_doubling = _backing_off(lambda n: random.uniform(0.5, 1) * min(0.1 * 2**n, 0.2))  # BUG: no growth

_MODULE_WAIT = [0.05]


def module_level_wait_capped_low(connect, lines):  # type: ignore[no-untyped-def]
    """BUG: the backoff delay kept at module level (carried over from call to call), with a low cap and full
    jitter, so the carried wait is often short: a statistical check lets it through now and then."""
    while True:
        try:
            sock = connect()
        except (ConnectionRefusedError, TimeoutError):
            time.sleep(random.uniform(0, _MODULE_WAIT[0]))
            _MODULE_WAIT[0] = min(_MODULE_WAIT[0] * 2, 1.0)
            continue
        try:
            with sock:
                sock.settimeout(1.0)
                _session(sock, lines, lambda announced: announced)
                return
        except (ConnectionError, TimeoutError, EOFError):
            continue


def pipelined_with_backoff(connect, lines):  # type: ignore[no-untyped-def]
    """Correct, written differently: sends every remaining line at once, reads the counts as they come,
    backs off with full jitter on threading.Event().wait() instead of time.sleep()."""
    pause = threading.Event()
    attempt = 0
    while True:
        try:
            sock = connect()
        except OSError:
            pause.wait(random.uniform(0, min(2.0, 0.1 * 2**attempt)))
            attempt += 1
            continue
        attempt = 0
        with sock:
            sock.settimeout(1.0)
            decoder = p.MessageDecoder()
            try:
                held = next_count(sock, decoder)
                sock.sendall(b"".join(p.encode(p.Say(line)) for line in lines[held:]))
                while held < len(lines):
                    held = next_count(sock, decoder)
                return
            except (OSError, EOFError):
                continue


@pytest.mark.slow
@pytest.mark.parametrize("right", [pipelined_with_backoff, decorrelated_jitter])
def test_checker_passes_a_correct_uploader_written_differently(right) -> None:  # type: ignore[no-untyped-def]
    report = check_upload_lines(right, show=False)
    assert report.all_passed, report.summary()


@pytest.mark.parametrize(
    "wrong, failing_case, hint",
    [
        (hot_loop, "refused again and again", "hammers a server"),
        (hot_loop, "FIN", "connections were left open"),
        (fixed_delay, "refused again and again", "did not grow"),
        (exponential_without_jitter, "refused again and again", "jitter"),
        (leaks_failed_sockets, "RST", "still open when connect() was called again"),
        (random_wait_that_never_grows, "refused again and again", "did not grow"),
        (linear_with_jitter, "refused again and again", "a linear backoff grows by a step"),
        (linear_with_half_jitter, "refused again and again", "a linear backoff grows by a step"),
        (capped_after_one_doubling, "refused again and again", "a cap reached after one doubling"),
        pytest.param(waits_seconds_from_the_start, "refused again and again", "the waits are too long",
                     marks=pytest.mark.slow),
        (one_recv_one_message, "no failure", "One recv() is not one message"),
        (stub, "no failure", "not written yet"),
        (connects_once, "ECONNREFUSED", "call connect() again" if sys.platform != "win32" else "reconnecting"),
        (no_timeout, "half-open", "without a timeout"),
        (long_recv_timeout, "half-open", "went silent held your function"),
        (resumes_from_its_own_acks, "FIN", "more than once"),
        (restarts_from_scratch, "FIN", "resume from the count the server announces"),
        (b_empty_is_not_eof, "FIN", "b''"),
        pytest.param(only_resets, "connect times out", "TimeoutError", marks=pytest.mark.skipif(
            sys.platform == "win32", reason="Windows refuses (RST) instead of dropping SYNs to a full backlog")),
    ],
)
def test_checker_fails_classic_wrong_answers(wrong, failing_case: str, hint: str, capsys) -> None:  # type: ignore[no-untyped-def]
    report = check_upload_lines(wrong, only=None if wrong is stub else failing_case)
    out = capsys.readouterr().out
    assert not report
    failed = [r for r in report.results if not r.passed]
    assert any(failing_case in r.name for r in failed), out
    assert hint in " ".join(r.detail for r in failed if failing_case in r.name), out
    assert "FAIL" in out and "Traceback" not in out


@pytest.mark.slow
def test_checker_names_a_backoff_delay_carried_over_between_calls() -> None:
    _GLOBAL_WAIT[0] = 0.05
    report = check_upload_lines(global_wait, show=False)
    failed = {r.name: r.detail for r in report.results if not r.passed}
    detail = " ".join(d for name, d in failed.items() if name.startswith("all of the above"))
    assert "carried over from earlier calls" in detail, report.summary()


@pytest.mark.slow
def test_checker_names_a_low_capped_module_level_wait_every_time() -> None:
    for _run in range(3):
        _MODULE_WAIT[0] = 0.05
        report = check_upload_lines(module_level_wait_capped_low, show=False)
        failed = {r.name: r.detail for r in report.results if not r.passed}
        detail = " ".join(d for name, d in failed.items() if name.startswith("all of the above"))
        assert "carried over from earlier calls" in detail, report.summary()


@pytest.mark.slow
def test_decorrelated_jitter_passes_and_linear_backoff_fails_every_time() -> None:
    """Both directions, reliably: 10 runs of the backoff case each (about a minute; 50 runs each, 7 minutes
    on a loaded 2-core machine, gave 50/50 passes for decorrelated jitter and 0/50 for linear backoff)."""
    runs = 10
    passed = {"decorrelated": 0, "linear": 0}
    for _run in range(runs):
        for name, upload in (("decorrelated", decorrelated_jitter), ("linear", linear_with_jitter)):
            report = check_upload_lines(upload, show=False, only="refused again and again")
            passed[name] += report.all_passed
    assert passed == {"decorrelated": runs, "linear": 0}, passed
