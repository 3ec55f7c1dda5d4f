"""Sizes and speeds for people, in one convention: decimal units.

1 KB = 1,000 bytes, 1 MB = 1,000,000 bytes, 1 GB = 10**9 bytes, as disks,
network links and ``TransferStats.mb_per_s`` count them.  (Binary units,
1 MiB = 1,048,576 bytes, are what a 20 MB file would show as "19.1M".)  The
terminal client, ``chatlab send`` and the demo all print through these two
functions, so a size reads the same everywhere.
"""

from __future__ import annotations

__all__ = ["format_size", "format_rate"]


def format_size(size: int) -> str:
    """``1536`` -> ``1.5 KB``; below 1 KB, exact: ``999 bytes``.

    >>> format_size(20_000_000)
    '20.0 MB'
    """
    if size < 1000:
        return f"{size} byte" if size == 1 else f"{size} bytes"
    value = float(size)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.95 or unit == "TB":  # 999,960 bytes is "1.0 MB", not "1000.0 KB"
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def format_rate(size: int, seconds: float) -> str:
    """``size`` bytes in ``seconds`` as a speed: ``8.3 MB/s`` (decimal megabytes per second)."""
    rate = size / seconds / 1e6 if seconds > 0 else 0.0
    return f"{rate:.1f} MB/s"
