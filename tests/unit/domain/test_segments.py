"""SMS segment counting: GSM-7 160/153, UCS-2 70/67, extension characters and surrogates."""

from __future__ import annotations

import pytest

from app.domain.segments import count_segments


@pytest.mark.parametrize(
    ("length", "segments"),
    [(0, 1), (1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_gsm7_boundaries(length: int, segments: int) -> None:
    count = count_segments("a" * length)

    assert count.encoding == "GSM-7"
    assert count.units == length
    assert count.segments == segments


@pytest.mark.parametrize("char", list("^{}\\[~]|€\f"))
def test_gsm7_extension_characters_count_double(char: str) -> None:
    count = count_segments(char)

    assert count.encoding == "GSM-7"
    assert count.units == 2


def test_extension_characters_push_a_message_over_the_single_limit() -> None:
    assert count_segments("€" * 80).segments == 1
    assert count_segments("€" * 81).segments == 2
    assert count_segments("a" * 159 + "€").segments == 2
    assert count_segments("a" * 158 + "€").segments == 1


def test_gsm7_national_letters_stay_gsm7() -> None:
    count = count_segments("Ça va? Ñandù, Øre, ß, Δ, é, à, ü, ¿¡ £$¥ §")

    assert count.encoding == "GSM-7"
    assert count.units == 42


@pytest.mark.parametrize("char", ["ú", "ç", "â", "ж", "\u2019"])
def test_letters_outside_gsm7_force_ucs2(char: str) -> None:
    assert count_segments("hello " + char).encoding == "UCS-2"


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)],
)
def test_ucs2_boundaries(length: int, segments: int) -> None:
    count = count_segments("ж" * length)

    assert count.encoding == "UCS-2"
    assert count.units == length
    assert count.segments == segments


def test_one_non_gsm_character_switches_the_whole_message_to_ucs2() -> None:
    count = count_segments("a" * 69 + "ж")

    assert count.encoding == "UCS-2"
    assert count.segments == 1
    assert count_segments("a" * 70 + "ж").segments == 2


def test_emoji_take_two_utf16_units() -> None:
    assert count_segments("😀").units == 2
    assert count_segments("😀" * 35).segments == 1
    assert count_segments("😀" * 36).units == 72
    assert count_segments("😀" * 36).segments == 2
    assert count_segments("a" * 69 + "😀").segments == 2


@pytest.mark.parametrize(
    "text",
    [
        # 152 septets, then ESC+€ cannot fit in the first 153-septet segment.
        "a" * 152 + "€" + "a" * 152,
        # 66 units, then the emoji's two units cannot fit in the first 67-unit segment.
        "ж" * 66 + "😀" + "ж" * 66,
    ],
    ids=["gsm7-escape", "ucs2-surrogate"],
)
def test_a_pair_is_never_split_across_segments(text: str) -> None:
    assert count_segments(text).segments == 3
