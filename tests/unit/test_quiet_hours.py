"""Quiet-hours arithmetic in the recipient's zone, across midnight and daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from app.messaging.phones import timezone_for
from app.messaging.quiet_hours import QuietWindow, deferral_for, quiet_until, zone

NY = ZoneInfo("America/New_York")
NIGHT = QuietWindow.parse("21:00-08:00")


@pytest.mark.parametrize(
    ("local", "inside"),
    [
        (time(20, 59), False),
        (time(21, 0), True),
        (time(23, 59), True),
        (time(0, 0), True),
        (time(7, 59), True),
        (time(8, 0), False),
        (time(12, 0), False),
    ],
)
def test_a_window_across_midnight(local: time, inside: bool) -> None:
    assert NIGHT.contains(local) is inside


def test_a_daytime_window() -> None:
    lunch = QuietWindow.parse("12:00-13:30")
    assert lunch.contains(time(12, 0)) and lunch.contains(time(13, 29))
    assert not lunch.contains(time(13, 30)) and not lunch.contains(time(11, 59))


@pytest.mark.parametrize("bad", ["9pm-8am", "24:00-08:00", "21:00-21:00", "21:00", "21:60-08:00"])
def test_bad_windows_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="quiet hours"):
        QuietWindow.parse(bad)


def test_late_evening_waits_for_next_morning() -> None:
    at = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)  # 23:00 in New York (EDT)
    assert quiet_until(at, NIGHT, NY) == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_early_morning_waits_for_the_same_morning() -> None:
    at = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)  # 06:00 EDT
    assert quiet_until(at, NIGHT, NY) == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_daytime_is_not_deferred() -> None:
    assert quiet_until(datetime(2026, 6, 1, 16, 0, tzinfo=UTC), NIGHT, NY) is None


def test_the_end_is_local_wall_clock_across_a_dst_change() -> None:
    # The night of 7-8 March 2026: New York moves from EST (-5) to EDT (-4) at 02:00.
    at = datetime(2026, 3, 8, 3, 0, tzinfo=UTC)  # 22:00 EST on the 7th
    assert quiet_until(at, NIGHT, NY) == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)  # 08:00 EDT


def test_policy_ignore_and_no_window_never_defer() -> None:
    at = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
    assert deferral_for("ignore", "21:00-08:00", "UTC", "America/New_York", at) is None
    assert deferral_for("respect", None, "UTC", "America/New_York", at) is None
    assert deferral_for("respect", "21:00-08:00", "UTC", "America/New_York", at) is not None


def test_the_recipients_zone_wins_and_the_tenants_is_the_fallback() -> None:
    at = datetime(2026, 6, 1, 21, 30, tzinfo=UTC)  # 22:30 in London, 17:30 in New York
    assert (
        deferral_for("respect", "21:00-08:00", "America/New_York", "Europe/London", at) is not None
    )
    assert deferral_for("respect", "21:00-08:00", "Europe/London", "America/New_York", at) is None
    assert deferral_for("respect", "21:00-08:00", "Europe/London", None, at) is not None
    assert zone("Not/AZone", "Europe/London") == ZoneInfo("Europe/London")


def test_number_zones() -> None:
    assert timezone_for("+12025550100") == "America/New_York"
    assert timezone_for("+447911123456") in {
        "Europe/London",
        "Europe/Guernsey",
        "Europe/Jersey",
        "Europe/Isle_of_Man",
    }
    assert timezone_for("+61412345678") is None  # Australian mobiles span zones
