"""Percentiles, one contract for the whole kit (the benchmarks, the experiments, the four servers).

``percentile(values, q)``: ``q`` from 0 to 100, linear interpolation between
the two nearest ranks (numpy's default, ``method="linear"``), ``None`` when
there are no values.  A quantile ``q`` in 0..1 is ``percentile(values, 100 * q)``.
Pure: imports nothing but :mod:`math`, so the sans-I/O parts may use it.
"""

from __future__ import annotations

import math
from typing import Sequence

__all__ = ["percentile", "median"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (``q`` from 0 to 100) by linear interpolation; None for no values.

    >>> percentile([1, 2, 3, 4], 50)
    2.5
    >>> percentile([10, 20, 30], 100), percentile([], 99)
    (30, None)

    Raises:
        ValueError: ``q`` is outside 0..100.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile: q must be between 0 and 100, got {q!r}")
    if not values:
        return None
    data = sorted(values)
    k = (len(data) - 1) * q / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(data) - 1)
    if hi == lo:
        return data[lo]
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def median(values: Sequence[float]) -> float | None:
    """``percentile(values, 50)``."""
    return percentile(values, 50)
