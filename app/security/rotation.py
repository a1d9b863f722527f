"""Re-encrypting every encrypted column to the newest key, and re-keying the blind index,
while traffic flows.

``rotate`` walks each encrypted column by primary key in batches, one transaction a batch,
and rewrites only what an older key encrypted. Each rewrite is a compare-and-set on the old
ciphertext: a row a writer changed meanwhile already holds the newest key's ciphertext, and
is left alone. Progress is kept per column (``key_rotations``), so an interrupted rotation
resumes where it stopped. ``scan`` then counts, per column, what each key is needed for:
when no ciphertext needs an old key, that key can be removed from ENCRYPTION_KEYS.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Table, Text, func, literal, select, type_coerce, update
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.models import Base, CampaignRecipient, ConsentRecord, Contact, KeyRotation, Suppression
from app.models.types import Encrypted
from app.security.crypto import DecryptionError, Keyring


@dataclass(frozen=True)
class Target:
    table: Table
    column: Column[Any]
    pk: Column[Any]

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column.name}"


def encrypted_columns() -> list[Target]:
    """Every column of every table whose type is Encrypted."""
    found = []
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, Encrypted):
                (pk,) = table.primary_key.columns  # every such table has a one-column key
                found.append(Target(table, column, pk))
    return found


def _raw(target: Target) -> Any:
    return type_coerce(target.column, Text)


def _batches(session: Session, target: Target, after: Any, size: int) -> Iterator[Sequence[Any]]:
    while True:
        query = select(target.pk, _raw(target)).where(target.column.is_not(None))
        if after is not None:
            query = query.where(target.pk > after)
        rows = session.execute(query.order_by(target.pk).limit(size)).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


@dataclass
class ColumnResult:
    column: str
    rotated: int = 0
    skipped_changed: int = 0
    undecryptable: int = 0


def rotate_column(
    session: Session,
    ring: Keyring,
    target: Target,
    *,
    batch: int = 500,
    restart: bool = False,
    progress: Callable[[int], None] = lambda _n: None,
) -> ColumnResult:
    """Rotate one column, committing after each batch; resumes from its saved progress."""
    result = ColumnResult(target.name)
    state = session.get(KeyRotation, (target.table.name, target.column.name))
    current = ring.fingerprints[0]
    if state is None:
        state = KeyRotation(table_name=target.table.name, column_name=target.column.name)
        session.add(state)
    if restart or state.target != current:
        state.target, state.last_id, state.rotated, state.finished_at = current, None, 0, None
    if state.finished_at is not None:
        return result
    session.commit()
    after = _after(target, state.last_id)
    before = state.rotated or 0
    for rows in _batches(session, target, after, batch):
        for pk, token in rows:
            position = ring.key_of(token)
            if position is None:
                result.undecryptable += 1
            elif position > 0:
                changed = session.execute(
                    update(target.table)
                    .where(target.pk == pk, _raw(target) == token)
                    .values({target.column.name: literal(ring.rotate(token), Text)})
                ).rowcount  # type: ignore[attr-defined]
                if changed:
                    result.rotated += 1
                else:
                    result.skipped_changed += 1
        state.last_id = str(rows[-1][0])
        state.rotated = before + result.rotated
        state.updated_at = utcnow()
        session.commit()
        progress(len(rows))
    state.finished_at = utcnow()
    session.commit()
    return result


def _after(target: Target, last_id: str | None) -> Any:
    if last_id is None:
        return None
    python_type = target.pk.type.python_type
    return int(last_id) if python_type is int else last_id


def size(session: Session, target: Target) -> int:
    """How many non-null values the column holds (the progress bar's total)."""
    query = select(func.count()).select_from(target.table).where(target.column.is_not(None))
    return int(session.scalar(query) or 0)


@dataclass
class Usage:
    """What each key is still needed for, per column."""

    fingerprints: tuple[str, ...]
    columns: dict[str, list[int]] = field(default_factory=dict)
    undecryptable: dict[str, int] = field(default_factory=dict)

    @property
    def old_key_needed(self) -> int:
        return sum(sum(counts[1:]) for counts in self.columns.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "keys": list(self.fingerprints),
            "columns": {
                name: dict(zip(self.fingerprints, counts, strict=True))
                for name, counts in self.columns.items()
            },
            "undecryptable": self.undecryptable,
            "old_key_needed": self.old_key_needed,
            "removable": [
                fp
                for i, fp in enumerate(self.fingerprints)
                if i > 0 and all(c[i] == 0 for c in self.columns.values())
            ],
        }


def scan(session: Session, ring: Keyring, batch: int = 2000) -> Usage:
    usage = Usage(ring.fingerprints)
    for target in encrypted_columns():
        counts = [0] * len(ring.fingerprints)
        bad = 0
        for rows in _batches(session, target, None, batch):
            for _pk, token in rows:
                position = ring.key_of(token)
                if position is None:
                    bad += 1
                else:
                    counts[position] += 1
        usage.columns[target.name] = counts
        if bad:
            usage.undecryptable[target.name] = bad
    return usage


# --- the blind index ------------------------------------------------------------------


@dataclass
class Rekeyed:
    contacts: int = 0
    consents: int = 0
    suppressions: int = 0
    campaign_recipients: int = 0
    undecryptable: int = 0


def _contacts(session: Session, size: int) -> Iterator[Sequence[Any]]:
    """Every live contact, by id, in batches: (id, tenant, phone ciphertext, phone index)."""
    after: str | None = None
    while True:
        query = select(
            Contact.id, Contact.tenant_id, type_coerce(Contact.phone, Text), Contact.phone_index
        ).where(Contact.phone_index.not_like("erased:%"))
        if after is not None:
            query = query.where(Contact.id > after)
        rows = session.execute(query.order_by(Contact.id).limit(size)).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def rekey_blind_index(
    session: Session,
    ring: Keyring,
    *,
    batch: int = 500,
    progress: Callable[[int], None] = lambda _n: None,
) -> Rekeyed:
    """Move every contact still under the previous blind key to the current one, with its
    consent records and any suppression of its number, a batch per transaction.

    Each contact is locked (FOR UPDATE) while it moves: a consent record or a send's
    claim takes the same lock, so none sees the contact and its records under different
    keys. Safe to run again: what is under the current key already is left alone.
    """
    if ring.blind_previous is None:
        raise ValueError("no re-keying window: set BLIND_INDEX_PREVIOUS_KEY to the old key")
    result = Rekeyed()
    for rows in _contacts(session, batch):
        for contact_id, tenant_id, token, _seen in rows:
            try:
                phone = ring.decrypt(token)
            except DecryptionError:
                result.undecryptable += 1
                continue
            new, old = ring.blind_index(phone), ring.previous_blind_index(phone)
            stored = session.scalar(
                select(Contact.phone_index).where(Contact.id == contact_id).with_for_update()
            )
            if stored is not None and stored == old:
                session.execute(
                    update(Contact).where(Contact.id == contact_id).values(phone_index=new)
                )
                moved = session.execute(
                    update(ConsentRecord)
                    .where(ConsentRecord.tenant_id == tenant_id, ConsentRecord.phone_index == old)
                    .values(phone_index=new)
                )
                result.contacts += 1
                result.consents += int(getattr(moved, "rowcount", 0) or 0)
            if old is not None:
                result.suppressions += _move_suppression(session, ring, tenant_id, old, new)
        session.commit()
        progress(len(rows))
    result.campaign_recipients = _rekey_recipients(session, ring, batch)
    return result


def _rekey_recipients(session: Session, ring: Keyring, size: int) -> int:
    """The rows of open campaigns still pending, under the current key: a number uploaded
    again after the switch is then seen as the duplicate it is. One that is already there
    under the new key is the duplicate: it is skipped, so it is sent once."""
    moved = 0
    after = 0
    while True:
        rows = session.execute(
            select(
                CampaignRecipient.id,
                CampaignRecipient.campaign_id,
                type_coerce(CampaignRecipient.phone, Text),
                CampaignRecipient.phone_index,
            )
            .where(CampaignRecipient.id > after, CampaignRecipient.state == "pending")
            .order_by(CampaignRecipient.id)
            .limit(size)
        ).all()
        if not rows:
            return moved
        for row_id, campaign_id, token, stored in rows:
            try:
                phone = ring.decrypt(token)
            except DecryptionError:
                continue
            new = ring.blind_index(phone)
            if stored == new or stored != ring.previous_blind_index(phone):
                continue
            taken = session.scalar(
                select(CampaignRecipient.id).where(
                    CampaignRecipient.campaign_id == campaign_id,
                    CampaignRecipient.phone_index == new,
                )
            )
            values = {"state": "skipped", "reason": "duplicate"} if taken else {"phone_index": new}
            session.execute(
                update(CampaignRecipient).where(CampaignRecipient.id == row_id).values(**values)
            )
            moved += 1
        session.commit()
        after = rows[-1][0]


def _move_suppression(session: Session, ring: Keyring, tenant_id: str, old: str, new: str) -> int:
    stale = session.get(Suppression, (old, tenant_id))
    if stale is None:
        return 0
    if session.get(Suppression, (new, tenant_id)) is None:
        session.add(
            Suppression(
                phone_index=new,
                tenant_id=tenant_id,
                created_at=stale.created_at,
                blind_key=ring.blind_fingerprint,
            )
        )
    session.delete(stale)
    session.flush()
    return 1


def blind_index_status(session: Session, ring: Keyring) -> dict[str, Any]:
    """What is still under another blind key than the current one."""
    under_previous: int | None = None
    if ring.blind_previous is not None:
        under_previous = 0
        for rows in _contacts(session, 2000):
            for _id, _tenant, token, stored in rows:
                with contextlib.suppress(DecryptionError):
                    if stored == ring.previous_blind_index(ring.decrypt(token)):
                        under_previous += 1
    other = session.scalar(
        select(func.count())
        .select_from(Suppression)
        .where(Suppression.blind_key.is_(None) | (Suppression.blind_key != ring.blind_fingerprint))
    )
    return {
        "key": ring.blind_fingerprint,
        "window_open": ring.blind_previous is not None,
        "contacts_under_previous_key": under_previous,
        # Suppressions of erased numbers made under another (or an unrecorded) key: nothing
        # can re-compute their index, so only that key still matches them.
        "suppressions_under_other_keys": int(other or 0),
    }
