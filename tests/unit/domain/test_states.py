"""The message state machine: allowed moves apply, all others are refused and recorded."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.domain.statuses import TERMINAL, TRANSITIONS, Outcome, Status, is_allowed, is_final
from app.messaging.states import ConcurrentTransition, apply_transition, record_created
from app.models import Message, MessageEvent

MessageFactory = Callable[..., Message]
S = Status
FORWARD = [S.PENDING, S.SCHEDULED, S.QUEUED, S.DISPATCHED, S.ACCEPTED, S.SENT, S.DELIVERED, S.READ]
RANK = {status: rank for rank, status in enumerate(FORWARD)}
RETRY_MOVES = {(S.QUEUED, S.SCHEDULED), (S.DISPATCHED, S.SCHEDULED)}

ALLOWED = sorted((src, dst) for src, targets in TRANSITIONS.items() for dst in targets)
FORBIDDEN = sorted(
    (src, dst)
    for src, dst in itertools.product(Status, Status)
    if src != dst and dst not in TRANSITIONS[src]
)


def _pair_id(pair: tuple[Status, Status]) -> str:
    return f"{pair[0]}->{pair[1]}"


def events_of(session: Session, message: Message) -> list[MessageEvent]:
    return list(
        session.scalars(
            select(MessageEvent)
            .where(MessageEvent.message_id == message.id)
            .order_by(MessageEvent.id)
        )
    )


def stored_status(session: Session, message: Message) -> str:
    """The status in the database, not the ORM object's copy."""
    value = session.scalar(select(Message.status).where(Message.id == message.id))
    assert value is not None
    return value


def test_transition_table_covers_every_status() -> None:
    assert set(TRANSITIONS) == set(Status)


def test_allowed_moves_go_forward_except_retries() -> None:
    for src, dst in ALLOWED:
        if dst in TERMINAL or (src, dst) in RETRY_MOVES:
            continue
        assert RANK[dst] > RANK[src], f"{src}->{dst} goes backwards"


@pytest.mark.parametrize("pair", ALLOWED, ids=_pair_id)
def test_allowed_transition_applies(
    session: Session, make_message: MessageFactory, pair: tuple[Status, Status]
) -> None:
    src, dst = pair
    message = make_message(src.value)

    reason = "unknown" if dst in TERMINAL else "because"
    result = apply_transition(session, message, dst, source="unit", reason=reason)

    assert result.outcome is Outcome.APPLIED
    assert result.applied
    assert (result.from_status, result.to_status) == (src, dst)
    assert message.status == dst.value
    assert message.status_reason == reason
    assert stored_status(session, message) == dst.value
    [event] = events_of(session, message)
    assert event is result.event
    assert (event.from_status, event.to_status) == (src.value, dst.value)
    assert event.outcome == "applied"
    assert event.kind == "transition"
    assert event.source == "unit"
    assert event.tenant_id == message.tenant_id


@pytest.mark.parametrize("pair", FORBIDDEN, ids=_pair_id)
def test_forbidden_transition_is_refused_and_recorded(
    session: Session, make_message: MessageFactory, pair: tuple[Status, Status]
) -> None:
    src, dst = pair
    message = make_message(src.value, attempts=1)

    result = apply_transition(session, message, dst, source="unit", changes={"attempts": 9})

    assert result.outcome is Outcome.REFUSED
    assert not result.applied
    assert message.status == src.value
    assert stored_status(session, message) == src.value
    assert message.attempts == 1  # changes are written only when the move applies
    [event] = events_of(session, message)
    assert (event.from_status, event.to_status) == (src.value, dst.value)
    assert event.outcome == "refused"
    assert event.reason


@pytest.mark.parametrize("status", list(Status), ids=str)
def test_same_status_is_a_duplicate(
    session: Session, make_message: MessageFactory, status: Status
) -> None:
    message = make_message(status.value)

    result = apply_transition(session, message, status, source="unit")

    assert result.outcome is Outcome.DUPLICATE
    assert stored_status(session, message) == status.value
    [event] = events_of(session, message)
    assert event.outcome == "duplicate"
    assert (event.from_status, event.to_status) == (status.value, status.value)


def test_repeated_dedupe_key_records_one_event(
    session: Session, make_message: MessageFactory
) -> None:
    message = make_message(S.ACCEPTED.value)

    first = apply_transition(session, message, S.DELIVERED, source="webhook", dedupe_key="r1")
    again = apply_transition(session, message, S.DELIVERED, source="webhook", dedupe_key="r1")

    assert first.outcome is Outcome.APPLIED
    assert again.outcome is Outcome.DUPLICATE
    assert again.event is None
    assert len(events_of(session, message)) == 1


def test_repeated_dedupe_key_is_ignored_even_after_a_refusal(
    session: Session, make_message: MessageFactory
) -> None:
    message = make_message(S.FAILED.value)

    apply_transition(session, message, S.DELIVERED, source="webhook", dedupe_key="late")
    again = apply_transition(session, message, S.DELIVERED, source="webhook", dedupe_key="late")

    assert again.event is None
    assert [e.outcome for e in events_of(session, message)] == ["refused"]


def test_a_different_dedupe_key_is_a_new_event(
    session: Session, make_message: MessageFactory
) -> None:
    message = make_message(S.ACCEPTED.value)

    apply_transition(session, message, S.SENT, source="webhook", dedupe_key="r1")
    apply_transition(session, message, S.DELIVERED, source="webhook", dedupe_key="r2")

    assert message.status == S.DELIVERED.value
    assert len(events_of(session, message)) == 2


@pytest.mark.parametrize("terminal", sorted(TERMINAL), ids=str)
def test_nothing_leaves_a_terminal_state(
    session: Session, make_message: MessageFactory, terminal: Status
) -> None:
    assert is_final(terminal)
    message = make_message(terminal.value)
    for target in Status:
        if target is terminal:
            continue
        result = apply_transition(session, message, target, source="unit")
        assert result.outcome is Outcome.REFUSED
        assert result.event is not None
        assert result.event.reason == f"{terminal} is terminal"
    assert stored_status(session, message) == terminal.value


def test_delivered_may_only_become_read(session: Session, make_message: MessageFactory) -> None:
    assert not is_final(S.DELIVERED)
    assert {t for t in Status if is_allowed(S.DELIVERED, t)} == {S.READ}
    message = make_message(S.DELIVERED.value)
    for target in Status:
        if target in (S.DELIVERED, S.READ):
            continue
        assert apply_transition(session, message, target, source="unit").outcome is Outcome.REFUSED
    assert apply_transition(session, message, S.READ, source="unit").applied
    assert stored_status(session, message) == S.READ.value


def test_late_receipt_changes_nothing(session: Session, make_message: MessageFactory) -> None:
    message = make_message(S.DELIVERED.value)

    result = apply_transition(session, message, S.SENT, source="webhook")

    assert result.outcome is Outcome.REFUSED
    assert stored_status(session, message) == S.DELIVERED.value


def test_changes_are_written_with_an_applied_move(
    session: Session, make_message: MessageFactory
) -> None:
    message = make_message(S.DISPATCHED.value)

    apply_transition(
        session, message, S.ACCEPTED, source="provider", changes={"provider_message_id": "p-1"}
    )

    stored = session.scalar(select(Message.provider_message_id).where(Message.id == message.id))
    assert stored == "p-1"
    assert message.provider_message_id == "p-1"


def test_status_changed_behind_the_orm_raises_concurrent_transition(
    session: Session, make_message: MessageFactory
) -> None:
    message = make_message(S.QUEUED.value)
    session.execute(
        text("UPDATE messages SET status = 'canceled' WHERE id = :id"), {"id": message.id}
    )
    assert message.status == S.QUEUED.value  # the ORM object has not seen the change

    with pytest.raises(ConcurrentTransition):
        apply_transition(session, message, S.DISPATCHED, source="dispatcher")

    assert stored_status(session, message) == S.CANCELED.value
    assert events_of(session, message) == []


# Targets include every status, so refused and duplicate moves are exercised too.
targets = st.lists(
    st.tuples(st.sampled_from(list(Status)), st.sampled_from([None, "k1", "k2", "k3"])),
    max_size=25,
)


# Every example makes its own message, so sharing the function-scoped session is safe.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(steps=targets)
def test_status_only_moves_forward(
    session: Session, make_message: MessageFactory, steps: list[tuple[Status, str | None]]
) -> None:
    message = make_message(S.PENDING.value)
    deduped = 0
    for target, key in steps:
        before = Status(message.status)
        result = apply_transition(session, message, target, source="prop", dedupe_key=key)
        after = Status(message.status)
        if result.event is None:
            deduped += 1
        if before in TERMINAL or before is S.READ:
            assert after is before, f"{before} left for {after}"
        elif after in TERMINAL or after is before:
            pass
        else:
            assert RANK[after] > RANK[before] or (before, after) in RETRY_MOVES, (before, after)
        assert after is before or is_allowed(before, after)
        assert stored_status(session, message) == after.value
    assert len(events_of(session, message)) == len(steps) - deduped


def test_record_created_pending_is_one_event(
    session: Session, make_message: MessageFactory
) -> None:
    message = make_message(S.PENDING.value)

    record_created(session, message, source="api")

    [event] = events_of(session, message)
    assert (event.from_status, event.to_status, event.outcome) == (None, "pending", "applied")
    assert event.reason == "created"
    assert event.source == "api"


@pytest.mark.parametrize("initial", [S.QUEUED, S.SCHEDULED], ids=str)
def test_record_created_in_a_lane_shows_both_steps(
    session: Session, make_message: MessageFactory, initial: Status
) -> None:
    message = make_message(initial.value, status_reason="send_at")

    record_created(session, message, source="api")

    first, second = events_of(session, message)
    assert (first.from_status, first.to_status) == (None, "pending")
    assert (second.from_status, second.to_status) == ("pending", initial.value)
    assert second.reason == "send_at"
    assert {first.outcome, second.outcome} == {"applied"}


def test_record_created_inbound_is_received(session: Session, make_message: MessageFactory) -> None:
    message = make_message(S.RECEIVED.value, direction="inbound")

    record_created(session, message, source="webhook:sandbox")

    [event] = events_of(session, message)
    assert (event.from_status, event.to_status) == (None, "received")


@pytest.mark.parametrize("initial", [S.DISPATCHED, S.DELIVERED, S.READ], ids=str)
def test_record_created_refuses_an_impossible_start(
    session: Session, make_message: MessageFactory, initial: Status
) -> None:
    message = make_message(initial.value)

    with pytest.raises(ValueError, match="cannot start"):
        record_created(session, message, source="api")


@pytest.mark.parametrize("terminal", sorted(TERMINAL), ids=str)
def test_a_final_failure_needs_a_reason_from_the_taxonomy(
    session: Session, make_message: MessageFactory, terminal: Status
) -> None:
    source = next(s for s, targets in TRANSITIONS.items() if terminal in targets)
    with pytest.raises(ValueError, match="StatusReason"):
        apply_transition(session, make_message(source.value), terminal, source="unit", reason="ttl")
    message = make_message(source.value)
    apply_transition(session, message, terminal, source="unit")
    assert message.status_reason == "unknown"


def test_derived_sets_follow_the_transitions() -> None:
    from app.domain.statuses import CANCELABLE, EXPIRABLE, FINAL

    assert {S.PENDING, S.SCHEDULED, S.QUEUED} == CANCELABLE
    assert {S.PENDING, S.SCHEDULED, S.QUEUED} == EXPIRABLE
    assert TERMINAL | {S.READ, S.RECEIVED} == FINAL
