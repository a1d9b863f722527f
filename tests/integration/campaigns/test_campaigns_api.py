"""POST /v1/campaigns and its controls against the real database: rows checked before anything
is sent, recipients written in batches, each recipient a message once the expansion runs."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, func, select, update

from app import create_app
from app.content import store as templates
from app.infra.db import Database
from app.infra.outbox import Outbox
from app.messaging.campaigns import store
from app.messaging.campaigns.expansion import expand_batch
from app.messaging.compliance.consent import record_consent
from app.messaging.contacts import get_or_create_contact
from app.models import (
    AuditEvent,
    Campaign,
    CampaignRecipient,
    Contact,
    Message,
    MessageEvent,
    OutboxRow,
)
from config import Settings
from tests.factories import TenantCtx, make_tenant_ctx

NUMBERS = [f"+1202555{n:04d}" for n in range(3100, 3106)]


def post(client: FlaskClient, ctx: TenantCtx, body: dict[str, Any], key: str | None = None) -> Any:
    headers = dict(ctx.headers)
    if key:
        headers["Idempotency-Key"] = key
    return client.post("/v1/campaigns", json=body, headers=headers)


def post_csv(
    client: FlaskClient, ctx: TenantCtx, data: bytes, query: str = "", key: str | None = None
) -> Any:
    headers = {**ctx.headers, "Content-Type": "text/csv"}
    if key:
        headers["Idempotency-Key"] = key
    return client.post(f"/v1/campaigns?{query}", data=data, headers=headers)


def expand(db: Database, settings: Settings, campaign_id: str) -> int:
    made = 0
    while True:
        batch = expand_batch(db, settings, campaign_id, 500)
        made += batch.made
        if not batch.more:
            return made


def campaign_count(db: Database, tenant_id: str) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).where(Campaign.tenant_id == tenant_id)) or 0)


def with_template(db: Database, ctx: TenantCtx) -> None:
    with db.session() as s:
        templates.create(
            s,
            ctx.tenant_id,
            {
                "name": "delay",
                "variables": {"name": {"type": "string"}, "days": {"type": "number"}},
                "default_locale": "en",
                "locales": {"en": {"sms": "Hi ((name)), your order is ((days)) days late"}},
            },
            "test",
        )
        s.commit()


def test_a_json_campaign_becomes_one_message_per_recipient(
    client: FlaskClient,
    ctx: TenantCtx,
    db: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What the outbox holds, committed, as each commit's rows go to the broker (they are
    # deleted a fraction of a second after, so the table alone cannot be read afterwards).
    owed: list[tuple[str, list[Any]]] = []
    publish = Outbox.publish

    def watched(outbox: Outbox, rows: Any) -> int:
        with db.session() as s:
            found = s.scalars(select(OutboxRow).where(OutboxRow.id.in_([r.id for r, _ in rows])))
            owed.extend((row.task_name, row.args) for row in found)
        return publish(outbox, rows)

    monkeypatch.setattr(Outbox, "publish", watched)
    recipients = [{"to": n, "reference": f"order-{i}"} for i, n in enumerate(NUMBERS[:5])]
    recipients.append({"to": NUMBERS[0], "reference": "again"})  # a duplicate: sent once
    r = post(
        client,
        ctx,
        {"name": "Delay notice", "body": "Your order is late", "recipients": recipients},
    )
    assert r.status_code == 202, r.get_json()
    body = r.get_json()
    assert body["status"] == "running"
    assert r.headers["Location"] == f"/v1/campaigns/{body['id']}"
    assert body["upload"]["accepted"] == 5
    assert body["upload"]["duplicates"] == 1
    assert body["upload"]["duplicate_rows"] == [6]
    assert body["recipients"]["pending"] == 5
    # The expansion is owed, durably, with the answer: committed before it is published.
    assert ("expand_campaign", [body["id"]]) in owed

    assert expand(db, settings, body["id"]) == 5
    shown = client.get(f"/v1/campaigns/{body['id']}", headers=ctx.headers).get_json()
    assert shown["status"] == "completed"
    assert shown["recipients"]["made"] == 5
    assert shown["messages"]["by_status"] == {"queued": 5}
    assert shown["left"] == 5

    page = client.get(
        f"/v1/campaigns/{body['id']}/recipients?limit=2", headers=ctx.headers
    ).get_json()
    assert [p["reference"] for p in page["data"]] == ["order-0", "order-1"]
    rest = client.get(
        f"/v1/campaigns/{body['id']}/recipients?limit=10&cursor={page['next_cursor']}",
        headers=ctx.headers,
    ).get_json()
    assert [p["reference"] for p in rest["data"]] == ["order-2", "order-3", "order-4"]
    assert rest["next_cursor"] is None
    first = page["data"][0]
    message = client.get(f"/v1/messages/{first['message_id']}", headers=ctx.headers).get_json()
    assert message["campaign_id"] == body["id"]
    assert message["to"] == NUMBERS[0]
    assert message["external_ref"] == "order-0"
    assert message["priority"] == "bulk"
    assert [(e["from"], e["to"]) for e in message["events"]] == [
        (None, "pending"),
        ("pending", "queued"),
    ]
    with db.session() as s:
        assert s.scalar(select(func.count()).where(Message.campaign_id == body["id"])) == 5
        assert (
            s.scalar(
                select(func.count())
                .select_from(MessageEvent)
                .join(Message, Message.id == MessageEvent.message_id)
                .where(Message.campaign_id == body["id"])
            )
            == 10
        )
    # Expanding again makes nothing twice.
    assert expand(db, settings, body["id"]) == 0

    # A completed campaign takes more recipients: it runs again for the new ones only.
    more = client.post(
        f"/v1/campaigns/{body['id']}/recipients",
        json={"recipients": [{"to": NUMBERS[5]}, {"to": NUMBERS[1]}]},
        headers=ctx.headers,
    )
    assert more.status_code == 200, more.get_json()
    assert more.get_json()["upload"]["accepted"] == 1
    assert more.get_json()["upload"]["duplicates"] == 1
    assert more.get_json()["status"] == "running"
    assert expand(db, settings, body["id"]) == 1
    shown = client.get(f"/v1/campaigns/{body['id']}", headers=ctx.headers).get_json()
    assert shown["status"] == "completed"
    assert shown["recipients"]["made"] == 6


def test_rows_with_errors_keep_a_draft_to_fix_and_start(
    client: FlaskClient, ctx: TenantCtx, db: Database, settings: Settings
) -> None:
    recipients = [{"to": NUMBERS[0]}, {"to": "+1202"}, {"to": NUMBERS[1], "reference": 5}]
    r = post(client, ctx, {"body": "hi", "recipients": recipients})
    assert r.status_code == 422, r.get_json()
    problem = r.get_json()
    assert problem["reason"] == "rows_invalid"
    assert {(e["row"], e["field"], e["code"]) for e in problem["errors"]} == {
        (2, "phone", "invalid_number"),
        (3, "reference", "invalid"),
    }
    campaign_id = problem["campaign_id"]
    shown = client.get(f"/v1/campaigns/{campaign_id}", headers=ctx.headers).get_json()
    assert shown["status"] == "draft"
    assert shown["recipients"]["total"] == 1
    assert shown["recipients"]["invalid_rows"] == 2
    assert expand(db, settings, campaign_id) == 0  # a draft sends nothing

    fixed = client.post(
        f"/v1/campaigns/{campaign_id}/recipients",
        json={"recipients": [{"to": NUMBERS[2]}, {"to": NUMBERS[1], "reference": "5"}]},
        headers=ctx.headers,
    )
    assert fixed.status_code == 200, fixed.get_json()
    assert fixed.get_json()["upload"]["accepted"] == 2
    started = client.post(f"/v1/campaigns/{campaign_id}/start", headers=ctx.headers)
    assert started.status_code == 200 and started.get_json()["status"] == "running"
    again = client.post(f"/v1/campaigns/{campaign_id}/start", headers=ctx.headers)
    assert again.status_code == 200 and again.get_json()["changed"]["changed"] is False
    resume_running = client.post(
        f"/v1/campaigns/{fixed.get_json()['id']}/resume", headers=ctx.headers
    )
    assert resume_running.status_code == 200  # resuming a running campaign changes nothing
    assert expand(db, settings, campaign_id) == 3


def test_a_csv_campaign_from_a_template_checks_each_cell(
    client: FlaskClient, ctx: TenantCtx, db: Database, settings: Settings
) -> None:
    with_template(db, ctx)
    data = (
        "phone,name,days,reference\n"
        f"{NUMBERS[0]},Ada,3,A-1\n"
        f"{NUMBERS[1]},Grace,two,A-2\n"
        f"{NUMBERS[2]},,4,A-3\n"
        f"{NUMBERS[3]},Linus,1,A-4\n"
    ).encode()
    r = post_csv(client, ctx, data, "template=delay&start=false&name=late")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["status"] == "draft"
    assert body["template"]["version"] == 1
    assert body["upload"]["accepted"] == 2
    assert {(e["row"], e["field"], e["code"]) for e in body["upload"]["errors"]} == {
        (3, "days", "invalid"),
        (4, "name", "missing"),
    }
    assert client.post(f"/v1/campaigns/{body['id']}/start", headers=ctx.headers).status_code == 200
    assert expand(db, settings, body["id"]) == 2
    with db.session() as s:
        bodies = sorted(
            m.body or ""
            for m in s.scalars(select(Message).where(Message.campaign_id == body["id"]))
        )
    assert bodies == ["Hi Ada, your order is 3 days late", "Hi Linus, your order is 1 days late"]


@pytest.mark.parametrize(
    ("data", "code", "row"),
    [
        (b"phone,name\n+12025553100,Ad\xe9\n", "not_utf8", 2),
        (b"number,name\n+12025553100,Ada\n", "no_phone_column", 1),
        (b"phone\n+12025553100\n+12025553101,extra\n", "too_many_fields", 3),
        (b"", "empty", 1),
        (b"phone,phone\n+12025553100,+12025553101\n", "repeated_column", 1),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_and_nothing_is_written(
    client: FlaskClient, db: Database, data: bytes, code: str, row: int
) -> None:
    ctx = make_tenant_ctx(db)
    r = post_csv(client, ctx, data, "body=hello")
    assert r.status_code == 400, r.get_json()
    problem = r.get_json()
    assert problem["reason"] == code
    assert problem["errors"][0]["row"] == row
    assert campaign_count(db, ctx.tenant_id) == 0


def test_a_bad_line_deep_in_a_large_file_undoes_the_batches_written(
    client: FlaskClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "BATCH", 500)
    ctx = make_tenant_ctx(db)
    # Two batches go in before the bad line (the upload's batches are smaller here).
    lines = [f"+1202556{n:04d}" for n in range(1200)]
    data = ("phone\n" + "\n".join(lines) + "\n+12025553100,extra\n").encode()
    r = post_csv(client, ctx, data, "body=hello")
    assert r.status_code == 400 and r.get_json()["errors"][0]["row"] == 1202
    assert campaign_count(db, ctx.tenant_id) == 0
    with db.session() as s:
        assert (
            s.scalar(select(func.count()).where(CampaignRecipient.tenant_id == ctx.tenant_id)) == 0
        )


def test_an_upload_over_the_size_limit_is_413_and_nothing_is_written(
    settings: Settings, db: Database
) -> None:
    app = create_app(
        {"settings": dataclasses.replace(settings, campaign_max_bytes=4096), "TESTING": True}
    )
    client = app.test_client()
    ctx = make_tenant_ctx(db)
    data = ("phone\n" + "\n".join(f"+1202556{n:04d}" for n in range(600)) + "\n").encode()
    r = post_csv(client, ctx, data, "body=hello")
    assert r.status_code == 413, r.get_json()
    assert campaign_count(db, ctx.tenant_id) == 0


def test_opted_out_numbers_are_skipped_and_counted(
    client: FlaskClient, ctx: TenantCtx, db: Database, settings: Settings
) -> None:
    with db.session() as s:
        contact = get_or_create_contact(s, ctx.tenant_id, NUMBERS[1])
        record_consent(s, contact, channel="all", status="opted_out", source="api")
        s.commit()
    r = post(client, ctx, {"body": "hi", "recipients": [{"to": n} for n in NUMBERS[:3]]})
    assert r.status_code == 202, r.get_json()
    body = r.get_json()
    assert body["upload"]["accepted"] == 2
    assert body["upload"]["skipped"] == {"recipient_opted_out": 1}
    # One opting out after the upload is skipped when its message would be made.
    with db.session() as s:
        contact = get_or_create_contact(s, ctx.tenant_id, NUMBERS[2])
        record_consent(s, contact, channel="sms", status="opted_out", source="api")
        s.commit()
    assert expand(db, settings, body["id"]) == 1
    shown = client.get(f"/v1/campaigns/{body['id']}", headers=ctx.headers).get_json()
    assert shown["recipients"]["skipped_by_reason"] == {"recipient_opted_out": 2}


def test_the_idempotency_key_names_one_campaign(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    body = {"body": "hi", "recipients": [{"to": n} for n in NUMBERS[:3]]}
    first = post(client, ctx, body, key="cmp-1")
    assert first.status_code == 202
    replay = post(client, ctx, body, key="cmp-1")
    assert replay.status_code == 200, replay.get_json()
    assert replay.get_json()["id"] == first.get_json()["id"]
    assert replay.get_json()["recipients"]["total"] == 3
    assert replay.get_json()["recipients"]["duplicate_rows"] == 0
    other = post(client, ctx, {**body, "body": "other"}, key="cmp-1")
    assert other.status_code == 409
    assert other.get_json()["campaign_id"] == first.get_json()["id"]


def test_the_database_going_away_mid_upload_keeps_what_committed_and_a_retry_completes(
    client: FlaskClient, ctx: TenantCtx, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    monkeypatch.setattr(store, "BATCH", 2)
    inserts = {"n": 0}

    def fail_the_third(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO campaign_recipients"):
            inserts["n"] += 1
            if inserts["n"] == 3:
                raise OperationalError(statement, {}, Exception("server closed the connection"))

    body = {"body": "hi", "recipients": [{"to": n} for n in NUMBERS]}
    event.listen(db.engine, "before_cursor_execute", fail_the_third)
    try:
        down = post(client, ctx, body, key="cmp-down")
    finally:
        event.remove(db.engine, "before_cursor_execute", fail_the_third)
    assert down.status_code == 503, down.get_json()
    assert down.headers["Retry-After"] == "5"
    with db.session() as s:
        campaign = s.scalar(select(Campaign).where(Campaign.idempotency_key == "cmp-down"))
        assert campaign is not None and campaign.status == "draft"  # nothing sent
        held = s.scalar(select(func.count()).where(CampaignRecipient.campaign_id == campaign.id))
        assert held == 4  # exactly the two batches that committed
    # The answer names the campaign and says how to complete it.
    assert down.get_json()["reason"] == "database_unavailable"
    assert down.get_json()["campaign_id"] == campaign.id
    assert "same Idempotency-Key" in down.get_json()["detail"]
    retry = post(client, ctx, body, key="cmp-down")
    assert retry.status_code == 202, retry.get_json()  # the same campaign, now started
    shown = retry.get_json()
    assert shown["status"] == "running"
    assert shown["recipients"]["total"] == 6  # each number once


def test_pause_holds_resume_releases_and_cancel_ends_what_waits(
    client: FlaskClient, ctx: TenantCtx, db: Database, settings: Settings
) -> None:
    r = post(client, ctx, {"body": "hi", "recipients": [{"to": n} for n in NUMBERS[:4]]})
    campaign_id = r.get_json()["id"]
    assert expand(db, settings, campaign_id) == 4
    paused = client.post(f"/v1/campaigns/{campaign_id}/pause", headers=ctx.headers).get_json()
    assert paused["status"] == "paused"
    assert paused["messages"]["by_reason"] == {"campaign_paused": 4}
    assert paused["held_by"] == {"paused": 4}
    listed = client.get("/v1/campaigns?status=paused", headers=ctx.headers).get_json()
    assert [c["id"] for c in listed["data"]] == [campaign_id]

    resumed = client.post(f"/v1/campaigns/{campaign_id}/resume", headers=ctx.headers).get_json()
    assert resumed["status"] == "running"
    with db.session() as s:
        waiting = s.scalars(select(Message).where(Message.campaign_id == campaign_id)).all()
        assert {(m.status, m.status_reason) for m in waiting} == {("scheduled", None)}

    canceled = client.post(f"/v1/campaigns/{campaign_id}/cancel", headers=ctx.headers).get_json()
    assert canceled["status"] == "canceled"
    assert canceled["messages"]["by_status"] == {"canceled": 4}
    assert canceled["messages"]["by_reason"] == {"campaign_canceled": 4}
    with db.session() as s:
        actions = s.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.target == campaign_id)
            .order_by(AuditEvent.seq)
        ).all()
    assert actions == [
        "campaign.create",
        "campaign.start",
        "campaign.pause",
        "campaign.resume",
        "campaign.cancel",
    ]
    late = client.post(f"/v1/campaigns/{campaign_id}/resume", headers=ctx.headers)
    assert late.status_code == 409
    closed = client.post(
        f"/v1/campaigns/{campaign_id}/recipients",
        json={"recipients": [{"to": NUMBERS[5]}]},
        headers=ctx.headers,
    )
    assert closed.status_code == 409
    assert closed.get_json()["reason"] == "campaign_closed"
    with db.session() as s:
        kept = s.scalar(select(func.count()).where(CampaignRecipient.campaign_id == campaign_id))
    assert kept == 4  # nothing written


def test_lookups_refuse_what_is_not_a_campaign(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    other = make_tenant_ctx(db)
    r = post(client, other, {"body": "hi", "recipients": [{"to": NUMBERS[0]}]})
    theirs = r.get_json()["id"]
    assert client.get(f"/v1/campaigns/{theirs}", headers=ctx.headers).status_code == 404
    assert client.get("/v1/campaigns/cmp_%00", headers=ctx.headers).status_code == 404
    assert client.get("/v1/campaigns?status=late", headers=ctx.headers).status_code == 422
    assert client.get("/v1/campaigns?cursor=zz", headers=ctx.headers).status_code == 400
    bad = client.post("/v1/campaigns", json={"recipients": []}, headers=ctx.headers)
    assert bad.status_code == 422
    text = client.post(
        "/v1/campaigns", data="x", headers={**ctx.headers, "Content-Type": "text/plain"}
    )
    assert text.status_code == 415


def test_an_erased_number_leaves_no_trace_in_a_campaign(
    client: FlaskClient, db: Database, settings: Settings
) -> None:
    ctx = make_tenant_ctx(db, scopes=("messages:write", "messages:read", "admin"))
    rows = [{"to": NUMBERS[0], "reference": "ada-lovelace"}, {"to": NUMBERS[1]}]
    r = post(client, ctx, {"body": "hi", "recipients": rows})
    campaign_id = r.get_json()["id"]
    erased = client.delete(f"/v1/contacts?phone=%2B{NUMBERS[0][1:]}", headers=ctx.headers)
    assert erased.status_code == 200, erased.get_json()
    assert erased.get_json()["counts"]["campaign_recipients"] == 1
    assert expand(db, settings, campaign_id) == 1  # no message is made for the erased one
    page = client.get(f"/v1/campaigns/{campaign_id}/recipients", headers=ctx.headers).get_json()
    assert [(p["to"], p["reference"], p["state"], p["reason"]) for p in page["data"]] == [
        ("", None, "skipped", "recipient_erased"),
        (NUMBERS[1], None, "made", None),
    ]


def test_metrics_and_analytics_count_campaigns(
    client: FlaskClient, ctx: TenantCtx, db: Database, settings: Settings
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from app.reports.analytics import rollup

    app = create_app(
        {
            "settings": dataclasses.replace(
                settings, metrics_token="campaign-metrics", metrics_cache_seconds=0.0
            ),
            "TESTING": True,
        }
    )

    def gauges() -> dict[tuple[str, str], float]:
        r = app.test_client().get("/metrics", headers={"Authorization": "Bearer campaign-metrics"})
        assert r.status_code == 200
        found = {}
        for family in text_string_to_metric_families(r.get_data(as_text=True)):
            for sample in family.samples:
                if sample.name.startswith("switchboard_campaign"):
                    found[(sample.name, sample.labels.get("status", ""))] = sample.value
        return found

    before = gauges()
    r = post(client, ctx, {"body": "hi", "start": False, "recipients": [{"to": NUMBERS[0]}]})
    assert r.status_code == 201
    after = gauges()
    assert (
        after[("switchboard_campaigns", "draft")] == before[("switchboard_campaigns", "draft")] + 1
    )
    pending = ("switchboard_campaign_recipients_pending", "")
    assert after[pending] == before[pending] + 1

    # A message of the campaign sent and delivered: analytics by campaign count it apart.
    campaign_id = r.get_json()["id"]
    assert client.post(f"/v1/campaigns/{campaign_id}/start", headers=ctx.headers).status_code == 200
    assert expand(db, settings, campaign_id) == 1
    other = client.post("/v1/messages", json={"to": NUMBERS[1], "body": "x"}, headers=ctx.headers)
    assert other.status_code == 202
    from app.domain.statuses import Status
    from app.messaging.states import apply_transition

    with db.session() as s:
        for message in s.scalars(select(Message).where(Message.tenant_id == ctx.tenant_id)):
            for status in (Status.DISPATCHED, Status.ACCEPTED, Status.DELIVERED):
                apply_transition(s, message, status, source="test")
        s.commit()
    with db.session() as s:
        rollup(s)
        s.commit()
    rows = client.get("/v1/analytics?bucket=hour&by=campaign", headers=ctx.headers).get_json()
    by = {row["campaign_id"]: (row["sent"], row["delivered"]) for row in rows["rows"]}
    assert by == {campaign_id: (1, 1), None: (1, 1)}
    only = client.get(
        f"/v1/analytics?bucket=hour&campaign_id={campaign_id}", headers=ctx.headers
    ).get_json()
    assert [(row["sent"], row["delivered"]) for row in only["rows"]] == [(1, 1)]


def test_a_campaign_rate_spaces_its_messages(
    client: FlaskClient, ctx: TenantCtx, db: Database, settings: Settings
) -> None:
    r = post(
        client,
        ctx,
        {"body": "hi", "rate_per_second": 2, "recipients": [{"to": n} for n in NUMBERS[:6]]},
    )
    campaign_id = r.get_json()["id"]
    assert expand(db, settings, campaign_id) == 6
    with db.session() as s:
        messages = s.scalars(select(Message).where(Message.campaign_id == campaign_id)).all()
        campaign = s.get(Campaign, campaign_id)
        assert campaign is not None and campaign.started_at is not None
        started = campaign.started_at
    # The n-th is due n / 2 seconds after the start: those whose slot had passed when their
    # message was made are queued; each later one waits for its own slot.
    waiting = sorted(m.not_before for m in messages if m.status == "scheduled")
    assert waiting and all(m.status in ("queued", "scheduled") for m in messages)
    offsets = [round((slot - started).total_seconds(), 2) for slot in waiting if slot]
    first = 6 - len(offsets)
    assert offsets == [n / 2 for n in range(first, 6)]
    assert {m.status_reason for m in messages if m.status == "scheduled"} == {"campaign_rate"}
    shown = client.get(f"/v1/campaigns/{campaign_id}", headers=ctx.headers).get_json()
    assert shown["held_by"] == {"rate_limit": len(offsets)}


def test_a_row_from_before_zones_were_kept_finds_its_zone_from_its_number(
    client: FlaskClient, db: Database, settings: Settings
) -> None:
    """Recipients written before the upload kept zones (NULL there) still give their contact
    the number's zone, on either backend."""
    ctx = make_tenant_ctx(db)
    r = post(client, ctx, {"body": "hi", "recipients": [{"to": "+33612345678"}], "start": False})
    campaign_id = r.get_json()["id"]
    with db.session() as s:
        s.execute(
            update(CampaignRecipient)
            .where(CampaignRecipient.campaign_id == campaign_id)
            .values(timezone=None)
        )
        s.commit()
    assert client.post(f"/v1/campaigns/{campaign_id}/start", headers=ctx.headers).status_code == 200
    assert expand(db, settings, campaign_id) == 1
    with db.session() as s:
        zone = s.scalar(
            select(Contact.timezone)
            .join(Message, Message.contact_id == Contact.id)
            .where(Message.campaign_id == campaign_id)
        )
    assert zone == "Europe/Paris"
