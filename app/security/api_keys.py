"""API keys: shown once, stored as a SHA-256 hash (they are random, so no slow hash is needed)."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "sb_live_"
KNOWN_SCOPES = frozenset(
    {
        "messages:write",
        "messages:read",
        "consents:write",
        "consents:read",
        "templates:write",
        "admin",
    }
)


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(raw: str) -> tuple[str, ...]:
    scopes = tuple(s.strip() for s in raw.split(",") if s.strip())
    unknown = set(scopes) - KNOWN_SCOPES
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))}")
    if not scopes:
        raise ValueError("at least one scope is required")
    return scopes
