"""Reading a message with its timeline, listing with a cursor, cancelling; tenants never cross."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import update

from app.infra.db import Database
from app.models import Message
from tests.factories import TenantCtx


def create(client: FlaskClient, ctx: TenantCtx, body: str = "x", **extra: object) -> str:
    r = client.post(
        "/v1/messages", json={"to": "+12025550100", "body": body, **extra}, headers=ctx.headers
    )
    assert r.status_code == 202, r.get_json()
    return str(r.get_json()["id"])


def test_get_returns_the_message_and_its_timeline(client: FlaskClient, ctx: TenantCtx) -> None:
    message_id = create(client, ctx, "hello")
    r = client.get(f"/v1/messages/{message_id}", headers=ctx.headers)
    assert r.status_code == 200
    body = r.get_json()
    assert body["id"] == message_id and body["body"] == "hello" and body["to"] == "+12025550100"
    assert [(e["from"], e["to"], e["outcome"]) for e in body["events"]] == [
        (None, "pending", "applied"),
        ("pending", "queued", "applied"),
    ]


def test_another_tenants_message_is_404(
    client: FlaskClient, ctx: TenantCtx, other_ctx: TenantCtx
) -> None:
    message_id = create(client, ctx)
    for r in (
        client.get(f"/v1/messages/{message_id}", headers=other_ctx.headers),
        client.post(f"/v1/messages/{message_id}/cancel", headers=other_ctx.headers),
    ):
        assert r.status_code == 404 and r.get_json()["reason"] == "not_found"
    listed = client.get("/v1/messages", headers=other_ctx.headers).get_json()["data"]
    assert message_id not in [m["id"] for m in listed]


def test_list_pages_with_a_cursor_newest_first(client: FlaskClient, ctx: TenantCtx) -> None:
    ids = [create(client, ctx, f"m{i}") for i in range(5)]
    seen: list[str] = []
    cursor = None
    for _ in range(4):
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"/v1/messages?{query}", headers=ctx.headers).get_json()
        seen += [m["id"] for m in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


def test_list_filters_by_status_and_since(client: FlaskClient, ctx: TenantCtx) -> None:
    queued = create(client, ctx)
    later = create(client, ctx, send_at="2099-01-01T00:00:00Z")
    by_status = client.get("/v1/messages?status=scheduled", headers=ctx.headers).get_json()["data"]
    assert [m["id"] for m in by_status] == [later]
    future = client.get("/v1/messages?since=2099-01-01T00:00:00Z", headers=ctx.headers).get_json()[
        "data"
    ]
    assert future == []
    past = client.get(
        "/v1/messages?since=2000-01-01T00:00:00%2B00:00", headers=ctx.headers
    ).get_json()["data"]
    assert {m["id"] for m in past} == {queued, later}


def test_list_rejects_bad_parameters(client: FlaskClient, ctx: TenantCtx) -> None:
    r = client.get("/v1/messages?status=lost&since=yesterday&limit=0", headers=ctx.headers)
    assert r.status_code == 422
    assert {e["field"] for e in r.get_json()["errors"]} == {"status", "since", "limit"}
    r = client.get("/v1/messages?cursor=!!!", headers=ctx.headers)
    assert r.status_code == 400 and r.get_json()["reason"] == "bad_cursor"


def test_cancel_a_queued_message_then_again(client: FlaskClient, ctx: TenantCtx) -> None:
    message_id = create(client, ctx)
    first = client.post(f"/v1/messages/{message_id}/cancel", headers=ctx.headers)
    again = client.post(f"/v1/messages/{message_id}/cancel", headers=ctx.headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.get_json()["status"] == again.get_json()["status"] == "canceled"
    events = client.get(f"/v1/messages/{message_id}", headers=ctx.headers).get_json()["events"]
    assert [e["to"] for e in events].count("canceled") == 1


def test_cancel_after_dispatch_is_409(client: FlaskClient, ctx: TenantCtx, db: Database) -> None:
    message_id = create(client, ctx)
    with db.session() as s:
        s.execute(update(Message).where(Message.id == message_id).values(status="dispatched"))
    r = client.post(f"/v1/messages/{message_id}/cancel", headers=ctx.headers)
    assert r.status_code == 409
    assert (
        r.get_json()["reason"] == "not_cancelable"
        and r.get_json()["message_status"] == "dispatched"
    )


def test_reading_needs_the_read_scope(client: FlaskClient, ctx: TenantCtx, db: Database) -> None:
    from tests.factories import add_api_key

    write_only = add_api_key(db, ctx.tenant_id, ("messages:write",))
    r = client.get("/v1/messages", headers={"Authorization": f"Bearer {write_only}"})
    assert r.status_code == 403
