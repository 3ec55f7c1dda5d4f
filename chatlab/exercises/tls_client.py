"""Exercise for notebook 11: open a TLS connection the way it must be opened.

The student writes ``connect_tls(host, port, cafile) -> ssl.SSLSocket``: connect
to ``host:port`` with a timeout, do the TLS handshake checking that the server's
certificate was signed by the CA in ``cafile`` and is for ``host``, send the
server name (SNI), and raise when any of that fails, without ever falling back
to plaintext.

:func:`check_tls_client` runs small TLS servers of its own on loopback, each with
a certificate made for the case (``chatlab.certs``): a good one, one from a CA
nobody trusts (what a machine in the middle presents), one for another host
name, an expired one, a server that does not speak TLS, and one that never
answers.  Only the good one may get a byte of the student's data.
"""

from __future__ import annotations

import datetime
import gc
import socket
import ssl
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..i18n import _
from ..tls import TlsError
from ._report import Report, run_cases
from .recv import DeadlineExceeded, call_with_deadline

HOST = "127.0.0.1"
NAME = "localhost"  # the host name the student connects with; the good certificate is for it
SECRET = b"PRIVMSG #lobby :the room key is tulip\r\n"
SERVER_WAIT = 3.0  # seconds a checker server waits for the student's client
TIMEOUT_LIMIT = 10.0  # the exercise asks for a timeout of at most this many seconds
SILENT_WAIT = TIMEOUT_LIMIT + 4  # the silent server holds the connection this long

ConnectTls = Callable[[str, int, str], Any]


@dataclass
class _Certificates:
    """The files the cases need: the class CA, and server certificates good and bad."""

    folder: Path
    ca: Path = field(init=False)

    def __post_init__(self) -> None:
        from .. import certs

        ca = certs.make_class_ca()
        self.ca = self._write("ca.pem", ca.cert_pem)
        self.good = self._pair("good", *certs.issue_server_cert(ca, [NAME, HOST]))
        # For another host, though its common name says ours: names are checked in the SANs, not the CN.
        self.other_host = self._pair("other", *certs.issue_server_cert(ca, ["elsewhere.example"], common_name=NAME))
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
        self.expired = self._pair("expired", *certs.issue_server_cert(ca, [NAME, HOST], days=-1, not_before=past))
        mallory = certs.make_class_ca("mallory's CA")
        self.untrusted = self._pair("mallory", *certs.issue_server_cert(mallory, [NAME, HOST]))
        self.look_alike = self._pair("lookalike", *certs.issue_server_cert(ca, [f"{NAME}.evil.example", HOST]))
        # Another class's CA (a new term, a new teacher): a context cached from an earlier call's cafile fails here.
        other_ca = certs.make_class_ca("another class CA")
        self.other_ca = self._write("other-ca.pem", other_ca.cert_pem)
        self.address_only = self._pair("address", *certs.issue_server_cert(other_ca, [HOST]))  # only 127.0.0.1

    def _write(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path

    def _pair(self, name: str, cert: bytes, key: bytes) -> tuple[Path, Path]:
        return self._write(f"{name}.pem", cert), self._write(f"{name}-key.pem", key)


class _Server:
    """A server on a free loopback port, in a thread, that serves every connection the same way.

    ``mode`` is ``"tls"`` (a handshake with ``cert``), ``"plain"`` (no TLS: it
    answers like an IRC server in the clear) or ``"silent"`` (accepts, says nothing).
    ``outdated`` makes the TLS server speak only TLS 1.0, which no client should
    accept any more.  It records the server names clients sent (SNI), how many
    handshakes completed, and every byte of data.  A retry (a second connection)
    meets the same certificate, so "try again without checking" is caught.
    """

    def __init__(self, mode: str, cert: tuple[Path, Path] | None = None, outdated: bool = False) -> None:
        self.mode = mode
        self.sni: list[str | None] = []
        self.handshakes = 0
        self.data = bytearray()
        self.raw = bytearray()  # what arrived before or instead of TLS
        self.context: ssl.SSLContext | None = None
        if cert is not None:
            self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            if outdated:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self.context.minimum_version = self.context.maximum_version = ssl.TLSVersion.TLSv1
                self.context.set_ciphers("ALL:@SECLEVEL=0")
            self.context.load_cert_chain(str(cert[0]), str(cert[1]))
            self.context.sni_callback = self._remember_sni
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(0.1)  # to notice close() between connections
        self.port = self.listener.getsockname()[1]
        self.done = threading.Event()
        self.threads: list[threading.Thread] = []
        self._start(self._accept_loop)

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"chatlab-tls-check-{self.mode}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def _remember_sni(self, sslobj: Any, name: str | None, context: ssl.SSLContext) -> None:
        self.sni.append(name)

    def _accept_loop(self) -> None:
        while not self.done.is_set():
            try:
                conn, _addr = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._start(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(SILENT_WAIT if self.mode == "silent" else SERVER_WAIT)
            if self.mode == "silent":
                self.done.wait(SILENT_WAIT)
            elif self.mode == "plain":
                conn.sendall(b":chatlab NOTICE * :plain text here, no TLS\r\n")
                self._read(conn, self.raw)
            else:
                assert self.context is not None
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    self.handshakes += 1
                    self._read(tls, self.data)
                return
        except (OSError, ssl.SSLError):
            pass  # the client refused the certificate, or went away: what it sent is recorded
        finally:
            conn.close()

    @staticmethod
    def _read(sock: socket.socket, into: bytearray) -> None:
        while True:
            try:
                chunk = sock.recv(65536)
            except (OSError, ssl.SSLError):
                return
            if not chunk:
                return
            into += chunk

    def close(self) -> None:
        self.done.set()
        self.listener.close()
        for thread in self.threads:
            thread.join(SILENT_WAIT + 1)


def _call(connect_tls: ConnectTls, server: _Server, cafile: Path, seconds: float = 8.0,
          host: str = NAME) -> tuple[Any, BaseException | None]:
    """Run the student's function against ``server``; (its socket or None, what it raised)."""
    try:
        return call_with_deadline(seconds, connect_tls, host, server.port, str(cafile)), None
    except NotImplementedError:
        raise AssertionError(_("not written yet: connect_tls() still raises NotImplementedError")) from None
    except DeadlineExceeded:
        raise AssertionError(_("connect_tls() was still waiting after {seconds:g} s: give the socket a timeout of at "
                               "most {limit:g} s (socket.create_connection(address, timeout=...)), so a server that "
                               "never answers cannot hang your program").format(seconds=seconds, limit=TIMEOUT_LIMIT)
                             ) from None
    except Exception as exc:  # noqa: BLE001 - refusing is the right answer in most cases
        return None, exc


def _send_secret(sock: Any) -> None:
    try:
        sock.sendall(SECRET)
    finally:
        sock.close()


def _from_tls(error: BaseException | None) -> bool:
    """Is ``error`` the handshake's own, or one raised from it (``raise ConnectionError(...) from exc``)?"""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, (ssl.SSLError, ssl.CertificateError, TlsError)):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def _must_refuse(connect_tls: ConnectTls, server: _Server, cafile: Path, mistake: str, host: str = NAME) -> str:
    """The student's function must raise an ssl error for this server, and send it nothing."""
    sock, error = _call(connect_tls, server, cafile, host=host)
    if sock is not None:
        try:
            _send_secret(sock)
        except OSError:
            pass
        server.close()
        leaked = SECRET in server.data or SECRET in server.raw
        raise AssertionError(mistake + (_(" (and the server read your line)") if leaked else ""))
    server.close()
    assert SECRET not in server.raw and SECRET not in server.data, mistake
    if error is None:
        raise AssertionError(_("returned None instead of raising: the caller cannot tell a refused certificate from "
                               "a connection; let the ssl error propagate (or raise your own)"))
    if _from_tls(error):
        return _("refused: {error}").format(error=type(error).__name__)
    if isinstance(error, (TimeoutError, socket.timeout)):
        raise AssertionError(_("timed out instead of refusing: this server answers the handshake at once with a "
                               "certificate that must be refused, so the refusal should be the ssl error "
                               "(did your code try again another way?)"))
    raise AssertionError(_("raised {error}: {message}; the TLS handshake's own error (an ssl.SSLError) should "
                           "reach the caller, as it is or as the cause of yours (raise ... from exc), so the caller "
                           "knows what happened").format(error=type(error).__name__, message=error))


def check_tls_client(connect_tls: ConnectTls, show: bool = True) -> Report:
    """Check a student's ``connect_tls(host, port, cafile)``; prints one line per case and returns the Report."""
    try:
        import cryptography  # noqa: F401
    except ImportError:
        def missing() -> str:
            raise AssertionError(_("the checker makes certificates with the cryptography package: "
                                   "pip install \"chatlab[tls]\""))
        return run_cases("check_tls_client", [(_("certificates for the cases"), missing)], show=show)

    folder = tempfile.TemporaryDirectory(prefix="chatlab-tls-check-")
    files = _Certificates(Path(folder.name))

    def good_server() -> str:
        server = _Server("tls", files.good)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            sock, error = _call(connect_tls, server, files.ca)
        if sock is None:
            server.close()
            message = str(error)
            if "unable to get local issuer" in message:
                raise AssertionError(_("the good server's certificate was refused ({error}): trust the class CA "
                                       "you are given, ssl.create_default_context(cafile=cafile)").format(
                                           error=message))
            raise AssertionError(_("could not connect to a good server: {name}: {error}").format(
                name=type(error).__name__, error=error))
        version = sock.version() if hasattr(sock, "version") else None
        try:
            assert hasattr(sock, "version"), _("connect_tls() returned {type}, not a TLS socket (ssl.SSLSocket): "
                                               "return what context.wrap_socket() gives you").format(
                                                   type=type(sock).__name__)
            _send_secret(sock)
        finally:
            server.close()
        assert server.data == SECRET, _("the server received {got!r} instead of your line").format(
            got=bytes(server.data))
        return _("{version}, the line arrived encrypted").format(version=version)

    def sends_sni() -> str:
        server = _Server("tls", files.good)
        sock, error = _call(connect_tls, server, files.ca)
        if sock is not None:
            sock.close()
        server.close()
        sent = server.sni[-1] if server.sni else None
        assert sent == NAME, _(
            "the server name sent in the handshake (SNI) was {sni!r}, not {name!r}: pass "
            "server_hostname=host to wrap_socket; the server uses it to choose its certificate, and the client "
            "to check the certificate is for that name").format(sni=sent, name=NAME)
        return _("SNI {name!r}").format(name=NAME)

    def untrusted_ca() -> str:
        return _must_refuse(connect_tls, _Server("tls", files.untrusted), files.ca, _(
            "accepted a certificate signed by a CA you do not trust: that is exactly what a machine in the middle "
            "presents. verify_mode=CERT_NONE (or ssl._create_unverified_context) turns the check off: keep "
            "ssl.create_default_context(cafile=cafile), which requires a valid certificate"))

    def other_host() -> str:
        return _must_refuse(connect_tls, _Server("tls", files.other_host), files.ca, _(
            "accepted a certificate made for another host (elsewhere.example): any site with a certificate from "
            "the same CA could pose as this server. Leave check_hostname=True and pass server_hostname=host"))

    def expired() -> str:
        return _must_refuse(connect_tls, _Server("tls", files.expired), files.ca, _(
            "accepted an expired certificate: leave the default verification on"))

    def the_host_it_is_given() -> str:
        server = _Server("tls", files.address_only)  # a certificate for 127.0.0.1 only
        sock, error = _call(connect_tls, server, files.other_ca, host=HOST)
        if sock is None:
            server.close()
            if "unable to get local issuer" in str(error):
                raise AssertionError(_("connect_tls() did not trust the cafile it was given this time ({error}): "
                                       "build the context from the cafile argument on every call, not once for "
                                       "all calls").format(error=error))
            raise AssertionError(_("connect_tls({host!r}, ...) failed against a certificate made for {host}: "
                                   "{error}. Check the certificate against the host argument, not a name written "
                                   "into your code").format(host=HOST, error=error))
        try:
            _send_secret(sock)
        finally:
            server.close()
        assert server.data == SECRET, _("the server received {got!r} instead of your line").format(
            got=bytes(server.data))
        return _("connected to {host} by its address").format(host=HOST)

    def look_alike() -> str:
        return _must_refuse(connect_tls, _Server("tls", files.look_alike), files.ca, _(
            "accepted a certificate for localhost.evil.example when asked for localhost: a name that merely "
            "contains yours is another host. A home-made check (a substring, the CN alone) gets this wrong: "
            "leave check_hostname=True and let ssl compare the names"))

    def outdated_protocol() -> str:
        return _must_refuse(connect_tls, _Server("tls", files.good, outdated=True), files.ca, _(
            "agreed to TLS 1.0 with weak ciphers: those can be broken. Do not lower minimum_version or the "
            "cipher security level; ssl.create_default_context() refuses them"))

    def no_plaintext_fallback() -> str:
        return _must_refuse(connect_tls, _Server("plain"), files.ca, _(
            "went on without TLS when the server did not speak it: a fallback to plaintext lets anyone who can "
            "block the handshake read everything; when the handshake fails, raise"))

    def silent_server() -> str:
        server = _Server("silent")
        sock, error = _call(connect_tls, server, files.ca, seconds=TIMEOUT_LIMIT + 0.8)
        server.close()
        if sock is not None:
            sock.close()
            raise AssertionError(_("returned a socket though the server never answered the handshake"))
        return _("gave up: {error}").format(error=type(error).__name__)

    def closes_on_failure() -> str:
        gc.collect()  # what earlier cases left behind is reported now, not below
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            server = _Server("tls", files.untrusted)
            sock = _call(connect_tls, server, files.ca)[0]  # the error is dropped: its traceback holds the frames
            if sock is not None:
                sock.close()
            server.close()
            gc.collect()
        leaked = [w for w in caught if issubclass(w.category, ResourceWarning)
                  and f"raddr=('{HOST}', {server.port})" in str(w.message)]
        assert not leaked, _("when the handshake fails, the TCP socket is left open (closed only by the garbage "
                             "collector): close it before raising, e.g. `except BaseException: sock.close(); raise`")
        return ""

    cases = [
        (_("a good server: handshake, then the line, encrypted"), good_server),
        (_("sends the server's name (SNI)"), sends_sni),
        (_("refuses a certificate from an untrusted CA"), untrusted_ca),
        (_("refuses a certificate for another host name"), other_host),
        (_("refuses an expired certificate"), expired),
        (_("checks the host it is given (an address, another class's CA)"), the_host_it_is_given),
        (_("refuses a look-alike host name"), look_alike),
        (_("refuses an outdated protocol (TLS 1.0)"), outdated_protocol),
        (_("never falls back to plaintext"), no_plaintext_fallback),
        (_("gives up on a server that never answers"), silent_server),
        (_("closes its socket when the handshake fails"), closes_on_failure),
    ]
    try:
        return run_cases("check_tls_client", cases, show=show, student_fns=[connect_tls])
    finally:
        folder.cleanup()
