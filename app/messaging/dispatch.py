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
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.broker import QueueNames
from app.db import Database
from app.messaging.backoff import retry_delay
from app.messaging.consent import lock_contact, record_provider_opt_out
from app.messaging.policy import Candidate, Verdict, decide
from app.messaging.ratelimit import DatabaseLimiter, Rate, RateLimiter
from app.messaging.reasons import StatusReason
from app.messaging.routing import next_channel
from app.messaging.states import ConcurrentTransition, Status, apply_transition, is_allowed
from app.models import ChannelAccount, Message, Tenant
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


# A released message may be claimed a hair before its reserved slot (clocks, rounding).
SLOT_SLACK = timedelta(milliseconds=50)


@dataclass(frozen=True)
class Claim:
    account: ChannelAccount  # detached: the provider call needs no database
    provider: str
    request: SendRequest


def _lock_message(session: Session, message_id: str) -> Message | None:
    """Row lock (Postgres) on the message; SQLite's IMMEDIATE transaction serializes instead."""
    return session.scalar(select(Message).where(Message.id == message_id).with_for_update())


def wait_or_expire(
    session: Session,
    message: Message,
    due: datetime,
    *,
    source: str,
    reason: str,
    data: dict[str, Any] | None = None,
    changes: dict[str, Any] | None = None,
) -> str:
    """Hold ``message`` in ``scheduled`` until ``due``, unless its TTL ends first: then expire it.

    Retries, throttles, rate limits and quiet hours never carry a message past its TTL.
    """
    if message.expires_at is not None and due >= message.expires_at:
        if not is_allowed(Status(message.status), Status.EXPIRED):
            # In flight (dispatched): it goes back to wait first, and expires from there.
            apply_transition(
                session, message, Status.SCHEDULED, source=source, reason=reason, data=data
            )
        apply_transition(
            session,
            message,
            Status.EXPIRED,
            source=source,
            reason=StatusReason.EXPIRED,
            data={**(data or {}), "would_wait_for": reason, "due": due.isoformat()},
        )
        return "expired"
    apply_transition(
        session,
        message,
        Status.SCHEDULED,
        source=source,
        reason=reason,
        data=data,
        changes={"next_attempt_at": due, **(changes or {})},
    )
    return reason


def _holds_slot(message: Message, rate: Rate, now: datetime) -> bool:
    """True when the message reserved a send slot and is claimed on it.

    One claimed later than the bucket's depth (burst / rate) goes back in line: if
    late claims kept their old slots, a lagging pipeline would fire a backlog of past
    slots at once and exceed the rate. Lagging costs throughput, never the limit.
    """
    slot = message.rate_slot_at
    if slot is None:
        return False
    depth = timedelta(seconds=rate.burst / rate.per_second)
    return slot - SLOT_SLACK <= now <= slot + depth


def claim(db: Database, settings: Settings, limiter: RateLimiter, message_id: str) -> Claim | str:
    """Move ``queued`` to ``dispatched`` and build the provider request; or say why not.

    The account's rate limit is taken here, in segments: a message over it
    reserves its slot and waits in ``scheduled`` (not an attempt), then passes
    on its slot without taking tokens twice.
    """
    with db.session() as session:
        contact_id = session.scalar(select(Message.contact_id).where(Message.id == message_id))
        if contact_id is None:
            return "missing"
        # The contact first, then the message: the order an opt-out takes them in. Locked
        # so that an opt-out for this person is either seen here or waits for this claim.
        contact = lock_contact(session, contact_id, shared=True)
        message = _lock_message(session, message_id)
        if message is None or contact is None:
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
        tenant = session.get(Tenant, message.tenant_id)
        assert account is not None and tenant is not None
        candidate = Candidate(
            channel=message.channel,
            priority=message.priority,
            quiet_hours=message.quiet_hours,
            purpose=message.purpose,
        )
        decision = decide(session, tenant, contact, candidate, now, "claim")
        if decision.verdict is Verdict.REFUSE:
            # Queued before the recipient opted out (or the tenant began requiring opt-in).
            apply_transition(
                session,
                message,
                Status.CANCELED,
                source="dispatcher",
                reason=decision.reason,
                data={"policy": decision.as_data()},
            )
            return "canceled"
        if decision.verdict is Verdict.DEFER:
            assert decision.until is not None
            # Released or retried into the recipient's night: wait for their morning.
            return wait_or_expire(
                session,
                message,
                decision.until,
                source="dispatcher",
                reason=decision.rule,
                data={"policy": decision.as_data()},
                changes={"not_before": decision.until},
            )
        rate = Rate.of(account.rate_limit_per_second, account.rate_limit_burst)
        if rate is not None and not _holds_slot(message, rate, now):
            wait = limiter.acquire(
                session, f"account:{account.id}", rate, message.segments, reserve=True
            )
            if wait > 0:
                slot = now + timedelta(seconds=wait)
                return wait_or_expire(
                    session,
                    message,
                    slot,
                    source="dispatcher",
                    reason="rate_limit",
                    data={"segments": message.segments, "wait_seconds": round(wait, 3)},
                    changes={"rate_slot_at": slot},
                )
        provider = get_provider(account.provider)
        apply_transition(
            session,
            message,
            Status.DISPATCHED,
            source="dispatcher",
            data={
                "attempt": message.attempts + 1,
                "channel": message.channel,
                "policy": decision.as_data(),
            },
            changes={
                "attempts": message.attempts + 1,
                "next_attempt_at": None,
                "rate_slot_at": None,
            },
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
    db: Database,
    settings: Settings,
    message_id: str,
    outcome: SendResult | ProviderError,
    provider: str,
) -> str:
    """Write down ``provider``'s answer (the claim's provider: no need to read the account)."""
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
            receipt_task = get_provider(provider).receipt_task
            if receipt_task is not None:
                enqueue(session, receipt_task, [message.id], QueueNames.INTAKE)
            return "accepted"
        data = {"error": outcome.reason, "detail": outcome.detail[:200]}
        if outcome.code is not None:
            data["error_code"] = outcome.code  # the provider's raw code
        if isinstance(outcome, ThrottledError):
            return wait_or_expire(
                session,
                message,
                now + timedelta(seconds=outcome.retry_after),
                source="provider",
                reason="throttled",
                data=data,
                changes={
                    "attempts": message.attempts - 1,  # a throttle is not a failed attempt
                    "throttles": message.throttles + 1,
                },
            )
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
            if outcome.reason == StatusReason.RECIPIENT_OPTED_OUT:
                record_provider_opt_out(session, message, outcome.code)
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
        return wait_or_expire(
            session, message, now + delay, source="provider", reason="retry", data=data
        )


RECORD_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)


def _record_with_retries(
    db: Database,
    settings: Settings,
    message_id: str,
    outcome: SendResult | ProviderError,
    provider: str,
) -> str:
    """The provider has answered: try hard to write that down.

    Retrying the whole task would not help (the message is no longer
    ``queued``), so a short database outage is ridden out here. If it lasts
    longer, the message stays ``dispatched`` for the stuck-message reconciliation.
    """
    for delay in (*RECORD_RETRY_DELAYS, None):
        try:
            return record_outcome(db, settings, message_id, outcome, provider)
        except (OperationalError, ConcurrentTransition) as exc:
            if delay is None:
                log.error(
                    "outcome not recorded; message left dispatched",
                    extra={"message_id": message_id, "error": type(exc).__name__},
                )
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")


def dispatch_message(
    db: Database, settings: Settings, message_id: str, limiter: RateLimiter | None = None
) -> str:
    """The whole dispatch of one message; idempotent, returns what happened."""
    claimed = claim(db, settings, limiter or DatabaseLimiter(), message_id)
    if isinstance(claimed, str):
        return claimed
    outcome = send(claimed)
    result = _record_with_retries(db, settings, message_id, outcome, claimed.provider)
    log.info(
        "dispatched",
        extra={"message_id": message_id, "result": result, "provider": claimed.provider},
    )
    return result
