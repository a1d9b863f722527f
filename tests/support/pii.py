"""Looking for personal data anywhere in the database: in plaintext, or in a ciphertext
that our keys can open."""

from __future__ import annotations

import contextlib
import json

from app.infra.db import Database
from app.models import Base
from app.security.crypto import DecryptionError, keyring


def forms(phone: str) -> list[str]:
    """The ways a number appears in stored data: E.164, digits, form-encoded."""
    return [phone, phone.lstrip("+"), phone.replace("+", "%2B"), phone[2:]]


def leaks(db: Database, needles: list[str]) -> list[str]:
    """Every (table, column) whose value, or whose decryption, contains a needle."""
    found = []
    with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(table.select()).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    text = value if isinstance(value, str) else json.dumps(value, default=str)
                    candidates = [text]
                    if isinstance(value, str):
                        with contextlib.suppress(DecryptionError, ValueError):
                            candidates.append(keyring().decrypt(value))
                    if any(n in c for n in needles for c in candidates):
                        found.append(f"{table.name}.{column}")
    return found
