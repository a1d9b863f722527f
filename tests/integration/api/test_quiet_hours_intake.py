"""Quiet hours at intake and again right before dispatch, in the recipient's own zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import update

from app.infra.db import Database
from app.infra.ratelimit import DatabaseLimiter
from app.messaging.dispatch.batch import claim
from app.models import Message, Tenant
from config import Settings
from tests.factories import TenantCtx, add_api_key, make_tenant_ctx

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


def post(client: FlaskClient, ctx: TenantCtx, to: str, **extra: object) -> dict[str, object]:
    r = client.post("/v1/messages", json={"to": to, "body": "x", **extra}, headers=ctx.headers)
    assert r.status_code == 202, r.get_json()
    body: dict[str, object] = r.get_json()
    return body


def test_urgent_bypasses_quiet_hours_only_where_the_tenant_allows(
    client: FlaskClient, db: Database
) -> None:
    strict = make_tenant_ctx(db, quiet_hours="21:00-08:00")
    lenient = make_tenant_ctx(db, quiet_hours="21:00-08:00")
    with db.session() as s:
        tenant = s.get(Tenant, lenient.tenant_id)
        assert tenant is not None
        tenant.urgent_bypasses_quiet_hours = True
    with freeze_time(NIGHT_IN_NEW_YORK):
        held = post(client, strict, "+12025550100", priority="urgent")
        through = post(client, lenient, "+12025550100", priority="urgent")
        normal = post(client, lenient, "+12025550100")
    assert (held["status"], through["status"], normal["status"]) == (
        "scheduled",
        "queued",
        "scheduled",
    )
    events = client.get(f"/v1/messages/{through['id']}", headers=lenient.headers).get_json()[
        "events"
    ]
    assert events[-1]["data"]["policy"] == {"verdict": "allow", "rule": "urgent_bypass"}


def set_zone(client: FlaskClient, db: Database, ctx: TenantCtx, phone: str, tz: str) -> int:
    key = add_api_key(db, ctx.tenant_id, ("messages:write",))
    return client.put(
        "/v1/contacts/timezone",
        query_string={"phone": phone},
        json={"timezone": tz},
        headers={"Authorization": f"Bearer {key}"},
    ).status_code


@pytest.mark.parametrize(
    ("phone", "at", "stored", "quiet_by_number", "quiet_by_stored"),
    [
        # +44: 22:30 in London is quiet; the contact lives in New York (17:30).
        ("+447911123456", "2026-06-01T21:30:00Z", "America/New_York", True, False),
        # +1 208 spans Mountain and Pacific: the tenant's zone (UTC, 03:30) decides, until
        # the contact's own zone (Boise, 21:30 the day before) is stored.
        ("+12085550100", "2026-06-02T03:30:00Z", "America/Boise", True, True),
        ("+12085550100", "2026-06-01T21:30:00Z", "America/Los_Angeles", True, False),
        # +61 mobiles span Australia's zones: stored Perth (+08:00) at 22:00 is quiet.
        ("+61412345678", "2026-06-01T14:00:00Z", "Australia/Perth", False, True),
        # +91 is +05:30: 21:15 IST is quiet; 20:45 IST is not.
        ("+919812345678", "2026-06-01T15:45:00Z", "Asia/Kolkata", True, True),
        ("+919812345678", "2026-06-01T15:15:00Z", "Asia/Kolkata", False, False),
    ],
)
def test_the_contacts_stored_zone_wins_over_the_numbers(
    client: FlaskClient,
    db: Database,
    phone: str,
    at: str,
    stored: str,
    quiet_by_number: bool,
    quiet_by_stored: bool,
) -> None:
    ctx = make_tenant_ctx(db, quiet_hours="21:00-08:00", timezone="UTC")
    with freeze_time(at):
        first = post(client, ctx, phone)
        assert set_zone(client, db, ctx, phone, stored) == 200
        second = post(client, ctx, phone)
    assert (first["status"] == "scheduled") is quiet_by_number
    assert (second["status"] == "scheduled") is quiet_by_stored


def test_a_bad_stored_zone_is_422(client: FlaskClient, db: Database, ctx: TenantCtx) -> None:
    assert set_zone(client, db, ctx, "+12025550100", "Mars/Olympus") == 422


def test_weekday_windows_and_a_dst_night(client: FlaskClient, db: Database) -> None:
    ctx = make_tenant_ctx(
        db, quiet_hours="mon-fri 21:00-08:00; sat,sun 20:00-10:00", timezone="UTC"
    )
    # Saturday 7 March 2026, 22:00 EST; clocks go forward at 02:00: the weekend morning
    # ends at 10:00 EDT, which is 14:00 UTC (not 15:00).
    with freeze_time("2026-03-08T03:00:00Z"):
        body = post(client, ctx, "+12025550100")
    assert (body["status"], body["send_at"]) == ("scheduled", "2026-03-08T14:00:00Z")
    # Saturday 31 October 2026 21:00 EDT; clocks go back at 02:00 on 1 November: Sunday
    # 10:00 EST is 15:00 UTC.
    with freeze_time("2026-11-01T01:00:00Z"):
        body = post(client, ctx, "+12025550100")
    assert (body["status"], body["send_at"]) == ("scheduled", "2026-11-01T15:00:00Z")
    # Friday 19:30 EDT: weekdays start at 21:00, so it goes now.
    with freeze_time("2026-06-05T23:30:00Z"):
        assert post(client, ctx, "+12025550100")["status"] == "queued"
