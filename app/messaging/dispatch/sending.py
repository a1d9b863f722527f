"""Sending a claimed batch concurrently, with a bound per channel account.

One thread pool per process (``SEND_CONCURRENCY`` threads) carries every batch's provider
calls, and a semaphore per account (``SEND_CONCURRENCY_PER_ACCOUNT``) keeps one account's
batch from taking every thread. Providers keep their HTTP connections pooled. A forked
child (a prefork worker) builds its own pool.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from app.observability.metrics import PROVIDER_CALLS
from app.providers import get_provider
from app.providers.base import ProviderError, RetryableError, SendResult

if TYPE_CHECKING:
    from app.messaging.dispatch.claims import Claim

log = logging.getLogger(__name__)

Outcome = SendResult | ProviderError


def send_one(claim: Claim) -> Outcome:
    """One provider call; every failure comes back classified, never raised."""
    provider = get_provider(claim.provider)
    outcome: Outcome
    try:
        outcome = provider.send(claim.account, claim.request)
    except ProviderError as exc:
        outcome = exc
    except Exception as exc:  # an adapter bug or an unclassified transport error
        log.exception("provider send raised unclassified error", extra={"provider": claim.provider})
        outcome = RetryableError("unclassified_error", type(exc).__name__)
    PROVIDER_CALLS.labels(claim.provider, _outcome_name(outcome)).inc()
    return outcome


def _outcome_name(outcome: Outcome) -> str:
    """accepted, retryable, throttled or permanent."""
    if isinstance(outcome, SendResult):
        return "accepted"
    return type(outcome).__name__.removesuffix("Error").lower() or "error"


class Sender:
    """The process's send pool, and its claim budget.

    A batch reserves places before it claims (``reserve``), and gives each back as its send
    finishes: messages claimed but not yet sent never exceed ``concurrency`` per process.
    Without the budget, drains side by side would claim a whole backlog ahead of what the
    provider can take, leaving it ``dispatched`` (in limbo for reconciliation if the worker
    died) and deciding its policy long before the send.
    """

    def __init__(self, concurrency: int, per_account: int) -> None:
        self.concurrency = concurrency
        self.per_account = per_account
        self._pid = -1
        self._lock = threading.Lock()
        self._budget = threading.Condition()
        self._free = concurrency
        self._budget_pid = os.getpid()

    def reserve(self, want: int, timeout: float) -> int:
        """Up to ``want`` places, waiting up to ``timeout`` for at least one; 0 if none."""
        with self._budget:
            if self._budget_pid != os.getpid():  # a forked child starts with the whole budget
                self._budget_pid = os.getpid()
                self._free = self.concurrency
            if not self._budget.wait_for(lambda: self._free > 0, timeout):
                return 0
            got = min(want, self._free)
            self._free -= got
            return got

    def release(self, count: int) -> None:
        if count <= 0:
            return
        with self._budget:
            self._free = min(self.concurrency, self._free + count)
            self._budget.notify_all()

    def _start(self) -> None:
        self._pid = os.getpid()
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="send")
        self._bounds: dict[str, threading.BoundedSemaphore] = {}

    def _bound(self, account_id: str) -> threading.BoundedSemaphore:
        with self._lock:
            if self._pid != os.getpid():
                self._start()
            bound = self._bounds.get(account_id)
            if bound is None:
                bound = self._bounds[account_id] = threading.BoundedSemaphore(self.per_account)
            return bound

    def send_all(self, claims: Sequence[Claim], reserved: bool = False) -> list[Outcome]:
        """Every claim's outcome, in order; with ``reserved``, each place is given back as
        its send finishes. One claim is sent on the caller's thread."""
        bounds = [self._bound(c.account.id) for c in claims]

        def bounded(i: int) -> Outcome:
            try:
                with bounds[i]:
                    return send_one(claims[i])
            finally:
                if reserved:
                    self.release(1)

        if len(claims) == 1:
            return [bounded(0)]
        return list(self._pool.map(bounded, range(len(claims))))


_senders: dict[tuple[int, int], Sender] = {}


def sender(concurrency: int, per_account: int) -> Sender:
    key = (concurrency, per_account)
    if key not in _senders:
        _senders[key] = Sender(concurrency, per_account)
    return _senders[key]
