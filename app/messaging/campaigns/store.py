"""Creating a campaign and writing its recipients: in batches, one transaction each.

Once a batch has committed its recipients are durable; the request answers only after every
batch has. The database going away mid-upload leaves the campaign holding exactly the
batches that committed, and a retry with the same ``Idempotency-Key`` adds the rest: a number
is once per campaign (its blind index is unique within it), so nothing doubles.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.content import store as templates
from app.content.store import TemplateProblem
from app.content.variables import Problem, coerce
from app.domain.clock import utcnow
from app.domain.ids import new_id
from app.domain.reasons import StatusReason
from app.infra.db import Database, insert_rows
from app.infra.overlap import Overlapped
from app.messaging.campaigns.rows import Checked, Row, VariableCheck, batches
from app.messaging.campaigns.spec import CampaignSpec
from app.messaging.compliance.consent import states_for
from app.messaging.intake.routing import choose_route
from app.models import Campaign, CampaignRecipient, Tenant
from app.security.crypto import keyring

BATCH = 2000
# A completed campaign takes more rows: it runs again for them.
OPEN = ("draft", "running", "paused", "completed")
_RECIPIENTS: Any = CampaignRecipient.__table__


class CampaignConflict(Exception):
    """The Idempotency-Key was used for a campaign with other fields."""

    def __init__(self, campaign_id: str) -> None:
        super().__init__(campaign_id)
        self.campaign_id = campaign_id


class NotOpen(Exception):
    """Recipients go to any campaign but a canceled one."""


@dataclass
class Uploaded:
    """What one request added to a campaign."""

    added: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    duplicate_rows: list[int] = field(default_factory=list)

    def as_dict(self, checked: Checked) -> dict[str, Any]:
        return {
            "rows": checked.rows_seen,
            "accepted": self.added,
            "skipped": dict(sorted(self.skipped.items())),
            "duplicates": self.duplicates,
            "invalid": checked.error_count,
            "errors": [e.as_dict() for e in checked.errors],
            "duplicate_rows": self.duplicate_rows,
        }


def find_by_key(session: Session, tenant_id: str, key: str) -> Campaign | None:
    return session.scalar(
        select(Campaign).where(Campaign.tenant_id == tenant_id, Campaign.idempotency_key == key)
    )


def open_campaign(
    session: Session, tenant: Tenant, spec: CampaignSpec, key: str | None
) -> tuple[Campaign, bool]:
    """The campaign this request names: the one its key made before (a retry), or a new
    draft. Raises CampaignConflict, TemplateProblem, or NoRoute. The caller commits."""
    digest = spec.digest()
    if key is not None:
        existing = find_by_key(session, tenant.id, key)
        if existing is not None:
            if existing.request_hash != digest:
                raise CampaignConflict(existing.id)
            return existing, False
    template_id = version = None
    if spec.template is not None:
        found = templates.find(session, tenant.id, spec.template)
        if found is None:
            raise TemplateProblem([Problem("template", "unknown", "no such template")])
        if found.archived_at is not None:
            raise TemplateProblem([Problem("template", "archived", "the template is archived")])
        template_id, version = found.id, found.latest_version
    choose_route(session, tenant.id, list(spec.channels), spec.account_id)
    now = utcnow()
    campaign = Campaign(
        id=new_id("cmp"),
        tenant_id=tenant.id,
        name=spec.name,
        status="draft",
        template_id=template_id,
        template_version=version,
        body=spec.body,
        channels=list(spec.channels),
        account_id=spec.account_id,
        priority=spec.priority,
        ttl_seconds=spec.ttl_seconds,
        send_at=spec.send_at,
        quiet_hours=spec.quiet_hours,
        rate_per_second=spec.rate_per_second,
        idempotency_key=key,
        request_hash=digest,
        created_at=now,
        updated_at=now,
    )
    session.add(campaign)
    session.flush()
    return campaign, True


@dataclass(frozen=True)
class Bound:
    """A campaign's check of each row's variables, and a CSV cell's conversion to its type."""

    check: VariableCheck | None
    convert: Any


def bind_template(session: Session, campaign: Campaign) -> Bound:
    if campaign.template_id is None or campaign.template_version is None:
        return Bound(None, None)
    template = templates.find(session, campaign.tenant_id, campaign.template_id)
    assert template is not None
    ready = templates.parsed(templates.version_of(session, template, campaign.template_version))
    declared = ready.variables

    def check(variables: dict[str, Any]) -> list[tuple[str, str, str]]:
        return [(p.field, p.code, p.message) for p in coerce(declared, variables)[2]]

    def convert(name: str, cell: str) -> Any:
        variable = declared.get(name)
        if variable is None or variable.type != "number":
            return cell
        try:
            number = float(cell)
        except ValueError:
            raise ValueError("must be a number") from None
        return int(number) if number.is_integer() and "." not in cell else number

    return Bound(check, convert)


def add_recipients(
    db: Database,
    tenant: Tenant,
    campaign_id: str,
    rows: Iterable[Row],
    written: list[int],
    *,
    count_duplicates: bool = True,
) -> Uploaded:
    """Write the rows in batches, a transaction each; ``written`` gets each new recipient's
    id as its batch commits (so a caller that must undo the upload, on any error, can).
    Opted-out numbers are written ``skipped``. ``count_duplicates``: False for a retry of the
    same upload, whose rows are already there."""
    uploaded = Uploaded()

    def write(batch: list[Row]) -> None:
        _write_batch(db, tenant, campaign_id, batch, uploaded, written, count_duplicates)

    # The rows are parsed and checked here while the batch before is written (the parse
    # holds the GIL; the write mostly waits on the database).
    with Overlapped(write, name="campaign-upload") as writer:
        for batch in batches(rows, BATCH):
            writer.submit(batch)
    return uploaded


def _write_batch(
    db: Database,
    tenant: Tenant,
    campaign_id: str,
    batch: list[Row],
    uploaded: Uploaded,
    written: list[int],
    count_duplicates: bool,
) -> None:
    """One batch in one transaction; its new recipients' ids go to ``written`` once it has
    committed."""
    ring = keyring()
    with db.session() as session:
        campaign = session.get(Campaign, campaign_id, with_for_update=True)
        if campaign is None or campaign.status not in OPEN:
            raise NotOpen(campaign_id)
        channel = campaign.channels[0]
        indexes = [ring.blind_index(r.phone) for r in batch]
        consent = states_for(session, {(tenant.id, i, channel) for i in indexes})
        now = utcnow()
        values = []
        for row, index in zip(batch, indexes, strict=True):
            state = consent[(tenant.id, index, channel)]
            reason = (
                StatusReason.RECIPIENT_OPTED_OUT.value
                if state.opted_out
                else StatusReason.NO_CONSENT.value
                if state.status is None and tenant.consent_policy == "opt_in"
                else None
            )
            values.append(
                {
                    "campaign_id": campaign_id,
                    "tenant_id": tenant.id,
                    "phone": row.phone,
                    "phone_index": index,
                    "variables": json.dumps(row.variables) if row.variables else None,
                    "reference": row.reference,
                    "timezone": row.zone,
                    "state": "skipped" if reason else "pending",
                    "reason": reason,
                    "message_id": None,
                    "created_at": now,
                }
            )
        inserted = insert_rows(
            session,
            _RECIPIENTS,
            values,
            _RECIPIENTS.c.id,
            _RECIPIENTS.c.phone_index,
            _RECIPIENTS.c.reason,
            ignore=["campaign_id", "phone_index"],
        )
        new = {r.phone_index: r for r in inserted}
        for row, index in zip(batch, indexes, strict=True):
            found = new.pop(index, None)
            if found is None:  # already in the campaign, from this upload or an earlier one
                uploaded.duplicates += 1
                if len(uploaded.duplicate_rows) < 100:
                    uploaded.duplicate_rows.append(row.number)
            elif found.reason:
                uploaded.skipped[found.reason] = uploaded.skipped.get(found.reason, 0) + 1
            else:
                uploaded.added += 1
        if count_duplicates:
            campaign.duplicate_rows += len(batch) - len(inserted)
        session.commit()
        written.extend(r.id for r in inserted)


def note_invalid(db: Database, campaign_id: str, checked: Checked) -> None:
    """Count the rows refused, and keep the first problems (at most 100) for the console."""
    if not checked.error_count:
        return
    with db.session() as session:
        campaign = session.get(Campaign, campaign_id, with_for_update=True)
        if campaign is None:
            return
        campaign.invalid_rows += checked.error_count
        kept = list(campaign.row_errors or [])
        kept.extend(e.as_dict() for e in checked.errors[: max(0, 100 - len(kept))])
        campaign.row_errors = kept
        session.commit()


def undo_upload(db: Database, campaign_id: str, written: list[int], created: bool) -> None:
    """A file found unreadable part-way: remove what this request wrote, so nothing is."""
    with db.session() as session:
        for start in range(0, len(written), 1000):
            chunk = written[start : start + 1000]
            session.execute(delete(CampaignRecipient).where(CampaignRecipient.id.in_(chunk)))
        if created:
            session.execute(delete(Campaign).where(Campaign.id == campaign_id))
        session.commit()
