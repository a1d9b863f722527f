"""Processing the webhook inbox: provider statuses move messages, inbound messages are recorded.

Each inbox row is processed once (``processed_at``), under a row lock, and
the message's transition commits with it. A status for a message we cannot
find yet (the receipt overtook the send response) is kept and retried later.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.messaging.backoff import retry_delay
from app.messaging.contacts import get_or_create_contact
from app.messaging.states import Status, apply_transition, record_created, record_note
from app.models import ChannelAccount, InboxItem, Message
from app.models.types import new_id, utcnow
from app.providers.canonical import CanonicalEvent

log = logging.getLogger(__name__)

PROVIDER_STATUS = {
    "queued": Status.ACCEPTED,
    "accepted": Status.ACCEPTED,
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.READ,
    "failed": Status.FAILED,
    "undelivered": Status.UNDELIVERED,
}
MAX_ORPHAN_ATTEMPTS = 8


def process_inbox_item(session: Session, item_id: str) -> str:
    """Apply one inbox row. The caller's transaction commits the result."""
    item = session.scalar(select(InboxItem).where(InboxItem.id == item_id).with_for_update())
    if item is None:
        return "missing"
    if item.processed_at is not None:
        return "already_processed"
    try:
        event = CanonicalEvent.model_validate_json(item.payload)
    except ValidationError:
        # It was validated before it was stored, so this is a schema change: keep it, flag it.
        return _finish(item, "invalid")
    if event.direction == "status":
        return _apply_status(session, item, event)
    if event.direction == "inbound":
        return _record_inbound(session, item, event)
    return _finish(item, "ignored")


def _finish(item: InboxItem, result: str) -> str:
    item.processed_at = utcnow()
    item.result = result
    item.next_attempt_at = None
    return result


def _apply_status(session: Session, item: InboxItem, event: CanonicalEvent) -> str:
    message = session.scalar(
        select(Message)
        .where(
            Message.tenant_id == item.tenant_id,
            Message.account_id == item.account_id,
            Message.provider_message_id == event.providerMessageId,
        )
        .with_for_update()
    )
    if message is None:
        item.attempts += 1
        item.last_error = "unknown providerMessageId"
        if item.attempts >= MAX_ORPHAN_ATTEMPTS:
            log.warning("inbox status for unknown message", extra={"inbox_id": item.id})
            return _finish(item, "orphan")
        item.next_attempt_at = utcnow() + retry_delay(item.attempts, 2.0, 300.0)
        return "deferred"
    assert event.status is not None
    target = PROVIDER_STATUS[event.status]
    result = apply_transition(
        session,
        message,
        target,
        source=f"webhook:{item.provider}",
        reason=event.errorCode if target in (Status.FAILED, Status.UNDELIVERED) else None,
        dedupe_key=f"receipt:{item.dedupe_key}",
        data={"provider_status": event.status, "event_timestamp": event.timestamp.isoformat()},
    )
    return _finish(item, f"status:{result.outcome.value}")


def _record_inbound(session: Session, item: InboxItem, event: CanonicalEvent) -> str:
    assert event.sender is not None and event.message is not None
    contact = get_or_create_contact(session, item.tenant_id, event.sender.phone)
    account = session.get(ChannelAccount, item.account_id)
    assert account is not None
    now = utcnow()
    message = Message(
        id=new_id("msg"),
        tenant_id=item.tenant_id,
        direction="inbound",
        channel=event.channel,
        channels=[event.channel],
        account_id=account.id,
        contact_id=contact.id,
        body=event.message.text,
        status=Status.RECEIVED.value,
        provider_message_id=event.providerMessageId or event.eventId,
        segments=1,
        metadata_={"conversation_id": event.conversationId} if event.conversationId else {},
        created_at=now,
        updated_at=now,
    )
    session.add(message)
    record_created(session, message, source=f"webhook:{item.provider}")
    # The conversation fact belongs on the message being replied to, too.
    last_outbound = session.scalar(
        select(Message)
        .where(
            Message.tenant_id == item.tenant_id,
            Message.contact_id == contact.id,
            Message.direction == "outbound",
            Message.created_at >= now - timedelta(days=30),
        )
        .order_by(Message.id.desc())
        .limit(1)
    )
    if last_outbound is not None:
        record_note(
            session,
            last_outbound,
            "replied",
            source=f"webhook:{item.provider}",
            dedupe_key=f"reply:{item.dedupe_key}",
            data={"reply_id": message.id},
        )
    return _finish(item, "inbound")
