"""Tests for pipeline.segments: GSM-7 / UCS-2 page counting per 3GPP TS 23.038."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.models import Pages
from pipeline.segments import GSM_BASIC, GSM_EXTENSION, count_pages

# The default alphabet as TS 23.038 prints it, row by row (0x00-0x7F); None is 0x1B, the escape.
# Written out independently of the module so that a typo in either one shows.
SPEC_TABLE: list[str | None] = [
    *"@£$¥èéùìòÇ\nØø\rÅå",
    *"Δ_ΦΓΛΩΠΨΣΘΞ",
    None,
    *"ÆæßÉ",
    *" !\"#¤%&'()*+,-./",
    *"0123456789:;<=>?",
    *"¡ABCDEFGHIJKLMNO",
    *"PQRSTUVWXYZÄÖÑÜ§",
    *"¿abcdefghijklmno",
    *"pqrstuvwxyzäöñüà",
]
SPEC_BASIC = frozenset(c for c in SPEC_TABLE if c is not None)
# Extension table entries: 0x0A form feed, 0x14 ^, 0x28 {, 0x29 }, 0x2F \, 0x3C [, 0x3D ~,
# 0x3E ], 0x40 |, 0x65 €.
SPEC_EXTENSION = frozenset("\f^{}\\[~]|€")

PERSIAN = "ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهیآ\u200c۰۱۲۳۴۵۶۷۸۹،؟ "
EMOJI = "😀🎉👍🌸🇮🇷❤"  # the flag is two astral characters; the heart is in the BMP


def reference_pages(text: str) -> Pages:
    """Brute force: cost every character, then fill parts greedily, never splitting a pair."""
    if all(c in SPEC_BASIC or c in SPEC_EXTENSION for c in text):
        encoding, single, multi = "GSM-7", 160, 153
        costs = [2 if c in SPEC_EXTENSION else 1 for c in text]
    else:
        encoding, single, multi = "UCS-2", 70, 67
        costs = [len(c.encode("utf-16-le")) // 2 for c in text]
    units = sum(costs)
    if units == 0:
        return Pages(encoding, 0, 0)
    if units <= single:
        return Pages(encoding, units, 1)
    parts, room = 1, multi
    for cost in costs:
        if cost > room:
            parts, room = parts + 1, multi
        room -= cost
    return Pages(encoding, units, parts)


def test_module_alphabet_matches_the_standard_table() -> None:
    """The module's basic and extension sets are exactly the 127 + 10 characters of TS 23.038."""
    assert len(SPEC_TABLE) == 128
    assert len(GSM_BASIC) == 127
    assert frozenset(GSM_BASIC) == SPEC_BASIC
    assert frozenset(GSM_EXTENSION) == SPEC_EXTENSION


def test_empty_text_costs_no_pages() -> None:
    """An empty text is never sent, so it counts 0 units and 0 pages."""
    assert count_pages("") == Pages("GSM-7", 0, 0)


@pytest.mark.parametrize(
    ("length", "pages"), [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)]
)
def test_gsm_page_boundaries(length: int, pages: int) -> None:
    """GSM-7: one page holds 160 septets; beyond that each part holds 153."""
    assert count_pages("a" * length) == Pages("GSM-7", length, pages)


@pytest.mark.parametrize(
    ("length", "pages"), [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)]
)
def test_ucs2_page_boundaries(length: int, pages: int) -> None:
    """UCS-2: one page holds 70 code units; beyond that each part holds 67."""
    assert count_pages("س" * length) == Pages("UCS-2", length, pages)


def test_euro_sign_costs_two_septets() -> None:
    """`€` lives in the extension table: escape plus character, two septets."""
    assert count_pages("€") == Pages("GSM-7", 2, 1)
    assert count_pages("a" * 158 + "€") == Pages("GSM-7", 160, 1)
    assert count_pages("a" * 159 + "€") == Pages("GSM-7", 161, 2)


@pytest.mark.parametrize("char", sorted(SPEC_EXTENSION))
def test_every_extension_character_costs_two_septets(char: str) -> None:
    """Each extension character (and form feed) keeps the text GSM-7 but costs two septets."""
    assert count_pages(f"x{char}x") == Pages("GSM-7", 4, 1)


def test_extension_pair_straddling_a_part_boundary_moves_to_the_next_part() -> None:
    """An escape pair starting on a part's last septet moves whole, costing one septet."""
    fits = "a" * 151 + "€" + "a" * 153  # pair at septets 151-152: ends part one exactly
    straddles = "a" * 152 + "€" + "a" * 152  # pair would take septets 152-153
    assert count_pages(fits) == Pages("GSM-7", 306, 2)
    assert count_pages(straddles) == Pages("GSM-7", 306, 3)


def test_extension_pair_straddling_a_later_boundary_moves_too() -> None:
    """The rule holds at every part boundary, after earlier pairs shifted the stream."""
    # Part one: 151 "a" + "[" = 153 septets. Part two is septets 153-305, so a pair after
    # 152 more "a" would start on its last slot 305; after 151 it ends exactly there.
    straddles = "a" * 151 + "[" + "a" * 152 + "]" + "a" * 152
    fits = "a" * 151 + "[" + "a" * 151 + "]" + "a" * 153
    assert count_pages(straddles) == Pages("GSM-7", 459, 4)
    assert count_pages(fits) == Pages("GSM-7", 459, 3)


def test_emoji_straddling_a_part_boundary_moves_to_the_next_part() -> None:
    """A surrogate pair starting on a part's last code unit moves whole, costing one unit."""
    fits = "س" * 65 + "😀" + "س" * 67
    straddles = "س" * 66 + "😀" + "س" * 66
    assert count_pages(fits) == Pages("UCS-2", 134, 2)
    assert count_pages(straddles) == Pages("UCS-2", 134, 3)


def test_emoji_costs_two_code_units_and_bmp_symbols_one() -> None:
    """An astral emoji is a surrogate pair (2 units); a BMP symbol such as ❤ is one unit."""
    assert count_pages("😀") == Pages("UCS-2", 2, 1)
    assert count_pages("❤") == Pages("UCS-2", 1, 1)
    assert count_pages("🇮🇷") == Pages("UCS-2", 4, 1)


def test_persian_text_with_zwnj_is_ucs2_and_counts_every_code_unit() -> None:
    """ZWNJ (U+200C) is an ordinary UCS-2 unit: counted, and enough alone to force UCS-2."""
    text = "می\u200cخواهیم به شما تخفیف بدهیم"
    assert count_pages(text) == Pages("UCS-2", len(text), 1)
    assert count_pages("Hello\u200cworld") == Pages("UCS-2", 11, 1)


def test_one_persian_character_turns_latin_text_into_ucs2() -> None:
    """A single character outside GSM-7 makes the whole message UCS-2, with UCS-2 limits."""
    latin = "Your discount code is ABC123. " * 3  # 90 septets: one GSM page
    assert count_pages(latin) == Pages("GSM-7", 90, 1)
    assert count_pages(latin + "س") == Pages("UCS-2", 91, 2)


@pytest.mark.parametrize("char", ["ç", "`", "\t", "\x1b", "\u00a0", "α", "٫"])
def test_lookalikes_outside_the_alphabet_force_ucs2(char: str) -> None:
    """Characters near, but not in, the alphabet (ç, backtick, tab, bare escape, NBSP) are UCS-2."""
    assert count_pages(f"abc{char}").encoding == "UCS-2"


def test_lone_surrogate_counts_one_unit_instead_of_raising() -> None:
    """A lone surrogate (possible in a Python str) is one UCS-2 unit, not a crash."""
    assert count_pages("a\ud800") == Pages("UCS-2", 2, 1)


def test_every_pair_position_around_the_boundaries_matches_the_reference() -> None:
    """A pair at each position near the first two part boundaries costs what brute force says."""
    for filler, pair, single in (("a", "€", 160), ("س", "😀", 70)):
        for total in (single + 1, 2 * single, 3 * single):
            for at in range(total):
                text = filler * at + pair + filler * (total - at)
                assert count_pages(text) == reference_pages(text), (filler, total, at)


GSM_CHARS = st.one_of(st.sampled_from(sorted(SPEC_BASIC)), st.sampled_from(sorted(SPEC_EXTENSION)))
MIXED_CHARS = st.one_of(
    st.sampled_from(sorted(SPEC_BASIC)),
    st.sampled_from(sorted(SPEC_EXTENSION)),
    st.sampled_from(PERSIAN),
    st.sampled_from(EMOJI),
)
# Any of the mixes per character, so one text can hold pure GSM runs next to emoji-heavy UCS-2 runs.
CHARS = st.one_of(
    GSM_CHARS, MIXED_CHARS, st.one_of(st.sampled_from(PERSIAN), st.sampled_from(EMOJI))
)


@st.composite
def texts(draw: st.DrawFn) -> str:
    """Texts up to a few parts long, from one randomly chosen character mix.

    Built from short random pieces, each repeated: long texts stay cheap to generate
    while pairs still land on every offset relative to the part boundaries.
    """
    chars = draw(st.sampled_from([GSM_CHARS, MIXED_CHARS, CHARS]))
    piece = st.lists(chars, min_size=1, max_size=4).map("".join)
    runs = draw(st.lists(st.tuples(piece, st.integers(1, 40)), max_size=10))
    return "".join(text * times for text, times in runs)


@settings(max_examples=150, deadline=None)
@given(texts())
def test_count_pages_agrees_with_brute_force(text: str) -> None:
    """On random mixes of GSM, extension, Persian and emoji text, the result equals brute force."""
    assert count_pages(text) == reference_pages(text)


@settings(max_examples=60, deadline=None)
@given(texts(), st.lists(MIXED_CHARS, min_size=1, max_size=60))
def test_appending_characters_never_lowers_the_page_count(text: str, extra: list[str]) -> None:
    """Pages never decrease as characters are appended, even when GSM-7 flips to UCS-2."""
    previous = count_pages(text).pages
    for char in extra:
        text += char
        current = count_pages(text).pages
        assert current >= previous
        previous = current


@settings(max_examples=150, deadline=None)
@given(texts())
def test_one_page_exactly_when_units_fit_a_single_page(text: str) -> None:
    """A non-empty text is one page iff its units fit 160 (GSM-7) or 70 (UCS-2)."""
    result = count_pages(text)
    single = 160 if result.encoding == "GSM-7" else 70
    if text:
        assert (result.pages == 1) == (result.units <= single)
    expected_units = (
        len(text) + sum(c in SPEC_EXTENSION for c in text)
        if result.encoding == "GSM-7"
        else len(text.encode("utf-16-le")) // 2
    )
    assert result.units == expected_units
