"""CRM tasks: apply a contact's due syncs, and beat's re-drive and sweep."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.broker import TaskNames
from app.crm.owed import sweep_missing
from app.crm.syncs import process_contact, redrive_due
from app.models import CrmConnection
from app.models.types import utcnow
from workers.context import db, settings

log = logging.getLogger(__name__)


@shared_task(
    name=TaskNames.CRM_SYNC,
    autoretry_for=(OperationalError,),
    retry_backoff=1,
    retry_backoff_max=8,
    max_retries=5,
)
def crm_sync_contact(connection_id: str, contact_id: str) -> list[str]:
    results = process_contact(db(), settings(), connection_id, contact_id)
    log.info(
        "crm syncs applied",
        extra={"connection_id": connection_id, "contact_id": contact_id, "results": results},
    )
    return results


@shared_task(name=TaskNames.CRM_REDRIVE)
def crm_redrive_syncs() -> dict[str, int]:
    """Hand on the due syncs, then sweep for facts that owe a sync and have none."""
    redriven = redrive_due(db())
    since = utcnow() - timedelta(seconds=settings().crm_sweep_window_seconds)
    swept = 0
    with db().session() as session:
        connections = list(
            session.scalars(select(CrmConnection).where(CrmConnection.active.is_(True)))
        )
        for connection in connections:
            swept += sweep_missing(session, connection, since)
    if redriven or swept:
        log.info("crm syncs re-driven", extra={"redriven": redriven, "swept": swept})
    return {"redriven": redriven, "swept": swept}
