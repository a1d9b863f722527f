"""The one connector interface: a canonical write in, the CRM's ids out, or a typed error.

Every write is idempotent by an external id (the message id for an activity, the
sync's own key for an event), so a replay after a crash or a re-drive creates
nothing new. Errors are classified by what to do next:

- ``CrmThrottled``: 429, ``Retry-After``, HubSpot's rate-limit headers, Salesforce's
  403 ``REQUEST_LIMIT_EXCEEDED``. Wait, without using an attempt.
- ``CrmRetryable``: 5xx, timeouts, a CRM that is down. Back off and try again.
- ``CrmPermanent``: 400, 401, a bad mapping. Dead-letter with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import requests

from app.retry_after import retry_after_seconds

TIMEOUT = (3.05, 10.0)  # connect, read


class CrmError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail[:300]


class CrmThrottled(CrmError):
    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class CrmRetryable(CrmError):
    pass


class CrmPermanent(CrmError):
    pass


@dataclass(frozen=True)
class MessageFacts:
    id: str
    direction: str  # inbound | outbound
    channel: str
    body: str | None
    status: str
    status_reason: str | None
    at: datetime


@dataclass(frozen=True)
class SyncRequest:
    """One write, with what the connector needs and nothing more."""

    action: str  # log_message | opt_out | opt_in | routing
    external_id: str  # the sync's key: unique per fact
    phone: str
    known_contact: dict[str, str] = field(default_factory=dict)  # {"id", "type"} from before
    message: MessageFacts | None = None
    known_activity: str | None = None  # the CRM's id for this message's activity
    details: dict[str, Any] = field(default_factory=dict)  # consent or routing facts
    # No earlier try of this sync can have reached the CRM: lookups that guard a replay
    # (did a lost answer already create this activity?) may be skipped.
    first_try: bool = False


@dataclass(frozen=True)
class SyncResult:
    contact: dict[str, str]
    activity: str | None = None


class Connector:
    kind: ClassVar[str]

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def apply(self, request: SyncRequest) -> SyncResult:
        raise NotImplementedError


def call(method: str, url: str, **kwargs: Any) -> requests.Response:
    """One HTTP call; transport failures become ``CrmRetryable``."""
    try:
        return requests.request(method, url, timeout=TIMEOUT, **kwargs)
    except requests.Timeout as exc:
        raise CrmRetryable(f"timeout: {type(exc).__name__}") from None
    except requests.RequestException as exc:
        raise CrmRetryable(f"unreachable: {type(exc).__name__}") from None


def classify_http(response: requests.Response, what: str) -> CrmError:
    """The generic reading of a failed answer; connectors check their own shapes first."""
    status = response.status_code
    detail = f"{what}: HTTP {status} {response.text[:200]}"
    if status == 429:
        return CrmThrottled(detail, retry_after_seconds(response.headers.get("Retry-After")))
    if status >= 500 or status == 408:
        return CrmRetryable(detail)
    return CrmPermanent(detail)
