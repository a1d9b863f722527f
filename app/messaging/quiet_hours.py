"""Quiet hours: a daily local window, in the recipient's own time zone, when nothing is sent.

Local time exists only here; everything else is UTC. A window such as
``21:00-08:00`` crosses midnight. Across a daylight-saving change the end
is computed on the local calendar, so "08:00" stays 08:00 local.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class QuietWindow:
    start: time
    end: time

    @classmethod
    def parse(cls, value: str) -> QuietWindow:
        match = _WINDOW.match(value)
        if match is None:
            raise ValueError("quiet hours must look like 21:00-08:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if (h1, m1) == (h2, m2):
            raise ValueError("quiet hours must not start and end at the same minute")
        return cls(time(h1, m1), time(h2, m2))

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # crosses midnight


def zone(name: str | None, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def quiet_until(at: datetime, window: QuietWindow, tz: ZoneInfo) -> datetime | None:
    """When ``at`` falls in the window, the UTC moment the window ends; otherwise None."""
    local = at.astimezone(tz)
    if not window.contains(local.time().replace(tzinfo=None)):
        return None
    end_day = local.date()
    if local.time().replace(tzinfo=None) >= window.end:
        end_day += timedelta(days=1)
    end = datetime.combine(end_day, window.end, tzinfo=tz)
    return end.astimezone(UTC)


def deferral_for(
    policy: str,
    tenant_window: str | None,
    tenant_timezone: str,
    contact_timezone: str | None,
    at: datetime,
) -> datetime | None:
    """The UTC time a message due ``at`` must wait for, or None when it may go now.

    The recipient's zone (from their number) wins; the tenant's is the fallback.
    """
    if policy != "respect" or not tenant_window:
        return None
    return quiet_until(
        at, QuietWindow.parse(tenant_window), zone(contact_timezone, tenant_timezone)
    )
