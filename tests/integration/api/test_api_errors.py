"""Every way a request can be wrong gets a problem+json answer, and nothing is written."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.infra.db import Database
from app.models import Message
from tests.factories import TenantCtx, add_api_key, make_tenant_ctx


def count_messages(db: Database, tenant_id: str) -> int:
    with db.session() as s:
        return int(
            s.scalar(
                select(func.count()).select_from(Message).where(Message.tenant_id == tenant_id)
            )
            or 0
        )


def assert_problem(r, status: int, reason: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["status"] == status and body["reason"] == reason
    assert body["type"].endswith(reason) and body["title"] and body["detail"]
    return body  # type: ignore[no-any-return]


def test_malformed_json_is_400(client: FlaskClient, ctx: TenantCtx, db: Database) -> None:
    r = client.post(
        "/v1/messages",
        data="{not json",
        headers={**ctx.headers, "Content-Type": "application/json"},
    )
    assert_problem(r, 400, "malformed_json")
    assert count_messages(db, ctx.tenant_id) == 0


def test_json_that_is_not_an_object_is_400(client: FlaskClient, ctx: TenantCtx) -> None:
    r = client.post("/v1/messages", json=["to"], headers=ctx.headers)
    assert_problem(r, 400, "malformed_json")


def test_wrong_content_type_is_415(client: FlaskClient, ctx: TenantCtx) -> None:
    r = client.post(
        "/v1/messages",
        data="to=+12025550100",
        headers={**ctx.headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(r, 415, "unsupported_media_type")


def test_oversized_body_is_413(client: FlaskClient, ctx: TenantCtx, db: Database) -> None:
    r = client.post(
        "/v1/messages", json={"to": "+12025550100", "body": "x" * 200_000}, headers=ctx.headers
    )
    assert_problem(r, 413, "payload_too_large")
    assert count_messages(db, ctx.tenant_id) == 0


def test_missing_auth_is_401_with_challenge(client: FlaskClient) -> None:
    r = client.post("/v1/messages", json={"to": "+12025550100", "body": "x"})
    assert_problem(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header", ["Bearer sb_live_nope", "Basic dXNlcjpwYXNz", "Bearer ", "sb_live_x"]
)
def test_bad_auth_is_401(client: FlaskClient, header: str) -> None:
    r = client.post(
        "/v1/messages", json={"to": "+12025550100", "body": "x"}, headers={"Authorization": header}
    )
    assert_problem(r, 401, "unauthorized")


def test_key_without_scope_is_403(client: FlaskClient, ctx: TenantCtx, db: Database) -> None:
    read_only = add_api_key(db, ctx.tenant_id, ("messages:read",))
    r = client.post(
        "/v1/messages",
        json={"to": "+12025550100", "body": "x"},
        headers={"Authorization": f"Bearer {read_only}"},
    )
    assert_problem(r, 403, "insufficient_scope")
    assert count_messages(db, ctx.tenant_id) == 0


def test_invalid_number_is_422_with_field_errors(client: FlaskClient, ctx: TenantCtx) -> None:
    r = client.post("/v1/messages", json={"to": "12345", "body": "x"}, headers=ctx.headers)
    body = assert_problem(r, 422, "validation_failed")
    assert [e["field"] for e in body["errors"]] == ["to"]


def test_several_bad_fields_are_all_reported(client: FlaskClient, ctx: TenantCtx) -> None:
    r = client.post(
        "/v1/messages",
        json={
            "to": "+12025550100",
            "body": "x",
            "priority": "asap",
            "ttl_seconds": -1,
            "colour": "red",
        },
        headers=ctx.headers,
    )
    body = assert_problem(r, 422, "validation_failed")
    assert {e["field"] for e in body["errors"]} == {"priority", "ttl_seconds", "colour"}


def test_no_account_for_the_channel_is_422(client: FlaskClient, db: Database) -> None:
    bare = make_tenant_ctx(db, with_account=False)
    r = client.post("/v1/messages", json={"to": "+12025550100", "body": "x"}, headers=bare.headers)
    assert_problem(r, 422, "no_route")


def test_another_tenants_account_is_422(
    client: FlaskClient, ctx: TenantCtx, other_ctx: TenantCtx
) -> None:
    r = client.post(
        "/v1/messages",
        json={"to": "+12025550100", "body": "x", "account_id": other_ctx.account_id},
        headers=ctx.headers,
    )
    body = assert_problem(r, 422, "unknown_account")
    assert body["errors"][0]["field"] == "account_id"


def test_quiet_hours_ignore_needs_the_tenants_permission(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    payload = {"to": "+12025550100", "body": "x", "quiet_hours": "ignore"}
    assert_problem(
        client.post("/v1/messages", json=payload, headers=ctx.headers),
        422,
        "quiet_hours_override_not_allowed",
    )
    allowed = make_tenant_ctx(db, allow_quiet_hours_override=True)
    assert client.post("/v1/messages", json=payload, headers=allowed.headers).status_code == 202


def test_long_idempotency_key_is_400(client: FlaskClient, ctx: TenantCtx) -> None:
    r = client.post(
        "/v1/messages",
        json={"to": "+12025550100", "body": "x"},
        headers={**ctx.headers, "Idempotency-Key": "k" * 300},
    )
    assert_problem(r, 400, "bad_idempotency_key")


def test_unknown_route_and_method_are_problems(client: FlaskClient, ctx: TenantCtx) -> None:
    assert_problem(client.get("/v1/nothing", headers=ctx.headers), 404, "not_found")
    r = client.delete("/v1/messages", headers=ctx.headers)
    assert_problem(r, 405, "method_not_allowed")
