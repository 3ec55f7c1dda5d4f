"""The package's one parse_address (chatlab.addresses) and one recv_exact (chatlab.streams)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading

import pytest

from chatlab.addresses import format_address, parse_address
from chatlab.errors import ChatlabError, IncompleteReadError
from chatlab.streams import recv_exact

# ---------------------------------------------------------------- addresses


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:7777", ("127.0.0.1", 7777)),
    ("  example.org:80 ", ("example.org", 80)),
    ("[::1]:4000", ("::1", 4000)),
    (":7777", ("127.0.0.1", 7777)),
    (("10.0.0.1", "65535"), ("10.0.0.1", 65535)),
])  # fmt: skip
def test_parse_address_reads_text_and_tuples(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("7777", "expected HOST:PORT"),
    ("host:", "expected HOST:PORT"),
    ("host:port", "expected HOST:PORT"),
    ("", "expected HOST:PORT"),
    ("host:0", "invalid port 0"),
    ("host:70000", "invalid port 70000"),
    (("host", 0), "invalid port 0"),
])  # fmt: skip
def test_parse_address_says_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_address(text)


def test_a_required_host_and_ip_only():
    with pytest.raises(ValueError, match="host is missing"):
        parse_address(":7777", default_host=None)
    with pytest.raises(ValueError, match="not an IP address"):
        parse_address("localhost:80", ip_only=True)
    assert parse_address("[fe80::1]:9", ip_only=True) == ("fe80::1", 9)


@pytest.mark.parametrize("address", [("127.0.0.1", 4000), ("::1", 4000), ("2001:db8::7", 1)])
def test_format_address_round_trips(address):
    assert parse_address(format_address(address), ip_only=True) == address


def test_the_address_module_loads_no_socket():
    code = "import sys, chatlab.addresses\nprint('socket' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


# ---------------------------------------------------------------- recv_exact


def test_recv_exact_gathers_a_trickle():
    a, b = socket.socketpair()
    with a, b:
        def trickle() -> None:
            for byte in b"hello world":
                b.send(bytes([byte]))

        writer = threading.Thread(target=trickle)
        writer.start()
        try:
            assert recv_exact(a, 11) == b"hello world"
        finally:
            writer.join(5)


def test_recv_exact_raises_with_the_partial_bytes_like_asyncio():
    a, b = socket.socketpair()
    with a:
        b.sendall(b"abc")
        b.close()
        with pytest.raises(IncompleteReadError) as caught:
            recv_exact(a, 10)
    assert (caught.value.partial, caught.value.expected) == (b"abc", 10)
    assert isinstance(caught.value, EOFError) and isinstance(caught.value, ChatlabError)

    async def readexactly_short() -> asyncio.IncompleteReadError:  # the contract it copies
        reader = asyncio.StreamReader()
        reader.feed_data(b"abc")
        reader.feed_eof()
        try:
            await reader.readexactly(10)
        except asyncio.IncompleteReadError as exc:
            return exc
        raise AssertionError("readexactly returned")

    theirs = asyncio.run(readexactly_short())
    assert (theirs.partial, theirs.expected) == (caught.value.partial, caught.value.expected)


def test_recv_exact_of_zero_bytes_reads_nothing():
    a, b = socket.socketpair()
    with a, b:
        assert recv_exact(a, 0) == b""


def test_recv_exact_without_stop_lets_a_timeout_through():
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(0.05)
        with pytest.raises(TimeoutError):
            recv_exact(a, 1)


def test_recv_exact_with_stop_waits_through_timeouts_until_stopped():
    a, b = socket.socketpair()
    stop = threading.Event()
    with a, b:
        a.settimeout(0.02)
        b.sendall(b"ab")
        timer = threading.Timer(0.1, stop.set)
        timer.start()
        try:
            with pytest.raises(ConnectionAbortedError):
                recv_exact(a, 3, stop)
        finally:
            timer.cancel()
        b.sendall(b"c")
        assert recv_exact(a, 1, threading.Event()) == b"c"
