"""A batch of a body campaign's messages made set-based, on Postgres: every message of the
batch alike but for its id, its contact and its reference, and the policy's verdict shared by
every recipient in one zone with one consent state.

So Python does per recipient only what cannot be shared (a lookup, three appends); the rows
go in by column (``insert_columns``): one INSERT of messages and one of transition events per
group of recipients that share a decision (a zone and a consent state: a handful), one of
birth events, one UPDATE of the recipients. The state machine's rules are the same as
``per_recipient``'s, which a test holds row for row: the same policy decides, ``first_status``
gives the status, and a message born final still owes the CRM its event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.crm.owed import FINAL_FOR_CRM
from app.domain.channels import Channel
from app.domain.ids import new_ids
from app.domain.queues import lane_for
from app.domain.segments import count_segments
from app.domain.statuses import Outcome, Status
from app.infra.broker import TaskNames
from app.infra.db import insert_columns
from app.infra.outbox import enqueue
from app.messaging.campaigns.batch import Claimed, Outcomes, contacts_for
from app.messaging.compliance.consent import ConsentState, states_for
from app.messaging.compliance.policy import Candidate, Decision, Verdict, decide_with
from app.messaging.intake.accept import first_status
from app.messaging.moves import Move, write_events
from app.models import Campaign, Message, MessageEvent, Tenant
from app.observability.metrics import count_alike
from config import Settings

_MESSAGES: Any = Message.__table__
_EVENTS: Any = MessageEvent.__table__


def takes(session: Session, campaign: Campaign) -> bool:
    """Whether this way makes the campaign's batches: a body campaign with no rate of its
    own (each message alike, none with a slot of its own), on Postgres."""
    return (
        campaign.template_id is None
        and campaign.rate_per_second is None
        and session.get_bind().dialect.name == "postgresql"
    )


@dataclass
class _Group:
    """Recipients whose messages share a decision: their status, reason and not_before."""

    decision: Decision
    status: Status
    reason: str | None
    not_before: datetime | None
    recipients: list[int] = field(default_factory=list)
    contacts: list[str] = field(default_factory=list)
    references: list[str | None] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


def make_alike(
    session: Session,
    settings: Settings,
    tenant: Tenant,
    campaign: Campaign,
    recipients: list[Claimed],
    account_id: str,
    channel: Channel,
    now: datetime,
    shared: bool = False,
) -> tuple[int, int]:
    """Make the batch's messages; returns how many were made and how many skipped."""
    contacts = contacts_for(session, tenant.id, recipients)
    consent = states_for(session, {(tenant.id, r.phone_index, channel) for r in recipients})
    candidate = Candidate(
        channel=channel,
        priority=campaign.priority,
        quiet_hours=campaign.quiet_hours,
        send_at=campaign.send_at,
    )
    ttl = timedelta(seconds=campaign.ttl_seconds or settings.default_ttl_seconds)
    expires_at = max(now, campaign.send_at or now) + ttl
    groups: dict[tuple[str | None, ConsentState], _Group] = {}
    refused: dict[tuple[str | None, ConsentState], Decision] = {}
    outcomes = Outcomes.empty()
    for recipient in recipients:
        contact = contacts[recipient.phone_index]
        key = (contact.timezone, consent[(tenant.id, recipient.phone_index, channel)])
        group = groups.get(key)
        if group is None:
            no = refused.get(key)
            if no is not None:
                outcomes.skipped(recipient.id, no.reason)
                continue
            decision = decide_with(tenant, key[0], key[1], candidate, now, "intake")
            if decision.verdict is Verdict.REFUSE:
                refused[key] = decision
                outcomes.skipped(recipient.id, decision.reason)
                continue
            group = groups[key] = _Group(decision, *first_status(decision, expires_at))
        group.recipients.append(recipient.id)
        group.contacts.append(contact.id)
        group.references.append(recipient.reference)
    made = sum(len(g.recipients) for g in groups.values())
    ids = iter(new_ids("msg", made))
    for group in groups.values():
        group.ids = [next(ids) for _ in group.recipients]
        for rid, message_id in zip(group.recipients, group.ids, strict=True):
            outcomes.made(rid, message_id)
    if made:
        _write(
            session, tenant, campaign, list(groups.values()), account_id, channel, now, expires_at
        )
    outcomes.write(session)
    if not shared:  # batches that share the row never write it
        campaign.made += made
        campaign.updated_at = now
    queued = next((g.ids[0] for g in groups.values() if g.status is Status.QUEUED), None)
    if queued is not None:  # one wake drains the lane for every message of the batch
        enqueue(session, TaskNames.DISPATCH, [queued], lane_for(campaign.priority), wake=tenant.id)
    return made, len(outcomes.rid) - made


def _write(
    session: Session,
    tenant: Tenant,
    campaign: Campaign,
    groups: list[_Group],
    account_id: str,
    channel: Channel,
    now: datetime,
    expires_at: datetime,
) -> None:
    count = count_segments(campaign.body or "")
    alike: dict[str, Any] = {
        "tenant_id": tenant.id,
        "direction": "outbound",
        "channel": channel,
        "channels": list(campaign.channels),
        "account_id": account_id,
        "body": campaign.body,  # the column type encrypts it: once a statement
        "media": None,
        "priority": campaign.priority,
        "attempts": 0,
        "throttles": 0,
        "expires_at": expires_at,
        "segments": count.segments,
        "encoding": count.encoding,
        "quiet_hours": campaign.quiet_hours,
        "metadata": {},
        "template_id": None,
        "template_version": None,
        "template_locale": None,
        "alternates": None,
        "campaign_id": campaign.id,
        "created_at": now,
        "updated_at": now,
    }
    for group in groups:
        insert_columns(
            session,
            _MESSAGES,
            {"id": group.ids, "contact_id": group.contacts, "external_ref": group.references},
            {
                **alike,
                "status": group.status.value,
                "status_reason": group.reason,
                "not_before": group.not_before,
            },
        )
    event = {
        "tenant_id": tenant.id,
        "kind": "transition",
        "outcome": Outcome.APPLIED.value,
        "source": "campaign",
        "dedupe_key": None,
        "created_at": now,
    }
    every = [i for g in groups for i in g.ids]
    # Every birth first, so each message's birth event precedes its first move (by id).
    insert_columns(
        session,
        _EVENTS,
        {"message_id": every},
        {
            **event,
            "from_status": None,
            "to_status": Status.PENDING.value,
            "reason": "created",
            "data": {},
        },
    )
    count_alike(session, Status.PENDING.value, "created", len(every))
    for group in groups:
        data = {"policy": group.decision.as_data()}
        if group.status.value in FINAL_FOR_CRM:
            # Born final (expired): the CRM hears of it, as of any final status.
            write_events(
                session,
                [
                    Move(
                        message_id,
                        tenant.id,
                        Status.PENDING.value,
                        group.status.value,
                        Outcome.APPLIED,
                        "campaign",
                        reason=group.reason,
                        data=data,
                        contact_id=contact_id,
                    )
                    for message_id, contact_id in zip(group.ids, group.contacts, strict=True)
                ],
                now,
            )
            continue
        insert_columns(
            session,
            _EVENTS,
            {"message_id": group.ids},
            {
                **event,
                "from_status": Status.PENDING.value,
                "to_status": group.status.value,
                "reason": group.reason,
                "data": data,
            },
        )
        count_alike(session, group.status.value, group.reason, len(group.ids))
