"""Every /v1 endpoint and every webhook route, fuzzed: never a 5xx, nothing unverified stored."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.infra.db import Database
from app.models import InboxItem
from tests.factories import TenantCtx, make_tenant_ctx

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
intent_like = st.fixed_dictionaries(
    {},
    optional={
        "to": st.sampled_from(["+12025550100", "+4420", "", "\x00", "+1" + "9" * 30])
        | st.text(max_size=20),
        "body": st.text(max_size=50) | st.integers(),
        "channels": st.lists(st.sampled_from(["sms", "mms", "rcs", "fax", ""]), max_size=4)
        | json_values,
        "media": json_values,
        "priority": st.sampled_from(["urgent", "normal", "bulk", "x"]) | json_values,
        "ttl_seconds": st.integers() | json_values,
        "send_at": st.text(max_size=40) | st.just("2030-01-01T00:00:00Z"),
        "quiet_hours": st.sampled_from(["respect", "ignore", "\x00"]),
        "journey_id": st.text(max_size=30),
        "external_ref": st.text(max_size=30),
        "metadata": json_values,
        "account_id": st.text(max_size=50),
    },
)
bodies = (
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | intent_like.map(lambda v: json.dumps(v).encode())
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=latin-1",
        "application/problem+json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
    ]
)
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=40)
path_text = st.text(max_size=40).map(lambda s: quote(s, safe=""))


@pytest.fixture
def admin(db: Database) -> TenantCtx:
    """A tenant allowed everything the API offers."""
    return make_tenant_ctx(db, scopes=("messages:write", "messages:read"))


def check(response: Any) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if response.status_code >= 400 and response.mimetype.endswith("json"):
        assert response.get_json()["status"] == response.status_code


@FUZZ
@given(
    body=bodies,
    content_type=content_types,
    key=st.none() | header_text,
    query=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)
def test_post_messages_never_answers_5xx(
    client: FlaskClient,
    admin: TenantCtx,
    body: bytes,
    content_type: str,
    key: str | None,
    query: dict[str, str],
) -> None:
    headers = dict(admin.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    r = client.post(
        "/v1/messages?" + urlencode(query), data=body, headers=headers, content_type=content_type
    )
    check(r)


@FUZZ
@given(
    message_id=path_text,
    query=st.dictionaries(
        st.sampled_from(["status", "since", "cursor", "limit", "x"]),
        st.text(max_size=30),
        max_size=4,
    ),
)
def test_reads_and_cancel_never_answer_5xx(
    client: FlaskClient, admin: TenantCtx, message_id: str, query: dict[str, str]
) -> None:
    check(client.get(f"/v1/messages/{message_id}", headers=admin.headers))
    check(client.post(f"/v1/messages/{message_id}/cancel", headers=admin.headers))
    check(client.get("/v1/messages?" + urlencode(query), headers=admin.headers))


phones = st.sampled_from(["+12025550100", "+4420", "", "\x00", " 12025550100"]) | st.text(
    max_size=20
)


@pytest.fixture
def everything(db: Database) -> TenantCtx:
    """A tenant whose key holds every scope."""
    return make_tenant_ctx(
        db, scopes=("messages:write", "messages:read", "consents:write", "consents:read", "admin")
    )


@FUZZ
@given(
    body=bodies,
    content_type=content_types,
    phone=phones,
    rule_id=path_text,
    consent=st.fixed_dictionaries(
        {},
        optional={
            "phone": phones,
            "channel": st.sampled_from(["sms", "all", "fax"]) | json_values,
            "status": st.sampled_from(["opted_in", "opted_out", "x"]) | json_values,
            "source": st.sampled_from(["api", "import", "keyword"]) | json_values,
            "evidence": json_values,
            "jurisdiction": st.text(max_size=10),
        },
    ),
    rule=st.fixed_dictionaries(
        {},
        optional={
            "name": json_values,
            "match": st.sampled_from(["any", "keywords", "area_code", "x"]) | json_values,
            "values": json_values | st.lists(st.text(max_size=10), max_size=3),
            "action": st.sampled_from(["tag", "escalate", "create_lead"]) | json_values,
            "target": json_values,
            "final": json_values,
        },
    ),
)
def test_consent_contact_rule_and_crm_endpoints_never_answer_5xx(
    client: FlaskClient,
    everything: TenantCtx,
    body: bytes,
    content_type: str,
    phone: str,
    rule_id: str,
    consent: dict[str, Any],
    rule: dict[str, Any],
) -> None:
    h = everything.headers
    q = {"phone": phone}
    for path in (
        "/v1/consents",
        "/v1/routing-rules",
        "/v1/admin/crm/connections",
        "/v1/admin/redrive/syncs",
    ):
        check(client.post(path, data=body, headers=h, content_type=content_type))
    check(client.post("/v1/admin/crm/connections", json={**rule, **consent}, headers=h))
    check(client.delete(f"/v1/admin/crm/connections/{rule_id}", headers=h))
    check(client.post("/v1/consents", json=consent, headers=h))
    check(client.post("/v1/routing-rules", json=rule, headers=h))
    check(client.put("/v1/contacts/timezone", query_string=q, data=body, headers=h))
    check(client.get("/v1/consents", query_string=q, headers=h))
    check(client.get("/v1/contacts/export", query_string=q, headers=h))
    check(client.delete("/v1/contacts", query_string=q, headers=h))
    check(client.delete(f"/v1/routing-rules/{rule_id}", headers=h))


@FUZZ
@given(auth=header_text)
def test_any_authorization_header_is_a_clean_401(client: FlaskClient, auth: str) -> None:
    r = client.get("/v1/messages", headers={"Authorization": auth})
    check(r)
    assert r.status_code == 401


@pytest.fixture
def accounts(db: Database) -> dict[str, TenantCtx]:
    """One account per provider, to aim the webhook fuzzing at."""
    twilio = {"account_sid": "AC" + "0" * 32, "auth_token": "tok", "base_url": "http://127.0.0.1:9"}
    return {
        "sandbox": make_tenant_ctx(db),
        "standard": make_tenant_ctx(
            db,
            provider="standard",
            credentials={"base_url": "http://127.0.0.1:9", "signing_secret": "x"},
        ),
        "twilio": make_tenant_ctx(db, provider="twilio", credentials=twilio),
    }


def stored(db: Database, account_ids: list[str]) -> int:
    with db.session() as s:
        query = (
            select(func.count()).select_from(InboxItem).where(InboxItem.account_id.in_(account_ids))
        )
        return int(s.scalar(query) or 0)


webhook_headers = st.dictionaries(
    st.sampled_from(
        [
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "X-Twilio-Signature",
            "Content-Encoding",
        ]
    ),
    header_text,
    max_size=4,
)


@FUZZ
@given(
    provider=st.sampled_from(["sandbox", "standard", "twilio", "nope", "%00"]),
    which=st.sampled_from(["own", "other", "garbage"]),
    garbage=path_text,
    body=bodies | st.text(max_size=100).map(str.encode),
    content_type=content_types,
    headers=webhook_headers,
    query=st.text(max_size=20),
)
def test_webhooks_never_answer_5xx_and_store_nothing_unverified(
    client: FlaskClient,
    db: Database,
    accounts: dict[str, TenantCtx],
    provider: str,
    which: str,
    garbage: str,
    body: bytes,
    content_type: str,
    headers: dict[str, str],
    query: str,
) -> None:
    own = accounts.get(provider, accounts["sandbox"]).account_id
    account_id = {"own": own, "other": accounts["twilio"].account_id, "garbage": garbage}[which]
    r = client.post(
        f"/webhooks/{provider}/{account_id}?{quote(query)}",
        data=body,
        headers=headers,
        content_type=content_type,
    )
    check(r)
    # Refused (4xx), or a routing redirect for an odd path (308): never accepted.
    assert not 200 <= r.status_code < 300
    assert stored(db, [a.account_id for a in accounts.values()]) == 0


def test_json_nested_thousands_deep_is_a_clear_400(client: FlaskClient, admin: TenantCtx) -> None:
    for depth in (40, 3000, 30_000):  # 30,000 deep is still inside the size limit
        body = '{"to":"+12025550100","body":"x","metadata":' + "[" * depth + "]" * depth + "}"
        r = client.post(
            "/v1/messages", data=body, headers=admin.headers, content_type="application/json"
        )
        assert r.status_code == 400, depth
        assert r.get_json()["reason"] == "too_deeply_nested"


def test_a_nul_in_a_message_id_or_a_field_is_a_clear_4xx(
    client: FlaskClient, admin: TenantCtx
) -> None:
    assert client.get("/v1/messages/%00", headers=admin.headers).status_code == 404
    assert client.post("/v1/messages/msg_%00/cancel", headers=admin.headers).status_code == 404
    r = client.post(
        "/v1/messages",
        json={"to": "+12025550100", "body": "x", "journey_id": "j\x00"},
        headers=admin.headers,
    )
    assert r.status_code == 400 and r.get_json()["reason"] == "malformed_json"
    r = client.get("/v1/messages?cursor=" + quote("msg_\x00"), headers=admin.headers)
    assert r.status_code == 400 and r.get_json()["reason"] == "bad_cursor"
