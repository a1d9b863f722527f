"""Consent through the API and the policy: refused at intake, re-checked at the claim."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.domain.clock import utcnow
from app.infra.db import Database
from app.messaging.contacts import get_or_create_contact
from app.messaging.dispatch.batch import dispatch_message
from app.models import ConsentRecord, MessageEvent, Tenant
from config import Settings
from tests.factories import TenantCtx, add_api_key

PHONE = "+12025550100"


def auth(db: Database, ctx: TenantCtx, *scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {add_api_key(db, ctx.tenant_id, scopes)}"}


def post_consent(
    client: FlaskClient, headers: dict[str, str], **body: Any
) -> tuple[int, dict[str, Any]]:
    r = client.post("/v1/consents", json={"phone": PHONE, **body}, headers=headers)
    return r.status_code, r.get_json()


def send(client: FlaskClient, ctx: TenantCtx, **extra: Any) -> tuple[int, dict[str, Any]]:
    r = client.post("/v1/messages", json={"to": PHONE, "body": "hi", **extra}, headers=ctx.headers)
    return r.status_code, r.get_json()


def test_records_are_appended_and_the_current_state_derived(
    client: FlaskClient, db: Database, ctx: TenantCtx
) -> None:
    write = auth(db, ctx, "consents:write")
    status, body = post_consent(
        client, write, channel="sms", status="opted_in", source="import", evidence="form-17"
    )
    assert status == 201
    assert body["current"]["sms"]["status"] == "opted_in"
    assert body["current"]["mms"]["status"] is None  # per channel
    status, body = post_consent(client, write, status="opted_out")  # channel: all
    assert status == 201
    read = auth(db, ctx, "consents:read")
    got = client.get("/v1/consents", query_string={"phone": PHONE}, headers=read).get_json()
    assert got["phone"] == PHONE
    assert {c: v["status"] for c, v in got["current"].items()} == {
        "sms": "opted_out",
        "mms": "opted_out",
        "rcs": "opted_out",
    }
    assert [(h["channel"], h["status"], h["source"], h["evidence"]) for h in got["history"]] == [
        ("sms", "opted_in", "import", "form-17"),
        ("all", "opted_out", "api", None),
    ]
    assert got["history"][0]["jurisdiction"] == "US"
    # A + sent unencoded in the query string arrives as a space: still understood.
    raw = client.get(f"/v1/consents?phone={PHONE}", headers=read).get_json()
    assert raw["history"] == got["history"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "maybe"}, "status"),
        ({"status": "opted_in", "phone": "12345"}, "phone"),
        ({"status": "opted_in", "channel": "fax"}, "channel"),
        ({"status": "opted_in", "source": "keyword"}, "source"),
        ({"status": "opted_in", "jurisdiction": "United States"}, "jurisdiction"),
        ({"status": "opted_in", "colour": "red"}, "colour"),
        ({}, "status"),
    ],
)
def test_bad_consent_is_422_and_writes_nothing(
    client: FlaskClient, db: Database, ctx: TenantCtx, body: dict[str, Any], field: str
) -> None:
    status, problem = post_consent(client, auth(db, ctx, "consents:write"), **body)
    assert status == 422
    assert field in [e["field"] for e in problem["errors"]]
    with db.session() as s:
        assert (
            s.scalars(select(ConsentRecord).where(ConsentRecord.tenant_id == ctx.tenant_id)).all()
            == []
        )


def test_each_operation_needs_its_own_scope(
    client: FlaskClient, db: Database, ctx: TenantCtx
) -> None:
    read = auth(db, ctx, "consents:read")
    write = auth(db, ctx, "consents:write")
    assert post_consent(client, read, status="opted_in")[0] == 403
    assert (
        client.get("/v1/consents", query_string={"phone": PHONE}, headers=write).status_code == 403
    )
    assert post_consent(client, ctx.headers, status="opted_in")[0] == 403  # messages scopes
    bad = client.get("/v1/consents", query_string={"phone": "nope"}, headers=read)
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "phone"


def test_a_send_to_an_opted_out_recipient_is_422(
    client: FlaskClient, db: Database, ctx: TenantCtx
) -> None:
    post_consent(client, auth(db, ctx, "consents:write"), channel="sms", status="opted_out")
    status, problem = send(client, ctx)
    assert status == 422
    assert (problem["reason"], problem["rule"]) == ("recipient_opted_out", "consent")
    assert problem["errors"] == [
        {
            "field": "to",
            "code": "recipient_opted_out",
            "message": "the recipient has opted out of messages on this channel",
        }
    ]
    # Opted out of SMS only: MMS is still theirs to receive.
    assert send(client, ctx, channels=["mms"])[0] == 202


def test_opt_in_policy_needs_a_consent_on_record(
    client: FlaskClient, db: Database, ctx: TenantCtx
) -> None:
    with db.session() as s:
        tenant = s.get(Tenant, ctx.tenant_id)
        assert tenant is not None
        tenant.consent_policy = "opt_in"
    status, problem = send(client, ctx)
    assert (status, problem["reason"]) == (422, "no_consent")
    post_consent(client, auth(db, ctx, "consents:write"), status="opted_in", source="import")
    assert send(client, ctx)[0] == 202


def test_an_opt_out_cancels_a_queued_message_at_once(
    client: FlaskClient, db: Database, ctx: TenantCtx
) -> None:
    status, queued = send(client, ctx)
    assert (status, queued["status"]) == (202, "queued")
    post_consent(client, auth(db, ctx, "consents:write"), status="opted_out")
    body = client.get(f"/v1/messages/{queued['id']}", headers=ctx.headers).get_json()
    assert (body["status"], body["status_reason"]) == ("canceled", "recipient_opted_out")


def test_the_claim_checks_again_and_never_sends(
    client: FlaskClient, db: Database, ctx: TenantCtx, settings: Settings
) -> None:
    """An opt-out that lands without cancelling (another path, a race): the claim refuses."""
    status, queued = send(client, ctx)
    assert status == 202
    with db.session() as s:
        contact = get_or_create_contact(s, ctx.tenant_id, PHONE)
        s.add(
            ConsentRecord(
                tenant_id=ctx.tenant_id,
                contact_id=contact.id,
                phone_index=contact.phone_index,
                channel="all",
                status="opted_out",
                source="api",
                created_at=utcnow(),
            )
        )
    assert dispatch_message(db, settings, queued["id"]) == "canceled"
    body = client.get(f"/v1/messages/{queued['id']}", headers=ctx.headers).get_json()
    assert (body["status"], body["status_reason"], body["attempts"]) == (
        "canceled",
        "recipient_opted_out",
        0,
    )
    assert body["events"][-1]["data"]["policy"] == {
        "verdict": "refuse",
        "rule": "consent",
        "reason": "recipient_opted_out",
    }


def test_each_decision_is_recorded_with_its_rule(
    client: FlaskClient, db: Database, ctx: TenantCtx, settings: Settings
) -> None:
    _, queued = send(client, ctx)
    scheduled = send(client, ctx, send_at="2099-01-01T00:00:00Z")[1]
    assert dispatch_message(db, settings, queued["id"]) == "accepted"
    with db.session() as s:
        rows = s.scalars(
            select(MessageEvent).where(
                MessageEvent.message_id.in_([queued["id"], scheduled["id"]]),
                MessageEvent.from_status.is_not(None),
            )
        ).all()
        decisions = {(e.message_id, e.to_status): e.data.get("policy") for e in rows}
    assert decisions[(queued["id"], "queued")] == {"verdict": "allow", "rule": "default"}
    assert decisions[(queued["id"], "dispatched")] == {"verdict": "allow", "rule": "default"}
    assert decisions[(scheduled["id"], "scheduled")] == {
        "verdict": "defer",
        "rule": "send_at",
        "until": "2099-01-01T00:00:00+00:00",
    }


def test_quiet_hours_override_is_decided_by_the_policy(
    client: FlaskClient, db: Database, ctx: TenantCtx
) -> None:
    status, problem = send(client, ctx, quiet_hours="ignore")
    assert (status, problem["reason"], problem["rule"]) == (
        422,
        "quiet_hours_override_not_allowed",
        "quiet_hours_override",
    )
    assert problem["errors"][0]["field"] == "quiet_hours"


@pytest.mark.postgres
def test_claims_share_the_contact_lock_and_an_opt_out_waits_for_them(
    ctx: TenantCtx, db: Database
) -> None:
    """Claims for one person run side by side; an opt-out waits until none is mid-claim."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from app.messaging.compliance.consent import lock_contact

    with db.session() as s:
        contact_id = get_or_create_contact(s, ctx.tenant_id, "+12025550177").id
    first, second, opt_out = db.sessionmaker(), db.sessionmaker(), db.sessionmaker()
    try:
        for session in (first, second, opt_out):
            session.execute(text("SET LOCAL lock_timeout = '300ms'"))
        assert lock_contact(first, contact_id, shared=True) is not None
        assert lock_contact(second, contact_id, shared=True) is not None  # not blocked
        with pytest.raises(OperationalError, match="lock timeout"):
            lock_contact(opt_out, contact_id)  # the opt-out's exclusive lock waits
        opt_out.rollback()
        first.rollback()
        second.rollback()
        opt_out.execute(text("SET LOCAL lock_timeout = '300ms'"))
        assert lock_contact(opt_out, contact_id) is not None  # free once the claims finished
    finally:
        for session in (first, second, opt_out):
            session.rollback()
            session.close()
