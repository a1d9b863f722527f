"""Dispatch tasks: drain a lane in batches. Idempotent: a redelivered task sends nothing twice.

``dispatch_message`` is the wake-up owed for each new or released message (through the
outbox), coalesced per tenant and lane (``app.infra.wakes``): it drains the message's lane,
fairly between tenants, taking that message with the others. ``dispatch_lane`` drains a
lane by name: a drain that ran out of time hands on with it, and beat's sweep sends it
for queued work that no task announced.
"""

from __future__ import annotations

import logging
import threading

from celery import shared_task
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.domain.queues import QueueNames
from app.infra.broker import TaskNames
from app.messaging.dispatch import batch as dispatch
from app.messaging.states import ConcurrentTransition
from app.models import Message
from workers.context import celery, db, limiter, settings, wakes
from workers.stopping import stopping

log = logging.getLogger(__name__)

# The wake key of a lane's own drains (a tenant's wakes are keyed by the tenant's id).
LANE_WAKE = "lane"


def _wake_lane(lane: str, coalesce: bool = True) -> None:
    queue = QueueNames.for_priority(lane)
    if not coalesce or wakes().should_publish(queue, LANE_WAKE):
        celery().send_task(TaskNames.DISPATCH_LANE, args=[lane], queue=queue)


_active: dict[str, int] = {}
_active_lock = threading.Lock()


def _fan_out(lane: str) -> None:
    """A full batch: wake one more drain, unless half this worker's threads drain the lane
    already (the other half stay free for the other queues: urgent, receipts)."""
    with _active_lock:
        busy = _active.get(lane, 0)
    if busy < max(1, settings().worker_concurrency // 2):
        _wake_lane(lane)


def _drain(lane: str) -> int:
    """Drain ``lane``. A full batch wakes one more drain before its sends, so while there is
    a backlog, batches are claimed side by side, each waiting on the provider while the
    next is claimed."""
    fifo = settings().dispatch_claim_order == "fifo"
    with _active_lock:
        _active[lane] = _active.get(lane, 0) + 1
    try:
        handled, more = dispatch.drain_lane(
            db(), settings(), limiter(), lane, stopping.is_set, fifo=fifo,
            on_full=lambda: _fan_out(lane),
        )  # fmt: skip
    finally:
        with _active_lock:
            _active[lane] -= 1
    if more:
        _wake_lane(lane, coalesce=False)
    return handled


@shared_task(
    name=TaskNames.DISPATCH,
    autoretry_for=(ConcurrentTransition, OperationalError),
    retry_backoff=1,
    retry_backoff_max=4,  # short: longer delays live in the database, not in ETAs
    max_retries=5,
)
def dispatch_message(message_id: str) -> int:
    """The wake of a message's tenant in its lane: it stands for every message that tenant
    queued since (their wakes coalesced into this one), so it drains the lane even when a
    batch already took its own message."""
    with db().session() as session:
        found = session.execute(
            select(Message.priority, Message.tenant_id).where(Message.id == message_id)
        ).first()
    if found is None:
        return 0
    wakes().clear(QueueNames.for_priority(found.priority), found.tenant_id)
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
    wakes().clear(QueueNames.for_priority(lane), LANE_WAKE)
    return _drain(lane)
