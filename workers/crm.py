"""CRM tasks: drain a connection's due syncs in batches, and beat's re-drive and sweep.

``crm_sync_contact`` keeps its name (tasks queued before batches carried a contact id
too, which is ignored): it is the coalesced wake of one connection's drain
(``app.crm.batches``). A drain that ran out of time hands on; one whose connection must
wait a few seconds comes back then, and longer waits are beat's (``redrive_due``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.crm.batches import drain_connection
from app.crm.owed import sweep_missing
from app.crm.syncs import redrive_due, wake_key
from app.domain.clock import utcnow
from app.domain.queues import QueueNames
from app.infra.broker import TaskNames
from app.models import CrmConnection
from workers.context import celery, db, limiter, settings, wakes
from workers.stopping import stopping

log = logging.getLogger(__name__)

# A connection that must wait at most this long gets its drain back by countdown; longer
# waits live in the database (beat re-drives the syncs once they are due).
SHORT_WAIT = 5.0


@shared_task(
    name=TaskNames.CRM_SYNC,
    autoretry_for=(OperationalError,),
    retry_backoff=1,
    retry_backoff_max=8,
    max_retries=5,
)
def crm_sync_contact(connection_id: str, _contact_id: str | None = None) -> dict[str, int]:
    report = drain_connection(
        db(),
        settings(),
        limiter(),
        connection_id,
        stopping.is_set,
        finishing=lambda: wakes().clear(QueueNames.CRM, wake_key(connection_id)),
    )
    counts: dict[str, int] = {}
    for result in report.results:
        counts[result] = counts.get(result, 0) + 1
    if report.more:
        celery().send_task(TaskNames.CRM_SYNC, args=[connection_id], queue=QueueNames.CRM)
    elif report.resume_in is not None and report.resume_in <= SHORT_WAIT:
        celery().send_task(
            TaskNames.CRM_SYNC,
            args=[connection_id],
            queue=QueueNames.CRM,
            countdown=max(0.1, report.resume_in),
        )
    if counts or report.resume_in:
        log.info(
            "crm syncs applied",
            extra={
                "connection_id": connection_id,
                "results": counts,
                "waits": round(report.resume_in or 0, 1),
                "busy": report.busy,
            },
        )
    return counts


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
