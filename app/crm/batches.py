"""Writing a connection's syncs in batches: one drain per connection, within its budget.

A drain takes the connection's lease (``drain_until``), so one drain at a time writes
to a CRM, and then repeats, for up to ``DRAIN_SECONDS``:

1. claim the connection's due syncs in one statement (``FOR UPDATE SKIP LOCKED`` on
   Postgres), a contact's together and in order, none behind a sync of its contact
   that is running or backing off, and one per message (``in_order``);
2. hand them to the connector's ``apply_batch`` outside any transaction, which spends
   its calls from the connection's budget (``app.crm.budget``);
3. record every outcome in one more transaction: done (and the contact's CRM id kept),
   throttled (waits, no attempt used), retryable (backoff held in the row), dead.

A batch that came back short waits out the connection's ``batch_seconds`` (one or two
seconds, by CRM) from its claim before the next, so a steady trickle is written a batch
at a time rather than one by one.

A 429 (or Salesforce's ``REQUEST_LIMIT_EXCEEDED``) pauses the whole connection
(``paused_until``): no drain in any process calls it until then. A worker lost mid-batch
leaves its syncs ``running`` with a lease that runs out; beat hands them on, and each
write is idempotent by its external id, so the CRM sees it once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from app.crm import connector_for
from app.crm.base import (
    CrmBudgetWait,
    CrmHeldBack,
    CrmPermanent,
    CrmRetryable,
    CrmThrottled,
    MessageFacts,
    Outcome,
    SyncRequest,
    SyncResult,
)
from app.crm.budget import Budget
from app.domain.clock import utcnow
from app.domain.retries import retry_delay
from app.infra.db import Database
from app.infra.ratelimit import RateLimiter
from app.models import Contact, CrmConnection, CrmSync, Message
from config import Settings

log = logging.getLogger(__name__)

UNFINISHED = ("pending", "running")
CLAIMED = {"claimed": True}
# A message's facts a write needs, in MessageFacts' order.
FACTS = (
    Message.id,
    Message.direction,
    Message.channel,
    Message.body,
    Message.status,
    Message.status_reason,
    Message.created_at,
)


@dataclass
class DrainReport:
    results: list[str] = field(default_factory=list)
    more: bool = False  # work is left: hand on to another drain
    resume_in: float | None = None  # the connection waits this long (paused, or budget)
    busy: bool = False  # another drain holds the connection


@dataclass(frozen=True)
class Claimed:
    sync_ids: list[int]
    requests: list[SyncRequest]
    results: dict[int, str]  # syncs settled at claim time (dead: contact erased)
    contact_ids: list[str] = field(default_factory=list)  # each request's contact


# -- the lease


def take_lease(db: Database, connection_id: str, lease: timedelta) -> bool:
    now = utcnow()
    with db.session() as session:
        taken = session.execute(
            update(CrmConnection)
            .where(
                CrmConnection.id == connection_id,
                (CrmConnection.drain_until.is_(None)) | (CrmConnection.drain_until < now),
            )
            .values(drain_until=now + lease)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(taken, "rowcount", 0))


def _renew_lease(session: Session, connection_id: str, lease: timedelta) -> None:
    session.execute(
        update(CrmConnection)
        .where(CrmConnection.id == connection_id)
        .values(drain_until=utcnow() + lease)
        .execution_options(synchronize_session=False)
    )


def release_lease(db: Database, connection_id: str) -> None:
    with db.session() as session:
        session.execute(
            update(CrmConnection)
            .where(CrmConnection.id == connection_id)
            .values(drain_until=None)
            .execution_options(synchronize_session=False)
        )


# -- claiming


def claimable(connection_id: str, now: datetime) -> ColumnElement[bool]:
    """Due, and no earlier sync of its contact is held up (running, or backing off)."""
    earlier = aliased(CrmSync)
    held_up = exists().where(
        earlier.connection_id == CrmSync.connection_id,
        earlier.contact_id == CrmSync.contact_id,
        earlier.id < CrmSync.id,
        or_(
            earlier.status == "running",
            and_(earlier.status == "pending", earlier.next_attempt_at > now),
        ),
    )
    return (
        (CrmSync.connection_id == connection_id)
        & (CrmSync.status == "pending")
        & (CrmSync.next_attempt_at <= now)
        & ~held_up
    )


def in_order(syncs: list[CrmSync]) -> list[CrmSync]:
    """The claim's rows (in id order) that may go in one batch: a contact's due syncs
    together, in order, but one activity write per message (its later status waits for
    the id its first write gets); after a sync that waits, the rest of its contact waits."""
    taken: list[CrmSync] = []
    stopped: set[str] = set()
    messages: set[str] = set()
    for sync in syncs:
        if sync.contact_id in stopped:
            continue
        logs = sync.action == "log_message" and sync.message_id is not None
        if logs and sync.message_id in messages:
            stopped.add(sync.contact_id)
            continue
        if logs and sync.message_id is not None:
            messages.add(sync.message_id)
        taken.append(sync)
    return taken


def has_due(db: Database, connection_id: str) -> bool:
    with db.session() as session:
        found = session.scalar(
            select(CrmSync.id).where(claimable(connection_id, utcnow())).limit(1)
        )
    return found is not None


def has_unfinished(session: Session, connection_id: str) -> bool:
    found = session.scalar(
        select(CrmSync.id)
        .where(CrmSync.connection_id == connection_id, CrmSync.status.in_(UNFINISHED))
        .limit(1)
    )
    return found is not None


def _ref(raw: str | None) -> dict[str, str]:
    kind, _, remote = (raw or "").partition(":")
    return {"type": kind, "id": remote} if remote else {}


def _dead(sync: CrmSync, why: str) -> str:
    sync.status, sync.last_error, sync.next_attempt_at = "dead", why[:300], None
    return "dead"


def claim(db: Database, connection: CrmConnection, size: int, lease: timedelta) -> Claimed:
    """Claim up to ``size`` due syncs of ``connection`` and build their writes."""
    now = utcnow()
    with db.session() as session:
        syncs = in_order(
            list(
                session.scalars(
                    select(CrmSync)
                    .where(claimable(connection.id, now))
                    .order_by(CrmSync.id)
                    .limit(size)
                    .with_for_update(skip_locked=True)
                )
            )
        )
        if not syncs:
            return Claimed([], [], {})
        contacts = {
            row.id: row
            for row in session.execute(
                select(Contact.id, Contact.phone, Contact.crm_refs).where(
                    Contact.id.in_({s.contact_id for s in syncs})
                )
            )
        }
        message_ids = {s.message_id for s in syncs if s.message_id}
        messages = {
            row.id: row
            for row in (
                session.execute(select(*FACTS).where(Message.id.in_(message_ids)))
                if message_ids
                else []
            )
        }
        activities: dict[str, str] = {}
        if message_ids:
            for message_id, activity in session.execute(
                select(CrmSync.message_id, CrmSync.result["activity"].as_string())
                .where(
                    CrmSync.connection_id == connection.id,
                    CrmSync.message_id.in_(message_ids),
                    CrmSync.status == "done",
                )
                .order_by(CrmSync.id)
            ):
                if activity:
                    activities[message_id] = activity  # the latest wins
        ids: list[int] = []
        requests: list[SyncRequest] = []
        owners: list[str] = []
        settled: dict[int, str] = {}
        for sync in syncs:
            contact = contacts.get(sync.contact_id)
            if not connection.active:
                settled[sync.id] = _dead(sync, "permanent: the CRM connection was removed")
                continue
            if contact is None or not contact.phone:
                settled[sync.id] = _dead(sync, "permanent: the contact was erased")
                continue
            message = messages.get(sync.message_id) if sync.message_id else None
            requests.append(
                SyncRequest(
                    action=sync.action,
                    external_id=f"{connection.id}:{sync.source_key}",
                    phone=contact.phone,
                    known_contact=_ref((contact.crm_refs or {}).get(connection.id)),
                    message=MessageFacts(*message) if message is not None else None,
                    known_activity=activities.get(message.id) if message is not None else None,
                    details=dict(sync.payload),
                    # Never claimed before: no lease ran out, no attempt or throttle recorded.
                    first_try=sync.attempts == 0
                    and sync.throttles == 0
                    and not sync.result.get("claimed"),
                )
            )
            ids.append(sync.id)
            owners.append(sync.contact_id)
        if ids:  # one statement for the batch (a claimed sync's result is only this mark)
            session.execute(
                update(CrmSync)
                .where(CrmSync.id.in_(ids))
                .values(status="running", next_attempt_at=now + lease, result=CLAIMED)
                .execution_options(synchronize_session=False)
            )
        _renew_lease(session, connection.id, lease)
        return Claimed(ids, requests, settled, owners)


# -- recording


def settle(sync: CrmSync, outcome: Outcome, settings: Settings, now: datetime) -> str:
    """Write down one sync's outcome (the sync is ``running``, locked by the caller)."""
    if isinstance(outcome, SyncResult):
        sync.status, sync.done_at, sync.next_attempt_at = "done", now, None
        sync.result = {"contact": outcome.contact, "activity": outcome.activity}
        sync.last_error = None
        return "done"
    if isinstance(outcome, CrmHeldBack):  # not tried: due again at once, nothing counted
        sync.status, sync.next_attempt_at = "pending", now
        sync.last_error = f"waiting: {outcome.detail}"[:300]
        return "waiting"
    if isinstance(outcome, CrmThrottled):
        sync.status, sync.throttles = "pending", sync.throttles + 1
        sync.next_attempt_at = now + timedelta(seconds=max(0.5, outcome.retry_after))
        kind = "budget" if isinstance(outcome, CrmBudgetWait) else "throttled"
        sync.last_error = f"{kind}: {outcome.detail}"[:300]
        return "throttled"
    if isinstance(outcome, CrmPermanent):
        return _dead(sync, f"permanent: {outcome.detail}")
    detail = outcome.detail if isinstance(outcome, CrmRetryable) else str(outcome)
    sync.attempts += 1
    if sync.attempts >= settings.crm_max_attempts:
        return _dead(sync, f"retries exhausted: {detail}")
    sync.status, sync.last_error = "pending", f"retryable: {detail}"[:300]
    sync.next_attempt_at = now + retry_delay(
        sync.attempts, settings.crm_retry_base_seconds, settings.crm_retry_max_seconds
    )
    return "retry"


def record(
    db: Database,
    settings: Settings,
    connection_id: str,
    sync_ids: list[int],
    outcomes: list[Outcome],
) -> dict[int, str]:
    """Every outcome of a batch, in one transaction; contacts keep the CRM's id for them."""
    results: dict[int, str] = {}
    with db.session() as session:
        syncs = {
            s.id: s
            for s in session.scalars(
                select(CrmSync).where(CrmSync.id.in_(sync_ids)).with_for_update()
            )
        }
        now = utcnow()
        refs: dict[str, dict[str, str]] = {}
        for sync_id, outcome in zip(sync_ids, outcomes, strict=True):
            sync = syncs.get(sync_id)
            if sync is None or sync.status != "running":
                results[sync_id] = "late"  # re-driven meanwhile: the other run records it
                continue
            results[sync_id] = settle(sync, outcome, settings, now)
            if outcome.contact.get("id"):
                refs[sync.contact_id] = outcome.contact
        if refs:
            for row in session.scalars(select(Contact).where(Contact.id.in_(refs))):
                if not row.phone:
                    continue  # erased meanwhile: nothing of it is kept
                ref = f"{refs[row.id]['type']}:{refs[row.id]['id']}"
                if (row.crm_refs or {}).get(connection_id) != ref:
                    row.crm_refs = {**(row.crm_refs or {}), connection_id: ref}
    return results


# -- the drain


def _load(db: Database, connection_id: str) -> CrmConnection | None:
    with db.session() as session:
        connection = session.get(CrmConnection, connection_id)
        if connection is not None:
            session.expunge(connection)
        return connection


def drain_connection(
    db: Database,
    settings: Settings,
    limiter: RateLimiter,
    connection_id: str,
    should_stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
    finishing: Callable[[], None] = lambda: None,
) -> DrainReport:
    """Write ``connection_id``'s due syncs, batch after batch, for up to ``DRAIN_SECONDS``.

    ``finishing`` runs before the lease is given back (the worker clears the connection's
    wake flag there): a sync committed after it publishes a new wake, and one committed
    before it is seen by the last look for due work, after the lease is given back.
    """
    if not take_lease(db, connection_id, timedelta(seconds=settings.crm_lease_seconds)):
        return DrainReport(busy=True)
    report = DrainReport()
    try:
        _drain(db, settings, limiter, connection_id, should_stop, sleep, report)
    finally:
        finishing()
        release_lease(db, connection_id)
    if not report.more and report.resume_in is None and has_due(db, connection_id):
        report.more = True  # committed while we finished: hand on rather than leave it
    return report


def _drain(
    db: Database,
    settings: Settings,
    limiter: RateLimiter,
    connection_id: str,
    should_stop: Callable[[], bool],
    sleep: Callable[[float], None],
    report: DrainReport,
) -> None:
    """Claim batch after batch; each is sent and recorded by a second thread while the
    next is claimed (its contacts' syncs are ``running`` meanwhile, so the next claim
    leaves them alone, and a contact's writes still go in order)."""
    connection = _load(db, connection_id)
    if connection is None:
        return
    budget = Budget(db, limiter, connection.id, connection.kind, connection.limits)
    connector = connector_for(connection.kind, json.loads(connection.config), budget)
    size = min(budget.limits.batch_size, connector.batch_size)
    deadline = time.monotonic() + settings.drain_seconds
    lease = timedelta(seconds=settings.crm_lease_seconds)
    in_flight: Future[list[Outcome]] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="crm-write") as writer:
        while True:
            connection = _load(db, connection_id)
            if connection is None:
                break
            paused = connection.paused_until
            if connection.active and paused is not None and paused > utcnow():
                report.resume_in = (paused - utcnow()).total_seconds()
                break
            claimed_at = time.monotonic()
            # A contact's writes go together (a reply: its activity, then its routing outcome).
            claimed = claim(db, connection, 2 * size, lease)
            report.results += list(claimed.results.values())
            waited = False
            if in_flight is not None:
                waited = _collect(in_flight.result(), budget, report)
                in_flight = None
            if claimed.requests:
                in_flight = writer.submit(
                    _write, db, settings, connector, connection.id, claimed, report
                )
            elif not claimed.results:
                break  # nothing due
            if waited:
                break
            if should_stop() or time.monotonic() >= deadline:
                report.more = True
                break
            if len(claimed.sync_ids) + len(claimed.results) < size:  # well short of full
                # A trickle: let the next second's syncs gather into one batch.
                sleep(max(0.0, claimed_at + budget.limits.batch_seconds - time.monotonic()))
        if in_flight is not None:
            _collect(in_flight.result(), budget, report)
    if not report.results:
        with db.session() as session:
            report.results = ["waiting" if has_unfinished(session, connection_id) else "idle"]


def _write(
    db: Database,
    settings: Settings,
    connector: Any,
    connection_id: str,
    claimed: Claimed,
    report: DrainReport,
) -> list[Outcome]:
    """Send one claimed batch and record its outcomes; the outcomes, for the drain."""
    sending = time.monotonic()
    outcomes = _in_turn(claimed.contact_ids, _send(connector, claimed.requests))
    recording = time.monotonic()
    results = record(db, settings, connection_id, claimed.sync_ids, outcomes)
    report.results += [r for r in results.values() if r != "waiting"]  # untried: not counted
    log.info(
        "crm batch written",
        extra={
            "connection_id": connection_id,
            "syncs": len(claimed.sync_ids),
            "send_ms": round((recording - sending) * 1000),
            "record_ms": round((time.monotonic() - recording) * 1000),
        },
    )
    return outcomes


def _collect(outcomes: list[Outcome], budget: Budget, report: DrainReport) -> bool:
    """A written batch's waits: True when the connection must wait (the drain stops)."""
    waits = [o for o in outcomes if isinstance(o, CrmThrottled)]
    if waits:
        _wait(budget, waits, report)
    return bool(waits)


def _send(connector: Any, requests: list[SyncRequest]) -> list[Outcome]:
    try:
        outcomes: list[Outcome] = connector.apply_batch(requests)
    except Exception:  # a connector bug or an unexpected answer: retry them all, and say so
        log.exception("CRM connector raised", extra={"syncs": len(requests)})
        return [CrmRetryable("unexpected error in the connector") for _ in requests]
    if len(outcomes) != len(requests):
        log.error("CRM connector lost outcomes", extra={"syncs": len(requests)})
        return [CrmRetryable("the connector lost this outcome") for _ in requests]
    return outcomes


def _in_turn(contact_ids: list[str], outcomes: list[Outcome]) -> list[Outcome]:
    """After a contact's first write that failed, its later ones in the batch did not go
    (or failed for the same cause): they wait their turn, untried, nothing counted."""
    failed: set[str] = set()
    kept: list[Outcome] = []
    for contact_id, outcome in zip(contact_ids, outcomes, strict=True):
        if isinstance(outcome, SyncResult):
            kept.append(outcome)
            continue
        if contact_id in failed:
            kept.append(
                CrmHeldBack("an earlier write of this contact failed").about(outcome.contact)
            )
            continue
        failed.add(contact_id)
        kept.append(outcome)
    return kept


def _wait(budget: Budget, waits: list[CrmThrottled], report: DrainReport) -> None:
    """The CRM said slow down, or our budget did: the connection waits, as a whole."""
    longest = max(waits, key=lambda w: w.retry_after)
    report.resume_in = longest.retry_after
    if not isinstance(longest, CrmBudgetWait):  # a 429: every process must stop calling
        budget.pause(longest.retry_after, f"throttled: {longest.detail}")
