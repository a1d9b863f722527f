"""Per-tenant privacy modes: how long message bodies and webhook payloads are kept.

``body_retention`` (a tenant's setting):
- ``keep``: bodies stay; with ``body_retention_days``, those older are removed.
- ``until_final``: the body is removed once the message is final (delivered counts: only
  a read receipt can follow it, and nothing is re-sent).
- ``none``: metadata only. The body is needed to send, so it is written at intake and
  removed in the transaction that records the provider's acceptance; an inbound message's
  text is never stored (keywords are matched on the event before it is dropped).

A message its provider reports as end-to-end encrypted (a canonical event whose
``metadata.e2ee`` is true) keeps no body in any mode. ``payload_retention_hours`` blanks
the raw webhook payloads processed longer ago than that. Beat applies all of it
(``enforce``) every PRIVACY_INTERVAL seconds; the hot paths apply what they can at once.

"Removed" means the body, the media list and the per-channel alternates are set to NULL
and ``body_removed_at`` records when.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.domain.statuses import FINAL, Status
from app.infra.db import Database
from app.models import InboxItem, Message, Tenant

# The body is still needed while the message may yet be (re)sent.
STILL_SENDING = frozenset({Status.PENDING, Status.SCHEDULED, Status.QUEUED, Status.DISPATCHED})
DONE = frozenset(FINAL | {Status.DELIVERED})
REMOVED_PAYLOAD = ""
_REMOVED: dict[str, Any] = {"body": None, "media": None, "alternates": None}


def reported_e2ee(metadata: dict[str, Any] | None) -> bool:
    return bool(metadata) and (metadata or {}).get("e2ee") is True


def keeps_no_body(tenant: Tenant, metadata: dict[str, Any] | None = None) -> bool:
    """An inbound message's text is not stored for this tenant (or this event)."""
    return tenant.body_retention == "none" or reported_e2ee(metadata)


def remove_bodies(session: Session, message_ids: Collection[str]) -> int:
    """Remove these messages' bodies now: sent for a tenant that keeps none, or reported
    end-to-end encrypted."""
    if not message_ids:
        return 0
    result = session.execute(
        update(Message)
        .where(Message.id.in_(sorted(message_ids)), Message.body_removed_at.is_(None))
        .values(**_REMOVED, body_removed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _bodies(session: Session, tenant_id: str, condition: Any, now: datetime, batch: int) -> int:
    ids = list(
        session.scalars(
            select(Message.id)
            .where(Message.tenant_id == tenant_id, Message.body_removed_at.is_(None), condition)
            .limit(batch)
        )
    )
    if not ids:
        return 0
    session.execute(
        update(Message)
        .where(Message.id.in_(ids))
        .values(**_REMOVED, body_removed_at=now)
        .execution_options(synchronize_session=False)
    )
    return len(ids)


def _condition(tenant: Tenant, now: datetime) -> Any:
    if tenant.body_retention == "none":
        return Message.status.not_in([s.value for s in STILL_SENDING])
    if tenant.body_retention == "until_final":
        return Message.status.in_([s.value for s in DONE])
    if tenant.body_retention_days:
        return Message.created_at < now - timedelta(days=tenant.body_retention_days)
    return None


def enforce(db: Database, batch: int = 1000) -> dict[str, int]:
    """Beat: apply every tenant's mode, a batch per tenant and kind per transaction, until
    nothing is left. Idempotent, and two overlapping runs only race to the same UPDATE."""
    counts = {"bodies": 0, "payloads": 0}
    now = utcnow()
    with db.session() as session:
        tenants = list(
            session.scalars(
                select(Tenant).where(
                    (Tenant.body_retention != "keep")
                    | Tenant.body_retention_days.is_not(None)
                    | Tenant.payload_retention_hours.is_not(None)
                )
            )
        )
        session.expunge_all()
    for tenant in tenants:
        condition = _condition(tenant, now)
        while condition is not None:
            with db.session() as session:
                done = _bodies(session, tenant.id, condition, now, batch)
            counts["bodies"] += done
            if done < batch:
                break
        if tenant.payload_retention_hours:
            cutoff = now - timedelta(hours=tenant.payload_retention_hours)
            while True:
                with db.session() as session:
                    done = _payloads(session, tenant.id, cutoff, now, batch)
                counts["payloads"] += done
                if done < batch:
                    break
    return counts


def _payloads(session: Session, tenant_id: str, cutoff: datetime, now: datetime, batch: int) -> int:
    ids = list(
        session.scalars(
            select(InboxItem.id)
            .where(
                and_(
                    InboxItem.tenant_id == tenant_id,
                    InboxItem.processed_at.is_not(None),
                    InboxItem.processed_at < cutoff,
                    InboxItem.payload_removed_at.is_(None),
                )
            )
            .limit(batch)
        )
    )
    if ids:
        session.execute(
            update(InboxItem)
            .where(InboxItem.id.in_(ids))
            .values(payload=REMOVED_PAYLOAD, payload_removed_at=now)
            .execution_options(synchronize_session=False)
        )
    return len(ids)
