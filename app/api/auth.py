"""Bearer credentials for /v1: an API key, or an OAuth 2.0 access token (app.security.oauth).

Either gives a tenant and a set of scopes. ``g.actor`` names who acts, for the audit chain:
``key:<id>`` or ``client:<id>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import current_app, g, request
from sqlalchemy import select

from app.api.errors import Problem
from app.api.session import request_session
from app.infra.ttl_cache import TTLCache
from app.models import ApiKey, Tenant
from app.security.api_keys import KEY_PREFIX, hash_api_key
from app.security.oauth import InvalidToken, decode_token, token_live
from config import Settings

P = ParamSpec("P")
R = TypeVar("R")


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="switchboard"'}
    )


@dataclass(frozen=True)
class Principal:
    """A live API key or access token: its tenant (detached, read-only) and scopes."""

    key_id: str
    tenant_id: str
    scopes: frozenset[str]
    tenant: Tenant
    actor: str


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
    return Principal(key.id, key.tenant_id, frozenset(key.scopes), tenant, f"key:{key.id}")


def _cache() -> TTLCache[str, Principal]:
    cache: TTLCache[str, Principal] = current_app.extensions["switchboard.key_cache"]
    return cache


def authenticate(token: str) -> Principal | None:
    """The key's principal: from the per-process cache (AUTH_CACHE_SECONDS), else the database."""
    key_hash = hash_api_key(token)
    return _cache().get(key_hash, lambda: _load_principal(key_hash))


def _looks_like_jwt(token: str) -> bool:
    return not token.startswith(KEY_PREFIX) and token.count(".") == 2


def authenticate_token(token: str) -> Principal:
    """An access token's principal; 401 when it is not ours, expired, or revoked (its own
    revocation, or its client's, reaches every process within AUTH_CACHE_SECONDS)."""
    settings: Settings = current_app.extensions["switchboard.settings"]
    try:
        claims = decode_token(token, settings.public_base_url, settings.oauth_token_secret)
    except InvalidToken as exc:
        raise _unauthorized(
            "the access token has expired: request a new one"
            if str(exc) == "expired"
            else "invalid access token"
        ) from None

    def load() -> Principal | None:
        tenant = token_live(request_session(), claims)
        if tenant is None:
            return None
        actor = f"client:{claims.client_id}"
        return Principal(claims.client_id, claims.tenant_id, claims.scopes, tenant, actor)

    principal = _cache().get(claims.jti, load)
    if principal is None:
        raise _unauthorized("the access token or its client has been revoked")
    return principal


def require_scope(scope: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Authenticate the Bearer key, check its scope, and set ``g.tenant_id`` and ``g.tenant``."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _unauthorized("send Authorization: Bearer <api key or access token>")
            token = token.strip()
            if _looks_like_jwt(token):
                principal = authenticate_token(token)
            else:
                found = authenticate(token)
                if found is None:
                    raise _unauthorized("unknown or revoked API key")
                principal = found
            if scope not in principal.scopes:
                raise Problem(403, "insufficient_scope", f"this credential lacks the {scope} scope")
            g.tenant_id = principal.tenant_id
            g.tenant = principal.tenant
            g.api_key_id = principal.key_id
            g.actor = principal.actor
            return view(*args, **kwargs)

        return wrapped

    return decorator
