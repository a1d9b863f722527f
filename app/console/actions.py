"""What an operator may do from the console, each with a dry run: redrive, release now,
cancel, retry a dead CRM sync, retry a parked receipt. Each real run is recorded.

No Flask here: the views pass the user's name and the chosen ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from app.crm.syncs import redrive_dead
from app.domain.clock import utcnow
from app.domain.ids import is_id
from app.domain.queues import QueueNames
from app.domain.reasons import StatusReason
from app.domain.statuses import CANCELABLE, Status
from app.infra.broker import TaskNames
from app.infra.db import Database
from app.infra.outbox import enqueue
from app.infra.wakes import INBOX
from app.messaging.recovery.reconcile import redrive
from app.messaging.states import apply_transition
from app.models import InboxItem, Message
from app.security.console_users import record

MAX_IDS = 200


@dataclass(frozen=True)
class Kind:
    """One action: what it acts on, its label, and what it does (``dry_run`` first)."""

    name: str
    label: str
    target: str  # message | crm_sync | receipt
    run: Callable[[Database, list[Any], str, bool], list[dict[str, Any]]]


def _redrive(db: Database, ids: list[Any], actor: str, dry_run: bool) -> list[dict[str, Any]]:
    return [a.as_dict() for a in redrive(db, ids, dry_run=dry_run, actor=actor)]


def _release(db: Database, ids: list[Any], actor: str, dry_run: bool) -> list[dict[str, Any]]:
    """A held message goes to its lane now (its policy is checked again at dispatch:
    quiet hours still hold it if they still apply); anything else is left alone."""
    with db.session() as session:
        statuses = dict(
            session.execute(select(Message.id, Message.status).where(Message.id.in_(ids))).all()
        )
    held = [i for i in ids if statuses.get(i) == Status.SCHEDULED.value]
    done = {a["id"]: a for a in _redrive(db, held, actor, dry_run)} if held else {}
    return [
        done.get(i) or {"id": i, "status": statuses.get(i, "-"), "action": "not held", "detail": ""}
        for i in ids
    ]


def _cancel(db: Database, ids: list[Any], actor: str, dry_run: bool) -> list[dict[str, Any]]:
    out = []
    for message_id in ids:
        with db.session() as session:
            message = session.scalar(
                select(Message).where(Message.id == message_id).with_for_update()
            )
            if message is None:
                out.append({"id": message_id, "status": "-", "action": "missing", "detail": ""})
                continue
            status = message.status
            if Status(status) not in CANCELABLE:
                out.append({"id": message_id, "status": status, "action": "not cancelable",
                            "detail": "it reached the provider, or is final"})  # fmt: skip
                continue
            if not dry_run:
                apply_transition(
                    session,
                    message,
                    Status.CANCELED,
                    source=f"console:{actor}"[:40],
                    reason=StatusReason.CANCELED_BY_API,
                )
            out.append({"id": message_id, "status": status, "action": "canceled", "detail": ""})
    return out


def _retry_syncs(db: Database, ids: list[Any], actor: str, dry_run: bool) -> list[dict[str, Any]]:
    with db.session() as session:
        return redrive_dead(session, ids, None, dry_run)


def _retry_receipts(
    db: Database, ids: list[Any], actor: str, dry_run: bool
) -> list[dict[str, Any]]:
    with db.session() as session:
        parked = set(
            session.scalars(
                select(InboxItem.id).where(
                    InboxItem.id.in_(ids),
                    InboxItem.processed_at.is_(None),
                    InboxItem.result == "parked",
                )
            )
        )
        if parked and not dry_run:
            session.execute(
                update(InboxItem)
                .where(InboxItem.id.in_(parked))
                .values(next_attempt_at=utcnow(), result=None)
            )
            enqueue(session, TaskNames.PROCESS_INBOX, [""], QueueNames.INTAKE, wake=INBOX)
    return [
        {"id": i, "action": "retried" if i in parked else "not parked", "detail": ""} for i in ids
    ]


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("redrive", "Redrive", "message", _redrive),
        Kind("release", "Release now", "message", _release),
        Kind("cancel", "Cancel", "message", _cancel),
        Kind("retry_syncs", "Retry", "crm_sync", _retry_syncs),
        Kind("retry_receipts", "Retry", "receipt", _retry_receipts),
    )
}


def parse_ids(kind: Kind, raw: list[str]) -> list[Any]:
    """The chosen ids, checked for their shape; ValueError names the first bad one."""
    if not 0 < len(raw) <= MAX_IDS:
        raise ValueError(f"choose 1 to {MAX_IDS}")
    ids: list[Any] = []
    for value in raw:
        if kind.target == "crm_sync":
            if not value.isdigit():
                raise ValueError(f"{value[:40]!r} is not a sync id")
            ids.append(int(value))
        elif not is_id(value, "msg" if kind.target == "message" else "inb"):
            raise ValueError(f"{value[:40]!r} is not a {kind.target} id")
        else:
            ids.append(value)
    return list(dict.fromkeys(ids))


def perform(
    db: Database, kind: Kind, ids: list[Any], username: str, *, dry_run: bool
) -> list[dict[str, Any]]:
    """Run (or dry-run) ``kind`` on ``ids`` as ``username``; a real run is recorded with
    each id's outcome."""
    results = kind.run(db, ids, username, dry_run)
    if not dry_run:
        with db.session() as session:
            record(
                session,
                username,
                kind.name,
                kind.target,
                ids,
                {"results": [{k: r.get(k) for k in ("id", "action")} for r in results]},
            )
    return results
