"""E.164 phone numbers, parsed and validated with phonenumbers."""

from __future__ import annotations

import phonenumbers
from phonenumbers import timezone as pn_timezone


class InvalidPhoneNumber(ValueError):
    pass


def to_e164(raw: str) -> str:
    """Parse a number given in international form and return it in E.164, or raise."""
    if not raw.startswith("+"):
        raise InvalidPhoneNumber("must be in E.164 form, starting with + and the country code")
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber("not a valid number for its country")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def timezone_for(e164: str) -> str | None:
    """The number's time zone when phonenumbers names exactly one, else None."""
    zones = pn_timezone.time_zones_for_number(phonenumbers.parse(e164, None))
    if len(zones) == 1 and zones[0] != "Etc/Unknown":
        return str(zones[0])
    return None
