"""Storing verified provider callbacks in the inbox, once each, and owing their processing."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from app.broker import QueueNames, TaskNames
from app.db import Database, insert_ignore
from app.models import ChannelAccount, InboxItem
from app.models.types import new_id, utcnow
from app.outbox import enqueue


def store_callback(
    session: Session, account: ChannelAccount, provider: str, dedupe_key: str, body: str
) -> bool:
    """Insert the raw callback (encrypted) unless this dedupe key was seen; True when new.

    The processing task is owed through the outbox in the same transaction.
    """
    item_id = new_id("inb")
    inserted = insert_ignore(
        session,
        InboxItem.__table__,
        {
            "id": item_id,
            "tenant_id": account.tenant_id,
            "account_id": account.id,
            "provider": provider,
            "dedupe_key": dedupe_key,
            "payload": body,
            "received_at": utcnow(),
            "attempts": 0,
        },
        ["account_id", "dedupe_key"],
    )
    if inserted:
        enqueue(session, TaskNames.PROCESS_INBOX, [item_id], QueueNames.INTAKE)
    return inserted


def redrive_deferred(db: Database, lost_after: timedelta, batch: int = 500) -> int:
    """Re-owe processing for inbox rows that were deferred (their message was not known yet)."""
    now = utcnow()
    with db.session() as session:
        rows = list(
            session.scalars(
                select(InboxItem)
                .where(
                    InboxItem.processed_at.is_(None),
                    or_(
                        InboxItem.next_attempt_at <= now,
                        # Never deferred, yet unprocessed long after arrival: its task was lost.
                        and_(
                            InboxItem.next_attempt_at.is_(None),
                            InboxItem.received_at <= now - lost_after,
                        ),
                    ),
                )
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        )
        for item in rows:
            # Push the due time out so a slow worker is not sent the same row twice.
            item.next_attempt_at = now + timedelta(minutes=5)
            enqueue(session, TaskNames.PROCESS_INBOX, [item.id], QueueNames.INTAKE)
    return len(rows)


def purge_processed(db: Database, retention: timedelta, batch: int = 5000) -> int:
    """Delete processed inbox rows older than ``retention``, which outlives providers' retries.

    Until then a repeated callback is still a duplicate. Unprocessed (parked)
    rows are kept whatever their age. Batches keep each transaction short.
    """
    cutoff = utcnow() - retention
    total = 0
    while True:
        with db.session() as session:
            ids = list(
                session.scalars(
                    select(InboxItem.id)
                    .where(InboxItem.processed_at.is_not(None), InboxItem.received_at < cutoff)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            )
            if ids:
                session.execute(delete(InboxItem).where(InboxItem.id.in_(ids)))
        total += len(ids)
        if len(ids) < batch:
            return total
