"""``python -m chatlab send FILE --to NICK HOST:PORT``: send one file, with a progress bar."""

from __future__ import annotations

import argparse
import os
import sys
import time

from tqdm import tqdm

from .client import Client, Transfer
from .errors import TransferError
from .units import format_rate, format_size


def follow(transfer: Transfer, timeout: float, poll: float = 0.1) -> None:
    """Show a tqdm bar of the receiver's acknowledged bytes until the transfer ends.

    Raises:
        TransferError: the transfer failed; TimeoutError: it took longer than ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while not transfer.answered:  # no bar for an offer that is refused (e.g. nobody by that name is online)
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:g} s: {transfer.to} did not answer the offer")
        time.sleep(poll)
    if transfer.failed:
        transfer.wait(timeout=max(0.0, deadline - time.monotonic()))  # raises the TransferError that says why
    # unit_divisor=1000: decimal units (MB = 10**6 bytes), as everywhere in chatlab (chatlab.units)
    with tqdm(total=transfer.size, unit="B", unit_scale=True, unit_divisor=1000, desc=f"{transfer.name} -> {transfer.to}") as bar:
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
    """``chatlab send``: errors go to stderr, one line each, with exit code 1."""
    if not os.path.isfile(args.file):
        print(f"chatlab send: no such file: {args.file}", file=sys.stderr)
        return 1
    nick = args.nick or f"sender{os.getpid() % 10000}"
    with Client.connect(args.address, nick=nick) as client:
        transfer = client.send_file(args.file, to=args.to, strategy=args.strategy,
                                    via="direct" if getattr(args, "direct", False) else "server")
        try:
            follow(transfer, args.timeout)
        except (TransferError, TimeoutError) as exc:
            print(f"chatlab send: {exc}", file=sys.stderr)
            return 1
        stats = transfer.stats
        resumed = f", resuming after the {format_size(transfer.resumed_from)} already there" if transfer.resumed_from else ""
        way = "direct" if transfer.via == "direct" else f"through the server, {args.strategy}"
        if transfer.fallback_reason:
            way += f" ({transfer.fallback_reason})"
        print(f"sent {args.file} ({format_size(transfer.size)}) to {args.to}{resumed}: {format_size(stats.bytes)} in "
              f"{stats.seconds:.2f} s ({format_rate(stats.bytes, stats.seconds)}, {way}); the receiver verified its SHA-256")
    return 0
