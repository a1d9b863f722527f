"""Id formats: a three-letter prefix and a ULID-style body, so ids sort by creation."""

from __future__ import annotations

import os
import re
import time

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(prefix: str) -> str:
    """A ULID-style id: 48 bits of milliseconds then 80 random bits, so ids sort by creation."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(CROCKFORD[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


_ID = re.compile(r"^[a-z]{3}_[0-9A-HJKMNP-TV-Z]{26}$")


def is_id(value: str, prefix: str) -> bool:
    """True if ``value`` has the shape ``new_id(prefix)`` makes (checked before any query)."""
    return value.startswith(prefix + "_") and _ID.match(value) is not None
