"""Ids made a batch at a time have the shape, the order and the clock of ids made one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from freezegun import freeze_time

from app.domain.ids import CROCKFORD, is_id, new_id, new_ids
from app.observability.metrics import created_at_of


def test_a_batch_of_ids_has_the_shape_of_one() -> None:
    made = new_ids("msg", 1000)
    assert len(made) == len(set(made)) == 1000
    assert all(is_id(i, "msg") for i in made)
    assert new_ids("con", 0) == []


def test_a_batch_carries_the_clock_as_new_id_does() -> None:
    at = datetime(2026, 12, 8, 9, 30, 15, 123000, tzinfo=UTC)
    with freeze_time(at):
        one, batch = new_id("msg"), new_ids("msg", 5)
    assert created_at_of(one) == at
    assert {created_at_of(i) for i in batch} == {at}
    # The same 48 bits of milliseconds lead both, so they sort together by time.
    assert {i[:14] for i in batch} == {one[:14]}
    with freeze_time(at + timedelta(milliseconds=1)):
        later = new_ids("msg", 3)
    assert max(batch) < min(later)


def test_the_random_part_uses_the_whole_alphabet() -> None:
    """80 random bits a batch id, encoded as new_id encodes them: no character out of
    Crockford's alphabet, and every one of its 32 used across a batch."""
    tails = "".join(i[14:] for i in new_ids("msg", 500))
    assert set(tails) == set(CROCKFORD)
