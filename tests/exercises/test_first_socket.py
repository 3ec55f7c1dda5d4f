"""Notebook 00's checker: the reference echo server passes, the classic wrong answers FAIL with a hint."""

from __future__ import annotations

import select
import socket
import time

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


def store_and_forward(listener):
    conn, _ = listener.accept()
    with conn:
        received = b""
        while data := conn.recv(4096):
            received += data  # BUG: echoes only once the client is done
        conn.sendall(received)
    return len(received)


def line_buffered(listener):
    conn, _ = listener.accept()
    echoed = 0
    with conn:
        reader = conn.makefile("rb")
        for line in reader:  # BUG: waits for a newline before echoing
            conn.sendall(line)
            echoed += len(line)
        reader.close()
    return echoed


def silence_is_the_end(listener):
    conn, _ = listener.accept()
    echoed = 0
    with conn:
        conn.settimeout(1.0)
        while True:
            try:
                data = conn.recv(4096)
            except socket.timeout:  # BUG: a quiet client is not a client that is done
                break
            if not data:
                break
            conn.sendall(data)
            echoed += len(data)
    return echoed


def silence_is_an_error(listener):
    conn, _ = listener.accept()
    echoed = 0
    with conn:
        conn.settimeout(0.5)  # BUG: the timeout escapes as an exception
        while data := conn.recv(4096):
            conn.sendall(data)
            echoed += len(data)
    return echoed


def long_timeout_is_the_end(listener):
    conn, _ = listener.accept()
    echoed = 0
    with conn:
        conn.settimeout(4.0)  # BUG: longer than most pauses, still a timeout taken for the end
        try:
            while data := conn.recv(4096):
                conn.sendall(data)
                echoed += len(data)
        except socket.timeout:
            pass
    return echoed


def select_timeout_is_the_end(listener):
    import select

    conn, _ = listener.accept()
    echoed = 0
    with conn:
        while True:
            readable, _w, _x = select.select([conn], [], [], 1.0)
            if not readable:  # BUG: nothing for a second is not the end of the stream
                break
            data = conn.recv(4096)
            if not data:
                break
            conn.sendall(data)
            echoed += len(data)
    return echoed


def shutdown_without_close(listener):
    conn, _ = listener.accept()
    echoed = 0
    while data := conn.recv(4096):
        conn.sendall(data)
        echoed += len(data)
    conn.shutdown(socket.SHUT_WR)  # BUG: shutdown() is not close()
    return echoed


def send_not_sendall(listener):
    conn, _ = listener.accept()
    echoed = 0
    with conn:
        while data := conn.recv(4096):
            conn.send(data)  # BUG: send() may take only part of it
            echoed += len(data)
    return echoed


def decodes_strictly(listener):
    conn, _ = listener.accept()
    echoed = 0
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data.decode().encode())  # BUG: random bytes are not UTF-8
            echoed += len(data)
    return echoed


def strips_the_line(listener):
    conn, _ = listener.accept()
    echoed = 0
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data.strip())  # BUG: an echo changes nothing
            echoed += len(data)
    return echoed


def one_byte_at_a_time(listener):
    conn, _ = listener.accept()
    echoed = 0
    with conn:
        while data := conn.recv(1):  # BUG: a million calls for a megabyte
            conn.sendall(data)
            echoed += 1
    return echoed


def counts_the_calls(listener):
    conn, _ = listener.accept()
    calls = 0
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)
            calls += 1  # BUG: counts recv() calls, not bytes
    return calls


def short_read_is_the_end(listener):
    conn, _ = listener.accept()
    echoed = 0
    with conn:
        while True:
            data = conn.recv(4096)
            conn.sendall(data)
            echoed += len(data)
            if len(data) < 4096:  # BUG: fewer bytes than asked is not the end of the stream
                break
    return echoed


def stub(listener):
    raise NotImplementedError()


# From a reviewer's attempts to fool the checker.
def fool_w_select_3s_is_the_end(listener):
    conn, _ = listener.accept()
    echoed = 0
    with conn:
        while True:
            r, _w, _x = select.select([conn], [], [], 3.0)
            if not r:  # BUG: 3 s of silence taken for the end of the stream
                break
            data = conn.recv(4096)
            if not data:
                break
            conn.sendall(data)
            echoed += len(data)
    return echoed


def fool_w_default_timeout_is_the_end(listener):
    socket.setdefaulttimeout(3.0)  # BUG: global state, and a timeout taken for the end
    try:
        conn, _ = listener.accept()
    finally:
        socket.setdefaulttimeout(None)
    echoed = 0
    with conn:
        try:
            while data := conn.recv(4096):
                conn.sendall(data)
                echoed += len(data)
        except socket.timeout:
            pass
    return echoed


def fool_w_busy_nonblocking(listener):
    conn, _ = listener.accept()
    conn.setblocking(False)  # BUG: spins the CPU while the client is silent
    echoed = 0
    with conn:
        while True:
            try:
                data = conn.recv(4096)
            except BlockingIOError:
                continue
            if not data:
                break
            conn.setblocking(True)
            conn.sendall(data)
            conn.setblocking(False)
            echoed += len(data)
    return echoed


def fool_w_idle_clock_is_the_end(listener):
    conn, _ = listener.accept()
    conn.setblocking(False)
    echoed = 0
    last = time.monotonic()
    with conn:
        while time.monotonic() - last < 3.0:  # BUG: 3 s of quiet = done (and a busy loop)
            try:
                data = conn.recv(4096)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            if not data:
                break
            last = time.monotonic()
            conn.setblocking(True)
            conn.sendall(data)
            conn.setblocking(False)
            echoed += len(data)
    return echoed


def fool_w_timeout_10s_is_the_end(listener):
    conn, _ = listener.accept()
    echoed = 0
    with conn:
        conn.settimeout(10.0)  # BUG: a timeout taken for the end (longer than the checker waits)
        try:
            while data := conn.recv(4096):
                conn.sendall(data)
                echoed += len(data)
        except socket.timeout:
            pass
    return echoed


def swallows_every_error(listener):
    conn, _ = listener.accept()
    echoed = 0
    try:
        while data := conn.recv(4096):
            conn.sendall(data)
            echoed += len(data)
        conn.close()
    except Exception:  # BUG: a reset is swallowed silently, and conn is never closed
        pass
    return echoed


def closes_only_on_success(listener):
    conn, _ = listener.accept()
    echoed = 0
    while True:
        data = conn.recv(4096)
        if not data:
            break
        conn.sendall(data)
        echoed += len(data)
    conn.close()  # BUG: never reached when recv() or sendall() raises (a reset client)
    return echoed


def echo_that_logs_resets(listener):
    conn, _ = listener.accept()
    echoed = 0
    with conn:
        try:
            while data := conn.recv(4096):
                conn.sendall(data)
                echoed += len(data)
        except ConnectionResetError:  # the client vanished: nothing more to echo, and conn is still closed
            print("client reset the connection")
    return echoed


WRONG = [
    (swallows_every_error, "closes the connection when the client resets it", "`except Exception: pass`"),
    (closes_only_on_success, "closes the connection when the client resets it", "Close it on every path"),
    (fool_w_select_3s_is_the_end, "a client silent for a while", "select() with a timeout"),
    (fool_w_default_timeout_is_the_end, "a client silent for a while", "took the timeout for the end"),
    (fool_w_timeout_10s_is_the_end, "a client silent for a while", "took the timeout for the end"),
    (fool_w_busy_nonblocking, "a client silent for a while", "it polls"),
    (fool_w_idle_clock_is_the_end, "a client silent for a while", "it polls"),
    (one_recv, "a message that arrives in pieces", "keep reading until recv() returns b''"),
    (ignores_end_of_stream, "echoes one line", "recv() returning b''"),
    (never_closes, "closes the connection it accepted", "never closed"),
    (keeps_connection_open, "echoes one line", "close the connection"),
    (closes_the_listener, "leaves the listening socket open", "listening socket was closed"),
    (treats_bytes_as_text, "1 MiB of binary data", "unchanged"),
    (returns_nothing, "returns how many bytes it echoed", "returned None"),
    (accepts_per_message, "echoes one line", "each client is accepted once"),
    pytest.param(store_and_forward, "echoes each piece at once", "waited (for the end of the stream",
                 marks=pytest.mark.slow, id='store_and_forward'),
    pytest.param(line_buffered, "echoes each piece at once", "or for a newline", marks=pytest.mark.slow,
                 id='line_buffered'),
    (silence_is_the_end, "a client silent for a while", "a timeout means 'nothing has arrived yet'"),
    (silence_is_an_error, "a client silent for a while", "Silence is not the end of the stream"),
    (select_timeout_is_the_end, "a client silent for a while", "select()"),
    pytest.param(long_timeout_is_the_end, "a client silent for a while", "a timeout means 'nothing has arrived yet'",
                 marks=pytest.mark.slow, id="long_timeout_is_the_end"),
    (shutdown_without_close, "closes the connection it accepted", "shutdown() only sends the FIN"),
    (send_not_sendall, "1 MiB of binary data", "use sendall()"),
    (decodes_strictly, "1 MiB of binary data", "no .decode()"),
    pytest.param(strips_the_line, "echoes one line", "unchanged", marks=pytest.mark.slow, id='strips_the_line'),
    (one_byte_at_a_time, "1 MiB of binary data", "recv(1)"),
    (counts_the_calls, "returns how many bytes it echoed", "in all"),
    (short_read_is_the_end, "a message that arrives in pieces", "fewer bytes than asked for is not the end"),
    (stub, "echoes one line", "not written yet"),
]


def echo_with_recv_into(listener):
    conn, _ = listener.accept()
    buffer = bytearray(8192)
    view = memoryview(buffer)
    echoed = 0
    with conn:
        while n := conn.recv_into(buffer):
            conn.sendall(view[:n])
            echoed += n
    return echoed


def echo_with_a_send_loop(listener):
    conn, _ = listener.accept()
    echoed = 0
    try:
        while True:
            data = conn.recv(65536)
            if data == b"":
                break
            while data:
                taken = conn.send(data)  # send() in a loop on its result is sendall() by hand
                data = data[taken:]
                echoed += taken
    finally:
        conn.close()
    return echoed


def echo_with_selectors(listener):
    import selectors

    conn, _ = listener.accept()
    echoed = 0
    with conn, selectors.DefaultSelector() as selector:
        selector.register(conn, selectors.EVENT_READ)
        while True:
            selector.select()  # no timeout: wait as long as the client is quiet
            data = conn.recv(4096)
            if not data:
                return echoed
            conn.sendall(data)
            echoed += len(data)


def echo_with_makefile(listener):
    conn, _ = listener.accept()
    echoed = 0
    with conn, conn.makefile("rwb", buffering=0) as stream:
        while data := stream.read(4096):  # an unbuffered SocketIO: one recv_into per read
            conn.sendall(data)
            echoed += len(data)
    return echoed


@pytest.mark.parametrize("right", [echo_with_recv_into, echo_with_a_send_loop, echo_with_selectors, echo_with_makefile,
                                   echo_that_logs_resets])
def test_a_correct_answer_written_differently_passes(right) -> None:
    report = check_echo_server(right, show=False)
    assert report.all_passed, report.summary()


@pytest.mark.parametrize(
    "wrong, case, hint", WRONG, ids=[w.id if hasattr(w, "id") else w[0].__name__ for w in WRONG]
)
def test_a_classic_wrong_answer_fails_with_a_hint(wrong, case: str, hint: str) -> None:
    try:
        report = check_echo_server(wrong, show=False)
    finally:
        while LEAKED:
            LEAKED.pop().close()
    failed = {r.name: r.detail for r in report.results if not r.passed}
    matching = [name for name in failed if name.startswith(case)]
    assert matching, report.summary()
    assert hint in failed[matching[0]], report.summary()
    assert not report.all_passed and not report.passed


def test_an_unsolved_stub_fails_every_case_without_raising(capsys: pytest.CaptureFixture[str]) -> None:
    report = check_echo_server(stub)
    assert report.passed == 0 and len(report.results) == 10
    assert capsys.readouterr().out.count("[FAIL]") == 10


def test_after_a_case_that_ran_out_of_time_the_others_are_not_run() -> None:
    report = check_echo_server(ignores_end_of_stream, show=False)
    details = [r.detail for r in report.results]
    assert "recv() returning b''" in details[0]
    assert all(d.startswith("not run: fix 'echoes one line' first") for d in details[1:]), report.summary()
