"""API keys and tenants are cached per process for AUTH_CACHE_SECONDS; revocation still lands."""

from __future__ import annotations

import time

import pytest
from flask import Flask
from sqlalchemy import select, update

from app import create_app
from app.infra.db import Database
from app.infra.ttl_cache import TTLCache
from app.models import ApiKey, Tenant
from config import Settings
from tests.factories import make_tenant_ctx
from tests.support.backends import Backend
from tests.support.cli import run_json

TTL = 1


@pytest.fixture(scope="module")
def cached_app(settings: Settings) -> Flask:
    from dataclasses import replace

    return create_app({"settings": replace(settings, auth_cache_seconds=TTL), "TESTING": True})


def send(app: Flask, key: str, n: int) -> int:
    r = app.test_client().post(
        "/v1/messages",
        json={"to": f"+1202555{n:04d}", "body": "hi"},
        headers={"Authorization": f"Bearer {key}"},
    )
    return r.status_code


def test_a_revoked_key_is_refused_within_the_ttl(
    backend: Backend, cached_app: Flask, db: Database
) -> None:
    ctx = make_tenant_ctx(db)
    assert send(cached_app, ctx.key, 1) == 202  # now cached
    with db.session() as s:
        key_id = s.scalar(select(ApiKey.id).where(ApiKey.tenant_id == ctx.tenant_id))
    revoked = run_json(backend, f"keys revoke {key_id}")
    assert revoked["id"] == key_id and revoked["revoked_at"]
    deadline = time.monotonic() + TTL + 2
    codes = []
    while time.monotonic() < deadline:
        codes.append(send(cached_app, ctx.key, 2))
        if codes[-1] == 401:
            break
        time.sleep(0.1)
    assert codes[-1] == 401, codes
    assert send(cached_app, ctx.key, 3) == 401  # and it stays refused


def test_a_tenant_change_reaches_the_api_once_the_entry_expires(
    cached_app: Flask, db: Database
) -> None:
    ctx = make_tenant_ctx(db)
    assert send(cached_app, ctx.key, 4) == 202
    with db.session() as s:  # a tenant change (here: no more API requests at all, in effect)
        s.execute(
            update(Tenant)
            .where(Tenant.id == ctx.tenant_id)
            .values(api_rate_per_second=0.001, api_rate_burst=1)
        )
    assert send(cached_app, ctx.key, 5) == 202  # the cached tenant still has the old limit
    time.sleep(TTL + 0.2)
    codes = [send(cached_app, ctx.key, 6 + i) for i in range(3)]
    assert 429 in codes, codes  # the new limit applies once the entry expired


def test_an_unknown_key_is_not_cached_so_a_new_key_works_at_once(
    cached_app: Flask, db: Database
) -> None:
    from tests.factories import add_api_key

    ctx = make_tenant_ctx(db)
    assert send(cached_app, "sb_live_nope", 1) == 401
    key = add_api_key(db, ctx.tenant_id, ("messages:write",))
    assert send(cached_app, key, 9) == 202


def test_ttl_cache_expires_and_bounds_its_size() -> None:
    now = [0.0]
    cache: TTLCache[str, int] = TTLCache(5, maxsize=2, clock=lambda: now[0])
    loads: list[str] = []

    def load(key: str, value: int | None) -> int | None:
        loads.append(key)
        return value

    assert cache.get("a", lambda: load("a", 1)) == 1
    assert cache.get("a", lambda: load("a", 2)) == 1  # fresh: not reloaded
    now[0] = 5.1
    assert cache.get("a", lambda: load("a", 3)) == 3  # expired: reloaded
    assert cache.get("b", lambda: load("b", None)) is None
    assert cache.get("b", lambda: load("b", None)) is None  # a miss is never cached
    cache.get("c", lambda: load("c", 4))
    cache.get("d", lambda: load("d", 5))
    assert cache.get("a", lambda: load("a", 6)) == 6  # the oldest went when "d" came
    assert loads == ["a", "a", "b", "b", "c", "d", "a"]
    off: TTLCache[str, int] = TTLCache(0)
    assert off.get("x", lambda: 1) == 1 and off.get("x", lambda: 2) == 2
