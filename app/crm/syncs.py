"""CRM syncs from the outside: beat's re-drive, support staff's dead letters, the report.

How syncs are written (in batches, per connection, within its budget) is ``app.crm.batches``.
Outcomes there: done; throttled (wait ``retry_after``, not an attempt); retryable
(jittered backoff held in the database, dead after ``CRM_MAX_ATTEMPTS``); permanent
(dead, with its reason, re-drivable here).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from app.crm.budget import limits_of
from app.domain.clock import utcnow
from app.domain.queues import QueueNames
from app.infra.broker import TaskNames
from app.infra.db import Database
from app.infra.outbox import enqueue
from app.models import CrmConnection, CrmSync

log = logging.getLogger(__name__)

UNFINISHED = ("pending", "running")


def wake_key(connection_id: str) -> str:
    return f"crm:{connection_id}"


def owe_drain(session: Session, connection_id: str) -> None:
    """Owe ``connection_id`` a drain, published after this commit (coalesced)."""
    enqueue(
        session, TaskNames.CRM_SYNC, [connection_id], QueueNames.CRM, wake=wake_key(connection_id)
    )


def redrive_due(db: Database, batch: int = 500) -> int:
    """Owe a drain to every connection with a due sync (or a lease that ran out), unless
    it is paused: its drain comes when the pause ends."""
    now = utcnow()
    with db.session() as session:
        # A lease that ran out was a worker lost mid-call: the sync is due again.
        session.execute(
            update(CrmSync)
            .where(CrmSync.status == "running", CrmSync.next_attempt_at <= now)
            .values(status="pending")
            .execution_options(synchronize_session=False)
        )
        connections = session.scalars(
            select(CrmSync.connection_id)
            .join(CrmConnection, CrmConnection.id == CrmSync.connection_id)
            .where(
                CrmSync.status == "pending",
                CrmSync.next_attempt_at <= now,
                or_(CrmConnection.paused_until.is_(None), CrmConnection.paused_until <= now),
            )
            .group_by(CrmSync.connection_id)
            .limit(batch)
        ).all()
        for connection_id in connections:
            owe_drain(session, connection_id)
    return len(connections)


def redrive_dead(
    session: Session, ids: list[int] | None, tenant_id: str | None, dry_run: bool
) -> list[dict[str, Any]]:
    """Put dead-lettered syncs (these, or all of a tenant's) back in line, from attempt zero."""
    query = select(CrmSync).where(CrmSync.status == "dead")
    if ids is not None:
        query = query.where(CrmSync.id.in_(ids))
    if tenant_id is not None:
        query = query.where(CrmSync.tenant_id == tenant_id)
    rows = list(session.scalars(query.order_by(CrmSync.id).limit(1000).with_for_update()))
    done: list[dict[str, Any]] = []
    pairs: set[tuple[str, str]] = set()
    for sync in rows:
        done.append({"id": sync.id, "tenant_id": sync.tenant_id, "action": "requeued"})
        if dry_run:
            continue
        sync.status, sync.attempts, sync.next_attempt_at = "pending", 0, utcnow()
        pairs.add((sync.connection_id, sync.contact_id))
    for connection_id in sorted({c for c, _ in pairs}):
        owe_drain(session, connection_id)
    return done


def stuck_syncs(
    session: Session,
    sla: timedelta,
    *,
    older_than: timedelta | None = None,
    tenant_id: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Syncs unfinished past the SLA, and dead-lettered ones: ids and reasons, no PII."""
    now = utcnow()
    cutoff = now - (older_than if older_than is not None else sla)
    query = select(CrmSync).where(
        or_(
            CrmSync.status == "dead",
            and_(CrmSync.status.in_(UNFINISHED), CrmSync.created_at <= cutoff),
        )
    )
    if tenant_id is not None:
        query = query.where(CrmSync.tenant_id == tenant_id)
    rows = list(session.scalars(query.order_by(CrmSync.id).limit(limit)))
    paused = {
        c.id: c
        for c in session.scalars(
            select(CrmConnection).where(
                CrmConnection.id.in_({s.connection_id for s in rows}),
                CrmConnection.paused_until > now,
            )
        )
    }

    def reason(sync: CrmSync) -> str:
        connection = paused.get(sync.connection_id)
        if sync.status != "dead" and connection is not None:
            return (connection.pause_reason or "budget").split(":", 1)[0]
        return (sync.last_error or "waiting").split(":", 1)[0]

    def until(sync: CrmSync) -> str | None:
        connection = paused.get(sync.connection_id)
        if sync.status == "dead" or connection is None or connection.paused_until is None:
            return None
        return connection.paused_until.isoformat()

    return [
        {
            "id": sync.id,
            "tenant_id": sync.tenant_id,
            "connection_id": sync.connection_id,
            "contact_id": sync.contact_id,
            "message_id": sync.message_id,
            "action": sync.action,
            "status": sync.status,
            "since": sync.created_at.isoformat(),
            "age_seconds": round((now - sync.created_at).total_seconds(), 1),
            "attempts": sync.attempts,
            "throttles": sync.throttles,
            # The kind of the last error only: a CRM's error text may quote the contact.
            # A connection waiting on its budget says so, and until when.
            "reason": reason(sync),
            "waiting_until": until(sync),
        }
        for sync in rows
    ]


def waiting_connections(session: Session, tenant_id: str | None = None) -> list[dict[str, Any]]:
    """Connections waiting on their budget (a 429, or their daily share used), and until when."""
    now = utcnow()
    query = select(CrmConnection).where(
        CrmConnection.active.is_(True), CrmConnection.paused_until > now
    )
    if tenant_id is not None:
        query = query.where(CrmConnection.tenant_id == tenant_id)
    rows = list(session.scalars(query.order_by(CrmConnection.paused_until)))
    return [budget_view(c, now) for c in rows]


def budget_view(connection: CrmConnection, now: Any = None) -> dict[str, Any]:
    """What a connection may spend, and whether it waits: for ``crm`` commands and reports."""
    now = now or utcnow()
    paused = (
        connection.paused_until
        if connection.paused_until and connection.paused_until > now
        else None
    )
    return {
        "connection_id": connection.id,
        "tenant_id": connection.tenant_id,
        "kind": connection.kind,
        "plan": (connection.limits or {}).get("plan"),
        "limits": limits_of(connection.kind, connection.limits).view(),
        "waiting_until": paused.isoformat() if paused else None,
        "waiting_seconds": round((paused - now).total_seconds(), 1) if paused else 0,
        "reason": (connection.pause_reason or "").split(":", 1)[0] if paused else None,
    }
