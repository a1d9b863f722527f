"""E.164 phone numbers, parsed and validated with phonenumbers."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone


class InvalidPhoneNumber(ValueError):
    pass


@lru_cache(maxsize=256)
def _parse(text: str) -> phonenumbers.PhoneNumber:
    """Parsed once per request: validation, then the time zone, read the same number."""
    return phonenumbers.parse(text, None)


def _international(raw: str) -> phonenumbers.PhoneNumber:
    """The number parsed, when it is given in international form; else InvalidPhoneNumber."""
    if not raw.startswith("+"):
        raise InvalidPhoneNumber("must be in E.164 form, starting with + and the country code")
    try:
        return _parse(raw)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"not a phone number: {exc}") from None


def to_e164(raw: str) -> str:
    """Parse a number given in international form and return it in E.164, or raise."""
    parsed = _international(raw)
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber("not a valid number for its country")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def to_e164_with_zone(raw: str) -> tuple[str, str | None]:
    """``to_e164`` and ``timezone_for`` in one, for a campaign's upload (100,000 numbers).

    phonenumbers works out a number's type (a dozen patterns of its region) four times when
    asked for validity and then the zone; this asks once: a number is valid exactly when it
    has a type, and its zones follow from the type (geographic: by prefix; else the
    country's). A test holds the result equal to the two functions over every region's
    example numbers and their neighbours."""
    parsed = _international(raw)
    kind = phonenumbers.number_type(parsed)
    if kind == phonenumbers.PhoneNumberType.UNKNOWN:
        raise InvalidPhoneNumber("not a valid number for its country")
    if phonenumbers.is_number_type_geographical(kind, parsed.country_code or 0):
        names = pn_timezone.time_zones_for_geographical_number(parsed)
    else:
        # Not exported, but what time_zones_for_number calls here; the test holds it.
        names = pn_timezone._country_level_time_zones_for_number(parsed)
    e164 = str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    return e164, _one_clock(tuple(names))


def timezone_for(e164: str) -> str | None:
    """The number's time zone, when every zone phonenumbers names for it keeps the same clock.

    A UK mobile maps to London, Guernsey, Jersey and the Isle of Man, which all
    agree all year; a US or Australian mobile may be in several real zones, so
    None (the caller falls back to the tenant's zone).
    """
    return _one_clock(tuple(pn_timezone.time_zones_for_number(_parse(e164))))


@lru_cache(maxsize=1024)
def _one_clock(names: tuple[str, ...]) -> str | None:
    """The first of ``names`` when they all keep the same clock (a handful of lists recur)."""
    zones = [z for z in names if z != "Etc/Unknown"]
    if not zones:
        return None
    clocks = {_offsets(z) for z in zones}
    return str(zones[0]) if len(clocks) == 1 and None not in clocks else None


def _offsets(name: str) -> tuple[timedelta | None, ...] | None:
    """The zone's UTC offsets on a winter and a summer day: enough to tell zones apart."""
    try:
        tz = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return tuple(datetime(2025, month, 15, 12, tzinfo=tz).utcoffset() for month in (1, 7))
