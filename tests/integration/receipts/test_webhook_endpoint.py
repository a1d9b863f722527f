"""POST /webhooks/{provider}/{id} for Standard Webhooks providers (the sandbox here).

Verify, persist into the inbox once, answer at once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.infra.db import Database
from app.models import InboxItem
from app.providers.signing import generate_secret, sign_headers
from tests.factories import TenantCtx


def status_event(
    event_id: str = "evt-1", provider_id: str = "SBXunknown", status: str = "delivered"
) -> str:
    return json.dumps(
        {
            "eventId": event_id,
            "schemaVersion": 1,
            "channel": "sms",
            "direction": "status",
            "recipient": {"phone": "+12025550100"},
            "status": status,
            "providerMessageId": provider_id,
            "timestamp": datetime.now(UTC).isoformat(),
        }
    )


def inbox_count(db: Database, account_id: str) -> int:
    with db.session() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(InboxItem)
                .where(InboxItem.account_id == account_id)
            )
            or 0
        )


def post(client: FlaskClient, account_id: str, body: str, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.post(f"/webhooks/sandbox/{account_id}", data=body, headers=headers)


def test_signed_event_is_stored_encrypted_and_answered_202(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    body = status_event()
    r = post(client, ctx.account_id, body, sign_headers(ctx.secret, "wh-1", body))
    assert r.status_code == 202 and r.get_json() == {"status": "accepted"}
    assert inbox_count(db, ctx.account_id) == 1
    with db.engine.connect() as conn:
        from sqlalchemy import text

        raw = conn.execute(
            text("SELECT payload FROM webhook_inbox WHERE account_id = :a"), {"a": ctx.account_id}
        ).scalar()
    assert "+12025550100" not in raw


def test_duplicate_webhook_id_is_2xx_and_stored_once(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    body = status_event()
    headers = sign_headers(ctx.secret, "wh-dup", body)
    first, second = (
        post(client, ctx.account_id, body, headers),
        post(client, ctx.account_id, body, headers),
    )
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.get_json() == {"status": "duplicate"}
    assert inbox_count(db, ctx.account_id) == 1


def test_bad_signature_is_401_and_nothing_stored(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    body = status_event()
    r = post(client, ctx.account_id, body, sign_headers(generate_secret(), "wh-2", body))
    assert r.status_code == 401 and r.get_json()["reason"] == "bad_signature"
    tampered = sign_headers(ctx.secret, "wh-3", body)
    r = post(client, ctx.account_id, body.replace("delivered", "read"), tampered)
    assert r.status_code == 401
    r = post(client, ctx.account_id, body, {"content-type": "application/json"})
    assert r.status_code == 401
    garbage = {**sign_headers(ctx.secret, "wh-4", body), "webhook-signature": "nonsense"}
    assert post(client, ctx.account_id, body, garbage).status_code == 401
    assert inbox_count(db, ctx.account_id) == 0


def test_stale_timestamp_is_401(client: FlaskClient, ctx: TenantCtx, db: Database) -> None:
    body = status_event()
    old = sign_headers(ctx.secret, "wh-old", body, at=datetime.now(UTC) - timedelta(minutes=6))
    assert post(client, ctx.account_id, body, old).status_code == 401
    assert inbox_count(db, ctx.account_id) == 0


def test_malformed_event_is_400_with_a_reason(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    body = json.dumps({"eventId": "e", "schemaVersion": 1, "direction": "status"})
    r = post(client, ctx.account_id, body, sign_headers(ctx.secret, "wh-bad", body))
    assert r.status_code == 400 and r.get_json()["reason"] == "malformed_event"
    assert {"channel", "timestamp"} <= {e["field"] for e in r.get_json()["errors"]}
    not_json = "{nope"
    r = post(client, ctx.account_id, not_json, sign_headers(ctx.secret, "wh-bad2", not_json))
    assert r.status_code == 400
    assert inbox_count(db, ctx.account_id) == 0


def test_unknown_account_is_404(client: FlaskClient, ctx: TenantCtx) -> None:
    body = status_event()
    r = post(client, "acc_nope", body, sign_headers(ctx.secret, "wh-5", body))
    assert r.status_code == 404


def test_another_accounts_secret_does_not_verify(
    client: FlaskClient, ctx: TenantCtx, other_ctx: TenantCtx
) -> None:
    body = status_event()
    r = post(client, ctx.account_id, body, sign_headers(other_ctx.secret, "wh-6", body))
    assert r.status_code == 401


def test_rotated_secrets_both_verify(client: FlaskClient, ctx: TenantCtx, db: Database) -> None:
    from app.models import WebhookSecret

    new_secret = generate_secret()
    with db.session() as s:
        s.add(WebhookSecret(tenant_id=ctx.tenant_id, account_id=ctx.account_id, secret=new_secret))
    for i, secret in enumerate((ctx.secret, new_secret)):
        body = status_event(event_id=f"rot-{i}")
        assert (
            post(
                client, ctx.account_id, body, sign_headers(secret, f"wh-rot-{i}", body)
            ).status_code
            == 202
        )
