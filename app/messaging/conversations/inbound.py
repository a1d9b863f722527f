"""Inbound messages: recorded, linked to their conversation, and acted on.

In the inbox row's one transaction, an inbound message:
1. is matched to its contact through the blind index, and linked to the
   conversation and to the last outbound message that went out to that contact
   (one they can be answering), which gets a ``replied`` event;
2. if it is a compliance keyword, records the opt-out or opt-in (an opt-out also
   cancels what is still waiting to go) and queues the tenant's auto-reply on the
   urgent lane, exempt from quiet hours;
3. cancels that contact's messages still waiting in the same ``journey_id`` as the
   message replied to, with reason ``replied``;
4. runs the tenant's routing rules, recorded as ``routed`` / ``escalated`` events.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.domain.ids import new_id
from app.domain.reasons import StatusReason
from app.domain.statuses import CANCELABLE, Status
from app.messaging.compliance.consent import current_state, record_consent
from app.messaging.compliance.keywords import Keyword, classify, reply_text
from app.messaging.compliance.privacy import REMOVED_PAYLOAD, keeps_no_body
from app.messaging.contacts import find_or_create_contact
from app.messaging.conversations.rules import route_inbound
from app.messaging.intake.accept import PolicyRefused, accept_intent
from app.messaging.intake.intents import SendIntent, request_hash
from app.messaging.intake.routing import NoRoute
from app.messaging.states import apply_transition, record_created, record_note
from app.models import ChannelAccount, Contact, InboxItem, Message, Tenant
from app.providers.canonical import CanonicalEvent
from config import Settings

# A reply is linked to the last message sent to the contact within this long.
REPLY_WINDOW = timedelta(days=30)
# A reply answers a message the person received: one handed to the provider.
WENT_OUT = [
    s.value
    for s in (Status.DISPATCHED, Status.ACCEPTED, Status.SENT, Status.DELIVERED, Status.READ)
]
# An auto-reply not out within this long is not worth sending.
AUTO_REPLY_TTL_SECONDS = 3600


def record_inbound(
    session: Session,
    settings: Settings,
    item: InboxItem,
    account: ChannelAccount,
    event: CanonicalEvent,
) -> Message:
    assert event.sender is not None and event.message is not None
    source = f"webhook:{item.provider}"
    contact, created = find_or_create_contact(session, item.tenant_id, event.sender.phone)
    now = utcnow()
    last_outbound = session.scalar(
        select(Message)
        .where(
            Message.tenant_id == item.tenant_id,
            Message.contact_id == contact.id,
            Message.direction == "outbound",
            Message.purpose.is_(None),
            Message.status.in_(WENT_OUT),
            Message.created_at >= now - REPLY_WINDOW,
        )
        .order_by(Message.id.desc())
        .limit(1)
    )
    metadata: dict[str, object] = dict(event.metadata)
    metadata["conversation_id"] = event.conversationId or contact.id
    if last_outbound is not None:
        metadata["in_reply_to"] = last_outbound.id
    attachments = [{"url": a.url, "content_type": a.contentType} for a in event.message.attachments]
    tenant = session.get(Tenant, item.tenant_id)
    assert tenant is not None
    # Metadata only (the tenant's mode, or end-to-end encryption): the text is matched for
    # keywords below, from the event, and stored nowhere; the raw payload is blanked too.
    bodiless = keeps_no_body(tenant, event.metadata)
    if bodiless:
        item.payload, item.payload_removed_at = REMOVED_PAYLOAD, now
    inbound = Message(
        id=new_id("msg"),
        tenant_id=item.tenant_id,
        direction="inbound",
        channel=event.channel,
        channels=[event.channel],
        account_id=account.id,
        contact_id=contact.id,
        body=None if bodiless else event.message.text,
        media=json.dumps(attachments) if attachments and not bodiless else None,
        body_removed_at=now if bodiless else None,
        status=Status.RECEIVED.value,
        provider_message_id=event.providerMessageId or event.eventId,
        segments=1,
        journey_id=last_outbound.journey_id if last_outbound is not None else None,
        metadata_=metadata,
        created_at=now,
        updated_at=now,
    )
    session.add(inbound)
    record_created(session, inbound, source=source)
    if last_outbound is not None:
        record_note(
            session,
            last_outbound,
            "replied",
            source=source,
            dedupe_key=f"reply:{item.dedupe_key}",
            data={"reply_id": inbound.id},
        )

    keyword = classify(event.message.text, tenant.keywords)
    if keyword is not None:
        _act_on_keyword(session, settings, tenant, account, contact, inbound, keyword, source)
    if last_outbound is not None and last_outbound.journey_id:
        cancel_journey(session, contact, last_outbound.journey_id, inbound.id)
    route_inbound(session, inbound, event.sender.phone, known=not created, source=source)
    return inbound


def _act_on_keyword(
    session: Session,
    settings: Settings,
    tenant: Tenant,
    account: ChannelAccount,
    contact: Contact,
    inbound: Message,
    keyword: Keyword,
    source: str,
) -> None:
    if keyword is Keyword.OPT_OUT and _opted_out_everywhere(session, contact):
        # Already opted out: their confirmation went with the first STOP, and it is the
        # one message allowed after an opt-out. Recorded, not answered.
        record_note(session, inbound, "opted_out", source=source, data={"already": True})
        return
    if keyword is Keyword.OPT_OUT:
        record_consent(
            session,
            contact,
            channel="all",
            status="opted_out",
            source="keyword",
            evidence=inbound.id,
        )
        record_note(session, inbound, "opted_out", source=source, data={"keyword": "opt_out"})
    elif keyword is Keyword.OPT_IN:
        record_consent(
            session,
            contact,
            channel="all",
            status="opted_in",
            source="keyword",
            evidence=inbound.id,
        )
        record_note(session, inbound, "opted_in", source=source, data={"keyword": "opt_in"})
    else:
        record_note(session, inbound, "help", source=source, data={"keyword": "help"})
    text = reply_text(keyword, tenant.auto_replies)
    if text is None:
        return
    intent = SendIntent.model_validate(
        {
            "to": contact.phone,
            "body": text,
            "channels": [inbound.channel],
            "account_id": account.id,
            "priority": "urgent",
            "quiet_hours": "ignore",
            "ttl_seconds": AUTO_REPLY_TTL_SECONDS,
            "metadata": {"in_reply_to": inbound.id},
        }
    )
    try:
        with session.begin_nested():
            reply = accept_intent(
                session,
                settings,
                tenant,
                intent,
                idempotency_key=f"auto-reply:{inbound.id}",
                payload_hash=request_hash(intent.model_dump(mode="json")),
                source="auto_reply",
                purpose=f"auto_reply:{keyword.value}",
            )
    except (PolicyRefused, NoRoute) as exc:
        # HELP from someone opted out gets no answer; an account that cannot carry it, none.
        why = exc.decision.reason if isinstance(exc, PolicyRefused) else exc.reason
        record_note(session, inbound, "auto_reply", source=source, reason=f"not_sent:{why}")
        return
    record_note(session, inbound, "auto_reply", source=source, data={"reply_id": reply.message.id})


def _opted_out_everywhere(session: Session, contact: Contact) -> bool:
    return all(
        current_state(session, contact.tenant_id, contact.phone_index, channel).opted_out
        for channel in ("sms", "mms", "rcs")
    )


def cancel_journey(session: Session, contact: Contact, journey_id: str, reply_id: str) -> int:
    """Cancel the contact's messages still waiting in ``journey_id``: they replied."""
    waiting = session.scalars(
        select(Message)
        .where(
            Message.tenant_id == contact.tenant_id,
            Message.contact_id == contact.id,
            Message.journey_id == journey_id,
            Message.direction == "outbound",
            Message.status.in_([s.value for s in CANCELABLE]),
        )
        .order_by(Message.id)
        .with_for_update()
    )
    canceled = 0
    for message in waiting:
        apply_transition(
            session,
            message,
            Status.CANCELED,
            source="conversation",
            reason=StatusReason.REPLIED,
            data={"reply_id": reply_id},
        )
        canceled += 1
    return canceled
