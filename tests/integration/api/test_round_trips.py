"""Database and Redis round trips per request and per task on the hot paths, held to a budget.

Each statement, COMMIT and ROLLBACK the engine sends is one round trip; so is each
command (or pipeline) sent to Redis, the broker's publishes included. Only the
request's own thread is counted: what the outbox's threads do afterwards is not
waited for. The counts are printed (``pytest -s``) so that they can be compared
across changes; the budgets fail a change that quietly adds a query to a path run
per message.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select, update

from app import create_app
from app.infra.db import STATEMENT_LISTENERS, Database
from app.infra.ratelimit import RateLimiter
from app.messaging.dispatch import batch as dispatch
from app.messaging.receipts.drain import process_inbox_item
from app.models import InboxItem, Message
from app.providers.signing import sign_headers
from config import Settings
from tests.factories import TenantCtx, make_tenant_ctx

# Network round trips to Postgres; SQLite is in-process (and adds its own BEGIN IMMEDIATE).
pytestmark = [pytest.mark.usefixtures("backend"), pytest.mark.postgres]


@dataclass
class Counter:
    statements: list[str] = field(default_factory=list)
    begins: int = 0
    commits: int = 0
    rollbacks: int = 0
    redis: int = 0

    @property
    def round_trips(self) -> int:
        return len(self.statements) + self.begins + self.commits + self.rollbacks


def _in_transaction(conn: Any) -> bool:
    """Whether psycopg2 has a transaction open on the connection (its BEGIN was sent)."""
    import psycopg2.extensions

    status = conn.connection.dbapi_connection.get_transaction_status()
    return bool(status != psycopg2.extensions.TRANSACTION_STATUS_IDLE)


@contextmanager
def counting(db: Database) -> Iterator[Counter]:
    """Every round trip this thread makes: statements (through SQLAlchemy, and the hot paths'
    ``execute_at_once``), the BEGIN psycopg2 sends before a transaction's first statement,
    COMMITs, and the ROLLBACKs that end an open transaction (one with nothing open, or on
    an autocommit connection, sends nothing)."""
    counter = Counter()
    engine = db.engine
    # Only this thread's: the outbox's batch delete runs on a thread of its own, now and then.
    me = threading.get_ident()

    def on_statement(statement: str, _params: Any = None) -> None:
        # A PREPARE is paid once per pooled connection, not per request (which connection
        # the pool hands out varies): the budgets count what every request pays.
        if threading.get_ident() == me and not statement.lstrip().startswith("PREPARE "):
            counter.statements.append(" ".join(statement.split())[:90])

    def on_execute(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.get_ident() == me:
            if not conn.connection.dbapi_connection.autocommit and not _in_transaction(conn):
                counter.begins += 1
            on_statement(statement)

    def on_commit(_conn: Any) -> None:
        counter.commits += threading.get_ident() == me

    def on_rollback(conn: Any) -> None:
        if threading.get_ident() == me and _in_transaction(conn):
            counter.rollbacks += 1

    from redis.connection import AbstractConnection

    send_packed = AbstractConnection.send_packed_command

    on_connect = AbstractConnection.on_connect_check_health
    handshaking = threading.local()

    def on_redis(connection: Any, *args: Any, **kwargs: Any) -> Any:
        # A command, or a whole pipeline; not a new connection's handshake (HELLO, SELECT,
        # CLIENT SETINFO), which a connection pays once, whenever the pool must open one.
        if not getattr(handshaking, "on", False):
            counter.redis += threading.get_ident() == me
        return send_packed(connection, *args, **kwargs)

    def connecting(connection: Any, *args: Any, **kwargs: Any) -> Any:
        handshaking.on = True
        try:
            return on_connect(connection, *args, **kwargs)
        finally:
            handshaking.on = False

    AbstractConnection.send_packed_command = on_redis  # type: ignore[method-assign]
    AbstractConnection.on_connect_check_health = connecting  # type: ignore[method-assign]
    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    event.listen(engine, "rollback", on_rollback)
    STATEMENT_LISTENERS.append(on_statement)
    try:
        yield counter
    finally:
        AbstractConnection.send_packed_command = send_packed  # type: ignore[method-assign]
        AbstractConnection.on_connect_check_health = on_connect  # type: ignore[method-assign]
        STATEMENT_LISTENERS.remove(on_statement)
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)
        event.remove(engine, "rollback", on_rollback)


def measure(
    db: Database,
    name: str,
    budget: int,
    action: Callable[[], object],
    redis_budget: int | None = None,
) -> Counter:
    with counting(db) as counter:
        action()
    lines = "\n    ".join(counter.statements)
    print(
        f"\n{name}: {counter.round_trips} round trips "
        f"({len(counter.statements)} statements, {counter.begins} begins, "
        f"{counter.commits} commits, {counter.rollbacks} rollbacks), "
        f"{counter.redis} to Redis\n    {lines}"
    )
    assert counter.round_trips <= budget, f"{name}: {counter.round_trips} > budget {budget}"
    if redis_budget is not None:
        assert counter.redis <= redis_budget, f"{name}: {counter.redis} Redis > {redis_budget}"
    return counter


def send(client: FlaskClient, ctx: TenantCtx, n: int) -> str:
    r = client.post(
        "/v1/messages", json={"to": f"+1202555{n:04d}", "body": "hi"}, headers=ctx.headers
    )
    assert r.status_code == 202, r.get_json()
    return str(r.get_json()["id"])


def status_body(provider_id: str, event_id: str) -> str:
    return json.dumps(
        {
            "schemaVersion": 1,
            "channel": "sms",
            "timestamp": datetime.now(UTC).isoformat(),
            "eventId": event_id,
            "direction": "status",
            "status": "delivered",
            "providerMessageId": provider_id,
            "recipient": {"phone": "+12025550100"},
        }
    )


@pytest.fixture
def cached_app(settings: Settings) -> Iterator[Flask]:
    """The app as production runs it: API keys and webhook accounts cached per process."""
    app = create_app(
        {
            "settings": dataclasses.replace(
                settings, auth_cache_seconds=60, account_cache_seconds=60
            ),
            "TESTING": True,
        }
    )
    yield app
    app.extensions["switchboard.db"].engine.dispose()


def test_send_intent_round_trips(cached_app: Flask) -> None:
    """One statement, in autocommit: no BEGIN, no COMMIT (app.messaging.intake.statement)."""
    client = cached_app.test_client()
    db: Database = cached_app.extensions["switchboard.db"]
    ctx = make_tenant_ctx(db)
    send(client, ctx, 101)  # warm: the first request fills the key cache
    # Redis: the tenant's API rate only; the wake is published off the request's thread.
    for name in ("new contact", "known contact"):
        measure(db, f"POST /v1/messages ({name})", 1, lambda: send(client, ctx, 102), 1)

    def replay() -> None:
        headers = {**ctx.headers, "Idempotency-Key": "rt-replay"}
        body = {"to": "+12025550103", "body": "hi"}
        assert client.post("/v1/messages", json=body, headers=headers).status_code in (200, 202)

    replay()
    # A replay finds the key taken: nothing written, and the general path answers it.
    measure(db, "POST /v1/messages (replay, general path)", 4, replay)

    from app.content import store

    with db.session() as s:
        store.create(
            s,
            ctx.tenant_id,
            {
                "name": "rt",
                "variables": {"n": {"type": "number"}, "u": {"type": "url"}},
                "default_locale": "en",
                "locales": {"en": {"sms": "Number ((n)): ((u))"}},
            },
            "test",
        )

    def from_template() -> None:
        body = {"to": "+12025550104", "template": "rt", "variables": {"n": 1, "u": "https://x.io"}}
        assert client.post("/v1/messages", json=body, headers=ctx.headers).status_code == 202

    # Warm: the version is parsed once per process, and the lookup prepared once per pooled
    # connection (the pool hands them out in turn, so warm each one it holds).
    for _ in range(db.engine.pool.checkedin() + 1):  # type: ignore[attr-defined]
        from_template()
    # The template's current version (and the contact's locale), then the same one statement.
    measure(db, "POST /v1/messages (from a template)", 2, from_template)


def test_webhook_and_receipt_round_trips(cached_app: Flask) -> None:
    client = cached_app.test_client()
    db: Database = cached_app.extensions["switchboard.db"]
    ctx = make_tenant_ctx(db, provider="standard")
    message_id = send(client, ctx, 103)
    with db.session() as s:
        s.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(status="accepted", provider_message_id="prov-rt-1")
        )

    def post(event_id: str) -> None:
        body = status_body("prov-rt-1", event_id)
        r = client.post(
            f"/webhooks/standard/{ctx.account_id}",
            data=body,
            headers={
                **sign_headers(ctx.secret, event_id, body),
                "Content-Type": "application/json",
            },
        )
        assert r.status_code in (200, 202), r.get_data(as_text=True)

    post("wh-rt-warm")
    # Verify (the account cached), store the inbox and outbox rows: one statement, and
    # nothing to Redis (the outbox row is published off the request's thread).
    measure(db, "POST /webhooks/standard/{id}", 1, lambda: post("wh-rt-1"), 0)
    with db.session() as s:
        item_id = s.scalar(
            select(InboxItem.id).where(
                InboxItem.account_id == ctx.account_id, InboxItem.dedupe_key == "wh-rt-1"
            )
        )
    assert item_id is not None
    settings: Settings = client.application.extensions["switchboard.settings"]

    def apply() -> None:
        with db.session() as s:
            process_inbox_item(s, settings, item_id)

    measure(db, "process_inbox_item (delivered receipt)", 10, apply)
    with db.session() as s:
        assert s.get(Message, message_id).status == "delivered"  # type: ignore[union-attr]


def test_dispatch_round_trips(client: FlaskClient, db: Database) -> None:
    ctx = make_tenant_ctx(db)
    message_id = send(client, ctx, 100)  # sandbox: accepted
    settings: Settings = client.application.extensions["switchboard.settings"]
    limiter: RateLimiter = client.application.extensions["switchboard.limiter"]
    measure(
        db,
        "dispatch_message (sandbox)",
        16,
        lambda: dispatch.dispatch_message(db, settings, message_id, limiter),
    )
    with db.session() as s:
        assert s.get(Message, message_id).status == "accepted"  # type: ignore[union-attr]


def test_batch_round_trips_per_message(client: FlaskClient, db: Database) -> None:
    """The batch paths: a fixed number of round trips per batch, whatever its size."""
    from app.messaging.receipts.drain import drain_inbox

    with db.session() as s:  # other tests leave queued messages behind: settle the lane
        s.execute(
            update(Message)
            .where(Message.status == "queued", Message.priority == "urgent")
            .values(status="canceled", status_reason="canceled_by_api")
        )
    ctx = make_tenant_ctx(db)  # sandbox: sends in-process, and owes its receipts' task
    settings: Settings = client.application.extensions["switchboard.settings"]
    limiter: RateLimiter = client.application.extensions["switchboard.limiter"]
    ids = []
    for n in range(50):
        r = client.post(
            "/v1/messages",
            json={"to": f"+1202556{n:03d}7", "body": "hi", "priority": "urgent"},
            headers=ctx.headers,
        )
        ids.append(r.get_json()["id"])
    counter = measure(
        db,
        "drain_lane (a batch of 50)",
        18,
        lambda: dispatch.drain_lane(db, settings, limiter, "urgent"),
    )
    print(f"  {counter.round_trips / 50:.2f} round trips per message (one at a time: 16)")
    with db.session() as s:
        sent = {m.id: m for m in s.scalars(select(Message).where(Message.id.in_(ids)))}
    assert {m.status for m in sent.values()} == {"accepted"}
    big = dataclasses.replace(settings, receipt_batch_size=500)
    with db.session() as s:  # other tests leave unprocessed rows behind, some due later (an
        s.execute(  # orphan's backoff): set them aside so that only this batch is measured
            update(InboxItem)
            .where(InboxItem.processed_at.is_(None))
            .values(processed_at=datetime.now(UTC), result="ignored", next_attempt_at=None)
        )
    for n, message_id in enumerate(ids):
        body = json.dumps(
            {
                "schemaVersion": 1,
                "channel": "sms",
                "timestamp": datetime.now(UTC).isoformat(),
                "eventId": f"batch-rt-{n}",
                "direction": "status",
                "status": "delivered",
                "providerMessageId": sent[message_id].provider_message_id,
                "recipient": {"phone": "+12025550100"},
            }
        )
        r = client.post(
            f"/webhooks/sandbox/{ctx.account_id}",
            data=body,
            headers={
                **sign_headers(ctx.secret, f"batch-rt-{n}", body),
                "Content-Type": "application/json",
            },
        )
        assert r.status_code == 202
    counter = measure(db, "drain_inbox (50 receipts)", 10, lambda: drain_inbox(db, big))
    print(f"  {counter.round_trips / 50:.2f} round trips per receipt (one at a time: 9)")
    with db.session() as s:
        assert {s.get(Message, i).status for i in ids} == {"delivered"}  # type: ignore[union-attr]
