"""The stuck-work report: messages that stayed in a non-final state past that state's SLA.

Ids, states, ages and the last event only: never a phone number or a body.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.domain.clock import utcnow
from app.models import InboxItem, Message, MessageEvent

# What a message past its SLA in each state is most likely waiting for.
WHY = {
    "pending": "not handed to a lane",
    "scheduled": "due, but not released (is beat running?)",
    "queued": "on its lane, not picked up (are workers running? was the broker restarted?)",
    "dispatched": "provider called; its answer was never recorded (send may have happened)",
    "accepted": "accepted by the provider; no receipt since",
    "sent": "with the carrier; no delivery receipt since",
}


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``10m``, ``2h``, ``1d`` (or plain seconds); ValueError otherwise."""
    text = text.strip().lower()
    unit = _UNITS.get(text[-1:]) if text else None
    number = text[:-1] if unit else text
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration like 30s, 10m, 2h or 1d") from None
    if value < 0 or value != value or value > 3650 * 86400:
        raise ValueError(f"{text!r} is out of range")
    return timedelta(seconds=value * (unit or 1))


@dataclass(frozen=True)
class Window:
    """Which messages count as stuck: per-state SLAs, or one ``older_than`` for every state."""

    slas: dict[str, float]
    older_than: timedelta | None = None

    def cutoff(self, state: str, now: datetime) -> datetime:
        seconds = (
            self.older_than.total_seconds() if self.older_than is not None else self.slas[state]
        )
        return now - timedelta(seconds=seconds)


def stuck_filter(window: Window, now: datetime) -> ColumnElement[bool]:
    clauses = []
    for state in window.slas:
        cutoff = window.cutoff(state, now)
        if state == "scheduled":
            due = func.coalesce(Message.next_attempt_at, Message.not_before, Message.updated_at)
            clauses.append(and_(Message.status == state, due < cutoff))
        else:
            clauses.append(and_(Message.status == state, Message.updated_at < cutoff))
    return or_(*clauses)


def stuck_report(
    session: Session,
    window: Window,
    *,
    tenant_id: str | None = None,
    limit: int = 50,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``{"counts": {state: {lane: n}}, "messages": [...oldest first], "inbox": {...}}``."""
    now = now or utcnow()
    where = [stuck_filter(window, now)]
    if tenant_id is not None:
        where.append(Message.tenant_id == tenant_id)
    counts: dict[str, dict[str, int]] = {}
    for status, lane, n in session.execute(
        select(Message.status, Message.priority, func.count())
        .where(*where)
        .group_by(Message.status, Message.priority)
    ):
        counts.setdefault(status, {})[lane] = int(n)
    rows = list(
        session.scalars(select(Message).where(*where).order_by(Message.updated_at).limit(limit))
    )
    last = _last_events(session, [m.id for m in rows])
    messages = []
    for message in rows:
        since = message.updated_at
        if message.status == "scheduled":
            since = message.next_attempt_at or message.not_before or message.updated_at
        event = last.get(message.id)
        messages.append(
            {
                "id": message.id,
                "tenant_id": message.tenant_id,
                "status": message.status,
                "lane": message.priority,
                "since": since.isoformat(),
                "age_seconds": round((now - since).total_seconds(), 1),
                "reason": WHY.get(message.status, message.status),
                "attempts": message.attempts,
                "last_event": event,
            }
        )
    inbox_where = [InboxItem.processed_at.is_(None), InboxItem.result == "parked"]
    if tenant_id is not None:
        inbox_where.append(InboxItem.tenant_id == tenant_id)
    parked = session.scalar(select(func.count()).select_from(InboxItem).where(*inbox_where))
    return {"counts": counts, "messages": messages, "inbox": {"parked_receipts": int(parked or 0)}}


def _last_events(session: Session, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    newest = (
        select(MessageEvent.message_id, func.max(MessageEvent.id).label("id"))
        .where(MessageEvent.message_id.in_(ids))
        .group_by(MessageEvent.message_id)
        .subquery()
    )
    events = session.scalars(select(MessageEvent).join(newest, newest.c.id == MessageEvent.id))
    return {
        e.message_id: {
            "kind": e.kind,
            "to": e.to_status,
            "outcome": e.outcome,
            "reason": e.reason,
            "source": e.source,
            "at": e.created_at.isoformat(),
        }
        for e in events
    }
