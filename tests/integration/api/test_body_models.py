"""Request bodies validated by their pydantic models: a field of the wrong type is a 422 that
names the field, never a 500, and the model is the one the OpenAPI description publishes."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from app.api.openapi import build
from app.infra.db import Database
from app.security.api_keys import KNOWN_SCOPES
from tests.factories import TenantCtx, make_tenant_ctx

MSG = "msg_01ARZ3NDEKTSV4RRFFQ69G5FAV"
WRONG_TYPES = [{}, [], 5, True, None, "x"]


@pytest.fixture
def everything(db: Database) -> TenantCtx:
    """A tenant whose API key holds every scope."""
    return make_tenant_ctx(db, scopes=tuple(sorted(KNOWN_SCOPES)))


def fields_of(r: Any) -> set[str]:
    assert r.status_code == 422, (r.status_code, r.get_data(as_text=True))
    body = r.get_json()
    assert body["reason"] == "validation_failed"
    return {e["field"].split(".")[0] for e in body["errors"]}


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", v) for v in ({}, [], 5, True, "nope")]
    + [("ids", v) for v in ({}, "x", [5], ["nope"], [], [MSG] * 1001)]
    + [("dry_run", v) for v in ("yes", 1, {}, [])]
    + [("older_than", v) for v in ({}, 5, "soon")],
)
def test_redrive_names_a_field_of_the_wrong_type(
    client: FlaskClient, everything: TenantCtx, field: str, value: Any
) -> None:
    body = {"status": "queued", "older_than": "10m", field: value}
    if field == "ids":
        body = {"ids": value}
    r = client.post("/v1/admin/redrive", json=body, headers=everything.headers)
    assert field in fields_of(r)


def test_redrive_still_names_what_is_missing(client: FlaskClient, everything: TenantCtx) -> None:
    h = everything.headers
    assert fields_of(client.post("/v1/admin/redrive", json={}, headers=h)) == {"ids"}
    r = client.post("/v1/admin/redrive", json={"status": "queued"}, headers=h)
    assert fields_of(r) == {"older_than"}
    r = client.post("/v1/admin/redrive", json={"ids": [MSG], "dry_run": True}, headers=h)
    assert r.status_code == 200 and r.get_json()["messages"][0]["action"] == "missing"


@pytest.mark.parametrize(
    ("path", "method", "field", "body"),
    [
        ("/v1/admin/redrive/syncs", "post", "ids", {"ids": v})
        for v in ({}, "x", [True], [0], ["1"], [])
    ]
    + [("/v1/admin/redrive/syncs", "post", "dry_run", {"dry_run": "yes"})]
    + [
        ("/v1/contacts/timezone?phone=%2B12025550100", "put", "timezone", {"timezone": v})
        for v in [*WRONG_TYPES, "", "Mars/Olympus"]
    ]
    + [
        ("/v1/contacts/locale?phone=%2B12025550100", "put", "locale", {"locale": v})
        for v in [*WRONG_TYPES, "not a locale"]
    ]
    + [
        (
            "/v1/routing-rules",
            "post",
            field,
            {"name": "r", "match": "any", "action": "tag", field: v},
        )
        for field, v in [
            ("final", "yes"),
            ("values", "x"),
            ("values", [1]),
            ("target", 5),
            ("name", {}),
            ("match", []),
            ("colour", "red"),
        ]
    ],
)
def test_every_hand_checked_body_is_a_model_now(
    client: FlaskClient, everything: TenantCtx, path: str, method: str, field: str, body: Any
) -> None:
    r = client.open(path, method=method.upper(), json=body, headers=everything.headers)
    assert field in fields_of(r)


def test_preview_refuses_unknown_fields_and_wrong_types(
    client: FlaskClient, everything: TenantCtx
) -> None:
    h = everything.headers
    made = client.post(
        "/v1/templates",
        json={"name": "typed", "default_locale": "en", "locales": {"en": {"sms": "hi there"}}},
        headers=h,
    )
    assert made.status_code == 201, made.get_json()
    for field, value in [("version", True), ("locale", 5), ("variables", []), ("extra", 1)]:
        r = client.post("/v1/templates/typed/preview", json={field: value}, headers=h)
        assert field in fields_of(r), (field, value)
    assert client.post("/v1/templates/typed/preview", json={}, headers=h).status_code == 200


def test_the_description_publishes_the_models_the_handlers_use() -> None:
    spec = build()
    schemas = spec["components"]["schemas"]
    redrive = schemas["RedriveIn"]["properties"]
    assert {"pending", "queued", "sent"} <= set(redrive["status"]["anyOf"][0]["enum"])
    assert redrive["ids"]["anyOf"][0]["maxItems"] == 1000
    assert schemas["RoutingRuleIn"]["additionalProperties"] is False
    assert schemas["PreviewIn"]["additionalProperties"] is False


def test_crm_limits_and_kind_are_models_too(client: FlaskClient, everything: TenantCtx) -> None:
    h = everything.headers
    r = client.post("/v1/admin/crm/connections", json={"kind": 5, "token": "t"}, headers=h)
    assert fields_of(r) == {"kind"}
    made = client.post(
        "/v1/admin/crm/connections", json={"kind": "hubspot", "token": "t"}, headers=h
    )
    assert made.status_code == 201
    url = f"/v1/admin/crm/connections/{made.get_json()['id']}"
    for field, value in [("calls", "100"), ("calls", True), ("daily_share", 2), ("plan", 5)]:
        assert fields_of(client.patch(url, json={field: value}, headers=h)) == {field}
    assert fields_of(client.patch(url, json={"token": "x"}, headers=h)) == {"token"}
    assert client.patch(url, json={"calls": 50}, headers=h).status_code == 200


@pytest.mark.parametrize("version", ["²", "9" * 5000, "99999999999", 2**40, 0, -1])
def test_a_version_the_database_cannot_hold_is_a_422(
    client: FlaskClient, everything: TenantCtx, version: Any
) -> None:
    h = everything.headers
    client.post(
        "/v1/templates",
        json={"name": "big", "default_locale": "en", "locales": {"en": {"sms": "hi"}}},
        headers=h,
    )
    r = client.post("/v1/templates/big/preview", json={"version": version}, headers=h)
    assert fields_of(r) == {"version"}
    r = client.get("/v1/templates/big", query_string={"version": str(version)}, headers=h)
    assert fields_of(r) == {"version"}


@pytest.mark.parametrize("ids", [[2**63], [2**64 + 5], [18425087736715333982171955200]])
def test_a_sync_id_past_the_databases_integers_is_a_422(
    client: FlaskClient, everything: TenantCtx, ids: list[int]
) -> None:
    r = client.post("/v1/admin/redrive/syncs", json={"ids": ids}, headers=everything.headers)
    assert fields_of(r) == {"ids"}
