"""OAuth 2.0 client credentials beside API keys: the token endpoint (Authlib), tokens on
/v1, their expiry and revocation, and the client's revocation."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from joserfc import jwt
from sqlalchemy import select

from app import create_app
from app.infra.db import Database
from app.models import AuditEvent, Message
from app.security.oauth import create_client, revoke_client, signing_jwk
from config import Settings
from tests.factories import TenantCtx
from tests.support.tcp_proxy import TcpProxy, proxy_for, via

SCOPES = "messages:write,messages:read"


def new_client(db: Database, tenant_id: str, scopes: str = SCOPES) -> tuple[str, str]:
    with db.session() as s:
        row, secret = create_client(s, tenant_id, "integration", scopes, actor="test")
        return row.id, secret


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def get_token(client: FlaskClient, client_id: str, secret: str, **form: str) -> Any:
    return client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", **form},
        headers=basic(client_id, secret),
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def send(client: FlaskClient, token: str) -> Any:
    return client.post(
        "/v1/messages", json={"to": "+12025550100", "body": "hi"}, headers=bearer(token)
    )


def assert_problem(r: Any, status: int, reason: str) -> None:
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["reason"] == reason


def test_a_token_works_on_v1_like_a_key(client: FlaskClient, db: Database, ctx: TenantCtx) -> None:
    client_id, secret = new_client(db, ctx.tenant_id)
    r = get_token(client, client_id, secret)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["token_type"].lower() == "bearer" and body["expires_in"] == 900
    assert set(body["scope"].split()) == {"messages:write", "messages:read"}
    assert r.headers["Cache-Control"] == "no-store"
    sent = send(client, body["access_token"])
    assert sent.status_code == 202, sent.get_json()
    read = client.get(f"/v1/messages/{sent.get_json()['id']}", headers=bearer(body["access_token"]))
    assert read.status_code == 200
    # client_secret_post works too, and a narrower scope is granted as asked.
    narrow = client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": "messages:read",
        },
    )
    assert narrow.status_code == 200 and narrow.get_json()["scope"] == "messages:read"
    assert_problem(send(client, narrow.get_json()["access_token"]), 403, "insufficient_scope")
    # The token's tenant is the client's: another tenant's message is not found.
    with db.session() as s:
        assert s.get(Message, sent.get_json()["id"]).tenant_id == ctx.tenant_id  # type: ignore[union-attr]


def test_the_token_endpoint_refuses_bad_clients_grants_and_scopes(
    client: FlaskClient, db: Database, ctx: TenantCtx
) -> None:
    client_id, secret = new_client(db, ctx.tenant_id)
    wrong = get_token(client, client_id, secret + "x")
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid_client"
    unknown = get_token(client, "cli_01M8HZQ7QAXASACW02GJ63HQVW", secret)
    assert unknown.status_code == 401 and unknown.get_json()["error"] == "invalid_client"
    grant = client.post(
        "/oauth/token", data={"grant_type": "password"}, headers=basic(client_id, secret)
    )
    assert grant.status_code == 400 and grant.get_json()["error"] == "unsupported_grant_type"
    scope = get_token(client, client_id, secret, scope="admin")
    assert scope.status_code == 400 and scope.get_json()["error"] == "invalid_scope"
    nonsense = get_token(client, client_id, secret, scope="everything")
    assert nonsense.status_code == 400 and nonsense.get_json()["error"] == "invalid_scope"
    none = client.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert none.status_code == 401 and none.get_json()["error"] == "invalid_client"


def test_expired_forged_and_revoked_tokens_get_401_problems(
    client: FlaskClient, db: Database, settings: Settings, ctx: TenantCtx
) -> None:
    client_id, secret = new_client(db, ctx.tenant_id)
    now = int(time.time())
    claims = {
        "iss": settings.public_base_url,
        "aud": "switchboard",
        "sub": client_id,
        "client_id": client_id,
        "tenant": ctx.tenant_id,
        "scope": "messages:write",
        "jti": "expired-one",
        "iat": now - 1000,
        "exp": now - 100,
    }
    expired = jwt.encode({"alg": "HS256"}, claims, signing_jwk(settings.oauth_token_secret))
    r = send(client, expired)
    assert_problem(r, 401, "unauthorized")
    assert "expired" in r.get_json()["detail"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    forged = jwt.encode(
        {"alg": "HS256"}, {**claims, "exp": now + 100}, signing_jwk("someone else's secret!!")
    )
    assert_problem(send(client, forged), 401, "unauthorized")
    assert_problem(send(client, "a.b.c"), 401, "unauthorized")

    # Revocation of one token (RFC 7009), by its client: that token stops, others still work.
    first = get_token(client, client_id, secret).get_json()["access_token"]
    second = get_token(client, client_id, secret).get_json()["access_token"]
    assert send(client, first).status_code == 202
    revoked = client.post("/oauth/revoke", data={"token": first}, headers=basic(client_id, secret))
    assert revoked.status_code == 200
    r = send(client, first)
    assert_problem(r, 401, "unauthorized")
    assert "revoked" in r.get_json()["detail"]
    assert send(client, second).status_code == 202
    # Revoking a token that is not ours is answered 200 all the same (RFC 7009 2.2).
    assert (
        client.post(
            "/oauth/revoke", data={"token": "nonsense"}, headers=basic(client_id, secret)
        ).status_code
        == 200
    )
    # Another client cannot revoke this client's token.
    other_id, other_secret = new_client(db, ctx.tenant_id)
    stolen = client.post(
        "/oauth/revoke", data={"token": second}, headers=basic(other_id, other_secret)
    )
    assert stolen.status_code == 400 and stolen.get_json()["error"] == "invalid_grant"
    assert send(client, second).status_code == 202

    # Revoking the client: its live token stops working and it gets no new one.
    with db.session() as s:
        revoke_client(s, client_id, actor="test")
    assert_problem(send(client, second), 401, "unauthorized")
    again = get_token(client, client_id, secret)
    assert again.status_code == 401 and again.get_json()["error"] == "invalid_client"

    with db.session() as s:
        actions = list(
            s.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.chain == ctx.tenant_id)
                .order_by(AuditEvent.seq)
            )
        )
    assert actions == [
        "oauth_client.create",
        "oauth_token.revoke",
        "oauth_client.create",
        "oauth_client.revoke",
    ]


def test_api_keys_still_work_beside_tokens(client: FlaskClient, ctx: TenantCtx) -> None:
    assert (
        client.post(
            "/v1/messages", json={"to": "+12025550100", "body": "hi"}, headers=ctx.headers
        ).status_code
        == 202
    )


FIELDS = st.sampled_from(
    ["grant_type", "scope", "client_id", "client_secret", "token", "token_type_hint", "x"]
)
VALUES = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["client_credentials", "password", "messages:write admin", "", "%00"]),
)


@given(
    form=st.dictionaries(FIELDS, VALUES, max_size=5),
    auth=st.one_of(st.none(), st.text(max_size=40), st.just("Basic !!!"), st.just("Basic Og==")),
    path=st.sampled_from(["/oauth/token", "/oauth/revoke"]),
)
@hsettings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_the_token_endpoints_never_fail_on_any_input(
    client: FlaskClient, form: dict[str, str], auth: str | None, path: str
) -> None:
    headers = {"Authorization": auth} if auth is not None else {}
    try:
        r = client.post(path, data=form, headers=headers)
    except ValueError:
        return  # the test client refuses a header with a newline before anything is sent
    assert r.status_code in (400, 401), (r.status_code, r.get_data(as_text=True))
    assert r.is_json and isinstance(r.get_json()["error"], str)


@pytest.fixture
def db_proxy(settings: Settings) -> Iterator[TcpProxy]:
    proxy = proxy_for(settings.database_url)
    yield proxy
    proxy.stop()


@pytest.mark.postgres
def test_the_database_down_at_the_token_endpoint_is_503(
    settings: Settings, db_proxy: TcpProxy, db: Database, ctx: TenantCtx
) -> None:
    app: Flask = create_app(
        {"settings": replace(settings, database_url=via(settings.database_url, db_proxy))}
    )
    client = app.test_client()
    client_id, secret = new_client(db, ctx.tenant_id)
    db_proxy.stop()
    r = get_token(client, client_id, secret)
    assert r.status_code == 503 and r.mimetype == "application/problem+json"
    db_proxy.start()
    assert get_token(client, client_id, secret).status_code == 200
