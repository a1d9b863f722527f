"""Console helpers shared by the in-process and the browser tests."""

from __future__ import annotations

import re
import secrets

from app.infra.db import Database
from app.security.console_users import create_user

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_user(db: Database, role: str) -> tuple[str, str]:
    """A new console user with ``role``: (username, password)."""
    username = f"{role}-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    with db.session() as s:
        create_user(s, username, password, role)
    return username, password


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)
