"""Dispatching one message: claim it, call the provider outside any transaction, record the outcome.

A redelivered task finds the message no longer ``queued`` and does nothing,
so a message is never sent twice. If the worker dies between the claim and
recording the outcome, the message stays ``dispatched`` and the stuck-message
reconciliation finds it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.broker import QueueNames
from app.db import Database
from app.messaging.backoff import retry_delay
from app.messaging.quiet_hours import deferral_for
from app.messaging.reasons import StatusReason
from app.messaging.routing import next_channel
from app.messaging.states import ConcurrentTransition, Status, apply_transition
from app.models import ChannelAccount, Contact, Message, Tenant
from app.models.types import utcnow
from app.outbox import enqueue
from app.providers import get_provider, webhook_url
from app.providers.base import (
    PermanentError,
    ProviderError,
    RetryableError,
    SendRequest,
    SendResult,
    ThrottledError,
)
from config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    account: ChannelAccount  # detached: the provider call needs no database
    provider: str
    request: SendRequest


def _lock_message(session: Session, message_id: str) -> Message | None:
    """Row lock (Postgres) on the message; SQLite's IMMEDIATE transaction serializes instead."""
    return session.scalar(select(Message).where(Message.id == message_id).with_for_update())


def claim(db: Database, settings: Settings, message_id: str) -> Claim | str:
    """Move ``queued`` to ``dispatched`` and build the provider request; or say why not."""
    with db.session() as session:
        message = _lock_message(session, message_id)
        if message is None:
            return "missing"
        if message.status != Status.QUEUED:
            return f"skipped:{message.status}"
        now = utcnow()
        if message.expires_at is not None and message.expires_at <= now:
            apply_transition(
                session, message, Status.EXPIRED, source="dispatcher", reason=StatusReason.EXPIRED
            )
            return "expired"
        account = session.get(ChannelAccount, message.account_id)
        contact = session.get(Contact, message.contact_id)
        tenant = session.get(Tenant, message.tenant_id)
        assert account is not None and contact is not None and tenant is not None
        quiet_end = deferral_for(
            message.quiet_hours, tenant.quiet_hours, tenant.timezone, contact.timezone, now
        )
        if quiet_end is not None:
            # Released or retried into the recipient's night: wait for their morning.
            apply_transition(
                session,
                message,
                Status.SCHEDULED,
                source="dispatcher",
                reason="quiet_hours",
                changes={"not_before": quiet_end, "next_attempt_at": None},
            )
            return "quiet_hours"
        provider = get_provider(account.provider)
        apply_transition(
            session,
            message,
            Status.DISPATCHED,
            source="dispatcher",
            data={"attempt": message.attempts + 1, "channel": message.channel},
            changes={"attempts": message.attempts + 1, "next_attempt_at": None},
        )
        request = SendRequest(
            message_id=message.id,
            to=contact.phone,
            sender=account.sender,
            channel=message.channel,
            body=message.body,
            media=json.loads(message.media) if message.media else [],
            attempt=message.attempts + message.throttles,
            status_callback=webhook_url(settings.public_base_url, provider.name, account.id),
        )
        session.expunge(account)
        return Claim(account, account.provider, request)


def send(claim_: Claim) -> SendResult | ProviderError:
    provider = get_provider(claim_.provider)
    try:
        return provider.send(claim_.account, claim_.request)
    except ProviderError as exc:
        return exc
    except Exception as exc:  # an adapter bug or an unclassified transport error
        log.exception(
            "provider send raised unclassified error", extra={"provider": claim_.provider}
        )
        return RetryableError("unclassified_error", type(exc).__name__)


def record_outcome(
    db: Database, settings: Settings, message_id: str, outcome: SendResult | ProviderError
) -> str:
    with db.session() as session:
        message = _lock_message(session, message_id)
        assert message is not None
        if message.status != Status.DISPATCHED:
            # A receipt overtook the send response, or reconciliation acted: keep what is there.
            log.info("outcome after status moved on", extra={"message_id": message_id})
            if isinstance(outcome, SendResult) and message.provider_message_id is None:
                message.provider_message_id = outcome.provider_message_id
            return f"late:{message.status}"
        now = utcnow()
        if isinstance(outcome, SendResult):
            apply_transition(
                session,
                message,
                Status.ACCEPTED,
                source="provider",
                data={"provider_message_id": outcome.provider_message_id},
                changes={"provider_message_id": outcome.provider_message_id},
            )
            account = session.get(ChannelAccount, message.account_id)
            receipt_task = get_provider(account.provider).receipt_task if account else None
            if receipt_task is not None:
                enqueue(session, receipt_task, [message.id], QueueNames.INTAKE)
            return "accepted"
        data = {"error": outcome.reason, "detail": outcome.detail[:200]}
        if outcome.code is not None:
            data["error_code"] = outcome.code  # the provider's raw code
        if isinstance(outcome, ThrottledError):
            due = now + timedelta(seconds=outcome.retry_after)
            apply_transition(
                session,
                message,
                Status.SCHEDULED,
                source="provider",
                reason="throttled",
                data=data,
                changes={
                    "attempts": message.attempts - 1,  # a throttle is not a failed attempt
                    "throttles": message.throttles + 1,
                    "next_attempt_at": due,
                },
            )
            return "throttled"
        if isinstance(outcome, PermanentError):
            account = session.get(ChannelAccount, message.account_id)
            fallback = (
                next_channel(account, message.channels, message.channel)
                if outcome.channel_related and account is not None
                else None
            )
            if fallback is not None:
                apply_transition(
                    session,
                    message,
                    Status.SCHEDULED,
                    source="provider",
                    reason=f"fallback:{fallback}",
                    data=data,
                    changes={"channel": fallback, "next_attempt_at": now},
                )
                return "fallback"
            apply_transition(
                session, message, Status.FAILED, source="provider", reason=outcome.reason, data=data
            )
            return "failed"
        if message.attempts >= settings.max_attempts:
            apply_transition(
                session,
                message,
                Status.FAILED,
                source="provider",
                reason=StatusReason.RETRIES_EXHAUSTED,
                data=data,
            )
            return "failed"
        delay = retry_delay(
            message.attempts, settings.retry_base_seconds, settings.retry_max_seconds
        )
        apply_transition(
            session,
            message,
            Status.SCHEDULED,
            source="provider",
            reason="retry",
            data=data,
            changes={"next_attempt_at": now + delay},
        )
        return "retry"


RECORD_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)


def _record_with_retries(
    db: Database, settings: Settings, message_id: str, outcome: SendResult | ProviderError
) -> str:
    """The provider has answered: try hard to write that down.

    Retrying the whole task would not help (the message is no longer
    ``queued``), so a short database outage is ridden out here. If it lasts
    longer, the message stays ``dispatched`` for the stuck-message reconciliation.
    """
    for delay in (*RECORD_RETRY_DELAYS, None):
        try:
            return record_outcome(db, settings, message_id, outcome)
        except (OperationalError, ConcurrentTransition) as exc:
            if delay is None:
                log.error(
                    "outcome not recorded; message left dispatched",
                    extra={"message_id": message_id, "error": type(exc).__name__},
                )
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")


def dispatch_message(db: Database, settings: Settings, message_id: str) -> str:
    """The whole dispatch of one message; idempotent, returns what happened."""
    claimed = claim(db, settings, message_id)
    if isinstance(claimed, str):
        return claimed
    outcome = send(claimed)
    result = _record_with_retries(db, settings, message_id, outcome)
    log.info(
        "dispatched",
        extra={"message_id": message_id, "result": result, "provider": claimed.provider},
    )
    return result
