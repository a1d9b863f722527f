"""Each tenant privacy mode, proven by scanning every column of every table (in plaintext
and through our keys) after delivery."""

from __future__ import annotations

import uuid
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import update

from app.domain.clock import utcnow
from app.infra.db import Database
from app.messaging.compliance import privacy
from app.messaging.dispatch.batch import dispatch_message
from app.models import InboxItem, Message, Tenant
from config import Settings
from tests.factories import TenantCtx
from tests.integration.receipts.test_receipts import deliver
from tests.support.pii import leaks

PHONE = "+12025550100"  # the sandbox accepts it, then reports it sent and delivered


def set_mode(db: Database, ctx: TenantCtx, **values: object) -> None:
    with db.session() as s:
        s.execute(update(Tenant).where(Tenant.id == ctx.tenant_id).values(**values))


def sent(client: FlaskClient, db: Database, settings: Settings, ctx: TenantCtx) -> tuple[str, str]:
    """A message with a body no other test uses, accepted by the sandbox: (id, body)."""
    secret = f"body-{uuid.uuid4()}"
    r = client.post(
        "/v1/messages",
        json={
            "to": PHONE,
            "body": secret,
            "channels": ["mms"],
            "media": [
                {"url": f"https://cdn.example.com/{secret}.png", "content_type": "image/png"}
            ],
        },
        headers=ctx.headers,
    )
    assert r.status_code == 202, r.get_json()
    message_id = str(r.get_json()["id"])
    assert dispatch_message(db, settings, message_id) == "accepted"
    return message_id, secret


def delivered(db: Database, ctx: TenantCtx, message_id: str, **metadata: object) -> None:
    with db.session() as s:
        provider_id = s.get(Message, message_id).provider_message_id  # type: ignore[union-attr]
    event = {
        "eventId": f"e-{uuid.uuid4()}",
        "direction": "status",
        "status": "delivered",
        "providerMessageId": provider_id,
        "recipient": {"phone": PHONE},
        "metadata": metadata,
    }
    assert deliver(db, ctx, f"w-{uuid.uuid4()}", event) == "status:applied"


def inbound(db: Database, ctx: TenantCtx, text: str, **metadata: object) -> None:
    event = {
        "eventId": f"e-{uuid.uuid4()}",
        "direction": "inbound",
        "providerMessageId": f"in-{uuid.uuid4()}",
        "sender": {"phone": PHONE},
        "recipient": {"phone": "+12025550199"},
        "message": {"text": text, "attachments": [], "contentType": "text/plain"},
        "metadata": metadata,
    }
    assert deliver(db, ctx, f"w-{uuid.uuid4()}", event) == "inbound"


def shown(client: FlaskClient, ctx: TenantCtx, message_id: str) -> dict[str, object]:
    body: dict[str, object] = client.get(
        f"/v1/messages/{message_id}", headers=ctx.headers
    ).get_json()
    return body


def test_none_keeps_no_body_past_the_send_and_never_stores_an_inbound_text(
    client: FlaskClient, db: Database, settings: Settings, ctx: TenantCtx
) -> None:
    set_mode(db, ctx, body_retention="none")
    message_id, secret = sent(client, db, settings, ctx)
    # Removed in the transaction that recorded the acceptance: no beat needed.
    assert leaks(db, [secret]) == []
    delivered(db, ctx, message_id)
    reply = f"reply-{uuid.uuid4()}"
    inbound(db, ctx, reply)
    assert leaks(db, [secret, reply]) == []
    view = shown(client, ctx, message_id)
    assert (view["status"], view["body"], view["media"]) == ("delivered", None, [])


def test_none_still_honours_a_stop_it_does_not_keep(
    client: FlaskClient, db: Database, settings: Settings, ctx: TenantCtx
) -> None:
    set_mode(db, ctx, body_retention="none")
    inbound(db, ctx, "STOP")
    r = client.post("/v1/messages", json={"to": PHONE, "body": "hi"}, headers=ctx.headers)
    assert (r.status_code, r.get_json()["reason"]) == (422, "recipient_opted_out")


def test_until_final_removes_the_body_once_final(
    client: FlaskClient, db: Database, settings: Settings, ctx: TenantCtx
) -> None:
    set_mode(db, ctx, body_retention="until_final")
    message_id, secret = sent(client, db, settings, ctx)
    privacy.enforce(db)
    assert leaks(db, [secret]) == ["messages.body", "messages.media"]  # accepted: not final
    delivered(db, ctx, message_id)
    privacy.enforce(db)
    assert leaks(db, [secret]) == []
    with db.session() as s:
        assert s.get(Message, message_id).body_removed_at is not None  # type: ignore[union-attr]


def test_keep_with_days_removes_only_what_is_older(
    client: FlaskClient, db: Database, settings: Settings, ctx: TenantCtx
) -> None:
    set_mode(db, ctx, body_retention="keep", body_retention_days=30)
    old_id, old = sent(client, db, settings, ctx)
    new_id, new = sent(client, db, settings, ctx)
    for message_id in (old_id, new_id):
        delivered(db, ctx, message_id)
    with db.session() as s:
        s.execute(
            update(Message)
            .where(Message.id == old_id)
            .values(created_at=utcnow() - timedelta(days=31))
        )
    privacy.enforce(db)
    assert leaks(db, [old]) == []
    assert leaks(db, [new]) == ["messages.body", "messages.media"]
    assert shown(client, ctx, new_id)["body"] == new


def test_keep_without_a_limit_keeps_bodies(
    client: FlaskClient, db: Database, settings: Settings, ctx: TenantCtx
) -> None:
    message_id, secret = sent(client, db, settings, ctx)
    delivered(db, ctx, message_id)
    privacy.enforce(db)
    assert leaks(db, [secret]) == ["messages.body", "messages.media"]


def test_end_to_end_encrypted_messages_keep_no_body_in_keep_mode(
    client: FlaskClient, db: Database, settings: Settings, ctx: TenantCtx
) -> None:
    message_id, secret = sent(client, db, settings, ctx)
    delivered(db, ctx, message_id, e2ee=True)
    reply = f"reply-{uuid.uuid4()}"
    inbound(db, ctx, reply, e2ee=True)
    assert leaks(db, [secret, reply]) == []


def test_webhook_payloads_are_blanked_after_their_retention(
    client: FlaskClient, db: Database, settings: Settings, ctx: TenantCtx
) -> None:
    set_mode(db, ctx, payload_retention_hours=24)
    reply = f"reply-{uuid.uuid4()}"
    inbound(db, ctx, reply)
    privacy.enforce(db)
    assert "webhook_inbox.payload" in leaks(db, [reply])  # processed, but not old enough
    with db.session() as s:
        s.execute(
            update(InboxItem)
            .where(InboxItem.account_id == ctx.account_id)
            .values(processed_at=utcnow() - timedelta(hours=25))
        )
    counts = privacy.enforce(db)
    assert counts["payloads"] >= 1
    assert leaks(db, [reply]) == ["messages.body"]  # the message keeps it: mode keep
