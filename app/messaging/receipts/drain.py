"""Processing the webhook inbox: provider statuses move messages, inbound messages are recorded.

Each inbox row is processed once (``processed_at``), under a row lock, and
the message's transition commits with it. Rows are applied in batches: status
receipts set-based (``_apply_statuses``), inbound messages one at a time, handed
to ``conversations``. The row's provider module reads it
back into its canonical event and names the reason for a failure. A status
for a message we cannot find yet (the receipt overtook the send response) is
retried with backoff, then parked (retried hourly, listed as unprocessed),
never dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.domain.clock import utcnow
from app.domain.reasons import StatusReason
from app.domain.retries import retry_delay
from app.domain.statuses import Outcome, Status, plan_transition
from app.infra.db import Database
from app.messaging.compliance.consent import record_provider_opt_out
from app.messaging.compliance.privacy import remove_bodies, reported_e2ee
from app.messaging.conversations.inbound import record_inbound
from app.messaging.moves import Move, write_events, write_statuses
from app.messaging.states import TransitionResult, apply_transition
from app.models import ChannelAccount, InboxItem, Message, MessageEvent
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
    """Apply one inbox row (a batch of one). The caller's transaction commits the result."""
    return apply_inbox(session, settings, ids=[item_id]).get(item_id, "missing")


def drain_inbox(
    db: Database,
    settings: Settings,
    hint: str | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[int, bool]:
    """Apply due inbox rows (and ``hint``, due or not) batch after batch, for up to
    ``DRAIN_SECONDS``; how many, and whether work was left for the caller to hand on."""
    deadline = time.monotonic() + settings.drain_seconds
    handled = 0
    while True:
        with db.session() as session:
            results = apply_inbox(session, settings, limit=settings.receipt_batch_size, hint=hint)
        hint = None
        handled += len(results)
        if len(results) < settings.receipt_batch_size:
            return handled, False
        if should_stop() or time.monotonic() >= deadline:
            return handled, True


def apply_inbox(
    session: Session,
    settings: Settings,
    *,
    ids: Sequence[str] | None = None,
    limit: int = 200,
    hint: str | None = None,
) -> dict[str, str]:
    """Apply a batch of inbox rows: exactly ``ids``, or up to ``limit`` due ones (and
    ``hint``, an unprocessed row that is not due yet).

    Locking: due rows are claimed ``FOR UPDATE SKIP LOCKED`` (oldest first), so batches
    running side by side take different rows; their messages are locked in id order.
    The caller's transaction commits everything, or nothing.
    """
    now = utcnow()
    query = select(InboxItem).order_by(InboxItem.received_at, InboxItem.id)
    if ids is not None:
        items = list(session.scalars(query.where(InboxItem.id.in_(ids)).with_for_update()))
    else:
        due = or_(InboxItem.next_attempt_at.is_(None), InboxItem.next_attempt_at <= now)
        if hint is not None:
            due = or_(due, InboxItem.id == hint)
        items = list(
            session.scalars(
                query.where(InboxItem.processed_at.is_(None), due)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
    results: dict[str, str] = {}
    statuses: list[tuple[InboxItem, Provider, CanonicalEvent]] = []
    accounts = {
        a.id: a
        for a in session.scalars(
            select(ChannelAccount).where(ChannelAccount.id.in_({i.account_id for i in items}))
        )
    }
    for item in items:
        if item.processed_at is not None:
            results[item.id] = "already_processed"
            continue
        account = accounts.get(item.account_id)
        try:
            provider = get_provider(item.provider)
            assert account is not None
            event = provider.parse_stored(account, item.payload)
        except (LookupError, MalformedWebhook):
            # It was parsed before it was stored, so this is a code change: keep it, flag it.
            results[item.id] = _finish(item, "invalid")
            continue
        if event.direction == "status":
            statuses.append((item, provider, event))
        elif event.direction == "inbound":
            record_inbound(session, settings, item, account, event)
            results[item.id] = _finish(item, "inbound")
        else:
            results[item.id] = _finish(item, "ignored")
    if statuses:
        results.update(_apply_statuses(session, statuses, now))
    return results


def _finish(item: InboxItem, result: str) -> str:
    item.processed_at = utcnow()
    item.result = result
    item.next_attempt_at = None
    return result


def _orphan(item: InboxItem) -> str:
    """A status for a message we cannot find yet: retry with backoff, then park."""
    item.attempts += 1
    item.last_error = "unknown providerMessageId"
    if item.attempts >= MAX_ORPHAN_ATTEMPTS:
        log.warning("inbox status for unknown message parked", extra={"inbox_id": item.id})
        item.result = "parked"
        item.next_attempt_at = utcnow() + PARKED_RETRY
        return "parked"
    item.next_attempt_at = utcnow() + retry_delay(item.attempts, 2.0, 300.0)
    return "deferred"


def _apply_statuses(
    session: Session,
    statuses: list[tuple[InboxItem, Provider, CanonicalEvent]],
    now: datetime,
) -> dict[str, str]:
    """Every status receipt of the batch, set-based: one query for their messages, one for
    receipts already seen, one UPDATE for the messages and one INSERT for the events.

    Receipts apply in arrival order, so a message's ``sent`` then ``delivered`` in one batch
    both apply, a repeat is one event, and a final state is never regressed: the state
    machine's ``plan_transition`` decides each, as ``apply_transition`` would.
    """
    wanted: dict[str, set[str]] = {}
    for item, _, event in statuses:
        wanted.setdefault(item.account_id, set()).add(str(event.providerMessageId))
    rows = session.execute(
        select(
            Message.id,
            Message.tenant_id,
            Message.account_id,
            Message.provider_message_id,
            Message.status,
            Message.contact_id,
            Message.direction,
        )
        .where(
            or_(
                *(
                    and_(Message.account_id == a, Message.provider_message_id.in_(sorted(p)))
                    for a, p in wanted.items()
                )
            )
        )
        .order_by(Message.id)
        .with_for_update()
    ).all()
    found = {(r.tenant_id, r.account_id, r.provider_message_id): r for r in rows}
    keys = [f"receipt:{item.dedupe_key}" for item, _, _ in statuses]
    # One read of the messages' events: the receipts already seen, and when the provider
    # accepted each message (for the accepted-to-delivered histogram, app.observability.metrics).
    seen: set[tuple[str, str | None]] = set()
    accepted: dict[str, datetime] = {}
    wanted_keys = set(keys)
    for message_id, dedupe_key, to_status, at in session.execute(
        select(
            MessageEvent.message_id,
            MessageEvent.dedupe_key,
            MessageEvent.to_status,
            MessageEvent.created_at,
        ).where(
            MessageEvent.message_id.in_([r.id for r in rows]),
            or_(
                MessageEvent.dedupe_key.in_(keys),
                and_(MessageEvent.to_status == "accepted", MessageEvent.outcome == "applied"),
            ),
        )
    ).all():
        if dedupe_key in wanted_keys:
            seen.add((message_id, dedupe_key))
        if to_status == "accepted" and (message_id not in accepted or at < accepted[message_id]):
            accepted[message_id] = at
    current = {r.id: Status(r.status) for r in rows}
    moves: list[Move] = []
    net: dict[str, Move] = {}
    slow: list[tuple[InboxItem, Provider, CanonicalEvent, str]] = []
    slow_messages: set[str] = set()  # once one receipt of a message goes slow, all later do
    done: dict[str, str] = {}
    encrypted: set[str] = set()
    for (item, provider, event), dedupe_key in zip(statuses, keys, strict=True):
        row = found.get((item.tenant_id, item.account_id, event.providerMessageId))
        if row is None:
            done[item.id] = _orphan(item)
            continue
        if reported_e2ee(event.metadata):
            encrypted.add(row.id)
        target, reason, data = receipt_transition(provider, event)
        if reason is StatusReason.RECIPIENT_OPTED_OUT or row.id in slow_messages:
            slow.append((item, provider, event, row.id))  # the opt-out it records needs the ORM
            slow_messages.add(row.id)
            continue
        if (row.id, dedupe_key) in seen:
            done[item.id] = f"status:{Outcome.DUPLICATE.value}"
            continue
        seen.add((row.id, dedupe_key))
        outcome, why = plan_transition(current[row.id], target, reason.value if reason else None)
        move = Move(
            message_id=row.id,
            tenant_id=row.tenant_id,
            from_status=current[row.id].value,
            to_status=target.value,
            outcome=outcome,
            source=f"webhook:{item.provider}",
            reason=why,
            dedupe_key=dedupe_key,
            data=data,
            contact_id=row.contact_id,
            direction=row.direction,
        )
        moves.append(move)
        if outcome is Outcome.APPLIED:
            first = net.get(row.id)
            net[row.id] = Move(
                message_id=row.id,
                tenant_id=row.tenant_id,
                from_status=first.from_status if first else current[row.id].value,
                to_status=target.value,
                outcome=Outcome.APPLIED,
                source=move.source,
                reason=why,
            )
            current[row.id] = target
        done[item.id] = f"status:{outcome.value}"
    write_statuses(session, list(net.values()))
    write_events(session, moves, now, accepted=accepted)
    remove_bodies(session, encrypted)
    finished = [i for i, _, _ in statuses if i.id in done and done[i.id].startswith("status:")]
    if finished:
        # One UPDATE per distinct result (a handful: applied, refused, duplicate), each with
        # an expanding IN: a few statement shapes, whatever the batch's size.
        by_result: dict[str, list[str]] = {}
        for i in finished:
            by_result.setdefault(done[i.id], []).append(i.id)
        for result, ids in sorted(by_result.items()):
            session.execute(
                update(InboxItem)
                .where(InboxItem.id.in_(ids))
                .values(processed_at=now, next_attempt_at=None, result=result)
                .execution_options(synchronize_session=False)
            )
        for i in finished:  # keep the loaded rows in step with what was written
            set_committed_value(i, "processed_at", now)
            set_committed_value(i, "result", done[i.id])
            set_committed_value(i, "next_attempt_at", None)
    for item, provider, event, message_id in slow:
        message = session.get(Message, message_id)
        assert message is not None
        moved = apply_provider_status(
            session,
            message,
            provider,
            event,
            source=f"webhook:{item.provider}",
            dedupe_key=f"receipt:{item.dedupe_key}",
        )
        done[item.id] = _finish(item, f"status:{moved.outcome.value}")
    return done


def receipt_transition(
    provider: Provider, event: CanonicalEvent
) -> tuple[Status, StatusReason | None, dict[str, object]]:
    """The move a provider's status event asks for: target, reason (for a failure), data."""
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
    return target, reason, data


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
    target, reason, data = receipt_transition(provider, event)
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
