"""Beat jobs. Each is idempotent and safe when two beats overlap."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task

from app.domain.queues import QueueNames
from app.infra.broker import TaskNames
from app.infra.outbox import relay
from app.messaging.compliance import privacy
from app.messaging.dispatch.scheduler import expire_overdue, release_due, unannounced_work
from app.messaging.receipts.inbox import purge_processed, redrive_deferred
from app.messaging.recovery.reconcile import reconcile
from app.reports.analytics import rollup
from app.security import audit
from app.security.oauth import purge_revoked
from workers.context import celery, db, settings

log = logging.getLogger(__name__)


@shared_task(name=TaskNames.RELAY_OUTBOX)
def relay_outbox() -> int:
    count = relay(celery(), db(), timedelta(seconds=settings().outbox_relay_grace))
    if count:
        log.info("outbox relayed", extra={"rows": count})
    return count


@shared_task(name=TaskNames.RELEASE_DUE)
def release_due_messages() -> int:
    count = release_due(db())
    if count:
        log.info("released due messages", extra={"count": count})
    # Queued work whose wake was lost (broker outage): wake its drain.
    lanes, inbox = unannounced_work(db())
    for lane in lanes:
        celery().send_task(
            TaskNames.DISPATCH_LANE, args=[lane], queue=QueueNames.for_priority(lane)
        )
    if inbox:
        celery().send_task(TaskNames.PROCESS_INBOX, args=[""], queue=QueueNames.INTAKE)
    if lanes or inbox:
        log.info("woke drains for unannounced work", extra={"lanes": lanes, "inbox": inbox})
    return count


@shared_task(name=TaskNames.EXPIRE)
def expire_messages() -> int:
    count = expire_overdue(db())
    if count:
        log.info("expired messages", extra={"count": count})
    return count


@shared_task(name=TaskNames.REDRIVE_INBOX)
def redrive_inbox() -> int:
    count = redrive_deferred(db(), timedelta(seconds=settings().inbox_lost_after_seconds))
    if count:
        log.info("re-drove inbox rows", extra={"count": count})
    return count


@shared_task(name=TaskNames.PURGE_INBOX)
def purge_inbox() -> int:
    retention = timedelta(hours=settings().webhook_dedupe_hours)
    count = purge_processed(db(), retention)
    if count:
        log.info("purged processed inbox rows", extra={"count": count})
    return count


@shared_task(name=TaskNames.RECONCILE)
def reconcile_stuck_messages() -> dict[str, int]:
    counts = reconcile(db(), settings().stuck_sla)
    if any(counts.values()):
        log.info("reconciled stuck messages", extra=counts)
    return counts


@shared_task(name=TaskNames.ANALYTICS_ROLLUP)
def analytics_rollup() -> int:
    """Recompute the last hours of the delivery rollup (late receipts land in their hour)."""
    with db().session() as session:
        return rollup(session, hours=settings().analytics_rollup_hours)


@shared_task(name=TaskNames.AUDIT_CHECKPOINT)
def audit_checkpoint() -> dict[str, list[str]]:
    """Verify what each chain gained since its last checkpoint, then sign its head.

    Two beats overlapping: the second's checkpoint of the same head is refused by the
    unique (chain, seq), and its transaction rolls back; the next run carries on.
    """
    config = settings()
    with db().session() as session:
        keys = audit.public_keys(config.audit_signing_key, config.audit_verify_keys)
        result = audit.write_checkpoints(session, config.audit_signing_key, keys)
    if result.refused:
        log.error(
            "audit chain does not verify: not signed; run switchboard audit verify",
            extra={"chains": result.refused},
        )
    elif result.signed:
        log.info("audit checkpoints signed", extra={"chains": len(result.signed)})
    return {"signed": result.signed, "refused": result.refused}


@shared_task(name=TaskNames.ENFORCE_PRIVACY)
def enforce_privacy() -> dict[str, int]:
    """Each tenant's privacy mode (bodies, webhook payloads); forget expired revocations."""
    counts = privacy.enforce(db())
    with db().session() as session:
        counts["revocations"] = purge_revoked(session)
    if any(counts.values()):
        log.info("privacy modes applied", extra=counts)
    return counts
