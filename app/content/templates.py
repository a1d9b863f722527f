"""A template version's content: checking it when it is written, and rendering it.

Content per locale: ``{"sms": "text", "mms": {"text", "media"}, "rcs": {"text",
"card": {"title", "description", "media_url"}, "suggestions": [...]}}``. ``sms`` is
required in every locale: it is the text every channel falls back to. Every
placeholder must be a declared variable, and every declared variable is typed
(``app.content.variables``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.content import render as r
from app.content.locales import normalize
from app.content.variables import SHORT_CODE_LENGTH, InvalidDeclaration, Variable, declare
from app.domain.segments import GSM7_BASIC, GSM7_EXTENDED, count_segments

CHANNEL_KEYS = ("sms", "mms", "rcs")
MAX_TEXT = 1600  # what a send intent's body may hold
RCS_TITLE, RCS_DESCRIPTION, RCS_SUGGESTION, RCS_SUGGESTIONS = 200, 2000, 25, 11
MAX_MEDIA = 10


class InvalidTemplate(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Parsed:
    """A version, checked and parsed: ready to render many times."""

    variables: dict[str, Variable]
    default_locale: str
    # locale -> channel -> {"text": parts, ...}
    content: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


def _text(value: Any, field_name: str, limit: int) -> tuple[r.Part, ...]:
    if not isinstance(value, str) or not value.strip():
        raise InvalidTemplate(field_name, "must be non-empty text")
    if len(value) > limit:
        raise InvalidTemplate(field_name, f"must be at most {limit} characters")
    try:
        return r.parse(value)
    except r.TemplateSyntaxError as exc:
        raise InvalidTemplate(field_name, str(exc)) from None


def _media(value: Any, field_name: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or len(value) > MAX_MEDIA:
        raise InvalidTemplate(field_name, f"a list of at most {MAX_MEDIA} media")
    found = []
    for n, item in enumerate(value):
        if (
            not isinstance(item, Mapping)
            or not isinstance(item.get("url"), str)
            or not str(item["url"]).startswith(("https://", "http://"))
            or not isinstance(item.get("content_type"), str)
            or "/" not in str(item["content_type"])
        ):
            raise InvalidTemplate(f"{field_name}.{n}", "each medium is {url, content_type}")
        found.append({"url": str(item["url"]), "content_type": str(item["content_type"])})
    return found


def _channel(kind: str, value: Any, at: str) -> dict[str, Any]:
    if kind == "sms":
        return {"text": _text(value, at, MAX_TEXT)}
    if not isinstance(value, Mapping):
        raise InvalidTemplate(at, "must be an object")
    unknown = set(value) - ({"text", "media"} if kind == "mms" else {"text", "card", "suggestions"})
    if unknown:
        raise InvalidTemplate(at, f"unknown keys: {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    if kind == "mms":
        out["text"] = _text(value.get("text"), f"{at}.text", MAX_TEXT) if "text" in value else ()
        out["media"] = _media(value.get("media", []), f"{at}.media")
        if not out["text"] and not out["media"]:
            raise InvalidTemplate(at, "an MMS needs text, media, or both")
        return out
    card = value.get("card")
    if "text" in value:
        out["text"] = _text(value["text"], f"{at}.text", MAX_TEXT)
    if card is not None:
        if not isinstance(card, Mapping) or set(card) - {"title", "description", "media_url"}:
            raise InvalidTemplate(f"{at}.card", "a card is {title, description, media_url?}")
        out["card"] = {
            "title": _text(card.get("title"), f"{at}.card.title", RCS_TITLE),
            "description": _text(
                card.get("description"), f"{at}.card.description", RCS_DESCRIPTION
            ),
        }
        media_url = card.get("media_url")
        if media_url is not None:
            if not isinstance(media_url, str) or not media_url.startswith("https://"):
                raise InvalidTemplate(f"{at}.card.media_url", "an https URL")
            out["card"]["media_url"] = media_url
    suggestions = value.get("suggestions", [])
    if not isinstance(suggestions, list) or len(suggestions) > RCS_SUGGESTIONS:
        raise InvalidTemplate(f"{at}.suggestions", f"a list of at most {RCS_SUGGESTIONS} replies")
    out["suggestions"] = [
        _text(s, f"{at}.suggestions.{n}", RCS_SUGGESTION) for n, s in enumerate(suggestions)
    ]
    if "text" not in out and "card" not in out:
        raise InvalidTemplate(at, "an RCS message needs text or a card")
    return out


def _all_parts(channel: dict[str, Any]) -> list[tuple[r.Part, ...]]:
    parts = [channel["text"]] if channel.get("text") else []
    if "card" in channel:
        parts += [channel["card"]["title"], channel["card"]["description"]]
    parts += channel.get("suggestions", [])
    return parts


def check(variables: Any, default_locale: Any, locales: Any) -> Parsed:
    """A version as given over the API; InvalidTemplate names the field."""
    if not isinstance(variables, Mapping):
        raise InvalidTemplate("variables", "an object of declarations")
    try:
        declared = {str(name): declare(str(name), spec) for name, spec in variables.items()}
    except InvalidDeclaration as exc:
        raise InvalidTemplate(exc.field, str(exc)) from None
    for name in declared:
        if not r.NAME.fullmatch(name):
            raise InvalidTemplate(f"variables.{name}"[:100], "a name is letters, digits and _")
    if not isinstance(default_locale, str):
        raise InvalidTemplate("default_locale", "a locale like en")
    try:
        default = normalize(default_locale)
    except ValueError as exc:
        raise InvalidTemplate("default_locale", str(exc)) from None
    if not isinstance(locales, Mapping) or not locales:
        raise InvalidTemplate("locales", "an object of locales, each with its channels")
    content: dict[str, dict[str, dict[str, Any]]] = {}
    for raw_tag, channels in locales.items():
        try:
            tag = normalize(str(raw_tag))
        except ValueError as exc:
            raise InvalidTemplate(f"locales.{str(raw_tag)[:40]}", str(exc)) from None
        at = f"locales.{tag}"
        if not isinstance(channels, Mapping) or "sms" not in channels:
            raise InvalidTemplate(at, "each locale needs at least its sms text (the fallback)")
        unknown = set(channels) - set(CHANNEL_KEYS)
        if unknown:
            raise InvalidTemplate(at, f"unknown channels: {', '.join(sorted(map(str, unknown)))}")
        content[tag] = {k: _channel(k, v, f"{at}.{k}") for k, v in channels.items()}
        for kind, channel in content[tag].items():
            for parts in _all_parts(channel):
                for name in sorted(r.names(parts) - set(declared)):
                    raise InvalidTemplate(f"{at}.{kind}", f"(({name})) is not a declared variable")
    if default not in content:
        raise InvalidTemplate("default_locale", f"{default} has no content in locales")
    return Parsed(declared, default, content)


def short_link_placeholder(base_url: str) -> str:
    """A link of the length a shortened one will have (for pricing a preview)."""
    return f"{base_url}/s/{'x' * SHORT_CODE_LENGTH}"


def render_channel(channel: dict[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """One channel's content with the values in: text (and card, suggestions, media)."""
    out: dict[str, Any] = {}
    if channel.get("text"):
        out["text"] = r.render(channel["text"], values)
    if "media" in channel:
        out["media"] = list(channel["media"])
    if "card" in channel:
        card = channel["card"]
        out["card"] = {
            "title": r.render(card["title"], values),
            "description": r.render(card["description"], values),
        }
        if "media_url" in card:
            out["card"]["media_url"] = card["media_url"]
    if "suggestions" in channel:
        out["suggestions"] = [r.render(s, values) for s in channel["suggestions"]]
    return out


def text_of(content: dict[str, Any]) -> str:
    """The text a rendered channel sends: its text, or an RCS card's title and description
    (then its text), as providers without rich content get it."""
    card = content.get("card")
    if card is None:
        return str(content.get("text") or "")
    return "\n".join(p for p in (card["title"], card["description"], content.get("text")) if p)


def ucs2_forcing(text: str) -> list[str]:
    """The characters that keep ``text`` out of GSM-7, each once, in order."""
    return list(dict.fromkeys(c for c in text if c not in GSM7_BASIC and c not in GSM7_EXTENDED))


def price(text: str) -> dict[str, Any]:
    count = count_segments(text)
    return {
        "encoding": count.encoding,
        "segments": count.segments,
        "characters": len(text),
        "ucs2_characters": ucs2_forcing(text),
    }
