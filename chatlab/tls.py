"""TLS for chatlab, the sans-I/O way: ciphertext in, plaintext out, and back.

The server's loop never blocks, so it cannot call ``ssl.SSLSocket.do_handshake()``
and wait.  Instead each TLS connection gets a :class:`TlsLayer`: an
``ssl.SSLObject`` between two ``ssl.MemoryBIO`` buffers, which the loop feeds
with the bytes ``recv()`` returned and empties into the connection's outbox, the
way it already feeds a codec.  The handshake is then just more bytes going back
and forth, inside the same ``select()`` loop (Python's ``asyncio`` does the same
in ``asyncio/sslproto.py``).

A connection is recognised as TLS from its first bytes, as the IRC text mode is:
a TLS record starts with content type 22 (handshake) and major version 3, so a
ClientHello begins ``16 03``; chatlab's binary frames begin with ``C4`` and IRC
text with a letter.  Inside the TLS, the first plaintext bytes are sniffed again,
so binary clients, IRC clients and ``openssl s_client`` all share one port.

    layer = TlsLayer.server(context)
    plaintext = layer.receive(ciphertext_from_recv)   # b"" while the handshake runs
    outbox.append(layer.data_to_send())               # handshake records, then data
    outbox.append(layer.encrypt(b"PING :x\\r\\n"))

The certificates: :mod:`chatlab.certs` makes a class CA and a server certificate.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

from .errors import RemoteProtocolError

__all__ = ["TLS_RECORD_START", "TlsError", "TlsLayer", "TlsSocket", "looks_like_tls", "server_context",
           "client_context", "wrap_client", "DirectIdentity", "direct_identity", "wrap_pinned"]

# A TLS record's first two bytes: content type 22 (handshake), protocol major version 3.
TLS_RECORD_START = b"\x16\x03"
READ_SIZE = 65536  # plaintext taken from the SSLObject per read() call


class TlsError(RemoteProtocolError):
    """The peer's TLS failed: a bad handshake, an unknown CA, a record that does not decrypt."""


def looks_like_tls(first_bytes: bytes) -> bool | None:
    """Is this connection's start a TLS ClientHello?  ``None``: too few bytes to tell yet."""
    if len(first_bytes) < len(TLS_RECORD_START):
        return None if TLS_RECORD_START.startswith(first_bytes) else False
    return first_bytes.startswith(TLS_RECORD_START)


def server_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """The server's context: its certificate chain and key, TLS 1.2 or newer.

    Raises:
        FileNotFoundError: a file is missing.
        ssl.SSLError: the files are not a certificate and its key.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context


def client_context(cafile: str | None = None) -> ssl.SSLContext:
    """A client's context that checks the certificate and the host name, as it must.

    ``cafile``: the class CA's certificate (``chatlab certs`` makes it); without it,
    the system's trusted CAs.  ``ssl.create_default_context`` already sets
    ``verify_mode=CERT_REQUIRED`` and ``check_hostname=True``: turning either off
    lets anyone on the path read and change the chat (notebook 11 shows it).
    """
    try:
        context = ssl.create_default_context(cafile=cafile)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such CA file: {cafile} (the class CA, ca.pem, comes from the teacher)") from None
    except ssl.SSLError as exc:
        raise TlsError(f"{cafile} holds no CA certificate ({exc.reason or exc}): pass the class CA, ca.pem, "
                       "not a key or a server certificate's key") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


# What a failed verification means, in words a student can act on (OpenSSL's verify messages).
_VERIFY_HINTS = {
    "Hostname mismatch": "the certificate is for another host name: connect with a name the certificate lists",
    "IP address mismatch": "the certificate does not list this IP address: connect with a name or address it lists",
    "unable to get local issuer certificate": "the certificate was signed by a CA you do not trust: pass the class CA "
                                              "(cafile=... in Python, --cafile on the command line)",
    "self-signed certificate": "the certificate is self-signed and not trusted: pass the CA that signed it "
                               "(cafile=... in Python, --cafile on the command line)",
    "certificate has expired": "the server's certificate has expired: the teacher must make a new one",
    "certificate is not yet valid": "the server's certificate is not valid yet: check both clocks",
}


def _describe(exc: ssl.SSLError) -> str:
    """An ``ssl`` error as a sentence that says what to do about it."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = exc.verify_message or str(exc)
        hint = next((h for key, h in _VERIFY_HINTS.items() if key in message), "")
        return f"the server's certificate was refused: {message}" + (f" ({hint})" if hint else "")
    reason = getattr(exc, "reason", None)
    return f"TLS failed: {reason or exc}"


class TlsLayer:
    """One connection's TLS state, fed with bytes and never touching a socket.

    ``receive()`` takes ciphertext and returns the plaintext it completed;
    ``encrypt()`` takes plaintext and returns ciphertext; ``data_to_send()``
    returns what the TLS machinery itself has to say (handshake records, alerts).
    Plaintext handed to ``encrypt()`` before the handshake finished is kept and
    encrypted as soon as it has.

    Raises :class:`TlsError` (a :class:`RemoteProtocolError`) when the peer's bytes
    are not acceptable TLS; the server then closes that connection, nobody else's.
    """

    def __init__(self, context: ssl.SSLContext, *, server_side: bool, server_hostname: str | None = None,
                 on_handshake: Callable[[TlsLayer], None] | None = None) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side,
                                     server_hostname=server_hostname)
        self._waiting_plaintext: list[bytes] = []  # encrypt() before the handshake: sent right after it
        self.handshake_done = False
        self.on_handshake = on_handshake

    @classmethod
    def server(cls, context: ssl.SSLContext) -> TlsLayer:
        return cls(context, server_side=True)

    @property
    def version(self) -> str | None:
        """``"TLSv1.3"`` and the like once the handshake is done."""
        return self._ssl.version()

    @property
    def cipher(self) -> str | None:
        cipher = self._ssl.cipher()
        return cipher[0] if cipher else None

    def receive(self, ciphertext: bytes) -> bytes:
        """Feed bytes from the socket; return the plaintext they completed (often ``b""``)."""
        if ciphertext:
            self._incoming.write(ciphertext)
        try:
            if not self.handshake_done:
                self._ssl.do_handshake()
                self.handshake_done = True
                if self.on_handshake is not None:
                    self.on_handshake(self)
                self._flush_waiting()
            return self._read_all()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return b""  # more records needed; data_to_send() may hold our half of the handshake
        except ssl.SSLZeroReturnError:
            return b""  # the peer's close_notify: its next recv() returns b"" and ends it
        except ssl.SSLError as exc:
            raise TlsError(_describe(exc)) from None

    def _read_all(self) -> bytes:
        chunks = []
        while True:
            try:
                chunk = self._ssl.read(READ_SIZE)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def encrypt(self, plaintext: bytes | memoryview) -> bytes:
        """Ciphertext for ``plaintext`` (and any TLS records pending before it)."""
        if not self.handshake_done:
            self._waiting_plaintext.append(bytes(plaintext))
            return self.data_to_send()
        if plaintext:
            self._write(plaintext)
        return self.data_to_send()

    def _write(self, plaintext: bytes | memoryview) -> None:
        try:
            self._ssl.write(plaintext)
        except ssl.SSLError as exc:
            raise TlsError(_describe(exc)) from None

    def _flush_waiting(self) -> None:
        waiting, self._waiting_plaintext = self._waiting_plaintext, []
        for plaintext in waiting:
            self._write(plaintext)

    def data_to_send(self) -> bytes:
        """The ciphertext waiting to go out: handshake records, encrypted data, alerts."""
        return self._outgoing.read()

    def close_notify(self) -> bytes:
        """A close_notify alert to send before closing (best effort; ``b""`` if there is none)."""
        try:
            self._ssl.unwrap()
        except ssl.SSLError:
            pass
        return self.data_to_send()


class TlsSocket:
    """A connected TCP socket with TLS over it, for a client's reader and writer threads.

    ``ssl.SSLSocket`` must not be read in one thread while another writes it
    (OpenSSL's SSL objects are not thread-safe; CPython gh-76714, gh-124984).  So
    the TLS state is a :class:`TlsLayer` under a lock that is held only for the
    in-memory TLS work, never while waiting on the network: the reader blocks in
    ``recv()`` on the raw socket without holding it.  Only the writer thread sends,
    so the records go out in the order they were made.  It offers the few socket
    methods :class:`chatlab.Client` uses.
    """

    def __init__(self, sock: socket.socket, layer: TlsLayer) -> None:
        self.raw = sock
        self.layer = layer
        self._lock = threading.Lock()
        self._plaintext = bytearray()

    # the reader's side
    def recv(self, size: int) -> bytes:
        while not self._plaintext:
            data = self.raw.recv(65536)
            if not data:
                return b""
            with self._lock:
                self._plaintext += self.layer.receive(data)
        chunk = bytes(self._plaintext[:size])
        del self._plaintext[:size]
        return chunk

    def recv_into(self, view: memoryview) -> int:
        chunk = self.recv(len(view))
        view[: len(chunk)] = chunk
        return len(chunk)

    # the writer's side
    def sendall(self, data: bytes | memoryview) -> None:
        with self._lock:
            ciphertext = self.layer.encrypt(data)
        self.raw.sendall(ciphertext)

    def send(self, data: bytes | memoryview) -> int:
        self.sendall(data)
        return len(data)

    def version(self) -> str | None:
        """The TLS version agreed, as ``ssl.SSLSocket.version()`` says it."""
        return self.layer.version

    # everything else is the TCP socket's
    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)

    def close(self) -> None:
        self.raw.close()


def wrap_client(sock: socket.socket, context: ssl.SSLContext, server_hostname: str,
                timeout: float = 5.0) -> TlsSocket:
    """Do a client's TLS handshake on a connected socket (checking the certificate) and return it wrapped.

    Raises:
        TlsError: the handshake failed; the message says why (wrong host name,
            untrusted CA, expired certificate, not TLS at all).
        TimeoutError: the handshake did not finish within ``timeout`` seconds.
    """
    layer = TlsLayer(context, server_side=False, server_hostname=server_hostname)
    deadline = time.monotonic() + timeout
    try:
        layer.receive(b"")  # starts the handshake: the ClientHello
        while True:
            out = layer.data_to_send()
            if out:
                sock.sendall(out)
            if layer.handshake_done:
                return TlsSocket(sock, layer)
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = sock.recv(65536)
            if not data:
                raise TlsError("the server closed the connection during the TLS handshake "
                               "(is it a chatlab server started with --tls-cert?)")
            layer.receive(data)
    except TlsError as exc:
        if "TLS failed" in str(exc) and "WRONG_VERSION_NUMBER" in str(exc).upper():
            raise TlsError(f"{exc}: the server answered in plain text, not TLS (a server without --tls-cert, "
                           "or a full server refusing the connection)") from None
        raise


# ---------------------------------------------------------------- the direct path over TLS


class DirectIdentity(NamedTuple):
    """A receiver's certificate for direct connections: its server context and its SHA-256 (hex)."""

    context: ssl.SSLContext
    fingerprint: str


_identity: list[DirectIdentity] = []
_identity_lock = threading.Lock()


def direct_identity() -> DirectIdentity | None:
    """This process's self-signed certificate for direct connections (made once), or ``None``
    without the ``cryptography`` package (then a TLS client receives files through the server).

    No CA is needed: the receiver sends the certificate's SHA-256 in its ``FILE_ACCEPT``,
    through the chat connection, which is itself TLS, and the sender accepts exactly that
    certificate (pinning), as WebRTC does with the fingerprints in its signalling.
    """
    with _identity_lock:
        if not _identity:
            try:
                from . import certs
            except ImportError:
                return None
            try:
                cert, key = certs.issue_server_cert(certs.make_class_ca("chatlab direct"), ["chatlab-direct"])
            except (ImportError, SystemExit):
                return None
            import tempfile

            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            with tempfile.TemporaryDirectory() as folder:  # load_cert_chain reads files only
                Path(folder, "c.pem").write_bytes(cert)
                Path(folder, "k.pem").write_bytes(key)
                context.load_cert_chain(str(Path(folder, "c.pem")), str(Path(folder, "k.pem")))
            der = ssl.PEM_cert_to_DER_cert(cert.decode("ascii"))
            _identity.append(DirectIdentity(context, hashlib.sha256(der).hexdigest()))
        return _identity[0]


def wrap_pinned(sock: socket.socket, fingerprint: str) -> ssl.SSLSocket:
    """The sender's end of a TLS direct connection: accept exactly the certificate whose SHA-256 is
    ``fingerprint`` (it came through the chat server); raises :class:`TlsError` for any other."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False  # no name to check: the pin below is stricter than any CA
    context.verify_mode = ssl.CERT_NONE  # checked by hand, against the pin, right after the handshake
    try:
        tls = context.wrap_socket(sock)
    except ssl.SSLError as exc:
        raise TlsError(_describe(exc)) from None
    der = tls.getpeercert(binary_form=True) or b""
    if not hmac.compare_digest(hashlib.sha256(der).hexdigest(), fingerprint):
        tls.close()
        raise TlsError("the direct connection presented another certificate than the receiver announced")
    return tls
