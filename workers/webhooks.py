"""Webhook tasks: processing stored provider callbacks, and a simulating provider's receipts."""

from __future__ import annotations

import logging

from celery import shared_task
from sqlalchemy.exc import OperationalError

from app.domain.queues import QueueNames
from app.infra.broker import TaskNames
from app.infra.wakes import INBOX
from app.messaging.dispatch.simulation import receipt_target
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


@shared_task(
    name=TaskNames.SIMULATED_RECEIPTS,
    autoretry_for=(RetryableError, TransportError),
    retry_backoff=1,
    retry_backoff_max=4,
    max_retries=8,
)
def emit_simulated_receipts(message_id: str) -> int:
    """Let a simulating provider POST its signed receipts back to our own webhook."""
    with db().session() as session:
        found = receipt_target(session, settings().public_base_url, message_id)
    if found is None:
        log.warning("no receipts to simulate", extra={"message_id": message_id})
        return 0
    provider, target = found
    return provider.simulate_receipts(target)
