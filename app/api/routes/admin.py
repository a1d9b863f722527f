"""/v1/admin: the stuck report and redrive for support staff, for the key's own tenant."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, current_app, g, request

from app.api.auth import require_scope
from app.api.bodies import json_object
from app.api.errors import Problem
from app.api.session import get_db, request_session
from app.crm.syncs import redrive_dead, stuck_syncs
from app.domain.ids import is_id
from app.messaging.recovery.reconcile import redrive, select_ids
from app.messaging.recovery.stuck import WHY, Window, parse_duration, stuck_report
from config import Settings

bp = Blueprint("admin", __name__, url_prefix="/v1/admin")
MAX_REDRIVE = 1000


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
    payload = json_object()
    ids = payload.get("ids")
    status = payload.get("status")
    dry_run = payload.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise _bad("dry_run", "must be true or false")
    if (ids is None) == (status is None):
        raise _bad("ids", "give ids, or status with older_than")
    if ids is not None:
        if (
            not isinstance(ids, list)
            or not 0 < len(ids) <= MAX_REDRIVE
            or not all(isinstance(i, str) and is_id(i, "msg") for i in ids)
        ):
            raise _bad("ids", f"1 to {MAX_REDRIVE} message ids")
        chosen = list(ids)
    else:
        if status not in WHY:
            raise _bad("status", f"one of {', '.join(WHY)}")
        try:
            older_than = parse_duration(str(payload.get("older_than", "")))
        except ValueError as exc:
            raise _bad("older_than", str(exc)) from None
        chosen = select_ids(
            request_session(), status=status, older_than=older_than, tenant_id=g.tenant_id
        )
    request_session().close()
    actions = redrive(
        get_db(),
        chosen,
        dry_run=dry_run,
        actor="api",
        tenant_id=g.tenant_id,
        audited_as=g.actor,
    )
    return {"dry_run": dry_run, "messages": [a.as_dict() for a in actions]}


@bp.post("/redrive/syncs")
@require_scope("admin")
def redrive_syncs() -> Any:
    """``{"ids": [n, ...]}`` or ``{}`` for every dead-lettered sync of the tenant."""
    payload = json_object()
    ids = payload.get("ids")
    dry_run = payload.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise _bad("dry_run", "must be true or false")
    if ids is not None and (
        not isinstance(ids, list)
        or not 0 < len(ids) <= MAX_REDRIVE
        or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids)
    ):
        raise _bad("ids", f"1 to {MAX_REDRIVE} sync ids (numbers)")
    session = request_session()
    done = redrive_dead(session, ids, g.tenant_id, dry_run)
    session.commit()
    return {"dry_run": dry_run, "syncs": done}
