"""``chatlab.stats.percentile``: the one percentile of the kit (q from 0 to 100, linear interpolation)."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatlab.stats import median, percentile

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


def test_linear_interpolation_between_ranks():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([4, 1, 3, 2], 0) == 1 and percentile([4, 1, 3, 2], 100) == 4
    assert percentile([10, 20], 25) == 12.5
    assert percentile([7], 99) == 7
    assert median([3, 1, 2]) == 2


def test_no_values_is_none_not_nan():
    assert percentile([], 50) is None
    assert median([]) is None


@pytest.mark.parametrize("q", [-1, 100.5, -0.001])
def test_q_outside_0_to_100_is_refused(q):
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0, 2.0], q)


@given(st.lists(finite, min_size=2, max_size=50), st.integers(min_value=1, max_value=99))
def test_agrees_with_the_standard_library(values, k):
    """The same as ``statistics.quantiles(method="inclusive")`` (and numpy's default)."""
    expected = statistics.quantiles(values, n=100, method="inclusive")[k - 1]
    assert math.isclose(percentile(values, k), expected, rel_tol=1e-9, abs_tol=1e-6)


def test_the_kit_has_one_percentile():
    from chatlab.bench import common

    assert common.percentile is percentile
