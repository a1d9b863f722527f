"""SQLAlchemy models, one module per aggregate."""

from app.models.account import ChannelAccount, WebhookSecret
from app.models.analytics import DeliveryRollup
from app.models.audit import AuditCheckpoint, AuditEvent, AuditHead
from app.models.base import Base
from app.models.consent import ConsentRecord, Erasure, Suppression
from app.models.console import ConsoleAction, ConsoleUser
from app.models.contact import Contact
from app.models.crm import CrmConnection, CrmSync
from app.models.inbox import InboxItem
from app.models.message import Message, MessageEvent
from app.models.oauth import KeyRotation, OAuthClient, RevokedToken
from app.models.outbox import OutboxRow
from app.models.ratelimit import RateBucket
from app.models.rules import RoutingRule
from app.models.template import ShortLink, Template, TemplateVersion
from app.models.tenant import ApiKey, Tenant

__all__ = [
    "ApiKey",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditHead",
    "Base",
    "ChannelAccount",
    "ConsentRecord",
    "ConsoleAction",
    "ConsoleUser",
    "Contact",
    "CrmConnection",
    "CrmSync",
    "DeliveryRollup",
    "Erasure",
    "InboxItem",
    "KeyRotation",
    "Message",
    "MessageEvent",
    "OAuthClient",
    "OutboxRow",
    "RateBucket",
    "RevokedToken",
    "RoutingRule",
    "ShortLink",
    "Suppression",
    "Template",
    "TemplateVersion",
    "Tenant",
    "WebhookSecret",
]
