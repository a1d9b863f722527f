"""CRM syncs in-process: connect a tenant, and apply every due sync as the crm worker would."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from app.crm.syncs import process_contact
from app.db import Database
from app.models import CrmSync
from app.models.types import utcnow
from config import Settings


def drain(db: Database, settings: Settings, tenant_id: str, *, force: bool = False) -> list[str]:
    """Apply the tenant's due syncs; ``force`` makes waiting ones due first (time passing)."""
    with db.session() as s:
        if force:
            s.execute(
                update(CrmSync)
                .where(CrmSync.tenant_id == tenant_id, CrmSync.status.in_(["pending", "running"]))
                .values(status="pending", next_attempt_at=utcnow())
            )
        pairs = s.execute(
            select(CrmSync.connection_id, CrmSync.contact_id)
            .where(CrmSync.tenant_id == tenant_id, CrmSync.status == "pending")
            .distinct()
        ).all()
    results: list[str] = []
    for connection_id, contact_id in pairs:
        results += process_contact(db, settings, connection_id, contact_id)
    return results


def syncs(db: Database, tenant_id: str) -> list[CrmSync]:
    with db.session() as s:
        return list(
            s.scalars(select(CrmSync).where(CrmSync.tenant_id == tenant_id).order_by(CrmSync.id))
        )


def summary(db: Database, tenant_id: str) -> list[tuple[str, str]]:
    return [(s.action, s.status) for s in syncs(db, tenant_id)]


def config_for(kind: str, fake: Any) -> dict[str, str]:
    if kind == "hubspot":
        return {"kind": kind, "token": fake.token, "base_url": fake.base_url}
    if kind == "salesforce":
        return {"kind": kind, "token": fake.token, "instance_url": fake.base_url}
    return {"kind": kind, "url": fake.url, "secret": fake.secret}
