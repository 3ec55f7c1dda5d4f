"""Tests for chatlab.netem, the link emulator.

Timing assertions are lower bounds only (this may run on a busy shared
machine, where anything can take longer, but nothing can arrive before the
emulator releases it).  Every server listens on port 0 and every socket and
thread is closed in a ``with`` block or a ``finally``.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from chatlab.netem import LinkEmulator, LinkProfile, LinkStats, _host_port, main

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ helpers


class Server:
    """A loopback server on port 0 that runs ``handler(conn)`` on a thread per connection."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.handler = handler
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)  # so the accept loop notices close()
        self.address = self.sock.getsockname()
        self.stopping = False
        self.conns: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []
        self.acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    def _accept_loop(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(10)  # a hung test fails instead of hanging forever
            self.conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass  # resets are part of some tests
        except BaseException as exc:  # assertion errors in a handler: report in the test
            self.errors.append(exc)
        finally:
            conn.close()

    def __enter__(self) -> Server:
        self.acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping = True
        self.acceptor.join()
        self.sock.close()
        for conn in self.conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # unblocks a handler stuck in recv()
            except OSError:
                pass
        for t in self.threads:
            t.join(5)
        assert not self.errors, self.errors


def echo(conn: socket.socket) -> None:
    """Send back everything received; pass the FIN on when the client sends one."""
    while data := conn.recv(65536):
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        assert data, f"connection closed after {len(buf)} of {n} bytes"
        buf += data
    return bytes(buf)


def recv_all(sock: socket.socket) -> bytes:
    buf = bytearray()
    while data := sock.recv(65536):
        buf += data
    return bytes(buf)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def free_port() -> int:
    """A port with nothing listening on it (as far as we know): bind port 0, then let it go."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -------------------------------------------------------------------- tests


def test_profile_validation_and_helpers() -> None:
    with pytest.raises(ValueError):
        LinkProfile(delay=-1)
    with pytest.raises(ValueError):
        LinkProfile(rate=0)
    with pytest.raises(ValueError):
        LinkProfile(max_segment=0)
    p = LinkProfile(delay=0.020, rate=50e6 / 8)
    assert p.rtt == pytest.approx(0.040)
    assert p.bdp == pytest.approx(50e6 / 8 * 0.040)
    assert LinkProfile().bdp is None
    assert "20 ms" in p.describe() and "50 Mbit/s" in p.describe()


@pytest.mark.parametrize(
    "profile",
    [
        LinkProfile(),
        LinkProfile(delay=0.005, split=True, seed=1),
        LinkProfile(delay=0.002, rate=20e6, split=True, seed=2, max_segment=16 * 1024),
    ],
    ids=["perfect", "delay+split", "rate+delay+split"],
)
def test_bytes_arrive_intact_both_ways(profile: LinkProfile) -> None:
    data = random.Random(42).randbytes(2_000_000)
    with Server(echo) as server, LinkEmulator(server.address, profile) as link:
        with connect(link.address) as sock:
            # Send from a thread while reading here: the echo comes back while
            # we are still sending, and nobody reading it would deadlock both.
            def send() -> None:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)

            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            try:
                got = recv_all(sock)
            finally:
                sender.join(10)
        assert got == data
        assert wait_for(lambda: link.stats.active == 0)
    stats = link.stats
    assert stats == LinkStats(connections=1, active=0, bytes_up=len(data), bytes_down=len(data), resets=0, buffered=0)


def test_split_one_send_arrives_in_several_recvs() -> None:
    message = bytes(range(256)) * 8  # 2048 bytes, sent with one sendall()
    sizes: list[int] = []

    def collect(conn: socket.socket) -> None:
        buf = bytearray()
        while data := conn.recv(65536):
            sizes.append(len(data))
            buf += data
        assert bytes(buf) == message

    profile = LinkProfile(split=True, seed=7, max_segment=256)  # >= 8 pieces, 1 ms apart
    with Server(collect) as server, LinkEmulator(server.address, profile) as link:
        with connect(link.address) as sock:
            sock.sendall(message)
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b""  # FIN comes back once the collector is done
    assert sum(sizes) == len(message)
    assert len(sizes) > 1


def test_split_is_reproducible_with_a_seed() -> None:
    def pieces(seed: int) -> list[int]:
        sizes: list[int] = []

        def collect(conn: socket.socket) -> None:
            while data := conn.recv(65536):
                sizes.append(len(data))

        # A long gap between pieces, so every piece is its own recv() even on a busy machine.
        profile = LinkProfile(split=True, seed=seed, max_segment=100, split_gap=0.1)
        with Server(collect) as server, LinkEmulator(server.address, profile) as link:
            with connect(link.address) as sock:
                sock.sendall(b"m" * 300)
                sock.shutdown(socket.SHUT_WR)
                recv_all(sock)
        return sizes

    first = pieces(seed=3)
    assert sum(first) == 300 and len(first) >= 3  # max_segment=100 forces at least 3 pieces
    assert all(size <= 100 for size in first)
    assert pieces(seed=3) == first


@pytest.mark.parametrize(
    "upstream, downstream, rtt",
    [
        (LinkProfile(delay=0.05), LinkProfile(delay=0.05), 0.10),
        (LinkProfile(delay=0.06), LinkProfile(), 0.06),  # asymmetric: only one direction is slow
    ],
    ids=["symmetric", "asymmetric"],
)
def test_round_trip_takes_at_least_the_delay(upstream: LinkProfile, downstream: LinkProfile, rtt: float) -> None:
    with Server(echo) as server, LinkEmulator(server.address, upstream=upstream, downstream=downstream) as link:
        assert link.rtt == pytest.approx(rtt)
        with connect(link.address) as sock:
            for i in range(3):
                start = time.perf_counter()
                sock.sendall(b"ping %d" % i)
                assert recv_exactly(sock, 6) == b"ping %d" % i
                elapsed = time.perf_counter() - start
                assert elapsed >= rtt - 0.001, f"round trip took {elapsed:.4f} s, less than {rtt} s"


def test_rate_limit_slows_a_transfer_down() -> None:
    size, rate = 1_000_000, 4e6  # 1 MB at 4 MB/s: about 0.25 s, minus the initial burst
    with Server(lambda conn: conn.sendall(b"%d" % len(recv_all(conn)))) as server:
        with LinkEmulator(server.address, LinkProfile(rate=rate)) as link:
            with connect(link.address) as sock:
                start = time.perf_counter()
                sock.sendall(bytes(size))
                sock.shutdown(socket.SHUT_WR)
                reply = recv_all(sock)  # the server answers after the last byte arrived
                elapsed = time.perf_counter() - start
    assert reply == b"%d" % size
    assert elapsed >= 0.2, f"{size} bytes at {rate:g} B/s took only {elapsed:.3f} s"


def test_fin_is_forwarded_both_ways() -> None:
    seen: list[bytes] = []

    def handler(conn: socket.socket) -> None:
        seen.append(recv_all(conn))  # returns only when the client's FIN arrives
        conn.sendall(b"bye")
        conn.shutdown(socket.SHUT_WR)
        seen.append(conn.recv(1))  # the client closes after our FIN: b""

    with Server(handler) as server, LinkEmulator(server.address, LinkProfile(delay=0.01)) as link:
        with connect(link.address) as sock:
            sock.sendall(b"hello")
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b"bye"  # ... and then b"": the server's FIN
        assert wait_for(lambda: len(seen) == 2)
        assert wait_for(lambda: link.stats.active == 0)
        assert link.stats.resets == 0
    assert seen == [b"hello", b""]


def test_a_reset_connection_does_not_break_the_next_one() -> None:
    with Server(echo) as server, LinkEmulator(server.address, LinkProfile(delay=0.005)) as link:
        first = connect(link.address)
        try:
            first.sendall(b"abc")
            assert recv_exactly(first, 3) == b"abc"
            first.sendall(b"more bytes in flight")
            # SO_LINGER with a zero timeout: close() sends a RST, not a FIN.
            first.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        finally:
            first.close()
        assert wait_for(lambda: link.stats.resets == 1 and link.stats.active == 0)

        data = os.urandom(100_000)
        with connect(link.address) as second:
            second.sendall(data)
            assert recv_exactly(second, len(data)) == data
        assert link.running
        assert link.stats.connections == 2


def test_refused_target_resets_the_client_only() -> None:
    with LinkEmulator(("127.0.0.1", free_port())) as link:
        for _ in range(2):
            try:
                with connect(link.address) as sock:
                    assert sock.recv(1) == b""
            except ConnectionResetError:
                pass  # expected: the refusal comes back as a reset, maybe even before connect() returns
        assert wait_for(lambda: link.stats.resets == 2)
        assert link.running


def test_queue_is_bounded_and_pushes_back_on_the_sender() -> None:
    # The target never accepts or reads: only the kernel's buffers (small
    # here) and the emulator's queue can take data, so the sender must block.
    target = socket.socket()
    target.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    target.bind(("127.0.0.1", 0))
    target.listen()
    profile = LinkProfile(queue_bytes=64 * 1024, max_in_flight=64 * 1024)
    try:
        with LinkEmulator(target.getsockname(), profile) as link, connect(link.address) as sock:
            sock.setblocking(False)
            chunk = bytes(64 * 1024)
            sent, last_progress = 0, time.monotonic()
            while time.monotonic() - last_progress < 0.5:
                try:
                    sent += sock.send(chunk)
                    last_progress = time.monotonic()
                except BlockingIOError:
                    time.sleep(0.01)
                assert sent < 64 * 1024 * 1024, "the sender was never pushed back"
            buffered = link.stats.buffered
            assert 0 < buffered <= profile.queue_bytes + profile.max_in_flight
    finally:
        target.close()


def test_close_closes_every_socket_and_thread() -> None:
    before = threading.active_count()
    target = socket.create_server(("127.0.0.1", 0))  # the kernel accepts for us: no server thread
    try:
        link = LinkEmulator(target.getsockname(), LinkProfile(delay=0.5))
        with link:
            assert threading.active_count() == before + 1
            sock = connect(link.address)
            sock.sendall(b"stuck on the wire for half a second")
            assert wait_for(lambda: link.stats.active == 1)
            address = link.address
        try:
            assert not link.running
            assert threading.active_count() == before
            assert link.stats.active == 0
            assert sock.recv(100) == b""  # our connection was closed with the emulator
        finally:
            sock.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=5).close()
        link.close()  # closing twice is harmless
    finally:
        target.close()


def test_close_without_start_and_start_twice() -> None:
    LinkEmulator(("127.0.0.1", 9)).close()
    with LinkEmulator(("127.0.0.1", 9)) as link:
        with pytest.raises(RuntimeError):
            link.start()
    with pytest.raises(RuntimeError):
        LinkEmulator(("127.0.0.1", 9)).address


# ---------------------------------------------------------------------- CLI


def test_host_port_parsing() -> None:
    assert _host_port("127.0.0.1:8000") == ("127.0.0.1", 8000)
    assert _host_port("[::1]:8000") == ("::1", 8000)
    assert _host_port("localhost:0", allow_zero=True) == ("localhost", 0)
    for bad in ["8000", "host:", ":80", "host:port", "host:70000", "host:0"]:
        with pytest.raises(Exception):
            _host_port(bad)


def test_main_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--target", "nonsense"])
    assert exc.value.code == 2
    assert main(["--target", "127.0.0.1:9", "--delay-ms", "-5"]) == 2


@pytest.mark.skipif(sys.platform == "win32", reason="sending Ctrl-C to a child process is not portable to Windows")
def test_cli_forwards_and_exits_cleanly_on_ctrl_c() -> None:
    with Server(echo) as server:
        host, port = server.address
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatlab.netem", "--target", f"{host}:{port}", "--delay-ms", "5", "--split",
             "--seed", "1"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.search(r"listening on ([\d.]+):(\d+)", line)
            assert match, line
            with connect((match.group(1), int(match.group(2)))) as sock:
                sock.sendall(b"through the CLI")
                assert recv_exactly(sock, 15) == b"through the CLI"
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=10)
            assert proc.returncode == 0, err
            assert "stopped" in out
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
