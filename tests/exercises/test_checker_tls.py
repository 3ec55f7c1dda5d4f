"""check_tls_client (notebook 11): the mistakes students make with TLS each fail, with a hint that names it;
correct solutions written differently pass."""

from __future__ import annotations

import socket
import ssl
from typing import Any, Callable

import pytest

from chatlab.exercises import check_tls_client
from solutions.tls_client import connect_tls

pytest.importorskip("cryptography")
pytestmark = pytest.mark.slow  # each run makes certificates and waits out a silent server


def _connected(host: str, port: int, timeout: float | None = 5) -> socket.socket:
    return socket.create_connection((host, port), timeout=timeout)


# ------------------------------------------------------------------ wrong answers, as students write them

def cert_none(host: str, port: int, cafile: str) -> Any:
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # "it kept failing, this made it work"
    return context.wrap_socket(_connected(host, port), server_hostname=host)


def no_hostname_check(host: str, port: int, cafile: str) -> Any:
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False
    return context.wrap_socket(_connected(host, port), server_hostname=host)


def no_sni(host: str, port: int, cafile: str) -> Any:
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False  # required to leave server_hostname out
    return context.wrap_socket(_connected(host, port))


def plaintext_fallback(host: str, port: int, cafile: str) -> Any:
    context = ssl.create_default_context(cafile=cafile)
    try:
        return context.wrap_socket(_connected(host, port), server_hostname=host)
    except (ssl.SSLError, OSError):
        return _connected(host, port)  # "better plain than nothing"


def system_cas_only(host: str, port: int, cafile: str) -> Any:
    context = ssl.create_default_context()  # forgets the class CA
    return context.wrap_socket(_connected(host, port), server_hostname=host)


def unverified_context(host: str, port: int, cafile: str) -> Any:
    return ssl._create_unverified_context().wrap_socket(_connected(host, port), server_hostname=host)


def no_timeout(host: str, port: int, cafile: str) -> Any:
    context = ssl.create_default_context(cafile=cafile)
    return context.wrap_socket(_connected(host, port, timeout=None), server_hostname=host)


def leaks_the_socket(host: str, port: int, cafile: str) -> Any:
    context = ssl.create_default_context(cafile=cafile)
    sock = _connected(host, port)
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLError:
        raise ConnectionError("handshake failed") from None  # ... and sock? (wrap_socket detached it: it is closed)


def returns_the_tcp_socket(host: str, port: int, cafile: str) -> Any:
    context = ssl.create_default_context(cafile=cafile)
    sock = _connected(host, port)
    context.wrap_socket(sock, server_hostname=host)  # the wrapped socket is thrown away
    return sock


def wraps_first_and_never_closes(host: str, port: int, cafile: str) -> Any:
    context = ssl.create_default_context(cafile=cafile)
    tls = context.wrap_socket(socket.socket(socket.AF_INET), server_hostname=host)
    tls.settimeout(4)
    tls.connect((host, port))  # a refused certificate raises here, and tls stays open
    return tls


def hard_coded_name(host: str, port: int, cafile: str) -> Any:
    context = ssl.create_default_context(cafile=cafile)
    return context.wrap_socket(_connected(host, port), server_hostname="localhost")  # copied from a demo


def substring_name_check(host: str, port: int, cafile: str) -> Any:
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False
    tls = context.wrap_socket(_connected(host, port), server_hostname=host)
    if host not in str(tls.getpeercert()):  # "my own check"
        tls.close()
        raise ssl.CertificateError(f"{host} is not in the certificate")
    return tls


def common_name_check(host: str, port: int, cafile: str) -> Any:
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False
    tls = context.wrap_socket(_connected(host, port), server_hostname=host)
    subject = dict(pair[0] for pair in tls.getpeercert()["subject"])
    if subject["commonName"] != host:
        tls.close()
        raise ssl.CertificateError(f"CN {subject['commonName']} is not {host}")
    return tls


def old_protocols_allowed(host: str, port: int, cafile: str) -> Any:
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1  # "for old servers"
    context.set_ciphers("ALL:@SECLEVEL=0")
    return context.wrap_socket(_connected(host, port), server_hostname=host)


def none_on_error(host: str, port: int, cafile: str) -> Any:
    context = ssl.create_default_context(cafile=cafile)
    try:
        return context.wrap_socket(_connected(host, port), server_hostname=host)
    except ssl.SSLError as exc:
        print("TLS error:", exc)
        return None


def unverified_retry(host: str, port: int, cafile: str) -> Any:
    context = ssl.create_default_context(cafile=cafile)
    try:
        return context.wrap_socket(_connected(host, port), server_hostname=host)
    except ssl.SSLCertVerificationError:
        print("warning: certificate not verified, continuing anyway")
        return ssl._create_unverified_context().wrap_socket(_connected(host, port), server_hostname=host)


_CACHED: list[ssl.SSLContext] = []


def cached_context(host: str, port: int, cafile: str) -> Any:
    if not _CACHED:  # "build it once, it is expensive"
        _CACHED.append(ssl.create_default_context(cafile=cafile))
    return _CACHED[0].wrap_socket(_connected(host, port), server_hostname=host)


def eleven_second_timeout(host: str, port: int, cafile: str) -> Any:
    context = ssl.create_default_context(cafile=cafile)
    return context.wrap_socket(_connected(host, port, timeout=11), server_hostname=host)


def stub(host: str, port: int, cafile: str) -> Any:
    raise NotImplementedError


WRONG: list[tuple[Callable[..., Any], str, str]] = [
    (cert_none, "refuses a certificate from an untrusted CA", "CERT_NONE"),
    (no_hostname_check, "refuses a certificate for another host name", "check_hostname"),
    (no_sni, "sends the server's name (SNI)", "server_hostname"),
    (plaintext_fallback, "never falls back to plaintext", "plaintext"),
    (system_cas_only, "a good server: handshake, then the line, encrypted", "cafile"),
    (unverified_context, "refuses a certificate from an untrusted CA", "CERT_NONE"),
    (no_timeout, "gives up on a server that never answers", "timeout"),
    (returns_the_tcp_socket, "a good server: handshake, then the line, encrypted", "wrap_socket"),
    (wraps_first_and_never_closes, "closes its socket when the handshake fails", "close it"),
    (hard_coded_name, "checks the host it is given (an address, another class's CA)",
     "not a name written into your code"),
    (substring_name_check, "refuses a look-alike host name", "home-made check"),
    (common_name_check, "refuses a certificate for another host name", "another host"),
    (old_protocols_allowed, "refuses an outdated protocol (TLS 1.0)", "TLS 1.0"),
    (none_on_error, "refuses a certificate from an untrusted CA", "returned None"),
    (unverified_retry, "refuses a certificate from an untrusted CA", "CERT_NONE"),
    (cached_context, "checks the host it is given (an address, another class's CA)", "every call"),
    (eleven_second_timeout, "gives up on a server that never answers", "at most 10"),
    (stub, "a good server: handshake, then the line, encrypted", "not written yet"),
]


@pytest.mark.parametrize("wrong, case, hint", WRONG, ids=[w[0].__name__ for w in WRONG])
def test_a_wrong_answer_fails_its_case_with_a_hint(wrong: Callable[..., Any], case: str, hint: str):
    report = check_tls_client(wrong, show=False)
    assert not report
    result = next(r for r in report.results if r.name == case)
    assert not result.passed, report.summary()
    assert hint in result.detail, report.summary()


# ------------------------------------------------------------------ right answers, written differently

def with_a_context_built_by_hand(host: str, port: int, cafile: str) -> Any:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname by default
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(4)
    try:
        sock.connect((host, port))
        tls = context.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise
    return tls


def wrapping_before_connect(host: str, port: int, cafile: str) -> Any:
    context = ssl.create_default_context(cafile=cafile)
    tls = context.wrap_socket(socket.socket(socket.AF_INET), server_hostname=host)
    tls.settimeout(4)
    try:
        tls.connect((host, port))  # the handshake happens in connect()
    except BaseException:
        tls.close()
        raise
    return tls


def with_a_ten_second_timeout_and_cadata(host: str, port: int, cafile: str) -> Any:
    with open(cafile) as f:
        context = ssl.create_default_context(cadata=f.read())
    with socket.create_connection((host, port), timeout=10) as sock:  # the longest the exercise allows
        return context.wrap_socket(sock, server_hostname=host)


def raising_its_own_error(host: str, port: int, cafile: str) -> Any:
    context = ssl.create_default_context(cafile=cafile)
    sock = socket.create_connection((host, port), timeout=5)
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLError as exc:
        sock.close()
        raise ConnectionError(f"TLS handshake with {host} failed: {exc}") from exc


@pytest.mark.parametrize("right", [connect_tls, with_a_context_built_by_hand, wrapping_before_connect,
                                   raising_its_own_error, with_a_ten_second_timeout_and_cadata],
                         ids=lambda f: f.__name__)
def test_a_correct_answer_passes_every_case(right: Callable[..., Any]):
    report = check_tls_client(right, show=False)
    assert report, report.summary()


def test_leaving_the_socket_to_wrap_socket_s_clean_up_still_passes():
    """wrap_socket() closes the socket it took when the handshake fails, so this one leaks nothing."""
    report = check_tls_client(leaks_the_socket, show=False)
    assert next(r for r in report.results if r.name == "closes its socket when the handshake fails").passed
