"""Delivery analytics: the hourly rollup, GET /v1/analytics, the CLI, and users from the CLI."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.domain.statuses import Status
from app.infra.db import Database
from app.messaging.states import apply_transition, record_note
from app.models import ConsoleUser, DeliveryRollup, Message
from app.reports.analytics import rollup
from tests.factories import TenantCtx
from tests.support.backends import Backend
from tests.support.cli import ROOT, SWITCHBOARD, run, run_json


def send(client: FlaskClient, ctx: TenantCtx, to: str) -> str:
    r = client.post("/v1/messages", json={"to": to, "body": "x"}, headers=ctx.headers)
    assert r.status_code == 202, r.get_json()
    return str(r.get_json()["id"])


def walk(db: Database, message_id: str, *steps: tuple[Status, str | None]) -> None:
    with db.session() as s:
        message = s.get(Message, message_id)
        assert message is not None
        if message.status == "queued":
            apply_transition(s, message, Status.DISPATCHED, source="test")
        for status, reason in steps:
            apply_transition(s, message, status, source="test", reason=reason)


@pytest.fixture
def traffic(client: FlaskClient, ctx: TenantCtx, db: Database) -> TenantCtx:
    """Three delivered, one failed (invalid number), one undelivered, and an opt-out note."""
    for n in range(3):
        walk(
            db,
            send(client, ctx, f"+120255502{n}0"),
            (Status.ACCEPTED, None),
            (Status.DELIVERED, None),
        )
    walk(db, send(client, ctx, "+12025550240"), (Status.FAILED, "invalid_number"))
    walk(
        db,
        send(client, ctx, "+12025550250"),
        (Status.ACCEPTED, None),
        (Status.UNDELIVERED, "carrier_filtered"),
    )
    replied = send(client, ctx, "+12025550260")
    with db.session() as s:
        message = s.get(Message, replied)
        assert message is not None
        record_note(s, message, "opted_out", source="test")
    return ctx


def test_the_rollup_counts_an_hour(db: Database, traffic: TenantCtx, client: FlaskClient) -> None:
    with db.session() as s:
        rollup(s, hours=1)
    with db.session() as s:
        rows = list(
            s.scalars(select(DeliveryRollup).where(DeliveryRollup.tenant_id == traffic.tenant_id))
        )
    assert len(rows) == 1  # one account, one channel, one hour
    counts = rows[0].counts
    assert counts["sent"] == 4  # dispatched -> accepted, or straight to failed (not sent)
    assert counts["delivered"] == 3 and counts["failed"] == 1 and counts["undelivered"] == 1
    assert counts["reasons"] == {
        "failed": {"invalid_number": 1},
        "undelivered": {"carrier_filtered": 1},
    }
    assert counts["opt_outs"] == 1
    assert sum(rows[0].latencies) == 3
    with db.session() as s:  # idempotent: recomputed whole
        rollup(s, hours=1)
    with db.session() as s:
        again = list(
            s.scalars(select(DeliveryRollup).where(DeliveryRollup.tenant_id == traffic.tenant_id))
        )
    assert [r.counts for r in again] == [counts]


def test_the_api_serves_the_figures(db: Database, traffic: TenantCtx, client: FlaskClient) -> None:
    with db.session() as s:
        rollup(s, hours=1)
    r = client.get("/v1/analytics?bucket=hour&by=channel", headers=traffic.headers)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["tenant_id"] == traffic.tenant_id and len(body["rows"]) == 1
    row = body["rows"][0]
    assert row["channel"] == "sms" and row["delivered"] == 3 and row["failed"] == 1
    p50 = row["time_to_delivered"]["p50_seconds"]
    assert p50 is not None and 0 <= p50 <= 5
    r = client.get("/v1/analytics?bucket=day", headers=traffic.headers)
    assert r.get_json()["rows"][0]["period"].endswith("T00:00:00+00:00")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("bucket=week", "bucket"),
        ("by=color", "by"),
        ("by=channel,channel", "by"),
        ("start=yesterday", "start"),
        ("channel=fax", "channel"),
        ("start=2026-01-01T00:00:00Z&end=2025-01-01T00:00:00Z", "start"),
        ("start=2020-01-01T00:00:00Z&end=2026-01-01T00:00:00Z", "start"),
    ],
)
def test_bad_parameters_get_422_by_field(
    client: FlaskClient, ctx: TenantCtx, query: str, field: str
) -> None:
    r = client.get(f"/v1/analytics?{query}", headers=ctx.headers)
    assert r.status_code == 422
    assert r.get_json()["errors"][0]["field"] == field


def test_another_tenant_sees_none_of_it(
    db: Database, traffic: TenantCtx, other_ctx: TenantCtx, client: FlaskClient
) -> None:
    with db.session() as s:
        rollup(s, hours=1)
    r = client.get("/v1/analytics?bucket=hour", headers=other_ctx.headers)
    assert r.status_code == 200 and r.get_json()["rows"] == []


def test_the_cli_rolls_up_and_prints(backend: Backend, traffic: TenantCtx) -> None:
    done = run_json(backend, "analytics rollup --hours 2")
    assert done["hours"] == 2 and done["rows"] >= 1
    figures = run_json(backend, f"analytics --tenant {traffic.tenant_id} --bucket hour --days 1")
    assert figures["rows"][0]["delivered"] == 3
    text = run(backend, "analytics", "--tenant", traffic.tenant_id).stdout
    assert "deliv" in text and " 3 " in text


def create_user_cli(
    backend: Backend, *args: str, password: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SWITCHBOARD), "console-users", "create", *args, "--password-stdin", "--json"],
        cwd=ROOT,
        env=backend.process_env(),
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_console_users_from_the_cli(backend: Backend, db: Database) -> None:
    name = f"ops-{datetime.now(UTC).strftime('%H%M%S%f')}"
    made = create_user_cli(backend, name, "--role", "operator", password="a long enough password")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["role"] == "operator"
    with db.session() as s:
        user = s.scalar(select(ConsoleUser).where(ConsoleUser.username == name))
        assert user is not None and user.password_hash.startswith("$argon2id$")
    short = create_user_cli(backend, name + "x", "--role", "viewer", password="short")
    assert short.returncode != 0 and "12 characters" in short.stderr
    dup = create_user_cli(backend, name, "--role", "viewer", password="a long enough password")
    assert dup.returncode != 0 and "exists" in dup.stderr
    assert run_json(backend, f"console-users disable {name}")["disabled"] is True
    listed = run_json(backend, "console-users list")["users"]
    assert {"username": name, "role": "operator", "disabled": True, "last_login_at": None} in listed


def test_the_database_down_gives_503(app: object, ctx: TenantCtx) -> None:
    import dataclasses

    from flask import Flask

    from app import create_app

    assert isinstance(app, Flask)
    settings = app.extensions["switchboard.settings"]
    url = settings.database_url
    down_url = (
        url.replace("127.0.0.1:5432", "127.0.0.1:9")
        if "127.0.0.1:5432" in url
        else "sqlite:////nonexistent-dir/none.db"
    )
    down = create_app(
        {
            "settings": dataclasses.replace(settings, database_url=down_url, auth_cache_seconds=0),
            "TESTING": True,
        }
    )
    r = down.test_client().get("/v1/analytics", headers=ctx.headers)
    assert r.status_code == 503 and r.get_json()["reason"] == "database_unavailable"
