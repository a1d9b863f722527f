"""Beat jobs over messages: release due scheduled ones and retries, expire those past their TTL.

Both are idempotent and safe when two beats overlap: Postgres claims rows
with ``FOR UPDATE SKIP LOCKED``; SQLite serializes the whole transaction.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, or_, select

from app.domain.clock import utcnow
from app.domain.queues import lane_for
from app.domain.reasons import StatusReason
from app.domain.statuses import EXPIRABLE, Status
from app.infra.broker import TaskNames
from app.infra.db import Database
from app.infra.outbox import enqueue
from app.messaging.states import apply_transition
from app.models import InboxItem, Message


def release_due(db: Database, batch: int = 500) -> int:
    """Hand due ``scheduled`` messages (send_at reached, backoff over) to their lanes."""
    now = utcnow()
    released = 0
    with db.session() as session:
        due = session.scalars(
            select(Message)
            .where(
                Message.status == Status.SCHEDULED.value,
                or_(Message.not_before.is_(None), Message.not_before <= now),
                or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now),
            )
            .order_by(Message.next_attempt_at, Message.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        for message in due:
            if message.expires_at is not None and message.expires_at <= now:
                apply_transition(
                    session, message, Status.EXPIRED, source="beat", reason=StatusReason.EXPIRED
                )
                continue
            apply_transition(
                session,
                message,
                Status.QUEUED,
                source="beat",
                reason="released",
                changes={"next_attempt_at": None},
            )
            lane = lane_for(message.priority)
            enqueue(session, TaskNames.DISPATCH, [message.id], lane, wake=message.tenant_id)
            released += 1
    return released


def expire_overdue(db: Database, batch: int = 500) -> int:
    """Expire messages whose TTL passed before they were dispatched."""
    now = utcnow()
    with db.session() as session:
        overdue = list(
            session.scalars(
                select(Message)
                .where(
                    Message.status.in_([s.value for s in EXPIRABLE]),
                    Message.expires_at <= now,
                )
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        )
        for message in overdue:
            apply_transition(
                session, message, Status.EXPIRED, source="beat", reason=StatusReason.EXPIRED
            )
    return len(overdue)


# Work older than this that no drain has taken lost its wake (a broker outage, a restart).
UNANNOUNCED_AFTER = timedelta(seconds=10)


def unannounced_work(db: Database) -> tuple[list[str], bool]:
    """Lanes (priorities) with queued messages waiting past ``UNANNOUNCED_AFTER``, and whether
    the inbox has rows due or waiting that long: beat wakes their drains. Four index probes."""
    cutoff = utcnow() - UNANNOUNCED_AFTER
    with db.session() as session:
        lanes = [
            lane
            for lane in ("urgent", "normal", "bulk")
            if session.scalar(
                select(Message.id)
                .where(
                    Message.status == Status.QUEUED.value,
                    Message.priority == lane,
                    Message.updated_at <= cutoff,
                )
                .limit(1)
            )
        ]
        # Receipts deferred for a send not recorded yet (a batch records its outcomes once
        # every send of it has answered) come due within seconds: retry them promptly.
        inbox = session.scalar(
            select(InboxItem.id)
            .where(
                InboxItem.processed_at.is_(None),
                or_(
                    InboxItem.next_attempt_at <= utcnow(),
                    and_(InboxItem.next_attempt_at.is_(None), InboxItem.received_at <= cutoff),
                ),
            )
            .limit(1)
        )
    return lanes, inbox is not None
