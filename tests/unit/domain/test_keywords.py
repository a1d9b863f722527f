"""Keyword matching: one word only, any case, punctuation and whitespace around it ignored."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.messaging.compliance.keywords import (
    Keyword,
    classify,
    normalise,
    reply_text,
    validate_words,
)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("STOP", Keyword.OPT_OUT),
        ("Stop.", Keyword.OPT_OUT),
        (" stop! ", Keyword.OPT_OUT),
        ("«stop»", Keyword.OPT_OUT),
        ("STOP 🛑", Keyword.OPT_OUT),
        ("STOPALL", Keyword.OPT_OUT),
        ("end", Keyword.OPT_OUT),
        ("Revoke", Keyword.OPT_OUT),
        ("optout", Keyword.OPT_OUT),
        ("START", Keyword.OPT_IN),
        ("yes!", Keyword.OPT_IN),
        ("unstop", Keyword.OPT_IN),
        ("help?", Keyword.HELP),
        ("Info", Keyword.HELP),
        ("\uff33\uff34\uff2f\uff30", Keyword.OPT_OUT),  # full-width letters, as some phones send
        ("please don't stop sending me updates", None),
        ("stop it", None),
        ("opt out", None),
        ("stopping", None),
        ("", None),
        (None, None),
        ("...", None),
    ],
)
def test_classify(text: str | None, kind: Keyword | None) -> None:
    assert classify(text) is kind


def test_a_tenant_replaces_a_list_and_keeps_the_others() -> None:
    overrides = {"opt_out": ["ARRET"]}
    assert classify("arrêt".replace("ê", "e"), overrides) is Keyword.OPT_OUT
    assert classify("STOP", overrides) is None
    assert classify("HELP", overrides) is Keyword.HELP


def test_replies_default_and_may_be_silenced() -> None:
    assert "STOP" in (reply_text(Keyword.HELP) or "")
    assert reply_text(Keyword.OPT_OUT, {"opt_out": ""}) is None
    assert reply_text(Keyword.OPT_IN, {"opt_in": "Welcome back"}) == "Welcome back"


def test_keyword_lists_are_single_words() -> None:
    assert validate_words("stop, Arret ,QUIT") == ["STOP", "ARRET", "QUIT"]
    with pytest.raises(ValueError):
        validate_words("stop now")
    with pytest.raises(ValueError):
        validate_words(" , ")


@given(st.text(max_size=20), st.text(max_size=20))
def test_two_words_are_never_a_keyword(first: str, second: str) -> None:
    words = [w for w in (first.split() + second.split()) if normalise(w)]
    if len(words) >= 2:
        assert classify(" ".join(words)) is None
