"""/metrics: the token, Prometheus's own parser, counters that move with the work, and
gauges that match the database; a database outage shows as switchboard_gauges_up 0."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from app import create_app
from app.infra.db import Database
from app.models import CrmSync, InboxItem, Message
from config import Settings
from tests.factories import TenantCtx

TOKEN = "metrics-token-for-the-tests"


@pytest.fixture(scope="module")
def metrics_app(settings: Settings) -> Flask:
    return create_app(
        {
            "settings": dataclasses.replace(
                settings, metrics_token=TOKEN, metrics_cache_seconds=0.0
            ),
            "TESTING": True,
        }
    )


def scrape(app: Flask) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    r = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    assert r.mimetype == "text/plain"
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(r.get_data(as_text=True)):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(
    found: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str
) -> float:
    return found.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def test_metrics_need_the_token(metrics_app: Flask, app: Flask) -> None:
    client = metrics_app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert app.test_client().get("/metrics").status_code == 404  # no METRICS_TOKEN: off


def test_counters_move_with_intents_and_transitions(
    metrics_app: Flask, client: FlaskClient, ctx: TenantCtx
) -> None:
    before = scrape(metrics_app)
    r = client.post("/v1/messages", json={"to": "+12025550110", "body": "hi"}, headers=ctx.headers)
    assert r.status_code == 202
    r = client.post("/v1/messages", json={"to": "nope", "body": "hi"}, headers=ctx.headers)
    assert r.status_code == 422
    after = scrape(metrics_app)
    assert (
        value(after, "switchboard_intents_total", result="accepted")
        == value(before, "switchboard_intents_total", result="accepted") + 1
    )
    assert (
        value(after, "switchboard_intents_total", result="invalid")
        == value(before, "switchboard_intents_total", result="invalid") + 1
    )
    created = value(after, "switchboard_transitions_total", status="pending", reason="created")
    assert (
        created
        >= value(before, "switchboard_transitions_total", status="pending", reason="created") + 1
    )


def test_gauges_match_the_database(
    metrics_app: Flask, client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    from app.crm.connections import connect
    from app.providers.signing import generate_secret

    with db.session() as s:
        connection_id = connect(
            s,
            ctx.tenant_id,
            "webhook",
            {"url": "http://127.0.0.1:9/crm", "secret": generate_secret()},
        ).id
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    for n in range(3):
        r = client.post(
            "/v1/messages",
            json={"to": f"+1202555012{n}", "body": "later", "send_at": later},
            headers=ctx.headers,
        )
        assert r.status_code == 202
    found = scrape(metrics_app)
    assert value(found, "switchboard_gauges_up") == 1
    with db.session() as s:
        held = dict(
            s.execute(
                select(func.coalesce(Message.status_reason, "send_at"), func.count())
                .where(Message.status == "scheduled")
                .group_by(func.coalesce(Message.status_reason, "send_at"))
            ).all()
        )
        queued = dict(
            s.execute(
                select(Message.priority, func.count())
                .where(Message.status == "queued")
                .group_by(Message.priority)
            ).all()
        )
        in_flight = dict(
            s.execute(
                select(Message.priority, func.count())
                .where(Message.status == "dispatched")
                .group_by(Message.priority)
            ).all()
        )
        oldest = dict(
            s.execute(
                select(Message.priority, func.min(Message.updated_at))
                .where(Message.status == "queued")
                .group_by(Message.priority)
            ).all()
        )
        parked = s.scalar(
            select(func.count()).where(
                InboxItem.processed_at.is_(None), InboxItem.result == "parked"
            )
        )
        backlog = dict(
            s.execute(
                select(CrmSync.connection_id, func.count())
                .where(CrmSync.status.in_(("pending", "running")))
                .group_by(CrmSync.connection_id)
            ).all()
        )
    assert held.get("send_at", 0) >= 3
    for reason, count in held.items():
        assert value(found, "switchboard_held_messages", reason=reason) == count
    for lane in ("urgent", "normal", "bulk"):
        assert value(found, "switchboard_queued_messages", lane=lane) == queued.get(lane, 0)
        assert value(found, "switchboard_in_flight_messages", lane=lane) == in_flight.get(lane, 0)
        age = value(found, "switchboard_oldest_queued_seconds", lane=lane)
        if lane in oldest:
            expected = (datetime.now(UTC) - oldest[lane]).total_seconds()
            assert abs(age - expected) < 5
        else:
            assert age == 0
    assert value(found, "switchboard_receipts_parked") == parked
    reported = {dict(k)["connection_id"]: v for k, v in found["switchboard_crm_backlog"].items()}
    assert connection_id in reported
    for connection, count in reported.items():
        assert count == backlog.get(connection, 0)


def test_the_stuck_gauge_counts_what_the_report_counts(
    metrics_app: Flask, client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    before = value(scrape(metrics_app), "switchboard_stuck_messages", status="queued")
    r = client.post(
        "/v1/messages",
        json={
            "to": "+12025550130",
            "body": "x",
            "send_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
        headers=ctx.headers,
    )
    with db.session() as s:
        s.execute(
            update(Message)
            .where(Message.id == r.get_json()["id"])
            .values(status="queued", updated_at=datetime.now(UTC) - timedelta(hours=1))
        )
    assert value(scrape(metrics_app), "switchboard_stuck_messages", status="queued") == before + 1


def test_a_database_outage_shows_as_gauges_down(settings: Settings) -> None:
    down = dataclasses.replace(
        settings,
        database_url=settings.database_url.replace("127.0.0.1:5432", "127.0.0.1:9")
        if "127.0.0.1:5432" in settings.database_url
        else "sqlite:////nonexistent-dir/none.db",
        metrics_token=TOKEN,
    )
    app = create_app({"settings": down, "TESTING": True})
    found = scrape(app)
    assert value(found, "switchboard_gauges_up") == 0  # and the counters still answer (200)
