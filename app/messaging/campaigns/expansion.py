"""A running campaign's recipients becoming messages: a batch at a time, set-based.

Each batch is one transaction: the campaign's row locked (a pause or a cancel waits for the
batch, and a batch sees a pause that came first), its pending recipients claimed, their
contacts found or created in two statements, their consent read in two, the policy asked
once per zone and consent state (consent, quiet hours in the recipient's zone, the TTL),
then the messages, their first events and one coalescing dispatch wake written in bulk: by
``in_bulk`` for a body campaign on Postgres (every message alike, written by column), by
``per_recipient`` for a template's renders, a campaign's own rate, or SQLite. A worker killed
mid-batch leaves the batch as it was: the recipients are still ``pending``, and the next
expansion makes each a message exactly once.

Each message is like any other from then on: the same state machine, claims, receipts, CRM
writes and analytics; consent, quiet hours and the TTL are checked again at each claim.
A campaign's own rate spaces its messages: the n-th is due at ``start + n / rate``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.infra.db import Database
from app.messaging.campaigns import in_bulk
from app.messaging.campaigns.batch import Claimed, claim_query, claimed_of
from app.messaging.campaigns.per_recipient import make_each
from app.messaging.intake.routing import NoRoute, choose_route
from app.models import Campaign, CampaignRecipient, Tenant
from config import Settings


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
        bulk = in_bulk.takes(session, campaign)
        query = claim_query(
            campaign_id, size, variables=campaign.template_id is not None, skip_locked=shared
        )
        recipients = claimed_of(session.execute(query))
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
        make = in_bulk.make_alike if bulk else make_each
        made, skipped = make(
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


def _skip_all(session: Session, recipients: list[Claimed], reason: str) -> None:
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
