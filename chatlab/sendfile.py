"""``python -m chatlab send FILE --to NICK HOST:PORT``: send one file, with a progress bar."""

from __future__ import annotations

import argparse
import os
import time

from tqdm import tqdm

from .client import Client, Transfer
from .errors import TransferError


def follow(transfer: Transfer, timeout: float, poll: float = 0.1) -> None:
    """Show a tqdm bar of the receiver's acknowledged bytes until the transfer ends.

    Raises:
        TransferError: the transfer failed; TimeoutError: it took longer than ``timeout``.
    """
    deadline = time.monotonic() + timeout
    with tqdm(total=transfer.size, unit="B", unit_scale=True, unit_divisor=1024, desc=f"{transfer.name} -> {transfer.to}") as bar:
        while True:
            try:
                transfer.wait(timeout=poll)
                bar.update(transfer.size - bar.n)
                return
            except TimeoutError:
                bar.update(transfer.acked - bar.n)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"gave up after {timeout:g} s with {transfer.acked} of {transfer.size} bytes delivered") from None


def run_send(args: argparse.Namespace) -> int:
    if not os.path.isfile(args.file):
        print(f"chatlab send: no such file: {args.file}")
        return 1
    nick = args.nick or f"sender{os.getpid() % 10000}"
    with Client.connect(args.address, nick=nick) as client:
        transfer = client.send_file(args.file, to=args.to, strategy=args.strategy)
        try:
            follow(transfer, args.timeout)
        except TransferError as exc:
            print(f"chatlab send: {exc}")
            return 1
        stats = transfer.stats
        print(f"sent {stats.bytes} bytes to {args.to} in {stats.seconds:.2f} s ({stats.mb_per_s:.1f} MB/s, {args.strategy}); "
              "the receiver verified its SHA-256")
    return 0
