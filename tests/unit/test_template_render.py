"""The template language, locales, and pricing: unit and property-based."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.content import render as r
from app.content.locales import chain, normalize, resolve
from app.content.templates import InvalidTemplate, check, price
from app.content.variables import coerce, declare
from app.domain.segments import count_segments

SAFE_TEXT = st.text(max_size=40).filter(
    lambda s: "((" not in s and "))" not in s and not s.endswith("(") and not s.startswith(")")
)
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


def test_placeholders_and_optional_blocks() -> None:
    parts = r.parse("Hi ((name)).((code?? Your code is ((code)).))")
    assert r.names(parts) == {"name", "code"}
    assert r.render(parts, {"name": "Ana", "code": "123"}) == "Hi Ana. Your code is 123."
    assert r.render(parts, {"name": "Ana"}) == "Hi Ana."


@pytest.mark.parametrize(
    ("source", "where"),
    [
        ("Hi ((name", 9),
        ("((1abc))", 2),
        ("((a??b((c??d))e))", 9),
        ("((a??never closed", 17),
        ("((a b))", 3),
    ],
)
def test_syntax_errors_say_where(source: str, where: int) -> None:
    with pytest.raises(r.TemplateSyntaxError) as caught:
        r.parse(source)
    assert caught.value.position == where


@given(
    st.lists(
        st.one_of(SAFE_TEXT.map(lambda s: ("text", s)), NAMES.map(lambda n: ("var", n))),
        max_size=12,
    ),
    st.dictionaries(NAMES, st.text(max_size=30)),
)
def test_rendering_is_the_literal_text_with_each_value(
    pieces: list[tuple[str, str]], values: dict[str, str]
) -> None:
    """Any template built of text and placeholders renders to its text with each value in
    place, and a value is never read as syntax."""
    source = ""
    expected = ""
    for kind, value in pieces:
        if kind == "text":
            # Keep adjacent pieces from forming "((" or "))" across the joint.
            if source.endswith("(") and value.startswith("("):
                continue
            if source.endswith(")") and value.startswith(")"):
                continue
            source += value
            expected += value
        else:
            if source.endswith("("):
                continue
            source += f"(({value}))"
            expected += values.get(value, "")
    assert r.render(r.parse(source), values) == expected


def test_an_injection_in_a_value_stays_literal() -> None:
    parts = r.parse("Hello ((name))")
    evil = "((secret)) ((name??x)) {{7*7}} ${jndi:ldap://x} <script>"
    assert r.render(parts, {"name": evil, "secret": "s3cret"}) == f"Hello {evil}"


def test_locale_fallback_chain() -> None:
    assert normalize("pt_br") == "pt-BR" and normalize("EN") == "en"
    assert chain("pt-BR", "en") == ["pt-BR", "pt", "en"]
    assert resolve("pt-BR", "en", {"pt", "en"}) == "pt"
    assert resolve("pt-BR", "en", {"pt-BR", "pt", "en"}) == "pt-BR"
    assert resolve("fr-CA", "en", {"pt", "en"}) == "en"
    assert resolve("fr-CA", "de", {"pt", "en"}) is None
    with pytest.raises(ValueError):
        normalize("not a locale!")


def test_typed_variables() -> None:
    declared = {
        "n": declare("n", {"type": "number", "decimals": 2}),
        "d": declare("d", {"type": "date", "format": "dmy"}),
        "u": declare("u", {"type": "url"}),
        "s": declare("s", {"type": "string", "max_length": 5, "required": False}),
    }
    text, urls, problems = coerce(declared, {"n": 3, "d": "2026-11-28", "u": "https://x.example/a"})
    assert text == {"n": "3.00", "d": "28/11/2026"} and urls == {"u": "https://x.example/a"}
    assert problems == []
    _, _, problems = coerce(
        declared, {"n": "3", "d": "tomorrow", "u": "javascript:alert(1)", "s": "toolong", "x": 1}
    )
    assert {(p.field, p.code) for p in problems} == {
        ("variables.n", "invalid"),
        ("variables.d", "invalid"),
        ("variables.u", "invalid"),
        ("variables.s", "invalid"),
        ("variables.x", "unknown"),
    }
    _, _, problems = coerce(declared, {})
    assert {p.field for p in problems} == {"variables.n", "variables.d", "variables.u"}


def test_a_template_refers_only_to_declared_variables() -> None:
    with pytest.raises(InvalidTemplate) as caught:
        check({"a": {"type": "string"}}, "en", {"en": {"sms": "((a)) ((b))"}})
    assert caught.value.field == "locales.en.sms" and "((b))" in str(caught.value)
    with pytest.raises(InvalidTemplate) as caught:
        check({}, "en", {"en": {"mms": {"text": "x"}}})
    assert "sms" in str(caught.value)
    with pytest.raises(InvalidTemplate) as caught:
        check({}, "fr", {"en": {"sms": "x"}})
    assert caught.value.field == "default_locale"


@given(st.text(max_size=400))
def test_the_price_is_the_projects_own_segment_count(text: str) -> None:
    found = price(text)
    count = count_segments(text)
    assert (found["encoding"], found["segments"]) == (count.encoding, count.segments)
    assert bool(found["ucs2_characters"]) == (count.encoding == "UCS-2")


def test_an_emoji_triples_a_message() -> None:
    plain = "x" * 150
    assert price(plain)["segments"] == 1
    emoji = price(plain + " 🎉")
    assert emoji == {
        "encoding": "UCS-2",
        "segments": 3,
        "characters": 152,
        "ucs2_characters": ["🎉"],
    }
