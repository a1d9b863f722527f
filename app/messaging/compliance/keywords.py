"""Compliance keywords (STOP, START, HELP) and the auto-replies they earn.

Only a message that is a single word counts: case, surrounding whitespace and
punctuation are ignored, so "Stop." and " stop! " opt out, and "please don't
stop sending me updates" does not. Each tenant may replace any list or text.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum
from typing import Any


class Keyword(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


DEFAULT_KEYWORDS: dict[Keyword, tuple[str, ...]] = {
    Keyword.OPT_OUT: (
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "REVOKE",
        "OPTOUT",
    ),
    Keyword.OPT_IN: ("START", "YES", "UNSTOP"),
    Keyword.HELP: ("HELP", "INFO"),
}

DEFAULT_REPLIES: dict[Keyword, str] = {
    Keyword.OPT_OUT: "You have been unsubscribed and will receive no more messages. Reply START "
    "to resubscribe.",
    Keyword.OPT_IN: "You are subscribed again. Reply STOP to unsubscribe, HELP for help.",
    Keyword.HELP: "Reply STOP to unsubscribe, START to resubscribe. Msg&data rates may apply.",
}


def _edge(c: str) -> bool:
    """Whitespace, punctuation or a symbol (an emoji, say): ignored around a keyword."""
    return c.isspace() or unicodedata.category(c)[0] in "PSZC"


def _trim(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _edge(text[start]):
        start += 1
    while end > start and _edge(text[end - 1]):
        end -= 1
    return text[start:end]


def normalise(text: str | None) -> str | None:
    """The single word ``text`` is, upper-cased; None if it is not exactly one word."""
    if not text:
        return None
    word = _trim(unicodedata.normalize("NFKC", text))
    if not word or any(c.isspace() for c in word):
        return None
    return word.upper()


def keyword_lists(overrides: dict[str, Any] | None) -> dict[Keyword, frozenset[str]]:
    lists: dict[Keyword, frozenset[str]] = {}
    for kind, default in DEFAULT_KEYWORDS.items():
        chosen = (overrides or {}).get(kind.value)
        words = default if chosen is None else chosen
        lists[kind] = frozenset(w for w in (normalise(str(w)) for w in words) if w)
    return lists


def classify(text: str | None, overrides: dict[str, Any] | None = None) -> Keyword | None:
    """Which keyword ``text`` is, for a tenant with these overrides; None for a plain reply.

    Opt-out is checked first, so a word a tenant put in two lists opts out.
    """
    word = normalise(text)
    if word is None:
        return None
    for kind, words in keyword_lists(overrides).items():
        if word in words:
            return kind
    return None


def reply_text(kind: Keyword, overrides: dict[str, Any] | None = None) -> str | None:
    """The auto-reply for ``kind``; a tenant may set it to "" to send none."""
    chosen = (overrides or {}).get(kind.value)
    text = DEFAULT_REPLIES[kind] if chosen is None else str(chosen)
    return text or None


def validate_words(raw: str) -> list[str]:
    """A comma-separated keyword list, each a single word, or ValueError."""
    words = [w.strip() for w in raw.split(",") if w.strip()]
    bad = [w for w in words if normalise(w) is None]
    if bad or not words:
        raise ValueError("keywords must be single words, separated by commas")
    return [w.upper() for w in words]
