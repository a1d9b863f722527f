"""Maintenance ticks log what a job did, not that it ran.

Beat sends each maintenance job every few seconds, and Celery logs each one
received, succeeded and sent at INFO. This filter drops those three lines for
maintenance tasks only; a job that did something logs it itself, and every
warning and error still passes.
"""

from __future__ import annotations

import logging

from app.infra.broker import TaskNames

MAINTENANCE = frozenset(
    {
        TaskNames.RELAY_OUTBOX,
        TaskNames.RELEASE_DUE,
        TaskNames.EXPIRE,
        TaskNames.REDRIVE_INBOX,
        TaskNames.PURGE_INBOX,
        TaskNames.RECONCILE,
        TaskNames.CRM_REDRIVE,
        TaskNames.ANALYTICS_ROLLUP,
        TaskNames.AUDIT_CHECKPOINT,
        TaskNames.ENFORCE_PRIVACY,
        TaskNames.EXPAND_CAMPAIGNS,
    }
)
CHATTY = ("celery.app.trace", "celery.worker.strategy", "celery.beat")


class QuietTicks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or not record.name.startswith(CHATTY):
            return True
        text = record.getMessage()
        return not any(name in text for name in MAINTENANCE)


def install() -> None:
    """Attach the filter to the root handlers (Celery's own loggers propagate to them)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, QuietTicks) for f in handler.filters):
            handler.addFilter(QuietTicks())
