"""Quiet hours: local windows, in the recipient's own time zone, when nothing is sent.

Local time exists only here; everything else is UTC. A tenant's schedule is
one or more windows, each on some weekdays:

    21:00-08:00                              every night
    mon-fri 21:00-08:00; sat,sun 20:00-10:00 weeknights and weekends differ

A window belongs to the day it starts on, so ``fri 22:00-07:00`` covers Friday
night into Saturday morning. Across a daylight-saving change the end is
computed on the local calendar, so "08:00" stays 08:00 local.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS = frozenset(range(7))
# Adjacent windows (Friday's night into Saturday's morning) are merged by
# following an end into the next window; a week of them is the most there can be.
_MAX_CHAIN = 16


def _parse_days(spec: str) -> frozenset[int]:
    days: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.strip().lower().partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"unknown day {part.strip()!r}: use mon, tue, ... sun, or mon-fri")
        start = DAYS.index(first)
        end = DAYS.index(last) if last else start
        span = (end - start) % 7
        days.update((start + i) % 7 for i in range(span + 1))
    return frozenset(days)


@dataclass(frozen=True)
class QuietWindow:
    start: time
    end: time
    days: frozenset[int] = ALL_DAYS  # the weekdays (Monday 0) on which the window starts

    @classmethod
    def parse(cls, value: str) -> QuietWindow:
        text = value.strip()
        day_spec, _, window = text.rpartition(" ")
        match = _WINDOW.match(window)
        if match is None:
            raise ValueError("a quiet window must look like 21:00-08:00 or mon-fri 21:00-08:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if (h1, m1) == (h2, m2):
            raise ValueError("quiet hours must not start and end at the same minute")
        days = _parse_days(day_spec) if day_spec.strip() else ALL_DAYS
        return cls(time(h1, m1), time(h2, m2), days)

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def started_on(self, local: datetime) -> date | None:
        """The local day on which the window containing ``local`` started, or None."""
        t = local.time().replace(tzinfo=None)
        today = local.date()
        if not self.crosses_midnight:
            inside = self.start <= t < self.end and today.weekday() in self.days
            return today if inside else None
        if t >= self.start and today.weekday() in self.days:
            return today
        yesterday = today - timedelta(days=1)
        if t < self.end and yesterday.weekday() in self.days:
            return yesterday
        return None

    def end_after(self, started: date, tz: ZoneInfo) -> datetime:
        end_day = started + timedelta(days=1) if self.crosses_midnight else started
        return datetime.combine(end_day, self.end, tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True)
class QuietSchedule:
    windows: tuple[QuietWindow, ...]

    @classmethod
    def parse(cls, value: str) -> QuietSchedule:
        parts = [p for p in value.split(";") if p.strip()]
        if not parts:
            raise ValueError("give at least one window, such as 21:00-08:00")
        return cls(tuple(QuietWindow.parse(p) for p in parts))

    def quiet_until(self, at: datetime, tz: ZoneInfo) -> datetime | None:
        """When ``at`` is inside a window, the UTC moment the quiet ends (windows that
        touch or overlap are followed through); otherwise None."""
        until: datetime | None = None
        probe = at
        for _ in range(_MAX_CHAIN):
            local = probe.astimezone(tz)
            ends = [
                w.end_after(started, tz)
                for w in self.windows
                if (started := w.started_on(local)) is not None
            ]
            ends = [e for e in ends if e > probe]
            if not ends:
                break
            until = probe = max(ends)
        return until


def validate(value: str) -> str:
    """``value`` normalised, or ValueError saying what is wrong with it."""
    QuietSchedule.parse(value)
    return "; ".join(p.strip() for p in value.split(";") if p.strip())


def zone(name: str | None, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


@lru_cache(maxsize=1024)
def _schedule(value: str) -> QuietSchedule:
    return QuietSchedule.parse(value)  # asked at every intake and claim: parse each text once


def quiet_until(at: datetime, schedule: str | None, tz: ZoneInfo) -> datetime | None:
    """When ``at`` falls in the tenant's quiet hours in ``tz``, when they end; else None."""
    if not schedule:
        return None
    return _schedule(schedule).quiet_until(at, tz)
