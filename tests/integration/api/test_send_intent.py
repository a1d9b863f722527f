"""POST /v1/messages against the real database: persisted, owed to a lane, idempotent."""

from __future__ import annotations

import json
import time

from flask.testing import FlaskClient
from sqlalchemy import func, select, text

from app.infra.db import Database
from app.models import Contact, Message, MessageEvent, OutboxRow
from app.security.crypto import keyring
from tests.factories import TenantCtx, make_tenant_ctx


def send(client: FlaskClient, ctx: TenantCtx, payload: dict[str, object], key: str | None = None):  # type: ignore[no-untyped-def]
    headers = dict(ctx.headers)
    if key:
        headers["Idempotency-Key"] = key
    return client.post("/v1/messages", json=payload, headers=headers)


def test_intent_is_persisted_queued_and_timed(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    r = send(
        client,
        ctx,
        {
            "to": "+12025550100",
            "body": "Hello",
            "priority": "urgent",
            "journey_id": "j-1",
            "external_ref": "order-9",
            "metadata": {"k": 1},
        },
    )
    assert r.status_code == 202, r.get_json()
    body = r.get_json()
    assert body["status"] == "queued"
    assert body["to"] == "+12025550100"
    assert body["priority"] == "urgent"
    assert body["segments"] == 1
    assert r.headers["Location"] == f"/v1/messages/{body['id']}"
    with db.session() as s:
        message = s.get(Message, body["id"])
        assert message is not None and message.tenant_id == ctx.tenant_id
        events = s.scalars(
            select(MessageEvent)
            .where(MessageEvent.message_id == message.id)
            .order_by(MessageEvent.id)
        ).all()
        assert [(e.from_status, e.to_status) for e in events] == [
            (None, "pending"),
            ("pending", "queued"),
        ]


def test_phone_and_body_are_encrypted_at_rest(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    r = send(client, ctx, {"to": "+12025550142", "body": "secret text"})
    message_id = r.get_json()["id"]
    with db.engine.connect() as conn:
        raw_body = conn.execute(
            text("SELECT body FROM messages WHERE id = :i"), {"i": message_id}
        ).scalar()
        contact_id = conn.execute(
            text("SELECT contact_id FROM messages WHERE id = :i"), {"i": message_id}
        ).scalar()
        raw_phone, index = conn.execute(
            text("SELECT phone, phone_index FROM contacts WHERE id = :i"), {"i": contact_id}
        ).one()
    assert "secret text" not in raw_body and keyring().decrypt(raw_body) == "secret text"
    assert "2025550142" not in raw_phone and keyring().decrypt(raw_phone) == "+12025550142"
    assert index == keyring().blind_index("+12025550142")


def test_same_number_reuses_one_contact_per_tenant(
    client: FlaskClient, ctx: TenantCtx, other_ctx: TenantCtx, db: Database
) -> None:
    for c in (ctx, ctx, other_ctx):
        assert send(client, c, {"to": "+12025550177", "body": "x"}).status_code == 202
    with db.session() as s:
        counts = dict(
            s.execute(
                select(Contact.tenant_id, func.count())
                .group_by(Contact.tenant_id)
                .where(Contact.tenant_id.in_([ctx.tenant_id, other_ctx.tenant_id]))
            ).all()
        )
    assert counts == {ctx.tenant_id: 1, other_ctx.tenant_id: 1}


def test_idempotency_replay_returns_200_and_the_same_message(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    payload = {"to": "+12025550100", "body": "once"}
    first = send(client, ctx, payload, key="k-1")
    second = send(client, ctx, dict(reversed(list(payload.items()))), key="k-1")
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.get_json()["id"] == second.get_json()["id"]
    with db.session() as s:
        n = s.scalar(
            select(func.count()).select_from(Message).where(Message.tenant_id == ctx.tenant_id)
        )
    assert n == 1


def test_idempotency_key_with_other_payload_is_409(client: FlaskClient, ctx: TenantCtx) -> None:
    assert send(client, ctx, {"to": "+12025550100", "body": "a"}, key="k-2").status_code == 202
    r = send(client, ctx, {"to": "+12025550100", "body": "b"}, key="k-2")
    assert r.status_code == 409
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["reason"] == "idempotency_key_reused"


def test_idempotency_keys_are_per_tenant(
    client: FlaskClient, ctx: TenantCtx, other_ctx: TenantCtx
) -> None:
    a = send(client, ctx, {"to": "+12025550100", "body": "a"}, key="shared")
    b = send(client, other_ctx, {"to": "+12025550100", "body": "b"}, key="shared")
    assert (a.status_code, b.status_code) == (202, 202)
    assert a.get_json()["id"] != b.get_json()["id"]


def test_priority_picks_the_lane(client: FlaskClient, db: Database, app) -> None:  # type: ignore[no-untyped-def]
    ctx = make_tenant_ctx(db)
    sent: list[tuple[str, str]] = []
    celery = app.extensions["celery"]
    original = celery.send_task

    def record(name: str, args: list[str], queue: str, **kw: object) -> None:
        sent.append((args[0], queue))

    celery.send_task = record
    try:
        ids = {
            p: send(client, ctx, {"to": "+12025550100", "body": p, "priority": p}).get_json()["id"]
            for p in ("urgent", "normal", "bulk")
        }
        # Published off the request's thread (app.infra.outbox.Handoff): wait for it.
        assert app.extensions["switchboard.outbox"].handoff.settle()
    finally:
        celery.send_task = original
    lanes = dict(sent)
    assert lanes == {
        ids["urgent"]: "dispatch.urgent",
        ids["normal"]: "dispatch.normal",
        ids["bulk"]: "dispatch.bulk",
    }


def test_outbox_row_is_deleted_once_published(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    r = send(client, ctx, {"to": "+12025550100", "body": "x"})
    message_id = r.get_json()["id"]
    # Published at once; the row goes with the next batch delete, a fraction of a second later.
    deadline = time.monotonic() + 3
    while True:
        with db.session() as s:
            left = [row for row in s.scalars(select(OutboxRow)) if row.args == [message_id]]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left


def test_published_rows_are_deleted_in_one_batch(db: Database) -> None:
    from app.infra.outbox import PublishedRows

    with db.session() as s:
        rows = [OutboxRow(task_name="t", queue="q", args=[f"batch-{i}"]) for i in range(3)]
        s.add_all(rows)
        s.flush()
        ids = [row.id for row in rows]
    batch = PublishedRows(db, interval=3600)  # no background round during the test
    batch.add(ids[:2])
    batch.add([*ids[2:], *range(10**12, 10**12 + 2500)])  # more ids than one DELETE takes
    assert batch.flush() == 2503
    assert batch.flush() == 0
    with db.session() as s:
        assert s.scalars(select(OutboxRow).where(OutboxRow.id.in_(ids))).all() == []


def test_send_at_in_the_future_is_scheduled_not_queued(client: FlaskClient, ctx: TenantCtx) -> None:
    r = send(
        client, ctx, {"to": "+12025550100", "body": "later", "send_at": "2099-01-01T09:00:00+02:00"}
    )
    assert r.status_code == 202
    body = r.get_json()
    assert body["status"] == "scheduled"
    assert body["send_at"] == "2099-01-01T07:00:00Z"


def test_media_is_kept_and_counts_for_mms(client: FlaskClient, ctx: TenantCtx) -> None:
    media = [{"url": "https://example.com/a.png", "content_type": "image/png"}]
    r = send(client, ctx, {"to": "+12025550100", "channels": ["mms", "sms"], "media": media})
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["channel"] == "mms"
    assert r.get_json()["media"] == media


def test_channel_preference_falls_to_what_the_account_carries(
    client: FlaskClient, ctx: TenantCtx
) -> None:
    r = send(client, ctx, {"to": "+12025550100", "body": "x", "channels": ["rcs", "sms"]})
    assert r.get_json()["channel"] == "sms"


def test_body_with_unicode_counts_ucs2_segments(client: FlaskClient, ctx: TenantCtx) -> None:
    r = send(client, ctx, {"to": "+12025550100", "body": "é" * 10 + "✓" * 70})
    assert r.get_json()["encoding"] == "UCS-2"
    assert r.get_json()["segments"] == 2


def test_request_body_json_is_stored_as_given(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    r = send(client, ctx, {"to": "+12025550100", "body": "x", "metadata": {"a": [1, 2]}})
    with db.session() as s:
        message = s.get(Message, r.get_json()["id"])
        assert message is not None
        assert message.metadata_ == {"a": [1, 2]}
        assert json.loads(json.dumps(message.channels)) == ["sms"]
