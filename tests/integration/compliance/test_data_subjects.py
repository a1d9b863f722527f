"""Data-subject export and erasure against a real database: afterwards no table holds the
number or a body, in plaintext or in any ciphertext our keys can open."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.infra.db import Database
from app.messaging.dispatch.batch import dispatch_message
from app.models import Erasure, InboxItem, Message
from config import Settings
from scripts.fake_twilio import FakeTwilio
from tests.factories import TenantCtx, add_api_key
from tests.support.pii import forms, leaks
from tests.support.twilio import apply_all, post_callback, twilio_ctx

PHONE = "+13125550172"  # used by no other test: the scan below looks for it everywhere
SENDER = "+12025550199"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    server = FakeTwilio(callback_delay=0).start()
    yield server
    server.stop()


def admin(db: Database, ctx: TenantCtx) -> dict[str, str]:
    return {"Authorization": f"Bearer {add_api_key(db, ctx.tenant_id, ('admin',))}"}


def test_export_then_erasure_leaves_nothing_readable(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    ctx = twilio_ctx(db, fake)
    headers = admin(db, ctx)
    secret_out, secret_in = f"out-{uuid.uuid4()}", f"in-{uuid.uuid4()}"
    # An outbound message with media, sent, and its signed status callback.
    r = client.post(
        "/v1/messages",
        json={
            "to": PHONE,
            "body": secret_out,
            "channels": ["mms"],
            "media": [
                {"url": f"https://cdn.example.com/{secret_out}.jpg", "content_type": "image/jpeg"}
            ],
            "journey_id": "welcome",
            "external_ref": f"crm-{secret_out}",
            "metadata": {"note": secret_out},
        },
        headers=ctx.headers,
    )
    assert r.status_code == 202
    outbound = r.get_json()["id"]
    assert dispatch_message(db, settings, outbound) == "accepted"
    with db.session() as s:
        sid = s.get(Message, outbound).provider_message_id  # type: ignore[union-attr]
    status = {
        "MessageSid": sid,
        "MessageStatus": "delivered",
        "AccountSid": fake.account_sid,
        "From": SENDER,
        "To": PHONE,
    }
    assert post_callback(client, settings, ctx, status, fake.auth_token).status_code == 200
    # Their reply, then STOP, then a consent posted by the tenant with evidence.
    reply = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "From": PHONE,
        "To": SENDER,
        "Body": secret_in,
        "NumMedia": "0",
    }
    assert post_callback(client, settings, ctx, reply, fake.auth_token).status_code == 200
    stop = {**reply, "MessageSid": "SM" + uuid.uuid4().hex, "Body": "STOP"}
    assert post_callback(client, settings, ctx, stop, fake.auth_token).status_code == 200
    assert sorted(apply_all(db, ctx.account_id)) == ["inbound", "inbound", "status:applied"]

    exported = client.get("/v1/contacts/export", query_string={"phone": PHONE}, headers=headers)
    body = exported.get_json()
    assert exported.status_code == 200 and body["found"] is True
    assert body["contact"]["phone"] == PHONE
    assert [c["status"] for c in body["consents"]] == ["opted_out"]
    bodies = [m["body"] for m in body["messages"]]
    assert secret_out in bodies and secret_in in bodies
    sent = next(m for m in body["messages"] if m["id"] == outbound)
    assert [e["to"] for e in sent["events"] if e["kind"] == "transition"][-1] == "delivered"
    assert leaks(db, [secret_out, secret_in, *forms(PHONE)])  # the scan does find them

    erased = client.delete("/v1/contacts", query_string={"phone": PHONE}, headers=headers)
    assert erased.status_code == 200, erased.get_json()
    counts = erased.get_json()["counts"]
    assert counts["messages"] == 4  # sent, reply, STOP, the confirmation
    assert counts["consents"] == 1 and counts["inbox"] == 3 and counts["suppressions"] == 1

    assert leaks(db, [secret_out, secret_in, *forms(PHONE)]) == []
    after = client.get(
        "/v1/contacts/export", query_string={"phone": PHONE}, headers=headers
    ).get_json()
    assert (after["contact"], after["consents"], after["messages"]) == (None, [], [])
    assert after["suppressed"] is True  # the opt-out outlives the erasure
    # The message rows stay, for counts, without a number or a body.
    shown = client.get(f"/v1/messages/{outbound}", headers=ctx.headers).get_json()
    assert (shown["to"], shown["body"], shown["media"], shown["metadata"]) == ("", None, [], {})
    assert shown["status"] == "delivered"
    with db.session() as s:
        record = s.scalars(select(Erasure).where(Erasure.tenant_id == ctx.tenant_id)).one()
        assert record.counts == counts and record.requested_by is not None
        rows = s.scalars(select(InboxItem).where(InboxItem.account_id == ctx.account_id)).all()
        assert {i.result for i in rows} == {"erased"}
    # A replayed callback is still a duplicate: nothing comes back.
    assert post_callback(client, settings, ctx, reply, fake.auth_token).status_code == 200
    assert apply_all(db, ctx.account_id) == []
    # And the number is still suppressed.
    again = client.post("/v1/messages", json={"to": PHONE, "body": "hi"}, headers=ctx.headers)
    assert (again.status_code, again.get_json()["reason"]) == (422, "recipient_opted_out")


def test_erasure_cancels_what_waits_and_a_new_contact_starts_clean(
    client: FlaskClient, db: Database, ctx: TenantCtx
) -> None:
    phone = "+13125550173"
    waiting = client.post(
        "/v1/messages",
        json={"to": phone, "body": "later", "send_at": "2099-01-01T00:00:00Z"},
        headers=ctx.headers,
    ).get_json()["id"]
    headers = admin(db, ctx)
    r = client.delete("/v1/contacts", query_string={"phone": phone}, headers=headers)
    assert r.status_code == 200 and "suppressions" not in r.get_json()["counts"]
    body = client.get(f"/v1/messages/{waiting}", headers=ctx.headers).get_json()
    assert (body["status"], body["status_reason"]) == ("canceled", "recipient_erased")
    # Never opted out: the number may be written to again, as a new contact.
    again = client.post("/v1/messages", json={"to": phone, "body": "hi"}, headers=ctx.headers)
    assert again.status_code == 202
    export = client.get("/v1/contacts/export", query_string={"phone": phone}, headers=headers)
    assert [m["id"] for m in export.get_json()["messages"]] == [again.get_json()["id"]]


def test_nothing_held_is_404_and_both_need_admin(
    client: FlaskClient, db: Database, ctx: TenantCtx
) -> None:
    headers = admin(db, ctx)
    r = client.delete("/v1/contacts", query_string={"phone": "+13125550174"}, headers=headers)
    assert r.status_code == 404
    export = client.get(
        "/v1/contacts/export", query_string={"phone": "+13125550174"}, headers=headers
    ).get_json()
    assert export["found"] is False
    for method in (client.get, client.delete):
        path = "/v1/contacts/export" if method == client.get else "/v1/contacts"
        assert method(path, query_string={"phone": PHONE}, headers=ctx.headers).status_code == 403
    bad = client.delete("/v1/contacts", query_string={"phone": "call me"}, headers=headers)
    assert bad.status_code == 422


def test_another_tenants_data_is_untouched(
    client: FlaskClient, db: Database, ctx: TenantCtx
) -> None:
    from tests.factories import make_tenant_ctx

    other = make_tenant_ctx(db)
    phone = "+13125550175"
    mine = client.post("/v1/messages", json={"to": phone, "body": "a"}, headers=ctx.headers)
    theirs = client.post("/v1/messages", json={"to": phone, "body": "b"}, headers=other.headers)
    assert (
        client.delete(
            "/v1/contacts", query_string={"phone": phone}, headers=admin(db, ctx)
        ).status_code
        == 200
    )
    kept: Any = client.get(f"/v1/messages/{theirs.get_json()['id']}", headers=other.headers)
    assert (kept.get_json()["to"], kept.get_json()["body"]) == (phone, "b")
    gone = client.get(f"/v1/messages/{mine.get_json()['id']}", headers=ctx.headers).get_json()
    assert gone["body"] is None
