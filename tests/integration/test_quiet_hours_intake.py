"""Quiet hours at intake and again right before dispatch, in the recipient's own zone."""

from __future__ import annotations

from datetime import UTC, datetime

from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import update

from app.db import Database
from app.messaging.dispatch import claim
from app.messaging.ratelimit import DatabaseLimiter
from app.models import Message
from config import Settings
from tests.factories import make_tenant_ctx

NIGHT_IN_NEW_YORK = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)  # 23:00 EDT
DAY_IN_NEW_YORK = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)  # 12:00 EDT


def test_a_message_in_the_recipients_night_waits_for_their_morning(
    client: FlaskClient, db: Database
) -> None:
    ctx = make_tenant_ctx(db, quiet_hours="21:00-08:00", timezone="Europe/London")
    with freeze_time(NIGHT_IN_NEW_YORK):
        r = client.post(
            "/v1/messages", json={"to": "+12025550100", "body": "x"}, headers=ctx.headers
        )
    body = r.get_json()
    assert r.status_code == 202
    assert (body["status"], body["status_reason"]) == ("scheduled", "quiet_hours")
    assert body["send_at"] == "2026-06-01T12:00:00Z"  # 08:00 in New York


def test_daytime_and_ignore_go_straight_to_the_lane(client: FlaskClient, db: Database) -> None:
    ctx = make_tenant_ctx(db, quiet_hours="21:00-08:00", allow_quiet_hours_override=True)
    with freeze_time(DAY_IN_NEW_YORK):
        day = client.post(
            "/v1/messages", json={"to": "+12025550100", "body": "x"}, headers=ctx.headers
        )
    with freeze_time(NIGHT_IN_NEW_YORK):
        urgent = client.post(
            "/v1/messages",
            json={"to": "+12025550100", "body": "x", "quiet_hours": "ignore"},
            headers=ctx.headers,
        )
    assert day.get_json()["status"] == urgent.get_json()["status"] == "queued"


def test_send_at_inside_quiet_hours_moves_to_the_windows_end(
    client: FlaskClient, db: Database
) -> None:
    ctx = make_tenant_ctx(db, quiet_hours="21:00-08:00")
    with freeze_time(DAY_IN_NEW_YORK):
        r = client.post(
            "/v1/messages",
            json={"to": "+12025550100", "body": "x", "send_at": "2026-06-02T02:00:00Z"},
            headers=ctx.headers,
        )
    assert r.get_json()["send_at"] == "2026-06-02T12:00:00Z"
    assert r.get_json()["status_reason"] == "quiet_hours"


def test_a_queued_message_reaching_dispatch_at_night_is_held(
    client: FlaskClient, db: Database, settings: Settings
) -> None:
    ctx = make_tenant_ctx(db, quiet_hours="21:00-08:00")
    with freeze_time(DAY_IN_NEW_YORK):
        mid = client.post(
            "/v1/messages",
            json={"to": "+12025550100", "body": "x", "ttl_seconds": 86400},
            headers=ctx.headers,
        ).get_json()["id"]
    with db.session() as s:  # as if the worker was busy until night fell
        s.execute(update(Message).where(Message.id == mid).values(status="queued"))
    with freeze_time(NIGHT_IN_NEW_YORK.replace(day=2)):
        assert claim(db, settings, DatabaseLimiter(), mid) == "quiet_hours"
    with db.session() as s:
        message = s.get(Message, mid)
        assert message is not None
        assert message.status == "scheduled" and message.status_reason == "quiet_hours"
        assert message.not_before == datetime(2026, 6, 2, 12, 0, tzinfo=UTC)
