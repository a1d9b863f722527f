"""What is owed to a CRM, decided in one place: a hook on every flush.

Every fact that a CRM must hear of is a row written through the ORM: a message
event (an inbound message received, an outbound one reaching a final status, a
routing outcome) or a consent record (an opt-out or opt-in). The hook sees them
as they are flushed and, in the same transaction, writes one ``CrmSync`` per
active connection of the tenant, and owes each connection a drain through the
outbox. So no domain code calls the CRM, and a fact and its syncs commit together
or not at all. The beat sweep (``sweep_missing``) uses the same rules
to find facts that somehow have no sync.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, event, exists, literal, or_, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import String

from app.crm.syncs import owe_drain
from app.domain.clock import utcnow
from app.infra.db import insert_ignore
from app.models import ConsentRecord, CrmConnection, CrmSync, Message, MessageEvent

# An outbound message's statuses that the CRM hears of: the ones it ends in.
FINAL_FOR_CRM = ("delivered", "read", "failed", "undelivered", "expired", "canceled")
ROUTING_KINDS = ("routed", "escalated")
_SEEN = "switchboard.crm.facts"
_TASKS = "switchboard.crm.tasks"

# Messages that got an event in this session, held strongly until it ends: the identity map is
# weak, and the hook below reads each event's message at flush. The state machine fills it.
EVENT_MESSAGES = "switchboard.event_messages"


@dataclass(frozen=True)
class Owed:
    tenant_id: str
    contact_id: str
    message_id: str | None
    action: str
    source_key: str
    payload: dict[str, Any]


def owed_by_event(row: MessageEvent, message: Message | None) -> Owed | None:
    if message is None:
        return None
    action: str | None = None
    payload: dict[str, Any] = {"event_id": row.id, "kind": row.kind}
    if row.kind == "transition" and row.outcome == "applied":
        if row.to_status == "received" and row.from_status is None:
            action = "log_message"
        elif message.direction == "outbound" and row.to_status in FINAL_FOR_CRM:
            action = "log_message"
            payload["status"] = row.to_status
    elif row.kind in ROUTING_KINDS:
        action = "routing"
        payload.update(
            {
                "action": (row.data or {}).get("action"),
                "target": (row.data or {}).get("target"),
                "rule": (row.data or {}).get("rule"),
                "escalated": row.kind == "escalated",
            }
        )
    if action is None:
        return None
    return Owed(row.tenant_id, message.contact_id, message.id, action, f"event:{row.id}", payload)


def owed_by_consent(row: ConsentRecord) -> Owed:
    action = "opt_out" if row.status == "opted_out" else "opt_in"
    payload = {"consent_id": row.id, "channel": row.channel, "source": row.source}
    return Owed(row.tenant_id, row.contact_id, None, action, f"consent:{row.id}", payload)


def _connections(session: Session, tenant_id: str) -> list[str]:
    return list(
        session.scalars(
            select(CrmConnection.id).where(
                CrmConnection.tenant_id == tenant_id, CrmConnection.active.is_(True)
            )
        )
    )


def owe(session: Session, facts: Iterable[Owed]) -> int:
    """Write the syncs these facts owe, and owe a task per connection and contact."""
    written = 0
    tasks: set[str] = set()
    by_tenant: dict[str, list[str]] = {}
    now = utcnow()
    for fact in facts:
        if fact.tenant_id not in by_tenant:
            by_tenant[fact.tenant_id] = _connections(session, fact.tenant_id)
        for connection_id in by_tenant[fact.tenant_id]:
            session.add(
                CrmSync(
                    tenant_id=fact.tenant_id,
                    connection_id=connection_id,
                    contact_id=fact.contact_id,
                    message_id=fact.message_id,
                    action=fact.action,
                    source_key=fact.source_key,
                    status="pending",
                    next_attempt_at=now,
                    payload=fact.payload,
                    result={},
                    created_at=now,
                )
            )
            tasks.add(connection_id)
            written += 1
    # One drain per connection per transaction (and fewer: wakes coalesce): it runs after
    # the commit and writes what is owed in batches, each contact's syncs in order.
    owed_tasks: set[str] = session.info.setdefault(_TASKS, set())
    for connection_id in sorted(tasks - owed_tasks):
        owe_drain(session, connection_id)
    owed_tasks |= tasks
    return written


def _forget(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(_TASKS, None)
        session.info.pop(EVENT_MESSAGES, None)


def _collect(session: Session, _ctx: Any, _instances: Any) -> None:
    facts = [o for o in session.new if isinstance(o, MessageEvent | ConsentRecord)]
    if facts:
        session.info.setdefault(_SEEN, []).extend(facts)


def _write(session: Session, _ctx: Any) -> None:
    rows = session.info.pop(_SEEN, None)
    if not rows:
        return
    facts: list[Owed] = []
    known: dict[str, Message] = session.info.get(EVENT_MESSAGES, {})
    with session.no_autoflush:
        for row in rows:
            if isinstance(row, ConsentRecord):
                facts.append(owed_by_consent(row))
            else:
                message = known.get(row.message_id) or session.get(Message, row.message_id)
                found = owed_by_event(row, message)
                if found is not None:
                    facts.append(found)
    if facts:
        owe(session, facts)


def install_crm_hook(factory: sessionmaker[Session]) -> None:
    """Call once per sessionmaker (the app factory does)."""
    event.listen(factory, "before_flush", _collect)
    event.listen(factory, "after_flush_postexec", _write)
    event.listen(factory, "after_commit", _forget)
    event.listen(factory, "after_rollback", _forget)


def sweep_missing(session: Session, connection: CrmConnection, since: datetime) -> int:
    """Defence in depth: facts since ``since`` that owe this connection a sync and have none."""
    start = max(since, connection.created_at)
    missing_event = ~exists().where(
        CrmSync.connection_id == connection.id,
        CrmSync.source_key == literal("event:") + MessageEvent.id.cast(String),
    )
    events = session.execute(
        select(MessageEvent, Message)
        .join(Message, Message.id == MessageEvent.message_id)
        .where(
            MessageEvent.tenant_id == connection.tenant_id,
            MessageEvent.created_at >= start,
            or_(
                and_(
                    MessageEvent.kind == "transition",
                    MessageEvent.outcome == "applied",
                    MessageEvent.to_status.in_(("received", *FINAL_FOR_CRM)),
                ),
                MessageEvent.kind.in_(ROUTING_KINDS),
            ),
            missing_event,
        )
        .order_by(MessageEvent.id)
        .limit(1000)
    ).all()
    facts = [f for e, m in events if (f := owed_by_event(e, m)) is not None]
    consents = session.scalars(
        select(ConsentRecord)
        .where(
            ConsentRecord.tenant_id == connection.tenant_id,
            ConsentRecord.created_at >= start,
            ~exists().where(
                CrmSync.connection_id == connection.id,
                CrmSync.source_key == literal("consent:") + ConsentRecord.id.cast(String),
            ),
        )
        .order_by(ConsentRecord.id)
        .limit(1000)
    ).all()
    facts += [owed_by_consent(c) for c in consents]
    now = utcnow()
    created = 0
    for fact in facts:
        inserted = insert_ignore(
            session,
            CrmSync.__table__,
            {
                "tenant_id": fact.tenant_id,
                "connection_id": connection.id,
                "contact_id": fact.contact_id,
                "message_id": fact.message_id,
                "action": fact.action,
                "source_key": fact.source_key,
                "status": "pending",
                "attempts": 0,
                "throttles": 0,
                "next_attempt_at": now,
                "payload": fact.payload,
                "result": {},
                "created_at": now,
            },
            ["connection_id", "source_key"],
        )
        if inserted:
            created += 1
    if created:
        owe_drain(session, connection.id)
    return created
