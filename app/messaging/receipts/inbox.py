"""Storing verified provider callbacks in the inbox, once each, and owing their processing."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import Engine, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.domain.ids import new_id
from app.domain.queues import QueueNames
from app.infra.broker import TaskNames
from app.infra.db import Database, Prepared, execute_at_once, insert_ignore
from app.infra.outbox import Written, enqueue
from app.infra.wakes import INBOX
from app.models import ChannelAccount, InboxItem
from app.security.crypto import keyring


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


_STORE_SQL = """
WITH item AS (
    INSERT INTO webhook_inbox (id, tenant_id, account_id, provider, dedupe_key, payload,
                               received_at, attempts)
    VALUES (%(id)s, %(tenant_id)s, %(account_id)s, %(provider)s, %(dedupe_key)s, %(payload)s,
            %(now)s, 0)
    ON CONFLICT (account_id, dedupe_key) DO NOTHING
    RETURNING id
), wake AS (
    INSERT INTO outbox (task_name, queue, args, attempts, created_at)
    SELECT %(task_name)s, %(queue)s, %(args)s::json, 0, %(now)s FROM item
    RETURNING id
)
SELECT id FROM wake
"""
_STORE = Prepared.of("switchboard_inbox_v1", _STORE_SQL, {"now": "timestamptz"})


def store_callback_at_once(
    engine: Engine, account: ChannelAccount, provider: str, dedupe_key: str, body: str
) -> Written | None:
    """``store_callback`` in one round trip on Postgres: the inbox row and its outbox row in
    one statement, run in autocommit (atomic by itself). The outbox row to publish when the
    callback is new; None for a duplicate, which wrote nothing."""
    item_id = new_id("inb")
    args = [item_id]
    params = {
        "id": item_id,
        "tenant_id": account.tenant_id,
        "account_id": account.id,
        "provider": provider,
        "dedupe_key": dedupe_key,
        "payload": keyring().encrypt(body),
        "now": utcnow(),
        "task_name": TaskNames.PROCESS_INBOX,
        "queue": QueueNames.INTAKE,
        "args": json.dumps(args),
    }
    row = execute_at_once(engine, _STORE, params)
    outbox_id = row[0] if row is not None else None
    if outbox_id is None:
        return None
    return Written(int(outbox_id), TaskNames.PROCESS_INBOX, QueueNames.INTAKE, args)


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
