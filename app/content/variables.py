"""Typed template variables: what a template declares, and turning given values into text.

A declaration: ``{"type": "string"|"number"|"date"|"url", "required": true}``, with
``max_length`` for strings (default 500), ``decimals`` for numbers, and ``format`` for
dates (``iso``: 2026-11-28, ``dmy``: 28/11/2026, ``mdy``: 11/28/2026). A ``url``
is shortened when the message is sent (``/s/<code>`` on PUBLIC_BASE_URL); a preview
prices it at that length.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

VarType = Literal["string", "number", "date", "url"]
TYPES: tuple[VarType, ...] = ("string", "number", "date", "url")
DATE_FORMATS = {"iso": "%Y-%m-%d", "dmy": "%d/%m/%Y", "mdy": "%m/%d/%Y"}
MAX_URL = 2000
# The length of a shortened link's code: PUBLIC_BASE_URL + "/s/" + this many characters.
SHORT_CODE_LENGTH = 8


@dataclass(frozen=True)
class Problem:
    """One variable's problem, as a 422 reports it."""

    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class InvalidDeclaration(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Variable:
    name: str
    type: VarType
    required: bool = True
    max_length: int = 500
    decimals: int | None = None
    format: str = "iso"

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"type": self.type, "required": self.required}
        if self.type == "string":
            found["max_length"] = self.max_length
        if self.type == "number" and self.decimals is not None:
            found["decimals"] = self.decimals
        if self.type == "date":
            found["format"] = self.format
        return found


def declare(name: str, given: Any) -> Variable:
    """A declaration from its JSON form; InvalidDeclaration names the bad part."""
    field = f"variables.{name}"
    if not isinstance(given, Mapping):
        raise InvalidDeclaration(field, 'a declaration is an object like {"type": "string"}')
    unknown = set(given) - {"type", "required", "max_length", "decimals", "format"}
    if unknown:
        raise InvalidDeclaration(field, f"unknown keys: {', '.join(sorted(unknown))}")
    kind = given.get("type")
    if kind not in TYPES:
        raise InvalidDeclaration(f"{field}.type", f"one of {', '.join(TYPES)}")
    required = given.get("required", True)
    if not isinstance(required, bool):
        raise InvalidDeclaration(f"{field}.required", "true or false")
    max_length = given.get("max_length", 500)
    if (
        not isinstance(max_length, int)
        or isinstance(max_length, bool)
        or not 1 <= max_length <= 1600
    ):
        raise InvalidDeclaration(f"{field}.max_length", "a whole number from 1 to 1600")
    decimals = given.get("decimals")
    if decimals is not None and (
        not isinstance(decimals, int) or isinstance(decimals, bool) or not 0 <= decimals <= 6
    ):
        raise InvalidDeclaration(f"{field}.decimals", "a whole number from 0 to 6")
    fmt = given.get("format", "iso")
    if fmt not in DATE_FORMATS:
        raise InvalidDeclaration(f"{field}.format", f"one of {', '.join(DATE_FORMATS)}")
    return Variable(name, kind, required, max_length, decimals, fmt)


def _number(value: Any, variable: Variable) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    if abs(value) >= 1e15:
        raise ValueError("is too large")
    if variable.decimals is not None:
        return f"{value:.{variable.decimals}f}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _date(value: Any, variable: Variable) -> str:
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("must be an ISO 8601 date, like 2026-11-28")
    try:
        when: date = (
            datetime.fromisoformat(value.replace("Z", "+00:00")).date()
            if "T" in value
            else date.fromisoformat(value)
        )
    except ValueError:
        raise ValueError("must be an ISO 8601 date, like 2026-11-28") from None
    return when.strftime(DATE_FORMATS[variable.format])


def _url(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_URL:
        raise ValueError(f"must be an http(s) URL of at most {MAX_URL} characters")
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in value)
    ):
        raise ValueError("must be an http(s) URL with a host")
    return value


def _string(value: Any, variable: Variable) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if len(value) > variable.max_length:
        raise ValueError(f"must be at most {variable.max_length} characters")
    if "\x00" in value:
        raise ValueError("must not contain NUL")
    return value


def coerce(
    declared: Mapping[str, Variable], given: Any
) -> tuple[dict[str, str], dict[str, str], list[Problem]]:
    """(text per variable, URL per url variable, problems). Every problem is reported,
    not only the first: a missing required one, an unknown one, an ill-typed one."""
    problems: list[Problem] = []
    if not isinstance(given, Mapping):
        return {}, {}, [Problem("variables", "type", "variables must be an object")]
    for name in sorted(set(given) - set(declared)):
        problems.append(
            Problem(f"variables.{name}"[:100], "unknown", "the template has no such variable")
        )
    text: dict[str, str] = {}
    urls: dict[str, str] = {}
    for name, variable in declared.items():
        value = given.get(name)
        field = f"variables.{name}"
        if value is None or value == "":
            if variable.required:
                problems.append(Problem(field, "missing", f"a {variable.type} is required"))
            continue
        try:
            if variable.type == "string":
                text[name] = _string(value, variable)
            elif variable.type == "number":
                text[name] = _number(value, variable)
            elif variable.type == "date":
                text[name] = _date(value, variable)
            else:
                urls[name] = _url(value)
        except ValueError as exc:
            problems.append(Problem(field, "invalid", str(exc)))
    return text, urls, problems
