"""The OpenAPI 3.1 description: valid, served, and true. Real responses are validated
against it, and a property-based run (schemathesis) finds no 5xx and nothing outside it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.test import TestResponse

from app.api.openapi import build
from app.infra.db import Database
from tests.factories import TenantCtx, add_api_key, make_tenant_ctx

ALL_SCOPES = (
    "messages:write",
    "messages:read",
    "consents:write",
    "consents:read",
    "templates:write",
    "admin",
)


def test_the_description_is_valid_openapi_3_1(client: FlaskClient) -> None:
    r = client.get("/v1/openapi.json")
    assert r.status_code == 200
    spec = r.get_json()
    assert spec["openapi"] == "3.1.0"
    validate(spec)
    assert "SendIntent" in spec["components"]["schemas"]
    # The request model is the one that validates: its constraints are in the spec.
    body = spec["components"]["schemas"]["SendIntent"]["properties"]["body"]
    assert {"maxLength": 1600, "type": "string"} in body["anyOf"]


def conforms(response: TestResponse, path: str, method: str) -> None:
    """The response's status is described for the operation, and its body fits the schema."""
    spec = build()
    operation = spec["paths"][path][method]
    described = operation["responses"].get(str(response.status_code))
    assert described is not None, f"{method.upper()} {path}: {response.status_code} not described"
    media = described["content"].get(response.mimetype)
    assert media is not None, f"{response.mimetype} not described for {response.status_code}"
    schema = {**media["schema"], "components": spec["components"]}
    errors = sorted(
        Draft202012Validator(schema).iter_errors(response.get_json()), key=lambda e: e.path
    )
    assert not errors, f"{method.upper()} {path} {response.status_code}: {errors[0].message}"


def test_real_responses_fit_the_description(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    key = add_api_key(db, ctx.tenant_id, list(ALL_SCOPES))
    h = {"Authorization": f"Bearer {key}"}
    r = client.post(
        "/v1/messages",
        json={"to": "+12025550190", "body": "hello"},
        headers={**h, "Idempotency-Key": "openapi-1"},
    )
    conforms(r, "/v1/messages", "post")
    message_id = r.get_json()["id"]
    again = client.post(
        "/v1/messages",
        json={"to": "+12025550190", "body": "hello"},
        headers={**h, "Idempotency-Key": "openapi-1"},
    )
    conforms(again, "/v1/messages", "post")
    conflict = client.post(
        "/v1/messages",
        json={"to": "+12025550190", "body": "other"},
        headers={**h, "Idempotency-Key": "openapi-1"},
    )
    assert conflict.status_code == 409
    conforms(conflict, "/v1/messages", "post")
    conforms(client.post("/v1/messages", json={"to": "x"}, headers=h), "/v1/messages", "post")
    conforms(client.post("/v1/messages", data="{", headers=h), "/v1/messages", "post")
    conforms(client.post("/v1/messages", json={}), "/v1/messages", "post")
    conforms(
        client.get(f"/v1/messages/{message_id}", headers=h), "/v1/messages/{message_id}", "get"
    )
    conforms(client.get("/v1/messages?limit=2", headers=h), "/v1/messages", "get")
    conforms(client.get("/v1/messages?limit=0", headers=h), "/v1/messages", "get")
    later = client.post(
        "/v1/messages",
        json={
            "to": "+12025550191",
            "body": "x",
            "send_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        },
        headers=h,
    ).get_json()["id"]
    conforms(
        client.post(f"/v1/messages/{later}/cancel", headers=h),
        "/v1/messages/{message_id}/cancel",
        "post",
    )
    conforms(
        client.post(
            "/v1/consents", json={"phone": "+12025550192", "status": "opted_out"}, headers=h
        ),
        "/v1/consents",
        "post",
    )
    conforms(client.get("/v1/consents?phone=%2B12025550192", headers=h), "/v1/consents", "get")
    conforms(
        client.put(
            "/v1/contacts/timezone?phone=%2B12025550192",
            json={"timezone": "Europe/Paris"},
            headers=h,
        ),
        "/v1/contacts/timezone",
        "put",
    )
    conforms(
        client.get("/v1/contacts/export?phone=%2B12025550192", headers=h),
        "/v1/contacts/export",
        "get",
    )
    conforms(client.get("/v1/analytics?bucket=hour", headers=h), "/v1/analytics", "get")
    conforms(client.get("/v1/analytics?bucket=week", headers=h), "/v1/analytics", "get")
    conforms(client.get("/v1/admin/stuck", headers=h), "/v1/admin/stuck", "get")
    conforms(
        client.post("/v1/admin/redrive", json={"ids": [message_id], "dry_run": True}, headers=h),
        "/v1/admin/redrive",
        "post",
    )
    conforms(
        client.delete("/v1/contacts?phone=%2B12025550192", headers=h), "/v1/contacts", "delete"
    )
    conforms(client.get("/v1/routing-rules", headers=h), "/v1/routing-rules", "get")
    conforms(
        client.post("/v1/routing-rules", json={"name": "x"}, headers=h), "/v1/routing-rules", "post"
    )
    conforms(client.get("/v1/admin/crm/connections", headers=h), "/v1/admin/crm/connections", "get")
    conforms(
        client.post("/v1/admin/crm/connections", json={"kind": "fax"}, headers=h),
        "/v1/admin/crm/connections",
        "post",
    )
    conforms(
        client.post("/v1/admin/redrive/syncs", json={"dry_run": True}, headers=h),
        "/v1/admin/redrive/syncs",
        "post",
    )
    template = {
        "name": "openapi",
        "variables": {"who": {"type": "string"}},
        "default_locale": "en",
        "locales": {"en": {"sms": "Hi ((who))"}},
    }
    made = client.post("/v1/templates", json=template, headers=h)
    conforms(made, "/v1/templates", "post")
    conforms(client.post("/v1/templates", json={"name": "x"}, headers=h), "/v1/templates", "post")
    conforms(client.get("/v1/templates", headers=h), "/v1/templates", "get")
    conforms(client.get("/v1/templates/openapi", headers=h), "/v1/templates/{ref}", "get")
    conforms(client.get("/v1/templates/nope", headers=h), "/v1/templates/{ref}", "get")
    new_version = {k: v for k, v in template.items() if k != "name"}
    conforms(
        client.post("/v1/templates/openapi/versions", json=new_version, headers=h),
        "/v1/templates/{ref}/versions",
        "post",
    )
    for variables in ({"who": "Ana"}, {}):
        conforms(
            client.post("/v1/templates/openapi/preview", json={"variables": variables}, headers=h),
            "/v1/templates/{ref}/preview",
            "post",
        )
    conforms(
        client.post(
            "/v1/messages",
            json={"to": "+12025550193", "template": "openapi", "variables": {"who": "Bo"}},
            headers=h,
        ),
        "/v1/messages",
        "post",
    )
    conforms(
        client.put("/v1/contacts/locale?phone=%2B12025550193", json={"locale": "pt-BR"}, headers=h),
        "/v1/contacts/locale",
        "put",
    )
    conforms(
        client.post("/v1/templates/openapi/archive", headers=h),
        "/v1/templates/{ref}/archive",
        "post",
    )
    conforms(client.get("/healthz"), "/healthz", "get")
    conforms(client.get("/readyz"), "/readyz", "get")


def test_property_based_run_finds_no_5xx_and_nothing_outside_the_spec(
    app: Flask, db: Database
) -> None:
    """Every operation, with generated (valid and invalid) inputs and an all-scopes key."""
    ctx = make_tenant_ctx(db, scopes=ALL_SCOPES)
    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", app)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: Any) -> None:
            case.call_and_validate(headers=ctx.headers, checks=checks)

        run()
        ran += 1
    assert ran >= 28
