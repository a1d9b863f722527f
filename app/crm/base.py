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

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol

import requests

from app.domain.retries import retry_after_seconds
from app.observability.metrics import CRM_CALLS

TIMEOUT = (3.05, 10.0)  # connect, read


class CrmError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail[:300]
        # The contact found or created before the write failed: kept, so a retry skips it.
        self.contact: dict[str, str] = {}

    def about(self, contact: dict[str, str]) -> CrmError:
        """This error, for one record of a batch whose contact is known."""
        one = type(self)(self.detail, *self._extra())
        one.contact = dict(contact)
        return one

    def _extra(self) -> tuple[Any, ...]:
        return ()


class CrmThrottled(CrmError):
    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    def _extra(self) -> tuple[Any, ...]:
        return (self.retry_after,)


class CrmBudgetWait(CrmThrottled):
    """Our own budget says wait (``app.crm.budget``): the CRM was not even called."""


class CrmRetryable(CrmError):
    pass


class CrmPermanent(CrmError):
    pass


class CrmHeldBack(CrmError):
    """Not tried: an earlier write of the same contact in the batch failed, and a contact's
    writes apply in order."""


class CrmUnauthorized(CrmPermanent):
    """401 or 403: the whole connection's credentials, not one record, are at fault."""


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


Outcome = SyncResult | CrmError


class Spender(Protocol):
    """What a connector spends its calls from (``app.crm.budget``)."""

    def take(self, *, search: bool = False) -> None: ...

    def pause(self, seconds: float, reason: str) -> datetime: ...

    def learn(self, **stated: float | None) -> None: ...


def hold_back(requests: Sequence[SyncRequest], outcomes: list[Any]) -> None:
    """Before a batch's next phase: a request whose contact's earlier request already failed
    is held back (``CrmHeldBack``), so a contact's writes never overtake one another."""
    failed: set[str] = set()
    for n, request in enumerate(requests):
        if isinstance(outcomes[n], CrmError):
            failed.add(request.phone)
        elif outcomes[n] is None and request.phone in failed:
            outcomes[n] = CrmHeldBack("an earlier write of this contact failed")


class Unlimited:
    """The budget of a connector used on its own (tests, the benchmark's floor)."""

    def take(self, *, search: bool = False) -> None:
        pass

    def pause(self, seconds: float, reason: str) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=seconds)

    def learn(self, **stated: float | None) -> None:
        pass


class Connector:
    """``apply`` writes one sync; ``apply_batch`` many, with the CRM's batch endpoints.

    Every call goes through ``_call_http``, which spends it from the connection's budget
    first and lets the connector read the CRM's limit headers after (``observe``).
    """

    kind: ClassVar[str]
    batch_size: ClassVar[int] = 100  # records its batch calls take

    def __init__(self, config: dict[str, Any], budget: Spender | None = None) -> None:
        self.config = config
        self.budget: Spender = budget or Unlimited()

    def apply(self, request: SyncRequest) -> SyncResult:
        raise NotImplementedError

    def apply_batch(self, requests: Sequence[SyncRequest]) -> list[Outcome]:
        """One outcome per request, in order. This default writes them one at a time; a
        throttle or an outage stops the rest (they get the same error, so they wait too)."""
        outcomes: list[Outcome] = []
        for n, request in enumerate(requests):
            try:
                outcomes.append(self.apply(request))
            except (CrmThrottled, CrmRetryable) as exc:
                return outcomes + [exc] * (len(requests) - n)
            except CrmPermanent as exc:
                outcomes.append(exc)
        return outcomes

    def observe(self, response: requests.Response) -> None:
        """Read what the answer says of the budget (limit headers); nothing by default."""

    def _call_http(
        self, method: str, url: str, *, search: bool = False, **kwargs: Any
    ) -> requests.Response:
        self.budget.take(search=search)
        try:
            response = call(method, url, **kwargs)
        except CrmRetryable as exc:
            CRM_CALLS.labels(self.kind, str(exc).split(":", 1)[0]).inc()
            raise
        CRM_CALLS.labels(
            self.kind, "429" if response.status_code == 429 else f"{response.status_code // 100}xx"
        ).inc()
        self.observe(response)
        return response


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
    if status in (401, 403):
        return CrmUnauthorized(detail)
    return CrmPermanent(detail)
