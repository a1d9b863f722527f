"""When to try again: our own retry delays (exponential, capped, with jitter so that retries do
not arrive in waves), and a peer's ``Retry-After`` (providers and CRMs both send one)."""

from __future__ import annotations

import random
from datetime import timedelta


def retry_delay(
    attempt: int, base: float, cap: float, rng: random.Random | None = None
) -> timedelta:
    """Equal jitter: half the exponential step, plus a random part of the other half."""
    exponent = min(max(0, attempt - 1), 60)  # past 2**60 the cap wins anyway; avoid float overflow
    step = min(cap, base * (2**exponent))
    r = rng or random
    return timedelta(seconds=step / 2 + r.uniform(0, step / 2))


def retry_after_seconds(value: str | None, default: float = 1.0) -> float:
    """A ``Retry-After`` header in seconds (dates and junk fall back to ``default``)."""
    try:
        return min(3600.0, max(0.0, float(value))) if value else default
    except ValueError:
        return default
