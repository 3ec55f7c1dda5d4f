"""Shared fixtures: a server on a free port, clients that are always closed."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

import chatlab
from chatlab.core import protocol as p

# The tests mirror the package (core/, io/, exercises/, bench/, notebooks/), and a few share a helper
# across folders (test_chatroom's in-memory Harness, test_irc's line reader): every folder is importable.
_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE / folder) for folder in ("core", "io", "exercises", "bench", "notebooks")]


@pytest.fixture
def server() -> Iterator[chatlab.Server]:
    with chatlab.Server(port=0, flood_limit=None) as srv:
        yield srv


@pytest.fixture
def connect(server: chatlab.Server) -> Iterator[Callable[..., chatlab.Client]]:
    """``connect("alice")`` joins the fixture's server; every client is closed afterwards."""
    clients: list[chatlab.Client] = []

    def _connect(nick: str, address: tuple[str, int] | None = None, **kwargs: object) -> chatlab.Client:
        client = chatlab.Client.connect(address or server.address, nick=nick, **kwargs)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        client.close()


class RawPeer:
    """A bare socket speaking (or misspeaking) the protocol, for tests that misbehave."""

    def __init__(self, address: tuple[str, int], nick: str | None = None, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.decoder = p.MessageDecoder()
        if nick is not None:
            self.send(p.Hello(nick))
            self.expect(p.Welcome)

    def send(self, message: p.Message) -> None:
        self.sock.sendall(p.encode(message))

    def messages_until_closed(self) -> list[p.Message]:
        """Everything the server sends until it closes the connection (or the timeout)."""
        out: list[p.Message] = []
        while True:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return out
            if not data:
                return out
            self.decoder.feed(data)
            out.extend(self.decoder)

    def expect(self, kind: type) -> p.Message:
        while True:
            for message in self.decoder:
                if isinstance(message, kind):
                    return message
            data = self.sock.recv(65536)
            assert data, f"closed while waiting for {kind.__name__}"
            self.decoder.feed(data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(server: chatlab.Server) -> Iterator[Callable[..., RawPeer]]:
    peers: list[RawPeer] = []

    def _raw(nick: str | None = None) -> RawPeer:
        peer = RawPeer(server.address, nick)
        peers.append(peer)
        return peer

    yield _raw
    for peer in peers:
        peer.close()
