"""One job, four servers: notebook 08.

The job: a broadcast room over chatlab's framing.  Every frame a client
sends (a whole frame: header and payload) goes to every connected client,
the sender included.  The same job is done four ways:

* :mod:`.blocking`: one client at a time (fails with two clients);
* :mod:`.threaded`: a thread per client and a lock around the room;
* :mod:`.selector`: one thread, non-blocking sockets, ``selectors``
  (how chatlab's own server works);
* :mod:`.asyncio_server`: ``asyncio`` streams, a coroutine per client.

Each module has ``serve(listener, stop)``: it serves connections accepted
on the listening socket ``listener`` until the :class:`threading.Event`
``stop`` is set, then closes them.  :func:`running` starts one in a thread::

    from chatlab.fourways import running
    with running("selector") as address:
        sock = socket.create_connection(address)

``python -m chatlab.fourways KIND`` runs one in its own process (the
measurements in :mod:`.measure` do, so each server's memory, threads and
CPU time are its own).
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from typing import Callable, Iterator

from . import asyncio_server, blocking, selector, threaded

Address = tuple[str, int]
Serve = Callable[[socket.socket, threading.Event], None]

SERVERS: dict[str, Serve] = {
    "blocking": blocking.serve,
    "threaded": threaded.serve,
    "selector": selector.serve,
    "asyncio": asyncio_server.serve,
}

__all__ = ["SERVERS", "running", "open_listener", "source"]


def source(kind: str) -> str:
    """The code of one server module, without its docstring, for reading in a notebook."""
    import inspect

    module = SERVERS[kind].__module__
    text = inspect.getsource(sys.modules[module])
    body = text.split('"""', 2)[2] if text.startswith('"""') else text
    lines = [line for line in body.strip("\n").splitlines() if line != "from __future__ import annotations"]
    return "\n".join(lines).strip("\n")


def open_listener(host: str = "127.0.0.1", port: int = 0, backlog: int = 512) -> socket.socket:
    """A listening TCP socket on ``host``; port 0 lets the OS pick a free one."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((host, port))
        listener.listen(backlog)
    except OSError:
        listener.close()
        raise
    return listener


@contextlib.contextmanager
def running(kind: str | Serve, host: str = "127.0.0.1") -> Iterator[Address]:
    """Run one of the servers (a name from :data:`SERVERS`, or any ``serve``
    function) in a background thread; yield its ``(host, port)``; stop it and
    close its listener on exit, even when the body raises."""
    serve = SERVERS[kind] if isinstance(kind, str) else kind
    listener = open_listener(host)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            serve(listener, stop)
        except BaseException as exc:  # reported by the with-statement, never a thread traceback
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"fourways-{getattr(serve, '__module__', 'serve')}", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[:2]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
    if errors:
        raise RuntimeError(f"the server failed: {errors[0]!r}") from errors[0]
