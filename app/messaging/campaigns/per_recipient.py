"""A batch of a campaign's messages made one recipient at a time, in Python: the way for a
template campaign (each recipient's content is rendered from its variables), for a campaign
with a rate of its own (each message has its slot), and on the embedded SQLite.

The writes are still set-based: the messages, their events and the recipients' outcomes go
in one statement each. A body campaign without a rate on Postgres takes ``in_bulk`` instead.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from app.content import store as templates
from app.content import templates as t
from app.content.sending import channel_content, parsed_version
from app.content.store import TemplateProblem
from app.content.variables import SHORT_CODE_LENGTH
from app.crm.owed import FINAL_FOR_CRM
from app.domain.channels import Channel
from app.domain.ids import new_id
from app.domain.queues import lane_for
from app.domain.segments import count_segments
from app.domain.statuses import Outcome, Status
from app.infra.broker import TaskNames
from app.infra.db import insert_rows
from app.infra.outbox import enqueue
from app.messaging.campaigns.batch import Claimed, Outcomes, contacts_for
from app.messaging.compliance.consent import states_for
from app.messaging.compliance.policy import Candidate, Decision, Verdict, decide_with
from app.messaging.intake.accept import first_status
from app.messaging.moves import Move, write_events
from app.models import Campaign, Message, ShortLink, Tenant
from config import Settings

# A message waiting for its slot under the campaign's own rate.
RATE_REASON = "campaign_rate"
_MESSAGES: Any = Message.__table__
_LINKS: Any = ShortLink.__table__


class _Renderer:
    """A template campaign's content per recipient, from its pinned version (parsed once)."""

    def __init__(self, session: Session, campaign: Campaign, base_url: str) -> None:
        template = templates.find(session, campaign.tenant_id, campaign.template_id or "")
        assert template is not None and campaign.template_version is not None
        version = templates.version_of(session, template, campaign.template_version)
        self.ready = parsed_version(session, version.id)
        self.base_url = base_url

    def render(
        self, channels: list[Channel], variables: dict[str, Any], locale: str | None
    ) -> tuple[str, dict[str, dict[str, Any]], list[tuple[str, str]]]:
        links: list[tuple[str, str]] = []

        def link(url: str) -> str:
            code = secrets.token_urlsafe(SHORT_CODE_LENGTH * 3 // 4)
            links.append((code, url))
            return f"{self.base_url}/s/{code}"

        tag, rendered = templates.render_version(self.ready, variables, locale, link)
        alternates = {str(k): channel_content(k, rendered) for k in channels}
        for content in alternates.values():
            if content["body"] is not None and len(content["body"]) > t.MAX_TEXT:
                raise TemplateProblem([])
        return tag, alternates, links


def _slot(campaign: Campaign, order: int, now: datetime) -> datetime | None:
    """When the campaign's n-th message is due: its send_at, then spaced by its own rate."""
    start = max([d for d in (campaign.send_at, campaign.started_at) if d is not None] or [now])
    if campaign.rate_per_second is None:
        return campaign.send_at
    return start + timedelta(seconds=order / campaign.rate_per_second)


def _created(message_id: str, tenant_id: str) -> Move:
    """A new message's birth in ``pending``, as every campaign message's first event."""
    return Move(
        message_id,
        tenant_id,
        None,
        Status.PENDING.value,
        Outcome.APPLIED,
        "campaign",
        reason="created",
    )


def make_each(
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
    keys = {(tenant.id, c.phone_index, channel) for c in contacts.values()}
    consent = states_for(session, keys)
    renderer = (
        _Renderer(session, campaign, settings.public_base_url) if campaign.template_id else None
    )
    ttl = timedelta(seconds=campaign.ttl_seconds or settings.default_ttl_seconds)
    channels = list(campaign.channels)
    lane = lane_for(campaign.priority)
    body_count = count_segments(campaign.body or "")
    messages: list[dict[str, Any]] = []
    moves: list[Move] = []
    links: list[dict[str, Any]] = []
    outcomes = Outcomes.empty()
    queued_id: str | None = None
    skipped = 0
    order = campaign.made
    decisions: dict[tuple[str | None, Any, Candidate], Decision] = {}
    for recipient in recipients:
        contact = contacts[recipient.phone_index]
        due = _slot(campaign, order, now)
        candidate = Candidate(
            channel=channel,
            priority=campaign.priority,
            quiet_hours=campaign.quiet_hours,
            send_at=due,
        )
        state = consent[(tenant.id, contact.phone_index, channel)]
        # A pure function of these: recipients in one zone with the same consent share it.
        key = (contact.timezone, state, candidate)
        decision = decisions.get(key)
        if decision is None:
            decision = decide_with(tenant, contact.timezone, state, candidate, now, "intake")
            decisions[key] = decision
        if decision.verdict is Verdict.REFUSE:
            outcomes.skipped(recipient.id, decision.reason)
            skipped += 1
            continue
        expires_at = max(now, due or now) + ttl
        status, reason, not_before = first_status(decision, expires_at)
        if campaign.rate_per_second is not None and due is not None and due > now:
            # The campaign's own rate: never before its slot, however near (the policy
            # sends a send_at this close at once; beat releases each slot within a second).
            if status is Status.QUEUED or reason == "send_at":
                status, reason, not_before = Status.SCHEDULED, RATE_REASON, due
            elif status is Status.SCHEDULED and not_before is not None and not_before < due:
                not_before = due  # quiet hours end before its slot: the slot holds
        body, media, alternates, locale = campaign.body, None, None, None
        count = body_count
        if renderer is not None:
            try:
                locale, rendered, found_links = renderer.render(
                    channels, recipient.variables_dict, contact.locale
                )
            except TemplateProblem:
                outcomes.skipped(recipient.id, "content_rejected")
                skipped += 1
                continue
            first = rendered[channels[0]]
            body = first["body"]
            media = json.dumps(first["media"]) if first["media"] else None
            same = all(
                (c["body"], c["media"]) == (first["body"], first["media"]) and len(c) == 2
                for c in rendered.values()
            )
            alternates = None if same else json.dumps(rendered)
            count = count_segments(body or "")
            links.extend(
                {"code": code, "tenant_id": tenant.id, "url": url, "created_at": now}
                for code, url in found_links
            )
        message_id = new_id("msg")
        order += 1
        messages.append(
            {
                "id": message_id,
                "tenant_id": tenant.id,
                "direction": "outbound",
                "channel": channel,
                "channels": channels,
                "account_id": account_id,
                "contact_id": contact.id,
                "body": body,  # the column types encrypt body and alternates
                "media": media,
                "priority": campaign.priority,
                "status": status.value,
                "status_reason": reason,
                "attempts": 0,
                "throttles": 0,
                "not_before": not_before,
                "expires_at": expires_at,
                "segments": count.segments,
                "encoding": count.encoding,
                "quiet_hours": campaign.quiet_hours,
                "external_ref": recipient.reference,
                "metadata": {},
                "template_id": campaign.template_id,
                "template_version": campaign.template_version,
                "template_locale": locale,
                "alternates": alternates,
                "campaign_id": campaign.id,
                "created_at": now,
                "updated_at": now,
            }
        )
        policy = {"policy": decision.as_data()}
        moves.append(_created(message_id, tenant.id))
        moves.append(
            Move(
                message_id,
                tenant.id,
                Status.PENDING.value,
                status.value,
                Outcome.APPLIED,
                "campaign",
                reason=reason,
                data=policy,
                # The CRM hears of a final status only (one born expired, say).
                contact_id=contact.id if status.value in FINAL_FOR_CRM else None,
            )
        )
        outcomes.made(recipient.id, message_id)
        if status is Status.QUEUED and queued_id is None:
            queued_id = message_id
    if messages:
        insert_rows(session, _MESSAGES, messages)
    if links:
        session.execute(insert(_LINKS), links)
    write_events(session, moves, now)
    outcomes.write(session)
    if not shared:  # batches that share the row never write it (the order is the rate's)
        campaign.made = order
        campaign.updated_at = now
    if queued_id is not None:  # one wake drains the lane for every message of the batch
        enqueue(session, TaskNames.DISPATCH, [queued_id], lane, wake=tenant.id)
    return len(messages), skipped
