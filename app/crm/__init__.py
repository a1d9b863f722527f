"""CRM connectors (HubSpot, Salesforce, signed webhooks), kept apart from the providers.

Adding a CRM is one module with a ``Connector`` plus one line in ``CONNECTORS``.
"""

from __future__ import annotations

from typing import Any

from app.crm.base import Connector, Spender
from app.crm.hubspot import HubSpot
from app.crm.salesforce import Salesforce
from app.crm.webhook import SignedWebhook

CONNECTORS: dict[str, type[Connector]] = {c.kind: c for c in (HubSpot, Salesforce, SignedWebhook)}


def connector_for(kind: str, config: dict[str, Any], budget: Spender | None = None) -> Connector:
    return CONNECTORS[kind](config, budget)
