"""Stuck work: the report, beat reconciling, and redrive (CLI and admin API), never re-sending."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app.infra.db import Database
from app.messaging.dispatch.batch import dispatch_message
from app.messaging.recovery.reconcile import reconcile, redrive
from app.messaging.recovery.stuck import Window, parse_duration, stuck_report
from app.models import Message, MessageEvent
from config import Settings
from scripts.fake_twilio import FakeTwilio, Rule
from tests.factories import TenantCtx, add_api_key, make_tenant_ctx
from tests.support.backends import Backend
from tests.support.cli import run_json

HOUR_AGO = timedelta(hours=1)


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    """A fake Twilio that never calls back on its own here."""
    server = FakeTwilio(callback_delay=0).start()
    yield server
    server.stop()


def twilio_ctx(db: Database, fake: FakeTwilio) -> TenantCtx:
    return make_tenant_ctx(
        db,
        provider="twilio",
        channels=("sms",),
        credentials={
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "base_url": fake.base_url,
        },
    )


def queue(client: FlaskClient, ctx: TenantCtx, to: str = "+12025550100", **extra: Any) -> str:
    r = client.post(
        "/v1/messages", json={"to": to, "body": "secret body", **extra}, headers=ctx.headers
    )
    assert r.status_code == 202, r.get_json()
    return str(r.get_json()["id"])


def age(db: Database, message_id: str, by: timedelta = HOUR_AGO, **values: Any) -> None:
    """Make a message look as if it entered its state ``by`` ago (and set ``values``)."""
    then = datetime.now(UTC) - by
    with db.session() as s:
        s.execute(update(Message).where(Message.id == message_id).values(updated_at=then, **values))


def load(db: Database, message_id: str) -> Message:
    with db.session() as s:
        message = s.get(Message, message_id)
        assert message is not None
        return message


def kinds(db: Database, message_id: str) -> list[tuple[str, str | None, str]]:
    with db.session() as s:
        events = s.scalars(
            select(MessageEvent)
            .where(MessageEvent.message_id == message_id)
            .order_by(MessageEvent.id)
        )
        return [(e.kind, e.to_status, e.source) for e in events]


def test_the_report_lists_what_is_past_its_sla_by_state_and_lane_without_pii(
    client: FlaskClient, db: Database, settings: Settings, ctx: TenantCtx
) -> None:
    fresh = queue(client, ctx)
    queued_long = queue(client, ctx, priority="urgent")
    dispatched = queue(client, ctx, to="+12025550177")
    age(db, queued_long)
    age(db, dispatched, by=timedelta(minutes=5), status="dispatched", attempts=1)
    with db.session() as s:
        report = stuck_report(s, Window(settings.stuck_sla), tenant_id=ctx.tenant_id)
    assert report["counts"] == {"queued": {"urgent": 1}, "dispatched": {"normal": 1}}
    assert [m["id"] for m in report["messages"]] == [queued_long, dispatched]  # oldest first
    first = report["messages"][0]
    assert set(first) >= {
        "id",
        "tenant_id",
        "status",
        "since",
        "age_seconds",
        "reason",
        "last_event",
    }
    assert 3500 < first["age_seconds"] < 3700 and first["last_event"]["to"] == "queued"
    text = json.dumps(report)
    assert "+12025550100" not in text and "secret body" not in text and fresh not in text
    with db.session() as s:  # one age for every state
        everything = stuck_report(
            s, Window(settings.stuck_sla, timedelta(0)), tenant_id=ctx.tenant_id
        )
    assert fresh in {m["id"] for m in everything["messages"]}


def test_beat_requeues_lost_dispatches_polls_the_provider_and_marks_the_rest_once(
    client: FlaskClient, db: Database, settings: Settings, ctx: TenantCtx, fake: FakeTwilio
) -> None:
    lost = queue(client, ctx)
    age(db, lost)
    tw = twilio_ctx(db, fake)
    polled = queue(client, tw, to="+12025550005")  # Twilio accepts; no callback ever comes
    fake.rule("+12025550005", Rule(callbacks=[], poll_status="delivered"))
    assert dispatch_message(db, settings, polled) == "accepted"
    age(db, polled, by=timedelta(hours=2))
    silent = queue(client, ctx, to="+12025550005")  # the sandbox cannot be polled
    age(db, silent, by=timedelta(hours=2), status="accepted", provider_message_id="SBX1")
    no_id = queue(client, ctx, to="+12025550006")
    age(db, no_id, by=timedelta(hours=2), status="dispatched", attempts=1)

    first = reconcile(db, settings.stuck_sla)
    second = reconcile(db, settings.stuck_sla)
    assert first["requeued"] >= 1 and first["polled"] >= 1 and first["marked_stuck"] >= 2
    assert load(db, lost).status == "queued" and ("requeued", "queued", "beat") in kinds(db, lost)
    assert load(db, polled).status == "delivered"
    assert ("transition", "delivered", "beat") in kinds(db, polled)
    for message_id in (silent, no_id):
        assert [k for k in kinds(db, message_id) if k[0] == "stuck"] == [
            ("stuck", load(db, message_id).status, "beat")
        ]  # marked once, though beat ran twice
    assert (second["requeued"], second["marked_stuck"]) == (0, 0)


def test_a_message_that_moves_on_while_beat_checks_it_is_not_marked_stuck(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    ctx: TenantCtx,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Beat picks a message overdue in ``dispatched``; before it is checked, its batch's
    answer is recorded (``accepted``). Marked stuck in ``accepted`` now, it would never be
    polled there, and a receipt lost to an outage would leave it there for good."""
    import app.messaging.recovery.reconcile as reconciliation

    moving = queue(client, ctx, to="+12025550007")
    age(db, moving, by=timedelta(hours=2), status="dispatched", attempts=1)
    check = reconciliation.check_with_provider

    def answered_meanwhile(db: Database, message_id: str, *, source: str) -> Any:
        action = check(db, message_id, source=source)  # no provider id yet: "review"
        with db.session() as s:
            s.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(
                    status="accepted",
                    provider_message_id="SBX-moved",
                    updated_at=datetime.now(UTC),
                )
            )
        return action

    monkeypatch.setattr(reconciliation, "check_with_provider", answered_meanwhile)
    assert reconcile(db, settings.stuck_sla)["marked_stuck"] == 0
    assert [k for k in kinds(db, moving) if k[0] == "stuck"] == []
    monkeypatch.setattr(reconciliation, "check_with_provider", check)
    age(db, moving, by=timedelta(hours=2))  # now it overstays in accepted: checked there
    reconcile(db, settings.stuck_sla)
    assert [k for k in kinds(db, moving) if k[0] == "stuck"] == [("stuck", "accepted", "beat")]


def test_redrive_requeues_what_was_never_sent_and_never_resends_what_may_have_been(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    tw = twilio_ctx(db, fake)
    waiting = queue(client, tw, send_at=(datetime.now(UTC) + HOUR_AGO).isoformat())
    in_flight = queue(client, tw, to="+12025550011")
    age(db, in_flight, status="dispatched", attempts=1)  # the worker died mid-call
    accepted = queue(client, tw, to="+12025550005")
    fake.rule("+12025550005", Rule(callbacks=[], poll_status="undelivered"))
    assert dispatch_message(db, settings, accepted) == "accepted"
    done = queue(client, tw, to="+12025550001")
    assert dispatch_message(db, settings, done) == "failed"
    ids = [waiting, in_flight, accepted, done]

    dry = redrive(db, ids, dry_run=True, actor="test")
    assert [a.action for a in dry] == ["requeued", "review", "poll", "final"]
    assert load(db, waiting).status == "scheduled"  # a dry run changes nothing

    sent_before = len(fake.sent)
    actions = redrive(db, ids, dry_run=False, actor="test")
    assert [a.action for a in actions] == ["requeued", "review", "polled:undelivered", "final"]
    assert load(db, waiting).status == "queued"
    assert load(db, in_flight).status == "dispatched"  # left for review, not re-sent
    assert ("needs_review", "dispatched", "redrive:test") in kinds(db, in_flight)
    assert load(db, accepted).status_reason == "unknown"
    assert len(fake.sent) == sent_before  # nothing was sent again
    assert fake.fetches == [load(db, accepted).provider_message_id]


def test_the_cli_reports_and_redrives(
    backend: Backend, client: FlaskClient, db: Database, ctx: TenantCtx
) -> None:
    message_id = queue(client, ctx)
    age(db, message_id, status="scheduled", next_attempt_at=datetime.now(UTC) - HOUR_AGO)
    report = run_json(backend, f"stuck --tenant {ctx.tenant_id}")
    assert set(report) == {"counts", "messages", "inbox", "syncs"}
    assert report["counts"] == {"scheduled": {"normal": 1}}
    assert report["messages"][0]["id"] == message_id
    dry = run_json(backend, f"redrive --id {message_id} --dry-run")
    assert dry == {
        "dry_run": True,
        "messages": [{"id": message_id, "status": "scheduled", "action": "requeued", "detail": ""}],
    }
    assert load(db, message_id).status == "scheduled"
    run_json(backend, f"redrive --status scheduled --older-than 30m --tenant {ctx.tenant_id}")
    assert load(db, message_id).status == "queued"


def test_the_cli_refuses_bad_redrive_arguments(backend: Backend) -> None:
    from tests.support.cli import run

    for args, says in (
        ("redrive", "--id ID"),
        ("redrive --status queued", "--older-than"),
        ("redrive --status exploded --older-than 1m", "--status takes"),
        ("stuck --older-than soon", "not a duration"),
    ):
        proc = run(backend, *args.split(), "--json", ok=False)
        assert proc.returncode != 0 and says in proc.stderr and proc.stdout == ""


def test_the_admin_api_needs_the_admin_scope_and_sees_only_its_tenant(
    client: FlaskClient, db: Database, ctx: TenantCtx, other_ctx: TenantCtx
) -> None:
    mine, theirs = queue(client, ctx), queue(client, other_ctx)
    age(db, mine)
    age(db, theirs)
    assert client.get("/v1/admin/stuck", headers=ctx.headers).status_code == 403
    admin = {"Authorization": f"Bearer {add_api_key(db, ctx.tenant_id, ('admin',))}"}
    r = client.get("/v1/admin/stuck", headers=admin)
    assert r.status_code == 200
    assert [m["id"] for m in r.get_json()["messages"]] == [mine]
    assert client.get("/v1/admin/stuck?older_than=never", headers=admin).status_code == 422
    r = client.post(
        "/v1/admin/redrive", json={"ids": [theirs, mine], "dry_run": True}, headers=admin
    )
    assert [(m["id"], m["action"]) for m in r.get_json()["messages"]] == [
        (theirs, "missing"),  # another tenant's message is not there for this key
        (mine, "requeued"),
    ]
    for bad in ({}, {"ids": ["nope"]}, {"status": "queued"}, {"ids": [mine], "dry_run": "yes"}):
        r = client.post("/v1/admin/redrive", json=bad, headers=admin)
        assert r.status_code == 422, bad
    r = client.post(
        "/v1/admin/redrive", json={"status": "queued", "older_than": "30m"}, headers=admin
    )
    assert [(m["id"], m["action"]) for m in r.get_json()["messages"]] == [(mine, "requeued")]
    assert ("requeued", "queued", "redrive:api") in kinds(db, mine)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400), ("45", 45)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5m", "nanm", "1e99d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
