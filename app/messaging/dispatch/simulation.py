"""What a simulating provider (the sandbox) needs to play the carrier for accepted messages."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ChannelAccount, Contact, Message, WebhookSecret
from app.providers import get_provider, webhook_url
from app.providers.base import Provider, ReceiptTarget


def receipt_targets(
    session: Session, public_base_url: str, message_ids: Sequence[str]
) -> dict[str, tuple[Provider, ReceiptTarget]]:
    """Each message's provider and where to post its receipts, in two queries; a message
    with nothing to simulate (gone, never accepted, no active secret) is left out."""
    rows = session.execute(
        select(
            Message.id,
            Message.provider_message_id,
            Message.channel,
            Contact.phone,
            ChannelAccount,
        )
        .join(Contact, Contact.id == Message.contact_id)
        .join(ChannelAccount, ChannelAccount.id == Message.account_id)
        .where(Message.id.in_(list(message_ids)), Message.provider_message_id.is_not(None))
    ).all()
    accounts = {row.ChannelAccount.id for row in rows}
    secrets: dict[str, str] = {}
    if accounts:
        # The newest active secret of each account (the first of each, newest first).
        for account_id, value in session.execute(
            select(WebhookSecret.account_id, WebhookSecret.secret)
            .where(WebhookSecret.account_id.in_(accounts), WebhookSecret.active.is_(True))
            .order_by(WebhookSecret.account_id, WebhookSecret.created_at.desc())
        ):
            secrets.setdefault(account_id, value)
    found: dict[str, tuple[Provider, ReceiptTarget]] = {}
    for message_id, provider_message_id, channel, phone, account in rows:
        secret = secrets.get(account.id)
        if secret is None or provider_message_id is None:
            continue
        target = ReceiptTarget(
            url=webhook_url(public_base_url, account.provider, account.id),
            secret=secret,
            provider_message_id=provider_message_id,
            to=phone,
            sender=account.sender,
            channel=channel,
        )
        found[message_id] = (get_provider(account.provider), target)
    return found
