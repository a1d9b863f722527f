"""The upload's one-pass number check gives what ``to_e164`` and ``timezone_for`` give, for
every region's example numbers of every type, their neighbours, and numbers that are not."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from app.domain.phones import InvalidPhoneNumber, timezone_for, to_e164, to_e164_with_zone


def _two_step(raw: str) -> tuple[str, str | None] | None:
    try:
        e164 = to_e164(raw)
    except InvalidPhoneNumber:
        return None
    return e164, timezone_for(e164)


def _one_pass(raw: str) -> tuple[str, str | None] | None:
    try:
        return to_e164_with_zone(raw)
    except InvalidPhoneNumber:
        return None


def _examples() -> list[str]:
    found: set[str] = set()
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    codes = sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS)
    for region in regions:
        for kind in phonenumbers.PhoneNumberType.values():
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    for code in codes:
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return sorted(found)


EXAMPLES = _examples()


def _neighbours(e164: str, rng: random.Random) -> list[str]:
    """The number with its last digits changed, one digit fewer, and one more."""
    out = [e164[:-1], e164 + str(rng.randrange(10))]
    for _ in range(10):
        cut = rng.randrange(3, len(e164))
        out.append(e164[:cut] + "".join(str(rng.randrange(10)) for _ in e164[cut:]))
    return out


def test_there_are_examples_of_every_kind() -> None:
    assert len(EXAMPLES) > 1000  # every region's types, and the non-geographic codes
    assert {_one_pass(n) is not None for n in EXAMPLES} == {True}


@pytest.mark.parametrize("chunk", range(8))
def test_one_pass_equals_the_two_steps(chunk: int) -> None:
    rng = random.Random(chunk)
    numbers = EXAMPLES[chunk::8]
    tried = 0
    for example in numbers:
        for raw in [example, *_neighbours(example, rng)]:
            assert _one_pass(raw) == _two_step(raw), raw
            tried += 1
    assert tried > 1500


def test_not_numbers_are_refused_alike() -> None:
    rng = random.Random(7)
    odd = ["", "+", "12025550123", "+1", "+999123", "+1 (202) 555-0123", "+44 7400 123456 x12"]
    odd += [
        "+" + "".join(str(rng.randrange(10)) for _ in range(rng.randrange(2, 16)))
        for _ in range(3000)
    ]
    for raw in odd:
        assert _one_pass(raw) == _two_step(raw), raw
