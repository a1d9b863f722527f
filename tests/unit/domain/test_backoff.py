"""Retry delays: exponential, capped, with equal jitter."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from app.domain.retries import retry_delay


def step(attempt: int, base: float, cap: float) -> float:
    return min(cap, base * 2 ** max(0, attempt - 1))


@given(
    attempt=st.integers(min_value=-3, max_value=64),
    base=st.floats(min_value=0.1, max_value=60),
    cap=st.floats(min_value=1, max_value=3600),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_is_within_half_step_and_step(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    delay = retry_delay(attempt, base, cap, random.Random(seed)).total_seconds()
    full = step(attempt, base, cap)

    assert full / 2 - 1e-6 <= delay <= full + 1e-6
    assert delay <= cap + 1e-6


@given(seed=st.integers(min_value=0, max_value=2**32))
def test_delays_grow_until_the_cap(seed: int) -> None:
    rng = random.Random(seed)
    delays = [retry_delay(n, 5.0, 900.0, rng) for n in range(1, 12)]

    # While the step still doubles, each delay's floor is the previous delay's ceiling.
    assert all(a <= b for a, b in itertools.pairwise(delays[:8]))
    assert delays[0] <= timedelta(seconds=5)
    assert delays[6] >= timedelta(seconds=160)  # step 320 s, at least half of it
    assert all(timedelta(seconds=450) <= d <= timedelta(seconds=900) for d in delays[8:])


def test_delays_are_capped() -> None:
    for attempt in (20, 50, 100):
        assert retry_delay(attempt, 5.0, 900.0, random.Random(attempt)) <= timedelta(seconds=900)


def test_delays_have_jitter() -> None:
    seen = {retry_delay(4, 5.0, 900.0, random.Random(seed)) for seed in range(20)}

    assert len(seen) > 10


def test_jitter_is_repeatable_with_the_same_seed() -> None:
    assert retry_delay(4, 5.0, 900.0, random.Random(7)) == retry_delay(
        4, 5.0, 900.0, random.Random(7)
    )


def test_first_attempts_use_the_base() -> None:
    for attempt in (-1, 0, 1):
        delay = retry_delay(attempt, 8.0, 900.0, random.Random(1))
        assert timedelta(seconds=4) <= delay <= timedelta(seconds=8)


def test_huge_attempt_numbers_are_capped() -> None:
    assert retry_delay(1100, 5.0, 900.0, random.Random(1)) <= timedelta(seconds=900)
