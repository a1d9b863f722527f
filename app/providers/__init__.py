"""Channel adapters behind one interface (``base.Provider``)."""

from __future__ import annotations

from app.providers.base import Provider
from app.providers.sandbox import SandboxProvider
from app.providers.standard import StandardProvider

PROVIDERS: dict[str, Provider] = {
    "sandbox": SandboxProvider(),
    "standard": StandardProvider(),
}


def get_provider(name: str) -> Provider:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise LookupError(f"unknown provider {name!r}") from None
