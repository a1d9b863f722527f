"""Webhook tasks: processing stored provider callbacks, and a simulating provider's receipts."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from sqlalchemy.exc import OperationalError

from app.domain.queues import QueueNames
from app.domain.retries import retry_delay
from app.infra.broker import TaskNames
from app.infra.wakes import INBOX
from app.messaging.dispatch.simulation import receipt_targets
from app.messaging.receipts.drain import drain_inbox
from app.messaging.states import ConcurrentTransition
from app.providers.base import RetryableError
from app.providers.http import TransportError
from workers.context import celery, db, settings, wakes
from workers.stopping import stopping

log = logging.getLogger(__name__)


@shared_task(
    name=TaskNames.PROCESS_INBOX,
    autoretry_for=(ConcurrentTransition, OperationalError),
    retry_backoff=1,
    retry_backoff_max=4,
    max_retries=5,
)
def process_inbox_item(item_id: str) -> int:
    """The inbox's drain: this row (due or not: beat re-drives deferred ones) and every due
    one with it, in batches. Its wakes coalesce (app.infra.wakes): the flag is cleared first."""
    wakes().clear(QueueNames.INTAKE, INBOX)
    handled, more = drain_inbox(db(), settings(), item_id, stopping.is_set)
    if more:
        celery().send_task(TaskNames.PROCESS_INBOX, args=[item_id], queue=QueueNames.INTAKE)
    return handled


@shared_task(name=TaskNames.SIMULATED_RECEIPTS, bind=True, max_retries=8)
def emit_simulated_receipts(self: Any, *message_ids: str) -> int:
    """Let a simulating provider POST its signed receipts back to our own webhook, for each
    of a dispatched batch's accepted messages (one id per task before batches: still taken).

    A POST refused or unreachable retries the task, with a jittered backoff, for the messages
    not yet done only (a receipt posted twice is one receipt anyway: its event id is stable);
    the database away while the targets are read retries the whole batch."""
    try:
        with db().session() as session:
            found = receipt_targets(session, settings().public_base_url, message_ids)
    except OperationalError as exc:  # the database away: the whole batch, a little later
        raise self.retry(args=list(message_ids), exc=exc, countdown=_backoff(self)) from exc
    missing = [m for m in message_ids if m not in found]
    if missing:
        log.warning("no receipts to simulate", extra={"message_ids": missing})
    posted = 0
    todo = [m for m in message_ids if m in found]
    for n, message_id in enumerate(todo):
        provider, target = found[message_id]
        try:
            posted += provider.simulate_receipts(target)
        except (RetryableError, TransportError) as exc:
            raise self.retry(args=todo[n:], exc=exc, countdown=_backoff(self)) from exc
    return posted


def _backoff(task: Any) -> float:
    """Seconds before a receipts task's next try: jittered, from 1 s doubling to 4 s."""
    return retry_delay(task.request.retries + 1, base=1.0, cap=4.0).total_seconds()
