"""Notebook 00's checker: the reference echo server passes, the classic wrong answers FAIL with a hint."""

from __future__ import annotations

import socket

import pytest

from chatlab.exercises.first_socket import check_echo_server
from solutions.first_socket import serve_one_echo

LEAKED: list[socket.socket] = []


def test_the_reference_passes() -> None:
    report = check_echo_server(serve_one_echo, show=False)
    assert report, report.summary()


def one_recv(listener):
    conn, _ = listener.accept()
    with conn:
        data = conn.recv(4096)  # BUG: one recv() is not one message
        conn.sendall(data)
    return len(data)


def ignores_end_of_stream(listener):
    conn, _ = listener.accept()
    echoed = 0
    with conn:
        while True:  # BUG: b'' never ends the loop
            data = conn.recv(4096)
            conn.sendall(data)
            echoed += len(data)


def never_closes(listener):
    conn, _ = listener.accept()
    echoed = 0
    while data := conn.recv(4096):
        conn.sendall(data)
        echoed += len(data)
    return echoed  # BUG: conn is left for the garbage collector


def keeps_connection_open(listener):
    conn, _ = listener.accept()
    LEAKED.append(conn)  # BUG: kept open, so the client never sees the end
    echoed = 0
    while data := conn.recv(4096):
        conn.sendall(data)
        echoed += len(data)
    return echoed


def closes_the_listener(listener):
    with listener:  # BUG: the listener belongs to the caller
        conn, _ = listener.accept()
        echoed = 0
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)
                echoed += len(data)
    return echoed


def treats_bytes_as_text(listener):
    conn, _ = listener.accept()
    echoed = 0
    with conn:
        while data := conn.recv(4096):
            text = data.decode("utf-8", errors="replace")  # BUG: a byte stream is not text
            conn.sendall(text.encode("utf-8"))
            echoed += len(data)
    return echoed


def returns_nothing(listener):
    conn, _ = listener.accept()
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)  # BUG: forgets to count and return


def accepts_per_message(listener):
    echoed = 0
    while True:
        conn, _ = listener.accept()  # BUG: accept() waits for a *new* client
        data = conn.recv(4096)
        if not data:
            return echoed
        conn.sendall(data)
        echoed += len(data)


def stub(listener):
    raise NotImplementedError()


WRONG = [
    (one_recv, "a message that arrives in pieces", "keep reading until recv() returns b''"),
    (ignores_end_of_stream, "echoes one line", "recv() returning b''"),
    (never_closes, "closes the connection it accepted", "never closed"),
    (keeps_connection_open, "echoes one line", "close the connection"),
    (closes_the_listener, "leaves the listening socket open", "listening socket was closed"),
    (treats_bytes_as_text, "1 MiB of binary data", "unchanged"),
    (returns_nothing, "returns how many bytes it echoed", "returned None"),
    (accepts_per_message, "echoes one line", "each client is accepted once"),
    (stub, "echoes one line", "not written yet"),
]


@pytest.mark.parametrize("wrong, case, hint", WRONG, ids=[w[0].__name__ for w in WRONG])
def test_a_classic_wrong_answer_fails_with_a_hint(wrong, case: str, hint: str) -> None:
    try:
        report = check_echo_server(wrong, show=False)
    finally:
        while LEAKED:
            LEAKED.pop().close()
    failed = {r.name: r.detail for r in report.results if not r.passed}
    assert case in failed, report.summary()
    assert hint in failed[case], report.summary()


def test_an_unsolved_stub_fails_every_case_without_raising(capsys: pytest.CaptureFixture[str]) -> None:
    report = check_echo_server(stub)
    assert report.passed == 0 and len(report.results) == 7
    assert capsys.readouterr().out.count("[FAIL]") == 7


def test_after_a_case_that_ran_out_of_time_the_others_are_not_run() -> None:
    report = check_echo_server(ignores_end_of_stream, show=False)
    details = [r.detail for r in report.results]
    assert "recv() returning b''" in details[0]
    assert all(d.startswith("not run: fix 'echoes one line' first") for d in details[1:]), report.summary()
