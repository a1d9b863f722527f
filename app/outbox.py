"""The transactional outbox.

``enqueue`` writes an outbox row in the caller's transaction. Once that
transaction commits, the task is published and the row deleted. If the broker
is down the row stays, and the ``relay_outbox`` beat job publishes it later.
Tasks are idempotent, so a row published twice (a relay racing the hook) is
harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from celery import Celery
from sqlalchemy import delete, event, inspect, select
from sqlalchemy.orm import Session

from app.db import Database
from app.models import OutboxRow
from app.models.types import utcnow

log = logging.getLogger(__name__)
_PENDING = "switchboard.outbox.pending"


def enqueue(session: Session, task_name: str, args: Sequence[str], queue: str) -> OutboxRow:
    """Owe a task: it is published only if, and after, this transaction commits."""
    row = OutboxRow(task_name=task_name, queue=queue, args=list(args))
    session.add(row)
    session.info.setdefault(_PENDING, []).append(row)
    return row


def publish_rows(celery: Celery, db: Database, rows: Sequence[OutboxRow]) -> int:
    """Publish rows in order and delete the ones the broker took; stop at the first failure."""
    published: list[int] = []
    try:
        for row in rows:
            celery.send_task(row.task_name, args=row.args, queue=row.queue)
            published.append(row.id)
    except Exception as exc:  # any broker failure: the relay will try again
        log.warning(
            "outbox publish failed; rows left for the relay",
            extra={"error": type(exc).__name__, "left": len(rows) - len(published)},
        )
    if published:
        try:
            with db.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # Losing this delete in a crash only means a harmless republish: skip the fsync.
                    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                conn.execute(delete(OutboxRow).where(OutboxRow.id.in_(published)))
        except Exception as exc:  # published but not deleted: the relay republishes, harmlessly
            log.warning("outbox rows published but not deleted", extra={"error": str(exc)})
    return len(published)


def install_outbox(db: Database, celery: Celery) -> None:
    """Publish a session's outbox rows after it commits; forget them if it rolls back."""

    def after_commit(session: Session) -> None:
        if session.in_nested_transaction():
            return  # a savepoint was released: the rows are not committed until the outer one
        rows = session.info.pop(_PENDING, None)
        if rows:
            publish_rows(celery, db, rows)

    def after_rollback(session: Session) -> None:
        if session.in_nested_transaction():
            # A savepoint rolled back: forget only the rows written inside it.
            pending = session.info.get(_PENDING, [])
            session.info[_PENDING] = [r for r in pending if inspect(r).persistent]
            return
        session.info.pop(_PENDING, None)

    event.listen(db.sessionmaker, "after_commit", after_commit)
    event.listen(db.sessionmaker, "after_rollback", after_rollback)


def relay(celery: Celery, db: Database, grace: timedelta, batch: int = 500) -> int:
    """Publish rows left behind (older than ``grace``). Safe when two relays overlap.

    Locking: rows are claimed with ``FOR UPDATE SKIP LOCKED`` on Postgres; on
    SQLite the IMMEDIATE transaction serializes relays.
    """
    cutoff = utcnow() - grace
    total = 0
    while True:
        with db.session() as session:
            rows = list(
                session.scalars(
                    select(OutboxRow)
                    .where(OutboxRow.created_at <= cutoff)
                    .order_by(OutboxRow.id)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            )
            if not rows:
                return total
            sent: list[int] = []
            for row in rows:
                try:
                    celery.send_task(row.task_name, args=row.args, queue=row.queue)
                except Exception as exc:
                    log.warning("outbox relay: broker unavailable", extra={"error": str(exc)})
                    for r in rows[len(sent) :]:
                        r.attempts += 1
                    session.execute(delete(OutboxRow).where(OutboxRow.id.in_(sent)))
                    return total + len(sent)
                sent.append(row.id)
            session.execute(delete(OutboxRow).where(OutboxRow.id.in_(sent)))
            total += len(sent)
            if len(rows) < batch:
                return total
