"""Rate limits on real stores: per account in segments at dispatch, per tenant at the API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from app.infra.db import Database
from app.infra.ratelimit import DatabaseLimiter, Rate, RateLimiter, RedisLimiter, make_limiter
from app.messaging.dispatch.batch import dispatch_message
from app.models import ChannelAccount, Message, Tenant
from config import Settings
from scripts.fake_twilio import FakeTwilio, Reply, Rule
from tests.factories import TenantCtx, make_tenant_ctx
from tests.support.processes import free_port


@pytest.fixture(params=["database", "redis"])
def limiter(request: pytest.FixtureRequest, settings: Settings) -> RateLimiter:
    """Each store of buckets (Redis only where the run has it)."""
    if request.param == "database":
        return DatabaseLimiter()
    if settings.redis_url is None:
        pytest.skip("needs Redis (embedded backend in use)")
    return make_limiter(settings.redis_url, settings.broker_keyprefix)


def test_both_stores_give_the_same_waits(
    db: Database, limiter: RateLimiter, ctx: TenantCtx
) -> None:
    key = f"test:{ctx.tenant_id}"
    rate = Rate(5, 3)
    waits, took = [], []
    started = time.monotonic()
    for _ in range(6):
        with db.session() as s:
            waits.append(limiter.acquire(s, key, rate, 1, reserve=True))
        took.append(time.monotonic() - started)
    assert waits[:3] == [0, 0, 0]
    # Each wait counts from its own moment: a slow machine spends some of it already.
    for expected, wait, elapsed in zip([0.2, 0.4, 0.6], waits[3:], took[3:], strict=True):
        assert expected - elapsed - 0.02 <= wait <= expected + 0.02, (waits, took)
    with db.session() as s:  # over the limit, not reserving: told to wait, bucket unmoved
        first = limiter.acquire(s, f"{key}:api", Rate(1, 1), 1, reserve=False)
        second = limiter.acquire(s, f"{key}:api", Rate(1, 1), 1, reserve=False)
        third = limiter.acquire(s, f"{key}:api", Rate(1, 1), 1, reserve=False)
    assert first == 0 and 0.9 < second <= 1.0 and 0.9 < third <= 1.0


def test_redis_down_lets_requests_through(db: Database) -> None:
    import redis

    dead = RedisLimiter(redis.Redis(port=free_port(), socket_connect_timeout=0.2))
    with db.session() as s:
        assert dead.acquire(s, "k", Rate(1, 1), 5, reserve=True) == 0


def post(client: FlaskClient, ctx: TenantCtx) -> int:
    r = client.post("/v1/messages", json={"to": "+12025550100", "body": "x"}, headers=ctx.headers)
    if r.status_code == 429:
        assert r.mimetype == "application/problem+json" and r.get_json()["reason"] == "rate_limited"
        assert int(r.headers["Retry-After"]) >= 1
    return r.status_code


def test_a_tenant_over_its_api_limit_gets_429_and_others_do_not(
    client: FlaskClient, db: Database
) -> None:
    limited, other = make_tenant_ctx(db), make_tenant_ctx(db)
    with db.session() as s:
        s.execute(
            update(Tenant)
            .where(Tenant.id == limited.tenant_id)
            .values(api_rate_per_second=0.5, api_rate_burst=2)
        )
    assert [post(client, limited) for _ in range(3)] == [202, 202, 429]
    assert [post(client, other) for _ in range(3)] == [202, 202, 202]


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    """A fake Twilio that nobody calls back from."""
    server = FakeTwilio(callback_delay=0).start()
    yield server
    server.stop()


def twilio_ctx(db: Database, fake: FakeTwilio, rate: float, burst: float) -> TenantCtx:
    ctx = make_tenant_ctx(
        db,
        provider="twilio",
        channels=("sms",),
        credentials={
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "base_url": fake.base_url,
        },
    )
    with db.session() as s:
        s.execute(
            update(ChannelAccount)
            .where(ChannelAccount.id == ctx.account_id)
            .values(rate_limit_per_second=rate, rate_limit_burst=burst)
        )
    return ctx


def load(db: Database, message_id: str) -> Message:
    with db.session() as s:
        message = s.get(Message, message_id)
        assert message is not None
        return message


def queue(client: FlaskClient, ctx: TenantCtx, body: str = "x", **extra: object) -> str:
    r = client.post(
        "/v1/messages", json={"to": "+12025550100", "body": body, **extra}, headers=ctx.headers
    )
    assert r.status_code == 202, r.get_json()
    return str(r.get_json()["id"])


def release(db: Database, message_id: str) -> None:
    with db.session() as s:
        s.execute(update(Message).where(Message.id == message_id).values(status="queued"))


def test_a_message_over_the_account_limit_waits_for_its_slot_and_is_not_an_attempt(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    ctx = twilio_ctx(db, fake, rate=1, burst=1)
    first, second = queue(client, ctx), queue(client, ctx)
    assert dispatch_message(db, settings, first) == "accepted"
    assert dispatch_message(db, settings, second) == "rate_limit"
    waiting = load(db, second)
    assert (waiting.status, waiting.attempts) == ("scheduled", 0)
    assert waiting.rate_slot_at is not None and waiting.rate_slot_at == waiting.next_attempt_at
    assert timedelta(0) < waiting.rate_slot_at - waiting.updated_at <= timedelta(seconds=1)
    # Released on its slot, it goes without taking a second token (a third would still wait).
    release(db, second)
    with db.session() as s:
        s.execute(
            update(Message)
            .where(Message.id == second)
            .values(rate_slot_at=waiting.updated_at)  # its slot has come
        )
    assert dispatch_message(db, settings, second) == "accepted"
    assert load(db, second).rate_slot_at is None
    assert [s.to for s in fake.sent] == ["+12025550100", "+12025550100"]


def test_the_limit_counts_segments(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    ctx = twilio_ctx(db, fake, rate=2, burst=3)
    long_one = queue(client, ctx, body="€" * 200)  # extension characters: 400 septets, 3 segments
    assert load(db, long_one).segments == 3
    assert dispatch_message(db, settings, long_one) == "accepted"
    assert dispatch_message(db, settings, queue(client, ctx)) == "rate_limit"


def test_waits_never_carry_a_message_past_its_ttl(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    ctx = twilio_ctx(db, fake, rate=0.01, burst=1)  # one segment every 100 s
    assert dispatch_message(db, settings, queue(client, ctx, ttl_seconds=60)) == "accepted"
    rate_limited = queue(client, ctx, ttl_seconds=60)
    assert dispatch_message(db, settings, rate_limited) == "expired"
    message = load(db, rate_limited)
    assert (message.status, message.status_reason) == ("expired", "expired")

    plain = make_tenant_ctx(
        db,
        provider="twilio",
        channels=("sms",),
        credentials={
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "base_url": fake.base_url,
        },
    )
    fake.rule("+12025550100", Rule(replies=[Reply(429, retry_after=120)]))
    throttled = queue(client, plain, ttl_seconds=60)
    assert dispatch_message(db, settings, throttled) == "expired"
    assert load(db, throttled).status_reason == "expired"

    fake.rule("+12025550100", Rule(replies=[Reply(503)]))
    long_retry = Settings(
        **{**vars(settings), "retry_base_seconds": 120.0, "retry_max_seconds": 300.0}
    )
    retried = queue(client, plain, ttl_seconds=30)
    assert dispatch_message(db, long_retry, retried) == "expired"
    assert [s.answered for s in fake.sends_to("+12025550100")][-2:] == [429, 503]


def test_the_app_builds_the_limiter_its_settings_ask_for(app: Flask, settings: Settings) -> None:
    limiter = app.extensions["switchboard.limiter"]
    expected = RedisLimiter if settings.redis_url else DatabaseLimiter
    assert isinstance(limiter, expected)


def test_a_message_claimed_long_after_its_slot_goes_back_in_line(
    client: FlaskClient, db: Database, settings: Settings, fake: FakeTwilio
) -> None:
    ctx = twilio_ctx(db, fake, rate=1, burst=1)
    first, late = queue(client, ctx), queue(client, ctx)
    assert dispatch_message(db, settings, first) == "accepted"
    assert dispatch_message(db, settings, late) == "rate_limit"
    # Released far past its slot (the pipeline lagged): it must not fire with others.
    release(db, late)
    with db.session() as s:
        s.execute(
            update(Message)
            .where(Message.id == late)
            .values(rate_slot_at=datetime.now(UTC) - timedelta(seconds=30))
        )
    with db.session() as s:  # the bucket is busy again
        DatabaseLimiter().acquire(s, f"account:{ctx.account_id}", Rate(1, 1), 1, reserve=True)
    assert dispatch_message(db, settings, late) == "rate_limit"
