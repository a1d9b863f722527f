"""Dispatch tasks: drain a lane in batches. Idempotent: a redelivered task sends nothing twice.

``dispatch_message`` is the wake-up owed for each new or released message (through the
outbox): if its message is still queued, it drains the message's lane, fairly between
tenants, taking that message with the others; if a batch already took it, there is
nothing to do. ``dispatch_lane`` drains a lane by name: a drain that ran out of time
hands on with it, and beat's sweep sends it for queued work that no task announced.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import shared_task
from celery.signals import worker_shutting_down
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.broker import QueueNames, TaskNames
from app.messaging import dispatch
from app.messaging.states import ConcurrentTransition, Status
from app.models import Message
from workers.context import celery, db, limiter, settings

log = logging.getLogger(__name__)

# Set when the worker begins to shut down: drains stop taking new batches.
_stopping = threading.Event()


@worker_shutting_down.connect
def _on_shutdown(**_kwargs: Any) -> None:
    _stopping.set()


def _drain(lane: str) -> int:
    handled, more = dispatch.drain_lane(db(), settings(), limiter(), lane, _stopping.is_set)
    if more:
        celery().send_task(
            TaskNames.DISPATCH_LANE, args=[lane], queue=QueueNames.for_priority(lane)
        )
    return handled


@shared_task(
    name=TaskNames.DISPATCH,
    autoretry_for=(ConcurrentTransition, OperationalError),
    retry_backoff=1,
    retry_backoff_max=4,  # short: longer delays live in the database, not in ETAs
    max_retries=5,
)
def dispatch_message(message_id: str) -> int:
    with db().session() as session:
        found = session.execute(
            select(Message.priority, Message.status).where(Message.id == message_id)
        ).first()
    if found is None or found.status != Status.QUEUED:
        return 0  # unknown, or a batch already took it
    return _drain(found.priority)


@shared_task(
    name=TaskNames.DISPATCH_LANE,
    autoretry_for=(ConcurrentTransition, OperationalError),
    retry_backoff=1,
    retry_backoff_max=4,
    max_retries=5,
)
def dispatch_lane(lane: str) -> int:
    if lane not in ("urgent", "normal", "bulk"):
        log.warning("dispatch_lane: unknown lane", extra={"lane": lane[:20]})
        return 0
    return _drain(lane)
