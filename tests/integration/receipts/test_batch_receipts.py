"""Receipts applied in batches: order within a batch, duplicates, no regression, parking, CRM."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from app.infra.db import Database
from app.messaging.receipts.drain import MAX_ORPHAN_ATTEMPTS, apply_inbox, drain_inbox
from app.messaging.receipts.inbox import store_callback
from app.models import ChannelAccount, CrmConnection, CrmSync, InboxItem, Message, MessageEvent
from tests.factories import TenantCtx
from tests.integration.receipts.test_receipts import accepted_message, status, timeline
from tests.support.twilio import SETTINGS


def store(db: Database, ctx: TenantCtx, webhook_id: str, event: dict[str, object]) -> str:
    """A verified callback in the inbox, not yet applied."""
    body = json.dumps(
        {"schemaVersion": 1, "channel": "sms", "timestamp": datetime.now(UTC).isoformat(), **event}
    )
    with db.session() as s:
        account = s.get(ChannelAccount, ctx.account_id)
        assert account is not None
        assert store_callback(s, account, "standard", webhook_id, body)
        item_id = s.scalar(
            select(InboxItem.id).where(
                InboxItem.account_id == ctx.account_id, InboxItem.dedupe_key == webhook_id
            )
        )
    assert item_id is not None
    return item_id


def apply(db: Database, ids: list[str]) -> dict[str, str]:
    with db.session() as s:
        return apply_inbox(s, SETTINGS, ids=ids)


def current(db: Database, message_id: str) -> tuple[str, str | None]:
    with db.session() as s:
        message = s.get(Message, message_id)
        assert message is not None
        return message.status, message.status_reason


def test_sent_then_delivered_in_one_batch_both_apply_in_order(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    mid = accepted_message(client, ctx, db, "B-1")
    a = store(db, ctx, "b1-sent", status(ctx, "B-1", "sent", "e1"))
    b = store(db, ctx, "b1-delivered", status(ctx, "B-1", "delivered", "e2"))
    assert apply(db, [a, b]) == {a: "status:applied", b: "status:applied"}
    assert current(db, mid) == ("delivered", None)
    assert timeline(db, mid)[-2:] == [
        ("accepted", "sent", "applied"),
        ("sent", "delivered", "applied"),
    ]


def test_delivered_before_sent_in_one_batch_never_regresses(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    mid = accepted_message(client, ctx, db, "B-2")
    a = store(db, ctx, "b2-delivered", status(ctx, "B-2", "delivered", "e1"))
    b = store(db, ctx, "b2-sent", status(ctx, "B-2", "sent", "e2"))
    c = store(db, ctx, "b2-undelivered", status(ctx, "B-2", "undelivered", "e3"))
    assert apply(db, [a, b, c]) == {
        a: "status:applied",
        b: "status:refused",
        c: "status:refused",
    }
    assert current(db, mid) == ("delivered", None)
    assert timeline(db, mid)[-3:] == [
        ("accepted", "delivered", "applied"),
        ("delivered", "sent", "refused"),
        ("delivered", "undelivered", "refused"),
    ]


def test_a_receipt_applied_again_is_one_event(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    mid = accepted_message(client, ctx, db, "B-3")
    a = store(db, ctx, "b3-sent", status(ctx, "B-3", "sent", "e1"))
    assert apply(db, [a]) == {a: "status:applied"}
    with db.session() as s:  # as if the row had been left unprocessed by a crash
        s.execute(update(InboxItem).where(InboxItem.id == a).values(processed_at=None))
    assert apply(db, [a]) == {a: "status:duplicate"}
    with db.session() as s:
        count = s.scalar(
            select(func.count()).where(
                MessageEvent.message_id == mid, MessageEvent.dedupe_key == "receipt:b3-sent"
            )
        )
    assert count == 1


def test_a_failure_carries_its_reason_and_the_crm_is_owed_it(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    with db.session() as s:
        s.add(CrmConnection(tenant_id=ctx.tenant_id, kind="webhook", config="{}"))
    mid = accepted_message(client, ctx, db, "B-4")
    failed = {**status(ctx, "B-4", "undelivered", "e1"), "errorCode": "invalid_number"}
    a = store(db, ctx, "b4-undelivered", failed)
    assert apply(db, [a]) == {a: "status:applied"}
    assert current(db, mid) == ("undelivered", "invalid_number")
    with db.session() as s:
        syncs = s.execute(
            select(CrmSync.action, CrmSync.payload).where(CrmSync.message_id == mid)
        ).all()
    assert [(action, payload["status"]) for action, payload in syncs] == [
        ("log_message", "undelivered")
    ]


def test_a_status_for_an_unknown_message_is_deferred_then_parked_in_a_batch(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    mid = accepted_message(client, ctx, db, "B-5")
    known = store(db, ctx, "b5-sent", status(ctx, "B-5", "sent", "e1"))
    orphan = store(db, ctx, "b5-orphan", status(ctx, "NOT-YET", "sent", "e2"))
    assert apply(db, [known, orphan]) == {known: "status:applied", orphan: "deferred"}
    assert current(db, mid) == ("sent", None)
    with db.session() as s:
        s.execute(
            update(InboxItem).where(InboxItem.id == orphan).values(attempts=MAX_ORPHAN_ATTEMPTS - 1)
        )
    assert apply(db, [orphan]) == {orphan: "parked"}
    with db.session() as s:
        item = s.get(InboxItem, orphan)
        assert item is not None
        assert (item.processed_at, item.result) == (None, "parked")


def test_the_drain_takes_due_rows_and_the_row_it_was_woken_for(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    mids = [accepted_message(client, ctx, db, f"B-6-{n}") for n in range(5)]
    items = [store(db, ctx, f"b6-{n}", status(ctx, f"B-6-{n}", "sent", f"e{n}")) for n in range(5)]
    with db.session() as s:  # one was re-driven by beat: not due, yet its own task must take it
        s.execute(
            update(InboxItem)
            .where(InboxItem.id == items[0])
            .values(next_attempt_at=datetime(2999, 1, 1, tzinfo=UTC))
        )
    handled, more = drain_inbox(db, SETTINGS, hint=items[0])
    assert handled >= 5 and more is False
    assert {current(db, m)[0] for m in mids} == {"sent"}
