"""Set-based writes for the batch hot paths: many transitions in one UPDATE, their events in one
INSERT.

The state machine still decides every move (``states.plan_transition``); this module only
writes what it decided. Each row's status write is a compare-and-set on the status it was
read in, as ``apply_transition``'s is, and every move is one event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, case, insert, literal, update
from sqlalchemy.orm import Session

from app.crm.owed import owe, owed_by_event
from app.messaging.states import ConcurrentTransition, Outcome
from app.models import Message, MessageEvent
from app.models.types import utcnow

_MESSAGES: Table = Message.__table__  # type: ignore[assignment]
_EVENTS: Table = MessageEvent.__table__  # type: ignore[assignment]


@dataclass
class Move:
    """One transition the machine decided (or refused, or saw twice), to write in bulk."""

    message_id: str
    tenant_id: str
    from_status: str
    to_status: str
    outcome: Outcome
    source: str
    reason: str | None = None
    dedupe_key: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # Further columns written only when the move applies, as apply_transition's ``changes``.
    changes: dict[str, Any] = field(default_factory=dict)
    # What the CRM hook needs to know of the message (app.crm.owed).
    contact_id: str | None = None
    direction: str = "outbound"


def _per_row(column: str, values: dict[str, Any]) -> ColumnElement[Any]:
    """``CASE id WHEN ... THEN value ... ELSE column END``, each bound with the column's type."""
    col = _MESSAGES.c[column]
    whens = {key: literal(value, col.type) for key, value in values.items()}
    return case(whens, value=_MESSAGES.c.id, else_=col)


def write_statuses(
    session: Session, moves: Sequence[Move], common: dict[str, Any] | None = None
) -> None:
    """One UPDATE for every applied move in ``moves``: status, reason and changes, per row.

    ``common`` holds values (or column expressions) written to every row alike. Raises
    ConcurrentTransition when a row is no longer in the status it was read in.
    """
    applied = [m for m in moves if m.outcome is Outcome.APPLIED]
    if not applied:
        return
    ids = [m.message_id for m in applied]
    values: dict[str, Any] = {
        "status": _per_row("status", {m.message_id: m.to_status for m in applied}),
        "status_reason": _per_row("status_reason", {m.message_id: m.reason for m in applied}),
        "updated_at": utcnow(),
        **(common or {}),
    }
    columns = sorted({key for m in applied for key in m.changes})
    for column in columns:
        per_row = {m.message_id: m.changes[column] for m in applied if column in m.changes}
        values[column] = _per_row(column, per_row)
    expected = case(
        {m.message_id: m.from_status for m in applied}, value=_MESSAGES.c.id, else_=None
    )
    result = session.execute(
        update(_MESSAGES)
        .where(and_(_MESSAGES.c.id.in_(ids), _MESSAGES.c.status == expected))
        .values(**values)
    )
    moved = len(ids) - int(getattr(result, "rowcount", len(ids)))
    if moved:
        raise ConcurrentTransition(f"{moved} of {len(ids)} messages moved concurrently")


def write_events(session: Session, moves: Sequence[Move], now: datetime | None = None) -> None:
    """Every move's event in one INSERT, and the CRM syncs that the final ones owe."""
    if not moves:
        return
    at = now or utcnow()
    rows = [
        {
            "tenant_id": m.tenant_id,
            "message_id": m.message_id,
            "kind": "transition",
            "from_status": m.from_status,
            "to_status": m.to_status,
            "outcome": m.outcome.value,
            "reason": m.reason,
            "source": m.source,
            "dedupe_key": m.dedupe_key,
            "data": m.data,
            "created_at": at,
        }
        for m in moves
    ]
    ids = session.execute(
        insert(_EVENTS).returning(_EVENTS.c.id, sort_by_parameter_order=True), rows
    ).scalars()
    facts = []
    for move, row, event_id in zip(moves, rows, ids, strict=True):
        if move.contact_id is None:
            continue
        # Transient objects for the CRM rules alone: never added to the session.
        event = MessageEvent(id=event_id, **row)
        message = Message(id=move.message_id, contact_id=move.contact_id, direction=move.direction)
        found = owed_by_event(event, message)
        if found is not None:
            facts.append(found)
    if facts:
        owe(session, facts)
