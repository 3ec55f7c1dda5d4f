"""``python -m chatlab send FILE --to NICK HOST:PORT``: send one file, with a progress bar."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TextIO

from tqdm import tqdm

from .client import Client, Transfer
from .errors import TransferError
from .i18n import _
from .units import format_rate, format_size

# Sizes in decimal units with their "B" (5.00MB, not tqdm's bare 5.00M), as chatlab.units prints them.
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}B/{total_fmt}B [{elapsed}<{remaining}, {rate_fmt}]"


def follow(transfer: Transfer, timeout: float, poll: float = 0.1, file: TextIO | None = None) -> None:
    """Show a progress bar of the receiver's acknowledged bytes until the transfer ends.

    The bar counts only this session's bytes (a resumed transfer starts the bar at
    what the receiver already had), and its clock is the transfer's own (from the
    accept to the receiver's confirmation), so its last rate is the summary's.  No
    bar when the output is not a terminal (``disable=None``): piped to a file, the
    output holds the summary, not carriage-return fragments.

    Raises:
        TransferError: the transfer failed; TimeoutError: it took longer than ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while not transfer.answered:  # no bar for an offer that is refused (e.g. nobody by that name is online)
        if time.monotonic() > deadline:
            raise TimeoutError(_("gave up after {seconds:g} s: {nick} did not answer the offer").format(
                seconds=timeout, nick=transfer.to))
        time.sleep(poll)
    if transfer.failed:
        transfer.wait(timeout=max(0.0, deadline - time.monotonic()))  # raises the TransferError that says why
    # unit_divisor=1000: decimal units (MB = 10**6 bytes), as everywhere in chatlab (chatlab.units)
    with tqdm(total=transfer.size, initial=transfer.resumed_from, unit="B", unit_scale=True, unit_divisor=1000,
              bar_format=BAR_FORMAT, desc=f"{transfer.name} -> {transfer.to}", file=file or sys.stderr,
              disable=None if file is None else False) as bar:
        while True:
            try:
                stats = transfer.wait(timeout=poll)
            except TimeoutError:
                bar.update(transfer.acked - bar.n)
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        _("gave up after {seconds:g} s with {done} of {size} bytes delivered").format(
                            seconds=timeout, done=transfer.acked, size=transfer.size)
                    ) from None
                continue
            # The transfer's own clock: its last rate is stats.bytes / stats.seconds, the summary's.
            if not bar.disable:  # tqdm's clock is time.time()
                bar.start_t = time.time() - stats.seconds
            bar.update(transfer.size - bar.n)
            return


def run_send(args: argparse.Namespace) -> int:
    """``chatlab send``: errors go to stderr, one line each, with exit code 1."""
    if not os.path.isfile(args.file):
        print("chatlab send: " + _("no such file: {path}").format(path=args.file), file=sys.stderr)
        return 1
    nick = args.nick or f"sender{os.getpid() % 10000}"
    tls = {"tls": True, "cafile": args.cafile} if getattr(args, "tls", False) or getattr(args, "cafile", None) else {}
    with Client.connect(args.address, nick=nick, **tls) as client:
        transfer = client.send_file(args.file, to=args.to, strategy=args.strategy,
                                    via="direct" if getattr(args, "direct", False) else "server")
        try:
            follow(transfer, args.timeout)
        except (TransferError, TimeoutError) as exc:
            print(f"chatlab send: {exc}", file=sys.stderr)
            return 1
        stats = transfer.stats
        resumed = _(", resuming after the {size} already there").format(
            size=format_size(transfer.resumed_from)) if transfer.resumed_from else ""
        way = (_("direct") if transfer.via == "direct"
               else _("through the server, {strategy}").format(strategy=args.strategy))
        if transfer.fallback_reason:
            way += _(" ({reason})").format(reason=transfer.fallback_reason)
        print(_("sent {file} ({size}) to {nick}{resumed}: {sent} in {seconds:.2f} s ({rate}, {way});"
                " the receiver verified its SHA-256").format(
            file=args.file, size=format_size(transfer.size), nick=args.to, resumed=resumed,
            sent=format_size(stats.bytes), seconds=stats.seconds, rate=format_rate(stats.bytes, stats.seconds),
            way=way))
    return 0
