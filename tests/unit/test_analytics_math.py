"""The analytics histogram: percentiles interpolated within their bucket, and message ids'
creation times read back (the intent-to-accepted histogram uses them)."""

from __future__ import annotations

import bisect
import math
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from app.domain.ids import new_id
from app.observability.metrics import created_at_of
from app.reports.analytics import LATENCY_BOUNDS, percentile


def histogram(values: list[float]) -> list[int]:
    counts = [0] * len(LATENCY_BOUNDS)
    for v in values:
        counts[bisect.bisect_left(LATENCY_BOUNDS, v)] += 1
    return counts


def test_no_deliveries_no_percentile() -> None:
    assert percentile([0] * len(LATENCY_BOUNDS), 0.5) is None


def test_one_bucket_interpolates() -> None:
    counts = histogram([4.0] * 10)  # all in (3, 5]
    assert percentile(counts, 0.5) == 4.0
    assert percentile(counts, 0.95) == 4.9


def edges(value: float) -> tuple[float, float]:
    i = bisect.bisect_left(LATENCY_BOUNDS, value)
    return (LATENCY_BOUNDS[i - 1] if i else 0.0), LATENCY_BOUNDS[i]


@given(st.lists(st.floats(min_value=0, max_value=80_000), min_size=1, max_size=200))
def test_percentiles_fall_between_the_buckets_of_their_neighbours(values: list[float]) -> None:
    """The estimate lies within the buckets of the values ranked just below and just above
    the quantile: the most a histogram can promise."""
    ordered = sorted(values)
    n = len(ordered)
    for q in (0.5, 0.95):
        estimate = percentile(histogram(values), q)
        assert estimate is not None
        rank = math.ceil(q * n)
        low, _ = edges(ordered[max(0, rank - 1)])
        _, high = edges(ordered[min(n - 1, rank)])
        assert low - 0.05 <= estimate <= high + 0.05


def test_a_message_id_tells_when_it_was_made() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    made = created_at_of(new_id("msg"))
    assert made is not None and before <= made <= datetime.now(UTC)
    assert created_at_of("msg_short") is None
    assert created_at_of("msg_" + "U" * 26) is None  # U is not Crockford base32
