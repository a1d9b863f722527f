"""The operator's overview: per lane and per tenant, what waits where, and since when.

Every figure is one grouped query over a partial or covering index, so the page
answers in milliseconds at millions of stored messages (scripts/bench/console.py).
Ids and counts only: never a phone number or a body.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.crm.budget import daily_rate, limits_of, window_rate
from app.crm.syncs import budget_view
from app.domain.clock import utcnow
from app.infra.ratelimit import RateLimiter
from app.messaging.recovery.stuck import Window, stuck_filter
from app.models import Campaign, CampaignRecipient, CrmConnection, CrmSync, InboxItem, Message

LANES = ("urgent", "normal", "bulk")
IN_FLIGHT = ("dispatched",)
WITH_PROVIDER = ("accepted", "sent")
# Why a message is held (its status reason while ``scheduled``), in words.
HOLD_REASONS = {
    "quiet_hours": "quiet hours",
    "send_at": "send_at",
    "retry": "backoff (retry)",
    "throttled": "backoff (provider throttled)",
    "rate_limit": "rate limit slot",
}
# Dead: retries ran out (Sidekiq's dead set), counted over this window.
DEAD_WINDOW = timedelta(days=7)


def hold_reason(status_reason: str | None) -> str:
    """A held message's reason as the overview groups it (policy rules other than quiet
    hours, a frequency cap say, keep their own name)."""
    return status_reason or "send_at"


@dataclass
class LaneRow:
    tenant_id: str
    lane: str
    queued: int = 0
    oldest_queued_seconds: float | None = None
    held: int = 0
    in_flight: int = 0


@dataclass
class Overview:
    at: datetime
    lanes: list[LaneRow]
    held: list[dict[str, Any]]
    with_provider: list[dict[str, Any]]
    stuck: dict[str, int]
    dead: list[dict[str, Any]]
    receipts_parked: int
    receipts_waiting: int
    crm: list[dict[str, Any]]
    totals: dict[str, int] = field(default_factory=dict)
    # Campaigns by status, and the recipients of open ones not yet made into messages.
    campaigns: dict[str, int] = field(default_factory=dict)
    campaign_recipients_pending: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "totals": self.totals,
            "lanes": [vars(row) for row in self.lanes],
            "held": self.held,
            "with_provider": self.with_provider,
            "stuck": self.stuck,
            "dead": self.dead,
            "receipts": {"parked": self.receipts_parked, "waiting": self.receipts_waiting},
            "crm": self.crm,
            "campaigns": {
                "by_status": self.campaigns,
                "recipients_pending": self.campaign_recipients_pending,
            },
        }


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round(max(0.0, (now - then).total_seconds()), 1)


def overview(
    session: Session,
    window: Window,
    limiter: RateLimiter | None = None,
    tenant_id: str | None = None,
) -> Overview:
    """Everything the overview shows, for one tenant or all."""
    now = utcnow()

    def scoped(query: Any, column: Any = Message.tenant_id) -> Any:
        return query if tenant_id is None else query.where(column == tenant_id)

    rows: dict[tuple[str, str], LaneRow] = {}

    def row(tenant: str, lane: str) -> LaneRow:
        return rows.setdefault((tenant, lane), LaneRow(tenant, lane))

    # Queued: the lane's partial index (priority, tenant_id, id); ids sort by creation,
    # so the oldest is the smallest id, and its age is read from the message.
    queued = session.execute(
        scoped(
            select(Message.priority, Message.tenant_id, func.count(), func.min(Message.updated_at))
            .where(Message.status == "queued")
            .group_by(Message.priority, Message.tenant_id)
        )
    ).all()
    for lane, tenant, count, oldest in queued:
        lane_row = row(tenant, lane)
        lane_row.queued = count
        lane_row.oldest_queued_seconds = _age(now, oldest)

    # Held: the partial index on scheduled messages (status_reason, tenant_id).
    held_rows = session.execute(
        scoped(
            select(
                Message.status_reason,
                Message.tenant_id,
                Message.priority,
                func.count(),
                func.min(func.coalesce(Message.next_attempt_at, Message.not_before)),
                func.max(func.coalesce(Message.next_attempt_at, Message.not_before)),
            )
            .where(Message.status == "scheduled")
            .group_by(Message.status_reason, Message.tenant_id, Message.priority)
        )
    ).all()
    held: dict[tuple[str, str], dict[str, Any]] = {}
    for reason, tenant, lane, count, first_due, last_due in held_rows:
        row(tenant, lane).held += count
        key = (hold_reason(reason), tenant)
        entry = held.setdefault(
            key,
            {
                "reason": key[0],
                "label": HOLD_REASONS.get(key[0], key[0].replace("_", " ")),
                "tenant_id": tenant,
                "count": 0,
                "next_due": None,
                "last_due": None,
            },
        )
        entry["count"] += count
        for name, value, pick in (("next_due", first_due, min), ("last_due", last_due, max)):
            if value is not None:
                current = entry[name]
                entry[name] = value if current is None else pick(current, value)
    held_list = sorted(held.values(), key=lambda h: (h["tenant_id"], h["reason"]))
    for entry in held_list:
        for name in ("next_due", "last_due"):
            entry[name] = entry[name].isoformat() if entry[name] is not None else None

    # In flight and with the provider: (status, updated_at) index.
    flight = session.execute(
        scoped(
            select(Message.status, Message.tenant_id, Message.priority, func.count())
            .where(Message.status.in_((*IN_FLIGHT, *WITH_PROVIDER)))
            .group_by(Message.status, Message.tenant_id, Message.priority)
        )
    ).all()
    with_provider: dict[tuple[str, str], int] = {}
    for status, tenant, lane, count in flight:
        if status in IN_FLIGHT:
            row(tenant, lane).in_flight += count
        else:
            with_provider[(tenant, status)] = with_provider.get((tenant, status), 0) + count

    # Stuck: past each state's SLA, as the stuck report counts it (a range per state on
    # the (status, updated_at) index; scheduled ones by when they were due).
    stuck = dict.fromkeys(window.slas, 0)
    for status, count in session.execute(
        scoped(
            select(Message.status, func.count())
            .where(stuck_filter(window, now))
            .group_by(Message.status)
        )
    ).all():
        stuck[status] = int(count)

    dead_rows = session.execute(
        scoped(
            select(Message.tenant_id, func.count())
            .where(
                Message.status == "failed",
                Message.updated_at >= now - DEAD_WINDOW,
                Message.status_reason == "retries_exhausted",
            )
            .group_by(Message.tenant_id)
        )
    ).all()
    dead = [{"tenant_id": t, "kind": "messages", "count": c} for t, c in dead_rows]
    dead_syncs = session.execute(
        scoped(
            select(CrmSync.tenant_id, func.count())
            .where(CrmSync.status == "dead")
            .group_by(CrmSync.tenant_id),
            CrmSync.tenant_id,
        )
    ).all()
    dead += [{"tenant_id": t, "kind": "crm_syncs", "count": c} for t, c in dead_syncs]

    # Receipts: the unprocessed partial index; parked ones wait an hour between tries.
    receipts = dict(
        session.execute(
            scoped(
                select(InboxItem.result == "parked", func.count())
                .where(InboxItem.processed_at.is_(None))
                .group_by(InboxItem.result == "parked"),
                InboxItem.tenant_id,
            )
        ).all()
    )

    lanes = sorted(rows.values(), key=lambda r: (r.tenant_id, LANES.index(r.lane)))
    overview = Overview(
        at=now,
        lanes=lanes,
        held=held_list,
        with_provider=[
            {"tenant_id": t, "status": s, "count": c} for (t, s), c in sorted(with_provider.items())
        ],
        stuck=stuck,
        dead=dead,
        receipts_parked=int(receipts.get(True, 0)),
        receipts_waiting=int(receipts.get(False, 0)),
        crm=crm_backlog(session, limiter, tenant_id),
    )
    overview.campaigns = {
        status: int(n)
        for status, n in session.execute(
            scoped(select(Campaign.status, func.count()), Campaign.tenant_id).group_by(
                Campaign.status
            )
        )
    }
    overview.campaign_recipients_pending = int(
        session.scalar(
            scoped(
                select(func.count()).where(CampaignRecipient.state == "pending"),
                CampaignRecipient.tenant_id,
            )
        )
        or 0
    )
    overview.totals = {
        "queued": sum(r.queued for r in lanes),
        "held": sum(r.held for r in lanes),
        "in_flight": sum(r.in_flight for r in lanes),
        "stuck": sum(stuck.values()),
        "dead": sum(d["count"] for d in dead),
        "receipts_parked": overview.receipts_parked,
        "crm_backlog": sum(c["backlog"] for c in overview.crm),
    }
    return overview


def crm_backlog(
    session: Session, limiter: RateLimiter | None, tenant_id: str | None = None
) -> list[dict[str, Any]]:
    """Each active connection: syncs pending (the pending partial index), dead, and the
    budget it has left now (calls in its window, and its share of the day)."""
    query = select(CrmConnection).where(CrmConnection.active.is_(True))
    if tenant_id is not None:
        query = query.where(CrmConnection.tenant_id == tenant_id)
    connections = list(session.scalars(query.order_by(CrmConnection.id)))
    if not connections:
        return []
    counts = {
        (c, s): n
        for c, s, n in session.execute(
            select(CrmSync.connection_id, CrmSync.status, func.count())
            .where(
                CrmSync.connection_id.in_([c.id for c in connections]),
                CrmSync.status.in_(("pending", "running", "dead")),
            )
            .group_by(CrmSync.connection_id, CrmSync.status)
        ).all()
    }
    now = utcnow()
    found = []
    for connection in connections:
        view = budget_view(connection, now)
        limits = limits_of(connection.kind, connection.limits)
        left: dict[str, float | None] = {"calls": None, "daily": None}
        for name, rate in (("calls", window_rate(limits)), ("daily", daily_rate(limits))):
            if rate is not None and limiter is not None:
                value = limiter.peek(session, f"crm:{connection.id}:{name}", rate)
                left[name] = None if math.isnan(value) else math.floor(value)
        found.append(
            {
                "connection_id": connection.id,
                "tenant_id": connection.tenant_id,
                "kind": connection.kind,
                "backlog": counts.get((connection.id, "pending"), 0)
                + counts.get((connection.id, "running"), 0),
                "dead": counts.get((connection.id, "dead"), 0),
                "calls_left": left["calls"],
                "daily_left": left["daily"],
                "waiting_until": view["waiting_until"],
                "reason": view["reason"],
            }
        )
    return found
