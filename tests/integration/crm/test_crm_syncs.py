"""CRM writeback against the local fakes: a reply arrives at the signed Twilio webhook, its
syncs are written with it, and the crm worker's code applies them. For each connector:
the happy path, an unknown sender, a replay, throttling, an outage then recovery, an
opt-out, and a permanent error dead-lettered then re-driven."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete, select

from app.crm.owed import sweep_missing
from app.crm.syncs import redrive_dead, stuck_syncs
from app.domain.clock import utcnow
from app.domain.retries import retry_delay
from app.infra.db import Database
from app.models import CrmConnection, CrmSync
from config import Settings
from scripts.fake_hubspot import FakeHubSpot
from scripts.fake_salesforce import FakeSalesforce
from scripts.fake_twilio import FakeTwilio
from tests.factories import TenantCtx, add_api_key
from tests.support.crm import config_for, drain, summary, syncs
from tests.support.fake_provider import FakeProvider, fake_provider
from tests.support.twilio import apply_all, post_callback, twilio_ctx

SENDER = "+12025550199"
KINDS = ["hubspot", "salesforce", "webhook"]


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    server = FakeTwilio(callback_delay=0, send_callbacks=False).start()
    yield server
    server.stop()


@pytest.fixture(params=KINDS)
def crm(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "hubspot":
        server: Any = FakeHubSpot().start()
        yield server
        server.stop()
    elif request.param == "salesforce":
        server = FakeSalesforce().start()
        yield server
        server.stop()
    else:
        with fake_provider("whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0") as hook:
            yield hook


def kind_of(fake: Any) -> str:
    return {FakeHubSpot: "hubspot", FakeSalesforce: "salesforce", FakeProvider: "webhook"}[
        type(fake)
    ]


@pytest.fixture
def tw(db: Database, twilio: FakeTwilio) -> TenantCtx:
    return twilio_ctx(db, twilio)


def connect(client: FlaskClient, db: Database, ctx: TenantCtx, fake: Any) -> str:
    key = add_api_key(db, ctx.tenant_id, ("admin",))
    r = client.post(
        "/v1/admin/crm/connections",
        json=config_for(kind_of(fake), fake),
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 201, r.get_json()
    assert "token" not in r.get_json() and "secret" not in r.get_json()
    return str(r.get_json()["id"])


def reply(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    ctx: TenantCtx,
    twilio: FakeTwilio,
    phone: str,
    text: str,
    sid: str | None = None,
) -> dict[str, str]:
    params = {
        "MessageSid": sid or "SM" + uuid.uuid4().hex,
        "From": phone,
        "To": SENDER,
        "Body": text,
        "NumMedia": "0",
    }
    assert post_callback(client, settings, ctx, params, twilio.auth_token).status_code == 200
    apply_all(db, ctx.account_id)
    return params


def activities(fake: Any) -> list[dict[str, Any]]:
    """What the CRM holds per message: HubSpot communications, Salesforce tasks, webhooks."""
    if isinstance(fake, FakeHubSpot):
        return fake.communications()
    if isinstance(fake, FakeSalesforce):
        return fake.of("Task")
    # The receiver dedupes: one per message (it also records what it answered 4xx/5xx to).
    seen = {r["data"]["message"]["id"]: r for r in fake.received if r["type"] == "crm.log_message"}
    return list(seen.values())


def lead_ids(fake: Any) -> list[str]:
    if isinstance(fake, FakeHubSpot):
        return [c["id"] for c in fake.contacts() if c["properties"].get("lifecyclestage") == "lead"]
    if isinstance(fake, FakeSalesforce):
        return [lead["Id"] for lead in fake.of("Lead")]
    return []


# -- the happy path, and a stranger


def test_a_reply_from_a_known_contact_is_one_activity_on_them(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tw: TenantCtx,
    twilio: FakeTwilio,
    crm: Any,
) -> None:
    phone = "+12025550101"
    known = None
    if isinstance(crm, FakeHubSpot):
        with crm.lock:
            crm.objects["contacts"]["77"] = {
                "id": "77",
                "properties": {"phone": phone, "firstname": "Ana"},
                "createdAt": "",
                "updatedAt": "",
                "archived": False,
                "associations": [],
            }
        known = "77"
    elif isinstance(crm, FakeSalesforce):
        with crm.lock:
            crm.records["Contact"]["003000000000000077"] = {
                "Id": "003000000000000077",
                "Phone": phone,
                "LastName": "Ana",
            }
        known = "003000000000000077"
    connect(client, db, tw, crm)
    reply(client, db, settings, tw, twilio, phone, "Yes, Tuesday works")
    assert set(drain(db, settings, tw.tenant_id)) <= {"done", "idle"}
    assert {s for _, s in summary(db, tw.tenant_id)} == {"done"}
    (activity,) = activities(crm)
    if isinstance(crm, FakeHubSpot):
        props = activity["properties"]
        assert props["hs_communication_channel_type"] == "SMS"
        assert props["hs_communication_logged_from"] == "CRM"
        assert props["hs_communication_body"] == "Yes, Tuesday works"
        assert props["hs_timestamp"]
        assert activity["associations"] == [known]
        assert len(crm.contacts()) == 1
        # New to us (no message before), so our routing says lead; the CRM's contact is kept.
        assert crm.contacts()[0]["properties"]["switchboard_routing"] == "create_lead"
    elif isinstance(crm, FakeSalesforce):
        assert (activity["WhoId"], activity["Description"]) == (known, "Yes, Tuesday works")
        assert crm.of("Lead") == []
        assert crm.composite_calls == 1  # Contact and Lead looked up in one call
    else:
        assert activity["data"]["message"]["text"] == "Yes, Tuesday works"
        assert activity["data"]["phone"] == phone


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"], indirect=True)
def test_an_unknown_sender_becomes_a_lead(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tw: TenantCtx,
    twilio: FakeTwilio,
    crm: Any,
) -> None:
    connect(client, db, tw, crm)
    reply(client, db, settings, tw, twilio, "+12025550102", "who is this?")
    drain(db, settings, tw.tenant_id)
    (lead,) = lead_ids(crm)
    (activity,) = activities(crm)
    if isinstance(crm, FakeSalesforce):
        assert activity["WhoId"] == lead
        assert crm.of("Lead")[0]["LeadSource"] == "SMS"
    else:
        assert activity["associations"] == [lead]


def test_the_webhook_gets_every_fact_signed(
    client: FlaskClient, db: Database, settings: Settings, tw: TenantCtx, twilio: FakeTwilio
) -> None:
    with fake_provider("whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0") as hook:
        connect(client, db, tw, hook)
        reply(client, db, settings, tw, twilio, "+12025550103", "STOP")
        drain(db, settings, tw.tenant_id)
        assert hook.bad_signatures == 0
        types = [r["type"] for r in hook.received]
    assert types == ["crm.log_message", "crm.opt_out", "crm.routing"]


# -- replays, throttling, outages, opt-outs, dead letters


def test_a_replayed_webhook_and_a_replayed_sync_create_nothing(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tw: TenantCtx,
    twilio: FakeTwilio,
    crm: Any,
) -> None:
    connect(client, db, tw, crm)
    params = reply(client, db, settings, tw, twilio, "+12025550104", "thanks")
    reply(client, db, settings, tw, twilio, "+12025550104", "thanks", sid=params["MessageSid"])
    drain(db, settings, tw.tenant_id)
    assert len(activities(crm)) == 1
    # As if a worker died after the CRM took the write and before it was recorded.
    with db.session() as s:
        for sync in s.scalars(select(CrmSync).where(CrmSync.tenant_id == tw.tenant_id)):
            # Claimed (the claim committed), written, and the answer lost: its lease runs out.
            sync.status, sync.next_attempt_at, sync.result = "pending", utcnow(), {"claimed": True}
    drain(db, settings, tw.tenant_id)
    if isinstance(crm, FakeProvider):
        # Delivered again, the same event (same webhook-id, which the receiver dedupes on).
        raw = [r for r in crm.received if r["type"] == "crm.log_message"]
        assert len(raw) == 2 and raw[0]["data"] == raw[1]["data"]
    else:
        assert len(activities(crm)) == 1
        assert len(lead_ids(crm)) <= 1


def test_throttling_waits_without_using_attempts(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tw: TenantCtx,
    twilio: FakeTwilio,
    crm: Any,
) -> None:
    if isinstance(crm, FakeProvider):
        crm.script.extend([_answer(429, {"Retry-After": "30"})])
    else:
        crm.set_mode("throttle", retry_after=30)
    connect(client, db, tw, crm)
    reply(client, db, settings, tw, twilio, "+12025550105", "hello")
    assert drain(db, settings, tw.tenant_id) == ["throttled"]
    first = syncs(db, tw.tenant_id)[0]
    assert (first.status, first.attempts, first.throttles) == ("pending", 0, 1)
    assert first.next_attempt_at is not None
    assert first.next_attempt_at - utcnow() > timedelta(seconds=25)  # Retry-After honoured
    assert drain(db, settings, tw.tenant_id) == ["waiting"]  # and nothing jumps the queue
    if not isinstance(crm, FakeProvider):
        crm.set_mode("ok")
    drain(db, settings, tw.tenant_id, force=True)
    assert {s for _, s in summary(db, tw.tenant_id)} == {"done"}
    assert len(activities(crm)) == 1


def test_an_outage_backs_off_then_recovers_with_nothing_lost_or_doubled(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tw: TenantCtx,
    twilio: FakeTwilio,
    crm: Any,
) -> None:
    if isinstance(crm, FakeProvider):
        crm.script.extend([_answer(503)] * 2)  # two tries, each one envelope of all three
    else:
        crm.set_mode("down")
    connect(client, db, tw, crm)
    for n in range(3):
        reply(client, db, settings, tw, twilio, f"+1202555011{n}", f"message {n}")
    waits = []
    for attempt in range(1, 3):
        drain(db, settings, tw.tenant_id, force=True)
        for sync in syncs(db, tw.tenant_id):
            if sync.status == "pending" and sync.attempts == attempt:
                assert sync.next_attempt_at is not None
                waits.append((sync.next_attempt_at - utcnow()).total_seconds())
    assert waits and all(w > 0 for w in waits)  # backoff held in the database
    with db.session() as s:
        report = stuck_syncs(s, timedelta(hours=1), older_than=timedelta(0), tenant_id=tw.tenant_id)
    # The first of each contact's syncs failed; the ones behind it wait their turn.
    assert report and {r["reason"] for r in report} == {"retryable", "waiting"}
    assert "+1202" not in str(report)  # ids and reasons only
    if not isinstance(crm, FakeProvider):
        crm.set_mode("ok")
    drain(db, settings, tw.tenant_id, force=True)
    assert {s for _, s in summary(db, tw.tenant_id)} == {"done"}
    assert len(activities(crm)) == 3


def test_the_backoff_rides_out_an_hour_long_outage(settings: Settings) -> None:
    # The shortest waits the jitter can give, over every attempt before dead-lettering.
    least = sum(
        retry_delay(
            n, settings.crm_retry_base_seconds, settings.crm_retry_max_seconds, _Floor()
        ).total_seconds()
        for n in range(1, settings.crm_max_attempts)
    )
    assert least > 3600


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"], indirect=True)
def test_an_opt_out_updates_the_contacts_consent_field(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tw: TenantCtx,
    twilio: FakeTwilio,
    crm: Any,
) -> None:
    connect(client, db, tw, crm)
    reply(client, db, settings, tw, twilio, "+12025550106", "Stop.")
    drain(db, settings, tw.tenant_id)
    actions = [a for a, _ in summary(db, tw.tenant_id)]
    assert "opt_out" in actions
    if isinstance(crm, FakeHubSpot):
        assert crm.contacts()[0]["properties"]["switchboard_sms_opt_out"] == "true"
    else:
        assert crm.of("Lead")[0]["Switchboard_SMS_Opt_Out__c"] is True
    # An opt-out through the API reaches the CRM too, and so does opting back in.
    key = add_api_key(db, tw.tenant_id, ("consents:write",))
    client.post(
        "/v1/consents",
        json={"phone": "+12025550106", "status": "opted_in"},
        headers={"Authorization": f"Bearer {key}"},
    )
    drain(db, settings, tw.tenant_id)
    if isinstance(crm, FakeHubSpot):
        assert crm.contacts()[0]["properties"]["switchboard_sms_opt_out"] == "false"
    else:
        assert crm.of("Lead")[0]["Switchboard_SMS_Opt_Out__c"] is False


def test_a_permanent_error_is_dead_lettered_and_can_be_redriven(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tw: TenantCtx,
    twilio: FakeTwilio,
    crm: Any,
) -> None:
    connect(client, db, tw, crm)
    if isinstance(crm, FakeProvider):
        crm.script.extend([_answer(400)])
    else:
        real = crm.token
        crm.token = "rotated"  # the CRM rotated it: our stored token now gets 401
    reply(client, db, settings, tw, twilio, "+12025550107", "hi")
    drain(db, settings, tw.tenant_id)
    dead = [s for s in syncs(db, tw.tenant_id) if s.status == "dead"]
    assert dead and (dead[0].last_error or "").startswith("permanent")
    with db.session() as s:
        report = stuck_syncs(s, timedelta(hours=1), tenant_id=tw.tenant_id)
    assert {r["status"] for r in report} == {"dead"}
    if not isinstance(crm, FakeProvider):
        crm.token = real
    with db.session() as s:
        assert len(redrive_dead(s, None, tw.tenant_id, dry_run=True)) == len(dead)
    assert "dead" in {s.status for s in syncs(db, tw.tenant_id)}  # a dry run changes nothing
    with db.session() as s:
        redrive_dead(s, None, tw.tenant_id, dry_run=False)
    drain(db, settings, tw.tenant_id)
    assert {s for _, s in summary(db, tw.tenant_id)} == {"done"}
    assert len(activities(crm)) == 1


def test_support_staff_see_and_redrive_dead_syncs_over_the_api(
    client: FlaskClient, db: Database, settings: Settings, tw: TenantCtx, twilio: FakeTwilio
) -> None:
    hub = FakeHubSpot().start()
    try:
        connect(client, db, tw, hub)
        hub.token = "rotated"
        reply(client, db, settings, tw, twilio, "+12025550120", "hi")
        drain(db, settings, tw.tenant_id)
        headers = {"Authorization": f"Bearer {add_api_key(db, tw.tenant_id, ('admin',))}"}
        stuck = client.get("/v1/admin/stuck", headers=headers).get_json()["syncs"]
        assert stuck and {s["status"] for s in stuck} == {"dead"}
        assert {s["reason"] for s in stuck} == {"permanent"}
        bad = client.post("/v1/admin/redrive/syncs", json={"ids": ["x"]}, headers=headers)
        assert bad.status_code == 422
        hub.token = FakeHubSpot.token
        r = client.post("/v1/admin/redrive/syncs", json={}, headers=headers)
        assert r.status_code == 200 and len(r.get_json()["syncs"]) == len(stuck)
        drain(db, settings, tw.tenant_id)
        assert client.get("/v1/admin/stuck", headers=headers).get_json()["syncs"] == []
        assert len(hub.communications()) == 1
    finally:
        hub.stop()


# -- what is owed, and the sweep


def test_facts_owe_syncs_only_to_active_connections_and_only_when_committed(
    client: FlaskClient, db: Database, settings: Settings, tw: TenantCtx, twilio: FakeTwilio
) -> None:
    reply(client, db, settings, tw, twilio, "+12025550108", "before any CRM")
    assert syncs(db, tw.tenant_id) == []
    hub = FakeHubSpot().start()
    try:
        connection_id = connect(client, db, tw, hub)
        with db.session() as s:
            s.get(CrmConnection, connection_id).active = False  # type: ignore[union-attr]
        reply(client, db, settings, tw, twilio, "+12025550108", "after it was removed")
        assert syncs(db, tw.tenant_id) == []
    finally:
        hub.stop()


def test_the_sweep_recreates_a_missing_sync_once(
    client: FlaskClient, db: Database, settings: Settings, tw: TenantCtx, twilio: FakeTwilio
) -> None:
    hub = FakeHubSpot().start()
    try:
        connection_id = connect(client, db, tw, hub)
        reply(client, db, settings, tw, twilio, "+12025550109", "hello")
        owed = summary(db, tw.tenant_id)
        with db.session() as s:  # as if a sync row had been lost
            s.execute(delete(CrmSync).where(CrmSync.tenant_id == tw.tenant_id))
        with db.session() as s:
            connection = s.get(CrmConnection, connection_id)
            assert connection is not None
            assert sweep_missing(s, connection, utcnow() - timedelta(hours=1)) == len(owed)
        with db.session() as s:
            connection = s.get(CrmConnection, connection_id)
            assert connection is not None
            assert sweep_missing(s, connection, utcnow() - timedelta(hours=1)) == 0  # overlap
        drain(db, settings, tw.tenant_id)
        assert len(hub.communications()) == 1
    finally:
        hub.stop()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "zoho", "token": "t"}, "kind"),
        ({"kind": "hubspot"}, "token"),
        ({"kind": "hubspot", "token": "t", "base_url": "ftp://x"}, "base_url"),
        ({"kind": "salesforce", "token": "t"}, "instance_url"),
        ({"kind": "webhook", "url": "https://x.example", "secret": "hunter2"}, "secret"),
        ({"token": "t"}, "kind"),
    ],
)
def test_a_bad_connection_is_422(
    client: FlaskClient, db: Database, ctx: TenantCtx, body: dict[str, Any], field: str
) -> None:
    key = add_api_key(db, ctx.tenant_id, ("admin",))
    r = client.post(
        "/v1/admin/crm/connections", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == field


class _Floor:
    """A random source that always gives the least jitter."""

    def uniform(self, a: float, _b: float) -> float:
        return a


def _answer(status: int, headers: dict[str, str] | None = None) -> Any:
    from tests.support.fake_provider import Answer

    return Answer(status, {"error": "scripted"}, headers or {})
