"""Reference solution for notebook 07's exercise: a two-priority writer (chat before file chunks).

The same code sits between the solution markers of the notebook's exercise cell.
"""

from __future__ import annotations

import itertools
import queue
import socket
import threading

CHAT, CHUNK = 0, 1  # lower goes first


class TwoPriorityWriter:
    """One thread sends every frame on ``sock``; a waiting chat frame goes before any waiting chunk."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        # (priority, sequence number, frame): the sequence number keeps each priority first-in-first-out
        # and means the frames themselves are never compared.
        self._queue: queue.PriorityQueue[tuple[int, int, bytes]] = queue.PriorityQueue()
        self._order = itertools.count()

    def send_chat(self, frame: bytes) -> None:
        self._queue.put((CHAT, next(self._order), frame))

    def send_chunk(self, frame: bytes) -> None:
        self._queue.put((CHUNK, next(self._order), frame))

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                _, _, frame = self._queue.get(timeout=0.05)  # a timeout, so that stop is noticed
            except queue.Empty:
                continue
            self.sock.sendall(frame)  # the only thread that sends: frames go out whole, no lock needed
