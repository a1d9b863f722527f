"""The audit chain against a real database: what writes it, what the database refuses, and
what `audit verify` finds when someone with database access tampers with it anyway."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient
from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import DBAPIError

from app.infra.db import Database, make_database
from app.models import AuditCheckpoint, AuditEvent
from app.security import audit, audit_chain
from config import Settings
from tests.factories import TenantCtx, add_api_key, make_tenant_ctx
from tests.support.backends import Backend
from tests.support.cli import run, run_json

PHONE = "+13125550188"


def keys(settings: Settings) -> list[str]:
    return audit.public_keys(settings.audit_signing_key, settings.audit_verify_keys)


def report(db: Database, settings: Settings, tenant_id: str) -> audit_chain.ChainReport:
    with db.session() as s:
        (found,) = audit.verify(s, keys(settings), tenant_id)
    return found


def kinds(found: audit_chain.ChainReport) -> set[tuple[str, int | None]]:
    return {(p.kind, p.seq) for p in found.problems}


def write_events(db: Database, tenant_id: str, count: int) -> None:
    for n in range(count):
        with db.session() as s:
            audit.append(
                s,
                tenant_id=tenant_id,
                actor="test",
                action="test.event",
                target="thing",
                ids=[n],
                change={"n": n},
            )


def sign(db: Database, settings: Settings) -> None:
    with db.session() as s:
        audit.write_checkpoints(s, settings.audit_signing_key, keys(settings))


@contextmanager
def tampering(db: Database) -> Iterator[Connection]:
    """A connection the append-only triggers do not stop: what a superuser could do."""
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET session_replication_role = replica"))
            yield conn
            conn.execute(text("SET session_replication_role = origin"))
            conn.commit()
            return
        triggers = conn.execute(
            text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'audit%'"
            )
        ).all()
        for name, _sql in triggers:
            conn.execute(text(f"DROP TRIGGER {name}"))
        yield conn
        for _name, sql in triggers:
            conn.execute(text(sql))
        conn.commit()


def test_consents_erasures_exports_and_key_changes_are_chained_without_pii(
    client: FlaskClient, db: Database, settings: Settings, ctx: TenantCtx
) -> None:
    admin = {
        "Authorization": f"Bearer {add_api_key(db, ctx.tenant_id, ('admin', 'consents:write'))}"
    }
    r = client.post(
        "/v1/consents",
        json={
            "phone": PHONE,
            "channel": "sms",
            "status": "opted_in",
            "source": "api",
            "evidence": f"web form, {PHONE}",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.get_json()
    assert (
        client.get("/v1/contacts/export", query_string={"phone": PHONE}, headers=admin).status_code
        == 200
    )
    assert (
        client.delete("/v1/contacts", query_string={"phone": PHONE}, headers=admin).status_code
        == 200
    )
    with db.session() as s:
        rows = s.scalars(
            select(AuditEvent).where(AuditEvent.chain == ctx.tenant_id).order_by(AuditEvent.seq)
        ).all()
        actions = [r.action for r in rows]
        stored = json.dumps([audit.event_dict(r) for r in rows])
    assert actions == ["consent.opted_in", "contact.export", "contact.erase"]
    assert [r.seq for r in rows] == [1, 2, 3]
    # Ids and blind indexes only: the number appears in no form, not even in the evidence.
    for form in (PHONE, PHONE.lstrip("+"), PHONE[2:]):
        assert form not in stored
    assert rows[0].actor == "api" and rows[1].actor.startswith("key:")
    found = report(db, settings, ctx.tenant_id)
    assert found.ok and found.events == 3


def test_the_database_refuses_update_and_delete(db: Database, settings: Settings) -> None:
    tenant = make_tenant_ctx(db, with_account=False).tenant_id
    write_events(db, tenant, 2)
    sign(db, settings)
    for statement in (
        f"UPDATE audit_events SET actor = 'someone else' WHERE chain = '{tenant}'",
        f"DELETE FROM audit_events WHERE chain = '{tenant}'",
        f"UPDATE audit_checkpoints SET seq = 1 WHERE chain = '{tenant}'",
        f"DELETE FROM audit_checkpoints WHERE chain = '{tenant}'",
    ):
        with pytest.raises(DBAPIError, match="append-only"), db.session() as s:
            s.execute(text(statement))
    assert report(db, settings, tenant).ok


def test_an_edited_row_is_found(db: Database, settings: Settings) -> None:
    tenant = make_tenant_ctx(db, with_account=False).tenant_id
    write_events(db, tenant, 5)
    with tampering(db) as conn:
        conn.execute(
            text("UPDATE audit_events SET actor = 'nobody' WHERE chain = :c AND seq = 3"),
            {"c": tenant},
        )
    found = report(db, settings, tenant)
    assert kinds(found) == {("edited", 3)}


def test_an_edit_with_the_hashes_recomputed_is_found_by_the_signed_checkpoint(
    db: Database, settings: Settings
) -> None:
    tenant = make_tenant_ctx(db, with_account=False).tenant_id
    write_events(db, tenant, 4)
    sign(db, settings)
    with db.session() as s:
        rows = [
            audit.event_dict(r)
            for r in s.scalars(
                select(AuditEvent).where(AuditEvent.chain == tenant).order_by(AuditEvent.seq)
            )
        ]
    # Rewrite event 2 and every hash after it, as someone who knows the scheme would.
    rows[1]["change"] = {"n": 99}
    prev = rows[0]["hash"]
    with tampering(db) as conn:
        for row in rows[1:]:
            row["prev_hash"] = prev
            row["hash"] = audit_chain.event_hash(prev, row)
            conn.execute(
                text(
                    "UPDATE audit_events SET change = :change, prev_hash = :p, hash = :h "
                    "WHERE id = :id"
                ),
                {
                    "change": json.dumps(row["change"]),
                    "p": row["prev_hash"],
                    "h": row["hash"],
                    "id": row["id"],
                },
            )
            prev = row["hash"]
    found = report(db, settings, tenant)
    assert ("edited", 4) in kinds(found)  # the chain up to seq 4 is not what was signed
    assert any("checkpoint" in p.detail for p in found.problems)


def test_a_deleted_row_is_found(db: Database, settings: Settings) -> None:
    tenant = make_tenant_ctx(db, with_account=False).tenant_id
    write_events(db, tenant, 5)
    with tampering(db) as conn:
        conn.execute(text("DELETE FROM audit_events WHERE chain = :c AND seq = 2"), {"c": tenant})
    found = report(db, settings, tenant)
    assert kinds(found) == {("deleted", 2)}
    assert found.problems[0].detail == "seq 2"


def test_a_deleted_tail_is_found_by_the_head_and_the_checkpoint(
    db: Database, settings: Settings
) -> None:
    tenant = make_tenant_ctx(db, with_account=False).tenant_id
    write_events(db, tenant, 3)
    sign(db, settings)
    with tampering(db) as conn:
        conn.execute(text("DELETE FROM audit_events WHERE chain = :c AND seq = 3"), {"c": tenant})
        conn.execute(text("UPDATE audit_heads SET seq = 2 WHERE chain = :c"), {"c": tenant})
    found = report(db, settings, tenant)
    assert ("deleted", 3) in kinds(found)
    assert any("signed seq 3" in p.detail for p in found.problems)


def test_a_reordered_row_is_found(db: Database, settings: Settings) -> None:
    tenant = make_tenant_ctx(db, with_account=False).tenant_id
    write_events(db, tenant, 5)
    with tampering(db) as conn:
        for old, new in ((3, -3), (4, 3), (-3, 4)):
            conn.execute(
                text("UPDATE audit_events SET seq = :new WHERE chain = :c AND seq = :old"),
                {"new": new, "old": old, "c": tenant},
            )
    found = report(db, settings, tenant)
    assert {k for k, _ in kinds(found)} == {"reordered"}
    assert {3, 4} <= {seq for _, seq in kinds(found)}
    assert not any(p.kind == "edited" for p in found.problems)


def test_a_forged_checkpoint_is_found(db: Database, settings: Settings) -> None:
    tenant = make_tenant_ctx(db, with_account=False).tenant_id
    write_events(db, tenant, 3)
    sign(db, settings)
    with db.session() as s:
        head = s.scalars(
            select(AuditEvent).where(AuditEvent.chain == tenant, AuditEvent.seq == 2)
        ).one()
        # Signed by a key nobody trusts, and then one with a trusted key id but a bad signature.
        at = audit_chain.timestamp(datetime.now(UTC))
        stranger = Ed25519PrivateKey.generate()
        kid, signature = audit_chain.sign_checkpoint(stranger, tenant, 2, head.hash, at)
        s.add(
            AuditCheckpoint(
                chain=tenant, seq=2, hash=head.hash, at=at, key_id=kid, signature=signature
            )
        )
    with tampering(db) as conn:
        # A trusted key's id on a signature that key never made (over another head).
        good = conn.execute(
            text("SELECT key_id, signature FROM audit_checkpoints WHERE chain = :c AND seq = 3"),
            {"c": tenant},
        ).one()
        conn.execute(
            text(
                "INSERT INTO audit_checkpoints "
                "(chain, seq, hash, at, key_id, signature, created_at) "
                "VALUES (:c, 1, :h, :at, :k, :sig, :now)"
            ),
            {
                "c": tenant,
                "h": "f" * 64,
                "at": at,
                "k": good.key_id,
                "sig": good.signature,
                "now": datetime.now(UTC),
            },
        )
    found = report(db, settings, tenant)
    assert sorted((p.kind, p.seq) for p in found.problems) == [
        ("forged_checkpoint", 1),
        ("forged_checkpoint", 2),
    ]
    details = " / ".join(p.detail for p in found.problems)
    assert "unknown signing key" in details and "does not verify" in details


def _writer(settings: Settings, tenant_id: str, count: int) -> None:
    db = make_database(settings)
    write_events(db, tenant_id, count)
    db.engine.dispose()


def test_concurrent_writers_in_several_processes_keep_one_chain(
    db: Database, settings: Settings
) -> None:
    tenant = make_tenant_ctx(db, with_account=False).tenant_id
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_writer, args=(settings, tenant, 40)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    with db.session() as s:
        seqs = list(s.scalars(select(AuditEvent.seq).where(AuditEvent.chain == tenant)))
    assert sorted(seqs) == list(range(1, 161))
    assert report(db, settings, tenant).ok


def test_checkpoints_refuse_a_chain_that_does_not_verify(db: Database, settings: Settings) -> None:
    tenant = make_tenant_ctx(db, with_account=False).tenant_id
    write_events(db, tenant, 2)
    sign(db, settings)
    write_events(db, tenant, 2)
    with tampering(db) as conn:
        conn.execute(
            text("UPDATE audit_events SET action = 'x' WHERE chain = :c AND seq = 4"), {"c": tenant}
        )
    with db.session() as s:
        result = audit.write_checkpoints(s, settings.audit_signing_key, keys(settings))
        signed = s.scalar(
            select(func.max(AuditCheckpoint.seq)).where(AuditCheckpoint.chain == tenant)
        )
    assert tenant in result.refused and tenant not in result.signed
    assert signed == 2


def test_cli_verify_names_the_problem_and_export_verifies_on_its_own(
    db: Database, settings: Settings, backend: Backend, tmp_path: Path
) -> None:
    tenant = make_tenant_ctx(db, with_account=False).tenant_id
    write_events(db, tenant, 3)
    sign(db, settings)
    assert run_json(backend, f"audit verify --tenant {tenant}")["ok"] is True
    out = tmp_path / "export"
    exported = run_json(backend, f"audit export --out {out} --tenant {tenant}")
    assert (exported["events"], exported["checkpoints"]) == (3, 1)
    standalone = subprocess.run(
        [sys.executable, "-I", "verify.py", "."], cwd=out, capture_output=True, text=True
    )
    assert standalone.returncode == 0, standalone.stdout + standalone.stderr
    assert f"{tenant}: holds (3 events, 1 checkpoints)" in standalone.stdout
    # Edit the export: the standalone check names it.
    lines = (out / "events.jsonl").read_text().splitlines()
    first: dict[str, Any] = json.loads(lines[0])
    first["actor"] = "someone else"
    lines[0] = json.dumps(first)
    (out / "events.jsonl").write_text("\n".join(lines) + "\n")
    broken = subprocess.run(
        [sys.executable, "-I", "verify.py", "."], cwd=out, capture_output=True, text=True
    )
    assert broken.returncode == 1 and "edited at seq 1" in broken.stdout

    with tampering(db) as conn:
        conn.execute(text("DELETE FROM audit_events WHERE chain = :c AND seq = 2"), {"c": tenant})
    failed = run(backend, "audit", "verify", "--tenant", tenant, ok=False)
    assert failed.returncode == 1
    assert "deleted at seq 2: seq 2" in failed.stdout and "does NOT hold" in failed.stdout


def test_an_append_is_one_statement_once_the_chain_exists(db: Database, settings: Settings) -> None:
    from sqlalchemy import event

    tenant = make_tenant_ctx(db, with_account=False).tenant_id
    write_events(db, tenant, 1)  # creates the chain's head
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "audit" in statement:
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        write_events(db, tenant, 1)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    expected = 1 if db.engine.dialect.name == "postgresql" else 3
    assert len(statements) == expected, statements
    assert report(db, settings, tenant).ok
