"""The direct path: a file's bytes over a second TCP connection between the two clients.

The seed's first answer to "how do I chat while a file is sent?" was "open
another socket for the file" (再通过另一端口新建一个socket).  IRC's DCC does
exactly that.  Here the offer and the answer still travel through the chat
server; only the file's bytes take the second connection, so chat and file
never share a queue, and the server never touches the file.

Who listens: the **receiver**.  Its ``FILE_ACCEPT`` carries the address
(``direct: "127.0.0.1:40123"``) and the sender connects to it.  The receiver
opens a port only once it has said yes, for that one transfer, and closes it
as soon as the sender arrived (or after :data:`ACCEPT_TIMEOUT`); an offer
that nobody answers holds no listening socket.  (DCC SEND makes the sender
listen, because its offer is the only message that goes out before the bytes;
here the accept goes back anyway, so the address can ride on it.)

Where the sender connects: only to the receiver's own address as the *server*
sees it.  The receiver's ``FILE_ACCEPT`` names its listener's port; the server
stamps the host (a receiver cannot aim the sender at another machine).

The handshake, once the sender is connected; the **receiver speaks first**::

    receiver -> sender   a fresh nonce (16 bytes), then HMAC-SHA256(token, "receiver" + nonce)
    sender -> receiver   HMAC-SHA256(token, "sender" + nonce)
    sender -> receiver   the file's bytes from the accepted offset to the end
    sender -> receiver   the SHA-256 of the whole file: 32 raw bytes

The token is made fresh for every offer (:func:`new_token`, 128 random bits)
and travels only to the server and the receiver; it never crosses the direct
connection.  The sender writes nothing, neither proof nor file, until the
other end has proved it holds the token: a local service that answers nothing
or garbage on that port gets zero bytes, and the sender falls back to the
server.  The receiver checks the sender's proof with :func:`hmac.compare_digest`
(no timing leak), good once (:class:`OneTimeToken`), and checks every
connection at once without blocking (a silent one costs nothing): so nobody
else on the network can push a file into a ``.part`` or take over a transfer.

Acks and the end of the transfer still go through the server
(``FILE_ACK``, then the receiver's ``FILE_DONE``): the sender's progress and
its ``wait()`` work the same on both paths.  If the sender cannot connect
within :data:`CONNECT_TIMEOUT` it sends the chunks through the server instead
(the fallback), and says so.

This module is the sockets; the token check (:class:`OneTimeToken`) and the
address format are plain functions a test can call without a network.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import secrets
import selectors
import socket
import threading
import time
from typing import TYPE_CHECKING, BinaryIO, Callable

from ..addresses import format_address
from ..core import protocol as p
from ..core.transfer import IncomingTransfer, TransferState
from ..errors import ChatlabError, IncompleteReadError
from ..events import DirectFallback
from ..streams import recv_exact
from ..tls import DirectIdentity, TlsError, TlsSocket, direct_identity, wrap_pinned
from .state import ClientState

if TYPE_CHECKING:
    from .sending import Transfer

from .. import hashing

TOKEN_HEX_DIGITS = 32  # 128 random bits, as hex
CONNECT_TIMEOUT = 3.0  # sender: seconds to reach the receiver's address before falling back to the server
ACCEPT_TIMEOUT = 15.0  # receiver: seconds its listener waits for the sender
HANDSHAKE_TIMEOUT = 2.0  # a connection that has not proved it holds the token by then is dropped
NONCE_SIZE = 16  # the receiver's fresh bytes that each proof covers
PROOF_SIZE = 32  # an HMAC-SHA256
IDLE_TIMEOUT = 60.0  # either side: no byte moved for this long means the peer is gone
BUFFER_SIZE = 1024 * 1024  # the receiver's reused recv_into buffer
DIGEST_SIZE = 32  # raw SHA-256 after the file's bytes
ACK_EVERY = 4 * 1024 * 1024  # the receiver acks (through the server) every this many bytes

log = logging.getLogger("chatlab.client")


def new_token() -> str:
    """A fresh one-time token for an offer: 32 hex digits."""
    return secrets.token_hex(TOKEN_HEX_DIGITS // 2)


def valid_token(token: str) -> bool:
    """Is ``token`` what :func:`new_token` makes (so an offer really asks for a direct connection)?"""
    return len(token) == TOKEN_HEX_DIGITS and all(c in "0123456789abcdef" for c in token)


def proof(token: str, role: bytes, nonce: bytes) -> bytes:
    """HMAC-SHA256 of ``role + nonce`` under the token: shows the token is known without sending it."""
    return hmac.new(token.encode("ascii"), role + nonce, hashlib.sha256).digest()


def receiver_hello(token: str) -> bytes:
    """What the receiver says first on a direct connection: a fresh nonce and its proof."""
    nonce = secrets.token_bytes(NONCE_SIZE)
    return nonce + proof(token, b"receiver", nonce)


def sender_answer(token: str, hello: bytes) -> bytes | None:
    """The sender's proof if ``hello`` shows the receiver holds ``token``, else ``None`` (write nothing)."""
    nonce, theirs = hello[:NONCE_SIZE], hello[NONCE_SIZE:]
    if len(nonce) != NONCE_SIZE or not hmac.compare_digest(theirs, proof(token, b"receiver", nonce)):
        return None
    return proof(token, b"sender", nonce)


class OneTimeToken:
    """The receiver's side of the token: a sender's proof is right once, then never again.

    >>> ticket, nonce = OneTimeToken("ab" * 16), b"n" * NONCE_SIZE
    >>> right = proof("ab" * 16, b"sender", nonce)
    >>> ticket.claim(b"0" * 32, nonce), ticket.claim(right, nonce), ticket.claim(right, nonce)
    (False, True, False)
    """

    def __init__(self, token: str) -> None:
        self._token = token
        self.used = False

    def claim(self, presented: bytes, nonce: bytes) -> bool:
        """True if ``presented`` is the sender's proof for ``nonce`` and nobody claimed the token before."""
        # compare_digest takes as long for a near miss as for a wild guess: no timing leak.
        if self.used or not hmac.compare_digest(presented, proof(self._token, b"sender", nonce)):
            return False
        self.used = True
        return True


class _Pending:
    """A connection to the listener that has not proved itself yet."""

    def __init__(self, conn: socket.socket, nonce: bytes, until: float) -> None:
        self.conn, self.nonce, self.until, self.got = conn, nonce, until, b""


class DirectListener:
    """Receiver: a listening socket for one transfer, on the chat connection's own local address.

    Listening where the chat connection already is (``127.0.0.1`` on
    loopback, the LAN address in a classroom) means the sender reaches it by
    the same route as the server, and nothing listens on other interfaces.
    """

    def __init__(self, host: str, token: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.sock.bind((host, 0))
            self.sock.listen(16)
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self.token = token
        self.ticket = OneTimeToken(token)
        self.refused = 0  # connections dropped for a wrong, replayed or missing proof
        self._closed = False

    def accept(self, timeout: float = ACCEPT_TIMEOUT) -> socket.socket | None:
        """The sender's connection, once it proved it holds the token; ``None`` after ``timeout`` or :meth:`close`.

        Every connection is greeted at once (nonce and proof) and checked without
        blocking, any number at the same time: a silent one is dropped after
        HANDSHAKE_TIMEOUT, a wrong proof (or the right one a second time) at once,
        and the right one is taken whenever it arrives.
        """
        deadline = time.monotonic() + timeout
        pending: dict[socket.socket, _Pending] = {}
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ, None)
            try:
                while not self._closed:
                    now = time.monotonic()
                    if now >= deadline:
                        return None
                    self._expire(selector, pending, now)
                    wait = min([deadline] + [p.until for p in pending.values()]) - now
                    for key, _ in selector.select(max(0.0, wait)):
                        winner = self._on_ready(selector, pending, key.data)
                        if winner is not None:
                            return winner
                return None
            finally:
                for waiting in pending.values():
                    waiting.conn.close()

    def _on_ready(self, selector: selectors.BaseSelector, pending: dict[socket.socket, _Pending],
                  waiting: _Pending | None) -> socket.socket | None:
        if waiting is None:
            self._greet(selector, pending)
            return None
        try:
            data = waiting.conn.recv(PROOF_SIZE - len(waiting.got))
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            data = b""
        waiting.got += data
        if data and len(waiting.got) < PROOF_SIZE:
            return None
        selector.unregister(waiting.conn)
        del pending[waiting.conn]
        if data and self.ticket.claim(waiting.got, waiting.nonce):
            waiting.conn.setblocking(True)
            waiting.conn.settimeout(IDLE_TIMEOUT)
            return waiting.conn
        self.refused += 1
        waiting.conn.close()  # a wrong, replayed or missing proof: dropped before it wrote a byte anywhere
        return None

    def _greet(self, selector: selectors.BaseSelector, pending: dict[socket.socket, _Pending]) -> None:
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # closed under us
            self._closed = True
            return
        hello = receiver_hello(self.token)
        try:
            conn.setblocking(False)
            conn.send(hello)  # 48 bytes: any empty send buffer takes them
        except OSError:
            conn.close()
            return
        pending[conn] = _Pending(conn, hello[:NONCE_SIZE], time.monotonic() + HANDSHAKE_TIMEOUT)
        selector.register(conn, selectors.EVENT_READ, pending[conn])

    def _expire(self, selector: selectors.BaseSelector, pending: dict[socket.socket, _Pending], now: float) -> None:
        for waiting in [w for w in pending.values() if now >= w.until]:
            selector.unregister(waiting.conn)
            del pending[waiting.conn]
            self.refused += 1
            waiting.conn.close()

    def close(self) -> None:
        """Stop listening; a thread waiting in :meth:`accept` wakes up.

        On Linux shutdown does that; close alone does not.
        """
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def hash_file(fd: int, size: int, into: list[str]) -> None:
    """SHA-256 of the first ``size`` bytes of ``fd``, read with ``pread`` (no shared file offset)."""
    digest = hashlib.sha256()
    buffer = memoryview(bytearray(BUFFER_SIZE))  # reused: preadv() reads into it, no new bytes per block
    offset = 0
    while offset < size:
        want = min(BUFFER_SIZE, size - offset)
        if hasattr(os, "preadv"):
            n = os.preadv(fd, [buffer[:want]], offset)
            block = buffer[:n]
        else:
            block = memoryview(os.pread(fd, want, offset))
            n = len(block)
        if not n:
            break
        digest.update(block)  # releases the GIL for large blocks: it runs beside sendfile()
        offset += n
    into.append(digest.hexdigest())


def send_file(sock: socket.socket, file: BinaryIO, offset: int, size: int) -> str:
    """Sender: the bytes from ``offset`` to ``size`` with ``socket.sendfile()``, then the whole file's digest.

    The digest is computed in a second thread while the kernel copies the file
    to the socket (zero-copy where the OS has ``sendfile``), so it costs no
    pass over the file before the transfer.

    Returns:
        The file's SHA-256 (hex).

    Raises:
        OSError: the connection broke; ValueError: the file changed size.
    """
    digests: list[str] = []
    hasher: threading.Thread | None = None
    if hasattr(os, "pread"):
        hasher = threading.Thread(target=hash_file, args=(file.fileno(), size, digests), name="chatlab-direct-hash",
                                  daemon=True)
        hasher.start()
    try:
        # Seek first: over TLS, sendfile() falls back to read() and send(), and skips its own seek for offset 0.
        file.seek(offset)
        sent = sock.sendfile(file, offset, size - offset) if size > offset else 0
    finally:
        if hasher is not None:
            hasher.join()
    if sent != size - offset:
        raise ValueError(f"the file changed while it was being sent: {offset + sent} of {size} bytes")
    if not digests:  # no pread (Windows): one pass after the bytes
        file.seek(0)
        digest = hashlib.sha256()
        while block := file.read(BUFFER_SIZE):
            digest.update(block)
        digests.append(digest.hexdigest())
    sock.sendall(bytes.fromhex(digests[0]))
    return digests[0]


def receive_file(sock: socket.socket, remaining: int, write: Callable[[memoryview], int],
                 progress: Callable[[int], None]) -> str:
    """Receiver: ``remaining`` bytes into ``write`` through a ring of reused buffers, then the sender's digest.

    ``write(data)`` stores the bytes and returns the total written so far;
    ``progress(total)`` is called about every :data:`ACK_EVERY` bytes.

    Returns:
        The SHA-256 the sender sent after the bytes (hex).

    Raises:
        ConnectionError: the sender closed before the end.  OSError: the connection broke.
    """
    # A ring of reused buffers: write() may hand a buffer to a SHA-256 thread that hashes it
    # later; it comes round again only once hashed (see chatlab.hashing for why PENDING + 2).
    ring = [memoryview(bytearray(BUFFER_SIZE)) for _ in range(hashing.PENDING + 2)]
    next_ack = ACK_EVERY
    moved = 0
    turn = 0
    while remaining:
        buffer = ring[turn % len(ring)]
        turn += 1
        n = sock.recv_into(buffer, min(remaining, BUFFER_SIZE))
        if not n:
            raise ConnectionError(f"the direct connection closed with {remaining:,} bytes still to come")
        total = write(buffer[:n])
        remaining -= n
        moved += n
        if moved >= next_ack:
            next_ack += ACK_EVERY
            progress(total)
    try:
        digest = recv_exact(sock, DIGEST_SIZE)
    except IncompleteReadError:
        raise ConnectionError("the direct connection closed before the SHA-256 that ends it") from None
    return digest.hex()


__all__ = [
    "new_token", "valid_token", "OneTimeToken", "DirectListener", "proof", "receiver_hello", "sender_answer",
    "send_file", "receive_file", "CONNECT_TIMEOUT", "ACCEPT_TIMEOUT", "HANDSHAKE_TIMEOUT", "TOKEN_HEX_DIGITS",
]


# ------------------------------------------- the direct path inside the Client


class DirectIncoming:
    """Receiver: the direct path of one incoming transfer, shared by the reader and the direct thread."""

    def __init__(self, listener: DirectListener, tls: DirectIdentity | None = None) -> None:
        self.listener = listener
        self.tls = tls  # the chat connection is TLS: so is this one, with this certificate
        self.lock = threading.Lock()  # IncomingTransfer is not thread-safe: one of the two threads at a time
        self.path = ""  # "direct" or "server", once the first bytes decided it
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None
        self.ended_elsewhere = False  # the sender's cancel or our own close ended it: nothing to tell the sender


class DirectPath(ClientState):
    """Both ends of the direct path in a :class:`~chatlab.client.Client` (a mixin)."""

    def _listen_direct(self, offer: p.FileOffer, incoming: IncomingTransfer) -> DirectIncoming | None:
        """Listen for the sender on the chat connection's own local address; None if we cannot (then: the server).

        When the chat connection is TLS, the file's bytes must not cross in the clear: the direct
        connection runs TLS too, with this process's own certificate, whose SHA-256 the accept carries.
        """
        tls = None
        if isinstance(self._sock, TlsSocket):
            tls = direct_identity()
            if tls is None:
                log.info("%s: no TLS for a direct path (pip install cryptography); %s comes through the server",
                         self.nick, offer.name)
                return None
        try:
            host = self._sock.getsockname()[0]
            return DirectIncoming(DirectListener(host, offer.token), tls)
        except OSError as exc:
            log.info("%s: no direct path for %s (%s); the sender will use the server", self.nick, offer.name, exc)
            return None

    def _advertised(self, path: DirectIncoming) -> tuple[str, int]:
        return self.advertise_direct(path.listener.address) if self.advertise_direct else path.listener.address

    def _on_incoming_shared(self, message: p.Message, incoming: IncomingTransfer, path: DirectIncoming) -> None:
        """Reader thread: a relayed frame for a transfer that was offered the direct path."""
        sid = incoming.stream_id
        with path.lock:
            if isinstance(message, p.FileChunk) and not path.path:
                path.path = "server"  # the sender fell back: no direct connection may write now
                path.listener.close()
            if path.path == "direct" and not isinstance(message, p.FileCancel):
                return  # the bytes come over the direct connection; nothing else is expected here
            if isinstance(message, p.FileCancel):
                path.ended_elsewhere = True
            replies = self._handle_incoming(sid, incoming, message)
        for reply in replies:
            self._reply(p.encode(reply))  # one ack per relayed chunk: the fallback is the rare case
        if incoming.done or incoming.failed:
            self._incoming_over(sid, incoming)

    def _receive_direct(self, sid: int, incoming: IncomingTransfer, path: DirectIncoming) -> None:
        """Direct thread (receiver): wait for the sender's connection, then write its bytes to the .part."""
        try:
            sock = path.listener.accept()
            path.listener.close()  # one connection per transfer: the port closes as soon as the sender is in
            if sock is None:
                return  # the sender did not come: its chunks come through the server instead
            if path.tls is not None:  # the sender proved it holds the token; now the bytes go encrypted
                sock = path.tls.context.wrap_socket(sock, server_side=True)
            with path.lock:
                if path.path or incoming.state is not TransferState.ACTIVE:
                    sock.close()
                    return
                path.path, path.sock = "direct", sock
            with sock:
                self._receive_direct_bytes(sid, incoming, path, sock)
        except Exception as exc:  # noqa: BLE001 - never a thread traceback; the transfer says why it failed
            log.debug("%s: direct receive of %s ended: %r", self.nick, incoming.name, exc)
            with path.lock:
                # Our own verdict (a bad SHA-256, a disk error) always goes to the sender; a broken
                # connection only if nothing else (the sender's cancel, our close) ended it first.
                tell = not path.ended_elsewhere and (isinstance(exc, ChatlabError)
                                                     or incoming.state is TransferState.ACTIVE)
                if tell:
                    reason = str(exc) if isinstance(exc, ChatlabError) else f"direct connection: {exc}"
                    self._reply(p.encode(incoming.cancel(reason)))
            if incoming.failed:
                self._incoming_over(sid, incoming)

    def _receive_direct_bytes(self, sid: int, incoming: IncomingTransfer, path: DirectIncoming,
                              sock: socket.socket) -> None:
        def write(data: memoryview) -> int:
            with path.lock:
                return incoming.write(data)

        def progress(total: int) -> None:  # acks go through the server: the sender's progress bar
            self._reply(p.encode(p.FileAck(sid, total)))

        digest = receive_file(sock, incoming.size - incoming.received, write, progress)
        with path.lock:
            done = incoming.finish(digest)  # ChecksumMismatch if the bytes are not the file
        self._reply(p.encode(p.FileAck(sid, incoming.size)))
        self._reply(p.encode(done))
        self._incoming_over(sid, incoming)

    def _keep_direct_thread(self, thread: threading.Thread) -> None:
        """Start a direct-path thread and keep it for close() to join (the ended ones are let go)."""
        self._direct_threads = [t for t in self._direct_threads if t.is_alive()] + [thread]
        thread.start()

    def _fall_back(self, transfer: Transfer, reason: str) -> None:
        """Writer thread: the direct connection is not to be; the chunks go through the server."""
        transfer.fallback_reason = reason
        transfer.outgoing.direct_failed()
        self._events.put(DirectFallback(transfer.to, transfer.name, reason))

    def _send_direct(self, transfer: Transfer, address: tuple[str, int], pin: str = "") -> None:
        """Direct thread (sender): connect to the receiver, answer its proof, send the bytes (``pin``: over TLS,
        to the certificate whose SHA-256 the receiver's accept carried)."""
        outgoing = transfer.outgoing
        tls_sock: socket.socket | None = None
        try:
            sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            reason = (f"no direct connection to {format_address(address)} ({exc.strerror or exc});"
                      " sending through the server")
            self._reply(functools.partial(self._direct_fell_back, transfer, reason))
            return
        try:
            with sock:
                transfer._direct_sock = sock
                if transfer._finished.is_set():
                    return
                sock.settimeout(HANDSHAKE_TIMEOUT)  # the receiver speaks first; we write nothing before
                try:
                    answer = sender_answer(transfer.token, recv_exact(sock, NONCE_SIZE + PROOF_SIZE))
                except (OSError, IncompleteReadError):
                    answer = None
                if answer is None:
                    where = format_address(address)
                    reason = f"{where} did not prove it holds the token; sending through the server"
                    self._reply(functools.partial(self._direct_fell_back, transfer, reason))
                    return
                sock.sendall(answer)
                if pin:
                    try:
                        sock = tls_sock = wrap_pinned(sock, pin)  # it took the descriptor: closed in finally
                    except (TlsError, OSError) as exc:
                        reason = f"no TLS direct connection ({exc}); sending through the server"
                        self._reply(functools.partial(self._direct_fell_back, transfer, reason))
                        return
                    transfer._direct_sock = sock
                self._reply(functools.partial(outgoing.direct_connected))  # before any ack can come back
                sock.settimeout(IDLE_TIMEOUT)
                # A file object of our own (a dup of the descriptor): the writer may close the
                # transfer's file when it ends, while sendfile() is still running here.
                with os.fdopen(os.dup(transfer._file.fileno()), "rb") as file:
                    outgoing.sha256 = send_file(sock, file, outgoing.start_offset, outgoing.size)
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(IDLE_TIMEOUT)
                while sock.recv(4096):  # the receiver closes once it has verified: then we are done here
                    pass
        except Exception as exc:  # noqa: BLE001 - never a thread traceback; the transfer says why it failed
            log.debug("%s: direct send of %s ended: %r", self.nick, transfer.name, exc)
            if not transfer._finished.is_set():
                reason = f"direct connection to {transfer.to} broke: {exc}"
                self._reply(functools.partial(self._direct_broke, transfer, reason))
        finally:
            transfer._direct_sock = None
            if tls_sock is not None:
                tls_sock.close()

    def _direct_fell_back(self, transfer: Transfer, reason: str) -> None:
        """Writer thread: the direct connection could not be made."""
        if self._outgoing.get(transfer.outgoing.stream_id) is transfer:
            self._fall_back(transfer, reason)  # _pump (after every job) sends the chunks now

    def _direct_broke(self, transfer: Transfer, reason: str) -> None:
        """Writer thread: the direct connection broke mid-transfer: cancel it (a resume can follow)."""
        if self._outgoing.get(transfer.outgoing.stream_id) is transfer and not (transfer.done or transfer.failed):
            self._queue_file_frames(transfer, [transfer.outgoing.cancel(reason)])

