"""The checkers of notebooks 01 and 02 pass the reference solutions and catch known bugs."""

from __future__ import annotations

import os
import select
import socket
import sys
import time

import pytest

from chatlab.exercises.select_loop import check_select_step
from chatlab.exercises.sockopt import check_make_listener
from solutions.sockopt_select import make_listener, serve_step

POSIX = os.name == "posix"


def failed(report) -> set[str]:
    return {r.name for r in report.results if not r.passed}


# -- notebook 01: make_listener ---------------------------------------------


def test_reference_make_listener_passes():
    report = check_make_listener(make_listener, show=False)
    assert report, report.summary()


# The classic wrong answers to notebook 01's exercise.  Each must fail the
# checker, in the cases named, with a hint that names the idea it misses.


def listener_without_option(port, host="127.0.0.1"):
    sock = socket.socket()
    sock.bind((host, port))
    sock.listen()
    return sock


def listener_option_after_bind(port, host="127.0.0.1"):
    sock = socket.socket()
    sock.bind((host, port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # too late: bind() already checked
    sock.listen()
    return sock


def listener_not_listening(port, host="127.0.0.1"):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def listener_reuseport(port, host="127.0.0.1"):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # lets a second listener share a live port
    sock.bind((host, port))
    sock.listen()
    return sock


def listener_reuseport_instead(port, host="127.0.0.1"):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # the wrong option of the two
    sock.bind((host, port))
    sock.listen()
    return sock


def listener_on_every_interface(port, host="127.0.0.1"):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", port))  # ignores host: reachable from the whole network
    sock.listen()
    return sock


def listener_on_any_port(port, host="127.0.0.1"):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))  # ignores port
    sock.listen()
    return sock


def listener_closed_by_with(port, host="127.0.0.1"):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()
        return sock  # the with block closes it on the way out


def listener_forgets_return(port, host="127.0.0.1"):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen()


def listener_udp(port, host="127.0.0.1"):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen()
    return sock


def listener_option_zero(port, host="127.0.0.1"):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)  # 0 switches it off
    sock.bind((host, port))
    sock.listen()
    return sock


def listener_wrong_level(port, host="127.0.0.1"):
    sock = socket.socket()
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.SO_REUSEADDR, 1)  # a socket-level option at the TCP level
    except OSError:
        pass
    sock.bind((host, port))
    sock.listen()
    return sock


def listener_and_port(port, host="127.0.0.1"):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen()
    return sock, sock.getsockname()[1]  # a tuple, not the socket


def listener_create_server(port, host="127.0.0.1"):
    return socket.create_server((host, port))  # sets SO_REUSEADDR itself on POSIX, not on Windows


def listener_with_backlog_and_timeout(port, host="127.0.0.1"):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if os.name != "nt":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
    sock.bind((host, port))
    sock.listen(128)
    sock.settimeout(5.0)
    return sock


@pytest.mark.parametrize("right", [listener_create_server, listener_with_backlog_and_timeout])
def test_check_make_listener_passes_a_listener_written_differently(right):
    report = check_make_listener(right, show=False)
    assert report.all_passed, report.summary()


LISTENS = "returns a bound, listening TCP socket"
OPTION_ON = "SO_REUSEADDR is on (POSIX; off is right on Windows)"
RESTARTS = "restarts twice on its port with connections in TIME_WAIT"
REFUSED = "a port a live listener holds is still refused"
LINUX = sys.platform.startswith("linux")

# From a reviewer's attempts to fool the checker.
def fool_w_ignores_host(port, host="127.0.0.1"):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))  # BUG: host argument ignored (hard-coded)
    sock.listen()
    return sock


def fool_w_localhost(port, host="127.0.0.1"):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("localhost", port))  # BUG: host argument ignored
    sock.listen()
    return sock


def fool_w_nonblocking_listener(port, host="127.0.0.1"):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(0)
    sock.setblocking(False)
    return sock


LISTENER_WRONG_ANSWERS = [
    # (name, make_listener, cases that must fail, words the hint must hold, runs here)
    ("no SO_REUSEADDR", listener_without_option, {OPTION_ON, RESTARTS}, "TIME_WAIT", POSIX),
    ("SO_REUSEADDR after bind()", listener_option_after_bind, {RESTARTS}, "before bind()", POSIX),
    ("never listens", listener_not_listening, {LISTENS}, "only once it listens", True),
    ("SO_REUSEPORT as well", listener_reuseport, {REFUSED}, "share one port", LINUX),
    ("SO_REUSEPORT instead", listener_reuseport_instead, {OPTION_ON, REFUSED}, "the option is off", LINUX),
    ("binds every interface", listener_on_every_interface, {LISTENS}, "every network", True),
    ("ignores the port", listener_on_any_port, {LISTENS}, "use the port it is given", True),
    ("returns from inside a with block", listener_closed_by_with, {LISTENS, OPTION_ON, RESTARTS, REFUSED},
     "already closed", True),
    ("forgets to return", listener_forgets_return, {LISTENS, OPTION_ON, RESTARTS}, "forget to `return`", True),
    ("a UDP socket", listener_udp, {LISTENS, OPTION_ON, RESTARTS}, "only a stream (TCP)", POSIX),
    ("SO_REUSEADDR set to 0", listener_option_zero, {OPTION_ON, RESTARTS}, "0 switches it off", POSIX),
    ("SO_REUSEADDR at the TCP level", listener_wrong_level, {OPTION_ON}, "not IPPROTO_TCP", POSIX),
    ("returns (socket, port)", listener_and_port, {LISTENS}, "returned tuple", True),
    ("host hard-coded", fool_w_ignores_host, {LISTENS}, "use the host it is given", LINUX),
    ("'localhost' hard-coded", fool_w_localhost, {LISTENS}, "use the host it is given", LINUX),
    ("a non-blocking listener", fool_w_nonblocking_listener, {LISTENS}, "setblocking(False)", True),
]


@pytest.mark.parametrize("name, make_listener_, must_fail, hint, runs_here", LISTENER_WRONG_ANSWERS,
                         ids=[row[0] for row in LISTENER_WRONG_ANSWERS])
def test_check_make_listener_fails_a_classic_wrong_answer(name, make_listener_, must_fail, hint, runs_here):
    if not runs_here:
        pytest.skip("this mistake behaves differently on this platform")
    report = check_make_listener(make_listener_, show=False)
    assert not report
    assert failed(report) >= must_fail, report.summary()
    details = " | ".join(r.detail for r in report.results if r.name in must_fail)
    assert hint in details, report.summary()


@pytest.mark.skipif(not POSIX, reason="TIME_WAIT blocks a plain rebind on POSIX only")
def test_option_after_bind_fails_only_the_restart():
    report = check_make_listener(listener_option_after_bind, show=False)
    assert failed(report) == {RESTARTS}
    assert "EADDRINUSE" in report.summary()


# -- notebook 02: serve_step -------------------------------------------------


def test_reference_serve_step_passes():
    report = check_select_step(serve_step, show=False)
    assert report, report.summary()


# The classic wrong answers to notebook 02's exercise: the reference serve_step
# with one classic bug switched on.  Each must fail the checker, in the case
# named, with a hint that names the idea it misses.

BUGS = (
    "always_writable", "keep_eof", "blocking_sendall", "no_reset", "write_dropped", "no_trim", "blocking_accept",
    "no_echo", "close_not_removed", "no_outbox_entry", "nonblocking_sendall", "timeout_ignored", "outbox_kept",
    "clear_after_send", "hardcoded_timeout", "zero_timeout", "sleep_then_poll", "reset_not_closed",
    "send_error_not_closed",
)


def make_buggy(bug):
    """The reference serve_step with the bug named ``bug`` switched on."""
    assert bug in BUGS

    def drop(sock, clients, outbox):
        if bug != "close_not_removed":
            clients.remove(sock)
            if bug != "outbox_kept":
                outbox.pop(sock, None)
        sock.close()

    def step(listener, clients, outbox, timeout):
        want_write = list(clients) if bug == "always_writable" else [c for c in clients if outbox.get(c)]
        if bug == "sleep_then_poll":
            time.sleep(timeout)  # then polls: a line that arrives meanwhile waits out the whole timeout
        given = {"timeout_ignored": None, "hardcoded_timeout": 0.05, "zero_timeout": 0, "sleep_then_poll": 0}
        readable, writable, _ = select.select([listener, *clients], want_write, [], given.get(bug, timeout))
        for sock in readable:
            if sock is listener:
                conn, _ = listener.accept()
                conn.setblocking(bug in ("blocking_sendall", "blocking_accept"))  # the blocking version blocks for real
                clients.append(conn)
                if bug != "no_outbox_entry":
                    outbox[conn] = bytearray()
                continue
            if sock not in clients:
                continue
            if bug == "no_reset":
                data = sock.recv(4096)
            else:
                try:
                    data = sock.recv(4096)
                except OSError:
                    if bug == "reset_not_closed":  # forgotten, never closed
                        clients.remove(sock)
                        outbox.pop(sock, None)
                        continue
                    data = b""
            if not data:
                if bug != "keep_eof":
                    drop(sock, clients, outbox)
                continue
            for client in clients:
                if client is sock and bug == "no_echo":
                    continue
                outbox[client] += data
        for sock in writable:
            if sock not in clients and bug != "write_dropped":
                continue
            if bug in ("blocking_sendall", "nonblocking_sendall"):
                sock.sendall(outbox[sock])
                outbox[sock].clear()
                continue
            try:
                sent = sock.send(outbox[sock])
            except BlockingIOError:
                continue
            except OSError:
                if bug == "write_dropped" and sock not in clients:
                    raise
                if bug == "send_error_not_closed":  # forgotten, never closed
                    clients.remove(sock)
                    outbox.pop(sock, None)
                    continue
                drop(sock, clients, outbox)
                continue
            if bug == "clear_after_send":
                outbox[sock].clear()  # what send() did not take is lost
            elif bug != "no_trim":
                del outbox[sock][:sent]

    return step


SELECT_WRONG_ANSWERS = [
    # (bug, the case that must fail, words the hint must hold)
    ("always_writable", "idle clients: waits for the timeout, no busy loop", "always writable"),
    ("keep_eof", "a client closing mid-stream is removed, its last bytes delivered", "b'' is how a peer says"),
    # a blocking sendall to a client that does not read: reported after a deadline, not waited for
    ("blocking_sendall", "a slow reader delays no one and catches up later", "did not return within"),
    ("no_reset", "a client resetting the connection is removed", "ConnectionResetError"),
    ("write_dropped", "a client vanishing with output queued for it", "closed earlier in this same step"),
    ("no_trim", "echoes a line back to its sender", "received more than it sent"),
    ("blocking_accept", "accepts a new client and makes it non-blocking", "would stop the whole loop"),
    ("no_echo", "echoes a line back to its sender", "shows a line to everyone in it"),
    ("close_not_removed", "a client closing mid-stream is removed, its last bytes delivered", "must leave clients"),
    ("no_outbox_entry", "echoes a line back to its sender", "every client in clients needs one"),
    ("nonblocking_sendall", "a slow reader delays no one and catches up later", "BlockingIOError"),
    ("timeout_ignored", "idle clients: waits for the timeout, no busy loop", "Pass select() the timeout"),
    ("outbox_kept", "a client closing mid-stream is removed, its last bytes delivered", "still a key of outbox"),
    ("clear_after_send", "a slow reader delays no one and catches up later", "del outbox[sock][:sent]"),
    ("hardcoded_timeout", "select() waits the timeout given, and wakes when a line arrives", "a number of your own"),
    ("zero_timeout", "select() waits the timeout given, and wakes when a line arrives", "a timeout of 0"),
    ("sleep_then_poll", "select() waits the timeout given, and wakes when a line arrives", "no time.sleep()"),
    ("reset_not_closed", "a client resetting the connection is removed", "its socket is still open"),
    ("send_error_not_closed", "a client whose send() fails is removed and closed", "its socket is still open"),
]


def test_a_zero_timeout_busy_loop_is_named_as_such_not_as_writability():
    report = check_select_step(make_buggy("zero_timeout"), show=False, only="idle clients")
    assert not report
    assert "was not given the timeout" in report.results[0].detail, report.summary()
    assert "writable" not in report.results[0].detail, report.summary()


@pytest.mark.parametrize("bug, must_fail, says", SELECT_WRONG_ANSWERS, ids=[row[0] for row in SELECT_WRONG_ANSWERS])
def test_check_select_step_fails_a_classic_wrong_answer(bug, must_fail, says):
    report = check_select_step(make_buggy(bug), show=False, only=must_fail)
    assert failed(report) == {must_fail}, report.summary()
    (result,) = [r for r in report.results if r.name == must_fail]
    assert says in result.detail, report.summary()


def test_check_select_step_gives_up_after_the_real_limit():
    report = check_select_step(make_buggy("keep_eof"), show=False, only="mid-stream")
    assert "gave up after 1.5 s" in report.results[0].detail


def test_only_selects_cases():
    report = check_select_step(serve_step, show=False, only="echoes")
    assert [r.name for r in report.results] == ["echoes a line back to its sender"]
    with pytest.raises(ValueError):
        check_select_step(serve_step, show=False, only="no such case")
