"""Templates in the database: create, find (by id or name), new versions, archive, preview.

A version never changes once written: an edit is a new version, and a message
records the version it was rendered from, so a send in flight keeps its wording.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.content import templates as t
from app.content.locales import normalize, resolve
from app.content.variables import Problem, coerce

__all__ = ["Problem", "TemplateProblem"]
from app.domain.clock import utcnow
from app.domain.ids import is_id
from app.models import Template, TemplateVersion

NAME_RULE = "1 to 100 of letters, digits, _ . -"


class TemplateProblem(ValueError):
    """A request about a template that cannot be met: the 422's errors."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


def _fields(body: Mapping[str, Any]) -> t.Parsed:
    try:
        return t.check(body.get("variables", {}), body.get("default_locale"), body.get("locales"))
    except t.InvalidTemplate as exc:
        raise TemplateProblem([Problem(exc.field, "invalid", str(exc))]) from None


def _good_name(name: Any) -> str:
    if (
        not isinstance(name, str)
        or not 0 < len(name) <= 100
        or not all(c.isalnum() or c in "_.-" for c in name)
        or is_id(name, "tpl")
    ):
        raise TemplateProblem([Problem("name", "invalid", NAME_RULE)])
    return name


def _write_version(
    session: Session, template: Template, number: int, body: Mapping[str, Any], actor: str
) -> TemplateVersion:
    parsed = _fields(body)
    version = TemplateVersion(
        template_id=template.id,
        version=number,
        variables={name: v.as_dict() for name, v in parsed.variables.items()},
        default_locale=parsed.default_locale,
        locales={tag: dict(channels) for tag, channels in _normalized(body["locales"]).items()},
        created_by=actor,
    )
    session.add(version)
    session.flush()  # its number is taken now (unique per template), and its time set
    return version


def _normalized(locales: Mapping[str, Any]) -> dict[str, Any]:
    return {normalize(str(tag)): channels for tag, channels in locales.items()}


def create(
    session: Session, tenant_id: str, body: Mapping[str, Any], actor: str
) -> tuple[Template, TemplateVersion]:
    name = _good_name(body.get("name"))
    unknown = set(body) - {"name", "variables", "default_locale", "locales"}
    if unknown:
        raise TemplateProblem([Problem(sorted(unknown)[0], "unknown", "not a template field")])
    if session.scalar(
        select(Template.id).where(Template.tenant_id == tenant_id, Template.name == name)
    ):
        raise TemplateProblem([Problem("name", "taken", f"a template named {name!r} exists")])
    template = Template(tenant_id=tenant_id, name=name, latest_version=1)
    session.add(template)
    session.flush()
    return template, _write_version(session, template, 1, body, actor)


def new_version(
    session: Session, template: Template, body: Mapping[str, Any], actor: str
) -> TemplateVersion:
    """The next version (the template row is locked: two edits get two numbers)."""
    unknown = set(body) - {"variables", "default_locale", "locales"}
    if unknown:
        raise TemplateProblem([Problem(sorted(unknown)[0], "unknown", "not a version field")])
    locked = session.scalar(select(Template).where(Template.id == template.id).with_for_update())
    assert locked is not None
    number = locked.latest_version + 1
    version = _write_version(session, locked, number, body, actor)
    locked.latest_version = number
    return version


def find(session: Session, tenant_id: str, ref: str) -> Template | None:
    """A tenant's template by id (``tpl_...``) or by name."""
    column = Template.id if is_id(ref, "tpl") else Template.name
    return session.scalar(select(Template).where(Template.tenant_id == tenant_id, column == ref))


def version_of(session: Session, template: Template, number: int | None = None) -> TemplateVersion:
    found = session.scalar(
        select(TemplateVersion).where(
            TemplateVersion.template_id == template.id,
            TemplateVersion.version == (number or template.latest_version),
        )
    )
    if found is None:
        raise TemplateProblem([Problem("version", "unknown", "no such version")])
    return found


def archive(template: Template) -> None:
    if template.archived_at is None:
        template.archived_at = utcnow()


def view(template: Template, version: TemplateVersion | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": template.id,
        "name": template.name,
        "latest_version": template.latest_version,
        "archived": template.archived_at is not None,
        "created_at": template.created_at.isoformat(),
    }
    if version is not None:
        found["version"] = {
            "version": version.version,
            "variables": version.variables,
            "default_locale": version.default_locale,
            "locales": version.locales,
            "created_at": version.created_at.isoformat(),
        }
    return found


def parsed(version: TemplateVersion) -> t.Parsed:
    """A stored version, parsed again (it was checked when written)."""
    return t.check(version.variables, version.default_locale, version.locales)


def render_version(
    ready: t.Parsed, variables: Any, locale: str | None, link: Callable[[str], str]
) -> tuple[str, dict[str, dict[str, Any]]]:
    """(the locale used, each channel's content), with ``link(url)`` in place of each URL
    variable. TemplateProblem lists every problem: variables, and the locale."""
    text, urls, problems = coerce(ready.variables, variables)
    tag = None
    try:
        tag = resolve(locale, ready.default_locale, ready.content)
    except ValueError as exc:
        problems.append(Problem("locale", "invalid", str(exc)))
    if tag is None and not any(p.field == "locale" for p in problems):
        problems.append(Problem("locale", "unknown", "no content for it or its fallbacks"))
    if problems:
        raise TemplateProblem(problems)
    assert tag is not None
    values = {**text, **{name: link(url) for name, url in urls.items()}}
    return tag, {k: t.render_channel(c, values) for k, c in ready.content[tag].items()}


def preview(
    version: TemplateVersion, variables: Any, locale: str | None, base_url: str
) -> dict[str, Any]:
    """Per channel: the text, its encoding, its segments and the characters forcing UCS-2.
    A URL variable is priced at the length its short link will have."""
    shortened: list[str] = []

    def link(url: str) -> str:
        shortened.append(url)
        return t.short_link_placeholder(base_url)

    ready = parsed(version)
    tag, channels = render_version(ready, variables, locale, link)
    names = sorted(
        n for n, v in ready.variables.items() if v.type == "url" and n in (variables or {})
    )
    out: dict[str, Any] = {}
    for kind, content in channels.items():
        text = t.text_of(content)
        entry = {**content, "text": text, **t.price(text)}
        if len(text) > t.MAX_TEXT:
            entry["over_limit"] = True
        out[kind] = entry
    return {"locale": tag, "version": version.version, "shortened": names, "channels": out}
