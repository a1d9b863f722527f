"""Quiet-hours arithmetic in the recipient's zone: across midnight, per weekday, several
windows, half-hour offsets and daylight-saving changes in both directions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.domain.phones import timezone_for
from app.messaging.compliance.quiet_hours import (
    QuietSchedule,
    QuietWindow,
    quiet_until,
    validate,
    zone,
)

NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
SYDNEY = ZoneInfo("Australia/Sydney")
KOLKATA = ZoneInfo("Asia/Kolkata")
NIGHT = "21:00-08:00"


def local(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz).astimezone(UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("hour", "minute", "inside"),
    [(20, 59, False), (21, 0, True), (23, 59, True), (0, 0, True), (7, 59, True), (8, 0, False)],
)
def test_a_window_across_midnight(hour: int, minute: int, inside: bool) -> None:
    at = local(NY, 2026, 6, 3, hour, minute)
    assert (quiet_until(at, NIGHT, NY) is not None) is inside


def test_a_daytime_window() -> None:
    assert quiet_until(local(NY, 2026, 6, 3, 12, 0), "12:00-13:30", NY) == local(
        NY, 2026, 6, 3, 13, 30
    )
    assert quiet_until(local(NY, 2026, 6, 3, 13, 30), "12:00-13:30", NY) is None


@pytest.mark.parametrize(
    "bad",
    ["9pm-8am", "24:00-08:00", "21:00-21:00", "21:00", "21:60-08:00", "funday 21:00-08:00", ";"],
)
def test_bad_schedules_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        QuietSchedule.parse(bad)


def test_late_evening_waits_for_next_morning_and_early_morning_for_this_one() -> None:
    assert quiet_until(local(NY, 2026, 6, 1, 23, 0), NIGHT, NY) == local(NY, 2026, 6, 2, 8, 0)
    assert quiet_until(local(NY, 2026, 6, 1, 6, 0), NIGHT, NY) == local(NY, 2026, 6, 1, 8, 0)
    assert quiet_until(local(NY, 2026, 6, 1, 12, 0), NIGHT, NY) is None


def test_windows_differ_by_weekday() -> None:
    schedule = "mon-fri 21:00-08:00; sat,sun 20:00-10:00"
    assert validate(schedule) == schedule
    # Friday 2026-06-05 20:30: weekdays start at 21:00, so not yet quiet.
    assert quiet_until(local(LONDON, 2026, 6, 5, 20, 30), schedule, LONDON) is None
    # Saturday 20:30 is quiet, until Sunday 10:00 (a weekend morning).
    assert quiet_until(local(LONDON, 2026, 6, 6, 20, 30), schedule, LONDON) == local(
        LONDON, 2026, 6, 7, 10, 0
    )
    # Friday night belongs to Friday's window: it ends Saturday 08:00, then Saturday
    # daytime is free even though Saturday's own window is 20:00-10:00.
    assert quiet_until(local(LONDON, 2026, 6, 5, 23, 0), schedule, LONDON) == local(
        LONDON, 2026, 6, 6, 8, 0
    )
    # Sunday night into Monday takes the weekend's window: until Monday 10:00.
    assert quiet_until(local(LONDON, 2026, 6, 8, 9, 0), schedule, LONDON) == local(
        LONDON, 2026, 6, 8, 10, 0
    )


def test_a_day_range_wraps_around_the_week() -> None:
    assert QuietWindow.parse("fri-mon 22:00-07:00").days == frozenset({4, 5, 6, 0})


def test_touching_windows_are_followed_to_their_last_end() -> None:
    schedule = "21:00-23:00; 23:00-08:00; 07:30-09:00"
    assert quiet_until(local(NY, 2026, 6, 1, 21, 30), schedule, NY) == local(NY, 2026, 6, 2, 9, 0)


def test_several_windows_a_day() -> None:
    schedule = "21:00-08:00; 12:00-13:00"
    assert quiet_until(local(NY, 2026, 6, 1, 12, 15), schedule, NY) == local(NY, 2026, 6, 1, 13)
    assert quiet_until(local(NY, 2026, 6, 1, 15, 0), schedule, NY) is None


def test_the_end_is_local_wall_clock_when_clocks_go_forward() -> None:
    # 7-8 March 2026: New York moves from EST (-5) to EDT (-4) at 02:00.
    at = local(NY, 2026, 3, 7, 22, 0)
    until = quiet_until(at, NIGHT, NY)
    assert until == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)  # 08:00 EDT
    assert until - at == timedelta(hours=9)  # one hour shorter than usual


def test_the_end_is_local_wall_clock_when_clocks_go_back() -> None:
    # 25 October 2026: London moves from BST (+1) to GMT (+0) at 02:00.
    at = local(LONDON, 2026, 10, 24, 22, 0)  # 21:00 UTC
    until = quiet_until(at, NIGHT, LONDON)
    assert until == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)  # 08:00 GMT
    assert until - at == timedelta(hours=11)  # one hour longer than usual


def test_a_window_ending_inside_the_skipped_hour() -> None:
    # 01:00-02:30 on the night New York skips 02:00-03:00: it ends at 03:30 EDT wall-clock
    # (zoneinfo's reading of the nonexistent 02:30), never before 07:00 UTC.
    until = quiet_until(local(NY, 2026, 3, 8, 1, 30), "01:00-02:30", NY)
    assert until is not None and until >= datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def test_india_half_hour_offset() -> None:
    at = datetime(2026, 6, 1, 15, 45, tzinfo=UTC)  # 21:15 IST (+05:30)
    assert quiet_until(at, NIGHT, KOLKATA) == datetime(2026, 6, 2, 2, 30, tzinfo=UTC)
    assert quiet_until(datetime(2026, 6, 1, 15, 15, tzinfo=UTC), NIGHT, KOLKATA) is None


def test_sydney_across_its_own_dst_change() -> None:
    # 4-5 April 2026: Sydney moves from AEDT (+11) to AEST (+10) at 03:00.
    at = local(SYDNEY, 2026, 4, 4, 23, 0)
    assert quiet_until(at, NIGHT, SYDNEY) == datetime(2026, 4, 4, 22, 0, tzinfo=UTC)  # 08:00 AEST


def test_the_zone_falls_back_to_the_tenants() -> None:
    assert zone("America/Chicago", "Europe/London") == ZoneInfo("America/Chicago")
    assert zone(None, "Europe/London") == ZoneInfo("Europe/London")
    assert zone("Not/AZone", "Europe/London") == ZoneInfo("Europe/London")
    assert quiet_until(datetime(2026, 6, 1, 3, 0, tzinfo=UTC), None, NY) is None


def test_number_zones() -> None:
    assert timezone_for("+12025550100") == "America/New_York"  # Washington DC
    assert timezone_for("+14155550100") == "America/Los_Angeles"  # San Francisco
    # +1 numbers whose area code spans zones take the tenant's (or the contact's stored) zone:
    # Idaho's 208 is Mountain and Pacific, South Dakota's 605 Mountain and Central.
    assert timezone_for("+12085550100") is None
    assert timezone_for("+16055550100") is None
    assert timezone_for("+15205550100") == "America/Phoenix"  # Arizona: no DST at all
    assert timezone_for("+447911123456") in {
        "Europe/London",
        "Europe/Guernsey",
        "Europe/Jersey",
        "Europe/Isle_of_Man",
    }
    assert timezone_for("+61412345678") is None  # Australian mobiles span zones
    assert timezone_for("+919812345678") == "Asia/Calcutta"
