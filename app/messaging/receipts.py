"""Processing the webhook inbox: provider statuses move messages, inbound messages are recorded.

Each inbox row is processed once (``processed_at``), under a row lock, and
the message's transition commits with it. Inbound messages are handed to
``conversations``. The row's provider module reads it
back into its canonical event and names the reason for a failure. A status
for a message we cannot find yet (the receipt overtook the send response) is
retried with backoff, then parked (retried hourly, listed as unprocessed),
never dropped.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.messaging.backoff import retry_delay
from app.messaging.consent import record_provider_opt_out
from app.messaging.conversations import record_inbound
from app.messaging.reasons import StatusReason
from app.messaging.states import Status, TransitionResult, apply_transition
from app.models import ChannelAccount, InboxItem, Message
from app.models.types import utcnow
from app.providers import get_provider
from app.providers.base import MalformedWebhook, Provider
from app.providers.canonical import CanonicalEvent
from config import Settings

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
# A receipt for an unknown provider id is retried this many times with backoff
# (about ten minutes in all), then parked and retried every PARKED_RETRY.
MAX_ORPHAN_ATTEMPTS = 8
PARKED_RETRY = timedelta(hours=1)


def process_inbox_item(session: Session, settings: Settings, item_id: str) -> str:
    """Apply one inbox row. The caller's transaction commits the result."""
    item = session.scalar(select(InboxItem).where(InboxItem.id == item_id).with_for_update())
    if item is None:
        return "missing"
    if item.processed_at is not None:
        return "already_processed"
    account = session.get(ChannelAccount, item.account_id)
    try:
        provider = get_provider(item.provider)
        assert account is not None
        event = provider.parse_stored(account, item.payload)
    except (LookupError, MalformedWebhook):
        # It was parsed before it was stored, so this is a code change: keep it, flag it.
        return _finish(item, "invalid")
    if event.direction == "status":
        return _apply_status(session, item, provider, event)
    if event.direction == "inbound":
        record_inbound(session, settings, item, account, event)
        return _finish(item, "inbound")
    return _finish(item, "ignored")


def _finish(item: InboxItem, result: str) -> str:
    item.processed_at = utcnow()
    item.result = result
    item.next_attempt_at = None
    return result


def _apply_status(
    session: Session, item: InboxItem, provider: Provider, event: CanonicalEvent
) -> str:
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
            log.warning("inbox status for unknown message parked", extra={"inbox_id": item.id})
            item.result = "parked"
            item.next_attempt_at = utcnow() + PARKED_RETRY
            return "parked"
        item.next_attempt_at = utcnow() + retry_delay(item.attempts, 2.0, 300.0)
        return "deferred"
    result = apply_provider_status(
        session,
        message,
        provider,
        event,
        source=f"webhook:{item.provider}",
        dedupe_key=f"receipt:{item.dedupe_key}",
    )
    return _finish(item, f"status:{result.outcome.value}")


def apply_provider_status(
    session: Session,
    message: Message,
    provider: Provider,
    event: CanonicalEvent,
    *,
    source: str,
    dedupe_key: str,
) -> TransitionResult:
    """Move ``message`` as the provider's status event says (a receipt, or a poll's answer)."""
    assert event.status is not None
    target = PROVIDER_STATUS[event.status]
    failed = target in (Status.FAILED, Status.UNDELIVERED)
    data: dict[str, object] = {
        "provider_status": event.metadata.get("providerStatus", event.status),
        "event_timestamp": event.timestamp.isoformat(),
    }
    if event.errorCode:
        data["error_code"] = event.errorCode  # the raw code; the reason is ours
    reason = provider.status_reason(event.errorCode) if failed else None
    result = apply_transition(
        session,
        message,
        target,
        source=source,
        reason=reason.value if reason else None,
        dedupe_key=dedupe_key,
        data=data,
    )
    if result.applied and reason is StatusReason.RECIPIENT_OPTED_OUT:
        record_provider_opt_out(session, message, event.errorCode)
    return result
