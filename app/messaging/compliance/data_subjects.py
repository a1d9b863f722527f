"""Data-subject rights: everything held about a phone number, and its erasure.

Erasure removes the person's PII everywhere it is held:
- the contact's number (and its blind index), time zone and CRM references;
- the body, media, metadata and external reference of every message to or from them,
  and the data of those messages' events (a provider's error text can quote a number);
- their consent records;
- the raw provider callbacks about them in the webhook inbox (the outbox holds ids only).

It keeps non-identifying counts: the message rows (direction, channel, status and
reason), their event rows, and an ``Erasure`` record of what was erased. A number that
had opted out leaves a bare suppression (its keyed blind index), so the opt-out is
still honoured after the rest is gone. Messages still waiting to go are canceled.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.domain.ids import new_id
from app.domain.reasons import StatusReason
from app.domain.statuses import CANCELABLE, Status
from app.messaging.compliance.consent import current_state, history
from app.messaging.contacts import find_contact
from app.messaging.states import apply_transition
from app.models import (
    CampaignRecipient,
    ChannelAccount,
    ConsentRecord,
    Contact,
    CrmSync,
    Erasure,
    InboxItem,
    Message,
    MessageEvent,
    Suppression,
)
from app.providers import get_provider
from app.providers.base import MalformedWebhook
from app.security import audit
from app.security.crypto import keyring

ERASED_PAYLOAD = ""


@dataclass
class SubjectData:
    contact: Contact | None
    consents: list[ConsentRecord] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    events: dict[str, list[MessageEvent]] = field(default_factory=dict)
    suppressed: bool = False

    @property
    def found(self) -> bool:
        return self.contact is not None or bool(self.consents) or self.suppressed


def collect(session: Session, tenant_id: str, phone: str) -> SubjectData:
    """Everything held about ``phone`` in this tenant (for an export)."""
    indexes = keyring().blind_indexes(phone)
    suppressed = any(session.get(Suppression, (i, tenant_id)) is not None for i in indexes)
    contact = find_contact(session, tenant_id, phone)
    data = SubjectData(contact, history(session, tenant_id, indexes), suppressed=suppressed)
    if contact is None:
        return data
    data.messages = list(
        session.scalars(
            select(Message)
            .where(Message.tenant_id == tenant_id, Message.contact_id == contact.id)
            .order_by(Message.id)
        )
    )
    ids = [m.id for m in data.messages]
    for event in session.scalars(
        select(MessageEvent)
        .where(MessageEvent.tenant_id == tenant_id, MessageEvent.message_id.in_(ids))
        .order_by(MessageEvent.id)
    ):
        data.events.setdefault(event.message_id, []).append(event)
    return data


def erase(session: Session, tenant_id: str, phone: str, requested_by: str | None) -> Erasure | None:
    """Erase the person's PII (see the module docstring); None when nothing is held.

    The caller commits: everything is erased in one transaction, or nothing is.
    """
    ring = keyring()
    index, indexes = ring.blind_index(phone), ring.blind_indexes(phone)
    contact = session.scalar(
        select(Contact)
        .where(Contact.tenant_id == tenant_id, Contact.phone_index.in_(indexes))
        .with_for_update()
    )
    consents = history(session, tenant_id, indexes)
    recipients = list(
        session.scalars(
            select(CampaignRecipient)
            .where(
                CampaignRecipient.tenant_id == tenant_id,
                CampaignRecipient.phone_index.in_(indexes),
            )
            .with_for_update()
        )
    )
    if contact is None and not consents and not recipients:
        return None
    counts: dict[str, int] = {"messages": 0, "events": 0, "consents": len(consents)}
    # A campaign's rows for the number: no message is made of a pending one, none keeps it.
    for recipient in recipients:
        if recipient.state == "pending":
            recipient.state = "skipped"
            recipient.reason = StatusReason.RECIPIENT_ERASED.value
        recipient.phone = ""
        recipient.phone_index = f"erased:{recipient.id}"
        recipient.variables = None
        recipient.reference = None
    if recipients:
        counts["campaign_recipients"] = len(recipients)
    opted_out = [
        c for c in ("sms", "mms", "rcs") if current_state(session, tenant_id, indexes, c).opted_out
    ]
    kept = any(session.get(Suppression, (i, tenant_id)) is not None for i in indexes)
    if opted_out and not kept:
        session.add(
            Suppression(
                phone_index=index,
                tenant_id=tenant_id,
                created_at=utcnow(),
                blind_key=ring.blind_fingerprint,
            )
        )
        counts["suppressions"] = 1
    session.execute(
        delete(ConsentRecord).where(
            ConsentRecord.tenant_id == tenant_id, ConsentRecord.phone_index.in_(indexes)
        )
    )
    provider_ids: set[str] = set()
    if contact is not None:
        messages = list(
            session.scalars(
                select(Message)
                .where(Message.tenant_id == tenant_id, Message.contact_id == contact.id)
                .with_for_update()
            )
        )
        for message in messages:
            if message.direction == "outbound" and Status(message.status) in CANCELABLE:
                apply_transition(
                    session,
                    message,
                    Status.CANCELED,
                    source="erasure",
                    reason=StatusReason.RECIPIENT_ERASED,
                )
            if message.provider_message_id:
                provider_ids.add(message.provider_message_id)
        ids = [m.id for m in messages]
        counts["messages"] = len(ids)
        if ids:
            session.execute(
                update(Message)
                .where(Message.id.in_(ids))
                .values(body=None, media=None, metadata_={}, external_ref=None)
                .execution_options(synchronize_session=False)
            )
            scrubbed = session.execute(
                update(MessageEvent)
                .where(MessageEvent.message_id.in_(ids))
                .values(data={})
                .execution_options(synchronize_session=False)
            )
            counts["events"] = int(getattr(scrubbed, "rowcount", 0) or 0)
        # CRM syncs hold ids only, but a CRM's error text may quote the number.
        session.execute(
            update(CrmSync)
            .where(CrmSync.contact_id == contact.id)
            .values(last_error=None)
            .execution_options(synchronize_session=False)
        )
        contact.phone = ""
        contact.phone_index = f"erased:{contact.id}"
        contact.timezone = None
        contact.crm_refs = {}
    counts["inbox"] = _erase_inbox(session, tenant_id, phone, provider_ids)
    erasure = Erasure(
        id=new_id("era"),
        tenant_id=tenant_id,
        contact_id=contact.id if contact is not None else "",
        requested_by=requested_by,
        counts=counts,
        erased_at=utcnow(),
    )
    session.add(erasure)
    session.flush()
    audit.append(
        session,
        tenant_id=tenant_id,
        actor=requested_by or "system",
        action="contact.erase",
        target="contact",
        ids=[erasure.contact_id, erasure.id],
        change={"phone_index": index, "counts": counts},
    )
    return erasure


def record_export(
    session: Session, tenant_id: str, phone: str, found: SubjectData, actor: str
) -> None:
    """The export is a disclosure of personal data: it goes in the audit chain."""
    audit.append(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="contact.export",
        target="contact",
        ids=[found.contact.id] if found.contact is not None else [],
        change={"phone_index": keyring().blind_index(phone), "found": found.found},
    )


def _mentions(raw: str, phone: str) -> bool:
    """The raw callback names the number, as sent (JSON) or form-encoded (``%2B1...``)."""
    return phone in raw or quote(phone, safe="") in raw or phone.lstrip("+") in raw


def _inbox_rows(session: Session, tenant_id: str) -> Iterator[InboxItem]:
    yield from session.scalars(
        select(InboxItem)
        .where(InboxItem.tenant_id == tenant_id, InboxItem.result.is_distinct_from("erased"))
        .execution_options(yield_per=500)
    )


def _erase_inbox(session: Session, tenant_id: str, phone: str, provider_ids: set[str]) -> int:
    """Blank the raw callbacks about ``phone``; the rows stay, so a replay is still a duplicate.

    The payloads are encrypted, so each of the tenant's (retention-bounded) rows is read.
    """
    accounts = {
        a.id: a
        for a in session.scalars(
            select(ChannelAccount).where(ChannelAccount.tenant_id == tenant_id)
        )
    }
    erased = 0
    for item in list(_inbox_rows(session, tenant_id)):
        about = _mentions(item.payload, phone)
        if not about:
            try:
                account = accounts[item.account_id]
                event = get_provider(item.provider).parse_stored(account, item.payload)
            except (LookupError, MalformedWebhook):
                continue
            phones = {p.phone for p in (event.sender, event.recipient) if p is not None}
            about = phone in phones or (event.providerMessageId or "") in provider_ids
        if about:
            item.payload = ERASED_PAYLOAD
            item.result = "erased"
            item.processed_at = item.processed_at or utcnow()
            item.next_attempt_at = None
            erased += 1
    return erased
