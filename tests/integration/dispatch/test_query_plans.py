"""The queries run per message and per beat tick use indexes, on a database with history.

A database of its own is migrated and seeded (scripts/bench/lib/seed.py) with enough
messages, events and inbox rows that the planner cares. The hot paths run
against it for real: intake, a webhook, a receipt, dispatch, reading a message,
and every beat job; each statement they send is captured and EXPLAINed with
its own parameters. A sequential scan of ``messages``, ``message_events``,
``webhook_inbox`` or ``outbox`` fails the test:

- as planned on the seeded tables (the plan production would get as data grows);
- and with ``enable_seqscan`` off, which leaves a sequential scan only where no
  index can serve the query at all (the outbox is near empty in life, so its
  plain plan is rightly a scan; this asks whether an index is there for a backlog).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import event, text, update

from app import create_app
from app.crm.connections import connect
from app.crm.owed import sweep_missing
from app.crm.syncs import redrive_due, stuck_syncs
from app.infra.db import STATEMENT_LISTENERS, Database
from app.infra.outbox import relay
from app.messaging.dispatch import batch as dispatch
from app.messaging.dispatch.scheduler import expire_overdue, release_due, unannounced_work
from app.messaging.receipts.drain import drain_inbox, process_inbox_item
from app.messaging.receipts.inbox import purge_processed, redrive_deferred
from app.messaging.recovery.reconcile import reconcile
from app.messaging.recovery.stuck import Window, stuck_report
from app.models import CrmConnection, InboxItem, Message
from app.providers.signing import generate_secret, sign_headers
from app.reports import analytics, lists
from app.reports.analytics import rollup
from app.reports.overview import overview
from config import Settings
from scripts.bench.lib.seed import seed_history
from tests.factories import add_api_key, make_tenant_ctx
from tests.support.backends import ADMIN_PG_URL, Backend, _migrate

pytestmark = pytest.mark.postgres

SEEDED = 50_000
WATCHED = ("messages", "message_events", "webhook_inbox", "outbox")
BIG = WATCHED[:3]  # the outbox is near empty in life: a scan of it is the right plan
SEQ_SCAN = re.compile(r"Seq Scan on (\w+)")


@pytest.fixture(scope="module")
def seeded_app(backend: Backend, settings: Settings) -> Iterator[Flask]:
    import psycopg2

    if backend.kind != "postgres":
        pytest.skip("query plans are Postgres's")
    name = f"switchboard_plans_{secrets.token_hex(4)}"
    admin = psycopg2.connect(ADMIN_PG_URL)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = urlsplit(ADMIN_PG_URL)._replace(path=f"/{name}").geturl()
    url = url.replace("postgresql://", "postgresql+psycopg2://", 1)
    try:
        _migrate(url)
        app = create_app({"settings": replace(settings, database_url=url), "TESTING": True})
        yield app
        app.extensions["switchboard.db"].engine.dispose()
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


class Captured:
    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []

    def __call__(
        self, _c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, many: bool
    ) -> None:
        if not many and statement.lstrip().upper().startswith(
            ("SELECT", "UPDATE", "DELETE", "WITH")
        ):
            self.statements.append((statement, params))

    def at_once(self, statement: str, params: Any) -> None:
        """The hot paths' one-statement requests (``execute_at_once``), as written."""
        if params is not None:
            self.statements.append((statement, params))


def run_hot_paths(app: Flask, db: Database) -> list[tuple[str, Any]]:
    """Seed, then run every hot path; the statements they sent, with their parameters."""
    settings: Settings = app.extensions["switchboard.settings"]
    limiter = app.extensions["switchboard.limiter"]
    client = app.test_client()
    ctx = make_tenant_ctx(db, provider="standard")
    admin_key = add_api_key(db, ctx.tenant_id, ("messages:write", "messages:read", "admin"))
    headers = {"Authorization": f"Bearer {admin_key}"}
    with db.session() as s:
        connect(
            s,
            ctx.tenant_id,
            "webhook",
            {"url": "http://127.0.0.1:9/crm", "secret": generate_secret()},
        )
    seed_history(
        db.engine,
        tenant_id=ctx.tenant_id,
        account_id=ctx.account_id,
        messages=SEEDED,
        contacts=2_000,
        batch=25_000,
        progress=lambda _line: None,
    )
    capture = Captured()
    event.listen(db.engine, "before_cursor_execute", capture)
    STATEMENT_LISTENERS.append(capture.at_once)
    try:
        r = client.post("/v1/messages", json={"to": "+12025550100", "body": "hi"}, headers=headers)
        assert r.status_code == 202, r.get_json()
        message_id = r.get_json()["id"]
        keyed = {**headers, "Idempotency-Key": "plans-1"}
        for _ in range(2):  # the second is a replay: the idempotency lookup
            client.post("/v1/messages", json={"to": "+12025550101", "body": "x"}, headers=keyed)
        assert client.get(f"/v1/messages/{message_id}", headers=headers).status_code == 200
        assert client.get("/v1/messages?status=queued", headers=headers).status_code == 200
        assert client.get("/v1/admin/stuck", headers=headers).status_code == 200
        dispatch.dispatch_message(db, settings, message_id, limiter)
        # The batch paths: a lane drained with the fair claim, the inbox drained, beat's sweep.
        r = client.post("/v1/messages", json={"to": "+12025550102", "body": "hi"}, headers=headers)
        assert r.status_code == 202, r.get_json()
        dispatch.drain_lane(db, settings, limiter, "normal")
        dispatch.dispatch_batch(db, settings, limiter, lane="normal", fifo=True)
        unannounced_work(db)
        with db.session() as s:
            s.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(status="accepted", provider_message_id="prov-plans-1")
            )
        body = json.dumps(
            {
                "schemaVersion": 1,
                "channel": "sms",
                "timestamp": datetime.now(UTC).isoformat(),
                "eventId": "plans-evt-1",
                "direction": "status",
                "status": "delivered",
                "providerMessageId": "prov-plans-1",
                "recipient": {"phone": "+12025550100"},
            }
        )
        r = client.post(
            f"/webhooks/standard/{ctx.account_id}",
            data=body,
            headers={
                **sign_headers(ctx.secret, "plans-wh-1", body),
                "Content-Type": "application/json",
            },
        )
        assert r.status_code in (200, 202)
        with db.session() as s:
            item_id = (
                s.query(InboxItem.id)
                .filter(
                    InboxItem.account_id == ctx.account_id, InboxItem.dedupe_key == "plans-wh-1"
                )
                .scalar()
            )
        with db.session() as s:
            process_inbox_item(s, settings, item_id)
        drain_inbox(db, settings)
        relay(app.extensions["celery"], db, timedelta(seconds=0))
        release_due(db)
        expire_overdue(db)
        redrive_deferred(db, timedelta(minutes=10))
        purge_processed(db, timedelta(hours=96))
        reconcile(db, settings.stuck_sla)
        redrive_due(db)
        with db.session() as s:
            stuck_report(s, Window(settings.stuck_sla))
            stuck_syncs(s, timedelta(minutes=10))
            # The console's overview and lists, and analytics (its rollup, then its query).
            overview(s, Window(settings.stuck_sla), limiter)
            overview(s, Window(settings.stuck_sla), limiter, tenant_id=ctx.tenant_id)
            lists.held_messages(s, tenant_id=ctx.tenant_id)
            lists.dead_syncs(s)
            lists.parked_receipts(s)
            rollup(s, hours=2)
            analytics.query(
                s,
                tenant_id=ctx.tenant_id,
                start=datetime.now(UTC) - timedelta(days=7),
                end=datetime.now(UTC),
            )
            for connection in s.query(CrmConnection).all():
                sweep_missing(s, connection, datetime.now(UTC) - timedelta(days=1))
    finally:
        STATEMENT_LISTENERS.remove(capture.at_once)
        event.remove(db.engine, "before_cursor_execute", capture)
    return capture.statements


def plans(db: Database, statements: list[tuple[str, Any]], forced: bool) -> dict[str, list[str]]:
    """Each distinct statement's sequential scans of the watched tables."""
    found: dict[str, list[str]] = {}
    with db.engine.connect() as conn:
        if forced:
            conn.exec_driver_sql("SET enable_seqscan = off")
        for statement, params in statements:
            if statement in found:
                continue
            rows = conn.exec_driver_sql("EXPLAIN " + statement, params).all()
            plan = "\n".join(row[0] for row in rows)
            watched = WATCHED if forced else BIG
            found[statement] = [t for t in SEQ_SCAN.findall(plan) if t in watched]
        conn.rollback()
    return found


@pytest.fixture(scope="module")
def captured(seeded_app: Flask) -> list[tuple[str, Any]]:
    db: Database = seeded_app.extensions["switchboard.db"]
    return run_hot_paths(seeded_app, db)


def test_the_hot_paths_were_captured(captured: list[tuple[str, Any]]) -> None:
    text_of = " ".join(s for s, _ in captured)
    for table in WATCHED:
        assert f"FROM {table}" in text_of or f"UPDATE {table}" in text_of, table
    # The one-statement intake and webhook store (app.messaging.intake.statement, inbox).
    assert "INSERT INTO messages" in text_of and "INSERT INTO webhook_inbox" in text_of
    assert len(captured) > 40


@pytest.mark.parametrize("forced", [False, True], ids=["as-planned", "seqscan-off"])
def test_no_sequential_scan_of_the_big_tables(
    seeded_app: Flask, captured: list[tuple[str, Any]], forced: bool
) -> None:
    db: Database = seeded_app.extensions["switchboard.db"]
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM messages")).scalar_one() >= SEEDED
    scans = {s: t for s, t in plans(db, captured, forced).items() if t}
    report = "\n\n".join(f"{tables}: {s[:1500]}" for s, tables in scans.items())
    assert not scans, f"sequential scans:\n{report}"
