"""Intake tasks: processing stored webhooks, and the sandbox provider's receipts."""

from __future__ import annotations

import logging

import requests
from celery import shared_task
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.broker import TaskNames
from app.messaging.receipts import process_inbox_item as process
from app.messaging.states import ConcurrentTransition
from app.models import ChannelAccount, Contact, Message, WebhookSecret
from app.providers.base import RetryableError
from app.providers.sandbox import post_receipt, receipt_plan
from workers.context import db, settings

log = logging.getLogger(__name__)


@shared_task(
    name=TaskNames.PROCESS_INBOX,
    autoretry_for=(ConcurrentTransition, OperationalError),
    retry_backoff=1,
    retry_backoff_max=4,
    max_retries=5,
)
def process_inbox_item(item_id: str) -> str:
    with db().session() as session:
        result = process(session, item_id)
    log.info("inbox processed", extra={"inbox_id": item_id, "result": result})
    return result


@shared_task(
    name=TaskNames.SANDBOX_RECEIPTS,
    autoretry_for=(RetryableError, requests.RequestException),
    retry_backoff=1,
    retry_backoff_max=4,
    max_retries=8,
)
def sandbox_emit_receipts(message_id: str) -> int:
    """Play the sandbox carrier: POST signed status webhooks back to our own endpoint."""
    with db().session() as session:
        row = session.execute(
            select(Message, Contact.phone, ChannelAccount.sender)
            .join(Contact, Contact.id == Message.contact_id)
            .join(ChannelAccount, ChannelAccount.id == Message.account_id)
            .where(Message.id == message_id)
        ).first()
        if row is None:
            return 0
        message, phone, sender = row
        provider_message_id = message.provider_message_id
        if provider_message_id is None:
            return 0
        secret = session.scalar(
            select(WebhookSecret.secret)
            .where(WebhookSecret.account_id == message.account_id, WebhookSecret.active.is_(True))
            .order_by(WebhookSecret.created_at.desc())
            .limit(1)
        )
    if secret is None:
        log.warning("sandbox account has no webhook secret", extra={"message_id": message_id})
        return 0
    url = f"{settings().public_base_url}/webhooks/standard/{message.account_id}"
    plan = receipt_plan(phone)
    for status in plan:
        post_receipt(url, secret, provider_message_id, status, message.channel, phone, sender)
    return len(plan)
