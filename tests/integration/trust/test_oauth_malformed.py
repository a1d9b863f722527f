"""The OAuth endpoints against credentials no client would send: NULs, control characters and
bytes that are not UTF-8, in the Basic header and in the form. Always OAuth's own 401 or 400."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from app.infra.db import Database
from app.security.oauth import create_client
from tests.factories import TenantCtx

PATHS = ("/oauth/token", "/oauth/revoke")
FUZZ = hsettings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def basic_of(raw: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def assert_oauth_error(r: Any, status: int, error: str) -> None:
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True))
    assert r.mimetype == "application/json"
    assert r.get_json()["error"] == error
    assert r.headers["Cache-Control"] == "no-store"


@pytest.fixture
def client_id(db: Database, ctx: TenantCtx) -> str:
    """A live OAuth client's id, so a NUL appended to a real id is tried too."""
    with db.session() as s:
        row, _secret = create_client(s, ctx.tenant_id, "fuzz", "messages:read", actor="test")
        return row.id


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "raw",
    [
        b"%s\x00:x",  # the first case: a NUL after a real client id
        b"\x00:\x00",
        "é:é".encode("latin-1"),  # not UTF-8
        b"\xff\xfe:\xff",
        b"%s%%00:x",  # a NUL only once the form-url-decoding of RFC 6749 2.3.1 is done
        b"%s:%%FF",  # percent-escapes that are not UTF-8
        b"%s\x01:x",
    ],
)
def test_malformed_basic_credentials_are_invalid_client(
    client: FlaskClient, client_id: str, path: str, raw: bytes
) -> None:
    raw = raw.replace(b"%s", client_id.encode()) if b"%s" in raw else raw
    form = {"grant_type": "client_credentials", "token": "x"}
    r = client.post(path, data=form, headers=basic_of(raw))
    assert_oauth_error(r, 401, "invalid_client")
    assert r.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("field", ["client_id", "client_secret"])
@pytest.mark.parametrize("bad", ["\x00", "x\x00", "\x7f", "a\tb"])
def test_control_characters_in_form_credentials_are_invalid_client(
    client: FlaskClient, client_id: str, path: str, field: str, bad: str
) -> None:
    form = {"grant_type": "client_credentials", "token": "x", "client_id": client_id}
    form["client_secret"] = "s"
    form[field] += bad
    r = client.post(path, data=form)
    assert_oauth_error(r, 401, "invalid_client")


@pytest.mark.parametrize("path", PATHS)
def test_a_nul_in_another_field_is_invalid_request(client: FlaskClient, path: str) -> None:
    r = client.post(path, data={"grant_type": "client_credentials\x00", "token": "\x00"})
    assert_oauth_error(r, 400, "invalid_request")


@pytest.mark.parametrize("path", PATHS)
def test_undecodable_bytes_in_the_raw_form_are_a_clean_oauth_error(
    client: FlaskClient, path: str
) -> None:
    body = b"grant_type=client_credentials&client_id=%00%FF&client_secret=\xff\xfe"
    r = client.post(path, data=body, content_type="application/x-www-form-urlencoded")
    assert_oauth_error(r, 401, "invalid_client")


raw_forms = st.lists(
    st.tuples(
        st.sampled_from([b"grant_type", b"client_id", b"client_secret", b"token", b"scope"])
        | st.binary(max_size=8),
        st.binary(max_size=24) | st.just(b"client_credentials"),
    ),
    max_size=5,
).map(lambda pairs: b"&".join(quote_from_bytes(k).encode() + b"=" + v for k, v in pairs))
headers = st.one_of(
    st.none(),
    st.binary(max_size=40).map(lambda raw: "Basic " + base64.b64encode(raw).decode()),
    # Latin-1 text: what a WSGI server hands over for any header bytes.
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0xFF), max_size=40),
)


@FUZZ
@given(body=raw_forms, auth=headers, path=st.sampled_from(PATHS))
def test_any_bytes_in_the_header_or_the_form_never_fail(
    client: FlaskClient, body: bytes, auth: str | None, path: str
) -> None:
    sent = {"Authorization": auth} if auth is not None else {}
    try:
        r = client.post(
            path, data=body, headers=sent, content_type="application/x-www-form-urlencoded"
        )
    except ValueError:
        return  # the test client refuses a header with a newline before anything is sent
    assert r.status_code in (400, 401), (r.status_code, r.get_data(as_text=True))
    assert r.is_json and isinstance(r.get_json()["error"], str)
