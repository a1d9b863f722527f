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

from app.providers import get_provider
from app.providers.base import ProviderError, RetryableError, SendResult

if TYPE_CHECKING:
    from app.messaging.claims import Claim

log = logging.getLogger(__name__)

Outcome = SendResult | ProviderError


def send_one(claim: Claim) -> Outcome:
    """One provider call; every failure comes back classified, never raised."""
    provider = get_provider(claim.provider)
    try:
        return provider.send(claim.account, claim.request)
    except ProviderError as exc:
        return exc
    except Exception as exc:  # an adapter bug or an unclassified transport error
        log.exception("provider send raised unclassified error", extra={"provider": claim.provider})
        return RetryableError("unclassified_error", type(exc).__name__)


class Sender:
    def __init__(self, concurrency: int, per_account: int) -> None:
        self.concurrency = concurrency
        self.per_account = per_account
        self._pid = -1
        self._lock = threading.Lock()

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

    def send_all(self, claims: Sequence[Claim]) -> list[Outcome]:
        """Every claim's outcome, in order. One claim is sent on the caller's thread."""
        if len(claims) == 1:
            return [send_one(claims[0])]
        bounds = [self._bound(c.account.id) for c in claims]

        def bounded(i: int) -> Outcome:
            with bounds[i]:
                return send_one(claims[i])

        return list(self._pool.map(bounded, range(len(claims))))


_senders: dict[tuple[int, int], Sender] = {}


def sender(concurrency: int, per_account: int) -> Sender:
    key = (concurrency, per_account)
    if key not in _senders:
        _senders[key] = Sender(concurrency, per_account)
    return _senders[key]
