"""The Celery client shared by web and workers: queue names, task names, reliability settings.

The web process only publishes by task name, so it never imports task code.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from kombu.entity import Exchange, Queue

from app.domain.queues import QueueNames
from app.infra.embedded_broker import celery_broker
from config import Settings


class TaskNames:
    """Stable task names: renaming one strands tasks already on the broker."""

    DISPATCH = "dispatch_message"
    DISPATCH_LANE = "dispatch_lane"
    PROCESS_INBOX = "process_inbox_item"
    SIMULATED_RECEIPTS = "sandbox_emit_receipts"
    RELAY_OUTBOX = "relay_outbox"
    RELEASE_DUE = "release_due_messages"
    EXPIRE = "expire_messages"
    REDRIVE_INBOX = "redrive_inbox"
    PURGE_INBOX = "purge_inbox"
    RECONCILE = "reconcile_stuck_messages"
    CRM_SYNC = "crm_sync_contact"
    CRM_REDRIVE = "crm_redrive_syncs"
    ANALYTICS_ROLLUP = "analytics_rollup"
    AUDIT_CHECKPOINT = "audit_checkpoint"
    ENFORCE_PRIVACY = "enforce_privacy"
    EXPAND_CAMPAIGN = "expand_campaign"
    EXPAND_CAMPAIGNS = "expand_running_campaigns"


class FlaskTask(Task):  # type: ignore[misc]
    """Runs every task inside the Flask app context, so tasks reach the database and settings."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        flask_app = getattr(self.app, "flask_app", None)
        if flask_app is None:
            return super().__call__(*args, **kwargs)
        with flask_app.app_context():
            return super().__call__(*args, **kwargs)


def create_celery(settings: Settings, name: str = "switchboard") -> Celery:
    poll = settings.embedded_broker_poll_seconds
    broker_url, transport = celery_broker(settings.broker_url, poll)
    celery = Celery(name, broker=broker_url, set_as_current=False, task_cls=FlaskTask)
    if transport is not None:
        celery.conf.broker_transport = transport
    celery.conf.update(
        # Each queue has its own direct exchange and routing key. A bare Queue(name) is bound
        # to the default queue's exchange and key, so on RabbitMQ every task would be copied
        # into every queue (Redis routes by queue name and hides this).
        task_queues=[Queue(q, Exchange(q, type="direct"), routing_key=q) for q in QueueNames.all()],
        task_default_queue=QueueNames.NORMAL,
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        # Reliability: ack after the work is done, give the task back if the
        # worker dies, and keep prefetch small so a dead worker strands little.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_pool=settings.worker_pool,
        worker_concurrency=settings.worker_concurrency,
        # Heroku restarts with SIGTERM, then SIGKILL 30 s later. The Procfile remaps
        # SIGTERM to a cold shutdown (REMAP_SIGTERM=SIGQUIT). With tasks running, Celery
        # first waits this long (a fixed wait) for them to finish, then hands what is
        # left back to the broker: nothing is left to the SIGKILL, and nothing waits
        # for the visibility timeout. An idle worker stops at once.
        worker_soft_shutdown_timeout=settings.worker_soft_shutdown_seconds,
        worker_enable_soft_shutdown_on_idle=False,
        broker_transport_options=settings.broker_transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        # The outbox holds what could not be published: fail fast, relay later.
        task_publish_retry=False,
        worker_hijack_root_logger=False,
        # Flower's live view of workers and tasks; task-sent events would cost
        # the web process one more Redis round trip for every publish.
        worker_send_task_events=True,
        enable_utc=True,
        timezone="UTC",
    )
    if settings.broker_use_ssl:
        celery.conf.broker_use_ssl = settings.broker_use_ssl
    return celery
