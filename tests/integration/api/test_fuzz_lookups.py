"""Every route's lookups by key, fuzzed with NULs and other awkward text: a 4xx, never a 5xx.

The routes come from the app's own URL map, so a route added later is fuzzed without a word
here: its path parameters, a query string, and (on the console) its forms, with an API key
that holds every scope and a signed-in console admin.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.infra.db import Database
from app.security.api_keys import KNOWN_SCOPES
from tests.factories import TenantCtx, make_tenant_ctx
from tests.support.console import csrf_of, make_user

FUZZ = settings(
    max_examples=30,  # each example visits every route (about 45 requests)
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# A sign-in for an unknown user still verifies a dummy argon2 hash (so timing tells nothing):
# each example costs a deliberate hash, and the refusal paths are few.
SIGN_IN_FUZZ = settings(FUZZ, max_examples=15)
# Text that a lookup must survive: NULs, other controls, long and non-ASCII strings.
awkward = st.one_of(
    st.sampled_from(["\x00", "msg_\x00", "a\x00b", "%00", "\x7f", "é", "x" * 300]),
    st.text(max_size=30),
)
ARG = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


def routes(app: Flask) -> list[tuple[str, str]]:
    """(method, rule) for every route that reads something from its path."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.arguments or rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, rule.rule))
    return sorted(found)


def fill(rule: str, value: str) -> str:
    return ARG.sub(lambda _m: quote(value, safe=""), rule)


@pytest.fixture
def everything(db: Database) -> TenantCtx:
    """A tenant whose API key holds every scope."""
    return make_tenant_ctx(db, scopes=tuple(sorted(KNOWN_SCOPES)))


def check(r: Any) -> None:
    assert r.status_code < 500, (r.status_code, r.get_data(as_text=True)[:300])


def test_the_route_list_is_not_empty(app: Flask) -> None:
    found = {rule for _method, rule in routes(app)}
    assert {"/v1/messages/<message_id>", "/webhooks/<provider_name>/<account_id>"} <= found


@FUZZ
@given(value=awkward, query=st.dictionaries(awkward, awkward, max_size=3))
def test_every_path_parameter_and_query_survives_a_nul(
    app: Flask, client: FlaskClient, everything: TenantCtx, value: str, query: dict[str, str]
) -> None:
    for method, rule in routes(app):
        r = client.open(
            fill(rule, value), method=method, query_string=query, headers=everything.headers
        )
        check(r)
        if "\x00" in value or any("\x00" in k + v for k, v in query.items()):
            assert r.status_code in (400, 404), (method, rule, r.status_code)


@FUZZ
@given(key=awkward)
def test_an_api_key_with_a_nul_is_a_clean_401(client: FlaskClient, key: str) -> None:
    assume("\r" not in key and "\n" not in key)  # no client can send a header with a newline
    r = client.get("/v1/messages", headers={"Authorization": f"Bearer {key}"})
    check(r)
    assert r.status_code == 401


def sign_in_form(browser: FlaskClient, username: str, password: str) -> dict[str, str]:
    page = browser.get("/console/login").get_data(as_text=True)
    return {"username": username, "password": password, "csrf_token": csrf_of(page)}


@pytest.fixture
def console(app: Flask, db: Database) -> FlaskClient:
    """A console client signed in as an admin."""
    browser = app.test_client()
    username, password = make_user(db, "admin")
    assert browser.post("/console/login", data=sign_in_form(browser, username, password))
    return browser


@SIGN_IN_FUZZ
@given(username=awkward, password=awkward, next_=awkward)
def test_console_sign_in_with_a_nul_is_a_clean_4xx(
    app: Flask, username: str, password: str, next_: str
) -> None:
    browser = app.test_client()
    form = {**sign_in_form(browser, username, password), "next": next_}
    r = browser.post("/console/login", data=form)
    check(r)
    if "\x00" in username:
        assert r.status_code == 401  # no such user: the lookup refuses a NUL itself


@FUZZ
@given(value=awkward)
def test_console_pages_survive_a_nul_in_their_arguments(console: FlaskClient, value: str) -> None:
    for path in ("/console/messages", "/console/templates", "/console/", "/console/audit"):
        r = console.get(path, query_string={"tenant": value, "q": value, "status": value})
        check(r)
        assert r.status_code != 302, "the console client is signed in"
    check(console.get(f"/console/messages/{quote(value, safe='')}"))
    check(console.get(f"/console/lists/{quote(value, safe='')}"))
