"""The checkers of notebooks 01 and 02 pass the reference solutions and catch known bugs."""

from __future__ import annotations

import os
import select
import socket
import sys

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


@pytest.mark.skipif(not POSIX, reason="TIME_WAIT blocks a plain rebind on POSIX only")
def test_missing_option_fails():
    report = check_make_listener(listener_without_option, show=False)
    assert failed(report) == {
        "SO_REUSEADDR is on (POSIX; off is right on Windows)",
        "restarts twice on its port with connections in TIME_WAIT",
    }


@pytest.mark.skipif(not POSIX, reason="TIME_WAIT blocks a plain rebind on POSIX only")
def test_option_after_bind_fails():
    report = check_make_listener(listener_option_after_bind, show=False)
    assert failed(report) == {"restarts twice on its port with connections in TIME_WAIT"}
    assert "EADDRINUSE" in report.summary()


def test_not_listening_fails():
    report = check_make_listener(listener_not_listening, show=False)
    assert "returns a bound, listening TCP socket" in failed(report)


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT") or not sys.platform.startswith("linux"), reason="Linux SO_REUSEPORT")
def test_port_sharing_fails():
    report = check_make_listener(listener_reuseport, show=False)
    assert failed(report) == {"a port a live listener holds is still refused"}


# -- notebook 02: serve_step -------------------------------------------------


def test_reference_serve_step_passes():
    report = check_select_step(serve_step, show=False)
    assert report, report.summary()


def make_buggy(*, always_writable=False, keep_eof=False, sendall=False, no_reset=False, write_dropped=False, no_trim=False):
    """The reference serve_step with one classic bug switched on."""

    def drop(sock, clients, outbox):
        clients.remove(sock)
        outbox.pop(sock, None)
        sock.close()

    def step(listener, clients, outbox, timeout):
        want_write = list(clients) if always_writable else [c for c in clients if outbox.get(c)]
        readable, writable, _ = select.select([listener, *clients], want_write, [], timeout)
        for sock in readable:
            if sock is listener:
                conn, _ = listener.accept()
                conn.setblocking(sendall)  # the blocking version blocks for real
                clients.append(conn)
                outbox[conn] = bytearray()
                continue
            if sock not in clients:
                continue
            if no_reset:
                data = sock.recv(4096)
            else:
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = b""
            if not data:
                if not keep_eof:
                    drop(sock, clients, outbox)
                continue
            for client in clients:
                outbox[client] += data
        for sock in writable:
            if sock not in clients and not write_dropped:
                continue
            if sendall:
                sock.sendall(outbox[sock])
                outbox[sock].clear()
                continue
            try:
                sent = sock.send(outbox[sock])
            except BlockingIOError:
                continue
            except OSError:
                if write_dropped and sock not in clients:
                    raise
                drop(sock, clients, outbox)
                continue
            if not no_trim:
                del outbox[sock][:sent]

    return step


@pytest.mark.parametrize(
    "bug, must_fail, says",
    [
        ("always_writable", "idle clients: waits for the timeout, no busy loop", "write list"),
        ("keep_eof", "a client closing mid-stream is removed, its last bytes delivered", "to be removed"),
        # a blocking sendall to a client that does not read: reported after a deadline, not waited for
        ("sendall", "a slow reader delays no one and catches up later", "did not return within"),
        ("no_reset", "a client resetting the connection is removed", "ConnectionResetError"),
        ("write_dropped", "a client vanishing with output queued for it", "serve_step raised"),
        ("no_trim", "echoes a line back to its sender", "received more than it sent"),
    ],
)
def test_buggy_serve_step_fails(bug, must_fail, says):
    report = check_select_step(make_buggy(**{bug: True}), show=False, only=must_fail)
    assert failed(report) == {must_fail}, report.summary()
    (result,) = [r for r in report.results if r.name == must_fail]
    assert says in result.detail


def test_only_selects_cases():
    report = check_select_step(serve_step, show=False, only="echoes")
    assert [r.name for r in report.results] == ["echoes a line back to its sender"]
    with pytest.raises(ValueError):
        check_select_step(serve_step, show=False, only="no such case")
