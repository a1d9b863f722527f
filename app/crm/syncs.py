"""Applying CRM syncs: a contact's writes in order, the CRM called outside any transaction.

A sync is claimed (``running``, with a lease in ``next_attempt_at``) in one short
transaction, sent, and its outcome recorded in another. Only a contact's oldest
unfinished sync may be claimed, so a contact is created before its activities and
writes apply in the order their facts happened. A worker lost mid-call leaves a
lease that runs out; the beat re-drive then hands the sync on again, and since
every write is idempotent by its external id, the CRM sees it once.

Outcomes: done; throttled (wait ``retry_after``, not an attempt); retryable (jittered
backoff held in the database, dead after ``CRM_MAX_ATTEMPTS``); permanent (dead, with
its reason, re-drivable).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from app.broker import QueueNames, TaskNames
from app.crm import connector_for
from app.crm.base import (
    CrmPermanent,
    CrmRetryable,
    CrmThrottled,
    MessageFacts,
    SyncRequest,
    SyncResult,
)
from app.db import Database
from app.messaging.backoff import retry_delay
from app.models import Contact, CrmConnection, CrmSync, Message
from app.models.types import utcnow
from app.outbox import enqueue
from config import Settings

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
UNFINISHED = ("pending", "running")


@dataclass(frozen=True)
class Claimed:
    sync_id: int
    kind: str
    config: dict[str, Any]
    request: SyncRequest


def _ref(raw: str | None) -> dict[str, str]:
    kind, _, remote = (raw or "").partition(":")
    return {"type": kind, "id": remote} if remote else {}


def _dead(sync: CrmSync, why: str) -> str:
    sync.status, sync.last_error, sync.next_attempt_at = "dead", why[:300], None
    return "dead"


def claim_next(db: Database, connection_id: str, contact_id: str) -> Claimed | str:
    with db.session() as session:
        sync = session.scalar(
            select(CrmSync)
            .where(
                CrmSync.connection_id == connection_id,
                CrmSync.contact_id == contact_id,
                CrmSync.status.in_(UNFINISHED),
            )
            .order_by(CrmSync.id)
            .limit(1)
            .with_for_update()
        )
        if sync is None:
            return "idle"
        now = utcnow()
        if sync.next_attempt_at is not None and sync.next_attempt_at > now:
            return "waiting"  # backing off, or another worker holds its lease
        connection = session.get(CrmConnection, connection_id)
        contact = session.get(Contact, contact_id)
        if connection is None or not connection.active:
            return _dead(sync, "permanent: the CRM connection was removed")
        if contact is None or not contact.phone:
            return _dead(sync, "permanent: the contact was erased")
        message = session.get(Message, sync.message_id) if sync.message_id else None
        known_activity = None
        if message is not None:
            known_activity = session.scalar(
                select(CrmSync.result["activity"].as_string())
                .where(
                    CrmSync.connection_id == connection_id,
                    CrmSync.message_id == message.id,
                    CrmSync.status == "done",
                )
                .order_by(CrmSync.id.desc())
                .limit(1)
            )
        request = SyncRequest(
            action=sync.action,
            external_id=f"{connection_id}:{sync.source_key}",
            phone=contact.phone,
            known_contact=_ref(contact.crm_refs.get(connection_id)),
            message=MessageFacts(
                id=message.id,
                direction=message.direction,
                channel=message.channel,
                body=message.body,
                status=message.status,
                status_reason=message.status_reason,
                at=message.created_at,
            )
            if message is not None
            else None,
            known_activity=known_activity or None,
            details=dict(sync.payload),
            # Never claimed before: no lease ran out, no attempt or throttle was recorded.
            first_try=sync.status == "pending"
            and sync.attempts == 0
            and sync.throttles == 0
            and not sync.result.get("claimed"),
        )
        sync.status, sync.next_attempt_at = "running", now + LEASE
        sync.result = {**sync.result, "claimed": True}
        return Claimed(sync.id, connection.kind, json.loads(connection.config), request)


def send(claimed: Claimed) -> SyncResult | Exception:
    try:
        return connector_for(claimed.kind, claimed.config).apply(claimed.request)
    except (CrmThrottled, CrmRetryable, CrmPermanent) as exc:
        return exc
    except Exception as exc:  # a connector bug or an unexpected answer: retry, and say so
        log.exception("CRM connector raised", extra={"sync_id": claimed.sync_id})
        return CrmRetryable(f"unexpected: {type(exc).__name__}")


def record(db: Database, settings: Settings, sync_id: int, outcome: SyncResult | Exception) -> str:
    with db.session() as session:
        sync = session.scalar(select(CrmSync).where(CrmSync.id == sync_id).with_for_update())
        if sync is None or sync.status != "running":
            return "late"  # re-driven meanwhile: the other run records it
        now = utcnow()
        if isinstance(outcome, SyncResult):
            sync.status, sync.done_at, sync.next_attempt_at = "done", now, None
            sync.result = {"contact": outcome.contact, "activity": outcome.activity}
            sync.last_error = None
            if outcome.contact.get("id"):
                contact = session.get(Contact, sync.contact_id)
                if contact is not None and contact.phone:
                    refs = dict(contact.crm_refs or {})
                    refs[sync.connection_id] = f"{outcome.contact['type']}:{outcome.contact['id']}"
                    contact.crm_refs = refs
            return "done"
        if isinstance(outcome, CrmThrottled):
            sync.status, sync.throttles = "pending", sync.throttles + 1
            sync.next_attempt_at = now + timedelta(seconds=max(0.5, outcome.retry_after))
            sync.last_error = f"throttled: {outcome.detail}"[:300]
            return "throttled"
        if isinstance(outcome, CrmPermanent):
            return _dead(sync, f"permanent: {outcome.detail}")
        detail = outcome.detail if isinstance(outcome, CrmRetryable) else str(outcome)
        sync.attempts += 1
        if sync.attempts >= settings.crm_max_attempts:
            return _dead(sync, f"retries exhausted: {detail}")
        sync.status, sync.last_error = "pending", f"retryable: {detail}"[:300]
        sync.next_attempt_at = now + retry_delay(
            sync.attempts, settings.crm_retry_base_seconds, settings.crm_retry_max_seconds
        )
        return "retry"


def process_contact(
    db: Database, settings: Settings, connection_id: str, contact_id: str, limit: int = 50
) -> list[str]:
    """Apply the contact's due syncs in order until one must wait; returns what happened."""
    results: list[str] = []
    for _ in range(limit):
        claimed = claim_next(db, connection_id, contact_id)
        if isinstance(claimed, str):
            results.append(claimed)
            if claimed != "dead":
                break
            continue
        result = record(db, settings, claimed.sync_id, send(claimed))
        results.append(result)
        if result not in ("done", "dead"):
            break
    return results


def redrive_due(db: Database, batch: int = 500) -> int:
    """Owe a task for every contact with a due sync (or a lease that ran out)."""
    now = utcnow()
    with db.session() as session:
        pairs = session.execute(
            select(CrmSync.connection_id, CrmSync.contact_id)
            .where(CrmSync.status.in_(UNFINISHED), CrmSync.next_attempt_at <= now)
            .group_by(CrmSync.connection_id, CrmSync.contact_id)
            .limit(batch)
        ).all()
        # A lease that ran out was a worker lost mid-call: the sync is due again.
        session.execute(
            update(CrmSync)
            .where(CrmSync.status == "running", CrmSync.next_attempt_at <= now)
            .values(status="pending")
            .execution_options(synchronize_session=False)
        )
        for connection_id, contact_id in pairs:
            enqueue(session, TaskNames.CRM_SYNC, [connection_id, contact_id], QueueNames.CRM)
    return len(pairs)


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
    for connection_id, contact_id in sorted(pairs):
        enqueue(session, TaskNames.CRM_SYNC, [connection_id, contact_id], QueueNames.CRM)
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
    rows = session.scalars(query.order_by(CrmSync.id).limit(limit))
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
            "reason": (sync.last_error or "waiting").split(":", 1)[0],
        }
        for sync in rows
    ]
