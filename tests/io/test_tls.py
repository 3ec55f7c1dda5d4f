"""TLS on the chat port: the sans-I/O layer, the server's sniffing, the client's checks, real peers."""

from __future__ import annotations

import datetime
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

import chatlab
from chatlab import certs
from chatlab.core import protocol as p
from chatlab.tls import TlsError, TlsLayer, client_context, looks_like_tls, server_context

pytest.importorskip("cryptography")


@pytest.fixture(scope="module")
def class_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return certs.write_class_files(tmp_path_factory.mktemp("tls"), ["localhost", "127.0.0.1"])


@pytest.fixture
def tls_server(class_files: dict[str, Path]):
    with chatlab.Server(port=0, flood_limit=None, tls_cert=str(class_files["cert"]),
                        tls_key=str(class_files["key"])) as server:
        yield server


def test_a_clienthello_is_told_apart_from_chatlab_frames_and_irc_text():
    assert looks_like_tls(b"\x16\x03\x01\x02\x00") is True
    assert looks_like_tls(b"\x16") is None  # one byte: wait for the next
    assert looks_like_tls(p.encode(p.Hello("alice"))) is False
    assert looks_like_tls(b"NICK zed\r\n") is False
    assert looks_like_tls(b"\x16\x04") is False


def test_two_layers_handshake_and_talk_without_a_socket(class_files: dict[str, Path]):
    """The sans-I/O way: bytes handed from one layer to the other by the test, as the loop would."""
    server = TlsLayer.server(server_context(str(class_files["cert"]), str(class_files["key"])))
    client = TlsLayer(client_context(str(class_files["ca"])), server_side=False, server_hostname="localhost")
    client.receive(b"")  # ClientHello
    for _ in range(10):
        if client.handshake_done and server.handshake_done:
            break
        server.receive(client.data_to_send())
        client.receive(server.data_to_send())
    assert client.handshake_done and server.handshake_done
    assert client.version in ("TLSv1.2", "TLSv1.3")
    early = server.encrypt(b"welcome\r\n")
    assert b"welcome" not in early  # ciphertext on the wire
    assert client.receive(early) == b"welcome\r\n"
    assert server.receive(client.encrypt(b"NICK zed\r\n")) == b"NICK zed\r\n"


def test_a_layer_that_gets_garbage_raises_a_typed_error(class_files: dict[str, Path]):
    server = TlsLayer.server(server_context(str(class_files["cert"]), str(class_files["key"])))
    with pytest.raises(TlsError, match="TLS failed"):
        server.receive(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 50)


def test_tls_and_plain_clients_share_one_port_and_one_room(tls_server: chatlab.Server, class_files: dict[str, Path]):
    with chatlab.Client.connect(tls_server.address, "alice", tls=True, cafile=class_files["ca"]) as alice, \
            chatlab.Client.connect(tls_server.address, "bob") as bob:
        assert isinstance(alice._sock, chatlab.tls.TlsSocket)
        alice.say("over TLS")
        assert bob.wait_for(chatlab.ChatMessage, 3, lambda m: m.sender == "alice").text == "over TLS"
        bob.say("in the clear")
        assert alice.wait_for(chatlab.ChatMessage, 3, lambda m: m.sender == "bob").text == "in the clear"


def test_an_irc_client_over_tls_is_welcomed(tls_server: chatlab.Server, class_files: dict[str, Path]):
    context = client_context(str(class_files["ca"]))
    with socket.create_connection(tls_server.address, timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(b"NICK zed\r\nUSER zed 0 * :Zed\r\n")
        got = b""
        while b" 001 " not in got:
            data = sock.recv(4096)
            assert data, got
            got += data
        assert b":Welcome to chatlab, zed" in got


def test_a_file_goes_through_the_server_between_a_tls_sender_and_a_plain_receiver(
        tls_server: chatlab.Server, class_files: dict[str, Path], tmp_path: Path):
    source = tmp_path / "data.bin"
    source.write_bytes(bytes(range(256)) * 8000)
    (tmp_path / "in").mkdir()
    with chatlab.Client.connect(tls_server.address, "alice", tls=True, cafile=class_files["ca"]) as alice, \
            chatlab.Client.connect(tls_server.address, "bob", download_dir=tmp_path / "in") as bob:
        alice.send_file(source, "bob").wait(20)
        received = bob.wait_for(chatlab.client.FileReceived, 10)
        assert received.path.read_bytes() == source.read_bytes()


@pytest.mark.parametrize("case, kwargs, words", [
    ("untrusted CA", {}, "CA you do not trust"),
    ("wrong host name", {"server_hostname": "elsewhere.example"}, "another host name"),
])
def test_verification_failures_say_what_is_wrong(tls_server: chatlab.Server, class_files: dict[str, Path],
                                                 case: str, kwargs: dict, words: str):
    if case != "untrusted CA":
        kwargs = {"cafile": class_files["ca"], **kwargs}
    with pytest.raises(TlsError, match=words):
        chatlab.Client.connect(tls_server.address, "mallory", tls=True, **kwargs)
    with chatlab.Client.connect(tls_server.address, "bob") as bob:  # the server is fine afterwards
        assert bob.who().users == {"bob": "lobby"}


def test_an_expired_certificate_is_refused(tmp_path: Path):
    ca = certs.make_class_ca()
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    cert, key = certs.issue_server_cert(ca, ["127.0.0.1"], days=-1, not_before=start)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "old.pem").write_bytes(cert)
    (tmp_path / "old-key.pem").write_bytes(key)
    with chatlab.Server(port=0, tls_cert=str(tmp_path / "old.pem"), tls_key=str(tmp_path / "old-key.pem")) as server:
        with pytest.raises(TlsError, match="expired"):
            chatlab.Client.connect(server.address, "alice", tls=True, cafile=tmp_path / "ca.pem")


def test_a_tls_client_to_a_server_without_a_certificate_gets_a_clear_error():
    with chatlab.Server(port=0) as server:
        with pytest.raises(TlsError, match="TLS"):
            chatlab.Client.connect(server.address, "alice", tls=True, timeout=3)
        with chatlab.Client.connect(server.address, "bob") as bob:
            assert bob.who().users == {"bob": "lobby"}


def test_a_broken_handshake_costs_only_its_own_connection(tls_server: chatlab.Server):
    with chatlab.Client.connect(tls_server.address, "bob") as bob:
        with socket.create_connection(tls_server.address, timeout=5) as mallory:
            mallory.sendall(b"\x16\x03\x01\x00\x05" + b"\xff" * 300)
            mallory.settimeout(3)
            data = b"x"
            while data:  # the server answers with an alert at most, then closes
                try:
                    data = mallory.recv(4096)
                except ConnectionResetError:
                    break
        bob.say("still here")
        assert bob.who().users == {"bob": "lobby"}


def test_certs_writes_a_ca_and_a_server_certificate_for_the_hosts_given(tmp_path: Path):
    out = subprocess.run([sys.executable, "-m", "chatlab", "certs", "--out", str(tmp_path / "c"),
                          "--host", "teacher.local", "--host", "192.0.2.10"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert {f.name for f in (tmp_path / "c").iterdir()} == {"ca.pem", "ca-key.pem", "server.pem", "server-key.pem"}
    from cryptography import x509
    cert = x509.load_pem_x509_certificate((tmp_path / "c" / "server.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["teacher.local"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["192.0.2.10"]
    if sys.platform != "win32":
        assert (tmp_path / "c" / "ca-key.pem").stat().st_mode & 0o077 == 0


def test_the_server_cli_says_what_is_wrong_with_its_tls_files(tmp_path: Path):
    run = [sys.executable, "-m", "chatlab", "server", "--port", "0"]
    missing = subprocess.run(run + ["--tls-cert", str(tmp_path / "nope.pem")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no such file" in missing.stderr and "chatlab certs" in missing.stderr
    (tmp_path / "junk.pem").write_text("not a certificate")
    junk = subprocess.run(run + ["--tls-cert", str(tmp_path / "junk.pem")], capture_output=True, text=True, timeout=60)
    assert junk.returncode == 2 and "not a certificate" in junk.stderr
    alone = subprocess.run(run + ["--tls-key", str(tmp_path / "junk.pem")], capture_output=True, text=True, timeout=60)
    assert alone.returncode == 2 and "--tls-cert" in alone.stderr


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_s_client_verifying_with_the_class_ca_gets_an_irc_welcome(tls_server: chatlab.Server,
                                                                           class_files: dict[str, Path]):
    host, port = tls_server.address
    proc = subprocess.Popen(["openssl", "s_client", "-quiet", "-connect", f"{host}:{port}", "-servername", "localhost",
                             "-CAfile", str(class_files["ca"]), "-verify_return_error"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:  # -quiet ignores the end of stdin: the server's answer to QUIT ends the session
        out, err = proc.communicate(b"NICK zed\r\nUSER zed 0 * :Zed\r\nQUIT :done\r\n", timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b" 001 zed :Welcome to chatlab" in out, (out, err)
    assert b"verify return:1" in err or proc.returncode == 0
    assert b"unexpected eof" not in err  # the server ended TLS with a close_notify


def test_ssl_is_available_with_tls_1_2_or_newer():
    assert ssl.HAS_TLSv1_2 or ssl.HAS_TLSv1_3


# ------------------------------------------------------------------ someone on the path (chatlab.wiretap)

def test_a_wiretap_hears_a_room_key_in_the_clear_and_only_ciphertext_over_tls(tls_server: chatlab.Server,
                                                                               class_files: dict[str, Path]):
    from chatlab.wiretap import Wiretap

    with Wiretap(tls_server.address) as tap:
        with chatlab.Client.connect(tap.address, "alice") as alice:
            alice.join("secret", password="tulip-7")
        with chatlab.Client.connect(tap.address, "bob", tls=True, cafile=class_files["ca"],
                                    server_hostname="localhost") as bob:
            bob.join("vault", password="orchid-9")
            bob.say("nobody can read this")
    assert tap.heard(b"tulip-7")
    assert not tap.heard(b"orchid-9") and not tap.heard(b"nobody can read this")
    assert tap.upstream.count(b"\x16\x03") >= 1  # bob's ClientHello went through


def test_an_interceptor_reads_a_client_that_skips_verification_and_is_refused_by_one_that_checks(
        tls_server: chatlab.Server, class_files: dict[str, Path], tmp_path: Path):
    from chatlab.wiretap import Interceptor

    mallory = certs.make_class_ca("mallory")
    cert, key = certs.issue_server_cert(mallory, ["localhost", "127.0.0.1"])
    (tmp_path / "m.pem").write_bytes(cert)
    (tmp_path / "m-key.pem").write_bytes(key)
    careless = ssl.create_default_context()
    careless.check_hostname = False
    careless.verify_mode = ssl.CERT_NONE
    with Interceptor(tls_server.address, str(tmp_path / "m.pem"), str(tmp_path / "m-key.pem")) as middle:
        with pytest.raises(TlsError, match="do not trust"):
            chatlab.Client.connect(middle.address, "alice", tls=True, cafile=class_files["ca"])
        with chatlab.Client.connect(middle.address, "carol", tls=careless) as carol:
            carol.join("vault", password="orchid-9")
    assert middle.refused == 1
    assert middle.heard(b"orchid-9")


def test_a_cafile_without_tls_true_still_means_tls(tls_server: chatlab.Server, class_files: dict[str, Path]):
    """Forgetting tls=True must not silently send the room key in the clear."""
    from chatlab.wiretap import Wiretap

    with Wiretap(tls_server.address) as tap:
        with chatlab.Client.connect(tap.address, "bob", cafile=class_files["ca"], server_hostname="localhost") as bob:
            bob.join("vault", password="orchid-9")
            assert isinstance(bob._sock, chatlab.tls.TlsSocket)
    assert not tap.heard(b"orchid-9")


def test_a_missing_or_wrong_cafile_is_named(tls_server: chatlab.Server, class_files: dict[str, Path], tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no such CA file"):
        chatlab.Client.connect(tls_server.address, "bob", tls=True, cafile=tmp_path / "nope.pem")
    with pytest.raises(TlsError, match="holds no CA certificate"):
        chatlab.Client.connect(tls_server.address, "bob", tls=True, cafile=class_files["key"])


def test_a_silent_listener_is_a_connection_error_not_a_bare_timeout():
    with socket.create_server(("127.0.0.1", 0)) as silent:
        with pytest.raises(chatlab.ConnectionBroken, match="TLS handshake"):
            chatlab.Client.connect(silent.getsockname()[:2], "bob", tls=True, timeout=1)


def test_certs_again_keeps_the_class_ca_and_refuses_what_no_certificate_can_hold(tmp_path: Path):
    run = [sys.executable, "-m", "chatlab", "certs", "--out", str(tmp_path / "c")]
    assert subprocess.run(run, capture_output=True, timeout=60).returncode == 0
    ca = (tmp_path / "c" / "ca.pem").read_bytes()
    again = subprocess.run(run + ["--host", "teacher.local"], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "kept" in again.stdout
    assert (tmp_path / "c" / "ca.pem").read_bytes() == ca  # the students' copy stays valid
    from cryptography import x509
    server = x509.load_pem_x509_certificate((tmp_path / "c" / "server.pem").read_bytes())
    ca_cert = x509.load_pem_x509_certificate(ca)
    assert server.issuer == ca_cert.subject
    for bad, words in [(["--days", "0"], "at least 1"), (["--host", ""], "neither"), (["--host", "bad name"], "valid"),
                       (["--host", "300.1.1.1"], "neither")]:
        done = subprocess.run(run + bad, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, (bad, done.stderr)


def test_chatlab_send_over_tls(tls_server: chatlab.Server, class_files: dict[str, Path], tmp_path: Path):
    source = tmp_path / "notes.txt"
    source.write_bytes(b"tls " * 5000)
    (tmp_path / "in").mkdir()
    host, port = tls_server.address
    with chatlab.Client.connect(tls_server.address, "bob", download_dir=tmp_path / "in"):
        done = subprocess.run([sys.executable, "-m", "chatlab", "send", str(source), "--to", "bob", "--tls",
                               "--cafile", str(class_files["ca"]), f"localhost:{port}"],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "in" / "notes.txt").read_bytes() == source.read_bytes()


def test_a_direct_transfer_between_tls_clients_runs_tls_and_the_file_never_crosses_in_the_clear(
        tls_server: chatlab.Server, class_files: dict[str, Path], tmp_path: Path):
    from chatlab.wiretap import Wiretap

    secret = b"the exam answers, page " * 40_000  # ~0.9 MB that must not be readable on the wire
    source = tmp_path / "answers.txt"
    source.write_bytes(secret)
    (tmp_path / "in").mkdir()
    options = {"tls": True, "cafile": class_files["ca"], "server_hostname": "localhost"}
    with chatlab.Client.connect(tls_server.address, "alice", **options) as alice, \
            chatlab.Client.connect(tls_server.address, "bob", download_dir=tmp_path / "in", **options) as bob:
        taps: list[Wiretap] = []

        def through_a_tap(address: tuple[str, int]) -> tuple[str, int]:  # the direct connection, watched
            taps.append(Wiretap(address))
            return taps[-1].address

        bob.advertise_direct = through_a_tap
        try:
            transfer = alice.send_file(source, "bob", via="direct")
            transfer.wait(30)
            assert transfer.via == "direct" and not transfer.fallback_reason
            assert bob.wait_for(chatlab.client.FileReceived, 10).path.read_bytes() == secret
        finally:
            for tap in taps:
                tap.close()
    assert taps, "the direct path was not taken"
    assert len(taps[0].upstream) > len(secret)  # the file went through the tap ...
    assert not taps[0].heard(b"the exam answers")  # ... as ciphertext only


@pytest.mark.parametrize("how", ["quit", "kicked"])
def test_the_server_ends_tls_with_a_close_notify_not_a_bare_eof(tls_server: chatlab.Server,
                                                                class_files: dict[str, Path], how: str):
    """Python raises SSLEOFError ('EOF occurred in violation of protocol') and openssl s_client says
    'unexpected eof' when a TLS peer just closes; a clean end is a close_notify alert, then EOF."""
    context = client_context(str(class_files["ca"]))
    with socket.create_connection(tls_server.address, timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False) as sock:
        # QUIT, or what a web browser sends (the server closes on it: it is not a web server)
        sock.sendall(b"NICK zed\r\nUSER zed 0 * :Zed\r\nQUIT :done\r\n" if how == "quit" else b"GET / HTTP/1.1\r\n")
        got = b""
        while data := sock.recv(4096):  # SSLEOFError here without a close_notify
            got += data
        assert b"ERROR :" in got
