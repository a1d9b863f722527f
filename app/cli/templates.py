"""``switchboard templates ...``: manage a tenant's message templates from a terminal."""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy import select

from app.cli.base import app_session, emit, json_option, main


@main.group()
def templates() -> None:
    """Message templates: versions, locales, channels, and a priced preview."""


tenant_option = click.option("--tenant", "tenant_id", required=True, help="The tenant's id.")


def _load_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--file") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path}: a JSON object", param_hint="--file")
    return data


def _fail(exc: Exception) -> click.ClickException:
    from app.content.store import TemplateProblem

    if isinstance(exc, TemplateProblem):
        return click.ClickException("; ".join(f"{p.field}: {p.message}" for p in exc.problems))
    return click.ClickException(str(exc))


def _find(session: Any, tenant_id: str, ref: str) -> Any:
    from app.content import store

    template = store.find(session, tenant_id, ref)
    if template is None:
        raise click.ClickException(f"no template {ref!r} in tenant {tenant_id}")
    return template


@templates.command("create")
@tenant_option
@click.option(
    "--file", "path", required=True, help="JSON: name, variables, default_locale, locales."
)
@json_option
def templates_create(tenant_id: str, path: str, as_json: bool) -> None:
    """Create a template (its version 1) from a JSON file."""
    from app.content import store
    from app.content.store import TemplateProblem

    body = _load_file(path)
    with app_session() as (session, _):
        try:
            template, version = store.create(session, tenant_id, body, "cli")
        except TemplateProblem as exc:
            raise _fail(exc) from None
        data = store.view(template, version)
    emit(as_json, data, f"created template {data['name']} ({data['id']}), version 1")


@templates.command("version")
@tenant_option
@click.argument("ref")
@click.option("--file", "path", required=True, help="JSON: variables, default_locale, locales.")
@json_option
def templates_version(tenant_id: str, ref: str, path: str, as_json: bool) -> None:
    """Add a version (sends already made keep theirs)."""
    from app.content import store
    from app.content.store import TemplateProblem

    body = _load_file(path)
    with app_session() as (session, _):
        template = _find(session, tenant_id, ref)
        if template.archived_at is not None:
            raise click.ClickException("the template is archived")
        try:
            version = store.new_version(session, template, body, "cli")
        except TemplateProblem as exc:
            raise _fail(exc) from None
        data = store.view(template, version)
    emit(as_json, data, f"template {data['name']}: version {data['version']['version']}")


@templates.command("list")
@tenant_option
@click.option("--archived", is_flag=True, help="Archived ones too.")
@json_option
def templates_list(tenant_id: str, archived: bool, as_json: bool) -> None:
    from app.content import store
    from app.models import Template

    with app_session() as (session, _):
        query = select(Template).where(Template.tenant_id == tenant_id)
        if not archived:
            query = query.where(Template.archived_at.is_(None))
        rows = [store.view(t) for t in session.scalars(query.order_by(Template.name))]
    human = "\n".join(
        f"{t['id']}  {t['name']:<30} v{t['latest_version']}{'  archived' if t['archived'] else ''}"
        for t in rows
    )
    emit(as_json, {"templates": rows}, human or "no templates")


@templates.command("show")
@tenant_option
@click.argument("ref")
@click.option("--version", "number", type=int, default=None)
@json_option
def templates_show(tenant_id: str, ref: str, number: int | None, as_json: bool) -> None:
    from app.content import store
    from app.content.store import TemplateProblem

    with app_session() as (session, _):
        template = _find(session, tenant_id, ref)
        try:
            data = store.view(template, store.version_of(session, template, number))
        except TemplateProblem as exc:
            raise _fail(exc) from None
    emit(as_json, data, json.dumps(data, indent=2, ensure_ascii=False))


@templates.command("archive")
@tenant_option
@click.argument("ref")
@json_option
def templates_archive(tenant_id: str, ref: str, as_json: bool) -> None:
    """Archive a template: no new sends or versions; sends made keep their content."""
    from app.content import store

    with app_session() as (session, _):
        template = _find(session, tenant_id, ref)
        store.archive(template)
        data = store.view(template)
    emit(as_json, data, f"archived template {data['name']}")


@templates.command("preview")
@tenant_option
@click.argument("ref")
@click.option("--variables", default="{}", help='JSON, e.g. \'{"name": "Ana"}\'.')
@click.option("--locale", default=None)
@click.option("--version", "number", type=int, default=None)
@json_option
def templates_preview(
    tenant_id: str, ref: str, variables: str, locale: str | None, number: int | None, as_json: bool
) -> None:
    """Each channel's text, its encoding, segments, and the characters forcing UCS-2."""
    from app.content import store
    from app.content.store import TemplateProblem

    try:
        given = json.loads(variables)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--variables") from None
    with app_session() as (session, settings):
        template = _find(session, tenant_id, ref)
        try:
            version = store.version_of(session, template, number)
            data = store.preview(version, given, locale, settings.public_base_url)
        except TemplateProblem as exc:
            raise _fail(exc) from None
    lines = [f"locale {data['locale']}, version {data['version']}"]
    for kind, channel in data["channels"].items():
        forcing = "".join(channel["ucs2_characters"])
        lines.append(
            f"[{kind}] {channel['encoding']}, {channel['segments']} segment(s), "
            f"{channel['characters']} characters"
            + (f"; UCS-2 because of: {forcing}" if forcing else "")
        )
        lines.append(f"  {channel['text']}")
    emit(as_json, data, "\n".join(lines))
