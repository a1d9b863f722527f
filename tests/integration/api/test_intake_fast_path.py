"""POST /v1/messages in one statement (app.messaging.intake.statement), beside the general path.

The one-statement path must write exactly what ``accept_intent`` writes, and write
nothing at all whenever one of its assumptions does not hold, so that the general
path answers those cases as before.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from app.infra.db import Database
from app.messaging.intake.accept import accept_intent
from app.messaging.intake.intents import SendIntent, request_hash
from app.messaging.intake.statement import accept_fast
from app.models import ConsentRecord, Contact, Message, MessageEvent, OutboxRow, Suppression, Tenant
from app.security.crypto import keyring
from config import Settings
from tests.factories import TenantCtx, make_tenant_ctx

pytestmark = [pytest.mark.usefixtures("backend"), pytest.mark.postgres]

# Columns that differ between two messages by construction.
_OWN = {"id", "created_at", "updated_at", "expires_at", "idempotency_key"}


def _quiet_now() -> str:
    """Quiet hours that hold now in every zone the cases' numbers fall in (UTC-5 to UTC+1):
    23 hours a day, the quiet ending twelve hours from now in UTC."""
    now = datetime.now(UTC)
    return f"{(now + timedelta(hours=13)):%H}:00-{(now + timedelta(hours=12)):%H}:00"


def _row(db: Database, message_id: str) -> tuple[dict[str, Any], list[tuple[Any, ...]], list[Any]]:
    with db.session() as s:
        message = s.get(Message, message_id)
        assert message is not None
        columns = {
            c.key: getattr(message, c.key)
            for c in Message.__mapper__.column_attrs
            if c.key not in _OWN
        }
        events = [
            (e.kind, e.from_status, e.to_status, e.outcome, e.reason, e.source, e.data)
            for e in s.scalars(
                select(MessageEvent)
                .where(MessageEvent.message_id == message_id)
                .order_by(MessageEvent.id)
            )
        ]
        owed = [
            (row.task_name, row.queue)
            for row in s.scalars(select(OutboxRow))
            if row.args == [message_id]
        ]
    return columns, events, owed


def _general(db: Database, settings: Settings, tenant_id: str, payload: dict[str, Any]) -> str:
    intent = SendIntent.model_validate(payload)
    with db.session() as s:
        tenant = s.get(Tenant, tenant_id)
        assert tenant is not None
        result = accept_intent(
            s, settings, tenant, intent, idempotency_key=None, payload_hash=request_hash(payload)
        )
        return result.message.id


def _fast(db: Database, settings: Settings, tenant_id: str, payload: dict[str, Any]) -> str | None:
    intent = SendIntent.model_validate(payload)
    with db.session() as s:
        tenant = s.get(Tenant, tenant_id)
        assert tenant is not None
        s.expunge(tenant)
    accepted = accept_fast(
        db.engine,
        settings,
        tenant,
        intent,
        idempotency_key=None,
        payload_hash=request_hash(payload),
    )
    return None if accepted is None else accepted.message.id


CASES: dict[str, dict[str, Any]] = {
    "plain": {"to": "+12025550140", "body": "plain"},
    "everything": {
        "to": "+12025550141",
        "body": "é and ✓ make it UCS-2",
        "priority": "urgent",
        "ttl_seconds": 600,
        "journey_id": "j-1",
        "external_ref": "ref-1",
        "metadata": {"a": [1, {"b": None}], "c": "d"},
    },
    "media over a fallback": {
        "to": "+12025550142",
        "channels": ["rcs", "mms", "sms"],
        "media": [{"url": "https://example.com/a.png", "content_type": "image/png"}],
    },
    "send_at": {"to": "+12025550143", "body": "later", "send_at": "2099-01-01T09:00:00+02:00"},
    "bulk": {"to": "+447911123456", "body": "a UK mobile: its own zone", "priority": "bulk"},
}


@pytest.mark.parametrize("quiet", [False, True], ids=["daytime", "quiet hours"])
@pytest.mark.parametrize("case", list(CASES))
def test_both_paths_write_the_same_rows(
    db: Database, settings: Settings, case: str, quiet: bool
) -> None:
    ctx = make_tenant_ctx(db, quiet_hours=_quiet_now() if quiet else None)
    payload = CASES[case]
    general = _general(db, settings, ctx.tenant_id, payload)  # creates the contact
    fast = _fast(db, settings, ctx.tenant_id, payload)
    if _row(db, general)[0]["status"] == "expired":  # deferred past its TTL
        assert fast is None  # born expired: left to the general path, whose hook tells the CRM
        return
    assert fast is not None
    # (The general path's outbox row may be published and deleted already: not compared.)
    assert _row(db, fast)[:2] == _row(db, general)[:2]
    columns, events, owed = _row(db, fast)
    if quiet or "send_at" in payload:
        assert columns["status"] == "scheduled" and owed == []
    else:
        lane = f"dispatch.{payload.get('priority', 'normal')}"
        assert columns["status"] == "queued" and owed == [("dispatch_message", lane)]
    assert [e[2] for e in events] == ["pending", columns["status"]]


def test_a_new_contact_is_created_as_the_general_path_creates_it(
    db: Database, settings: Settings
) -> None:
    ctx = make_tenant_ctx(db)
    fast = _fast(db, settings, ctx.tenant_id, {"to": "+447911123457", "body": "x"})
    other = make_tenant_ctx(db)
    general = _general(db, settings, other.tenant_id, {"to": "+447911123457", "body": "x"})
    with db.session() as s:
        made = [
            s.get(Contact, s.get(Message, m).contact_id)  # type: ignore[union-attr]
            for m in (fast, general)
        ]
        (a, b) = [(c.phone, c.phone_index, c.timezone, c.crm_refs) for c in made if c]
    assert a == b and a[0] == "+447911123457" and a[2] == "Europe/Guernsey"


def _count(db: Database, model: Any, tenant_id: str) -> int:
    with db.session() as s:
        return int(
            s.scalar(select(func.count()).select_from(model).where(model.tenant_id == tenant_id))
            or 0
        )


def _post(client: FlaskClient, ctx: TenantCtx, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {**ctx.headers, **({"Idempotency-Key": key} if key else {})}
    return client.post("/v1/messages", json=body, headers=headers)


def test_a_suppressed_number_is_refused_and_no_contact_is_left(
    client: FlaskClient, db: Database, settings: Settings
) -> None:
    ctx = make_tenant_ctx(db)
    with db.session() as s:  # erasure leaves a suppression and no contact
        s.add(
            Suppression(tenant_id=ctx.tenant_id, phone_index=keyring().blind_index("+12025550150"))
        )
    assert _fast(db, settings, ctx.tenant_id, {"to": "+12025550150", "body": "x"}) is None
    r = _post(client, ctx, {"to": "+12025550150", "body": "x"})
    assert r.status_code == 422 and r.get_json()["reason"] == "recipient_opted_out"
    assert _count(db, Contact, ctx.tenant_id) == 0
    assert _count(db, Message, ctx.tenant_id) == 0


def test_opt_in_tenants_need_a_record_and_a_later_opt_in_beats_a_suppression(
    client: FlaskClient, db: Database, settings: Settings
) -> None:
    ctx = make_tenant_ctx(db)
    with db.session() as s:
        s.execute(update(Tenant).where(Tenant.id == ctx.tenant_id).values(consent_policy="opt_in"))
    r = _post(client, ctx, {"to": "+12025550151", "body": "x"})
    assert r.status_code == 422 and r.get_json()["reason"] == "no_consent"
    assert _count(db, Contact, ctx.tenant_id) == 0
    index = keyring().blind_index("+12025550151")
    with db.session() as s:
        contact = Contact(tenant_id=ctx.tenant_id, phone="+12025550151", phone_index=index)
        s.add(contact)
        s.flush()
        s.add(Suppression(tenant_id=ctx.tenant_id, phone_index=index))
        s.flush()
        s.add(
            ConsentRecord(
                tenant_id=ctx.tenant_id,
                contact_id=contact.id,
                phone_index=index,
                channel="sms",
                status="opted_in",
                source="api",
                created_at=datetime.now(UTC) + timedelta(seconds=1),
            )
        )
    assert _fast(db, settings, ctx.tenant_id, {"to": "+12025550151", "body": "x"}) is not None


def test_consent_is_read_for_the_channel_the_route_chose(
    client: FlaskClient, db: Database, settings: Settings
) -> None:
    ctx = make_tenant_ctx(db)
    index = keyring().blind_index("+12025550152")
    with db.session() as s:
        contact = Contact(tenant_id=ctx.tenant_id, phone="+12025550152", phone_index=index)
        s.add(contact)
        s.flush()
        s.add(
            ConsentRecord(
                tenant_id=ctx.tenant_id,
                contact_id=contact.id,
                phone_index=index,
                channel="sms",
                status="opted_out",
                source="keyword",
            )
        )
    media = [{"url": "https://example.com/a.png", "content_type": "image/png"}]
    by_mms = _post(client, ctx, {"to": "+12025550152", "channels": ["mms"], "media": media})
    assert by_mms.status_code == 202 and by_mms.get_json()["channel"] == "mms"
    by_sms = _post(client, ctx, {"to": "+12025550152", "body": "x"})
    assert by_sms.status_code == 422 and by_sms.get_json()["reason"] == "recipient_opted_out"


def test_no_route_and_an_unknown_account_write_nothing(
    client: FlaskClient, db: Database, settings: Settings
) -> None:
    bare = make_tenant_ctx(db, with_account=False)
    r = _post(client, bare, {"to": "+12025550153", "body": "x"})
    assert r.status_code == 422 and r.get_json()["reason"] == "no_route"
    ctx = make_tenant_ctx(db)
    r = _post(client, ctx, {"to": "+12025550153", "body": "x", "account_id": bare.tenant_id})
    assert r.status_code == 422 and r.get_json()["reason"] == "unknown_account"
    assert r.get_json()["errors"][0]["field"] == "account_id"
    r = _post(client, ctx, {"to": "+12025550153", "body": "x", "channels": ["rcs"]})
    assert r.status_code == 422 and r.get_json()["reason"] == "no_route"
    for tenant in (bare.tenant_id, ctx.tenant_id):
        assert _count(db, Contact, tenant) == 0 and _count(db, Message, tenant) == 0


def test_an_account_id_routes_to_that_account(
    client: FlaskClient, db: Database, settings: Settings
) -> None:
    ctx = make_tenant_ctx(db)
    r = _post(client, ctx, {"to": "+12025550154", "body": "x", "account_id": ctx.account_id})
    assert r.status_code == 202 and r.get_json()["account_id"] == ctx.account_id


def _concurrently(
    app: Flask, calls: list[tuple[TenantCtx, dict[str, Any], str | None]]
) -> list[Any]:
    barrier = threading.Barrier(len(calls))
    answers: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        ctx, body, key = calls[i]
        client = app.test_client()
        barrier.wait()
        answers[i] = _post(client, ctx, body, key)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_the_same_key_at_once_makes_one_message(app: Flask, db: Database) -> None:
    ctx = make_tenant_ctx(db)
    body = {"to": "+12025550155", "body": "once"}
    answers = _concurrently(app, [(ctx, body, "same-key")] * 6)
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 5 + [202], [a.get_json() for a in answers]
    assert len({a.get_json()["id"] for a in answers}) == 1
    assert _count(db, Message, ctx.tenant_id) == 1


def test_a_new_number_sent_to_at_once_makes_one_contact(app: Flask, db: Database) -> None:
    ctx = make_tenant_ctx(db)
    body = {"to": "+12025550156", "body": "hello"}
    answers = _concurrently(app, [(ctx, body, f"k{i}") for i in range(6)])
    assert {a.status_code for a in answers} == {202}, [a.get_json() for a in answers]
    assert _count(db, Contact, ctx.tenant_id) == 1
    assert _count(db, Message, ctx.tenant_id) == 6


def test_a_replay_and_a_conflict_are_answered_by_the_general_path(
    client: FlaskClient, db: Database
) -> None:
    ctx = make_tenant_ctx(db)
    first = _post(client, ctx, {"to": "+12025550157", "body": "x"}, "k-1")
    again = _post(client, ctx, {"to": "+12025550157", "body": "x"}, "k-1")
    other = _post(client, ctx, {"to": "+12025550157", "body": "y"}, "k-1")
    assert (first.status_code, again.status_code, other.status_code) == (202, 200, 409)
    assert again.get_json() == first.get_json()
    assert _count(db, Message, ctx.tenant_id) == 1


def test_a_forgotten_prepared_statement_is_prepared_again(settings: Settings) -> None:
    """DISCARD ALL (or a pooler's session handed over) drops the server's prepared
    statements while the pool still remembers them: prepared again, once, transparently."""
    from sqlalchemy import create_engine

    from app.infra.db import STATEMENT_LISTENERS, Prepared, execute_at_once

    engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
    probe = Prepared.of("switchboard_probe", "SELECT %(x)s + 1", {"x": "integer"})
    sent: list[str] = []

    def listen(statement: str, _params: Any) -> None:
        sent.append(statement.split()[0])

    STATEMENT_LISTENERS.append(listen)
    try:
        assert execute_at_once(engine, probe, {"x": 1}) == (2,)
        assert execute_at_once(engine, probe, {"x": 2}) == (3,)
        assert sent == ["PREPARE", "SELECT", "SELECT"]  # prepared once per connection
        raw = engine.raw_connection()  # the pool's one connection
        try:
            raw.driver_connection.autocommit = True  # type: ignore[union-attr]
            cursor = raw.cursor()
            cursor.execute("DISCARD ALL")
            cursor.close()
            raw.driver_connection.autocommit = False  # type: ignore[union-attr]
        finally:
            raw.close()
        assert execute_at_once(engine, probe, {"x": 3}) == (4,)
        assert sent[3:] == ["SELECT", "PREPARE", "SELECT"]
    finally:
        STATEMENT_LISTENERS.remove(listen)
        engine.dispose()
