"""Channel adapters behind one interface (``base.Provider``); register each one here."""

from __future__ import annotations

from app.providers.base import Provider
from app.providers.sandbox import SandboxProvider
from app.providers.standard import StandardProvider
from app.providers.twilio import TwilioProvider

PROVIDERS: dict[str, Provider] = {
    p.name: p for p in (SandboxProvider(), StandardProvider(), TwilioProvider())
}


def get_provider(name: str) -> Provider:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise LookupError(f"unknown provider {name!r}") from None


def webhook_url(public_base_url: str, provider: str, account_id: str) -> str:
    """The one place a webhook URL is built: what providers call and what Twilio signs."""
    return f"{public_base_url.rstrip('/')}/webhooks/{provider}/{account_id}"
