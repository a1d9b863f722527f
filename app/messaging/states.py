"""The state machine applied (contract): one function moves a message and records its event.

The transitions themselves are data in ``app.domain.statuses``; here they are written:
- the status write is a compare-and-set, so two workers never both apply a transition;
- the same receipt twice (same ``dedupe_key``) is one event;
- a refused transition is still recorded, as an event with outcome ``refused``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.crm.owed import EVENT_MESSAGES
from app.domain.clock import utcnow
from app.domain.statuses import Outcome, S, Status, is_allowed, plan_transition
from app.models import Message, MessageEvent
from app.observability.metrics import Applied, accepted_times, count_transitions


@dataclass(frozen=True)
class TransitionResult:
    outcome: Outcome
    from_status: Status
    to_status: Status
    event: MessageEvent | None

    @property
    def applied(self) -> bool:
        return self.outcome is Outcome.APPLIED


class ConcurrentTransition(RuntimeError):
    """The row changed under us between read and write; the caller's transaction must retry."""


def _record(
    session: Session,
    message: Message,
    *,
    kind: str,
    from_status: str | None,
    to_status: str | None,
    outcome: str,
    reason: str | None,
    source: str,
    dedupe_key: str | None = None,
    data: dict[str, Any] | None = None,
) -> MessageEvent:
    """Append one event to the message's history (the only place events are written)."""
    event = MessageEvent(
        tenant_id=message.tenant_id,
        message_id=message.id,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        outcome=outcome,
        reason=reason,
        source=source,
        dedupe_key=dedupe_key,
        data=data or {},
    )
    session.add(event)
    session.info.setdefault(EVENT_MESSAGES, {})[message.id] = message
    if kind == "transition" and outcome == Outcome.APPLIED.value and to_status is not None:
        accepted = (
            accepted_times(session, [message.id]).get(message.id)
            if to_status == Status.DELIVERED.value
            else None
        )
        count_transitions(session, [Applied(to_status, reason, message.id, utcnow(), accepted)])
    return event


def apply_transition(
    session: Session,
    message: Message,
    target: Status,
    *,
    source: str,
    reason: str | None = None,
    dedupe_key: str | None = None,
    data: dict[str, Any] | None = None,
    changes: dict[str, Any] | None = None,
) -> TransitionResult:
    """Try to move ``message`` to ``target`` and record what happened as an event.

    ``changes`` are further column updates written only when the transition applies.
    The status write is a compare-and-set on the current status, so two workers
    cannot both apply a transition even without a row lock (SQLite).
    """
    current = Status(message.status)
    if dedupe_key is not None:
        seen = session.scalar(
            select(MessageEvent.id).where(
                MessageEvent.message_id == message.id, MessageEvent.dedupe_key == dedupe_key
            )
        )
        if seen is not None:
            return TransitionResult(Outcome.DUPLICATE, current, target, None)

    outcome, why = plan_transition(current, target, reason)
    if outcome is Outcome.APPLIED:
        reason = why
        values: dict[str, Any] = {
            "status": target.value,
            "status_reason": reason,
            "updated_at": utcnow(),
            **(changes or {}),
        }
        result = session.execute(
            update(Message)
            .where(Message.id == message.id, Message.status == current.value)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 1) != 1:
            raise ConcurrentTransition(f"message {message.id} left {current} concurrently")
        for key, value in values.items():
            set_committed_value(message, key, value)

    event = _record(
        session,
        message,
        kind="transition",
        from_status=current.value,
        to_status=target.value,
        outcome=outcome.value,
        reason=why,
        source=source,
        dedupe_key=dedupe_key,
        data=data,
    )
    return TransitionResult(outcome, current, target, event)


def record_note(
    session: Session,
    message: Message,
    kind: str,
    *,
    source: str,
    reason: str | None = None,
    dedupe_key: str | None = None,
    data: dict[str, Any] | None = None,
) -> MessageEvent:
    """Record a conversation fact (replied, opted out, escalated) without changing status."""
    return _record(
        session,
        message,
        kind=kind,
        from_status=message.status,
        to_status=message.status,
        outcome="note",
        reason=reason,
        source=source,
        dedupe_key=dedupe_key,
        data=data,
    )


def record_created(
    session: Session, message: Message, *, source: str, data: dict[str, Any] | None = None
) -> None:
    """Record a new message's birth in ``pending`` and, if different, its first move.

    A new outbound message is inserted directly in its first lane state
    (``queued`` or ``scheduled``) to save a write; the history still shows both steps.
    ``data`` (the policy's decision, say) goes on the first move.
    """
    initial = Status(message.status)
    if initial not in (S.PENDING, S.RECEIVED) and not is_allowed(S.PENDING, initial):
        raise ValueError(f"a new message cannot start in {initial}")
    _record(
        session,
        message,
        kind="transition",
        from_status=None,
        to_status=S.PENDING.value if initial is not S.RECEIVED else initial.value,
        outcome=Outcome.APPLIED.value,
        reason="created",
        source=source,
    )
    if initial in (S.PENDING, S.RECEIVED):
        return
    _record(
        session,
        message,
        kind="transition",
        from_status=S.PENDING.value,
        to_status=initial.value,
        outcome=Outcome.APPLIED.value,
        reason=message.status_reason,
        source=source,
        data=data,
    )
