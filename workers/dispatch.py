"""Dispatch tasks, one per lane message. Idempotent: a redelivered task sends nothing twice."""

from __future__ import annotations

from celery import shared_task
from sqlalchemy.exc import OperationalError

from app.broker import TaskNames
from app.messaging import dispatch
from app.messaging.states import ConcurrentTransition
from workers.context import db, limiter, settings


@shared_task(
    name=TaskNames.DISPATCH,
    autoretry_for=(ConcurrentTransition, OperationalError),
    retry_backoff=1,
    retry_backoff_max=4,  # short: longer delays live in the database, not in ETAs
    max_retries=5,
)
def dispatch_message(message_id: str) -> str:
    return dispatch.dispatch_message(db(), settings(), message_id, limiter())
