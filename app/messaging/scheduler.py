"""Beat jobs over messages: release due scheduled ones and retries, expire those past their TTL.

Both are idempotent and safe when two beats overlap: Postgres claims rows
with ``FOR UPDATE SKIP LOCKED``; SQLite serializes the whole transaction.
"""

from __future__ import annotations

from sqlalchemy import or_, select

from app.broker import TaskNames
from app.db import Database
from app.messaging.reasons import StatusReason
from app.messaging.routing import lane_for
from app.messaging.states import EXPIRABLE, Status, apply_transition
from app.models import Message
from app.models.types import utcnow
from app.outbox import enqueue


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
            enqueue(session, TaskNames.DISPATCH, [message.id], lane_for(message.priority))
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
