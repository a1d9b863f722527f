"""insert_rows against the real database: each value through its column's type, rows alike
bound once and still each inserted, conflicts left out, and what went in returned."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Text, func, select, type_coerce

from app.domain.clock import utcnow
from app.domain.ids import new_id
from app.infra.db import Database, insert_rows
from app.models import Contact, MessageEvent
from app.security.crypto import keyring
from tests.factories import TenantCtx

CONTACTS: Any = Contact.__table__
EVENTS: Any = MessageEvent.__table__


def contact(ctx: TenantCtx, phone: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": new_id("con"),
        "tenant_id": ctx.tenant_id,
        "phone": phone,
        "phone_index": keyring().blind_index(phone),
        "timezone": extra.get("timezone"),
        "locale": None,
        "crm_refs": extra.get("crm_refs", {}),
        "created_at": extra.get("created_at", utcnow()),
    }


def test_values_go_through_their_column_types(ctx: TenantCtx, db: Database) -> None:
    at = utcnow().replace(microsecond=0)
    rows = [
        contact(ctx, "+13125550700", timezone="America/Chicago", created_at=at),
        contact(ctx, "+13125550701", crm_refs={"hubspot": "42"}, created_at=at + timedelta(1)),
        contact(ctx, "+13125550702", created_at=at),
    ]
    with db.session() as s:
        returned = insert_rows(s, CONTACTS, rows, CONTACTS.c.id, CONTACTS.c.phone_index)
    assert {r.id for r in returned} == {r["id"] for r in rows}
    with db.session() as s:
        stored = {
            c.id: c
            for c in s.scalars(select(Contact).where(Contact.id.in_([r["id"] for r in rows])))
        }
        raw = s.scalars(
            select(type_coerce(Contact.phone, Text)).where(Contact.id == rows[0]["id"])
        ).one()
    for row in rows:
        found = stored[row["id"]]
        assert found.phone == row["phone"]  # encrypted on the way in, decrypted on the way out
        assert found.crm_refs == row["crm_refs"]
        assert found.timezone == row["timezone"]
        assert found.created_at == row["created_at"]
    assert "+1312" not in raw  # the database holds ciphertext only


def test_conflicts_are_left_out_and_only_new_rows_returned(ctx: TenantCtx, db: Database) -> None:
    first = contact(ctx, "+13125550710")
    with db.session() as s:
        insert_rows(s, CONTACTS, [first], ignore=["tenant_id", "phone_index"])
    again = [contact(ctx, "+13125550710"), contact(ctx, "+13125550711")]
    with db.session() as s:
        returned = insert_rows(
            s, CONTACTS, again, CONTACTS.c.phone_index, ignore=["tenant_id", "phone_index"]
        )
    assert [r.phone_index for r in returned] == [again[1]["phone_index"]]
    with db.session() as s:
        count = s.scalar(
            select(func.count()).where(
                Contact.tenant_id == ctx.tenant_id,
                Contact.phone_index.in_([r["phone_index"] for r in again]),
            )
        )
    assert count == 2


def test_rows_all_alike_are_each_inserted(
    client: FlaskClient, ctx: TenantCtx, db: Database
) -> None:
    r = client.post("/v1/messages", json={"to": "+13125550720", "body": "hi"}, headers=ctx.headers)
    assert r.status_code == 202, r.get_json()
    message_id = r.get_json()["id"]
    at = utcnow()
    event = {
        "tenant_id": ctx.tenant_id,
        "message_id": message_id,
        "kind": "note",
        "from_status": None,
        "to_status": None,
        "outcome": "applied",
        "reason": "same",
        "source": "test",
        "dedupe_key": None,
        "data": {"n": 1},
        "created_at": at,
    }
    with db.session() as s:
        insert_rows(s, EVENTS, [dict(event) for _ in range(3)])
    with db.session() as s:
        notes = s.scalars(
            select(MessageEvent).where(
                MessageEvent.message_id == message_id, MessageEvent.kind == "note"
            )
        ).all()
    assert len(notes) == 3
    assert all(n.data == {"n": 1} and n.created_at == at for n in notes)
