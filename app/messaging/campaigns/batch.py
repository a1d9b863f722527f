"""What both ways of making a batch of a campaign's messages share: the recipients claimed,
their contacts found or made, and each recipient's outcome written back.

On Postgres a new contact's number is copied from the recipient's row as it is stored
(ciphertext to ciphertext, in SQL), with the zone the upload found: no decrypt, no parse, no
encrypt per recipient. Elsewhere (the embedded SQLite) the number is read and written through
the column's type, one statement each way, as any insert.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.domain.ids import new_ids
from app.domain.phones import timezone_for
from app.infra.db import any_of, array_literal, insert_rows
from app.models import CampaignRecipient, Contact

_CONTACTS: Any = Contact.__table__
_RECIPIENTS: Any = CampaignRecipient.__table__


@dataclass(frozen=True)
class Claimed:
    """A pending recipient taken by a batch. ``zone``: '' for none, None when the row came
    before the upload kept zones (found from the number when its contact is made)."""

    id: int
    phone_index: str
    zone: str | None
    reference: str | None
    variables: str | None = None

    @property
    def variables_dict(self) -> dict[str, Any]:
        return dict(json.loads(self.variables)) if self.variables else {}


@dataclass(frozen=True)
class ContactRef:
    id: str
    phone_index: str
    timezone: str | None
    locale: str | None


def claim_query(campaign_id: str, size: int, *, variables: bool, skip_locked: bool) -> Any:
    """The campaign's next ``size`` pending recipients, oldest first; their variables only for
    a template campaign (decrypting them costs, and a body campaign has none)."""
    columns = [
        CampaignRecipient.id,
        CampaignRecipient.phone_index,
        CampaignRecipient.timezone,
        CampaignRecipient.reference,
    ]
    if variables:
        columns.append(CampaignRecipient.variables)
    query = (
        select(*columns)
        .where(
            CampaignRecipient.campaign_id == campaign_id,
            CampaignRecipient.state == "pending",
        )
        .order_by(CampaignRecipient.id)
        .limit(size)
    )
    return query.with_for_update(skip_locked=True) if skip_locked else query


def claimed_of(rows: Any) -> list[Claimed]:
    return [Claimed(*row) for row in rows]


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _found(session: Session, tenant_id: str, indexes: list[str]) -> dict[str, ContactRef]:
    if not indexes:
        return {}
    query = select(Contact.id, Contact.phone_index, Contact.timezone, Contact.locale).where(
        Contact.tenant_id == tenant_id, any_of(session, Contact.phone_index, indexes)
    )
    return {row.phone_index: ContactRef(*row) for row in session.execute(query)}


def _phones(session: Session, ids: list[int]) -> dict[int, str]:
    """The numbers of these recipients, decrypted (the embedded path, and zone-less rows)."""
    query = select(CampaignRecipient.id, CampaignRecipient.phone).where(
        CampaignRecipient.id.in_(ids)
    )
    return {rid: phone for rid, phone in session.execute(query)}


def _zones(session: Session, missing: Sequence[Claimed]) -> dict[int, str | None]:
    """Postgres: each new contact's zone: the upload's, or found from the number (decrypted
    for that alone) for a row written before the upload kept zones."""
    zones: dict[int, str | None] = {c.id: (c.zone or None) for c in missing}
    older = [c.id for c in missing if c.zone is None]
    if older:
        for rid, phone in _phones(session, older).items():
            zones[rid] = timezone_for(phone)
    return zones


_COPY_CONTACTS = text(
    "INSERT INTO contacts (id, tenant_id, phone, phone_index, timezone, locale, crm_refs, "
    "created_at) "
    "SELECT v.cid, :tenant_id, r.phone, r.phone_index, v.zone, NULL, CAST(:refs AS json), :now "
    "FROM unnest(CAST(:rid AS bigint[]), CAST(:cid AS varchar[]), CAST(:zone AS varchar[])) "
    "AS v(rid, cid, zone) JOIN campaign_recipients AS r ON r.id = v.rid "
    "ON CONFLICT (tenant_id, phone_index) DO NOTHING "
    "RETURNING id, phone_index, timezone, locale"
)


def contacts_for(
    session: Session, tenant_id: str, claimed: Sequence[Claimed]
) -> dict[str, ContactRef]:
    """Each claimed recipient's contact, by blind index: made, or found (two statements)."""
    if _postgres(session):
        # Made first: a campaign is mostly new numbers, whose rows the INSERT returns; only
        # the numbers it found already there are read after.
        found = _copy_contacts(session, tenant_id, claimed)
    else:
        found = _found(session, tenant_id, [c.phone_index for c in claimed])
        missing = [c for c in claimed if c.phone_index not in found]
        if missing:
            _insert_contacts(session, tenant_id, missing)
    left = [c.phone_index for c in claimed if c.phone_index not in found]
    found.update(_found(session, tenant_id, left))
    return found


def _copy_contacts(
    session: Session, tenant_id: str, claimed: Sequence[Claimed]
) -> dict[str, ContactRef]:
    """Postgres: new contacts with the recipients' stored ciphertext, in SQL; those made."""
    zones = _zones(session, claimed)
    rows = session.execute(
        _COPY_CONTACTS,
        {
            "tenant_id": tenant_id,
            "refs": "{}",
            "now": utcnow(),
            "rid": array_literal([c.id for c in claimed]),
            "cid": array_literal(new_ids("con", len(claimed))),
            "zone": array_literal([zones[c.id] for c in claimed]),
        },
    )
    return {row.phone_index: ContactRef(*row) for row in rows}


def _insert_contacts(session: Session, tenant_id: str, missing: Sequence[Claimed]) -> None:
    """Elsewhere: the numbers read and written through the column's type (read once: a row
    from before the upload kept zones finds its zone from the same number)."""
    phones = _phones(session, [c.id for c in missing])
    zones = {
        c.id: timezone_for(phones[c.id]) if c.zone is None else (c.zone or None) for c in missing
    }
    now = utcnow()
    values: list[dict[str, Any]] = [
        {
            "id": contact_id,
            "tenant_id": tenant_id,
            "phone": phones[c.id],  # the column type encrypts it
            "phone_index": c.phone_index,
            "timezone": zones[c.id],
            "locale": None,
            "crm_refs": {},
            "created_at": now,
        }
        for c, contact_id in zip(missing, new_ids("con", len(missing)), strict=True)
    ]
    insert_rows(session, _CONTACTS, values, ignore=["tenant_id", "phone_index"])


_MARK_PG = text(
    "UPDATE campaign_recipients AS r SET state = v.state, reason = v.reason, message_id = v.mid "
    "FROM unnest(CAST(:rid AS bigint[]), CAST(:state AS varchar[]), CAST(:reason AS varchar[]), "
    "CAST(:mid AS varchar[])) AS v(rid, state, reason, mid) WHERE r.id = v.rid"
)


@dataclass
class Outcomes:
    """Each recipient's outcome in a batch, by column: ``made`` with its message, or
    ``skipped`` with a reason."""

    rid: list[int]
    state: list[str]
    reason: list[str | None]
    mid: list[str | None]

    @classmethod
    def empty(cls) -> Outcomes:
        return cls([], [], [], [])

    def made(self, rid: int, message_id: str) -> None:
        self.rid.append(rid)
        self.state.append("made")
        self.reason.append(None)
        self.mid.append(message_id)

    def skipped(self, rid: int, reason: str | None) -> None:
        self.rid.append(rid)
        self.state.append("skipped")
        self.reason.append(reason)
        self.mid.append(None)

    def write(self, session: Session) -> None:
        """One UPDATE on Postgres (arrays), an executemany elsewhere."""
        if not self.rid:
            return
        if _postgres(session):
            session.execute(
                _MARK_PG,
                {
                    "rid": array_literal(self.rid),
                    "state": array_literal(self.state),
                    "reason": array_literal(self.reason),
                    "mid": array_literal(self.mid),
                },
            )
            return
        session.execute(
            update(_RECIPIENTS)
            .where(_RECIPIENTS.c.id == bindparam("rid"))
            .values(
                state=bindparam("state"), reason=bindparam("reason"), message_id=bindparam("mid")
            ),
            [
                {"rid": r, "state": s, "reason": why, "mid": m}
                for r, s, why, m in zip(self.rid, self.state, self.reason, self.mid, strict=True)
            ],
        )
