"""The database or the broker going down at intake: clear answers, nothing lost or half-written."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from app import create_app
from app.infra.db import Database
from app.infra.outbox import relay
from app.models import Contact, InboxItem, Message, OutboxRow
from config import Settings
from tests.factories import TenantCtx
from tests.support.tcp_proxy import TcpProxy, proxy_for, via

pytestmark = pytest.mark.postgres


@pytest.fixture
def db_proxy(settings: Settings) -> Iterator[TcpProxy]:
    """A proxy in front of Postgres that the test can cut."""
    proxy = proxy_for(settings.database_url)
    yield proxy
    proxy.stop()


@pytest.fixture
def app_via_db_proxy(settings: Settings, db_proxy: TcpProxy) -> Flask:
    """An app whose database connections go through the proxy."""
    return create_app(
        {"settings": replace(settings, database_url=via(settings.database_url, db_proxy))}
    )


@pytest.fixture
def broker_proxy(settings: Settings) -> Iterator[TcpProxy]:
    """A proxy in front of the Redis broker that the test can cut."""
    proxy = proxy_for(settings.broker_url)
    yield proxy
    proxy.stop()


@pytest.fixture
def app_via_broker_proxy(settings: Settings, broker_proxy: TcpProxy) -> Flask:
    """An app that publishes tasks through the proxy."""
    return create_app(
        {"settings": replace(settings, broker_url=via(settings.broker_url, broker_proxy))}
    )


def test_database_down_at_intake_is_503_and_nothing_written(
    app_via_db_proxy: Flask, db_proxy: TcpProxy, ctx: TenantCtx, db: Database
) -> None:
    client = app_via_db_proxy.test_client()
    assert client.get("/readyz").status_code == 200
    db_proxy.stop()
    started = time.monotonic()
    r = client.post(
        "/v1/messages",
        json={"to": "+12025550123", "body": "x"},
        headers={**ctx.headers, "Idempotency-Key": "down-1"},
    )
    assert time.monotonic() - started < 10
    assert r.status_code == 503 and r.mimetype == "application/problem+json"
    assert r.get_json()["reason"] == "database_unavailable" and r.headers["Retry-After"]
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["checks"]["database"].startswith(
        "unavailable"
    )
    db_proxy.start()
    with db.session() as s:
        assert (
            s.scalar(
                select(func.count()).select_from(Message).where(Message.tenant_id == ctx.tenant_id)
            )
            == 0
        )
        assert (
            s.scalar(
                select(func.count()).select_from(Contact).where(Contact.tenant_id == ctx.tenant_id)
            )
            == 0
        )
    again = client.post(
        "/v1/messages",
        json={"to": "+12025550123", "body": "x"},
        headers={**ctx.headers, "Idempotency-Key": "down-1"},
    )
    assert again.status_code == 202


def test_database_down_at_webhook_is_503_so_the_provider_retries(
    app_via_db_proxy: Flask, db_proxy: TcpProxy, ctx: TenantCtx, db: Database
) -> None:
    from app.providers.signing import sign_headers

    client = app_via_db_proxy.test_client()
    body = (
        '{"eventId":"e","schemaVersion":1,"channel":"sms","direction":"status","status":"sent",'
        '"providerMessageId":"P","timestamp":"2026-01-01T00:00:00Z"}'
    )
    db_proxy.stop()
    r = client.post(
        f"/webhooks/sandbox/{ctx.account_id}",
        data=body,
        headers=sign_headers(ctx.secret, "w-down", body),
    )
    assert r.status_code == 503
    db_proxy.start()
    with db.session() as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(InboxItem)
                .where(InboxItem.account_id == ctx.account_id)
            )
            == 0
        )


def test_broker_down_at_intake_still_202_and_row_kept_for_the_relay(
    app_via_broker_proxy: Flask, broker_proxy: TcpProxy, ctx: TenantCtx, db: Database
) -> None:
    client = app_via_broker_proxy.test_client()
    broker_proxy.stop()
    started = time.monotonic()
    r = client.post("/v1/messages", json={"to": "+12025550100", "body": "x"}, headers=ctx.headers)
    assert time.monotonic() - started < 10
    assert r.status_code == 202
    mid = r.get_json()["id"]
    # The publisher thread tried and failed, leaving the row: only then is the broker back.
    assert app_via_broker_proxy.extensions["switchboard.outbox"].handoff.settle(timeout=30)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["checks"]["broker"].startswith(
        "unavailable"
    )
    with db.session() as s:
        assert [mid] in [row.args for row in s.scalars(select(OutboxRow))]
    broker_proxy.start()
    assert relay(app_via_broker_proxy.extensions["celery"], db, grace=timedelta(0)) >= 1
    with db.session() as s:
        assert [mid] not in [row.args for row in s.scalars(select(OutboxRow))]


def test_broker_down_at_a_webhook_still_2xx_and_rows_kept_for_the_relay(
    app_via_broker_proxy: Flask, broker_proxy: TcpProxy, ctx: TenantCtx, db: Database
) -> None:
    """The callback is stored and answered; its processing waits in the outbox for the relay."""
    from app.providers.signing import sign_headers

    client = app_via_broker_proxy.test_client()
    broker_proxy.stop()
    body = (
        '{"eventId":"bd-1","schemaVersion":1,"channel":"sms","direction":"status",'
        '"status":"sent","providerMessageId":"P","timestamp":"2026-01-01T00:00:00Z"}'
    )
    r = client.post(
        f"/webhooks/sandbox/{ctx.account_id}",
        data=body,
        headers=sign_headers(ctx.secret, "bd-1", body),
    )
    assert r.status_code == 202
    assert app_via_broker_proxy.extensions["switchboard.outbox"].handoff.settle(timeout=30)
    with db.session() as s:
        item_id = s.scalar(
            select(InboxItem.id).where(
                InboxItem.account_id == ctx.account_id, InboxItem.dedupe_key == "bd-1"
            )
        )
        assert item_id is not None
        assert [item_id] in [row.args for row in s.scalars(select(OutboxRow))]
    broker_proxy.start()
    assert relay(app_via_broker_proxy.extensions["celery"], db, grace=timedelta(0)) >= 1
    with db.session() as s:
        assert [item_id] not in [row.args for row in s.scalars(select(OutboxRow))]


def test_connections_dropped_while_idle_are_replaced_not_failed(
    app_via_db_proxy: Flask, db_proxy: TcpProxy, ctx: TenantCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a database restart, the first request on a stale pooled connection still succeeds."""
    import app.infra.db

    client = app_via_db_proxy.test_client()
    assert client.get("/v1/messages", headers=ctx.headers).status_code == 200  # pools a connection
    db_proxy.stop()  # drops it, as a restart or an idle-timeout would
    db_proxy.start()
    monkeypatch.setattr(app.infra.db, "IDLE_PING_AFTER", 0.0)  # it has now been idle "long enough"
    r = client.post("/v1/messages", json={"to": "+12025550100", "body": "x"}, headers=ctx.headers)
    assert r.status_code == 202, r.get_json()


@pytest.fixture
def cached_app_via_db_proxy(settings: Settings, db_proxy: TcpProxy) -> Flask:
    """As production runs: the API key and the webhook account cached, so the one-statement
    hot paths are the first to meet the database."""
    return create_app(
        {
            "settings": replace(
                settings,
                database_url=via(settings.database_url, db_proxy),
                auth_cache_seconds=60,
                account_cache_seconds=60,
            )
        }
    )


def test_database_down_under_the_one_statement_intake_is_503_then_recovers(
    cached_app_via_db_proxy: Flask, db_proxy: TcpProxy, ctx: TenantCtx, db: Database
) -> None:
    client = cached_app_via_db_proxy.test_client()
    body = {"to": "+12025550124", "body": "x"}
    assert client.post("/v1/messages", json=body, headers=ctx.headers).status_code == 202
    db_proxy.stop()  # the pooled connection dies with it
    r = client.post("/v1/messages", json=body, headers={**ctx.headers, "Idempotency-Key": "d-2"})
    assert r.status_code == 503 and r.get_json()["reason"] == "database_unavailable"
    db_proxy.start()
    with db.session() as s:
        count = select(func.count()).select_from(Message).where(Message.tenant_id == ctx.tenant_id)
        assert s.scalar(count) == 1
    # The dead connection was dropped from the pool: the next request gets a live one.
    again = client.post(
        "/v1/messages", json=body, headers={**ctx.headers, "Idempotency-Key": "d-2"}
    )
    assert again.status_code == 202, again.get_json()


def test_database_down_under_the_one_statement_webhook_is_503_then_recovers(
    cached_app_via_db_proxy: Flask, db_proxy: TcpProxy, ctx: TenantCtx, db: Database
) -> None:
    from app.providers.signing import sign_headers

    client = cached_app_via_db_proxy.test_client()

    def post(event_id: str) -> int:
        body = (
            f'{{"eventId":"{event_id}","schemaVersion":1,"channel":"sms","direction":"status",'
            '"status":"sent","providerMessageId":"P","timestamp":"2026-01-01T00:00:00Z"}'
        )
        r = client.post(
            f"/webhooks/sandbox/{ctx.account_id}",
            data=body,
            headers=sign_headers(ctx.secret, event_id, body),
        )
        return r.status_code

    assert post("w-1") == 202  # caches the account and its secret
    db_proxy.stop()
    assert post("w-2") == 503
    db_proxy.start()
    assert post("w-2") == 202
    with db.session() as s:
        keys = s.scalars(
            select(InboxItem.dedupe_key).where(InboxItem.account_id == ctx.account_id)
        ).all()
    assert sorted(keys) == ["w-1", "w-2"]


def test_database_down_under_a_template_send_is_503_then_recovers(
    cached_app_via_db_proxy: Flask, db_proxy: TcpProxy, ctx: TenantCtx, db: Database
) -> None:
    """The template's lookup is the first statement: a cut there is a 503, nothing
    written (no message, no short link), and the next request sends."""
    from app.content import store
    from app.models import ShortLink

    with db.session() as s:
        store.create(
            s,
            ctx.tenant_id,
            {
                "name": "outage",
                "variables": {"u": {"type": "url"}},
                "default_locale": "en",
                "locales": {"en": {"sms": "See ((u))"}},
            },
            "test",
        )
    client = cached_app_via_db_proxy.test_client()
    body = {"to": "+12025550125", "template": "outage", "variables": {"u": "https://x.io/1"}}
    assert client.post("/v1/messages", json=body, headers=ctx.headers).status_code == 202
    db_proxy.stop()
    r = client.post("/v1/messages", json=body, headers={**ctx.headers, "Idempotency-Key": "t-2"})
    assert r.status_code == 503 and r.get_json()["reason"] == "database_unavailable"
    db_proxy.start()
    with db.session() as s:
        count = select(func.count()).select_from(Message).where(Message.tenant_id == ctx.tenant_id)
        assert s.scalar(count) == 1
        links = (
            select(func.count()).select_from(ShortLink).where(ShortLink.tenant_id == ctx.tenant_id)
        )
        assert s.scalar(links) == 1
    again = client.post(
        "/v1/messages", json=body, headers={**ctx.headers, "Idempotency-Key": "t-2"}
    )
    assert again.status_code == 202, again.get_json()
