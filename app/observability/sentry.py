"""Sentry for Flask and Celery, with PII scrubbed before anything leaves the process."""

from __future__ import annotations

from typing import Any

from config import Settings
from config.logging import REDACTED, redact_text

SENSITIVE_KEYS = frozenset(
    {
        "body",
        "to",
        "from",
        "phone",
        "text",
        "media",
        "authorization",
        "auth_token",
        "credentials",
        "secret",
        "webhook-signature",
    }
)


def scrub(value: Any) -> Any:
    """Replace phone numbers in strings and drop values under sensitive keys, recursively."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        # Keys are scrubbed too: a dict keyed by phone number would leak otherwise.
        return {
            scrub(k): (REDACTED if isinstance(k, str) and k.lower() in SENSITIVE_KEYS else scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def before_send(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    scrubbed: dict[str, Any] = scrub(event)
    request = scrubbed.get("request")
    if isinstance(request, dict) and "data" in request:
        request["data"] = REDACTED  # request bodies carry numbers and message text
    return scrubbed


def init_sentry(settings: Settings) -> bool:
    if not settings.sentry_dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.flask import FlaskIntegration

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.sentry_environment,
        integrations=[FlaskIntegration(), CeleryIntegration()],
        send_default_pii=False,
        # Frame locals hold bodies and numbers in every shape; scrubbing cannot catch them all.
        include_local_variables=False,
        max_request_body_size="never",
        before_send=before_send,  # type: ignore[arg-type]
    )
    return True
