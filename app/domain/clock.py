"""The clock: aware datetimes in UTC inside (local time exists only for quiet hours)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
