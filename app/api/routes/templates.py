"""/v1/templates: create, list, read, new versions, archive, and preview with its price.

Every route needs the ``templates:write`` scope. A template is named by its id
(``tpl_...``) or its name in the path.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, request
from sqlalchemy import select

from app.api.auth import require_scope
from app.api.bodies import json_object, parse_body
from app.api.errors import Problem
from app.api.schemas import PreviewIn
from app.api.session import request_session
from app.content import store
from app.content.store import TemplateProblem
from app.models import Template, TemplateVersion
from config import Settings

bp = Blueprint("templates", __name__, url_prefix="/v1/templates")


def _invalid(exc: TemplateProblem) -> Problem:
    return Problem(
        422,
        "validation_failed",
        "the template request failed validation",
        errors=[p.as_dict() for p in exc.problems],
    )


def _own(ref: str) -> Template:
    if not 0 < len(ref) <= 100:
        raise Problem(404, "not_found", "no such template")
    template = store.find(request_session(), g.tenant_id, ref)
    if template is None:
        raise Problem(404, "not_found", "no such template")
    return template


def _version_arg(raw: Any) -> int | None:
    if raw is None:
        return None
    if (
        isinstance(raw, bool)
        # ASCII digits only, and few: "²".isdigit() is true, and int() refuses it.
        or not (
            isinstance(raw, int)
            or (isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 10)
        )
        or not 1 <= int(raw) <= 2**31 - 1  # a version the database's integer can hold
    ):
        raise Problem(
            422,
            "validation_failed",
            "bad version",
            errors=[{"field": "version", "code": "invalid", "message": "a version number"}],
        )
    return int(raw)


@bp.post("")
@require_scope("templates:write")
def create() -> Any:
    session = request_session()
    try:
        template, version = store.create(session, g.tenant_id, json_object(), g.api_key_id)
    except TemplateProblem as exc:
        raise _invalid(exc) from None
    session.commit()
    return store.view(template, version), 201


@bp.get("")
@require_scope("templates:write")
def list_() -> Any:
    archived = request.args.get("archived") == "true"
    query = select(Template).where(Template.tenant_id == g.tenant_id)
    if not archived:
        query = query.where(Template.archived_at.is_(None))
    rows = request_session().scalars(query.order_by(Template.name).limit(500))
    return {"data": [store.view(t) for t in rows]}


@bp.get("/<ref>")
@require_scope("templates:write")
def get(ref: str) -> Any:
    template = _own(ref)
    try:
        version = store.version_of(
            request_session(), template, _version_arg(request.args.get("version"))
        )
    except TemplateProblem as exc:
        raise Problem(404, "not_found", str(exc)) from None
    versions = request_session().scalars(
        select(TemplateVersion.version)
        .where(TemplateVersion.template_id == template.id)
        .order_by(TemplateVersion.version)
    )
    return {**store.view(template, version), "versions": list(versions)}


@bp.post("/<ref>/versions")
@require_scope("templates:write")
def add_version(ref: str) -> Any:
    session = request_session()
    template = _own(ref)
    if template.archived_at is not None:
        raise Problem(409, "archived", "the template is archived: create another")
    try:
        version = store.new_version(session, template, json_object(), g.api_key_id)
    except TemplateProblem as exc:
        raise _invalid(exc) from None
    session.commit()
    return store.view(template, version), 201


@bp.post("/<ref>/archive")
@require_scope("templates:write")
def archive(ref: str) -> Any:
    session = request_session()
    template = _own(ref)
    store.archive(template)
    session.commit()
    return store.view(template)


@bp.post("/<ref>/preview")
@require_scope("templates:write")
def preview(ref: str) -> Any:
    """``{"variables": {...}, "locale": "pt-BR"?, "version": n?}``: per channel, the text,
    its encoding, its segments, and the characters that forced UCS-2."""
    settings: Settings = current_app.extensions["switchboard.settings"]
    body = parse_body(PreviewIn)
    template = _own(ref)
    try:
        version = store.version_of(request_session(), template, _version_arg(body.version))
        return store.preview(version, body.variables, body.locale, settings.public_base_url)
    except TemplateProblem as exc:
        raise _invalid(exc) from None
