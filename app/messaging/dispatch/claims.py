"""The batch dispatch claim: many ``queued`` messages to ``dispatched`` in one transaction.

In one transaction, for a fair batch of a lane (``fair``) or for given ids:

1. the messages are locked (``FOR UPDATE SKIP LOCKED``: concurrent batches take others);
2. their contacts are locked ``FOR KEY SHARE SKIP LOCKED``: an opt-out for one of them is
   either committed already, and seen by the policy below, or waits for this claim to
   commit. A contact an opt-out holds right now is skipped: its messages stay queued
   for the next batch (``contended``), which then sees the opt-out;
3. the policy is asked again for every message, with their consent read in two queries:
   refused ones are canceled, deferred ones (quiet hours) wait in ``scheduled``, and
   expired ones expire;
4. each account's rate limit is taken for its messages in one call, in segments; a message
   over it reserves its slot and waits in ``scheduled``;
5. the rest move to ``dispatched`` in one UPDATE (a compare-and-set on ``queued``), with
   one event each in one INSERT.

The rare paths (cancel, defer, expire, wait for a slot) go one message at a time through
``apply_transition``; the common one is set-based. The send happens after the commit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.domain.reasons import StatusReason
from app.domain.statuses import Outcome, Status
from app.infra.db import Database
from app.infra.ratelimit import Rate, RateLimiter
from app.messaging.compliance.consent import lock_contacts_for_claim, states_for
from app.messaging.compliance.policy import Candidate, Decision, Verdict, decide_with
from app.messaging.dispatch import fair
from app.messaging.dispatch.waits import wait_or_expire
from app.messaging.moves import Move, write_events, write_statuses
from app.messaging.states import apply_transition
from app.models import ChannelAccount, Message, Tenant
from app.providers import get_provider, webhook_url
from app.providers.base import SendRequest
from config import Settings

# A released message may be claimed a hair before its reserved slot (clocks, rounding).
SLOT_SLACK = timedelta(milliseconds=50)

_COLUMNS = (
    Message.id,
    Message.tenant_id,
    Message.status,
    Message.contact_id,
    Message.account_id,
    Message.channel,
    Message.priority,
    Message.quiet_hours,
    Message.purpose,
    Message.expires_at,
    Message.rate_slot_at,
    Message.segments,
    Message.attempts,
    Message.throttles,
    Message.body,
    Message.media,
    Message.alternates,
)


def content_for(
    channel: str, body: str | None, media: str | None, alternates: str | None
) -> tuple[str | None, list[dict[str, str]]]:
    """What to send on ``channel``: its own content when the message has per-channel
    content (from a template), else the message's body and media."""
    if alternates:
        own = json.loads(alternates).get(channel)
        if own is not None:
            return own.get("body"), list(own.get("media") or [])
    return body, json.loads(media) if media else []


@dataclass(frozen=True)
class Claim:
    account: ChannelAccount  # detached: the provider call needs no database
    provider: str
    request: SendRequest


@dataclass
class ClaimedBatch:
    claims: list[Claim] = field(default_factory=list)
    # What happened to each message that is not being sent: canceled, quiet_hours, ...
    results: dict[str, str] = field(default_factory=dict)
    # As many rows as asked for were found: the lane probably has more.
    full: bool = False
    # Some messages were left queued because an opt-out held their contact.
    contended: bool = False


def holds_slot(slot: datetime | None, rate: Rate, now: datetime) -> bool:
    """True when the message reserved a send slot and is claimed on it.

    One claimed later than the bucket's depth (burst / rate) goes back in line: if
    late claims kept their old slots, a lagging pipeline would fire a backlog of past
    slots at once and exceed the rate. Within the depth a late claim keeps its slot, so a
    pipeline lagging by up to the depth can send at most one burst more in a window than
    the bucket alone would; narrowing the depth would send every lagging message to the
    back of the line instead, and cost throughput on a loaded machine.
    """
    if slot is None:
        return False
    depth = timedelta(seconds=rate.burst / rate.per_second)
    return slot - SLOT_SLACK <= now <= slot + depth


def claim_batch(
    db: Database,
    settings: Settings,
    limiter: RateLimiter,
    *,
    lane: str | None = None,
    ids: Sequence[str] | None = None,
    fifo: bool = False,
    size: int | None = None,
) -> ClaimedBatch:
    """Claim a fair batch of ``lane`` (a priority) of up to ``size`` (default
    ``DISPATCH_BATCH_SIZE``), or exactly ``ids``; see the module doc."""
    size = size or settings.dispatch_batch_size
    batch = ClaimedBatch()
    with db.session() as session:
        if ids is not None:
            wanted = sorted(set(ids))
            query = select(*_COLUMNS).where(Message.id.in_(wanted)).with_for_update()
            rows = list(session.execute(query))
            batch.results.update({i: "missing" for i in set(wanted) - {r.id for r in rows}})
        else:
            assert lane is not None
            picked = (fair.claim_fifo if fifo else fair.claim_fair)(session, lane, size)
            batch.full = len(picked) >= size
            rows = list(session.execute(select(*_COLUMNS).where(Message.id.in_(picked))))
        queued = []
        for row in rows:
            if row.status == Status.QUEUED:
                queued.append(row)
            else:
                batch.results[row.id] = f"skipped:{row.status}"
        if queued:
            _claim_rows(session, settings, limiter, queued, batch)
    return batch


def _claim_rows(
    session: Session,
    settings: Settings,
    limiter: RateLimiter,
    rows: list[Any],
    batch: ClaimedBatch,
) -> None:
    now = utcnow()
    contacts = lock_contacts_for_claim(session, {r.contact_id for r in rows})
    tenants = {
        t.id: t
        for t in session.scalars(select(Tenant).where(Tenant.id.in_({r.tenant_id for r in rows})))
    }
    live = []
    for row in rows:
        if row.contact_id not in contacts:
            batch.results[row.id] = "contended"
            batch.contended = True
        elif row.expires_at is not None and row.expires_at <= now:
            _slow(session, row.id, lambda m: _expire(session, m))
            batch.results[row.id] = "expired"
        else:
            live.append(row)
    consent = states_for(
        session,
        {(r.tenant_id, contacts[r.contact_id].phone_index, r.channel) for r in live},
    )
    allowed: list[tuple[Any, Decision]] = []
    for row in live:
        contact = contacts[row.contact_id]
        decision = decide_with(
            tenants[row.tenant_id],
            contact.timezone,
            consent[(row.tenant_id, contact.phone_index, row.channel)],
            Candidate(
                channel=row.channel,
                priority=row.priority,
                quiet_hours=row.quiet_hours,
                purpose=row.purpose,
            ),
            now,
            "claim",
        )
        if decision.verdict is Verdict.ALLOW:
            allowed.append((row, decision))
        else:
            batch.results[row.id] = _slow(
                session, row.id, lambda m, d=decision: _hold(session, m, d)
            )
    if not allowed:
        return
    accounts = {
        a.id: a
        for a in session.scalars(
            select(ChannelAccount).where(ChannelAccount.id.in_({r.account_id for r, _ in allowed}))
        )
    }
    going = _take_rate(session, limiter, accounts, allowed, now, batch)
    if not going:
        return
    moves = [
        Move(
            message_id=row.id,
            tenant_id=row.tenant_id,
            from_status=Status.QUEUED.value,
            to_status=Status.DISPATCHED.value,
            outcome=Outcome.APPLIED,
            source="dispatcher",
            data={
                "attempt": row.attempts + 1,
                "channel": row.channel,
                "policy": decision.as_data(),
            },
        )
        for row, decision in going
    ]
    write_statuses(
        session, moves, increment=("attempts",), clear=("next_attempt_at", "rate_slot_at")
    )
    write_events(session, moves, now)
    for account in accounts.values():
        session.expunge(account)
    for row, _ in going:
        account = accounts[row.account_id]
        provider = get_provider(account.provider)
        body, media = content_for(row.channel, row.body, row.media, row.alternates)
        request = SendRequest(
            message_id=row.id,
            to=contacts[row.contact_id].phone,
            sender=account.sender,
            channel=row.channel,
            body=body,
            media=media,
            attempt=row.attempts + 1 + row.throttles,
            status_callback=webhook_url(settings.public_base_url, provider.name, account.id),
        )
        batch.claims.append(Claim(account, account.provider, request))


def _take_rate(
    session: Session,
    limiter: RateLimiter,
    accounts: dict[str, ChannelAccount],
    allowed: list[tuple[Any, Decision]],
    now: datetime,
    batch: ClaimedBatch,
) -> list[tuple[Any, Decision]]:
    """Each account's tokens for its messages in one call; those over the limit wait."""
    going: list[tuple[Any, Decision]] = []
    by_account: dict[str, list[tuple[Any, Decision]]] = {}
    for row, decision in allowed:
        account = accounts[row.account_id]
        rate = Rate.of(account.rate_limit_per_second, account.rate_limit_burst)
        if rate is None or holds_slot(row.rate_slot_at, rate, now):
            going.append((row, decision))
        else:
            by_account.setdefault(account.id, []).append((row, decision))
    for account_id, pending in by_account.items():
        account = accounts[account_id]
        rate = Rate.of(account.rate_limit_per_second, account.rate_limit_burst)
        assert rate is not None
        waits = limiter.acquire_many(
            session, f"account:{account_id}", rate, [row.segments for row, _ in pending]
        )
        for (row, decision), wait in zip(pending, waits, strict=True):
            if wait <= 0:
                going.append((row, decision))
                continue
            slot = now + timedelta(seconds=wait)
            data = {"segments": row.segments, "wait_seconds": round(wait, 3)}
            batch.results[row.id] = _slow(
                session,
                row.id,
                lambda m, s=slot, d=data: wait_or_expire(
                    session,
                    m,
                    s,
                    source="dispatcher",
                    reason="rate_limit",
                    data=d,
                    changes={"rate_slot_at": s},
                ),
            )
    return going


def _slow(session: Session, message_id: str, act: Any) -> str:
    """A rare path, one message at a time through the ORM and ``apply_transition``."""
    message = session.get(Message, message_id)
    assert message is not None
    result: str = act(message)
    return result


def _expire(session: Session, message: Message) -> str:
    apply_transition(
        session, message, Status.EXPIRED, source="dispatcher", reason=StatusReason.EXPIRED
    )
    return "expired"


def _hold(session: Session, message: Message, decision: Decision) -> str:
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
