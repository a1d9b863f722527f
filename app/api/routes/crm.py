"""/v1/admin/crm/connections: the tenant's CRM connections (admin scope)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g
from sqlalchemy.orm import Session

from app.api.auth import require_scope
from app.api.bodies import parse_body
from app.api.errors import Problem
from app.api.schemas import CrmConnectionIn, CrmLimitsIn
from app.api.session import request_session
from app.crm.connections import (
    InvalidConnection,
    connect,
    connection_view,
    list_connections,
    set_limits,
)
from app.crm.connections import (
    disconnect as disconnect_connection,
)
from app.domain.ids import is_id
from app.models import CrmConnection

bp = Blueprint("crm", __name__, url_prefix="/v1/admin/crm/connections")


@bp.post("")
@require_scope("admin")
def create() -> Any:
    # The model types ``kind``; the credentials it allows beside it are the connector's to check.
    body = parse_body(CrmConnectionIn)
    session = request_session()
    try:
        connection = connect(session, g.tenant_id, body.kind, body.model_dump(), actor=g.actor)
    except InvalidConnection as exc:
        raise _invalid(exc) from None
    session.commit()
    return connection_view(connection), 201


@bp.get("")
@require_scope("admin")
def list_() -> Any:
    return {"data": [connection_view(c) for c in list_connections(request_session(), g.tenant_id)]}


@bp.patch("/<connection_id>")
@require_scope("admin")
def change_limits(connection_id: str) -> Any:
    """Change the plan or the limit overrides: ``{"plan", "calls", "daily_share", ...}``."""
    given = parse_body(CrmLimitsIn).model_dump(exclude_none=True)
    session = request_session()
    connection = _own(session, connection_id)
    try:
        set_limits(session, connection, given, actor=g.actor)
    except InvalidConnection as exc:
        raise _invalid(exc) from None
    session.commit()
    return connection_view(connection)


def _own(session: Session, connection_id: str) -> CrmConnection:
    connection = session.get(CrmConnection, connection_id) if is_id(connection_id, "crm") else None
    if connection is None or connection.tenant_id != g.tenant_id:
        raise Problem(404, "not_found", "no CRM connection with this id")
    return connection


def _invalid(exc: InvalidConnection) -> Problem:
    return Problem(
        422,
        "validation_failed",
        "bad CRM connection",
        errors=[{"field": exc.field, "code": "invalid", "message": str(exc)}],
    )


@bp.delete("/<connection_id>")
@require_scope("admin")
def disconnect(connection_id: str) -> Any:
    """Stop writing to this CRM; syncs still owed to it are dead-lettered when reached."""
    session = request_session()
    connection = _own(session, connection_id)
    disconnect_connection(session, connection, actor=g.actor)
    session.commit()
    return connection_view(connection)
