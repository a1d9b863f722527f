"""Starting, pausing, resuming and canceling a campaign: each under the campaign's row lock
(so never in the middle of an expansion batch), each in the tenant's audit chain.

A pause stops what is not yet dispatched: no recipient becomes a message, and the messages
still ``queued`` or ``scheduled`` wait (``scheduled``, reason ``campaign_paused``), their TTL
still running. What is with the provider is not recalled. A resume releases them (beat
queues them within a second) and the expansion goes on. A cancel ends what a pause holds:
those messages are ``canceled`` (``campaign_canceled``), and no recipient left becomes one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.domain.queues import QueueNames
from app.domain.reasons import StatusReason
from app.domain.statuses import Outcome, Status
from app.infra.broker import TaskNames
from app.infra.outbox import enqueue
from app.messaging.moves import Move, write_events, write_statuses
from app.models import Campaign, CampaignRecipient, Message
from app.security import audit

HOLD_REASON = "campaign_paused"
# Far past any TTL: a held message waits for a resume or its expiry, never for this.
HELD_UNTIL = datetime(9999, 1, 1, tzinfo=UTC)
CHUNK = 1000

# A completed campaign has made every message, but some may still wait to be dispatched.
ALLOWED = {
    "start": ("draft",),
    "pause": ("running", "completed"),
    "resume": ("paused",),
    "cancel": ("draft", "running", "paused", "completed"),
}


class NotAllowed(Exception):
    """This control does not apply in the campaign's status (resume a running one, say)."""

    def __init__(self, action: str, status: str) -> None:
        super().__init__(f"a {status} campaign cannot {action}")
        self.action = action
        self.status = status


@dataclass(frozen=True)
class Controlled:
    campaign: Campaign
    changed: bool  # False: it already was where the control leads (a repeated pause)
    messages: int  # messages held, released or canceled


def owe_expansion(session: Session, campaign_id: str) -> None:
    """Owe an expansion task: published when (and only if) the transaction commits."""
    enqueue(session, TaskNames.EXPAND_CAMPAIGN, [campaign_id], QueueNames.INTAKE)


def control(
    session: Session, campaign: Campaign, action: str, actor: str, expansions: int = 1
) -> Controlled:
    """Apply ``action`` to the campaign (locked by the caller). The caller commits.
    ``expansions``: how many expansion tasks a start owes (a large campaign's batches go side
    by side from the first, rather than after its first batch)."""
    target = {"start": "running", "pause": "paused", "resume": "running", "cancel": "canceled"}[
        action
    ]
    if campaign.status == target:
        return Controlled(campaign, False, 0)
    if campaign.status not in ALLOWED[action]:
        raise NotAllowed(action, campaign.status)
    now = utcnow()
    moved = 0
    if action == "start":
        campaign.started_at = now
        for _ in range(max(1, expansions)):
            owe_expansion(session, campaign.id)
    elif action == "pause":
        moved = _hold(session, campaign, now)
    elif action == "resume":
        moved = _release(session, campaign, now)
        owe_expansion(session, campaign.id)
    else:
        moved = _cancel(session, campaign, now)
        campaign.finished_at = now
    before = campaign.status
    campaign.status = target
    campaign.updated_at = now
    audit.append(
        session,
        tenant_id=campaign.tenant_id,
        actor=actor,
        action=f"campaign.{action}",
        target=campaign.id,
        change={"from": before, "to": target, "messages": moved},
    )
    return Controlled(campaign, True, moved)


def _waiting(session: Session, campaign: Campaign, statuses: list[str]) -> list[Any]:
    return list(
        session.execute(
            select(Message.id, Message.status, Message.contact_id)
            .where(Message.campaign_id == campaign.id, Message.status.in_(statuses))
            .with_for_update(skip_locked=True)
        )
    )


def _move(
    session: Session,
    campaign: Campaign,
    rows: list[Any],
    target: Status,
    reason: str,
    now: datetime,
    changes: dict[str, Any],
) -> int:
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        moves = [
            Move(
                row.id,
                campaign.tenant_id,
                row.status,
                target.value,
                Outcome.APPLIED,
                "campaign",
                reason=reason,
                contact_id=row.contact_id,
            )
            for row in chunk
        ]
        write_statuses(session, moves)  # each row locked above: every one moves
        write_events(session, moves, now)
        if changes:
            ids = [r.id for r in chunk]
            session.execute(update(Message).where(Message.id.in_(ids)).values(**changes))
    return len(rows)


def _hold(session: Session, campaign: Campaign, now: datetime) -> int:
    rows = [
        r
        for r in _waiting(session, campaign, [Status.QUEUED.value, Status.SCHEDULED.value])
        if r.status == Status.QUEUED.value
    ]
    # Scheduled ones (a send_at, quiet hours, the campaign's rate) are held in place.
    held = session.execute(
        update(Message)
        .where(Message.campaign_id == campaign.id, Message.status == Status.SCHEDULED.value)
        .values(status_reason=HOLD_REASON, not_before=HELD_UNTIL, updated_at=now)
    )
    queued = _move(
        session,
        campaign,
        rows,
        Status.SCHEDULED,
        HOLD_REASON,
        now,
        {"not_before": HELD_UNTIL},
    )
    return queued + int(getattr(held, "rowcount", 0) or 0)


def _release(session: Session, campaign: Campaign, now: datetime) -> int:
    """Held messages due again: at once, or spaced by the campaign's own rate."""
    held = list(
        session.scalars(
            select(Message.id)
            .where(
                Message.campaign_id == campaign.id,
                Message.status == Status.SCHEDULED.value,
                Message.status_reason == HOLD_REASON,
            )
            .order_by(Message.id)
        )
    )
    rate = campaign.rate_per_second
    for start in range(0, len(held), CHUNK):
        chunk = held[start : start + CHUNK]
        if rate is None:
            session.execute(
                update(Message)
                .where(Message.id.in_(chunk))
                .values(not_before=now, status_reason=None, updated_at=now)
            )
            continue
        for n, message_id in enumerate(chunk, start=start):
            session.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(
                    not_before=now + timedelta(seconds=n / rate),
                    status_reason=None,
                    updated_at=now,
                )
            )
    if rate is not None and campaign.started_at is not None:
        # The recipients not yet made follow the released ones: the next slot, counted from
        # the start, is len(held) / rate from now.
        elapsed = (now - campaign.started_at).total_seconds()
        campaign.made = math.ceil(elapsed * rate) + len(held)
    return len(held)


def _cancel(session: Session, campaign: Campaign, now: datetime) -> int:
    rows = _waiting(
        session, campaign, [Status.PENDING.value, Status.QUEUED.value, Status.SCHEDULED.value]
    )
    canceled = _move(
        session, campaign, rows, Status.CANCELED, StatusReason.CAMPAIGN_CANCELED.value, now, {}
    )
    session.execute(
        update(CampaignRecipient)
        .where(CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.state == "pending")
        .values(state="skipped", reason=StatusReason.CAMPAIGN_CANCELED.value)
    )
    return canceled


def recipients_pending(session: Session, campaign_id: str) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.state == "pending"
            )
        )
        or 0
    )
