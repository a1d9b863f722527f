"""Publishing committed outbox rows: wakes coalesced per batch, and the publisher thread."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from app.infra.outbox import Handoff, Written, publish_rows


class FakeCelery:
    def __init__(self, fail_on: str | None = None) -> None:
        self.sent: list[tuple[str, list[Any], str]] = []
        self.fail_on = fail_on

    def send_task(self, name: str, args: list[Any], queue: str, **_: Any) -> None:
        if args and args[0] == self.fail_on:
            raise ConnectionError("broker away")
        self.sent.append((name, args, queue))


class FakeDeletes:
    def __init__(self) -> None:
        self.ids: list[int] = []

    def add(self, ids: Sequence[int]) -> None:
        self.ids.extend(ids)


class FakeWakes:
    """Flags as Redis keeps them; counts the round trips."""

    def __init__(self, waiting: set[tuple[str, str]] | None = None) -> None:
        self.flags = set(waiting or ())
        self.round_trips = 0
        self.cleared: list[tuple[str, str]] = []

    def to_publish(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        self.round_trips += 1
        owed = {k for k in keys if k not in self.flags}
        self.flags |= owed
        return owed

    def clear(self, queue: str, key: str) -> None:
        self.flags.discard((queue, key))
        self.cleared.append((queue, key))


def row(n: int, queue: str = "dispatch.normal") -> Written:
    return Written(n, "dispatch_message", queue, [f"msg_{n}"])


def test_one_wake_per_key_and_one_flag_round_trip_per_batch() -> None:
    celery, deletes, wakes = FakeCelery(), FakeDeletes(), FakeWakes()
    rows = [(row(1), "ten_a"), (row(2), "ten_a"), (row(3), "ten_b"), (row(4, "intake"), None)]
    assert publish_rows(celery, deletes, rows, wakes) == 4  # type: ignore[arg-type]
    # ten_a's second row is covered by the first's wake: committed before it runs.
    assert [args[0] for _, args, _ in celery.sent] == ["msg_1", "msg_3", "msg_4"]
    assert wakes.round_trips == 1
    assert deletes.ids == [1, 2, 3, 4]


def test_a_waiting_wake_covers_the_batch() -> None:
    celery, deletes = FakeCelery(), FakeDeletes()
    wakes = FakeWakes(waiting={("dispatch.normal", "ten_a")})
    assert publish_rows(celery, deletes, [(row(1), "ten_a"), (row(2), "ten_a")], wakes) == 2  # type: ignore[arg-type]
    assert celery.sent == []  # the waiting wake will claim both
    assert deletes.ids == [1, 2]


def test_a_broker_failure_leaves_the_rest_and_clears_the_flags_it_set() -> None:
    celery, deletes, wakes = FakeCelery(fail_on="msg_2"), FakeDeletes(), FakeWakes()
    rows = [(row(1), "ten_a"), (row(2), "ten_b"), (row(3), "ten_c")]
    assert publish_rows(celery, deletes, rows, wakes) == 1  # type: ignore[arg-type]
    assert deletes.ids == [1]  # rows 2 and 3 stay in the outbox for the relay
    # No wake went for ten_b or ten_c: their flags go, so the next commit publishes one.
    assert sorted(wakes.cleared) == [("dispatch.normal", "ten_b"), ("dispatch.normal", "ten_c")]
    assert wakes.flags == {("dispatch.normal", "ten_a")}


def test_without_redis_each_key_still_goes_once_per_batch() -> None:
    celery, deletes = FakeCelery(), FakeDeletes()
    assert publish_rows(celery, deletes, [(row(1), "k"), (row(2), "k")], None) == 2  # type: ignore[arg-type]
    assert len(celery.sent) == 1


def test_handoff_publishes_from_its_own_thread_in_batches() -> None:
    batches: list[list[int]] = []
    threads: set[str] = set()
    gate = threading.Event()

    def publish(rows: Sequence[tuple[Any, str | None]]) -> int:
        threads.add(threading.current_thread().name)
        gate.wait(5)  # the first batch is slow: what arrives meanwhile goes together
        batches.append([r.id for r, _ in rows])
        return len(rows)

    handoff = Handoff(publish)
    handoff.add([(row(1), None)])
    for n in range(2, 6):
        handoff.add([(row(n), None)])
    gate.set()
    assert handoff.settle(timeout=5)
    assert sorted(n for batch in batches for n in batch) == [1, 2, 3, 4, 5]
    assert len(batches) <= 2
    assert threads == {"outbox-publisher"}


def test_handoff_survives_a_publisher_error(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def publish(rows: Sequence[tuple[Any, str | None]]) -> int:
        calls.append(len(rows))
        if len(calls) == 1:
            raise RuntimeError("unexpected")
        return len(rows)

    handoff = Handoff(publish)
    handoff.add([(row(1), None)])
    assert handoff.settle(timeout=5)
    handoff.add([(row(2), None)])
    assert handoff.settle(timeout=5)
    assert calls == [1, 1]
    assert "rows left for the relay" in caplog.text


def test_handoff_keeps_at_most_its_limit(caplog: pytest.LogCaptureFixture) -> None:
    gate = threading.Event()
    seen: list[int] = []

    def publish(rows: Sequence[tuple[Any, str | None]]) -> int:
        gate.wait(5)
        seen.extend(r.id for r, _ in rows)
        return len(rows)

    handoff = Handoff(publish, limit=3)
    handoff.add([(row(0), None)])  # the thread takes it and blocks
    handoff.add([(row(n), None) for n in range(1, 6)])
    gate.set()
    assert handoff.settle(timeout=5)
    # The oldest waiting rows were dropped: still in the outbox, the relay publishes them.
    assert seen[-3:] == [3, 4, 5] and 1 not in seen
    assert "outbox handoff full" in caplog.text
