"""Turning a validated send intent into a persisted message and its owed dispatch.

All of it happens in the caller's one transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.channels import Channel
from app.domain.clock import utcnow
from app.domain.ids import new_id
from app.domain.queues import lane_for
from app.domain.reasons import StatusReason
from app.domain.segments import count_segments
from app.domain.statuses import Status
from app.infra.broker import TaskNames
from app.infra.outbox import enqueue
from app.messaging.compliance.policy import Candidate, Decision, Verdict, decide
from app.messaging.contacts import get_or_create_contact
from app.messaging.intake.intents import SendIntent
from app.messaging.intake.routing import choose_route
from app.messaging.states import record_created
from app.models import Message, Tenant
from config import Settings

if TYPE_CHECKING:
    from app.content.sending import FromTemplate


class PolicyRefused(Exception):
    """The policy refused the intent (opted out, no consent, an override not allowed)."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.detail)
        self.decision = decision


class IdempotencyConflict(Exception):
    """The key was used before with a different payload."""

    def __init__(self, message_id: str) -> None:
        super().__init__(message_id)
        self.message_id = message_id


@dataclass(frozen=True)
class IntakeResult:
    message: Message
    created: bool


def find_by_idempotency_key(session: Session, tenant_id: str, key: str) -> Message | None:
    return session.scalar(
        select(Message).where(Message.tenant_id == tenant_id, Message.idempotency_key == key)
    )


def replay_or_conflict(existing: Message, payload_hash: str) -> IntakeResult:
    if existing.request_hash != payload_hash:
        raise IdempotencyConflict(existing.id)
    return IntakeResult(existing, created=False)


def expiry_of(settings: Settings, intent: SendIntent, now: datetime) -> datetime:
    """The TTL runs from when the sender wants it out: send_at, or now."""
    ttl = intent.ttl_seconds or settings.default_ttl_seconds
    return max(now, intent.send_at or now) + timedelta(seconds=ttl)


def candidate_of(intent: SendIntent, channel: Channel, purpose: str | None = None) -> Candidate:
    return Candidate(
        channel=channel,
        priority=intent.priority,
        quiet_hours=intent.quiet_hours,
        purpose=purpose,
        send_at=intent.send_at,
    )


def first_status(
    decision: Decision, expires_at: datetime
) -> tuple[Status, str | None, datetime | None]:
    """A new message's status, its reason and ``not_before``, from the policy's (not
    refusing) decision: queued; scheduled until the deferral ends; or expired when that
    is past its TTL (never sent late)."""
    not_before = decision.until
    if not_before is None:
        return Status.QUEUED, None, None
    if not_before >= expires_at:
        return Status.EXPIRED, StatusReason.EXPIRED.value, not_before
    return Status.SCHEDULED, decision.rule, not_before


def media_json(intent: SendIntent) -> str | None:
    """The media list as stored (a JSON text, encrypted by the column)."""
    if not intent.media:
        return None
    return json.dumps([m.model_dump(mode="json") for m in intent.media])


def accept_intent(
    session: Session,
    settings: Settings,
    tenant: Tenant,
    intent: SendIntent,
    *,
    idempotency_key: str | None,
    payload_hash: str,
    source: str = "api",
    purpose: str | None = None,
    template: FromTemplate | None = None,
) -> IntakeResult:
    """Persist the intent and owe its dispatch. The caller commits.

    Raises IdempotencyConflict, PolicyRefused, or routing.NoRoute when no account can carry it.
    A message the policy defers past its TTL is born ``expired``: never sent late.
    """
    tenant_id = tenant.id
    if idempotency_key is not None:
        existing = find_by_idempotency_key(session, tenant_id, idempotency_key)
        if existing is not None:
            return replay_or_conflict(existing, payload_hash)

    account_id, channel = choose_route(session, tenant_id, list(intent.channels), intent.account_id)
    contact = get_or_create_contact(session, tenant_id, intent.to)
    now = utcnow()
    expires_at = expiry_of(settings, intent, now)
    candidate = candidate_of(intent, channel, purpose)
    decision = decide(session, tenant, contact, candidate, now, "intake")
    if decision.verdict is Verdict.REFUSE:
        raise PolicyRefused(decision)
    status, reason, not_before = first_status(decision, expires_at)
    scheduled = status is not Status.QUEUED
    count = count_segments(intent.body or "")
    message = Message(
        id=new_id("msg"),
        tenant_id=tenant_id,
        direction="outbound",
        channel=channel,
        channels=list(intent.channels),
        account_id=account_id,
        contact_id=contact.id,
        body=intent.body,
        media=media_json(intent),
        priority=intent.priority,
        status=status.value,
        status_reason=reason,
        not_before=not_before,
        expires_at=expires_at,
        segments=count.segments,
        encoding=count.encoding,
        quiet_hours=intent.quiet_hours,
        purpose=purpose,
        journey_id=intent.journey_id,
        external_ref=intent.external_ref,
        metadata_=intent.metadata,
        idempotency_key=idempotency_key,
        request_hash=payload_hash,
        created_at=now,
        updated_at=now,
    )
    if template is not None:
        message.template_id = template.template_id
        message.template_version = template.version
        message.template_locale = template.locale
        message.alternates = json.dumps(template.alternates) if template.alternates else None
        session.add_all(template.short_links(tenant_id))
    session.add(message)
    record_created(session, message, source=source, data={"policy": decision.as_data()})
    if not scheduled:
        lane = lane_for(intent.priority)
        enqueue(session, TaskNames.DISPATCH, [message.id], lane, wake=message.tenant_id)
    return IntakeResult(message, created=True)
