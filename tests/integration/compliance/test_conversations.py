"""Inbound messages through a signed Twilio webhook: keywords, auto-replies, replies that
cancel their journey, and routing rules. The inbox is applied in-process, as the worker does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import select

from app.infra.db import Database
from app.messaging.dispatch.batch import dispatch_message
from app.models import Message, MessageEvent, Tenant
from config import Settings
from scripts.fake_twilio import FakeTwilio, Reply, Rule
from tests.factories import TenantCtx, add_api_key
from tests.support.twilio import apply_all, post_callback, twilio_ctx

PHONE = "+12025550100"
SENDER = "+12025550199"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    server = FakeTwilio(callback_delay=0).start()
    yield server
    server.stop()


@pytest.fixture
def tw(db: Database, fake: FakeTwilio) -> TenantCtx:
    return twilio_ctx(db, fake)


_sids = iter(range(10**6))


def inbound(
    client: FlaskClient, settings: Settings, ctx: TenantCtx, fake: FakeTwilio, body: str, **kw: str
) -> None:
    params = {
        "MessageSid": f"SM{next(_sids):032d}",
        "From": kw.get("from_", PHONE),
        "To": SENDER,
        "Body": body,
        "NumMedia": "0",
        "SmsStatus": "received",
    }
    r = post_callback(client, settings, ctx, params, fake.auth_token)
    assert r.status_code == 200
    assert apply_all(client.application.extensions["switchboard.db"], ctx.account_id) == ["inbound"]


def send(client: FlaskClient, ctx: TenantCtx, to: str = PHONE, **extra: Any) -> dict[str, Any]:
    r = client.post("/v1/messages", json={"to": to, "body": "hi", **extra}, headers=ctx.headers)
    body: dict[str, Any] = r.get_json()
    body["http_status"] = r.status_code
    return body


def get(client: FlaskClient, ctx: TenantCtx, mid: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/v1/messages/{mid}", headers=ctx.headers).get_json()
    return body


def messages(db: Database, ctx: TenantCtx, **where: Any) -> list[Message]:
    with db.session() as s:
        query = select(Message).where(Message.tenant_id == ctx.tenant_id)
        for key, value in where.items():
            query = query.where(getattr(Message, key) == value)
        return list(s.scalars(query.order_by(Message.id)))


def kinds(db: Database, message_id: str) -> list[tuple[str, str | None]]:
    with db.session() as s:
        rows = s.scalars(
            select(MessageEvent)
            .where(MessageEvent.message_id == message_id)
            .order_by(MessageEvent.id)
        )
        return [(e.kind, e.reason) for e in rows]


def last_inbound(db: Database, ctx: TenantCtx) -> Message:
    return messages(db, ctx, direction="inbound")[-1]


def consents(client: FlaskClient, db: Database, ctx: TenantCtx, phone: str = PHONE) -> Any:
    key = add_api_key(db, ctx.tenant_id, ("consents:read",))
    return client.get(
        "/v1/consents", query_string={"phone": phone}, headers={"Authorization": f"Bearer {key}"}
    ).get_json()


# -- keywords


@pytest.mark.parametrize("text", ["STOP", "Stop.", " stop! ", "unsubscribe", "\tQuit\n", "OptOut"])
def test_an_opt_out_keyword_opts_out_and_cancels_what_waits(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tw: TenantCtx,
    fake: FakeTwilio,
    text: str,
) -> None:
    waiting = send(client, tw)
    later = send(client, tw, send_at="2099-01-01T00:00:00Z")
    assert (waiting["status"], later["status"]) == ("queued", "scheduled")
    inbound(client, settings, tw, fake, text)
    for mid in (waiting["id"], later["id"]):
        body = get(client, tw, mid)
        assert (body["status"], body["status_reason"]) == ("canceled", "recipient_opted_out")
    state = consents(client, db, tw)
    assert state["current"]["sms"]["status"] == "opted_out"
    record = state["history"][-1]
    assert (record["source"], record["channel"], record["jurisdiction"]) == ("keyword", "all", "US")
    assert record["evidence"] == last_inbound(db, tw).id
    # The confirmation is the one message allowed after the opt-out: urgent, on its way.
    (reply,) = messages(db, tw, purpose="auto_reply:opt_out")
    assert (reply.status, reply.priority) == ("queued", "urgent")
    assert "unsubscribed" in (reply.body or "")
    assert dispatch_message(db, settings, reply.id) == "accepted"
    # A second STOP is noted and not answered: the confirmation went once.
    inbound(client, settings, tw, fake, "STOP")
    assert ("opted_out", None) in kinds(db, last_inbound(db, tw).id)
    assert len(messages(db, tw, purpose="auto_reply:opt_out")) == 1
    assert len(consents(client, db, tw)["history"]) == 1
    # And nothing else gets through.
    refused = send(client, tw)
    assert (refused["http_status"], refused["reason"], refused["rule"]) == (
        422,
        "recipient_opted_out",
        "consent",
    )
    assert refused["errors"][0]["field"] == "to"


@pytest.mark.parametrize(
    "text", ["please don't stop sending me updates", "stop it now", "STOP STOP", "stopp", ""]
)
def test_only_a_single_keyword_counts(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tw: TenantCtx,
    fake: FakeTwilio,
    text: str,
) -> None:
    inbound(client, settings, tw, fake, text)
    assert consents(client, db, tw)["history"] == []
    assert messages(db, tw, direction="outbound") == []
    assert send(client, tw)["http_status"] == 202


def test_start_opts_back_in_and_help_gets_help(
    client: FlaskClient, db: Database, settings: Settings, tw: TenantCtx, fake: FakeTwilio
) -> None:
    inbound(client, settings, tw, fake, "STOP")
    inbound(client, settings, tw, fake, "help")
    assert ("auto_reply", "not_sent:recipient_opted_out") in kinds(db, last_inbound(db, tw).id)
    inbound(client, settings, tw, fake, "Start")
    assert [r["status"] for r in consents(client, db, tw)["history"]] == ["opted_out", "opted_in"]
    assert send(client, tw)["http_status"] == 202
    inbound(client, settings, tw, fake, "INFO")
    purposes = [m.purpose for m in messages(db, tw, direction="outbound") if m.purpose]
    assert purposes == ["auto_reply:opt_out", "auto_reply:opt_in", "auto_reply:help"]


def test_a_tenant_sets_its_own_keywords_and_replies(
    client: FlaskClient, db: Database, settings: Settings, tw: TenantCtx, fake: FakeTwilio
) -> None:
    with db.session() as s:
        tenant = s.get(Tenant, tw.tenant_id)
        assert tenant is not None
        tenant.keywords = {"opt_out": ["ARRET", "STOP"], "help": ["AIDE"]}
        tenant.auto_replies = {"opt_out": "", "help": "Acme: appelez le 0800 123 456"}
    inbound(client, settings, tw, fake, "aide")
    (help_reply,) = messages(db, tw, purpose="auto_reply:help")
    assert help_reply.body == "Acme: appelez le 0800 123 456"
    inbound(client, settings, tw, fake, "HELP")  # no longer a keyword for this tenant
    assert len(messages(db, tw, direction="outbound")) == 1
    inbound(client, settings, tw, fake, "Arret!")
    assert consents(client, db, tw)["current"]["sms"]["status"] == "opted_out"
    assert messages(db, tw, purpose="auto_reply:opt_out") == []  # "" sends no confirmation


def test_auto_replies_ignore_quiet_hours(
    client: FlaskClient, db: Database, settings: Settings, tw: TenantCtx, fake: FakeTwilio
) -> None:
    with db.session() as s:
        tenant = s.get(Tenant, tw.tenant_id)
        assert tenant is not None
        tenant.quiet_hours = "00:00-23:59"
    inbound(client, settings, tw, fake, "HELP")
    (reply,) = messages(db, tw, purpose="auto_reply:help")
    assert reply.status == "queued"
    assert send(client, tw)["status"] == "scheduled"  # what the tenant sends still waits


def test_twilio_21610_on_a_send_records_an_opt_out(
    client: FlaskClient, db: Database, settings: Settings, tw: TenantCtx, fake: FakeTwilio
) -> None:
    fake.rule(PHONE, Rule(replies=[Reply(400, code=21610)]))
    first = send(client, tw)
    queued_behind = send(client, tw)
    assert dispatch_message(db, settings, first["id"]) == "failed"
    body = get(client, tw, first["id"])
    assert (body["status"], body["status_reason"]) == ("failed", "recipient_opted_out")
    record = consents(client, db, tw)["history"][-1]
    assert (record["status"], record["source"], record["evidence"]) == (
        "opted_out",
        "provider:21610",
        first["id"],
    )
    assert get(client, tw, queued_behind["id"])["status_reason"] == "recipient_opted_out"
    assert send(client, tw)["reason"] == "recipient_opted_out"


# -- replies and journeys


def test_a_reply_is_linked_and_cancels_its_journey_only(
    client: FlaskClient, db: Database, settings: Settings, tw: TenantCtx, fake: FakeTwilio
) -> None:
    step1 = send(client, tw, journey_id="onboarding")
    assert dispatch_message(db, settings, step1["id"]) == "accepted"
    step2 = send(client, tw, journey_id="onboarding", send_at="2099-01-01T00:00:00Z")
    step3 = send(client, tw, journey_id="onboarding")
    other = send(client, tw, journey_id="billing", send_at="2099-01-01T00:00:00Z")
    someone_else = send(client, tw, to="+12025550111", journey_id="onboarding")
    # The last message that went out to them is step 1: the reply answers it, in its journey.
    inbound(client, settings, tw, fake, "Sounds good, call me")
    reply = last_inbound(db, tw)
    assert reply.metadata_["in_reply_to"] == step1["id"]
    assert reply.metadata_["conversation_id"] == reply.contact_id
    assert reply.journey_id == "onboarding"
    for mid in (step2["id"], step3["id"]):
        body = get(client, tw, mid)
        assert (body["status"], body["status_reason"]) == ("canceled", "replied")
        assert body["events"][-1]["data"] == {"reply_id": reply.id}
    assert ("replied", None) in kinds(db, step1["id"])
    assert get(client, tw, step1["id"])["status"] == "accepted"  # already with the provider
    assert get(client, tw, other["id"])["status"] == "scheduled"  # another journey
    assert get(client, tw, someone_else["id"])["status"] == "queued"  # another contact


def test_a_reply_without_a_journey_cancels_nothing(
    client: FlaskClient, db: Database, settings: Settings, tw: TenantCtx, fake: FakeTwilio
) -> None:
    waiting = send(client, tw, send_at="2099-01-01T00:00:00Z")
    inbound(client, settings, tw, fake, "who is this?")
    assert get(client, tw, waiting["id"])["status"] == "scheduled"


# -- routing rules


def admin(db: Database, ctx: TenantCtx) -> dict[str, str]:
    return {"Authorization": f"Bearer {add_api_key(db, ctx.tenant_id, ('admin',))}"}


def add_rule(client: FlaskClient, headers: dict[str, str], **rule: Any) -> dict[str, Any]:
    r = client.post("/v1/routing-rules", json=rule, headers=headers)
    assert r.status_code == 201, r.get_json()
    body: dict[str, Any] = r.get_json()
    return body


def routed(db: Database, message_id: str) -> list[tuple[str, str | None, str | None]]:
    with db.session() as s:
        rows = s.scalars(
            select(MessageEvent)
            .where(
                MessageEvent.message_id == message_id,
                MessageEvent.kind.in_(["routed", "escalated"]),
            )
            .order_by(MessageEvent.id)
        )
        return [(e.kind, e.data["action"], e.data.get("target")) for e in rows]


def test_default_routing_a_known_contact_to_an_activity_and_a_stranger_to_a_lead(
    client: FlaskClient, db: Database, settings: Settings, tw: TenantCtx, fake: FakeTwilio
) -> None:
    send(client, tw)
    inbound(client, settings, tw, fake, "thanks")
    assert routed(db, last_inbound(db, tw).id) == [("routed", "route_activity", None)]
    inbound(client, settings, tw, fake, "hello?", from_="+12025550177")
    assert routed(db, last_inbound(db, tw).id) == [("routed", "create_lead", None)]


def test_rules_fire_in_order_until_a_final_one(
    client: FlaskClient, db: Database, settings: Settings, tw: TenantCtx, fake: FakeTwilio
) -> None:
    headers = admin(db, tw)
    pricing = add_rule(
        client,
        headers,
        name="Pricing",
        match="keywords",
        values=["pricing", "how much"],
        action="tag",
        target="pricing",
    )
    add_rule(
        client,
        headers,
        name="Complaints",
        match="keywords",
        values=["complaint", "cancel my"],
        action="escalate",
        target="support-leads",
        final=True,
    )
    add_rule(
        client,
        headers,
        name="DC",
        match="area_code",
        values=["202"],
        action="assign_owner",
        target="ana",
    )
    add_rule(
        client,
        headers,
        name="London",
        match="area_code",
        values=["+4420"],
        action="assign_owner",
        target="ben",
    )
    add_rule(client, headers, name="Strangers", match="unknown_sender", action="create_lead")

    inbound(client, settings, tw, fake, "How much is the PRICING for two?")
    assert routed(db, last_inbound(db, tw).id) == [
        ("routed", "tag", "pricing"),
        ("routed", "assign_owner", "ana"),
        ("routed", "create_lead", None),
    ]
    inbound(client, settings, tw, fake, "I want to file a complaint")
    events = routed(db, last_inbound(db, tw).id)
    # Final: no owner from the later rules, so the default routes the (now known) contact.
    assert events == [
        ("escalated", "escalate", "support-leads"),
        ("routed", "route_activity", None),
    ]
    inbound(client, settings, tw, fake, "pricingx and complaints", from_="+442079460000")
    assert routed(db, last_inbound(db, tw).id) == [
        ("routed", "assign_owner", "ben"),
        ("routed", "create_lead", None),
    ]
    with db.session() as s:
        event = s.scalars(
            select(MessageEvent).where(
                MessageEvent.message_id == last_inbound(db, tw).id,
                MessageEvent.kind == "routed",
            )
        ).first()
        assert event is not None and event.data["rule"] == "London"
    listed = client.get("/v1/routing-rules", headers=headers).get_json()["data"]
    assert [r["position"] for r in listed] == [1, 2, 3, 4, 5]
    assert client.delete(f"/v1/routing-rules/{pricing['id']}", headers=headers).status_code == 204
    assert client.delete(f"/v1/routing-rules/{pricing['id']}", headers=headers).status_code == 404


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"name": "x", "match": "keywords", "action": "tag", "target": "t"}, "values"),
        ({"name": "x", "match": "sometimes", "action": "tag", "target": "t"}, "match"),
        ({"name": "x", "match": "any", "action": "escalate"}, "target"),
        ({"name": "x", "match": "area_code", "values": ["NYC"], "action": "create_lead"}, "values"),
        ({"name": "x", "match": "any", "action": "create_lead", "colour": "red"}, "colour"),
        ({"match": "any", "action": "create_lead"}, "name"),
        ({"name": "x", "match": "any", "action": "create_lead", "final": "yes"}, "final"),
    ],
)
def test_a_bad_rule_is_422_with_the_field(
    client: FlaskClient, db: Database, ctx: TenantCtx, rule: dict[str, Any], field: str
) -> None:
    r = client.post("/v1/routing-rules", json=rule, headers=admin(db, ctx))
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == field


def test_rules_need_the_admin_scope(client: FlaskClient, ctx: TenantCtx) -> None:
    assert client.get("/v1/routing-rules", headers=ctx.headers).status_code == 403


def test_a_rule_of_another_tenant_is_not_found(
    client: FlaskClient, db: Database, ctx: TenantCtx, tw: TenantCtx
) -> None:
    theirs = add_rule(client, admin(db, tw), name="x", match="any", action="create_lead")
    r = client.delete(f"/v1/routing-rules/{theirs['id']}", headers=admin(db, ctx))
    assert r.status_code == 404


def test_help_at_night_is_answered_at_once(
    client: FlaskClient, db: Database, settings: Settings, tw: TenantCtx, fake: FakeTwilio
) -> None:
    with db.session() as s:
        tenant = s.get(Tenant, tw.tenant_id)
        assert tenant is not None
        tenant.quiet_hours = "21:00-08:00"
    with freeze_time("2026-06-01T03:00:00Z"):  # 23:00 in Washington
        inbound(client, settings, tw, fake, "HELP")
    (reply,) = messages(db, tw, purpose="auto_reply:help")
    assert reply.status == "queued" and reply.not_before is None
