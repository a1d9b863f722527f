"""Storing verified provider callbacks in the inbox, once each, and owing their processing."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from app.broker import QueueNames, TaskNames
from app.db import Database, insert_ignore
from app.models import ChannelAccount, InboxItem
from app.models.types import new_id, utcnow
from app.outbox import enqueue
from app.wakes import INBOX


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
        enqueue(session, TaskNames.PROCESS_INBOX, [item_id], QueueNames.INTAKE, wake=INBOX)
    return inserted


def redrive_deferred(db: Database, lost_after: timedelta) -> int:
    """Wake the inbox's drain when rows wait for it: deferred ones now due (their message
    was not known yet), and rows never deferred yet unprocessed long after arrival (their
    wake was lost). How many wait; one wake takes them all, in batches.

    Rows are not touched: a drain claims due rows ``FOR UPDATE SKIP LOCKED``, so a row
    is never applied by two drains at once however many wakes there are.
    """
    now = utcnow()
    with db.session() as session:
        waiting = session.scalar(
            select(func.count()).where(
                InboxItem.processed_at.is_(None),
                or_(
                    InboxItem.next_attempt_at <= now,
                    and_(
                        InboxItem.next_attempt_at.is_(None),
                        InboxItem.received_at <= now - lost_after,
                    ),
                ),
            )
        )
        if waiting:
            enqueue(session, TaskNames.PROCESS_INBOX, [""], QueueNames.INTAKE, wake=INBOX)
    return int(waiting or 0)


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
