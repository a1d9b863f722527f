"""The upload's helper thread: items worked on in order and bounded, its failure raised to the
caller and nothing after it worked on, the caller's failure waiting for the item in hand."""

from __future__ import annotations

import threading
import time

import pytest

from app.infra.overlap import Overlapped


def test_items_are_worked_on_in_order_on_another_thread() -> None:
    seen: list[tuple[int, str]] = []
    with Overlapped(lambda n: seen.append((n, threading.current_thread().name))) as run:
        for n in range(50):
            run.submit(n)
    assert [n for n, _ in seen] == list(range(50))
    assert {name for _, name in seen} != {threading.current_thread().name}


def test_the_caller_runs_at_most_one_item_ahead() -> None:
    release = threading.Event()
    started: list[int] = []

    def slow(n: int) -> None:
        started.append(n)
        release.wait(5)

    submitted: list[int] = []

    def caller() -> None:
        with Overlapped(slow, ahead=1) as run:
            for n in range(5):
                run.submit(n)
                submitted.append(n)

    thread = threading.Thread(target=caller)
    thread.start()
    time.sleep(0.2)
    # One in hand and one waiting: the third submit blocks until the first is done.
    assert submitted == [0, 1] and started == [0]
    release.set()
    thread.join(5)
    assert submitted == list(range(5)) and started == list(range(5))


def test_a_failure_is_raised_to_the_caller_and_nothing_after_it_runs() -> None:
    done: list[int] = []

    def work(n: int) -> None:
        if n == 2:
            raise ConnectionError("the database went away")
        done.append(n)

    with pytest.raises(ConnectionError), Overlapped(work, ahead=3) as run:
        for n in range(6):
            run.submit(n)
    assert done == [0, 1]


def test_the_callers_failure_waits_for_the_item_in_hand_and_starts_no_more() -> None:
    done: list[int] = []
    started = threading.Event()

    def work(n: int) -> None:
        started.set()
        time.sleep(0.2)
        done.append(n)

    with pytest.raises(ValueError), Overlapped(work, ahead=2) as run:
        run.submit(0)
        run.submit(1)
        started.wait(5)
        raise ValueError("row 7 is not CSV")
    # The item in hand finished before the block was left; the one waiting never started.
    assert done == [0]
