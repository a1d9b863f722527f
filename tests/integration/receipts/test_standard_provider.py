"""Dispatching through the ``standard`` provider to a local fake: each answer, classified."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.infra.db import Database
from app.messaging.dispatch.batch import dispatch_message
from app.models import Message, MessageEvent
from app.providers.signing import generate_secret
from config import Settings
from tests.factories import TenantCtx, make_tenant_ctx
from tests.support.fake_provider import Answer, FakeProvider, fake_provider
from tests.support.processes import free_port


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    """A fake standard provider that checks our signatures."""
    with fake_provider(generate_secret()) as fake:
        yield fake


def standard_ctx(
    db: Database, provider: FakeProvider, channels: tuple[str, ...] = ("sms",)
) -> TenantCtx:
    return make_tenant_ctx(
        db,
        provider="standard",
        channels=channels,
        credentials={"base_url": provider.url, "signing_secret": provider.secret},
    )


def queue_one(client: FlaskClient, ctx: TenantCtx, **extra: object) -> str:
    r = client.post(
        "/v1/messages", json={"to": "+12025550100", "body": "hello", **extra}, headers=ctx.headers
    )
    assert r.status_code == 202, r.get_json()
    return str(r.get_json()["id"])


def load(db: Database, message_id: str) -> Message:
    with db.session() as s:
        message = s.get(Message, message_id)
        assert message is not None
        return message


def test_accepted_send_carries_the_canonical_event(
    client: FlaskClient, db: Database, settings: Settings, provider: FakeProvider
) -> None:
    ctx = standard_ctx(db, provider)
    mid = queue_one(client, ctx)
    assert dispatch_message(db, settings, mid) == "accepted"
    message = load(db, mid)
    assert message.status == "accepted" and message.provider_message_id == "STD1"
    sent = provider.received[0]
    assert sent["direction"] == "outbound" and sent["recipient"] == {"phone": "+12025550100"}
    assert sent["message"]["text"] == "hello" and provider.bad_signatures == 0
    assert sent["metadata"]["statusCallback"].endswith(f"/webhooks/standard/{ctx.account_id}")


def test_provider_5xx_is_retried_later_with_backoff(
    client: FlaskClient, db: Database, settings: Settings, provider: FakeProvider
) -> None:
    mid = queue_one(client, standard_ctx(db, provider))
    provider.script.append(Answer(503, {"errorCode": "maintenance"}))
    assert dispatch_message(db, settings, mid) == "retry"
    message = load(db, mid)
    assert message.status == "scheduled" and message.status_reason == "retry"
    assert message.next_attempt_at is not None and message.attempts == 1


def test_provider_429_is_a_throttle_not_a_failure(
    client: FlaskClient, db: Database, settings: Settings, provider: FakeProvider
) -> None:
    mid = queue_one(client, standard_ctx(db, provider))
    provider.script.append(Answer(429, {}, {"Retry-After": "30"}))
    assert dispatch_message(db, settings, mid) == "throttled"
    message = load(db, mid)
    assert message.status == "scheduled" and message.attempts == 0 and message.throttles == 1
    assert message.next_attempt_at is not None
    assert 25 < (message.next_attempt_at - message.updated_at).total_seconds() <= 31


def test_provider_4xx_is_permanent(
    client: FlaskClient, db: Database, settings: Settings, provider: FakeProvider
) -> None:
    mid = queue_one(client, standard_ctx(db, provider))
    provider.script.append(Answer(400, {"errorCode": "blocked"}))
    assert dispatch_message(db, settings, mid) == "failed"
    message = load(db, mid)
    assert (message.status, message.status_reason) == ("failed", "blocked")


def test_unsupported_channel_falls_back_to_the_next(
    client: FlaskClient, db: Database, settings: Settings, provider: FakeProvider
) -> None:
    ctx = standard_ctx(db, provider, channels=("rcs", "sms"))
    mid = queue_one(client, ctx, channels=["rcs", "sms"])
    provider.script.append(Answer(400, {"errorCode": "channel_unsupported"}))
    assert dispatch_message(db, settings, mid) == "fallback"
    message = load(db, mid)
    assert (message.status, message.channel, message.status_reason) == (
        "scheduled",
        "sms",
        "fallback:sms",
    )


def test_provider_unreachable_is_retryable_and_retries_run_out(
    client: FlaskClient, db: Database, settings: Settings
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    ctx = make_tenant_ctx(
        db,
        provider="standard",
        channels=("sms",),
        credentials={"base_url": dead, "signing_secret": generate_secret()},
    )
    mid = queue_one(client, ctx)
    outcomes = []
    for _ in range(settings.max_attempts):
        with db.session() as s:  # what beat's release does, without waiting for the backoff
            message = s.get(Message, mid)
            assert message is not None
            if message.status == "scheduled":
                message.status = "queued"
        outcomes.append(dispatch_message(db, settings, mid))
    assert outcomes == ["retry"] * (settings.max_attempts - 1) + ["failed"]
    message = load(db, mid)
    assert (message.status, message.status_reason, message.attempts) == (
        "failed",
        "retries_exhausted",
        settings.max_attempts,
    )
    with db.session() as s:
        errors = s.scalars(
            select(MessageEvent.data).where(
                MessageEvent.message_id == mid, MessageEvent.to_status == "scheduled"
            )
        ).all()
    assert all(e["error"] == "transport_error" for e in errors)
