"""The console's lists: held and stuck messages, dead CRM syncs, parked receipts.

Ids, states, reasons and times only: never a phone number or a body.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.messaging.recovery.stuck import Window, stuck_report
from app.models import CrmSync, InboxItem, Message
from app.reports.overview import HOLD_REASONS, hold_reason

LIMIT = 200


def held_messages(
    session: Session, *, tenant_id: str | None = None, reason: str | None = None
) -> list[dict[str, Any]]:
    """Messages held in ``scheduled``, soonest due first."""
    due = func.coalesce(Message.next_attempt_at, Message.not_before)
    query = select(Message).where(Message.status == "scheduled")
    if tenant_id is not None:
        query = query.where(Message.tenant_id == tenant_id)
    if reason == "send_at":
        query = query.where(Message.status_reason.is_(None) | (Message.status_reason == reason))
    elif reason is not None:
        query = query.where(Message.status_reason == reason)
    now = utcnow()
    rows = []
    for message in session.scalars(query.order_by(due, Message.id).limit(LIMIT)):
        when = message.next_attempt_at or message.not_before
        key = hold_reason(message.status_reason)
        rows.append(
            {
                "id": message.id,
                "tenant_id": message.tenant_id,
                "lane": message.priority,
                "reason": key,
                "label": HOLD_REASONS.get(key, key.replace("_", " ")),
                "due": when.isoformat() if when else None,
                "due_in_seconds": round((when - now).total_seconds()) if when else None,
                "attempts": message.attempts,
                "expires_at": message.expires_at.isoformat() if message.expires_at else None,
            }
        )
    return rows


def stuck_messages(
    session: Session, window: Window, *, tenant_id: str | None = None
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = stuck_report(
        session, window, tenant_id=tenant_id, limit=LIMIT
    )["messages"]
    return messages


def dead_syncs(session: Session, *, tenant_id: str | None = None) -> list[dict[str, Any]]:
    query = select(CrmSync).where(CrmSync.status == "dead")
    if tenant_id is not None:
        query = query.where(CrmSync.tenant_id == tenant_id)
    return [
        {
            "id": sync.id,
            "tenant_id": sync.tenant_id,
            "connection_id": sync.connection_id,
            "message_id": sync.message_id,
            "action": sync.action,
            "attempts": sync.attempts,
            # The kind of the last error only: a CRM's error text may quote the contact.
            "reason": (sync.last_error or "").split(":", 1)[0],
            "since": sync.created_at.isoformat(),
        }
        for sync in session.scalars(query.order_by(CrmSync.id.desc()).limit(LIMIT))
    ]


def parked_receipts(session: Session, *, tenant_id: str | None = None) -> list[dict[str, Any]]:
    query = select(InboxItem).where(InboxItem.processed_at.is_(None), InboxItem.result == "parked")
    if tenant_id is not None:
        query = query.where(InboxItem.tenant_id == tenant_id)
    return [
        {
            "id": item.id,
            "tenant_id": item.tenant_id,
            "account_id": item.account_id,
            "provider": item.provider,
            "attempts": item.attempts,
            "reason": item.last_error,
            "received_at": item.received_at.isoformat(),
            "next_attempt_at": item.next_attempt_at.isoformat() if item.next_attempt_at else None,
        }
        for item in session.scalars(query.order_by(InboxItem.received_at).limit(LIMIT))
    ]
