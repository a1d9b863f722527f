"""Choosing the channel account and channel for an outbound message."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.channels import Channel
from app.models import ChannelAccount


class NoRoute(Exception):
    def __init__(self, reason: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.field = field


def choose_route(
    session: Session, tenant_id: str, channels: Sequence[Channel], account_id: str | None
) -> tuple[str, Channel]:
    """The account id and the first channel, in the caller's order, that an account can carry.

    Reads only ids and channels: an account's credentials are not decrypted to route."""
    query = select(ChannelAccount.id, ChannelAccount.channels).where(
        ChannelAccount.tenant_id == tenant_id
    )
    if account_id is not None:
        query = query.where(ChannelAccount.id == account_id)
    accounts = session.execute(query.order_by(ChannelAccount.created_at, ChannelAccount.id)).all()
    if account_id is not None and not accounts:
        raise NoRoute("unknown_account", "no channel account with this id", field="account_id")
    for channel in channels:
        for found_id, carried in accounts:
            if channel in carried:
                return found_id, channel
    raise NoRoute("no_route", f"no channel account carries any of {', '.join(channels)}")


def next_channel(
    account: ChannelAccount, channels: Sequence[Channel], current: Channel
) -> Channel | None:
    """The fallback after ``current`` in the message's order that the same account carries."""
    later = channels[channels.index(current) + 1 :] if current in channels else []
    return next((c for c in later if c in account.channels), None)
