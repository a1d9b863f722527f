"""CRM writeback in batches, inside each connection's budget, against the fakes (which enforce
the CRMs' published limits): the calls a batch costs, a bad record failing alone, a 429
pausing the whole connection, our own budget keeping calls under the CRM's limits, the
daily share, limits learned from the CRM's headers, and the commands that show it all."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.crm import budget as budget_module
from app.crm.budget import Limits, limits_of, window_rate
from app.crm.syncs import stuck_syncs
from app.domain.clock import utcnow
from app.infra.db import Database
from app.infra.ratelimit import gcra
from app.models import Contact, CrmConnection
from config import Settings
from scripts.fake_hubspot import FakeHubSpot
from scripts.fake_salesforce import FakeSalesforce
from scripts.fake_twilio import FakeTwilio
from tests.factories import TenantCtx, add_api_key
from tests.integration.crm.test_crm_syncs import (  # noqa: F401 (fixtures)
    activities,
    connect,
    crm,
    lead_ids,
    reply,
    tw,
    twilio,
)
from tests.support.backends import Backend
from tests.support.cli import run_json
from tests.support.crm import drain, summary, syncs
from tests.support.fake_provider import fake_provider

PHONES = [f"+1202555{n:04d}" for n in range(2000, 2030)]


def replies(client: FlaskClient, db: Database, settings: Settings, ctx: TenantCtx,
            fake: FakeTwilio, phones: list[str]) -> None:  # fmt: skip
    for n, phone in enumerate(phones):
        reply(client, db, settings, ctx, fake, phone, f"reply {n}")


def calls(fake: Any) -> Counter[str]:
    with fake.lock:
        return Counter(f"{m} {p.split('?')[0]}" for m, p in fake.requests)


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"], indirect=True)
def test_thirty_new_senders_cost_a_handful_of_calls_not_ninety(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tw: TenantCtx,  # noqa: F811
    twilio: FakeTwilio,  # noqa: F811
    crm: Any,  # noqa: F811
) -> None:
    connect(client, db, tw, crm)
    replies(client, db, settings, tw, twilio, PHONES)
    drain(db, settings, tw.tenant_id)
    assert {s for _, s in summary(db, tw.tenant_id)} == {"done"}
    assert len(activities(crm)) == len(PHONES) and len(lead_ids(crm)) == len(PHONES)
    made = calls(crm)
    if isinstance(crm, FakeHubSpot):
        # One search, one create of contacts, one of Communications (associated inline),
        # then the routing properties of all thirty in one update.
        assert made == Counter(
            {
                "POST /crm/v3/objects/contacts/search": 1,
                "POST /crm/v3/objects/contacts/batch/create": 1,
                "POST /crm/v3/objects/communications/batch/create": 1,
                "POST /crm/v3/objects/contacts/batch/update": 1,
            }
        )
        by_phone = {c["properties"]["phone"]: c["id"] for c in crm.contacts()}
        for communication in crm.communications():
            n = int(communication["properties"]["hs_communication_body"].split()[1])
            assert communication["associations"] == [by_phone[PHONES[n]]]
    else:
        api = "/services/data/v59.0"
        assert made == Counter(
            {
                f"POST {api}/composite": 1,  # Contacts and Leads by phone, IN, in one call
                f"POST {api}/composite/sobjects": 1,  # the Leads
                f"PATCH {api}/composite/sobjects/Task/Switchboard_Message_Id__c": 1,
                f"PATCH {api}/composite/sobjects": 1,  # the routing field
            }
        )
        leads = {lead["Phone"]: lead["Id"] for lead in crm.of("Lead")}
        for task in crm.of("Task"):
            n = int(task["Description"].split()[1])
            assert task["WhoId"] == leads[PHONES[n]]
    # Each contact's CRM id is kept: its next write looks nothing up.
    with db.session() as s:
        contacts = s.scalars(select(Contact).where(Contact.tenant_id == tw.tenant_id)).all()
        assert all(c.crm_refs for c in contacts)


def test_the_webhook_gets_one_signed_envelope_per_batch(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tw: TenantCtx,  # noqa: F811
    twilio: FakeTwilio,  # noqa: F811
) -> None:
    with fake_provider("whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0") as hook:
        connect(client, db, tw, hook)
        replies(client, db, settings, tw, twilio, PHONES[:10])
        drain(db, settings, tw.tenant_id)
        assert hook.bad_signatures == 0
        # One envelope: each reply, then its routing outcome, in the order they happened.
        assert len(hook.envelopes) == 1
        types = [e["type"] for e in hook.received]
        assert types == ["crm.log_message", "crm.routing"] * 10
        ids = [e["id"] for e in hook.received]
        assert len(set(ids)) == 20 and all(i.startswith("crm_") for i in ids)


def test_a_bad_record_is_dead_lettered_alone_and_the_batch_goes_on(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tw: TenantCtx,  # noqa: F811
    twilio: FakeTwilio,  # noqa: F811
) -> None:
    hub = FakeHubSpot().start()
    try:
        connection_id = connect(client, db, tw, hub)
        replies(client, db, settings, tw, twilio, PHONES[:1])
        drain(db, settings, tw.tenant_id)
        with db.session() as s:  # HubSpot lost that contact; we still hold its old id
            contact = s.scalars(select(Contact).where(Contact.tenant_id == tw.tenant_id)).one()
            contact.crm_refs = {connection_id: "contact:999999"}
        replies(client, db, settings, tw, twilio, PHONES[:6])
        drain(db, settings, tw.tenant_id)
        dead = [s for s in syncs(db, tw.tenant_id) if s.status == "dead"]
        assert dead and {s.contact_id for s in dead} == {contact.id}
        assert all("unknown contact 999999" in (s.last_error or "") or "OBJECT_NOT_FOUND"
                   in (s.last_error or "") for s in dead)  # fmt: skip
        others = [s for s in syncs(db, tw.tenant_id) if s.contact_id != contact.id]
        assert others and {s.status for s in others} == {"done"}
        assert len(hub.communications()) == 1 + 5
    finally:
        hub.stop()


def test_a_bad_salesforce_record_fails_on_its_own_with_its_reason(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tw: TenantCtx,  # noqa: F811
    twilio: FakeTwilio,  # noqa: F811
) -> None:
    sf = FakeSalesforce().start()
    try:
        connection_id = connect(client, db, tw, sf)
        replies(client, db, settings, tw, twilio, PHONES[:1])
        drain(db, settings, tw.tenant_id)
        with db.session() as s:  # a Lead deleted in Salesforce, still known to us
            contact = s.scalars(select(Contact).where(Contact.tenant_id == tw.tenant_id)).one()
            contact.crm_refs = {connection_id: "Lead:00Q000000000000999"}
        before = calls(sf).total()
        replies(client, db, settings, tw, twilio, PHONES[:4])
        drain(db, settings, tw.tenant_id)
        dead = [s for s in syncs(db, tw.tenant_id) if s.status == "dead"]
        assert dead and {s.contact_id for s in dead} == {contact.id}
        assert "INVALID_CROSS_REFERENCE_KEY" in (dead[0].last_error or "")
        others = [s for s in syncs(db, tw.tenant_id) if s.contact_id != contact.id]
        assert {s.status for s in others} == {"done"}
        assert calls(sf).total() - before <= 5  # no call per record to find the bad one
    finally:
        sf.stop()


def test_a_429_pauses_the_whole_connection_and_the_reports_say_until_when(
    backend: Backend,
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tw: TenantCtx,  # noqa: F811
    twilio: FakeTwilio,  # noqa: F811
) -> None:
    hub = FakeHubSpot().start()
    try:
        connection_id = connect(client, db, tw, hub)
        replies(client, db, settings, tw, twilio, PHONES[:3])
        hub.set_mode("throttle", retry_after=20)  # someone else's integration spent the window
        assert drain(db, settings, tw.tenant_id) == ["throttled"] * 3
        assert len(hub.requests) == 1  # the first 429 stopped the batch
        with db.session() as s:
            connection = s.get(CrmConnection, connection_id)
            assert connection is not None and connection.paused_until is not None
            assert connection.paused_until > utcnow() + timedelta(seconds=5)
            assert (connection.pause_reason or "").startswith("throttled")
            # A 429's headers describe the refusal, not the plan: nothing learned from them.
            assert limits_of("hubspot", connection.limits).window_seconds == 10.0
        waiting = [s for s in syncs(db, tw.tenant_id) if s.status == "pending" and s.throttles]
        assert waiting and all(s.attempts == 0 for s in waiting)  # a throttle is no failure
        asked = len(hub.requests)
        assert drain(db, settings, tw.tenant_id) == ["waiting"]  # any drain, any process
        assert len(hub.requests) == asked  # not one more call while paused
        listed = run_json(backend, f"crm list --tenant {tw.tenant_id}")["connections"]
        assert listed[0]["waiting_until"] and listed[0]["reason"] == "throttled"
        with db.session() as s:
            report = stuck_syncs(s, timedelta(hours=1), older_than=timedelta(0),
                                 tenant_id=tw.tenant_id)  # fmt: skip
        assert report and {r["reason"] for r in report} == {"throttled"}
        assert all(r["waiting_until"] == listed[0]["waiting_until"] for r in report)
        hub.set_mode("ok")
        drain(db, settings, tw.tenant_id, force=True)
        assert {s for _, s in summary(db, tw.tenant_id)} == {"done"}
        assert len(hub.communications()) == 3
    finally:
        hub.stop()


def test_our_budget_waits_before_the_crm_has_to_refuse(
    monkeypatch: pytest.MonkeyPatch,
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tw: TenantCtx,  # noqa: F811
    twilio: FakeTwilio,  # noqa: F811
) -> None:
    monkeypatch.setattr(budget_module, "INLINE_WAIT", 0.0)  # every wait is a pause: no sleeps
    hub = FakeHubSpot().start()
    try:
        hub.limit(calls=4, daily=250_000)
        key = add_api_key(db, tw.tenant_id, ("admin",))
        r = client.post(
            "/v1/admin/crm/connections",
            json={"kind": "hubspot", "token": hub.token, "base_url": hub.base_url, "calls": 4},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 201 and r.get_json()["budget"]["limits"]["calls"] == 4
        for phone in PHONES[:4]:
            replies(client, db, settings, tw, twilio, [phone])
            drain(db, settings, tw.tenant_id)
        assert hub.refused == 0  # the CRM never had to say no
        waited = [s for s in syncs(db, tw.tenant_id) if s.status == "pending" and s.throttles]
        assert waited and all((s.last_error or "").startswith("budget") for s in waited)
    finally:
        hub.stop()


def test_the_daily_share_pauses_the_connection_for_hours_and_says_so(
    backend: Backend,
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tw: TenantCtx,  # noqa: F811
    twilio: FakeTwilio,  # noqa: F811
) -> None:
    hub = FakeHubSpot().start()
    try:
        connection_id = connect(client, db, tw, hub)
        shown = run_json(
            backend, f"crm limits --connection {connection_id} --daily 20 --daily-share 0.1"
        )
        assert (shown["limits"]["daily"], shown["limits"]["daily_share"]) == (20, 0.1)
        replies(client, db, settings, tw, twilio, PHONES[:3])
        drain(db, settings, tw.tenant_id)
        assert len(hub.requests) <= 2  # a share of 10% of 20 is two calls a day
        with db.session() as s:
            connection = s.get(CrmConnection, connection_id)
            assert connection is not None and connection.paused_until is not None
            assert connection.paused_until > utcnow() + timedelta(hours=1)
            assert connection.pause_reason == "budget: daily share used"
        listed = run_json(backend, f"crm list --tenant {tw.tenant_id}")["connections"]
        assert listed[0]["reason"] == "budget" and listed[0]["waiting_seconds"] > 3600
    finally:
        hub.stop()


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"], indirect=True)
def test_the_limits_the_crm_states_correct_the_plan(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tw: TenantCtx,  # noqa: F811
    twilio: FakeTwilio,  # noqa: F811
    crm: Any,  # noqa: F811
) -> None:
    if isinstance(crm, FakeHubSpot):
        crm.limit(calls=50, window=10.0, daily=40_000)
    else:
        crm.allowance = 15_000
    connection_id = connect(client, db, tw, crm)
    replies(client, db, settings, tw, twilio, PHONES[:2])
    drain(db, settings, tw.tenant_id)
    with db.session() as s:
        connection = s.get(CrmConnection, connection_id)
        assert connection is not None
        learned, limits = connection.limits["learned"], limits_of(crm_kind(crm), connection.limits)
    if isinstance(crm, FakeHubSpot):
        assert learned == {"calls": 50, "window_seconds": 10.0, "daily": 40_000}
        assert (limits.calls, limits.daily) == (50, 40_000)
    else:
        assert learned == {"daily": 15_000} and limits.daily == 15_000


def crm_kind(fake: Any) -> str:
    return "hubspot" if isinstance(fake, FakeHubSpot) else "salesforce"


def test_plans_and_overrides_are_checked(client: FlaskClient, db: Database, ctx: TenantCtx) -> None:
    headers = {"Authorization": f"Bearer {add_api_key(db, ctx.tenant_id, ('admin',))}"}
    base = {"kind": "hubspot", "token": "t"}
    r = client.post("/v1/admin/crm/connections", json={**base, "plan": "professional",
                    "daily_share": 0.2}, headers=headers)  # fmt: skip
    assert r.status_code == 201
    limits = r.get_json()["budget"]["limits"]
    assert (limits["calls"], limits["daily"], limits["daily_share"]) == (190, 625_000, 0.2)
    for bad, field in [({"plan": "gold"}, "plan"), ({"daily_share": 2}, "daily_share"),
                       ({"calls": "many"}, "calls"), ({"calls": 0}, "calls")]:  # fmt: skip
        r2 = client.post("/v1/admin/crm/connections", json={**base, **bad}, headers=headers)
        assert r2.status_code == 422 and r2.get_json()["errors"][0]["field"] == field
    connection_id = r.get_json()["id"]
    url = f"/v1/admin/crm/connections/{connection_id}"
    changed = client.patch(url, json={"plan": "enterprise"}, headers=headers)
    assert changed.status_code == 200
    assert changed.get_json()["budget"]["limits"]["daily"] == 1_000_000
    assert changed.get_json()["budget"]["limits"]["daily_share"] == 0.2  # the override stays
    assert client.patch(url, json={"token": "x"}, headers=headers).status_code == 422
    assert client.patch(url, json={"calls": -5}, headers=headers).status_code == 422


def test_an_override_lowers_a_stated_limit_but_cannot_raise_it() -> None:
    stored = {"plan": "starter", "calls": 500, "daily_share": 0.3, "learned": {"calls": 150}}
    assert limits_of("hubspot", stored).calls == 150
    assert limits_of("hubspot", {**stored, "calls": 40}).calls == 40
    assert limits_of("hubspot", {"plan": "starter"}) == Limits(100, 10.0, 5.0, 250_000, 0.5, 100)


@pytest.mark.parametrize("calls", [100, 190, 4])
def test_the_budget_never_lets_a_window_see_more_calls_than_the_limit(calls: int) -> None:
    """Call as fast as the budget's buckets allow for a minute: no 10 s window is over."""
    rate = window_rate(limits_of("hubspot", {"calls": calls}))
    assert rate is not None
    tat, now, made = None, 0.0, []
    while now < 60:
        tat, wait = gcra(tat, now, rate, 1, False)
        if wait > 0:
            now += wait
            continue
        made.append(now)
    for start in made:
        assert sum(1 for t in made if start <= t < start + 10) <= calls
