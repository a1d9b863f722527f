"""CRM syncs in-process: connect a tenant, and apply every due sync as the crm worker would."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from app.crm.batches import drain_connection
from app.domain.clock import utcnow
from app.infra.db import Database
from app.infra.ratelimit import DatabaseLimiter
from app.models import CrmConnection, CrmSync
from config import Settings


def drain(db: Database, settings: Settings, tenant_id: str, *, force: bool = False) -> list[str]:
    """Apply the tenant's due syncs as the crm worker would (its drains, without their pause
    between short batches); ``force`` lets time pass first: waiting syncs and paused
    connections are due again."""
    with db.session() as s:
        if force:
            s.execute(
                update(CrmSync)
                .where(CrmSync.tenant_id == tenant_id, CrmSync.status.in_(["pending", "running"]))
                .values(status="pending", next_attempt_at=utcnow())
            )
            s.execute(
                update(CrmConnection)
                .where(CrmConnection.tenant_id == tenant_id)
                .values(paused_until=None, pause_reason=None)
            )
        connections = list(
            s.scalars(
                select(CrmSync.connection_id).where(CrmSync.tenant_id == tenant_id).distinct()
            )
        )
    results: list[str] = []
    for connection_id in connections:
        for _ in range(100):
            report = drain_connection(
                db, settings, DatabaseLimiter(), connection_id, sleep=lambda _s: None
            )
            results += report.results
            if not report.more:
                break
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
