"""Locale tags (BCP 47, simplified) and the fallback chain: ``pt-BR`` → ``pt`` → default."""

from __future__ import annotations

import re
from collections.abc import Collection

TAG = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z0-9]{2,8}))?$")


def normalize(tag: str) -> str:
    """``pt_br`` → ``pt-BR``, ``EN`` → ``en``; ValueError when it is not a locale tag."""
    found = TAG.match(tag.strip()) if isinstance(tag, str) else None
    if found is None:
        raise ValueError(f"{str(tag)[:40]!r} is not a locale like en, pt or pt-BR")
    language, region = found.group(1).lower(), found.group(2)
    if region is None:
        return language
    return f"{language}-{region.upper() if len(region) == 2 else region.title()}"


def chain(wanted: str | None, default: str) -> list[str]:
    """The locales to try, in order: the wanted one, its language alone, the default."""
    order: list[str] = []
    if wanted:
        tag = normalize(wanted)
        order += [tag, tag.split("-", 1)[0]]
    order.append(default)
    return list(dict.fromkeys(order))


def resolve(wanted: str | None, default: str, available: Collection[str]) -> str | None:
    """The first of ``chain`` the template has; None when none (a 422 for the caller)."""
    for tag in chain(wanted, default):
        if tag in available:
            return tag
    return None
