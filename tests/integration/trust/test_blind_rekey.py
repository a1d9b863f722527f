"""Re-keying the blind index through a window in which both indexes are kept: lookups by
number find rows under either key, `keys rotate --blind-index` moves them, and afterwards
the old key is needed only for what it says is left."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.infra.db import Database
from app.models import ConsentRecord, Contact
from app.security import rotation
from app.security.crypto import Keyring, install_keyring, keyring
from config import Settings
from tests.factories import TenantCtx, add_api_key
from tests.support.backends import ROOT, Backend
from tests.support.cli import SWITCHBOARD

KEPT = "+13125550101"  # a contact with messages
OUT = "+13125550102"  # opted out
ERASED = "+13125550103"  # opted out, then erased: a suppression of an erased number


def blind_ring(settings: Settings, current: bytes, previous: bytes | None) -> Keyring:
    ring = Keyring.from_keys(settings.encryption_keys, current, previous)
    install_keyring(ring)
    return ring


@pytest.fixture
def restore_blind(db: Database, settings: Settings) -> Iterator[list[bytes]]:
    """Afterwards every contact goes back under the suite's blind key."""
    original = keyring()
    used: list[bytes] = []
    yield used
    for key in used:
        back = blind_ring(settings, settings.blind_index_key, key)
        with db.session() as s:
            rotation.rekey_blind_index(s, back)
    install_keyring(original)


def send(client: FlaskClient, ctx: TenantCtx, to: str) -> tuple[int, str | None]:
    r = client.post("/v1/messages", json={"to": to, "body": "hello"}, headers=ctx.headers)
    return r.status_code, r.get_json().get("reason")


def contacts(db: Database, tenant_id: str) -> int:
    with db.session() as s:
        return int(
            s.scalar(
                select(func.count()).select_from(Contact).where(Contact.tenant_id == tenant_id)
            )
            or 0
        )


def test_the_window_then_the_rekey_then_the_old_key_removed(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    backend: Backend,
    ctx: TenantCtx,
    restore_blind: list[bytes],
) -> None:
    admin = {"Authorization": f"Bearer {add_api_key(db, ctx.tenant_id, ('admin',))}"}
    consents = add_api_key(db, ctx.tenant_id, ("consents:write", "consents:read"))
    writer = {"Authorization": f"Bearer {consents}"}
    assert send(client, ctx, KEPT)[0] == 202
    for phone in (OUT, ERASED):
        r = client.post(
            "/v1/consents",
            json={"phone": phone, "channel": "all", "status": "opted_out", "source": "api"},
            headers=writer,
        )
        assert r.status_code == 201
    erased = client.delete("/v1/contacts", query_string={"phone": ERASED}, headers=admin)
    assert erased.get_json()["counts"]["suppressions"] == 1
    before = contacts(db, ctx.tenant_id)

    # The window: new key current, the old one previous. Everything is still found.
    new_key = Fernet.generate_key()
    restore_blind.append(new_key)
    window = blind_ring(settings, new_key, settings.blind_index_key)
    assert send(client, ctx, KEPT)[0] == 202
    assert send(client, ctx, OUT) == (422, "recipient_opted_out")
    assert send(client, ctx, ERASED) == (422, "recipient_opted_out")
    assert contacts(db, ctx.tenant_id) == before  # KEPT's contact was found, not duplicated
    shown = client.get("/v1/consents", query_string={"phone": OUT}, headers=writer).get_json()
    assert shown["current"]["sms"]["status"] == "opted_out"

    # Re-key, as an operator would, while the window is open.
    env = {
        **backend.process_env(),
        "BLIND_INDEX_KEY": new_key.decode(),
        "BLIND_INDEX_PREVIOUS_KEY": settings.blind_index_key.decode(),
    }
    proc = subprocess.run(
        [SWITCHBOARD, "keys", "rotate", "--blind-index", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["rekeyed"]["contacts"] >= 2 and report["rekeyed"]["consents"] >= 1
    assert report["status"]["contacts_under_previous_key"] == 0
    # The erased number's suppression cannot move: the report says so.
    assert report["status"]["suppressions_under_other_keys"] >= 1
    with db.session() as s:
        kept = s.scalars(select(Contact).where(Contact.tenant_id == ctx.tenant_id)).all()
        for contact in kept:
            if not contact.phone_index.startswith("erased:"):
                assert contact.phone_index == window.blind_index(contact.phone)
        out_records = s.scalars(
            select(ConsentRecord.phone_index).where(ConsentRecord.tenant_id == ctx.tenant_id)
        ).all()
        assert set(out_records) == {window.blind_index(OUT)}

    # While the window stays open, the erased number's suppression is still honoured.
    assert send(client, ctx, ERASED) == (422, "recipient_opted_out")
    # Close the window: the old key is gone, and everything that moved is still found.
    blind_ring(settings, new_key, None)
    assert send(client, ctx, KEPT)[0] == 202
    assert send(client, ctx, OUT) == (422, "recipient_opted_out")
    assert contacts(db, ctx.tenant_id) == before


def test_rekey_refuses_without_a_window(db: Database, settings: Settings) -> None:
    with db.session() as s, pytest.raises(ValueError, match="BLIND_INDEX_PREVIOUS_KEY"):
        rotation.rekey_blind_index(s, keyring())


def test_a_campaign_sends_each_number_once_across_a_rekey(
    client: FlaskClient,
    ctx: TenantCtx,
    db: Database,
    settings: Settings,
    restore_blind: list[bytes],
) -> None:
    from app.models import CampaignRecipient

    first, second = "+13125550111", "+13125550112"
    r = client.post(
        "/v1/campaigns",
        json={"body": "hi", "start": False, "recipients": [{"to": first}, {"to": second}]},
        headers=ctx.headers,
    )
    assert r.status_code == 201, r.get_json()
    campaign_id = r.get_json()["id"]
    new_key = Fernet.generate_key()
    restore_blind.append(new_key)
    ring = blind_ring(settings, new_key, settings.blind_index_key)

    def add(to: str) -> dict[str, int]:
        added = client.post(
            f"/v1/campaigns/{campaign_id}/recipients",
            json={"recipients": [{"to": to}]},
            headers=ctx.headers,
        )
        assert added.status_code == 200, added.get_json()
        upload: dict[str, int] = added.get_json()["upload"]
        return upload

    assert add(first)["accepted"] == 1  # in the window, before the re-key: stored again
    with db.session() as s:
        done = rotation.rekey_blind_index(s, ring)
    # Other tests' open campaigns (in this database) are re-keyed too: count this one's rows.
    assert done.campaign_recipients >= 2
    with db.session() as s:
        rows = s.execute(
            select(CampaignRecipient.phone_index, CampaignRecipient.state, CampaignRecipient.reason)
            .where(CampaignRecipient.campaign_id == campaign_id)
            .order_by(CampaignRecipient.id)
        ).all()
    # The first's old row is the duplicate of the one stored again; the second moved.
    assert [(r.state, r.reason) for r in rows] == [
        ("skipped", "duplicate"),
        ("pending", None),
        ("pending", None),
    ]
    assert {rows[1].phone_index, rows[2].phone_index} == {
        ring.blind_index(first),
        ring.blind_index(second),
    }
    assert add(second)["duplicates"] == 1
    with db.session() as s:
        pending = s.scalar(
            select(func.count()).where(
                CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.state == "pending"
            )
        )
    assert pending == 2  # each number once
