"""chatlab.teach: the notebooks' server helper and show_source."""

from __future__ import annotations

import socket
import time

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
        settings = getattr(lab.server, "config", lab.server)  # the options, wherever the server keeps them
        assert settings.flood_limit is None and settings.motd == "hi class"  # passed through
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
        with teach.lab_server() as lab, chatlab.Client.connect(lab.address, nick="student"):
            assert lab.address == teacher.address
            assert teacher.nicks == ["student"]  # registered (welcomed) before connect() returned


@pytest.mark.parametrize("value", ["7777", "localhost", "host:", ":7777", "host:port", "host:0", "host:70000"])
def test_a_bad_class_server_address_says_what_is_expected(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(teach.SERVER_ENV, value)
    with pytest.raises(ValueError, match="expected host:port"):
        with teach.lab_server():
            pass


def test_the_connection_table_parser_reads_ss_and_every_netstat() -> None:
    table = """\
State     Recv-Q Send-Q Local Address:Port  Peer Address:Port Process
TIME-WAIT 0      0          127.0.0.1:37727    127.0.0.1:43742
LISTEN    0      128             [::]:22            [::]:*
  TCP    127.0.0.1:49690        127.0.0.1:7777         TIME_WAIT
  TCP    127.0.0.1:7777         0.0.0.0:0              LISTENING
tcp4       0      0  127.0.0.1.7777         127.0.0.1.49690        FIN_WAIT_2
tcp4       0      0  *.7777                 *.*                    LISTEN
Active Internet connections (including servers)
"""
    assert teach.parse_connection_table(table) == [
        teach.TcpEntry(37727, 43742, "TIME_WAIT"),  # ss, Linux
        teach.TcpEntry(22, None, "LISTEN"),
        teach.TcpEntry(49690, 7777, "TIME_WAIT"),  # netstat, Windows
        teach.TcpEntry(7777, None, "LISTEN"),
        teach.TcpEntry(7777, 49690, "FIN_WAIT2"),  # netstat, macOS: address.port
        teach.TcpEntry(7777, None, "LISTEN"),
    ]


def test_connection_states_sees_the_active_closer_in_time_wait() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        server_port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", server_port), timeout=5)
        conn, _ = listener.accept()
        client_port = client.getsockname()[1]
        client.close()  # the client closes first ...
        conn.settimeout(5)
        assert conn.recv(10) == b""
        conn.close()  # ... the server answers with its own FIN
        deadline = time.monotonic() + 5
        while True:
            states = teach.connection_states(server_port, client_port)
            if states is None:
                pytest.skip("no psutil, ss or netstat here")
            if teach.TcpEntry(client_port, server_port, "TIME_WAIT") in states or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert teach.TcpEntry(client_port, server_port, "TIME_WAIT") in states, states
        assert teach.TcpEntry(server_port, None, "LISTEN") in states


def test_show_source_prints_package_relative_paths_and_searches_a_package(capsys: pytest.CaptureFixture[str]) -> None:
    lines = teach.show_source("server", r"^class Server\b")
    out = capsys.readouterr().out
    assert out.startswith("chatlab/server.py:") and len(lines) == 1 and f":{lines[0]}: class Server" in out
    teach.show_source("exercises", r"^def check_echo_server\(")  # a package: every file in it is searched
    assert capsys.readouterr().out.startswith("chatlab/exercises/first_socket.py:")
    assert teach.show_source("exercises", r"no such line, anywhere") == []
    assert capsys.readouterr().out == "chatlab/exercises: no line matches 'no such line, anywhere'\n"
