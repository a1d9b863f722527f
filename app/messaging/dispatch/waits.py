"""Holding a message in ``scheduled`` until a time, unless its TTL ends first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.domain.reasons import StatusReason
from app.domain.statuses import Status, is_allowed
from app.messaging.states import apply_transition
from app.models import Message


def wait_or_expire(
    session: Session,
    message: Message,
    due: datetime,
    *,
    source: str,
    reason: str,
    data: dict[str, Any] | None = None,
    changes: dict[str, Any] | None = None,
) -> str:
    """Hold ``message`` in ``scheduled`` until ``due``, unless its TTL ends first: then expire it.

    Retries, throttles, rate limits and quiet hours never carry a message past its TTL.
    """
    if message.expires_at is not None and due >= message.expires_at:
        if not is_allowed(Status(message.status), Status.EXPIRED):
            # In flight (dispatched): it goes back to wait first, and expires from there.
            apply_transition(
                session, message, Status.SCHEDULED, source=source, reason=reason, data=data
            )
        apply_transition(
            session,
            message,
            Status.EXPIRED,
            source=source,
            reason=StatusReason.EXPIRED,
            data={**(data or {}), "would_wait_for": reason, "due": due.isoformat()},
        )
        return "expired"
    apply_transition(
        session,
        message,
        Status.SCHEDULED,
        source=source,
        reason=reason,
        data=data,
        changes={"next_attempt_at": due, **(changes or {})},
    )
    return reason
