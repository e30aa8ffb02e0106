"""Count the SMS pages (segments) a text costs, as GSM 03.38 / 3GPP TS 23.038 does."""

from __future__ import annotations

import re

from pipeline.models import Pages

# The default alphabet: 127 characters of one septet each (0x1B is the escape, not a character).
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = "\f^{}\\[~]|€"  # two septets each: the escape and the character

GSM_SINGLE, GSM_MULTI = 160, 153  # septets: 7 of each 160 go to the concatenation header
UCS2_SINGLE, UCS2_MULTI = 70, 67  # UTF-16 code units, same header
GSM7, UCS2 = "GSM-7", "UCS-2"

_NON_GSM = re.compile(f"[^{re.escape(GSM_BASIC + GSM_EXTENSION)}]")
_EXTENSION = re.compile(f"[{re.escape(GSM_EXTENSION)}]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def count_pages(text: str) -> Pages:
    """The encoding, units (septets or UTF-16 code units) and pages of `text`. One character
    outside GSM-7 (a Persian letter, ZWNJ, an emoji) makes it all UCS-2. A part never splits an
    escape or surrogate pair: the pair moves on, one unit left unused. An empty text costs 0."""
    if _NON_GSM.search(text) is None:
        extension = len(_EXTENSION.findall(text))
        units = len(text) + extension
        pages = _pages(text, units, _EXTENSION if extension else None, GSM_SINGLE, GSM_MULTI)
        return Pages(GSM7, units, pages)
    # Astral characters are two UTF-16 units: counted, as a lone surrogate would fail encoding.
    astral = len(_ASTRAL.findall(text))
    units = len(text) + astral
    pages = _pages(text, units, _ASTRAL if astral else None, UCS2_SINGLE, UCS2_MULTI)
    return Pages(UCS2, units, pages)


def _pages(text: str, units: int, pair: re.Pattern[str] | None, single: int, multi: int) -> int:
    """Pages for `units` units; `pair` matches the two-unit characters, None when there are none."""
    if units <= single:
        return 1 if units else 0
    pages = -(-units // multi)
    # A pair on a part's last slot moves on, wasting it: at most one a boundary, so the count
    # holds while the last part has room for one a boundary.
    if pair is None or units + pages - 1 <= pages * multi:
        return pages
    wasted = 0  # only pairs shift the boundaries: visit those
    for index, match in enumerate(pair.finditer(text)):
        start = match.start() + index + wasted  # earlier pairs each took one extra unit
        if start % multi == multi - 1:
            wasted += 1
    return -(-(units + wasted) // multi)
