"""Bearer API keys, scoped to one tenant and a set of scopes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import current_app, g, request
from sqlalchemy import select

from app.api.errors import Problem
from app.api.session import request_session
from app.models import ApiKey, Tenant
from app.security.api_keys import hash_api_key
from app.ttl_cache import TTLCache

P = ParamSpec("P")
R = TypeVar("R")


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="switchboard"'}
    )


@dataclass(frozen=True)
class Principal:
    """A live API key: its tenant (detached, read-only) and scopes."""

    key_id: str
    tenant_id: str
    scopes: frozenset[str]
    tenant: Tenant


def _load_principal(key_hash: str) -> Principal | None:
    session = request_session()
    row = session.execute(
        select(ApiKey, Tenant)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.key_hash == key_hash)
    ).first()
    if row is None or row[0].revoked_at is not None:
        return None
    key, tenant = row
    session.expunge(tenant)  # shared by later requests: never tied to this one's session
    return Principal(key.id, key.tenant_id, frozenset(key.scopes), tenant)


def authenticate(token: str) -> Principal | None:
    """The key's principal: from the per-process cache (AUTH_CACHE_SECONDS), else the database."""
    key_hash = hash_api_key(token)
    cache: TTLCache[str, Principal] = current_app.extensions["switchboard.key_cache"]
    return cache.get(key_hash, lambda: _load_principal(key_hash))


def require_scope(scope: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Authenticate the Bearer key, check its scope, and set ``g.tenant_id`` and ``g.tenant``."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _unauthorized("send Authorization: Bearer <api key>")
            principal = authenticate(token.strip())
            if principal is None:
                raise _unauthorized("unknown or revoked API key")
            if scope not in principal.scopes:
                raise Problem(403, "insufficient_scope", f"this API key lacks the {scope} scope")
            g.tenant_id = principal.tenant_id
            g.tenant = principal.tenant
            g.api_key_id = principal.key_id
            return view(*args, **kwargs)

        return wrapped

    return decorator
