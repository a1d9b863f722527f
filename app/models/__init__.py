"""SQLAlchemy models, one module per aggregate."""

from app.models.access import ConsoleAction, ConsoleUser, KeyRotation, OAuthClient, RevokedToken
from app.models.account import ChannelAccount, WebhookSecret
from app.models.analytics import DeliveryRollup
from app.models.audit import AuditCheckpoint, AuditEvent, AuditHead
from app.models.base import Base
from app.models.campaign import Campaign, CampaignRecipient
from app.models.contact import ConsentRecord, Contact, Erasure, Suppression
from app.models.crm import CrmConnection, CrmSync
from app.models.inbox import InboxItem
from app.models.infra import OutboxRow, RateBucket
from app.models.message import Message, MessageEvent
from app.models.template import ShortLink, Template, TemplateVersion
from app.models.tenant import ApiKey, RoutingRule, Tenant

__all__ = [
    "ApiKey",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditHead",
    "Base",
    "Campaign",
    "CampaignRecipient",
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
