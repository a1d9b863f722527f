"""A CRM connection's API budget: one set of limits, shared by every process, spent per call.

Each connection has the limits its CRM publishes for its plan (``PLANS``), which the
operator may lower or raise per connection, and which the CRM's own answers correct
(``learn``: HubSpot's ``X-HubSpot-RateLimit-*`` headers, Salesforce's
``Sforce-Limit-Info``). They become buckets in the shared rate limiter (Redis, or the
database on the embedded backend):

- the short window (HubSpot: 100 or 190 calls per rolling 10 s), as a GCRA whose rate
  and burst never exceed the window's count over any window of its length;
- searches (HubSpot: 5 a second), the same way;
- the day: only ``daily_share`` of the daily allowance (default half), so the
  customer's other integrations keep theirs.

A call waits for its turn inline when that is short (``INLINE_WAIT``); a longer wait ends
the batch, whose syncs wait (as ``budget``) without using an attempt. A 429 from the CRM,
its remaining count at zero, or the connection's daily share used up pauses the whole
connection (``paused_until`` on its row, so every process sees it) until then.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from app.crm.base import CrmBudgetWait
from app.domain.clock import utcnow
from app.infra.db import Database
from app.infra.ratelimit import Rate, RateLimiter
from app.models import CrmConnection

log = logging.getLogger(__name__)

# A wait up to this long is slept through by the call; a longer one pauses the connection.
INLINE_WAIT = 2.0
DAY = 86400.0


@dataclass(frozen=True)
class Limits:
    """What one connection may spend. ``None``: the CRM sets no such limit."""

    calls: int | None  # per window
    window_seconds: float
    searches_per_second: float | None
    daily: int | None  # the CRM's daily allowance (all integrations together)
    daily_share: float  # the part of it this connection may use
    batch_size: int  # records per batch call
    # A short batch waits this long (from its claim) for more before the next: every call
    # counts, against a window (HubSpot) or the org's day (Salesforce, so longer).
    batch_seconds: float = 1.0

    def view(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "window_seconds": self.window_seconds,
            "searches_per_second": self.searches_per_second,
            "daily": self.daily,
            "daily_share": self.daily_share,
            "batch_size": self.batch_size,
            "batch_seconds": self.batch_seconds,
        }


# HubSpot's published limits per app and account; Salesforce's allowance is the org's
# (Enterprise Edition's base; Sforce-Limit-Info tells the real one on the first answer).
PLANS: dict[str, dict[str, Limits]] = {
    "hubspot": {
        "starter": Limits(100, 10.0, 5.0, 250_000, 0.5, 100),
        "professional": Limits(190, 10.0, 5.0, 625_000, 0.5, 100),
        "enterprise": Limits(190, 10.0, 5.0, 1_000_000, 0.5, 100),
    },
    "salesforce": {"default": Limits(None, 10.0, None, 100_000, 0.5, 200, 2.0)},
    "webhook": {"default": Limits(None, 10.0, None, None, 0.5, 100)},
}
DEFAULT_PLAN = {"hubspot": "starter", "salesforce": "default", "webhook": "default"}
OVERRIDABLE = (
    "calls",
    "window_seconds",
    "searches_per_second",
    "daily",
    "daily_share",
    "batch_seconds",
)
LEARNABLE = ("calls", "window_seconds", "daily")


class InvalidLimits(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_limits(kind: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The ``limits`` a connection stores: a plan and overrides, checked."""
    plans = PLANS[kind]
    plan = given.get("plan") or DEFAULT_PLAN[kind]
    if plan not in plans:
        raise InvalidLimits("plan", f"must be one of {', '.join(plans)}")
    stored: dict[str, Any] = {"plan": plan}
    for name in OVERRIDABLE:
        value = given.get(name)
        if value is None or value == "":
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidLimits(name, "must be a number") from None
        if number <= 0 or (name == "daily_share" and number > 1):
            raise InvalidLimits(
                name, "must be above 0" + (" and at most 1" * (name == "daily_share"))
            )
        stored[name] = int(number) if name in ("calls", "daily") else number
    return stored


def limits_of(kind: str, stored: Mapping[str, Any] | None) -> Limits:
    """Plan defaults, corrected by what the CRM told us, then the operator's overrides.

    An override may lower a limit the CRM states, never raise it past the CRM's word.
    """
    stored = dict(stored or {})
    plans = PLANS[kind]
    limits = plans.get(str(stored.get("plan") or DEFAULT_PLAN[kind]), plans[DEFAULT_PLAN[kind]])
    learned = stored.get("learned") or {}
    changes: dict[str, Any] = {k: learned[k] for k in LEARNABLE if learned.get(k)}
    for name in OVERRIDABLE:
        if stored.get(name) is None:
            continue
        value = stored[name]
        if name in learned and learned[name] and name != "window_seconds":
            value = min(value, learned[name])
        changes[name] = value
    return replace(limits, **changes)


def window_rate(limits: Limits) -> Rate | None:
    """The calls per window as a GCRA: over any window, burst + rate * window = calls."""
    if not limits.calls:
        return None
    return Rate(0.9 * limits.calls / limits.window_seconds, max(1.0, 0.1 * limits.calls))


def search_rate(limits: Limits) -> Rate | None:
    """Searches a second: one at once, the rest spread (burst 1 + rate * 1 s = the limit)."""
    if not limits.searches_per_second:
        return None
    return Rate(max(0.5, limits.searches_per_second - 1), 1.0)


def daily_rate(limits: Limits) -> Rate | None:
    """The connection's share of the day, the same way (a tenth at once, the rest spread)."""
    if not limits.daily:
        return None
    allowed = limits.daily * limits.daily_share
    return Rate(0.9 * allowed / DAY, max(1.0, 0.1 * allowed))


class Budget:
    """One connection's budget, as one process spends it."""

    def __init__(
        self,
        db: Database,
        limiter: RateLimiter,
        connection_id: str,
        kind: str,
        stored: Mapping[str, Any] | None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.db = db
        self.limiter = limiter
        self.connection_id = connection_id
        self.kind = kind
        self.stored = dict(stored or {})
        self.limits = limits_of(kind, self.stored)
        self.sleep = sleep
        self.paused_until: datetime | None = None
        self.pause_reason = ""

    def _buckets(self, search: bool) -> list[tuple[str, Rate, str]]:
        limits = self.limits
        found = [
            ("daily", daily_rate(limits), "daily share used"),
            ("search", search_rate(limits) if search else None, "search rate"),
            ("calls", window_rate(limits), "call rate"),
        ]
        return [(name, rate, reason) for name, rate, reason in found if rate is not None]

    def take(self, *, search: bool = False) -> None:
        """Spend one call, waiting for it if that is short; else ``CrmBudgetWait``."""
        if self.paused_until is not None:  # paused by an answer of this batch
            left = (self.paused_until - utcnow()).total_seconds()
            if left > 0:
                raise CrmBudgetWait(f"budget: {self.pause_reason}", left)
        for name, rate, reason in self._buckets(search):
            key = f"crm:{self.connection_id}:{name}"
            while True:
                with self.db.session() as session:
                    wait = self.limiter.acquire(session, key, rate, 1, reserve=False)
                if wait <= 0:
                    break
                if wait > INLINE_WAIT:
                    if name == "daily":  # worth telling every process: it lasts
                        self.pause(wait, f"budget: {reason}")
                    raise CrmBudgetWait(f"budget: {reason}", wait)
                self.sleep(wait)

    def pause(self, seconds: float, reason: str) -> datetime:
        """Stop every process's calls on this connection for ``seconds``."""
        until = utcnow() + timedelta(seconds=seconds)
        self.paused_until, self.pause_reason = until, reason
        with self.db.session() as session:
            session.execute(
                update(CrmConnection)
                .where(
                    CrmConnection.id == self.connection_id,
                    (CrmConnection.paused_until.is_(None)) | (CrmConnection.paused_until < until),
                )
                .values(paused_until=until, pause_reason=reason[:120])
            )
        log.warning(
            "crm connection paused",
            extra={
                "connection_id": self.connection_id,
                "seconds": round(seconds, 1),
                "reason": reason,
            },
        )
        return until

    def learn(self, **stated: float | None) -> None:
        """The CRM stated a limit (``calls``, ``window_seconds``, ``daily``): keep it if new."""
        known = self.stored.get("learned") or {}
        fresh = {k: v for k, v in stated.items() if v and known.get(k) != v}
        if not fresh:
            return
        with self.db.session() as session:
            connection = session.scalar(
                select(CrmConnection).where(CrmConnection.id == self.connection_id)
            )
            if connection is None:
                return
            stored = dict(connection.limits or {})
            stored["learned"] = {**(stored.get("learned") or {}), **fresh}
            connection.limits = stored
        self.stored = stored
        self.limits = limits_of(self.kind, stored)
        log.info("crm limits learned", extra={"connection_id": self.connection_id, **fresh})
