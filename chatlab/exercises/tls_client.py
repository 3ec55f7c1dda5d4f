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
from ._report import Report, run_cases
from .recv import DeadlineExceeded, call_with_deadline

HOST = "127.0.0.1"
NAME = "localhost"  # the host name the student connects with; the good certificate is for it
SECRET = b"PRIVMSG #lobby :the room key is tulip\r\n"
SERVER_WAIT = 3.0  # seconds a checker server waits for the student's client
SILENT_WAIT = 8.0  # the silent server holds the connection this long; the student must give up sooner

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
        self.other_host = self._pair("other", *certs.issue_server_cert(ca, ["elsewhere.example"]))
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
        self.expired = self._pair("expired", *certs.issue_server_cert(ca, [NAME, HOST], days=-1, not_before=past))
        mallory = certs.make_class_ca("mallory's CA")
        self.untrusted = self._pair("mallory", *certs.issue_server_cert(mallory, [NAME, HOST]))

    def _write(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path

    def _pair(self, name: str, cert: bytes, key: bytes) -> tuple[Path, Path]:
        return self._write(f"{name}.pem", cert), self._write(f"{name}-key.pem", key)


class _Server:
    """One connection's worth of server on a free loopback port, in a thread.

    ``mode`` is ``"tls"`` (a handshake with ``cert``), ``"plain"`` (no TLS: it
    answers like an IRC server in the clear) or ``"silent"`` (accepts, says nothing).
    It records the server name the client sent (SNI) and every byte of data.
    """

    def __init__(self, mode: str, cert: tuple[Path, Path] | None = None) -> None:
        self.mode = mode
        self.sni: str | None = None
        self.handshake_ok = False
        self.data = bytearray()
        self.raw = bytearray()  # what arrived before or instead of TLS
        self.context: ssl.SSLContext | None = None
        if cert is not None:
            self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.context.load_cert_chain(str(cert[0]), str(cert[1]))
            self.context.sni_callback = self._remember_sni
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(SERVER_WAIT)
        self.port = self.listener.getsockname()[1]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, name=f"chatlab-tls-check-{mode}", daemon=True)
        self.thread.start()

    def _remember_sni(self, sslobj: Any, name: str | None, context: ssl.SSLContext) -> None:
        self.sni = name

    def _serve(self) -> None:
        try:
            conn, _addr = self.listener.accept()
        except OSError:
            return
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
                    self.handshake_ok = True
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
        self.thread.join(SILENT_WAIT + 1)


def _call(connect_tls: ConnectTls, server: _Server, cafile: Path, seconds: float = 6.0) -> tuple[Any, BaseException | None]:
    """Run the student's function against ``server``; (its socket or None, what it raised)."""
    try:
        return call_with_deadline(seconds, connect_tls, NAME, server.port, str(cafile)), None
    except NotImplementedError:
        raise AssertionError(_("not written yet: connect_tls() still raises NotImplementedError")) from None
    except DeadlineExceeded:
        raise AssertionError(_("connect_tls() was still waiting after {seconds:g} s: give the socket a timeout "
                               "(socket.create_connection(address, timeout=...)), so a server that never answers "
                               "cannot hang your program").format(seconds=seconds)) from None
    except Exception as exc:  # noqa: BLE001 - refusing is the right answer in most cases
        return None, exc


def _send_secret(sock: Any) -> None:
    try:
        sock.sendall(SECRET)
    finally:
        sock.close()


def _must_refuse(connect_tls: ConnectTls, server: _Server, cafile: Path, mistake: str) -> str:
    sock, error = _call(connect_tls, server, cafile)
    if sock is not None:
        try:
            _send_secret(sock)
        except OSError:
            pass
        server.close()
        leaked = SECRET in server.data or SECRET in server.raw
        raise AssertionError(mistake + (_(" (and the server read your line)") if leaked else ""))
    server.close()
    assert SECRET not in server.raw, mistake
    if isinstance(error, (ssl.SSLError, ssl.CertificateError, OSError, ValueError)):
        return _("refused: {error}").format(error=type(error).__name__)
    raise AssertionError(_("raised {error}: {message}; a refused certificate should raise the ssl error itself "
                           "(ssl.SSLCertVerificationError), so the caller knows what happened").format(
        error=type(error).__name__, message=error))


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
                                       "you are given, ssl.create_default_context(cafile=cafile)").format(error=message))
            raise AssertionError(_("could not connect to a good server: {name}: {error}").format(
                name=type(error).__name__, error=error))
        version = sock.version() if hasattr(sock, "version") else None
        try:
            assert hasattr(sock, "version"), _("connect_tls() returned {type}, not a TLS socket (ssl.SSLSocket): "
                                               "return what context.wrap_socket() gives you").format(type=type(sock).__name__)
            _send_secret(sock)
        finally:
            server.close()
        assert server.data == SECRET, _("the server received {got!r} instead of your line").format(got=bytes(server.data))
        return _("{version}, the line arrived encrypted").format(version=version)

    def sends_sni() -> str:
        server = _Server("tls", files.good)
        sock, error = _call(connect_tls, server, files.ca)
        if sock is not None:
            sock.close()
        server.close()
        assert server.sni == NAME, _(
            "the server name sent in the handshake (SNI) was {sni!r}, not {name!r}: pass "
            "server_hostname=host to wrap_socket; the server uses it to choose its certificate, and the client "
            "to check the certificate is for that name").format(sni=server.sni, name=NAME)
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

    def no_plaintext_fallback() -> str:
        return _must_refuse(connect_tls, _Server("plain"), files.ca, _(
            "went on without TLS when the server did not speak it: a fallback to plaintext lets anyone who can "
            "block the handshake read everything; when the handshake fails, raise"))

    def silent_server() -> str:
        server = _Server("silent")
        sock, error = _call(connect_tls, server, files.ca, seconds=SILENT_WAIT - 1)
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
        (_("never falls back to plaintext"), no_plaintext_fallback),
        (_("gives up on a server that never answers"), silent_server),
        (_("closes its socket when the handshake fails"), closes_on_failure),
    ]
    try:
        return run_cases("check_tls_client", cases, show=show, student_fns=[connect_tls])
    finally:
        folder.cleanup()
