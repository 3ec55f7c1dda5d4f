"""Someone on the path: a relay that keeps a copy of every byte it passes on (notebook 11).

On a shared network (the classroom's Wi-Fi, a switch port mirrored to a laptop)
anyone can read what crosses it.  A capture shows that after the fact; these two
relays show it live, on loopback, without capture rights:

* :class:`Wiretap` passes bytes through untouched and keeps a copy: what a
  passive eavesdropper learns.  With TLS it learns only ciphertext.
* :class:`Interceptor` is an active machine in the middle: it answers the
  client's TLS handshake with a certificate of its own, opens its own TLS
  connection to the real server, and reads everything in between.  A client that
  checks certificates refuses it at the handshake; a client with
  ``verify_mode=CERT_NONE`` talks to it happily.

Both listen on a free loopback port (``address``), serve any number of
connections, and stop every thread and socket when closed (use ``with``).
"""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Callable

__all__ = ["Wiretap", "Interceptor"]

TIMEOUT = 5.0  # seconds a relay waits to reach the server or for a handshake
POLL = 0.02  # the interceptor looks at each end this often


class _Relay:
    """Accept clients on a free port; for each, connect to ``target`` and pump bytes both ways, keeping a copy."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.upstream = bytearray()  # client -> server, as the relay saw it
        self.downstream = bytearray()  # server -> client
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL * 10)  # close() from another thread does not wake accept(): look up now and then
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._start(self._accept_loop, "accept")

    def _start(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread_name = f"chatlab-{type(self).__name__.lower()}-{name}"
        thread = threading.Thread(target=target, args=args, name=thread_name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _keep(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _addr = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return  # closed
            self._keep(client)
            self._start(self._serve, "conn", client)

    def _serve(self, client: socket.socket) -> None:
        try:
            client, server = self._connect_both(client)
        except (OSError, ssl.SSLError):
            client.close()
            return
        self._start(self._pump, "up", client, server, self.upstream)
        self._pump(server, client, self.downstream)

    def _connect_both(self, client: socket.socket) -> tuple[socket.socket, socket.socket]:
        return client, self._keep(socket.create_connection(self.target, timeout=TIMEOUT))

    def _pump(self, source: socket.socket, sink: socket.socket, copy: bytearray) -> None:
        source.settimeout(None)
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                with self._lock:
                    copy += data
                sink.sendall(data)
        except (OSError, ssl.SSLError):
            pass  # either end went away, or close() shut the sockets
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def heard(self, needle: bytes) -> bool:
        """Did ``needle`` cross the relay in either direction, as readable bytes?"""
        with self._lock:
            return needle in self.upstream or needle in self.downstream

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in threads:
            thread.join(TIMEOUT)

    def __enter__(self) -> _Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Wiretap(_Relay):
    """A passive eavesdropper: bytes pass untouched, and a copy stays in ``upstream``/``downstream``.

    Example::

        with Wiretap(server.address) as tap, chatlab.Client.connect(tap.address, "alice") as alice:
            alice.join("secret", password="tulip")
        tap.heard(b"tulip")        # True: the room key crossed the network in the clear
    """


class Interceptor(_Relay):
    """An active machine in the middle: TLS to the client with its own certificate, TLS onward to the server.

    ``cert``/``key`` are the interceptor's own certificate (``chatlab.certs`` can
    make one from a CA nobody trusts).  ``upstream``/``downstream`` hold the
    *plaintext*: everything a client that accepted the certificate said.
    ``refused`` counts the clients that stopped at the handshake.
    """

    def __init__(self, target: tuple[str, int], cert: str, key: str) -> None:
        self._client_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._client_side.load_cert_chain(cert, key)
        self._server_side = ssl._create_unverified_context()  # the interceptor does not care who the server is
        self.refused = 0
        super().__init__(target)

    def _connect_both(self, client: socket.socket) -> tuple[socket.socket, socket.socket]:
        client.settimeout(TIMEOUT)
        try:
            tls_client = self._keep(self._client_side.wrap_socket(client, server_side=True))
        except (OSError, ssl.SSLError):
            with self._lock:
                self.refused += 1  # the client checked the certificate and hung up
            raise
        raw = socket.create_connection(self.target, timeout=TIMEOUT)
        return tls_client, self._keep(self._server_side.wrap_socket(raw, server_hostname=self.target[0]))

    def _serve(self, client: socket.socket) -> None:
        """One thread per connection, taking turns at both ends: an SSL socket must not be
        read in one thread while another writes it (OpenSSL's objects are not thread-safe)."""
        try:
            client, server = self._connect_both(client)
        except (OSError, ssl.SSLError):
            client.close()
            return
        ends = [(client, server, self.upstream), (server, client, self.downstream)]
        for sock in (client, server):
            sock.settimeout(POLL)
        try:
            while not self._closed.is_set():
                for source, sink, copy in ends:
                    try:
                        data = source.recv(65536)
                    except (socket.timeout, ssl.SSLWantReadError):
                        continue
                    if not data:
                        return
                    with self._lock:
                        copy += data
                    sink.sendall(data)
        except (OSError, ssl.SSLError):
            pass  # either end went away, or close() shut the sockets
        finally:
            for sock in (client, server):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
