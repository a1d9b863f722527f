"""A running campaign's recipients becoming messages: a batch at a time, set-based.

Each batch is one transaction: the campaign's row locked (a pause or a cancel waits for the
batch, and a batch sees a pause that came first), its pending recipients claimed, their
contacts found or created in two statements, their consent read in two, the policy asked for
each in memory (consent, quiet hours in the recipient's zone, the TTL), then the messages,
their first events and one coalescing dispatch wake written in bulk. A worker killed
mid-batch leaves the batch as it was: the recipients are still ``pending``, and the next
expansion makes each a message exactly once.

Each message is like any other from then on: the same state machine, claims, receipts, CRM
writes and analytics; consent, quiet hours and the TTL are checked again at each claim.
A campaign's own rate spaces its messages: the n-th is due at ``start + n / rate``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from app.content import store as templates
from app.content import templates as t
from app.content.sending import channel_content, parsed_version
from app.content.store import TemplateProblem
from app.content.variables import SHORT_CODE_LENGTH
from app.crm.owed import FINAL_FOR_CRM
from app.domain.channels import Channel
from app.domain.clock import utcnow
from app.domain.ids import new_id
from app.domain.phones import timezone_for
from app.domain.queues import lane_for
from app.domain.segments import count_segments
from app.domain.statuses import Outcome, Status
from app.infra.broker import TaskNames
from app.infra.db import Database, insert_rows
from app.infra.outbox import enqueue
from app.messaging.compliance.consent import states_for
from app.messaging.compliance.policy import Candidate, Decision, Verdict, decide_with
from app.messaging.intake.accept import first_status
from app.messaging.intake.routing import NoRoute, choose_route
from app.messaging.moves import Move, write_events
from app.models import Campaign, CampaignRecipient, Contact, Message, ShortLink, Tenant
from config import Settings

# A message waiting for its slot under the campaign's own rate.
RATE_REASON = "campaign_rate"
_MESSAGES: Any = Message.__table__
_CONTACTS: Any = Contact.__table__
_RECIPIENTS: Any = CampaignRecipient.__table__
_LINKS: Any = ShortLink.__table__


@dataclass(frozen=True)
class Expanded:
    """One batch: messages made, recipients skipped, and whether any are left."""

    made: int
    skipped: int
    more: bool
    # Every expansion slot of the campaign was taken: other batches are at work.
    busy: bool = False
    # Made side by side with others of the campaign (Postgres, no rate of its own).
    shared: bool = False


@dataclass(frozen=True)
class _Contact:
    id: str
    phone_index: str
    timezone: str | None
    locale: str | None


def _contacts(session: Session, tenant_id: str, phones: dict[str, str]) -> dict[str, _Contact]:
    """Each phone's contact, by blind index: found, or created (three statements at most)."""
    wanted = {index: phone for phone, index in phones.items()}
    columns = (Contact.id, Contact.phone_index, Contact.timezone, Contact.locale)

    def found_of(indexes: list[str]) -> dict[str, _Contact]:
        query = select(*columns).where(
            Contact.tenant_id == tenant_id, Contact.phone_index.in_(indexes)
        )
        return {row.phone_index: _Contact(*row) for row in session.execute(query)}

    found = found_of(list(wanted))
    missing: list[dict[str, Any]] = [
        {
            "id": new_id("con"),
            "tenant_id": tenant_id,
            "phone": phone,  # the column type encrypts it
            "phone_index": index,
            "timezone": timezone_for(phone),
            "locale": None,
            "crm_refs": {},
            "created_at": utcnow(),
        }
        for index, phone in wanted.items()
        if index not in found
    ]
    if missing:
        insert_rows(session, _CONTACTS, missing, ignore=["tenant_id", "phone_index"])
        found.update(found_of([m["phone_index"] for m in missing]))
    return found


@dataclass(frozen=True)
class _Recipient:
    id: int
    phone: str
    phone_index: str
    variables: str | None
    reference: str | None

    @property
    def variables_dict(self) -> dict[str, Any]:
        return dict(json.loads(self.variables)) if self.variables else {}


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


def expand_batch(
    db: Database, settings: Settings, campaign_id: str, size: int, parallel: int = 1
) -> Expanded:
    """Make up to ``size`` of the campaign's pending recipients into messages, in one
    transaction. Nothing happens unless the campaign is running.

    On Postgres a campaign without a rate of its own takes up to ``parallel`` batches at
    once: each holds the campaign's row ``FOR SHARE`` (a pause or a cancel still waits for
    them, and they see one that came first), one of ``parallel`` advisory slots, and its
    recipients ``FOR UPDATE SKIP LOCKED``; none writes the campaign's row, so they never wait
    on each other. A batch that finds every slot taken makes nothing (``busy``). A campaign
    with a rate numbers its messages in order, so its batches take the row and go one by one.
    """
    with db.session() as session:
        shared = (
            parallel > 1
            and session.get_bind().dialect.name == "postgresql"
            and session.scalar(select(Campaign.rate_per_second).where(Campaign.id == campaign_id))
            is None
        )
        campaign = session.get(Campaign, campaign_id, with_for_update={"read": shared})
        if campaign is None or campaign.status != "running":
            return Expanded(0, 0, False)
        if shared and not _take_slot(session, campaign_id, parallel):
            return Expanded(0, 0, True, busy=True, shared=True)
        tenant = session.get(Tenant, campaign.tenant_id)
        assert tenant is not None
        query = (
            select(
                CampaignRecipient.id,
                CampaignRecipient.phone,
                CampaignRecipient.phone_index,
                CampaignRecipient.variables,
                CampaignRecipient.reference,
            )
            .where(
                CampaignRecipient.campaign_id == campaign_id,
                CampaignRecipient.state == "pending",
            )
            .order_by(CampaignRecipient.id)
            .limit(size)
        )
        if shared:
            query = query.with_for_update(skip_locked=True)
        recipients = [_Recipient(*row) for row in session.execute(query)]
        if not recipients:
            if not shared:
                _finish(session, campaign)
            session.commit()
            if shared:
                finish_if_done(db, campaign_id)
            return Expanded(0, 0, False)
        now = utcnow()
        try:
            account_id, channel = choose_route(
                session, tenant.id, list(campaign.channels), campaign.account_id
            )
        except NoRoute as exc:
            _skip_all(session, recipients, exc.reason)
            session.commit()
            return Expanded(0, len(recipients), True)
        made, skipped = _make(
            session, settings, tenant, campaign, recipients, account_id, channel, now, shared
        )
        more = len(recipients) == size
        if not more and not shared:
            _finish(session, campaign)
        session.commit()
    if not more and shared:
        finish_if_done(db, campaign_id)
    return Expanded(made, skipped, more, shared=shared)


_SLOT = text(
    "SELECT s FROM generate_series(0, :last) AS s "
    "WHERE pg_try_advisory_xact_lock(hashtext(:campaign_id), s) LIMIT 1"
)


def _take_slot(session: Session, campaign_id: str, parallel: int) -> bool:
    """One of the campaign's ``parallel`` expansion slots, held until the batch commits."""
    found = session.execute(_SLOT, {"last": parallel - 1, "campaign_id": campaign_id})
    return found.first() is not None


def finish_if_done(db: Database, campaign_id: str) -> bool:
    """In a transaction of its own (after the batches that share the campaign's row): mark
    a running campaign complete once no recipient is pending, counting those a batch still
    holds."""
    with db.session() as session:
        campaign = session.get(Campaign, campaign_id, with_for_update=True)
        if campaign is None or campaign.status != "running":
            return False
        pending = session.scalar(
            select(CampaignRecipient.id)
            .where(
                CampaignRecipient.campaign_id == campaign_id,
                CampaignRecipient.state == "pending",
            )
            .limit(1)
        )
        if pending is not None:
            return False
        # Batches side by side never write the row: its count of messages made, once, here.
        campaign.made = int(
            session.scalar(
                select(func.count()).where(
                    CampaignRecipient.campaign_id == campaign_id,
                    CampaignRecipient.state == "made",
                )
            )
            or 0
        )
        _finish(session, campaign)
        session.commit()
        return True


def _make(
    session: Session,
    settings: Settings,
    tenant: Tenant,
    campaign: Campaign,
    recipients: list[_Recipient],
    account_id: str,
    channel: Channel,
    now: datetime,
    shared: bool = False,
) -> tuple[int, int]:
    phones = {r.phone: r.phone_index for r in recipients}
    contacts = _contacts(session, tenant.id, phones)
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
    done: list[dict[str, Any]] = []
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
            done.append(
                {"rid": recipient.id, "state": "skipped", "reason": decision.reason, "mid": None}
            )
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
                done.append(
                    {
                        "rid": recipient.id,
                        "state": "skipped",
                        "reason": "content_rejected",
                        "mid": None,
                    }
                )
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
        done.append({"rid": recipient.id, "state": "made", "reason": None, "mid": message_id})
        if status is Status.QUEUED and queued_id is None:
            queued_id = message_id
    if messages:
        insert_rows(session, _MESSAGES, messages)
    if links:
        session.execute(insert(_LINKS), links)
    write_events(session, moves, now)
    _mark(session, done)
    if not shared:  # batches that share the row never write it (the order is the rate's)
        campaign.made = order
        campaign.updated_at = now
    if queued_id is not None:  # one wake drains the lane for every message of the batch
        enqueue(session, TaskNames.DISPATCH, [queued_id], lane, wake=tenant.id)
    return len(messages), skipped


_MARK_PG = text(
    "UPDATE campaign_recipients AS r SET state = v.state, reason = v.reason, message_id = v.mid "
    "FROM unnest(CAST(:rid AS bigint[]), CAST(:state AS varchar[]), CAST(:reason AS varchar[]), "
    "CAST(:mid AS varchar[])) AS v(rid, state, reason, mid) WHERE r.id = v.rid"
)


def _mark(session: Session, done: list[dict[str, Any]]) -> None:
    """Each recipient's outcome: one UPDATE on Postgres (arrays), an executemany on SQLite."""
    if not done:
        return
    if session.get_bind().dialect.name == "postgresql":
        columns = {k: [d[k] for d in done] for k in ("rid", "state", "reason", "mid")}
        session.execute(_MARK_PG, columns)
        return
    session.execute(
        update(_RECIPIENTS)
        .where(_RECIPIENTS.c.id == bindparam("rid"))
        .values(state=bindparam("state"), reason=bindparam("reason"), message_id=bindparam("mid")),
        done,
    )


def _created(message_id: str, tenant_id: str) -> Move:
    return Move(
        message_id,
        tenant_id,
        None,
        Status.PENDING.value,
        Outcome.APPLIED,
        "campaign",
        reason="created",
    )


def _slot(campaign: Campaign, order: int, now: datetime) -> datetime | None:
    """When the campaign's n-th message is due: its send_at, then spaced by its own rate."""
    start = max([d for d in (campaign.send_at, campaign.started_at) if d is not None] or [now])
    if campaign.rate_per_second is None:
        return campaign.send_at
    return start + timedelta(seconds=order / campaign.rate_per_second)


def _skip_all(session: Session, recipients: list[_Recipient], reason: str) -> None:
    session.execute(
        update(CampaignRecipient)
        .where(CampaignRecipient.id.in_([r.id for r in recipients]))
        .values(state="skipped", reason=reason)
    )


def running_with_recipients_left(session: Session, limit: int = 100) -> list[str]:
    """Running campaigns with a recipient still pending: beat wakes each one's expansion."""
    left = (
        select(CampaignRecipient.id)
        .where(CampaignRecipient.campaign_id == Campaign.id, CampaignRecipient.state == "pending")
        .exists()
    )
    return list(
        session.scalars(
            select(Campaign.id)
            .where(Campaign.status == "running", left)
            .order_by(Campaign.id)
            .limit(limit)
        )
    )


def _finish(session: Session, campaign: Campaign) -> None:
    """Every recipient is a message or skipped: the campaign is complete."""
    campaign.status = "completed"
    campaign.finished_at = utcnow()
