"""What the two link emulators share: a listening socket, a ``selectors`` loop on a
daemon thread of its own, and a waker that :meth:`ProxyLoop.close` uses to stop it.

:class:`chatlab.netem.LinkEmulator` (TCP) and :class:`chatlab.netem_udp.DatagramLink`
(UDP) each say how to resolve their target, open their listening socket, run
their loop and close their sockets; starting, stopping and the context manager
are here, once.
"""

from __future__ import annotations

import selectors
import socket
import threading
from typing import TypeVar

Address = tuple[str, int]

P = TypeVar("P", bound="ProxyLoop")

LISTENER = "listener"  # selector data tags for the two sockets that are not connections
WAKER = "waker"


class ProxyLoop:
    """A forwarder on loopback with its own loop thread; subclasses make it TCP or UDP.

    Args:
        target: ``(host, port)`` to forward to.
        listen: ``(host, port)`` to listen on; port 0 lets the OS choose a free
            port, read back from :attr:`address`.
    """

    THREAD_NAME = "chatlab-proxy"  # the loop thread is named THREAD_NAME-PORT
    DESCRIBED = "the proxy"  # in "... is not started"

    def __init__(self, target: Address, listen: Address) -> None:
        self.target = (target[0], int(target[1]))
        self.listen = (listen[0], int(listen[1]))
        self.error: BaseException | None = None  # set if the loop thread died of a bug
        self._address: Address | None = None
        self._listener: socket.socket | None = None
        self._waker_r: socket.socket | None = None
        self._waker_w: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def address(self) -> Address:
        """``(host, port)`` the forwarder listens on: use it instead of the target."""
        if self._address is None:
            raise RuntimeError(f"{self.DESCRIBED} is not started")
        return self._address

    @property
    def running(self) -> bool:
        """Whether the background thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def start(self: P) -> P:
        """Resolve the target, open the listening socket and start the loop thread.

        Returns:
            ``self``, so that ``link = LinkEmulator(...).start()`` works.

        Raises:
            RuntimeError: if already started.
            OSError: if the target cannot be resolved or ``listen`` cannot be bound.
        """
        if self._thread is not None or self._stopping:
            raise RuntimeError(f"a {type(self).__name__} can only be started once")
        try:
            self._resolve_target()
            self._listener = self._open_listener()
            self._address = self._listener.getsockname()[:2]
            # Wakes the loop from select() when close() is called.  A
            # socketpair, not os.pipe(): Windows can only select() sockets.
            self._waker_r, self._waker_w = socket.socketpair()
            self._waker_r.setblocking(False)
            self._waker_w.setblocking(False)
            self._selector = selectors.DefaultSelector()
            self._selector.register(self._listener, selectors.EVENT_READ, LISTENER)
            self._selector.register(self._waker_r, selectors.EVENT_READ, WAKER)
            # A daemon thread: a forwarder someone forgot to close must not
            # keep the interpreter alive at exit.
            thread = threading.Thread(target=self._run, name=f"{self.THREAD_NAME}-{self._address[1]}", daemon=True)
            thread.start()
            self._thread = thread
        except BaseException:
            self._close_everything()
            raise
        return self

    def close(self) -> None:
        """Stop the loop, close every socket and join the thread.  Safe to call twice."""
        self._stopping = True
        if self._thread is None:
            self._close_everything()  # never started, or start() failed half-way
            return
        try:
            self._waker_w.send(b"x")  # type: ignore[union-attr]  # set whenever _thread is
        except OSError:
            pass  # already closed (the loop has exited) or full (a wake-up is pending anyway)
        self._thread.join()

    def __enter__(self: P) -> P:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _drain_waker(self) -> None:
        assert self._waker_r is not None
        try:
            while self._waker_r.recv(1024):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _close_selector_sockets(self, socks: list[socket.socket | None]) -> None:
        """Unregister and close ``socks`` and our own three, then the selector (the loop thread, as it exits)."""
        for sock in [*socks, self._listener, self._waker_r, self._waker_w]:
            if sock is None:
                continue
            if self._selector is not None:
                try:
                    self._selector.unregister(sock)
                except (KeyError, ValueError):
                    pass
            sock.close()
        if self._selector is not None:
            self._selector.close()

    # what a forwarder says for itself
    def _resolve_target(self) -> None:
        raise NotImplementedError

    def _open_listener(self) -> socket.socket:
        raise NotImplementedError

    def _run(self) -> None:
        raise NotImplementedError

    def _close_everything(self) -> None:
        raise NotImplementedError


__all__ = ["ProxyLoop", "LISTENER", "WAKER", "Address"]
