"""Message statuses and the state machine's rules (contract): the allowed transitions are data,
and ``plan_transition`` is the one rule that reads them.

Rules:
- a status only moves forward; a late or out-of-order receipt is recorded and changes nothing;
- nothing leaves a terminal state, except ``delivered`` may become ``read``;
- a refused transition is still recorded, as an event with outcome ``refused``.

Pure: ``app.messaging.states`` applies these rules to a row and its history, and the
set-based batch paths write what they decide.
"""

from __future__ import annotations

from enum import StrEnum

from app.domain.reasons import StatusReason


class Status(StrEnum):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    EXPIRED = "expired"
    CANCELED = "canceled"
    RECEIVED = "received"


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    REFUSED = "refused"


S = Status

TERMINAL: frozenset[Status] = frozenset({S.FAILED, S.UNDELIVERED, S.EXPIRED, S.CANCELED})

# Every allowed move, and nothing else. Retries go back to ``scheduled``
# (from ``queued`` on a throttle or quiet hours, from ``dispatched`` on a
# retryable provider error). Receipts may skip steps forward.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.PENDING: frozenset({S.SCHEDULED, S.QUEUED, S.CANCELED, S.EXPIRED, S.FAILED}),
    S.SCHEDULED: frozenset({S.QUEUED, S.CANCELED, S.EXPIRED, S.FAILED}),
    S.QUEUED: frozenset({S.DISPATCHED, S.SCHEDULED, S.CANCELED, S.EXPIRED, S.FAILED}),
    S.DISPATCHED: frozenset(
        {S.ACCEPTED, S.SENT, S.DELIVERED, S.READ, S.SCHEDULED, S.FAILED, S.UNDELIVERED}
    ),
    S.ACCEPTED: frozenset({S.SENT, S.DELIVERED, S.READ, S.FAILED, S.UNDELIVERED}),
    S.SENT: frozenset({S.DELIVERED, S.READ, S.FAILED, S.UNDELIVERED}),
    S.DELIVERED: frozenset({S.READ}),
    S.READ: frozenset(),
    S.FAILED: frozenset(),
    S.UNDELIVERED: frozenset(),
    S.EXPIRED: frozenset(),
    S.CANCELED: frozenset(),
    S.RECEIVED: frozenset(),
}


def _sources_of(target: Status) -> frozenset[Status]:
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


# Derived from TRANSITIONS, so the sets can never disagree with the machine.
CANCELABLE: frozenset[Status] = _sources_of(S.CANCELED)
# Not yet handed to a provider: the states a TTL can still expire.
EXPIRABLE: frozenset[Status] = _sources_of(S.EXPIRED)
FINAL: frozenset[Status] = frozenset(s for s, targets in TRANSITIONS.items() if not targets)


def is_allowed(current: Status, target: Status) -> bool:
    return target in TRANSITIONS[current]


def is_final(status: Status) -> bool:
    """No further transition can ever apply (``delivered`` is not final: it may become read)."""
    return status in FINAL


def plan_transition(
    current: Status, target: Status, reason: str | None = None
) -> tuple[Outcome, str | None]:
    """What the machine does with ``current`` -> ``target``, and the reason it records.

    Pure: ``apply_transition`` and the set-based batch paths both decide with it, so a
    transition written one row at a time and one written in bulk follow the same rules.
    """
    if target == current:
        return Outcome.DUPLICATE, reason
    if is_allowed(current, target):
        if target in TERMINAL:
            # Every final failure carries a reason from the one taxonomy (ValueError otherwise).
            return Outcome.APPLIED, StatusReason(reason or StatusReason.UNKNOWN).value
        return Outcome.APPLIED, reason
    if current in TERMINAL or current in (S.DELIVERED, S.READ):
        return Outcome.REFUSED, f"{current} is terminal"
    return Outcome.REFUSED, f"{target} does not follow {current}"
