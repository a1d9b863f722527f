"""Putting stuck work right: beat's reconciliation, and the support staff's redrive.

Nothing here re-sends blindly. A message whose send may have happened
(``dispatched``) is checked with the provider when it has the provider's id,
and otherwise marked for review; ``accepted`` and ``sent`` messages are
polled. Only messages that never reached a provider are handed back to a lane.
Every action is an event on the message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.domain.queues import lane_for
from app.domain.statuses import FINAL, Status
from app.infra.broker import TaskNames
from app.infra.db import Database
from app.infra.outbox import enqueue
from app.messaging.receipts.drain import apply_provider_status
from app.messaging.recovery.stuck import Window, stuck_filter
from app.messaging.states import apply_transition, record_note
from app.models import ChannelAccount, Message, MessageEvent
from app.providers import get_provider
from app.providers.base import ProviderError
from app.providers.canonical import CanonicalEvent
from app.security import audit

log = logging.getLogger(__name__)

NOT_SENT = (Status.PENDING, Status.SCHEDULED, Status.QUEUED)
WITH_PROVIDER = (Status.DISPATCHED, Status.ACCEPTED, Status.SENT)


@dataclass(frozen=True)
class Action:
    id: str
    status: str
    action: str  # requeued | polled:<status> | unchanged | review | unreachable | final | missing
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "status": self.status, "action": self.action, "detail": self.detail}


def _note_once(
    session: Session, message: Message, kind: str, *, source: str, reason: str, key: str
) -> bool:
    seen = session.scalar(
        select(MessageEvent.id).where(
            MessageEvent.message_id == message.id, MessageEvent.dedupe_key == key
        )
    )
    if seen is not None:
        return False
    record_note(session, message, kind, source=source, reason=reason, dedupe_key=key)
    return True


def _requeue(session: Session, message: Message, *, source: str) -> None:
    """Hand a message that never reached a provider back to its lane (dispatch is idempotent)."""
    if message.status != Status.QUEUED:
        apply_transition(
            session,
            message,
            Status.QUEUED,
            source=source,
            reason="redriven",
            changes={"next_attempt_at": None},
        )
    else:
        message.updated_at = utcnow()
        record_note(session, message, "requeued", source=source, reason="lost from its lane")
    lane = lane_for(message.priority)
    enqueue(session, TaskNames.DISPATCH, [message.id], lane, wake=message.tenant_id)


def check_with_provider(db: Database, message_id: str, *, source: str) -> Action:
    """Poll the provider for a message it has (by its id there), and apply what it says."""
    with db.session() as session:
        message = session.get(Message, message_id)
        if message is None:
            return Action(message_id, "-", "missing")
        account = session.get(ChannelAccount, message.account_id)
        status, provider_id = message.status, message.provider_message_id
    if account is None or provider_id is None:
        return Action(message_id, status, "review", "no provider id to check the send with")
    provider = get_provider(account.provider)
    try:
        event: CanonicalEvent | None = provider.fetch_status(account, provider_id)
    except ProviderError as exc:
        return Action(message_id, status, "unreachable", str(exc)[:200])
    if event is None:
        return Action(message_id, status, "unchanged", f"{provider.name} cannot be polled")
    with db.session() as session:
        locked = session.scalar(select(Message).where(Message.id == message_id).with_for_update())
        assert locked is not None
        result = apply_provider_status(
            session,
            locked,
            provider,
            event,
            source=source,
            dedupe_key=f"poll:{provider_id}:{event.metadata.get('providerStatus', event.status)}",
        )
        if result.applied:
            return Action(message_id, status, f"polled:{locked.status}")
        return Action(message_id, status, "unchanged", f"the provider says {event.status}")


def redrive(
    db: Database,
    message_ids: list[str],
    *,
    dry_run: bool,
    actor: str,
    tenant_id: str | None = None,
    audited_as: str | None = None,
) -> list[Action]:
    """Re-drive each message safely (see the module's docstring). Returns what was done.

    ``actor`` names the kind of caller in the messages' events (``redrive:api``);
    ``audited_as``, when given, the caller itself in the audit chain (``key:<id>``)."""
    done: list[Action] = []
    source = f"redrive:{actor}"[:40]
    auditor = audited_as or actor
    for message_id in message_ids:
        with db.session() as session:
            query = select(Message).where(Message.id == message_id)
            if tenant_id is not None:
                query = query.where(Message.tenant_id == tenant_id)
            message = session.scalar(query.with_for_update())
            if message is None:
                done.append(Action(message_id, "-", "missing"))
                continue
            status = Status(message.status)
            if status in FINAL or status in (Status.DELIVERED, Status.RECEIVED):
                done.append(Action(message_id, status.value, "final"))
                continue
            if status in NOT_SENT:
                if not dry_run:
                    _requeue(session, message, source=source)
                    _audit(session, message, auditor, "requeued")
                done.append(Action(message_id, status.value, "requeued"))
                continue
            if dry_run:
                plan = "poll" if message.provider_message_id else "review"
                done.append(Action(message_id, status.value, plan))
                continue
        action = check_with_provider(db, message_id, source=source)
        with db.session() as session:
            locked = session.get(Message, message_id)
            assert locked is not None
            if action.action in ("review", "unchanged", "unreachable"):
                record_note(session, locked, "needs_review", source=source, reason=action.action)
            _audit(session, locked, auditor, action.action)
        done.append(action)
    return done


def _audit(session: Session, message: Message, actor: str, result: str) -> None:
    audit.append(
        session,
        tenant_id=message.tenant_id,
        actor=actor,
        action="message.redrive",
        target="message",
        ids=[message.id],
        change={"status": message.status, "result": result},
    )


def select_ids(
    session: Session,
    *,
    status: str,
    older_than: timedelta,
    tenant_id: str | None = None,
    limit: int = 1000,
) -> list[str]:
    """Messages in ``status`` that have been there longer than ``older_than``."""
    window = Window({status: older_than.total_seconds()}, older_than)
    query = select(Message.id).where(stuck_filter(window, utcnow()))
    if tenant_id is not None:
        query = query.where(Message.tenant_id == tenant_id)
    return list(session.scalars(query.order_by(Message.updated_at).limit(limit)))


def reconcile(db: Database, slas: dict[str, float], batch: int = 100) -> dict[str, int]:
    """Beat: re-owe lost dispatches, poll messages that waited too long at the provider,
    and mark what cannot be put right as stuck (once per state), so the report shows it."""
    now = utcnow()
    counts = {"requeued": 0, "polled": 0, "marked_stuck": 0}
    with db.session() as session:
        lost = session.scalars(
            select(Message)
            .where(stuck_filter(Window({"queued": slas["queued"]}), now))
            .limit(batch)
            .with_for_update(skip_locked=True)
        ).all()
        for message in lost:
            _requeue(session, message, source="beat")
            counts["requeued"] += 1
        window = Window({s.value: slas[s.value] for s in WITH_PROVIDER})
        candidates = session.scalars(
            select(Message)
            .where(stuck_filter(window, now))
            .order_by(Message.updated_at)
            .limit(batch)
        ).all()
        already = set(
            session.execute(
                select(MessageEvent.message_id, MessageEvent.dedupe_key).where(
                    MessageEvent.message_id.in_([m.id for m in candidates]),
                    MessageEvent.kind == "stuck",
                )
            ).all()
        )
        todo = {m.id: m.status for m in candidates if (m.id, f"stuck:{m.status}") not in already}
    for message_id, selected in todo.items():
        action = check_with_provider(db, message_id, source="beat")
        if action.action.startswith("polled:"):
            counts["polled"] += 1
            continue
        with db.session() as session:
            found = session.get(Message, message_id)
            # Only what is still where it overstayed: a message that moved on meanwhile (its
            # batch recorded, a receipt applied) starts its new state's SLA afresh, and is
            # polled in that state when it overstays there. Marked now, it never would be.
            if (
                found is not None
                and found.status == selected
                and _note_once(
                    session,
                    found,
                    "stuck",
                    source="beat",
                    reason=action.detail or action.action,
                    key=f"stuck:{found.status}",
                )
            ):
                counts["marked_stuck"] += 1
    return counts
