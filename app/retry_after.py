"""Reading an HTTP ``Retry-After`` header (providers and CRMs both send one)."""

from __future__ import annotations


def retry_after_seconds(value: str | None, default: float = 1.0) -> float:
    """A ``Retry-After`` header in seconds (dates and junk fall back to ``default``)."""
    try:
        return min(3600.0, max(0.0, float(value))) if value else default
    except ValueError:
        return default
