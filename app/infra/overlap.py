"""Work handed to one helper thread, in order, so the caller makes the next item meanwhile.

A campaign's upload parses and checks its rows on the request's thread (Python, holding the
GIL) while the rows already checked are written on this thread (mostly waiting on the
database, with the GIL released): the two overlap instead of taking turns.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class Overlapped(Generic[T]):
    """Runs ``work(item)`` for each submitted item on one helper thread, in submission order.

    At most ``ahead`` items wait behind the one being worked on (so the caller never holds
    more than that many in memory). The first failure of ``work`` is raised to the caller at
    its next ``submit`` or at ``finish``, and no item after it is worked on. Leaving the
    ``with`` block waits for the item in hand, so whatever ``work`` wrote is known to the
    caller, which is what an undo needs.
    """

    def __init__(self, work: Callable[[T], None], ahead: int = 1, name: str = "overlap") -> None:
        self._work = work
        self._ahead = ahead
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._pending: deque[Future[None]] = deque()
        self._failed = False

    def _run(self, item: T) -> None:
        if self._failed:
            return  # an earlier item failed: the caller hears of that one
        try:
            self._work(item)
        except BaseException:
            self._failed = True
            raise

    def _settle(self, keep: int) -> None:
        """Collect finished work (raising its error), and wait until at most ``keep`` wait."""
        while self._pending and (self._pending[0].done() or len(self._pending) > keep):
            self._pending.popleft().result()

    def submit(self, item: T) -> None:
        self._settle(self._ahead)
        self._pending.append(self._pool.submit(self._run, item))

    def finish(self) -> None:
        """Wait for every item; raise the first failure."""
        self._settle(0)

    def __enter__(self) -> Overlapped[T]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is not None:
            self._failed = True  # the caller failed: nothing more is started
        self._pool.shutdown(wait=True)
        if kind is None:
            self.finish()
