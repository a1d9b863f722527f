"""Writing the audit chain, signing checkpoints of it, and verifying what is stored.

``append`` is called inside the transaction that makes the change it records, as that
transaction's last write: it locks the chain's head row, so the chain's writers take turns
(per tenant) and the event commits, or rolls back, with the change.
"""

from __future__ import annotations

import base64
import inspect
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.models.audit import SYSTEM_CHAIN, AuditCheckpoint, AuditEvent, AuditHead
from app.security import audit_chain
from app.security.audit_chain import GENESIS, ChainReport, event_hash, timestamp

# Postgres: one statement locks the chain's head, inserts the event with its hash computed
# from the head's (SHA-256 over the previous hash, a newline and the canonical body, as
# audit_chain.event_hash), and moves the head. No row comes back when the chain has no head
# yet: the first event of a chain takes the general path, which creates it.
_APPEND_PG = text(
    """
WITH head AS (
    SELECT seq, hash FROM audit_heads WHERE chain = :chain FOR UPDATE
), event AS (
    INSERT INTO audit_events (chain, seq, actor, action, target, ids, change, at, prev_hash, hash)
    SELECT :chain, head.seq + 1, :actor, :action, :target, CAST(:ids AS json),
           CAST(:change AS json), :at, head.hash,
           encode(sha256(convert_to(head.hash || chr(10) || :body, 'UTF8')), 'hex')
    FROM head
    RETURNING seq, hash
)
UPDATE audit_heads SET seq = event.seq, hash = event.hash
FROM event WHERE audit_heads.chain = :chain
RETURNING audit_heads.seq, audit_heads.hash
"""
)
_LOCK_HEAD = text(
    "INSERT INTO audit_heads (chain, seq, hash) VALUES (:chain, 0, :genesis) "
    "ON CONFLICT (chain) DO UPDATE SET seq = audit_heads.seq RETURNING seq, hash"
)
_MOVE_HEAD = text("UPDATE audit_heads SET seq = :seq, hash = :hash WHERE chain = :chain")


@dataclass(frozen=True)
class Appended:
    chain: str
    seq: int
    hash: str


def append(
    session: Session,
    *,
    tenant_id: str | None,
    actor: str,
    action: str,
    target: str,
    ids: Sequence[Any] = (),
    change: dict[str, Any] | None = None,
) -> Appended:
    """Append one event to the tenant's chain (the system chain when ``tenant_id`` is None).

    ``change`` must hold no personal data: ids, blind indexes, settings and counts only.
    On Postgres, one round trip once the chain exists.
    """
    chain = tenant_id or SYSTEM_CHAIN
    ids_json = audit_chain.canonical(list(ids))
    change_json = audit_chain.canonical(change or {})
    fields = {
        "chain": chain,
        "actor": actor[:100],
        "action": action,
        "target": target,
        # Round-tripped through JSON, so what is hashed is what the database gives back.
        "ids": json.loads(ids_json),
        "change": json.loads(change_json),
        "at": timestamp(utcnow()),
    }
    if session.get_bind().dialect.name == "postgresql":
        params = {
            **fields,
            "ids": ids_json,
            "change": change_json,
            "body": audit_chain.hashed_body(fields),
        }
        row = session.execute(_APPEND_PG, params).first()
        if row is not None:
            return Appended(chain, int(row.seq), str(row.hash))
    seq, prev_hash = session.execute(_LOCK_HEAD, {"chain": chain, "genesis": GENESIS}).one()
    digest = event_hash(prev_hash, fields)
    session.add(AuditEvent(seq=seq + 1, prev_hash=prev_hash, hash=digest, **fields))
    session.flush()
    session.execute(_MOVE_HEAD, {"seq": seq + 1, "hash": digest, "chain": chain})
    return Appended(chain, seq + 1, digest)


# --- signing keys ---------------------------------------------------------------------


def signing_key(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_keys(seed: bytes, extra: Sequence[str]) -> list[str]:
    """The current key's public half first, then retired ones still trusted."""
    current = audit_chain.public_key_text(signing_key(seed).public_key())
    return [current, *[k for k in extra if k != current]]


def generate_seed() -> tuple[str, str]:
    """(private seed, public key), both url-safe base64, for AUDIT_SIGNING_KEY."""
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.urlsafe_b64encode(raw).decode(), audit_chain.public_key_text(private.public_key())


# --- checkpoints ----------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointResult:
    signed: list[str]
    refused: list[str]


def write_checkpoints(session: Session, seed: bytes, keys: Sequence[str]) -> CheckpointResult:
    """Sign the head of every chain that grew since its last checkpoint.

    The events added since then are verified first: a chain that no longer holds is not
    signed (it is reported, and ``audit verify`` names what is wrong).
    """
    private = signing_key(seed)
    trusted = audit_chain.load_public_keys(keys)
    signed, refused = [], []
    last = (
        select(AuditCheckpoint.chain, func.max(AuditCheckpoint.seq).label("seq"))
        .group_by(AuditCheckpoint.chain)
        .subquery()
    )
    rows = session.execute(
        select(AuditHead.chain, AuditHead.seq, AuditHead.hash, last.c.seq)
        .outerjoin(last, last.c.chain == AuditHead.chain)
        .where(AuditHead.seq > func.coalesce(last.c.seq, 0))
    ).all()
    for chain, seq, head_hash, since in rows:
        since = since or 0
        report = _verify_range(session, chain, since, seq, trusted)
        if not report.ok:
            refused.append(chain)
            continue
        at = timestamp(utcnow())
        kid, signature = audit_chain.sign_checkpoint(private, chain, seq, head_hash, at)
        session.add(
            AuditCheckpoint(
                chain=chain, seq=seq, hash=head_hash, at=at, key_id=kid, signature=signature
            )
        )
        signed.append(chain)
    return CheckpointResult(signed, refused)


def _verify_range(
    session: Session, chain: str, since: int, upto: int, trusted: dict[str, Any]
) -> ChainReport:
    """The events after the last checkpoint, walked on from the hash it signed."""
    anchor = GENESIS
    if since:
        anchor = (
            session.scalar(
                select(AuditCheckpoint.hash).where(
                    AuditCheckpoint.chain == chain, AuditCheckpoint.seq == since
                )
            )
            or GENESIS
        )
    events = _events(session, chain, since + 1, upto)
    return audit_chain.verify_chain(chain, events, [], trusted, after=(since, anchor))


def _events(session: Session, chain: str, first: int, last: int | None) -> Iterator[dict[str, Any]]:
    query = select(AuditEvent).where(AuditEvent.chain == chain, AuditEvent.seq >= first)
    if last is not None:
        query = query.where(AuditEvent.seq <= last)
    for row in session.scalars(query.order_by(AuditEvent.seq).execution_options(yield_per=2000)):
        yield event_dict(row)


def event_dict(row: AuditEvent) -> dict[str, Any]:
    return {
        "id": row.id,
        "seq": row.seq,
        "chain": row.chain,
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "ids": row.ids,
        "change": row.change,
        "at": row.at,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def checkpoint_dict(row: AuditCheckpoint) -> dict[str, Any]:
    return {
        "id": row.id,
        "chain": row.chain,
        "seq": row.seq,
        "hash": row.hash,
        "at": row.at,
        "key_id": row.key_id,
        "signature": row.signature,
    }


def _checkpoints(session: Session, chain: str) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(AuditCheckpoint).where(AuditCheckpoint.chain == chain).order_by(AuditCheckpoint.id)
    )
    return [checkpoint_dict(r) for r in rows]


def chains(session: Session, tenant_id: str | None = None) -> list[str]:
    """Every chain with events, heads or checkpoints (or just the tenant's)."""
    if tenant_id is not None:
        return [tenant_id]
    found: set[str] = set()
    for model in (AuditHead, AuditEvent, AuditCheckpoint):
        found.update(session.scalars(select(model.chain).distinct()))
    return sorted(found)


# --- verify and export ----------------------------------------------------------------


def verify(
    session: Session, keys: Sequence[str], tenant_id: str | None = None
) -> list[ChainReport]:
    """Verify every chain (or the tenant's) against its head and its checkpoints."""
    trusted = audit_chain.load_public_keys(keys)
    reports = []
    for chain in chains(session, tenant_id):
        head = session.get(AuditHead, chain)
        reports.append(
            audit_chain.verify_chain(
                chain,
                _events(session, chain, 1, None),
                _checkpoints(session, chain),
                trusted,
                head={"seq": head.seq, "hash": head.hash} if head else None,
            )
        )
    return reports


def export(
    session: Session, directory: Path, keys: Sequence[str], tenant_id: str | None = None
) -> dict[str, int]:
    """Write the chain(s), checkpoints, trusted public keys and a standalone verify.py."""
    directory.mkdir(parents=True, exist_ok=True)
    counts = {"events": 0, "checkpoints": 0}
    with (
        (directory / "events.jsonl").open("w") as events_out,
        (directory / "checkpoints.jsonl").open("w") as checkpoints_out,
    ):
        for chain in chains(session, tenant_id):
            for event in _events(session, chain, 1, None):
                events_out.write(audit_chain.canonical(event) + "\n")
                counts["events"] += 1
            for cp in _checkpoints(session, chain):
                checkpoints_out.write(audit_chain.canonical(cp) + "\n")
                counts["checkpoints"] += 1
    (directory / "public_keys.json").write_text(json.dumps(list(keys), indent=2) + "\n")
    (directory / "verify.py").write_text(inspect.getsource(audit_chain))
    (directory / "README.txt").write_text(EXPORT_README)
    return counts


EXPORT_README = """This is an export of Switchboard's audit chain.

events.jsonl       every event, one JSON object a line, each chain in seq order
checkpoints.jsonl  the signed checkpoints (Ed25519 over chain, seq, hash and time)
public_keys.json   the public keys whose checkpoints are trusted
verify.py          the verification, standalone: it needs Python 3.11 and `cryptography`

    pip install cryptography && python verify.py .

It prints each chain and whether it holds, names every problem it finds (an edited,
deleted or reordered event, a forged checkpoint), and exits 0 only when all hold.
"""
