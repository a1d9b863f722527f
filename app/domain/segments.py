"""SMS segment counting: GSM-7 gives 160/153 characters a segment, UCS-2 gives 70/67.

A GSM-7 extension character (escape + character) and a UCS-2 surrogate pair
cannot be split across two segments, so long messages are filled character by
character rather than divided.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Characters of the extension table cost two septets (escape + char).
GSM7_EXTENDED = frozenset("\f^{}\\[~]|€")


@dataclass(frozen=True)
class SegmentCount:
    encoding: str
    units: int
    segments: int


def _units(text: str, gsm: bool) -> list[int]:
    if gsm:
        return [2 if c in GSM7_EXTENDED else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]  # UTF-16 code units


def count_segments(text: str) -> SegmentCount:
    gsm = all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text)
    single, multi = (160, 153) if gsm else (70, 67)
    sizes = _units(text, gsm)
    total = sum(sizes)
    encoding = "GSM-7" if gsm else "UCS-2"
    if total <= single:
        return SegmentCount(encoding, total, 1)
    segments, used = 1, 0
    for size in sizes:
        if used + size > multi:
            segments, used = segments + 1, 0
        used += size
    return SegmentCount(encoding, total, segments)
