"""The maintenance schedule, with cadences from the settings."""

from __future__ import annotations

from typing import Any

from app.domain.queues import QueueNames
from app.infra.broker import TaskNames
from config import Settings


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    def entry(task: str, every: float) -> dict[str, Any]:
        # A run that waited longer than its own period is stale: the next one will do its work.
        return {
            "task": task,
            "schedule": every,
            "options": {"queue": QueueNames.MAINTENANCE, "expires": max(every, 5.0)},
        }

    return {
        "relay-outbox": entry(TaskNames.RELAY_OUTBOX, settings.outbox_relay_interval),
        "release-due": entry(TaskNames.RELEASE_DUE, settings.release_interval),
        "expire": entry(TaskNames.EXPIRE, settings.expire_interval),
        "redrive-inbox": entry(TaskNames.REDRIVE_INBOX, settings.inbox_redrive_interval),
        "purge-inbox": entry(TaskNames.PURGE_INBOX, settings.inbox_purge_interval),
        "reconcile": entry(TaskNames.RECONCILE, settings.reconcile_interval),
        "crm-redrive": entry(TaskNames.CRM_REDRIVE, settings.crm_sync_interval),
        "analytics-rollup": entry(TaskNames.ANALYTICS_ROLLUP, settings.analytics_rollup_interval),
        "audit-checkpoint": entry(TaskNames.AUDIT_CHECKPOINT, settings.audit_checkpoint_interval),
        "enforce-privacy": entry(TaskNames.ENFORCE_PRIVACY, settings.privacy_interval),
        "expand-campaigns": entry(TaskNames.EXPAND_CAMPAIGNS, settings.campaign_interval),
    }
