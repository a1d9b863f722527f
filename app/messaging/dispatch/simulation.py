"""What a simulating provider (the sandbox) needs to play the carrier for one accepted message."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ChannelAccount, Contact, Message, WebhookSecret
from app.providers import get_provider, webhook_url
from app.providers.base import Provider, ReceiptTarget


def receipt_target(
    session: Session, public_base_url: str, message_id: str
) -> tuple[Provider, ReceiptTarget] | None:
    """The provider and where to post receipts; None if there is nothing to simulate."""
    row = session.execute(
        select(Message, Contact.phone, ChannelAccount)
        .join(Contact, Contact.id == Message.contact_id)
        .join(ChannelAccount, ChannelAccount.id == Message.account_id)
        .where(Message.id == message_id)
    ).first()
    if row is None:
        return None
    message, phone, account = row
    if message.provider_message_id is None:
        return None
    secret = session.scalar(
        select(WebhookSecret.secret)
        .where(WebhookSecret.account_id == account.id, WebhookSecret.active.is_(True))
        .order_by(WebhookSecret.created_at.desc())
        .limit(1)
    )
    if secret is None:
        return None
    target = ReceiptTarget(
        url=webhook_url(public_base_url, account.provider, account.id),
        secret=secret,
        provider_message_id=message.provider_message_id,
        to=phone,
        sender=account.sender,
        channel=message.channel,
    )
    return get_provider(account.provider), target
