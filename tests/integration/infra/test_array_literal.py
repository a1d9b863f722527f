"""Arrays sent as one literal come back from Postgres exactly as given: quotes, backslashes,
commas, braces, the word NULL, empty text, NULL itself, unicode, times with their zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from app.infra.db import Database, array_literal

TRICKY = ['a"b', "back\\slash", "a,b", "{x}", "NULL", "null", "", " lead", "trail ", "é☃"]


@pytest.fixture(autouse=True)
def _postgres_only(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("array literals are Postgres's")


def _round_trip(db: Database, values: list[object], kind: str) -> list[object]:
    with db.engine.connect() as conn:
        query = text(f"SELECT unnest(CAST(:a AS {kind}[]))")
        return list(conn.execute(query, {"a": array_literal(values)}).scalars())


def test_tricky_text_and_null_come_back_as_given(db: Database) -> None:
    values: list[object] = [*TRICKY, None]
    assert _round_trip(db, values, "varchar") == values


def test_numbers_and_times_keep_their_values(db: Database) -> None:
    assert _round_trip(db, [1, None, 2**62], "bigint") == [1, None, 2**62]
    at = datetime(2026, 12, 8, 9, 30, 15, 123456, tzinfo=UTC)
    east = at.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert _round_trip(db, [at, east, None], "timestamptz") == [at, at, None]


# Any text Postgres can hold: no NUL, no lone surrogate (not UTF-8).
_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), _TEXT), max_size=20))
def test_any_text_comes_back_as_given(db: Database, values: list[str | None]) -> None:
    assert _round_trip(db, list(values), "text") == values
