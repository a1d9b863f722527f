"""/v1/admin: the stuck report and redrive for support staff, for the key's own tenant."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, current_app, g, request

from app.api.auth import require_scope
from app.api.bodies import parse_body
from app.api.errors import Problem
from app.api.schemas import RedriveIn, SyncIds
from app.api.session import get_db, request_session
from app.crm.syncs import redrive_dead, stuck_syncs
from app.messaging.recovery.reconcile import redrive, select_ids
from app.messaging.recovery.stuck import Window, parse_duration, stuck_report
from config import Settings

bp = Blueprint("admin", __name__, url_prefix="/v1/admin")


def _bad(field: str, message: str) -> Problem:
    return Problem(
        422,
        "validation_failed",
        "bad parameters",
        errors=[{"field": field, "code": "invalid", "message": message}],
    )


@bp.get("/stuck")
@require_scope("admin")
def stuck() -> Any:
    settings: Settings = current_app.extensions["switchboard.settings"]
    raw = request.args.get("older_than")
    try:
        older_than = parse_duration(raw) if raw is not None else None
    except ValueError as exc:
        raise _bad("older_than", str(exc)) from None
    window = Window(settings.stuck_sla, older_than)
    session = request_session()
    report = stuck_report(session, window, tenant_id=g.tenant_id)
    syncs = stuck_syncs(
        session,
        timedelta(seconds=settings.crm_sync_sla_seconds),
        older_than=older_than,
        tenant_id=g.tenant_id,
    )
    return {**report, "syncs": syncs}


@bp.post("/redrive")
@require_scope("admin")
def redrive_messages() -> Any:
    body = parse_body(RedriveIn)
    if (body.ids is None) == (body.status is None):
        raise _bad("ids", "give ids, or status with older_than")
    if body.status is None:
        chosen = list(body.ids or ())
    else:
        if body.older_than is None:
            raise _bad("older_than", "status needs older_than (a duration such as 10m)")
        chosen = select_ids(
            request_session(),
            status=body.status,
            older_than=parse_duration(body.older_than),
            tenant_id=g.tenant_id,
        )
    request_session().close()
    actions = redrive(
        get_db(),
        chosen,
        dry_run=body.dry_run,
        actor="api",
        tenant_id=g.tenant_id,
        audited_as=g.actor,
    )
    return {"dry_run": body.dry_run, "messages": [a.as_dict() for a in actions]}


@bp.post("/redrive/syncs")
@require_scope("admin")
def redrive_syncs() -> Any:
    """``{"ids": [n, ...]}`` or ``{}`` for every dead-lettered sync of the tenant."""
    body = parse_body(SyncIds)
    session = request_session()
    done = redrive_dead(session, body.ids, g.tenant_id, body.dry_run)
    session.commit()
    return {"dry_run": body.dry_run, "syncs": done}
