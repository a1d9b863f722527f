"""One upload of a campaign's rows, from whatever source, to its end: checked, written in
batches, undone when the file turns out unreadable, then recorded and (when asked) started.
The API and the CLI both submit through here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import func, select

from app.infra.db import Database
from app.messaging.campaigns.control import control
from app.messaging.campaigns.rows import Checked, FileProblem, Row
from app.messaging.campaigns.store import (
    Bound,
    Uploaded,
    add_recipients,
    bind_template,
    note_invalid,
    undo_upload,
)
from app.models import Campaign, CampaignRecipient, Tenant
from app.security import audit
from config import Settings

RowSource = Callable[[Bound, Checked], Iterator[Row]]


def _bounded(db: Database, rows: Iterator[Row], campaign_id: str, limit: int) -> Iterator[Row]:
    """The rows, until the campaign would hold more than ``limit`` recipients."""
    with db.session() as session:
        held = int(
            session.scalar(select(func.count()).where(CampaignRecipient.campaign_id == campaign_id))
            or 0
        )
    for n, row in enumerate(rows, start=held + 1):
        if n > limit:
            raise FileProblem(
                "too_many_recipients",
                f"a campaign takes at most {limit} recipients; start another for the rest",
                row=row.number,
            )
        yield row


def upload(
    db: Database,
    tenant: Tenant,
    campaign_id: str,
    source: RowSource,
    *,
    limit: int,
    created: bool,
    replay: bool = False,
    undo_on: tuple[type[BaseException], ...] = (FileProblem,),
) -> tuple[Uploaded, Checked]:
    """Write this upload's rows. On ``undo_on`` (a file unreadable part-way, say) what it
    wrote is removed, and the campaign too if this upload made it, before re-raising; on any
    other error (the database gone) the batches that committed stay, for a retry to finish."""
    with db.session() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        bound = bind_template(session, campaign)
    checked = Checked()
    written: list[int] = []
    try:
        rows = _bounded(db, source(bound, checked), campaign_id, limit)
        uploaded = add_recipients(
            db, tenant, campaign_id, rows, written, count_duplicates=not replay
        )
    except undo_on:
        undo_upload(db, campaign_id, written, created)
        raise
    note_invalid(db, campaign_id, checked)
    return uploaded, checked


def finish(
    db: Database,
    tenant_id: str,
    campaign_id: str,
    uploaded: Uploaded,
    checked: Checked,
    *,
    created: bool,
    start: bool,
    actor: str,
    expansions: int = 1,
) -> bool:
    """Record a new campaign in the audit chain and start it when asked and every row was
    good. True when this started it."""
    with db.session() as session:
        campaign = session.get(Campaign, campaign_id, with_for_update=True)
        assert campaign is not None
        if created:
            audit.append(
                session,
                tenant_id=tenant_id,
                actor=actor,
                action="campaign.create",
                target=campaign_id,
                change={"accepted": uploaded.added, "invalid": checked.error_count},
            )
        started = start and checked.error_count == 0 and campaign.status == "draft"
        if started:
            control(session, campaign, "start", actor, expansions)
        session.commit()
    return started


def expansions_for(settings: Settings, added: int) -> int:
    """How many expansion tasks a start owes: one, or ``CAMPAIGN_PARALLEL`` for a campaign of
    more than a batch (a task that finds every slot taken ends at once)."""
    return settings.campaign_parallel if added > settings.campaign_batch_size else 1


def summary(uploaded: Uploaded, checked: Checked) -> dict[str, Any]:
    return uploaded.as_dict(checked)
