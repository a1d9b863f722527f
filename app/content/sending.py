"""Sending from a template: the intent's template, variables and locale become each
channel's content, pinned to the template's current version at intake.

One query finds the template's current version and the contact's stored locale.
A version is parsed once per process (versions never change). URL variables are
shortened: a ``short_links`` row per URL, written with the message.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.content import templates as t
from app.content.store import TemplateProblem, render_version
from app.content.variables import SHORT_CODE_LENGTH, Problem
from app.domain.ids import is_id
from app.infra.db import Prepared, execute_at_once
from app.messaging.intake.intents import Media, SendIntent
from app.models import Contact, ShortLink, Template, TemplateVersion
from app.security.crypto import keyring


@dataclass(frozen=True)
class FromTemplate:
    """What a message records of its template, and each channel's content."""

    template_id: str
    version: int
    locale: str
    # Empty when every channel sends the same (the message's own body and media).
    alternates: dict[str, dict[str, Any]]
    links: list[tuple[str, str]]

    def short_links(self, tenant_id: str) -> list[ShortLink]:
        return [ShortLink(code=c, tenant_id=tenant_id, url=u) for c, u in self.links]


# What a send needs to know of its template: one indexed read, no content (that is
# parsed once per process and version: versions never change).
_LOOKUP_SQL = """
SELECT t.id, t.archived_at IS NOT NULL, v.id, v.version,
       (SELECT c.locale FROM contacts AS c
        WHERE c.tenant_id = %(tenant_id)s AND c.phone_index = ANY(%(phone_indexes)s)
        LIMIT 1)
FROM templates AS t
JOIN template_versions AS v ON v.template_id = t.id AND v.version = t.latest_version
WHERE t.tenant_id = %(tenant_id)s AND (t.id = %(ref)s OR t.name = %(ref)s)
"""
_LOOKUP = Prepared.of("switchboard_template_v2", _LOOKUP_SQL, {"phone_indexes": "text[]"})
_PARSED: dict[int, t.Parsed] = {}
_PARSED_MAX = 1024
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Found:
    template_id: str
    archived: bool
    version_id: int
    version: int
    contact_locale: str | None


def _lookup(session: Session, tenant_id: str, ref: str, phone_indexes: list[str]) -> Found | None:
    """The template's current version (and the contact's stored locale) in one round trip:
    a prepared statement on Postgres, a query on SQLite."""
    engine = session.get_bind()
    if isinstance(engine, Engine) and engine.dialect.name == "postgresql":
        params = {"tenant_id": tenant_id, "ref": ref, "phone_indexes": phone_indexes}
        row = execute_at_once(engine, _LOOKUP, params)
    else:
        contact_locale = (
            select(Contact.locale)
            .where(Contact.tenant_id == tenant_id, Contact.phone_index.in_(phone_indexes))
            .limit(1)
            .scalar_subquery()
        )
        column = Template.id if is_id(ref, "tpl") else Template.name
        row = session.execute(
            select(
                Template.id,
                Template.archived_at.is_not(None),
                TemplateVersion.id,
                TemplateVersion.version,
                contact_locale,
            )
            .join(
                TemplateVersion,
                (TemplateVersion.template_id == Template.id)
                & (TemplateVersion.version == Template.latest_version),
            )
            .where(Template.tenant_id == tenant_id, column == ref)
        ).first()
    return None if row is None else Found(*row)


def parsed_version(session: Session, version_id: int) -> t.Parsed:
    """A version, parsed once per process."""
    found = _PARSED.get(version_id)
    if found is not None:
        return found
    version = session.get(TemplateVersion, version_id)
    assert version is not None
    found = t.check(version.variables, version.default_locale, version.locales)
    with _LOCK:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.pop(next(iter(_PARSED)))
        _PARSED[version_id] = found
    return found


def channel_content(kind: str, found: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A channel's content to send: its own if the template has it, else the SMS text.
    An RCS card without rich-content support is sent as its title and description, with
    its image."""
    own = found.get(kind)
    if own is None or kind == "sms":
        return {"body": found["sms"]["text"], "media": []}
    if kind == "mms":
        return {"body": own.get("text") or None, "media": own.get("media", [])}
    if "card" in own:
        card = own["card"]
        media = (
            [{"url": card["media_url"], "content_type": "image/*"}] if "media_url" in card else []
        )
        return {
            "body": t.text_of(own),
            "media": media,
            "card": card,
            "suggestions": own.get("suggestions", []),
        }
    return {"body": own.get("text"), "media": [], "suggestions": own.get("suggestions", [])}


def prepare(
    session: Session, tenant_id: str, intent: SendIntent, base_url: str
) -> tuple[SendIntent, FromTemplate]:
    """The intent with its first channel's content as body and media, and what the message
    records. TemplateProblem lists every problem, each with its field."""
    assert intent.template is not None
    found = _lookup(session, tenant_id, intent.template, keyring().blind_indexes(intent.to))
    if found is None:
        raise TemplateProblem([Problem("template", "unknown", "no such template")])
    if found.archived:
        raise TemplateProblem([Problem("template", "archived", "the template is archived")])
    stored_locale = found.contact_locale
    ready = parsed_version(session, found.version_id)
    links: list[tuple[str, str]] = []

    def link(url: str) -> str:
        code = secrets.token_urlsafe(SHORT_CODE_LENGTH * 3 // 4)
        links.append((code, url))
        return f"{base_url}/s/{code}"

    tag, rendered = render_version(
        ready, intent.variables or {}, intent.locale or stored_locale, link
    )
    problems: list[Problem] = []
    alternates: dict[str, dict[str, Any]] = {
        str(k): channel_content(k, rendered) for k in intent.channels
    }
    for kind, content in alternates.items():
        if content["body"] is not None and len(content["body"]) > t.MAX_TEXT:
            problems.append(
                Problem(
                    "variables",
                    "too_long",
                    f"the {kind} text renders to {len(content['body'])} characters; "
                    f"at most {t.MAX_TEXT}",
                )
            )
    if problems:
        raise TemplateProblem(problems)
    first = alternates[intent.channels[0]]
    if all(
        (c["body"], c["media"]) == (first["body"], first["media"]) and len(c) == 2
        for c in alternates.values()
    ):
        alternates = {}  # every channel sends the same: the message's body and media say it
    concrete = intent.model_copy(
        update={
            "body": first["body"],
            "media": [Media.model_validate(m) for m in first["media"]],
        }
    )
    return concrete, FromTemplate(found.template_id, found.version, tag, alternates, links)
