"""Recording a sent batch's outcomes in one transaction.

The messages are locked and read in one query. Accepted sends still ``dispatched`` (the
common case) move to ``accepted`` in one UPDATE with one INSERT for their events. A send
a receipt overtook keeps what is there and only learns its provider id. Every other
outcome (throttled, retryable, permanent, with fallback) goes one message at a time
through the state machine, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.domain.queues import QueueNames
from app.domain.reasons import StatusReason
from app.domain.retries import retry_delay
from app.domain.statuses import Outcome, Status
from app.infra.db import Database
from app.infra.outbox import enqueue
from app.messaging.compliance.consent import record_provider_opt_out
from app.messaging.compliance.privacy import remove_bodies
from app.messaging.dispatch.waits import wait_or_expire
from app.messaging.intake.routing import next_channel
from app.messaging.moves import Move, write_events, write_statuses
from app.messaging.states import apply_transition
from app.models import ChannelAccount, Message, Tenant
from app.providers import get_provider
from app.providers.base import PermanentError, ProviderError, SendResult, ThrottledError
from config import Settings

log = logging.getLogger(__name__)

# A simulating provider's receipts (the sandbox's) for this many sends go in one task: a task
# a message cost more than the receipts themselves (its outbox row, its publish, a query).
RECEIPTS_PER_TASK = 50

# (message id, the claim's provider, what the provider answered)
Sent = tuple[str, str, SendResult | ProviderError]


def record_outcomes(db: Database, settings: Settings, sent: Sequence[Sent]) -> dict[str, str]:
    """Write down every provider answer of a batch; what happened to each message."""
    results: dict[str, str] = {}
    if not sent:
        return results
    with db.session() as session:
        rows = {
            r.id: r
            for r in session.execute(
                select(
                    Message.id,
                    Message.tenant_id,
                    Message.status,
                    Message.provider_message_id,
                    # Not locked (a subquery): whether the tenant keeps bodies past the send.
                    select(Tenant.body_retention)
                    .where(Tenant.id == Message.tenant_id)
                    .scalar_subquery()
                    .label("body_retention"),
                )
                .where(Message.id.in_(sorted({m for m, _, _ in sent})))
                .with_for_update()
            )
        }
        accepted: list[Move] = []
        receipts: list[tuple[str, str]] = []
        for message_id, provider, outcome in sent:
            row = rows[message_id]
            if row.status != Status.DISPATCHED:
                # A receipt overtook the send response, or reconciliation acted: keep it.
                log.info("outcome after status moved on", extra={"message_id": message_id})
                if isinstance(outcome, SendResult) and row.provider_message_id is None:
                    session.execute(
                        update(Message)
                        .where(Message.id == message_id)
                        .values(provider_message_id=outcome.provider_message_id)
                    )
                results[message_id] = f"late:{row.status}"
            elif isinstance(outcome, SendResult):
                accepted.append(
                    Move(
                        message_id=message_id,
                        tenant_id=row.tenant_id,
                        from_status=Status.DISPATCHED.value,
                        to_status=Status.ACCEPTED.value,
                        outcome=Outcome.APPLIED,
                        source="provider",
                        data={"provider_message_id": outcome.provider_message_id},
                        changes={"provider_message_id": outcome.provider_message_id},
                    )
                )
                task = get_provider(provider).receipt_task
                if task is not None:
                    receipts.append((task, message_id))
                results[message_id] = "accepted"
            else:
                message = session.get(Message, message_id)
                assert message is not None
                results[message_id] = record_failure(session, settings, message, outcome)
        write_statuses(session, accepted)
        write_events(session, accepted)
        # Privacy mode "none": the body goes in the transaction that records the send.
        remove_bodies(
            session,
            [m.message_id for m in accepted if rows[m.message_id].body_retention == "none"],
        )
        by_task: dict[str, list[str]] = {}
        for task, message_id in receipts:
            by_task.setdefault(task, []).append(message_id)
        for task, ids in by_task.items():  # a simulating provider plays a batch per task
            for start in range(0, len(ids), RECEIPTS_PER_TASK):
                enqueue(session, task, ids[start : start + RECEIPTS_PER_TASK], QueueNames.INTAKE)
    return results


def record_failure(
    session: Session, settings: Settings, message: Message, outcome: ProviderError
) -> str:
    """A ``dispatched`` message whose send failed: wait, fall back, retry or fail."""
    now = utcnow()
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
    delay = retry_delay(message.attempts, settings.retry_base_seconds, settings.retry_max_seconds)
    return wait_or_expire(
        session, message, now + delay, source="provider", reason="retry", data=data
    )
