"""Reference solution for the exercise of notebook 05 (a chat bot).

Try the exercise before reading this.  ``check_bot(run_bot)`` passes.
"""

from __future__ import annotations

import threading
import time

from chatlab.client import Client
from chatlab.core.protocol import ChatMessage, PrivateMessage
from chatlab.errors import ConnectionClosed

__all__ = ["run_bot", "answer"]

COMMAND = "!time"


def answer() -> str:
    """What the bot says: the local time."""
    return time.strftime("the time is %H:%M:%S")


def run_bot(bot: Client, stop: threading.Event) -> None:
    """Answer ``!time`` in the room and in whispers until ``stop`` is set or the connection closes."""
    while not stop.is_set():
        try:
            # A short timeout, so that stop is noticed within 0.2 s even when nobody talks.
            message = bot.wait_for((ChatMessage, PrivateMessage), timeout=0.2)
        except TimeoutError:
            continue
        except ConnectionClosed:  # the server is gone: nothing more will come
            return
        if message.sender == bot.nick:  # our own lines and whispers come back to us too
            continue
        if message.text.strip() != COMMAND:
            continue
        try:
            if isinstance(message, PrivateMessage):
                bot.whisper(message.sender, answer())  # a private question gets a private answer
            else:
                bot.say(answer())  # to the room we are in, which is where the question was asked
        except ConnectionClosed:
            return
