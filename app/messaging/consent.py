"""Consent: appending records, reading the current state, and what an opt-out does at once.

Records are append-only; the current state for a channel is the newest record
for that channel or for ``all``. A suppression (left by erasure) counts as an
opt-out older than any later record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.messaging.reasons import StatusReason
from app.messaging.states import CANCELABLE, Status, apply_transition, record_note
from app.models import ConsentRecord, Contact, Message, Suppression
from app.models.types import utcnow

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


def current_state(session: Session, tenant_id: str, phone_index: str, channel: str) -> ConsentState:
    """The state for ``channel``, in one round trip: the newest record and any suppression."""

    def newest(column: Any) -> Any:
        return (
            select(column)
            .where(
                ConsentRecord.tenant_id == tenant_id,
                ConsentRecord.phone_index == phone_index,
                ConsentRecord.channel.in_([channel, "all"]),
            )
            .order_by(ConsentRecord.id.desc())
            .limit(1)
            .scalar_subquery()
        )

    suppressed = (
        select(Suppression.created_at)
        .where(Suppression.tenant_id == tenant_id, Suppression.phone_index == phone_index)
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
    if suppressed_at is not None and (status is None or since <= suppressed_at):
        return ConsentState("opted_out", suppressed_at, "suppression")
    if status is None:
        return ConsentState(None, None, None)
    state: ConsentStatus = "opted_out" if status == "opted_out" else "opted_in"
    return ConsentState(state, since, source)


def history(session: Session, tenant_id: str, phone_index: str) -> list[ConsentRecord]:
    return list(
        session.scalars(
            select(ConsentRecord)
            .where(ConsentRecord.tenant_id == tenant_id, ConsentRecord.phone_index == phone_index)
            .order_by(ConsentRecord.id)
        )
    )


def lock_contact(session: Session, contact_id: str, *, shared: bool = False) -> Contact | None:
    """Lock the contact row: opt-outs and dispatch claims for one person take turns on it,
    so a claim either sees the opt-out or committed its claim before the opt-out began.

    Claims take it ``shared`` (FOR SHARE): they exclude an opt-out (FOR UPDATE), not
    each other, so a burst to one person is not sent one claim at a time."""
    return session.scalar(
        select(Contact).where(Contact.id == contact_id).with_for_update(read=shared)
    )


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
