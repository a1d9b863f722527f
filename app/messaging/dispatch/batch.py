"""Dispatching in batches: claim many, send them concurrently outside any transaction, record.

A batch is claimed in one transaction (``claims``), sent over pooled connections with a
bound per account (``sending``), and its outcomes recorded in one more (``outcomes``).
A lane is drained by repeating that while batches come back full.

At most one send per message: the claim commits ``dispatched`` before any send, and a
message no longer ``queued`` is never claimed again. If the worker dies between the claim
and recording the outcomes, the batch stays ``dispatched`` and the stuck-message
reconciliation asks the provider about each (never a blind re-send); messages not yet
claimed are still ``queued`` for the next batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import OperationalError

from app.infra.db import Database
from app.infra.ratelimit import DatabaseLimiter, RateLimiter
from app.messaging.dispatch.claims import Claim, claim_batch
from app.messaging.dispatch.outcomes import Sent, record_outcomes
from app.messaging.dispatch.sending import sender
from app.messaging.states import ConcurrentTransition
from app.providers.base import ProviderError, SendResult
from config import Settings

log = logging.getLogger(__name__)

RECORD_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
# How long a lane's batch waits for places in the process's send budget before it reports
# the lane still full (the drain tries again, or hands on).
BUDGET_WAIT = 1.0


@dataclass
class BatchReport:
    results: dict[str, str]
    full: bool  # the claim found as many as it asked for: more are probably waiting
    contended: bool  # some stayed queued because an opt-out held their contact


def dispatch_batch(
    db: Database,
    settings: Settings,
    limiter: RateLimiter,
    *,
    lane: str | None = None,
    ids: Sequence[str] | None = None,
    fifo: bool = False,
    on_full: Callable[[], None] | None = None,
) -> BatchReport:
    """Claim, send and record one batch: a fair one of ``lane``, or exactly ``ids``.

    ``on_full`` is called when the claim came back full, before the sends: the caller
    wakes another drain, which claims the next batch while this one waits on the provider.
    """
    pool = sender(settings.send_concurrency, settings.send_concurrency_per_account)
    size = settings.dispatch_batch_size
    if ids is None:
        size = pool.reserve(size, timeout=BUDGET_WAIT)
        if not size:  # every place is taken by sends in flight: try again shortly
            return BatchReport({}, full=True, contended=False)
    try:
        claimed = claim_batch(db, settings, limiter, lane=lane, ids=ids, fifo=fifo, size=size)
    except BaseException:
        if ids is None:
            pool.release(size)
        raise
    if ids is None:
        pool.release(size - len(claimed.claims))  # what the claim did not fill
    if claimed.full and on_full is not None:
        on_full()
    results = dict(claimed.results)
    if claimed.claims:
        outcomes = pool.send_all(claimed.claims, reserved=ids is None)
        sent: list[Sent] = [
            (c.request.message_id, c.provider, o)
            for c, o in zip(claimed.claims, outcomes, strict=True)
        ]
        results.update(_with_retries(lambda: record_outcomes(db, settings, sent), len(sent)))
    if results:
        counts: dict[str, int] = {}
        for result in results.values():
            counts[result] = counts.get(result, 0) + 1
        log.info("dispatched batch", extra={"lane": lane, "results": counts})
    return BatchReport(results, claimed.full, claimed.contended)


def drain_lane(
    db: Database,
    settings: Settings,
    limiter: RateLimiter,
    lane: str,
    should_stop: Callable[[], bool] = lambda: False,
    fifo: bool = False,
    on_full: Callable[[], None] | None = None,
) -> tuple[int, bool]:
    """Dispatch ``lane``'s queued messages batch after batch, for up to ``DRAIN_SECONDS``.

    Returns how many messages it handled, and whether work was left (the caller hands
    it on, so a long backlog never holds one task past a shutdown's grace period).
    """
    deadline = time.monotonic() + settings.drain_seconds
    handled = 0
    while True:
        report = dispatch_batch(db, settings, limiter, lane=lane, fifo=fifo, on_full=on_full)
        handled += len(report.results)
        more = report.full or report.contended
        if not more:
            return handled, False
        if should_stop() or time.monotonic() >= deadline:
            return handled, True
        if report.contended and not report.full:
            time.sleep(0.05)  # an opt-out holds a contact: let it commit first


def _with_retries(record: Callable[[], dict[str, str]], count: int) -> dict[str, str]:
    """The provider has answered: try hard to write that down.

    Retrying the whole task would not help (the messages are no longer ``queued``), so a
    short database outage is ridden out here. If it lasts longer, the messages stay
    ``dispatched`` for the stuck-message reconciliation.
    """
    for delay in (*RECORD_RETRY_DELAYS, None):
        try:
            return record()
        except (OperationalError, ConcurrentTransition) as exc:
            if delay is None:
                log.error(
                    "outcomes not recorded; messages left dispatched",
                    extra={"messages": count, "error": type(exc).__name__},
                )
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")


# -- one message at a time: the same path, with a batch of one


def claim(db: Database, settings: Settings, limiter: RateLimiter, message_id: str) -> Claim | str:
    """Move one ``queued`` message to ``dispatched`` and build its request; or say why not."""
    claimed = claim_batch(db, settings, limiter, ids=[message_id])
    return claimed.claims[0] if claimed.claims else claimed.results[message_id]


def record_outcome(
    db: Database,
    settings: Settings,
    message_id: str,
    outcome: SendResult | ProviderError,
    provider: str,
) -> str:
    """Write down ``provider``'s answer for one message."""
    return record_outcomes(db, settings, [(message_id, provider, outcome)])[message_id]


def _record_with_retries(
    db: Database,
    settings: Settings,
    message_id: str,
    outcome: SendResult | ProviderError,
    provider: str,
) -> str:
    results = _with_retries(
        lambda: {message_id: record_outcome(db, settings, message_id, outcome, provider)}, 1
    )
    return results[message_id]


def dispatch_message(
    db: Database, settings: Settings, message_id: str, limiter: RateLimiter | None = None
) -> str:
    """The whole dispatch of one message; idempotent, returns what happened."""
    report = dispatch_batch(db, settings, limiter or DatabaseLimiter(), ids=[message_id])
    return report.results.get(message_id, "missing")
