"""Beat jobs: releasing scheduled messages and retries, expiring past TTL, relaying the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import select, update

from app.infra.db import Database
from app.infra.outbox import enqueue, relay
from app.messaging.dispatch.scheduler import expire_overdue, release_due
from app.models import Message, OutboxRow
from tests.factories import TenantCtx, make_tenant_ctx


def status_of(db: Database, message_id: str) -> str:
    with db.session() as s:
        message = s.get(Message, message_id)
        assert message is not None
        return message.status


def test_scheduled_message_is_released_when_due(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    send_at = datetime.now(UTC) + timedelta(hours=1)
    r = client.post(
        "/v1/messages",
        json={"to": "+12025550100", "body": "x", "send_at": send_at.isoformat()},
        headers=ctx.headers,
    )
    mid = r.get_json()["id"]
    release_due(db)
    assert status_of(db, mid) == "scheduled"
    with freeze_time(send_at + timedelta(seconds=1)):
        release_due(db)
    assert status_of(db, mid) in {"queued", "dispatched", "accepted", "sent", "delivered"}


def test_retry_waits_for_next_attempt_at(client: FlaskClient, ctx: TenantCtx, db: Database) -> None:
    mid = client.post(
        "/v1/messages", json={"to": "+12025550100", "body": "x"}, headers=ctx.headers
    ).get_json()["id"]
    due = datetime.now(UTC) + timedelta(minutes=5)
    with db.session() as s:
        s.execute(
            update(Message).where(Message.id == mid).values(status="scheduled", next_attempt_at=due)
        )
    release_due(db)
    assert status_of(db, mid) == "scheduled"
    with freeze_time(due + timedelta(seconds=1)):
        release_due(db)
    assert status_of(db, mid) != "scheduled"


def test_message_past_ttl_expires(client: FlaskClient, ctx: TenantCtx, db: Database) -> None:
    r = client.post(
        "/v1/messages",
        json={
            "to": "+12025550100",
            "body": "x",
            "ttl_seconds": 120,
            "send_at": (datetime.now(UTC) + timedelta(seconds=60)).isoformat(),
        },
        headers=ctx.headers,
    )
    mid = r.get_json()["id"]
    expire_overdue(db)
    assert status_of(db, mid) == "scheduled"
    with freeze_time(datetime.now(UTC) + timedelta(minutes=4)):  # send_at + ttl has passed
        expire_overdue(db)
    assert status_of(db, mid) == "expired"
    body = client.get(f"/v1/messages/{mid}", headers=ctx.headers).get_json()
    assert body["events"][-1]["to"] == "expired" and body["events"][-1]["reason"] == "expired"


def test_a_message_quiet_hours_would_hold_past_its_ttl_expires_rather_than_go_late(
    client: FlaskClient, db: Database
) -> None:
    ctx = make_tenant_ctx(db, quiet_hours="21:00-08:00")
    with freeze_time(datetime(2026, 6, 1, 3, 0, tzinfo=UTC)):  # 23:00 in New York
        r = client.post(
            "/v1/messages",
            json={"to": "+12025550100", "body": "x", "ttl_seconds": 3600},
            headers=ctx.headers,
        )
    body = r.get_json()
    assert r.status_code == 202
    assert (body["status"], body["status_reason"]) == ("expired", "expired")
    policy = body_events(client, ctx, body["id"])[-1]["data"]["policy"]
    until = "2026-06-01T12:00:00+00:00"
    assert policy == {"verdict": "defer", "rule": "quiet_hours", "until": until}


def body_events(client: FlaskClient, ctx: TenantCtx, mid: str) -> list[dict[str, object]]:
    events: list[dict[str, object]] = client.get(
        f"/v1/messages/{mid}", headers=ctx.headers
    ).get_json()["events"]
    return events


def test_relay_publishes_rows_left_behind_and_deletes_them(app: Flask, db: Database) -> None:
    celery = app.extensions["celery"]
    published: list[tuple[str, list[str], str]] = []
    original = celery.send_task
    celery.send_task = lambda name, args, queue, **kw: published.append((name, args, queue))
    try:
        with db.sessionmaker() as s:
            # Added directly, not through enqueue(): as if the process died right after commit.
            s.add(
                OutboxRow(
                    task_name="dispatch_message",
                    queue="dispatch.normal",
                    args=["msg_left"],
                    created_at=datetime.now(UTC) - timedelta(minutes=1),
                )
            )
            s.commit()
        assert relay(celery, db, grace=timedelta(seconds=10)) >= 1
    finally:
        celery.send_task = original
    assert ("dispatch_message", ["msg_left"], "dispatch.normal") in published
    with db.session() as s:
        assert ["msg_left"] not in [row.args for row in s.scalars(select(OutboxRow))]


def test_rollback_publishes_nothing(app: Flask, db: Database) -> None:
    celery = app.extensions["celery"]
    published: list[str] = []
    original = celery.send_task
    celery.send_task = lambda name, args, queue, **kw: published.append(name)
    try:
        s = db.sessionmaker()
        enqueue(s, "dispatch_message", ["msg_rolled_back"], "dispatch.normal")
        s.flush()
        s.rollback()
        s.close()
    finally:
        celery.send_task = original
    assert published == []


def test_rows_owed_in_a_savepoint_are_published_with_the_outer_commit_only(
    app: Flask, db: Database
) -> None:
    celery = app.extensions["celery"]
    published: list[list[str]] = []
    original = celery.send_task
    celery.send_task = lambda name, args, queue, **kw: published.append(args)
    try:
        with db.sessionmaker() as s:
            enqueue(s, "dispatch_message", ["msg_outer"], "dispatch.normal")
            s.flush()
            with s.begin_nested():
                enqueue(s, "dispatch_message", ["msg_kept"], "dispatch.normal")
            assert published == []  # a released savepoint is not a commit
            try:
                with s.begin_nested():
                    enqueue(s, "dispatch_message", ["msg_undone"], "dispatch.normal")
                    raise LookupError("refused")
            except LookupError:
                pass
            s.commit()
    finally:
        celery.send_task = original
    assert published == [["msg_outer"], ["msg_kept"]]
