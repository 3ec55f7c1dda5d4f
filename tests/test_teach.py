"""chatlab.teach: the notebooks' server helper and show_source."""

from __future__ import annotations

import socket

import pytest

import chatlab
from chatlab import teach


def test_lab_server_starts_a_local_server_and_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(teach.SERVER_ENV, raising=False)
    with teach.lab_server(flood_limit=None, motd="hi class") as lab:
        assert isinstance(lab.server, chatlab.Server)
        assert not lab.shared
        assert lab.address == lab.server.address
        assert lab.address[1] != 0  # a free port chosen by the OS, read back
        assert lab.server.flood_limit is None and lab.server.motd == "hi class"  # options passed through
        with chatlab.Client.connect(lab.address, nick="alice") as alice:
            assert alice.nick == "alice"
    with pytest.raises(OSError):  # the listener is closed: nobody answers any more
        socket.create_connection(lab.address, timeout=2).close()


def test_lab_server_stops_its_server_when_the_body_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(teach.SERVER_ENV, raising=False)
    with pytest.raises(RuntimeError, match="cell failed"):
        with teach.lab_server() as lab:
            address = lab.address
            raise RuntimeError("cell failed")
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=2).close()


@pytest.mark.parametrize("value, expected", [
    ("192.168.1.10:7777", ("192.168.1.10", 7777)),
    (" class.example.org:9000 ", ("class.example.org", 9000)),
    ("[::1]:7777", ("::1", 7777)),
])
def test_lab_server_uses_the_class_server_when_set(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: tuple[str, int]
) -> None:
    monkeypatch.setenv(teach.SERVER_ENV, value)
    started: list[object] = []
    monkeypatch.setattr(teach, "Server", lambda *a, **k: started.append(k))  # would start one: must not
    with teach.lab_server(flood_limit=None) as lab:
        assert lab == teach.LabServer(address=expected, server=None)
        assert lab.shared
    assert started == []


def test_lab_server_reaches_a_real_class_server(monkeypatch: pytest.MonkeyPatch) -> None:
    with chatlab.Server(port=0) as teacher:
        host, port = teacher.address
        monkeypatch.setenv(teach.SERVER_ENV, f"{host}:{port}")
        with teach.lab_server() as lab, chatlab.Client.connect(lab.address, nick="student") as student:
            assert lab.address == teacher.address
            assert teacher.nicks == ["student"]  # registered (welcomed) before connect() returned


@pytest.mark.parametrize("value", ["7777", "localhost", "host:", ":7777", "host:port", "host:0", "host:70000"])
def test_a_bad_class_server_address_says_what_is_expected(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(teach.SERVER_ENV, value)
    with pytest.raises(ValueError, match="expected host:port"):
        with teach.lab_server():
            pass
