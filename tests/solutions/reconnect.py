"""Notebook 09's exercise: a client that reconnects and resumes (the notebook's solution should hold the same body)."""

from __future__ import annotations

import random
import socket
import time
from typing import Callable

from chatlab.core import protocol as p

FIRST_WAIT = 0.05  # seconds before the first retry
MAX_WAIT = 2.0  # the longest wait between two attempts


def next_count(sock: socket.socket, decoder: p.MessageDecoder) -> int:
    """The server's next count (a PONG's token); EOFError when it closed."""
    while True:
        for message in decoder:
            if isinstance(message, p.Pong):
                return message.token
        data = sock.recv(4096)
        if not data:
            raise EOFError("the server closed the connection")
        decoder.feed(data)


def upload_lines(connect: Callable[[], socket.socket], lines: list[str]) -> None:
    wait = FIRST_WAIT
    while True:
        try:
            sock = connect()
        except (ConnectionRefusedError, TimeoutError):
            time.sleep(random.uniform(wait / 2, wait))  # not up yet, or no answer: back off, with jitter
            wait = min(2 * wait, MAX_WAIT)
            continue
        wait = FIRST_WAIT  # connected: the next failure starts from a short wait again
        try:
            with sock:
                sock.settimeout(1.0)  # a silent peer must not hold us forever
                decoder = p.MessageDecoder()
                held = next_count(sock, decoder)  # where the server says to resume
                while held < len(lines):
                    sock.sendall(p.encode(p.Say(lines[held])))
                    held = next_count(sock, decoder)
                return
        except (ConnectionError, TimeoutError, EOFError):
            continue  # reset, closed or silent: reconnect and ask where to resume
