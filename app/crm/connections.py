"""Connecting a tenant to a CRM: what each kind needs, checked before anything is stored."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.crm import CONNECTORS
from app.crm.budget import InvalidLimits, check_limits
from app.crm.syncs import budget_view
from app.domain.clock import utcnow
from app.domain.ids import new_id
from app.models import CrmConnection
from app.security import audit

# What each kind needs (required) and may take (optional).
FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "hubspot": (("token",), ("base_url",)),
    "salesforce": (("instance_url", "token"), ()),
    "webhook": (("url", "secret"), ()),
}


class InvalidConnection(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _url(field: str, value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidConnection(field, "must be an http(s) URL")
    return value.rstrip("/")


def validate(kind: str, given: dict[str, Any]) -> dict[str, str]:
    if kind not in CONNECTORS:
        raise InvalidConnection("kind", f"must be one of {', '.join(sorted(CONNECTORS))}")
    required, optional = FIELDS[kind]
    config: dict[str, str] = {}
    for name in (*required, *optional):
        value = given.get(name)
        if value is None or value == "":
            if name in required:
                raise InvalidConnection(name, f"{kind} needs {name}")
            continue
        if not isinstance(value, str) or len(value) > 2000:
            raise InvalidConnection(name, "must be a string of at most 2000 characters")
        config[name] = _url(name, value) if name.endswith("url") else value
    if kind == "webhook" and not config["secret"].startswith("whsec_"):
        raise InvalidConnection("secret", "must be a Standard Webhooks secret (whsec_...)")
    return config


def limits(kind: str, given: dict[str, Any]) -> dict[str, Any]:
    """The plan and the limit overrides ``given`` names (``app.crm.budget``), checked."""
    try:
        return check_limits(kind, given)
    except InvalidLimits as exc:
        raise InvalidConnection(exc.field, str(exc)) from None


def connect(
    session: Session, tenant_id: str, kind: str, given: dict[str, Any], actor: str = "cli"
) -> CrmConnection:
    config = validate(kind, given)
    connection = CrmConnection(
        id=new_id("crm"),
        tenant_id=tenant_id,
        kind=kind,
        config=json.dumps(config),  # the column type encrypts it
        limits=limits(kind, given),
        active=True,
        created_at=utcnow(),
    )
    session.add(connection)
    session.flush()
    _audit(session, connection, actor, "crm.connect", {"kind": kind, "limits": connection.limits})
    return connection


def disconnect(session: Session, connection: CrmConnection, actor: str) -> None:
    connection.active = False
    _audit(session, connection, actor, "crm.disconnect", {})


def _audit(
    session: Session, connection: CrmConnection, actor: str, action: str, change: dict[str, Any]
) -> None:
    audit.append(
        session,
        tenant_id=connection.tenant_id,
        actor=actor,
        action=action,
        target="crm_connection",
        ids=[connection.id],
        change=change,
    )


def set_limits(
    session: Session, connection: CrmConnection, given: dict[str, Any], actor: str
) -> None:
    """Change a connection's plan or overrides; what the CRM stated is kept."""
    current = dict(connection.limits or {})
    merged = {k: v for k, v in current.items() if k != "learned"} | {
        k: v for k, v in given.items() if v is not None
    }
    stored = limits(connection.kind, merged)
    if current.get("learned"):
        stored["learned"] = current["learned"]
    connection.limits = stored
    _audit(session, connection, actor, "crm.limits", {"limits": stored})


def connection_view(connection: CrmConnection) -> dict[str, Any]:
    """Never the token or the secret."""
    config = json.loads(connection.config)
    budget = budget_view(connection)
    return {
        "id": connection.id,
        "kind": connection.kind,
        "active": connection.active,
        "url": config.get("base_url") or config.get("instance_url") or config.get("url"),
        "created_at": connection.created_at.isoformat(),
        "budget": {
            k: v for k, v in budget.items() if k not in ("connection_id", "tenant_id", "kind")
        },
    }


def list_connections(session: Session, tenant_id: str) -> list[CrmConnection]:
    return list(
        session.scalars(
            select(CrmConnection)
            .where(CrmConnection.tenant_id == tenant_id)
            .order_by(CrmConnection.created_at)
        )
    )
