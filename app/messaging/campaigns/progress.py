"""Where a campaign stands: its recipients and messages counted, its send rate, when it should
finish, and what holds it back. A handful of grouped counts over two indexes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.domain.statuses import Status
from app.models import Campaign, CampaignRecipient, Message

# Not yet handed to a provider: what a pause holds and what the estimate still waits for.
WAITING = (Status.PENDING.value, Status.SCHEDULED.value, Status.QUEUED.value)
RATE_WINDOW = timedelta(seconds=60)
# A scheduled message's reason, as "what holds it" names it.
HOLDS = {
    "quiet_hours": "quiet_hours",
    "campaign_paused": "paused",
    "campaign_rate": "rate_limit",
    "send_at": "send_at",
    "rate_limited": "rate_limit",
    "throttled": "rate_limit",
}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def counts(session: Session, campaign: Campaign, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    recipients: dict[str, int] = {"pending": 0, "made": 0, "skipped": 0}
    skipped_by: dict[str, int] = {}
    for state, reason, n in session.execute(
        select(CampaignRecipient.state, CampaignRecipient.reason, func.count())
        .where(CampaignRecipient.campaign_id == campaign.id)
        .group_by(CampaignRecipient.state, CampaignRecipient.reason)
    ):
        recipients[state] = recipients.get(state, 0) + n
        if state == "skipped" and reason:
            skipped_by[reason] = skipped_by.get(reason, 0) + n
    by_status: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    held: dict[str, int] = {}
    for status, reason, n in session.execute(
        select(Message.status, Message.status_reason, func.count())
        .where(Message.campaign_id == campaign.id)
        .group_by(Message.status, Message.status_reason)
    ):
        by_status[status] = by_status.get(status, 0) + n
        if reason:
            by_reason[reason] = by_reason.get(reason, 0) + n
        if status == Status.SCHEDULED.value:
            hold = HOLDS.get(reason or "", "send_at" if campaign.send_at else "retry")
            held[hold] = held.get(hold, 0) + n
    recent = int(
        session.scalar(
            select(func.count()).where(
                Message.campaign_id == campaign.id,
                Message.status.not_in(WAITING),
                Message.updated_at >= now - RATE_WINDOW,
            )
        )
        or 0
    )
    rate = recent / RATE_WINDOW.total_seconds()
    left = recipients["pending"] + sum(by_status.get(s, 0) for s in WAITING)
    total = sum(recipients.values())
    finishes = None
    if campaign.status in ("running", "completed") and left == 0:
        finishes = _iso(campaign.finished_at or now)
    elif campaign.status in ("running", "completed") and rate > 0:
        finishes = _iso(now + timedelta(seconds=left / rate))
    if campaign.status == "paused":
        held["paused"] = held.get("paused", 0) + recipients["pending"]
    return {
        "recipients": {
            "total": total,
            **recipients,
            "skipped_by_reason": dict(sorted(skipped_by.items())),
            "invalid_rows": campaign.invalid_rows,
            "duplicate_rows": campaign.duplicate_rows,
        },
        "messages": {
            "total": sum(by_status.values()),
            "by_status": dict(sorted(by_status.items())),
            "by_reason": dict(sorted(by_reason.items())),
        },
        "sent_per_second": round(rate, 2),
        "left": left,
        "estimated_finish": finishes,
        "held_by": dict(sorted(held.items())),
    }


def view(campaign: Campaign, progress: dict[str, Any] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": campaign.id,
        "name": campaign.name,
        "status": campaign.status,
        "template": None
        if campaign.template_id is None
        else {"id": campaign.template_id, "version": campaign.template_version},
        "body": campaign.body,
        "channels": campaign.channels,
        "account_id": campaign.account_id,
        "priority": campaign.priority,
        "ttl_seconds": campaign.ttl_seconds,
        "send_at": _iso(campaign.send_at),
        "quiet_hours": campaign.quiet_hours,
        "rate_per_second": campaign.rate_per_second,
        "created_at": _iso(campaign.created_at),
        "started_at": _iso(campaign.started_at),
        "finished_at": _iso(campaign.finished_at),
    }
    if progress is not None:
        found.update(progress)
    return found
