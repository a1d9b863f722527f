"""The provider interface, both directions.

A provider module owns everything about its provider: sending (a typed
result or a typed, classified error), verifying and parsing its webhooks into
canonical events, mapping its statuses and error codes to our reasons, the
shape of its credentials, and (for the sandbox) its simulated receipts.
Adding a provider is one module plus one line in ``app.providers.PROVIDERS``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from app.domain.channels import Channel
from app.domain.reasons import StatusReason, as_reason
from app.models import ChannelAccount
from app.providers.canonical import CanonicalEvent


@dataclass(frozen=True)
class SendRequest:
    message_id: str
    to: str
    sender: str
    channel: Channel
    body: str | None
    media: list[dict[str, str]]
    attempt: int  # 1 for the first try, counting throttled tries
    status_callback: str


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str


class ProviderError(Exception):
    """Base of the three classes every provider failure falls into."""

    def __init__(self, reason: str, detail: str = "", *, code: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.code = code  # the provider's raw error code, kept in the event's data


class RetryableError(ProviderError):
    """Transport failure or 5xx: try again later with backoff."""


class ThrottledError(ProviderError):
    """429 or equivalent: not a failure; wait ``retry_after`` seconds and try again."""

    def __init__(
        self, reason: str, retry_after: float, detail: str = "", *, code: str | None = None
    ) -> None:
        super().__init__(reason, detail, code=code)
        self.retry_after = retry_after


class PermanentError(ProviderError):
    """Will never succeed as sent. ``channel_related`` allows falling back to the next channel.

    ``reason`` is always from the status-reason taxonomy.
    """

    def __init__(
        self,
        reason: StatusReason,
        detail: str = "",
        *,
        channel_related: bool = False,
        code: str | None = None,
    ) -> None:
        super().__init__(reason.value, detail, code=code)
        self.channel_related = channel_related


def is_retryable_status(status: int) -> bool:
    """Retry only on 5xx; 429 is a throttle, and other 4xx are permanent."""
    return status >= 500


class SignatureError(Exception):
    """The webhook is not provably from the provider: nothing of it may be stored."""


class MalformedWebhook(Exception):
    """Verified, but not a callback we can read; ``errors`` are per field."""

    def __init__(self, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


@dataclass(frozen=True)
class WebhookRequest:
    """What a provider sees of an incoming webhook: nothing Flask-specific.

    ``url`` is the URL the provider signed: ``PUBLIC_BASE_URL`` plus the path
    and query, never the (possibly proxied) URL the web process saw.
    """

    url: str
    body: bytes
    headers: Mapping[str, str]  # lower-cased names
    content_type: str

    def text(self) -> str:
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedWebhook("the body is not UTF-8") from None


@dataclass(frozen=True)
class ParsedWebhook:
    """A verified webhook: its canonical event, and the key that makes a repeat a duplicate."""

    event: CanonicalEvent
    dedupe_key: str


@dataclass(frozen=True)
class Acknowledgement:
    body: str
    status: int
    content_type: str = "application/json"


@dataclass(frozen=True)
class ReceiptTarget:
    """Where and what a simulating provider posts for one accepted message."""

    url: str
    secret: str
    provider_message_id: str
    to: str
    sender: str
    channel: Channel


@dataclass(frozen=True)
class AccountOptions:
    """What ``accounts create`` was given; each provider takes what it needs from it."""

    sender: str
    account_sid: str | None = None
    auth_token: str | None = None
    base_url: str | None = None
    messaging_service_sid: str | None = None
    webhook_secret: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AccountSetup:
    """The encrypted credentials to store, and the webhook secret to keep, if any."""

    credentials: dict[str, str]
    webhook_secret: str | None


class Provider:
    """Base of every adapter. Subclasses set ``name`` and override what they support."""

    name: ClassVar[str]
    # A task owed (through the outbox) once a send is accepted, for providers that
    # simulate their own receipts; None for real providers, whose receipts arrive by webhook.
    receipt_task: ClassVar[str | None] = None
    # Answered when a webhook's signature does not verify (Twilio's convention is 403).
    signature_failure_status: ClassVar[int] = 401

    # -- accounts
    def setup_account(self, options: AccountOptions) -> AccountSetup:
        """Validate ``accounts create`` options; raise ValueError naming what is wrong."""
        raise NotImplementedError

    @staticmethod
    def credentials(account: ChannelAccount) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(account.credentials or "{}")
        return value

    # -- sending
    def send(self, account: ChannelAccount, request: SendRequest) -> SendResult:
        raise NotImplementedError

    # -- webhooks
    def verify(
        self, account: ChannelAccount, secrets: Sequence[str], request: WebhookRequest
    ) -> None:
        """Raise SignatureError unless the request is provably the provider's."""
        raise NotImplementedError

    def parse(self, account: ChannelAccount, request: WebhookRequest) -> ParsedWebhook:
        """Read a verified request; raise MalformedWebhook when it cannot be read."""
        raise NotImplementedError

    def parse_stored(self, account: ChannelAccount, payload: str) -> CanonicalEvent:
        """Read the body kept in the inbox (what ``parse`` accepted) back into its event."""
        raise NotImplementedError

    def acknowledge(self, parsed: ParsedWebhook, new: bool) -> Acknowledgement:
        status = "accepted" if new else "duplicate"
        return Acknowledgement(json.dumps({"status": status}), 202 if new else 200)

    def fetch_status(
        self, account: ChannelAccount, provider_message_id: str
    ) -> CanonicalEvent | None:
        """Ask the provider where a sent message stands, as a status event; None if it cannot tell.

        Raises a ProviderError when the provider could not be asked.
        """
        return None

    def status_reason(self, error_code: str | None) -> StatusReason:
        """Our reason for a failed or undelivered status carrying the provider's ``error_code``."""
        return as_reason(error_code)

    # -- simulation (sandbox only)
    def simulate_receipts(self, target: ReceiptTarget) -> int:
        raise NotImplementedError
