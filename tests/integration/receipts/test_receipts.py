"""Processing inbox rows: statuses only move messages forward, once per receipt; replies noted."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from flask.testing import FlaskClient
from sqlalchemy import select, update

from app.infra.db import Database
from app.messaging.receipts.drain import process_inbox_item
from app.messaging.receipts.inbox import store_callback
from app.models import ChannelAccount, InboxItem, Message, MessageEvent
from tests.factories import TenantCtx
from tests.support.twilio import SETTINGS


def accepted_message(client: FlaskClient, ctx: TenantCtx, db: Database, provider_id: str) -> str:
    r = client.post("/v1/messages", json={"to": "+12025550100", "body": "x"}, headers=ctx.headers)
    message_id = str(r.get_json()["id"])
    with db.session() as s:
        s.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(status="accepted", provider_message_id=provider_id)
        )
    return message_id


def deliver(db: Database, ctx: TenantCtx, webhook_id: str, event: dict[str, object]) -> str:
    body = json.dumps(
        {"schemaVersion": 1, "channel": "sms", "timestamp": datetime.now(UTC).isoformat(), **event}
    )
    with db.session() as s:
        account = s.get(ChannelAccount, ctx.account_id)
        assert account is not None
        store_callback(s, account, "standard", webhook_id, body)
        item_id = s.scalar(
            select(InboxItem.id).where(
                InboxItem.account_id == ctx.account_id, InboxItem.dedupe_key == webhook_id
            )
        )
    assert item_id is not None
    with db.session() as s:
        return process_inbox_item(s, SETTINGS, item_id)


def status(ctx: TenantCtx, provider_id: str, value: str, event_id: str) -> dict[str, object]:
    return {
        "eventId": event_id,
        "direction": "status",
        "status": value,
        "providerMessageId": provider_id,
        "recipient": {"phone": "+12025550100"},
    }


def timeline(db: Database, message_id: str) -> list[tuple[str | None, str | None, str]]:
    with db.session() as s:
        events = s.scalars(
            select(MessageEvent)
            .where(MessageEvent.message_id == message_id)
            .order_by(MessageEvent.id)
        ).all()
        return [(e.from_status, e.to_status, e.outcome) for e in events]


def test_receipts_move_the_message_forward(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    mid = accepted_message(client, ctx, db, "P-1")
    assert deliver(db, ctx, "w1", status(ctx, "P-1", "sent", "e1")) == "status:applied"
    assert deliver(db, ctx, "w2", status(ctx, "P-1", "delivered", "e2")) == "status:applied"
    with db.session() as s:
        assert s.get(Message, mid).status == "delivered"  # type: ignore[union-attr]


def test_late_receipt_is_recorded_and_changes_nothing(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    mid = accepted_message(client, ctx, db, "P-2")
    deliver(db, ctx, "w1", status(ctx, "P-2", "delivered", "e1"))
    assert deliver(db, ctx, "w2", status(ctx, "P-2", "sent", "e2")) == "status:refused"
    with db.session() as s:
        assert s.get(Message, mid).status == "delivered"  # type: ignore[union-attr]
    assert timeline(db, mid)[-1] == ("delivered", "sent", "refused")


def test_same_receipt_twice_is_one_event(client: FlaskClient, ctx: TenantCtx, db: Database) -> None:
    mid = accepted_message(client, ctx, db, "P-3")
    deliver(db, ctx, "w-same", status(ctx, "P-3", "delivered", "e1"))
    with db.session() as s:
        account = s.get(ChannelAccount, ctx.account_id)
        assert account is not None
        assert store_callback(s, account, "standard", "w-same", "{}") is False
    delivered = [t for t in timeline(db, mid) if t[1] == "delivered"]
    assert delivered == [("accepted", "delivered", "applied")]


def test_processing_an_item_twice_does_nothing_more(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    mid = accepted_message(client, ctx, db, "P-4")
    deliver(db, ctx, "w1", status(ctx, "P-4", "sent", "e1"))
    with db.session() as s:
        item_id = s.scalar(
            select(InboxItem.id).where(
                InboxItem.dedupe_key == "w1", InboxItem.account_id == ctx.account_id
            )
        )
    with db.session() as s:
        assert process_inbox_item(s, SETTINGS, str(item_id)) == "already_processed"
    assert len(timeline(db, mid)) == 3


def test_read_after_delivered_but_nothing_after_failed(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    read_id = accepted_message(client, ctx, db, "P-5")
    deliver(db, ctx, "w1", status(ctx, "P-5", "delivered", "e1"))
    assert deliver(db, ctx, "w2", status(ctx, "P-5", "read", "e2")) == "status:applied"
    failed_id = accepted_message(client, ctx, db, "P-6")
    deliver(db, ctx, "w3", status(ctx, "P-6", "failed", "e3"))
    assert deliver(db, ctx, "w4", status(ctx, "P-6", "delivered", "e4")) == "status:refused"
    with db.session() as s:
        assert s.get(Message, read_id).status == "read"  # type: ignore[union-attr]
        assert s.get(Message, failed_id).status == "failed"  # type: ignore[union-attr]


def test_status_for_an_unknown_message_is_deferred_then_applied(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    assert deliver(db, ctx, "w-early", status(ctx, "P-7", "delivered", "e1")) == "deferred"
    with db.session() as s:
        item = s.scalar(
            select(InboxItem).where(
                InboxItem.dedupe_key == "w-early", InboxItem.account_id == ctx.account_id
            )
        )
        assert item is not None and item.processed_at is None and item.next_attempt_at is not None
        item_id = item.id
    mid = accepted_message(client, ctx, db, "P-7")
    with db.session() as s:
        assert process_inbox_item(s, SETTINGS, item_id) == "status:applied"
    with db.session() as s:
        assert s.get(Message, mid).status == "delivered"  # type: ignore[union-attr]


def test_a_receipt_cannot_touch_another_tenants_message(
    client: FlaskClient, ctx: TenantCtx, other_ctx: TenantCtx, db: Database
) -> None:
    mid = accepted_message(client, ctx, db, "P-8")
    assert deliver(db, other_ctx, "w1", status(other_ctx, "P-8", "delivered", "e1")) == "deferred"
    with db.session() as s:
        assert s.get(Message, mid).status == "accepted"  # type: ignore[union-attr]


def test_inbound_reply_is_received_and_noted_on_the_last_outbound(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    mid = accepted_message(client, ctx, db, "P-9")
    result = deliver(
        db,
        ctx,
        "w-in",
        {
            "eventId": "in-1",
            "direction": "inbound",
            "sender": {"phone": "+12025550100"},
            "recipient": {"phone": "+12025550199"},
            "message": {"text": "thanks!"},
        },
    )
    assert result == "inbound"
    with db.session() as s:
        inbound = s.scalar(
            select(Message).where(
                Message.tenant_id == ctx.tenant_id, Message.direction == "inbound"
            )
        )
        assert inbound is not None and inbound.status == "received" and inbound.body == "thanks!"
        note = s.scalar(
            select(MessageEvent).where(
                MessageEvent.message_id == mid, MessageEvent.kind == "replied"
            )
        )
        assert note is not None and note.data == {"reply_id": inbound.id}
