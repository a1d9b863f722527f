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

from sqlalchemy import Table, insert, text
from sqlalchemy.orm import Session

from app.crm.owed import owe, owed_by_event
from app.domain.clock import utcnow
from app.domain.statuses import Outcome
from app.infra.db import array_literal, insert_rows
from app.messaging.states import ConcurrentTransition
from app.models import Message, MessageEvent
from app.observability.metrics import Applied, accepted_times, count_transitions

_EVENTS: Table = MessageEvent.__table__  # type: ignore[assignment]


@dataclass
class Move:
    """One transition the machine decided (or refused, or saw twice), to write in bulk."""

    message_id: str
    tenant_id: str
    from_status: str | None  # None: a new message's birth in pending
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


# Postgres array types for the per-row columns a move may carry.
_ARRAY_TYPES = {"status": "varchar", "status_reason": "varchar", "provider_message_id": "varchar"}


def write_statuses(
    session: Session,
    moves: Sequence[Move],
    *,
    increment: Sequence[str] = (),
    clear: Sequence[str] = (),
) -> None:
    """One UPDATE for every applied move in ``moves``: status, reason and changes, per row.

    ``increment`` columns go up by one and ``clear`` columns become NULL on every row alike.
    The statement has one shape whatever the batch's size (per-row values travel as arrays
    on Postgres, as an executemany on SQLite), so it is compiled and planned once. Raises
    ConcurrentTransition when a row is no longer in the status it was read in.
    """
    applied = [m for m in moves if m.outcome is Outcome.APPLIED]
    if not applied:
        return
    columns = sorted({key for m in applied for key in m.changes})
    unknown = set(columns) - set(_ARRAY_TYPES)
    if unknown:
        raise ValueError(f"no bulk write for {sorted(unknown)}")
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        moved = _write_postgres(session, applied, columns, increment, clear, now)
    else:
        moved = _write_each(session, applied, columns, increment, clear, now)
    if moved != len(applied):
        raise ConcurrentTransition(f"{len(applied) - moved} of {len(applied)} messages moved")


def _set_clause(columns: Sequence[str], increment: Sequence[str], clear: Sequence[str]) -> str:
    sets = ["status = v.status", "status_reason = v.status_reason", "updated_at = :now"]
    sets += [f"{c} = v.{c}" for c in columns]
    sets += [f"{c} = m.{c} + 1" for c in increment]
    sets += [f"{c} = NULL" for c in clear]
    return ", ".join(sets)


def _write_postgres(
    session: Session,
    applied: list[Move],
    columns: Sequence[str],
    increment: Sequence[str],
    clear: Sequence[str],
    now: datetime,
) -> int:
    names = ["id", "from_status", "status", "status_reason", *columns]
    arrays = ", ".join(f"CAST(:{n} AS {_ARRAY_TYPES.get(n, 'varchar')}[])" for n in names)
    # Column names come from this module only; every value is a bound parameter.
    statement = text(
        f"UPDATE messages AS m SET {_set_clause(columns, increment, clear)} "  # noqa: S608
        f"FROM unnest({arrays}) AS v({', '.join(names)}) "
        "WHERE m.id = v.id AND m.status = v.from_status"  # the compare-and-set, per row
    )
    params: dict[str, Any] = {
        "now": now,
        "id": array_literal([m.message_id for m in applied]),
        "from_status": array_literal([m.from_status for m in applied]),
        "status": array_literal([m.to_status for m in applied]),
        "status_reason": array_literal([m.reason for m in applied]),
    }
    for column in columns:
        params[column] = array_literal([m.changes.get(column) for m in applied])
    return int(getattr(session.execute(statement, params), "rowcount", len(applied)))


def _write_each(
    session: Session,
    applied: list[Move],
    columns: Sequence[str],
    increment: Sequence[str],
    clear: Sequence[str],
    now: datetime,
) -> int:
    """SQLite: the same UPDATE once per row in one executemany (in-process, no round trips)."""
    sets = _set_clause(columns, increment, clear).replace("v.", ":").replace("m.", "")
    statement = text(
        f"UPDATE messages SET {sets} WHERE id = :id AND status = :from_status"  # noqa: S608
    )
    rows = [
        {
            "now": now,
            "id": m.message_id,
            "from_status": m.from_status,
            "status": m.to_status,
            "status_reason": m.reason,
            **{c: m.changes.get(c) for c in columns},
        }
        for m in applied
    ]
    return int(getattr(session.execute(statement, rows), "rowcount", len(applied)))


def write_events(
    session: Session,
    moves: Sequence[Move],
    now: datetime | None = None,
    *,
    accepted: dict[str, datetime] | None = None,
) -> None:
    """Every move's event in one INSERT, and the CRM syncs that the final ones owe.

    ``accepted``: when the provider accepted the delivered ones, if the caller knows
    (else one query reads it, only when the batch has deliveries)."""
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
    if any(m.contact_id is not None for m in moves):  # the CRM rules read each event's id
        ids = (
            session.execute(
                insert(_EVENTS).returning(_EVENTS.c.id, sort_by_parameter_order=True), rows
            )
            .scalars()
            .all()
        )
    else:
        insert_rows(session, _EVENTS, rows)
        ids = [None] * len(rows)
    applied = [m for m in moves if m.outcome is Outcome.APPLIED]
    delivered = {m.message_id for m in applied if m.to_status == "delivered"}
    if accepted is None:
        accepted = accepted_times(session, delivered)
    count_transitions(
        session,
        [
            Applied(m.to_status, m.reason, m.message_id, at, accepted.get(m.message_id))
            for m in applied
        ],
    )
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
