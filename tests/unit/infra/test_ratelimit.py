"""GCRA, the token bucket both stores run: bursts, reservations, and costs in segments."""

from __future__ import annotations

import pytest

from app.infra.ratelimit import Rate, gcra


def run(rate: Rate, costs: list[float], reserve: bool, now: float = 1000.0) -> list[float]:
    tat: float | None = None
    waits = []
    for cost in costs:
        tat, wait = gcra(tat, now, rate, cost, reserve)
        waits.append(round(wait, 6))
    return waits


def test_a_burst_goes_at_once_then_reservations_are_spaced_at_the_rate() -> None:
    waits = run(Rate(5, 5), [1] * 8, reserve=True)
    assert waits == [0, 0, 0, 0, 0, 0.2, 0.4, 0.6]


def test_without_reserving_a_refusal_leaves_the_bucket_alone() -> None:
    rate = Rate(5, 2)
    tat, _ = gcra(None, 0.0, rate, 1, False)
    tat, _ = gcra(tat, 0.0, rate, 1, False)
    after, wait = gcra(tat, 0.0, rate, 1, False)
    assert wait == pytest.approx(0.2) and after == tat
    # Once the wait has passed, it conforms.
    _, wait = gcra(tat, 0.2, rate, 1, False)
    assert wait == 0


def test_cost_is_counted_in_segments() -> None:
    waits = run(Rate(10, 10), [4, 4, 4, 4], reserve=True)
    assert waits == [0, 0, 0.2, 0.6]


def test_the_bucket_refills_with_time() -> None:
    rate = Rate(2, 2)
    tat, _ = gcra(None, 0.0, rate, 2, True)
    _, wait = gcra(tat, 0.5, rate, 1, True)
    assert wait == 0  # half a second refilled one token


@pytest.mark.parametrize(
    ("per_second", "burst", "expected"),
    [
        (None, None, None),
        (0, 5, None),
        (5, None, Rate(5, 5)),
        (0.5, None, Rate(0.5, 1)),
        (5, 20, Rate(5, 20)),
    ],
)
def test_rates_from_settings(
    per_second: float | None, burst: float | None, expected: Rate | None
) -> None:
    assert Rate.of(per_second, burst) == expected
