"""Bearer API keys, scoped to one tenant and a set of scopes."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import g, request
from sqlalchemy import select

from app.api.errors import Problem
from app.api.session import request_session
from app.models import ApiKey, Tenant
from app.security.api_keys import hash_api_key

P = ParamSpec("P")
R = TypeVar("R")


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="switchboard"'}
    )


def require_scope(scope: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Authenticate the Bearer key, check its scope, and set ``g.tenant_id`` and ``g.tenant``."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _unauthorized("send Authorization: Bearer <api key>")
            row = (
                request_session()
                .execute(
                    select(ApiKey, Tenant)
                    .join(Tenant, Tenant.id == ApiKey.tenant_id)
                    .where(ApiKey.key_hash == hash_api_key(token.strip()))
                )
                .first()
            )
            if row is None or row[0].revoked_at is not None:
                raise _unauthorized("unknown or revoked API key")
            key, tenant = row
            if scope not in key.scopes:
                raise Problem(403, "insufficient_scope", f"this API key lacks the {scope} scope")
            g.tenant_id = key.tenant_id
            g.tenant = tenant
            g.api_key_id = key.id
            return view(*args, **kwargs)

        return wrapped

    return decorator
