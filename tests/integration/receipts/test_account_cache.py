"""Webhook accounts and their secrets are cached per process for ACCOUNT_CACHE_SECONDS.

A secret added by a rotation, or a new Twilio auth token, verifies at once (a
signature that fails against the cache is checked again against the database); a
deactivated secret stops verifying once the entry expires, never later.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
from flask import Flask
from sqlalchemy import select, update

from app import create_app
from app.infra.db import Database
from app.infra.ttl_cache import TTLCache
from app.models import ChannelAccount, InboxItem, WebhookSecret
from app.providers import webhook_url
from app.providers.signing import generate_secret, sign_headers
from config import Settings
from scripts.fake_twilio import sign
from tests.factories import TenantCtx, make_tenant_ctx


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cached_app(settings: Settings, clock: Clock) -> Iterator[Flask]:
    app = create_app({"settings": replace(settings, account_cache_seconds=30), "TESTING": True})
    app.extensions["switchboard.signer_cache"] = TTLCache(30, clock=clock)
    yield app
    app.extensions["switchboard.db"].engine.dispose()


def post_standard(app: Flask, ctx: TenantCtx, secret: str, event_id: str) -> int:
    body = json.dumps(
        {
            "eventId": event_id,
            "schemaVersion": 1,
            "channel": "sms",
            "direction": "status",
            "status": "sent",
            "providerMessageId": "P-cache",
            "timestamp": "2026-01-01T00:00:00Z",
        }
    )
    r = app.test_client().post(
        f"/webhooks/sandbox/{ctx.account_id}",
        data=body,
        headers=sign_headers(secret, event_id, body),
    )
    return r.status_code


def stored(db: Database, ctx: TenantCtx) -> list[str]:
    with db.session() as s:
        return sorted(
            s.scalars(
                select(InboxItem.dedupe_key).where(InboxItem.account_id == ctx.account_id)
            ).all()
        )


def test_a_rotated_secret_verifies_at_once_and_a_retired_one_stops_with_the_ttl(
    cached_app: Flask, db: Database, clock: Clock
) -> None:
    ctx = make_tenant_ctx(db)
    assert post_standard(cached_app, ctx, ctx.secret, "c-1") == 202  # cached now
    with db.session() as s:
        old_id = s.scalar(
            select(WebhookSecret.id).where(WebhookSecret.account_id == ctx.account_id)
        )
    new_secret = generate_secret()
    with db.session() as s:
        s.add(WebhookSecret(tenant_id=ctx.tenant_id, account_id=ctx.account_id, secret=new_secret))
    # Not in the cached entry: the failed check reloads the account's secrets once.
    assert post_standard(cached_app, ctx, new_secret, "c-2") == 202
    with db.session() as s:
        s.execute(update(WebhookSecret).where(WebhookSecret.id == old_id).values(active=False))
    # Still in the cached entry (reloaded a moment ago): accepted within the TTL...
    assert post_standard(cached_app, ctx, ctx.secret, "c-3") == 202
    clock.now += 31
    # ...and refused once it expires; nothing is stored for it.
    assert post_standard(cached_app, ctx, ctx.secret, "c-4") == 401
    assert post_standard(cached_app, ctx, new_secret, "c-5") == 202
    assert stored(db, ctx) == ["c-1", "c-2", "c-3", "c-5"]


def test_a_bad_signature_is_refused_after_one_fresh_look(cached_app: Flask, db: Database) -> None:
    ctx = make_tenant_ctx(db)
    assert post_standard(cached_app, ctx, ctx.secret, "b-1") == 202
    assert post_standard(cached_app, ctx, generate_secret(), "b-2") == 401
    assert post_standard(cached_app, ctx, ctx.secret, "b-3") == 202  # the entry is still good
    assert stored(db, ctx) == ["b-1", "b-3"]


def test_a_new_twilio_auth_token_verifies_at_once(
    cached_app: Flask, db: Database, settings: Settings
) -> None:
    ctx = make_tenant_ctx(
        db, provider="twilio", credentials={"account_sid": "AC" + "1" * 32, "auth_token": "old"}
    )
    path = webhook_url("", "twilio", ctx.account_id)
    signed_url = webhook_url(settings.public_base_url, "twilio", ctx.account_id)

    def post(token: str, sid: str) -> int:
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "MessageStatus": "delivered",
            "AccountSid": "AC" + "1" * 32,
            "From": "+12025550199",
            "To": "+12025550100",
            "ApiVersion": "2010-04-01",
        }
        r = cached_app.test_client().post(
            path,
            data=params,
            headers={"X-Twilio-Signature": sign(token, signed_url, params)},
        )
        return r.status_code

    assert post("old", "SM" + "a" * 32) == 200
    with db.session() as s:
        s.execute(
            update(ChannelAccount)
            .where(ChannelAccount.id == ctx.account_id)
            .values(credentials=json.dumps({"account_sid": "AC" + "1" * 32, "auth_token": "new"}))
        )
    assert post("new", "SM" + "b" * 32) == 200
    assert post("nobody's", "SM" + "c" * 32) == 403
