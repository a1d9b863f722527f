"""Consent: appending records, reading the current state, and what an opt-out does at once.

Records are append-only; the current state for a channel is the newest record
for that channel or for ``all``. A suppression (left by erasure) counts as an
opt-out older than any later record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.domain.reasons import StatusReason
from app.domain.statuses import CANCELABLE, Status
from app.infra.db import any_of
from app.messaging.states import apply_transition, record_note
from app.models import ConsentRecord, Contact, Message, Suppression
from app.security import audit

ConsentStatus = Literal["opted_in", "opted_out"]
CONSENT_STATUSES: tuple[ConsentStatus, ...] = ("opted_in", "opted_out")
CONSENT_CHANNELS = ("sms", "mms", "rcs", "all")
# Sources a caller may state through the API; keyword and provider ones are ours.
CALLER_SOURCES = ("api", "import")


@dataclass(frozen=True)
class ConsentState:
    status: ConsentStatus | None  # None: nothing on record
    since: datetime | None
    source: str | None

    @property
    def opted_out(self) -> bool:
        return self.status == "opted_out"


def jurisdiction_of(e164: str) -> str | None:
    region = phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    return str(region) if region and region != "ZZ" else None


def current_state(
    session: Session, tenant_id: str, phone_index: str | Sequence[str], channel: str
) -> ConsentState:
    """The state for ``channel``, in one round trip: the newest record and any suppression.

    ``phone_index`` is a contact's, or every index of a number (``Keyring.blind_indexes``).
    """
    indexes = [phone_index] if isinstance(phone_index, str) else list(phone_index)

    def newest(column: Any) -> Any:
        return (
            select(column)
            .where(
                ConsentRecord.tenant_id == tenant_id,
                ConsentRecord.phone_index.in_(indexes),
                ConsentRecord.channel.in_([channel, "all"]),
            )
            .order_by(ConsentRecord.id.desc())
            .limit(1)
            .scalar_subquery()
        )

    suppressed = (
        select(Suppression.created_at)
        .where(Suppression.tenant_id == tenant_id, Suppression.phone_index.in_(indexes))
        .order_by(Suppression.created_at)
        .limit(1)
        .scalar_subquery()
    )
    status, since, source, suppressed_at = session.execute(
        select(
            newest(ConsentRecord.status),
            newest(ConsentRecord.created_at),
            newest(ConsentRecord.source),
            suppressed,
        )
    ).one()
    return _state(status, since, source, suppressed_at)


def _state(
    status: str | None, since: datetime | None, source: str | None, suppressed_at: datetime | None
) -> ConsentState:
    """The state from the newest record and any suppression (the one rule both readers use)."""
    if suppressed_at is not None and (status is None or since is None or since <= suppressed_at):
        return ConsentState("opted_out", suppressed_at, "suppression")
    if status is None:
        return ConsentState(None, None, None)
    state: ConsentStatus = "opted_out" if status == "opted_out" else "opted_in"
    return ConsentState(state, since, source)


ConsentKey = tuple[str, str, str]  # tenant id, phone index, channel
# The state of a number with no record and no suppression (frozen: one object serves all).
_NO_RECORD = _state(None, None, None, None)


def states_for(session: Session, keys: Collection[ConsentKey]) -> dict[ConsentKey, ConsentState]:
    """``current_state`` for many (tenant, phone index, channel) at once, in two queries.

    The batch dispatch claim asks this for every message it claimed.
    """
    if not keys:
        return {}
    tenants = sorted({k[0] for k in keys})
    phones = sorted({k[1] for k in keys})
    newest: dict[tuple[str, str, str], tuple[int, str, datetime, str]] = {}
    records = session.execute(
        select(
            ConsentRecord.id,
            ConsentRecord.tenant_id,
            ConsentRecord.phone_index,
            ConsentRecord.channel,
            ConsentRecord.status,
            ConsentRecord.created_at,
            ConsentRecord.source,
        )
        .where(
            ConsentRecord.tenant_id.in_(tenants),
            any_of(session, ConsentRecord.phone_index, phones),
        )
        .order_by(ConsentRecord.id)
    )
    for record_id, tenant_id, phone_index, channel, status, created_at, source in records:
        newest[(tenant_id, phone_index, channel)] = (record_id, status, created_at, source)
    suppressed = dict(
        ((t, p), at)
        for t, p, at in session.execute(
            select(Suppression.tenant_id, Suppression.phone_index, Suppression.created_at).where(
                Suppression.tenant_id.in_(tenants),
                any_of(session, Suppression.phone_index, phones),
            )
        )
    )
    found: dict[ConsentKey, ConsentState] = {}
    for key in keys:
        tenant_id, phone_index, channel = key
        if not newest and not suppressed:  # the usual batch: no record for any of them
            found[key] = _NO_RECORD
            continue
        candidates = [
            newest[k]
            for k in ((tenant_id, phone_index, channel), (tenant_id, phone_index, "all"))
            if k in newest
        ]
        if candidates:  # the newest of the channel's own and "all", by id as current_state
            _, status, since, source = max(candidates, key=lambda r: r[0])
            state = _state(status, since, source, suppressed.get((tenant_id, phone_index)))
        else:
            state = _state(None, None, None, suppressed.get((tenant_id, phone_index)))
        found[key] = state
    return found


def history(
    session: Session, tenant_id: str, phone_index: str | Sequence[str]
) -> list[ConsentRecord]:
    indexes = [phone_index] if isinstance(phone_index, str) else list(phone_index)
    return list(
        session.scalars(
            select(ConsentRecord)
            .where(ConsentRecord.tenant_id == tenant_id, ConsentRecord.phone_index.in_(indexes))
            .order_by(ConsentRecord.id)
        )
    )


def lock_contact(session: Session, contact_id: str, *, shared: bool = False) -> Contact | None:
    """Lock the contact row: opt-outs and dispatch claims for one person take turns on it,
    so a claim either sees the opt-out or committed its claim before the opt-out began.

    Claims take it ``shared`` (FOR SHARE): they exclude an opt-out (FOR UPDATE), not
    each other, so a burst to one person is not sent one claim at a time."""
    return session.scalar(
        select(Contact)
        .where(Contact.id == contact_id)
        .with_for_update(read=shared, key_share=shared)
        # Re-read under the lock: a blind-index re-keying may have moved it meanwhile.
        .execution_options(populate_existing=True)
    )


def lock_contacts_for_claim(session: Session, contact_ids: Collection[str]) -> dict[str, Any]:
    """The batch claim's lock on many contacts (``FOR KEY SHARE SKIP LOCKED``): id -> row.

    Like ``lock_contact(shared=True)`` it excludes an opt-out (``FOR UPDATE``), not other
    claims nor ordinary updates. A contact an opt-out holds is skipped, not waited for:
    the claim already holds its messages' locks, which the opt-out's cancel needs next.
    The caller leaves those messages queued for a later batch.
    """
    if not contact_ids:
        return {}
    rows = session.execute(
        select(Contact.id, Contact.phone, Contact.phone_index, Contact.timezone)
        .where(Contact.id.in_(sorted(contact_ids)))
        .with_for_update(read=True, key_share=True, skip_locked=True)
    )
    return {row.id: row for row in rows}


def record_consent(
    session: Session,
    contact: Contact,
    *,
    channel: str,
    status: ConsentStatus,
    source: str,
    evidence: str | None = None,
    jurisdiction: str | None = None,
) -> ConsentRecord:
    """Append one record; an opt-out also cancels what is still waiting to go to them."""
    lock_contact(session, contact.id)
    record = ConsentRecord(
        tenant_id=contact.tenant_id,
        contact_id=contact.id,
        phone_index=contact.phone_index,
        channel=channel,
        status=status,
        source=source,
        jurisdiction=jurisdiction or jurisdiction_of(contact.phone),
        evidence=evidence,
        created_at=utcnow(),
    )
    session.add(record)
    session.flush()
    if status == "opted_out":
        cancel_waiting(session, contact, channel, evidence)
    audit.append(
        session,
        tenant_id=contact.tenant_id,
        actor=source,
        action=f"consent.{status}",
        target="contact",
        ids=[contact.id, record.id],
        change={
            "phone_index": record.phone_index,
            "channel": channel,
            "status": status,
            "source": source,
            "jurisdiction": record.jurisdiction,
            # Evidence is the caller's free text: only its digest, in case it names someone.
            "evidence_sha256": hashlib.sha256(evidence.encode()).hexdigest() if evidence else None,
        },
    )
    return record


def cancel_waiting(session: Session, contact: Contact, channel: str, evidence: str | None) -> int:
    """Cancel the contact's outbound messages not yet handed to a provider."""
    query = (
        select(Message)
        .where(
            Message.tenant_id == contact.tenant_id,
            Message.contact_id == contact.id,
            Message.direction == "outbound",
            Message.status.in_([s.value for s in CANCELABLE]),
        )
        .with_for_update()
    )
    if channel != "all":
        query = query.where(Message.channel == channel)
    canceled = 0
    for message in session.scalars(query):
        if message.purpose == "auto_reply:opt_out":
            continue  # the confirmation is the one message allowed after an opt-out
        apply_transition(
            session,
            message,
            Status.CANCELED,
            source="consent",
            reason=StatusReason.RECIPIENT_OPTED_OUT,
            data={"evidence": evidence} if evidence else None,
        )
        canceled += 1
    return canceled


def record_provider_opt_out(session: Session, message: Message, code: str | None) -> None:
    """The provider refused a send because the recipient opted out with it (Twilio 21610)."""
    contact = session.get(Contact, message.contact_id)
    if (
        contact is None
        or current_state(session, message.tenant_id, contact.phone_index, message.channel).opted_out
    ):
        return
    record_consent(
        session,
        contact,
        channel="all",
        status="opted_out",
        source=f"provider:{code}" if code else "provider",
        evidence=message.id,
    )
    record_note(
        session, message, "opted_out", source="provider", data={"error_code": code} if code else {}
    )
