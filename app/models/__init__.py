"""SQLAlchemy models, one module per aggregate."""

from app.models.account import ChannelAccount, WebhookSecret
from app.models.base import Base
from app.models.contact import Contact
from app.models.inbox import InboxItem
from app.models.message import Message, MessageEvent
from app.models.outbox import OutboxRow
from app.models.ratelimit import RateBucket
from app.models.tenant import ApiKey, Tenant

__all__ = [
    "ApiKey",
    "Base",
    "ChannelAccount",
    "Contact",
    "InboxItem",
    "Message",
    "MessageEvent",
    "OutboxRow",
    "RateBucket",
    "Tenant",
    "WebhookSecret",
]
