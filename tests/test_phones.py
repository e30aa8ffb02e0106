"""Iranian mobile normalisation: every way a number arrives, every way it can be wrong."""

from __future__ import annotations

import random
import re

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.models import InvalidNumber
from pipeline.phones import normalise_mobile

# derandomize: the same examples on every run, so the suite stays deterministic.
PROPERTY = settings(max_examples=200, deadline=None, derandomize=True)

NORMALISED = re.compile(r"09\d{9}", re.ASCII)
PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

# What people and spreadsheets put between digits: spaces, invisible marks, dashes, brackets.
NOISE = [
    " ",
    "\t",
    "\u00a0",  # NBSP
    "\u200c",  # ZWNJ
    "\u200d",  # ZWJ
    "\u200e",  # LRM
    "\u200f",  # RLM
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2069",
    "\ufeff",  # BOM
    "\u3000",
    "-",
    "\u2013",  # en dash
    "\u2014",  # em dash
    "\u2212",  # minus sign
    "(",
    ")",
    "/",
    "'",
]

# Three-digit national prefixes that Iranian operators use (MCI 91x/990-994, Irancell 93x/90x,
# Rightel 92x); any seven digits after them make a valid mobile.
LIVE_PREFIXES = [
    *(f"91{d}" for d in range(10)),
    *(f"93{d}" for d in range(10)),
    *(f"90{d}" for d in range(6)),
    *(f"92{d}" for d in range(4)),
    *(f"99{d}" for d in "01234"),
]


def full_parse_is_mobile(national: str) -> bool:
    """The reference answer: a full phonenumbers parse of one whole number."""
    number = phonenumbers.parse("0" + national, "IR")
    return bool(
        phonenumbers.is_valid_number(number)
        and phonenumbers.number_type(number)
        in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    )


valid_nationals = st.builds(
    str.__add__,
    st.sampled_from(LIVE_PREFIXES),
    st.text("0123456789", min_size=7, max_size=7),
)


@pytest.mark.parametrize(
    "raw",
    [
        "09123456789",
        "9123456789",
        "+989123456789",
        "+98 912 345 6789",
        "+98-912-345-6789",
        "+98 (0) 912 345 6789",
        "+0912 345 6789",
        "0098 912 345 6789",
        "00989123456789",
        "989123456789",
        "(0912) 345-6789",
        "0912-345-6789",
        "0912.345.6789",
        "0912/345/6789",
        "  09123456789  ",
        "09123456789\r\n",
        "۰۹۱۲۳۴۵۶۷۸۹",
        "٠٩١٢٣٤٥٦٧٨٩",
        "۰۹۱۲٣٤٥6789",
        "+۹۸ ۹۱۲ ۳۴۵ ۶۷۸۹",
        "0912\u00a0345\u00a06789",
        "0912\u200c345\u200c6789",
        "\ufeff09123456789",
        "\u200f+98 912 345 6789\u200e",
        "\u202b09123456789\u202c",
        "\u202e0912\u202d3456789",
        "0912–345–6789",
        "0912—345—6789",
        "0912−345−6789",
        "9.123456789E9",
        "9.123456789E+09",
        "9.123456789e+09",
        "9.1234567890E+09",
        "9.89123456789E+11",
        "۹٫۱۲۳۴۵۶۷۸۹E+۰۹",
        "9123456789.0",
        "9123456789.00",
        "989123456789.0",
        "۹۱۲۳۴۵۶۷۸۹٫۰",
        "'09123456789",
        "9,123,456,789",
    ],
)
def test_awkward_forms_of_one_mobile_normalise_to_it(raw: str) -> None:
    """Every prefix, digit script, separator and Excel form of 0912 345 6789 gives 09123456789."""
    assert normalise_mobile(raw) == "09123456789"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("09011234567", "09011234567"),  # Irancell 901
        ("09211234567", "09211234567"),  # Rightel 921
        ("09351234567", "09351234567"),  # Irancell 935
        ("09901234567", "09901234567"),  # MCI 990
        ("09981234567", "09981234567"),  # 9981x, a five-digit range
        ("09951012345", "09951012345"),  # 99510, the narrowest range in the metadata
    ],
)
def test_other_operators_ranges_are_mobiles(raw: str, expected: str) -> None:
    """Numbers in every operator's ranges, including five-digit ones, are accepted."""
    assert normalise_mobile(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("\u200c\u200f\ufeff", "empty"),
        ("-", "empty"),
        ("nan", "empty"),
        ("NaN", "empty"),
        ("None", "empty"),
        ("N/A", "empty"),
        ("abc", "not a number: contains letters"),
        ("0912abc4567", "not a number: contains letters"),
        ("علی", "not a number: contains letters"),
        ("0912#345#6789", "not a number: contains '#'"),
        ("0912\x00345\x006789", "not a number: contains the invisible character U+0000"),
        ("+", "not a number: no digits"),
        ("912345678", "too short: 9 digits, 10 expected"),
        ("0912345678", "too short: 10 digits, 11 expected"),
        ("+98 912 345 678", "too short: 11 digits, 12 expected"),
        ("0912", "too short: 4 digits, 11 expected"),
        ("091234567890", "too long: 12 digits, 11 expected"),
        ("09121111111, 09122222222", "too long: 22 digits, 11 expected; two numbers in one cell?"),
        (
            "02112345678",
            "not a mobile number: 0211… is a landline or service number"
            " (Iranian mobiles start with 09)",
        ),
        (
            "+98 21 8877 6655",
            "not a mobile number: 0218… is a landline or service number"
            " (Iranian mobiles start with 09)",
        ),
        ("+98 00 912 345 6789", "not a mobile number: too many zeros before the 9"),
        (
            "09400012345",
            "not an Iranian mobile number: prefix 094000… is not assigned to any mobile operator",
        ),
        (
            "09950012345",
            "not an Iranian mobile number: prefix 099500… is not assigned to any mobile operator",
        ),
        ("+1 202 555 0100", "not an Iranian number: +1202… (Iranian numbers start with +98)"),
        ("0044 7911 123456", "not an Iranian number: +4479… (Iranian numbers start with +98)"),
        ("9.1234567891E+09", "not a number: 9.1234567891E+09 is not a whole number"),
    ],
)
def test_unusable_values_say_why(raw: str, reason: str) -> None:
    """Each kind of bad value gets its own reason a person can act on."""
    assert normalise_mobile(raw) == InvalidNumber(reason)


@pytest.mark.parametrize(
    ("raw", "kept", "total"),
    [
        ("9.12E+09", 3, 10),
        ("9.12e9", 3, 10),
        ("9.12345678E+09", 9, 10),  # may be 9123456780 or a rounded 912345678x: cannot tell
        ("9.8912E+11", 5, 12),
        ("۹٫۱۲E+۰۹", 3, 10),
    ],
)
def test_excel_rounded_scientific_is_refused_with_the_fix(raw: str, kept: int, total: int) -> None:
    """Scientific notation missing digits is never padded into a stranger's number."""
    result = normalise_mobile(raw)
    assert isinstance(result, InvalidNumber)
    assert result.reason.startswith("Excel lost digits: ")
    assert f"keeps only {kept} of the number's {total} digits" in result.reason
    assert "format the phone column as Text" in result.reason


def test_each_five_digit_prefix_agrees_with_a_full_parse() -> None:
    """The per-prefix cache gives a full parse's answer for all 10,000 prefixes 9XXXX."""
    rng = random.Random(1405)
    disagreements = []
    for prefix in range(90000, 100000):
        national = f"{prefix}{rng.randrange(100000):05d}"
        expected = full_parse_is_mobile(national)
        if isinstance(normalise_mobile("0" + national), str) != expected:
            disagreements.append(national)
    assert disagreements == []


@PROPERTY
@given(st.text("0123456789", min_size=9, max_size=9))
def test_cached_check_agrees_with_full_parse(tail: str) -> None:
    """For random ten-digit numbers 9XXXXXXXXX the cached prefix check equals a full parse."""
    national = "9" + tail
    result = normalise_mobile("0" + national)
    if full_parse_is_mobile(national):
        assert result == "0" + national
    else:
        assert isinstance(result, InvalidNumber)


@PROPERTY
@given(st.one_of(valid_nationals, st.text()))
def test_normalising_a_result_returns_it_unchanged(raw: str) -> None:
    """Idempotent: a normalised number normalises to itself."""
    result = normalise_mobile(raw)
    if isinstance(result, str):
        assert normalise_mobile(result) == result


@st.composite
def written_forms(draw: st.DrawFn, national: str) -> str:
    """`national` written the way a person might: a prefix, a digit script per digit, noise."""
    prefix = draw(st.sampled_from(["", "0", "+98", "0098", "98", "+980", "+98 (0)", "98 0"]))
    plain = prefix + national
    scripts = draw(
        st.lists(
            st.sampled_from([{}, PERSIAN, ARABIC_INDIC]), min_size=len(plain), max_size=len(plain)
        )
    )
    chars = [char.translate(script) for char, script in zip(plain, scripts, strict=True)]
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(chars)))
        chars.insert(at, draw(st.sampled_from(NOISE)))
    return "".join(chars)


@PROPERTY
@given(st.data(), valid_nationals)
def test_formatting_noise_never_changes_a_valid_number(data: st.DataObject, national: str) -> None:
    """Country code, trunk 0, digit script, spaces, marks and dashes all give the same number."""
    raw = data.draw(written_forms(national))
    assert normalise_mobile(raw) == "0" + national


@PROPERTY
@given(st.text(), st.data())
def test_noise_and_digit_script_never_change_any_result(raw: str, data: st.DataObject) -> None:
    """For any text, valid or not, added noise or another digit script keeps result and reason."""
    chars = list(raw.translate(data.draw(st.sampled_from([PERSIAN, ARABIC_INDIC, {}]))))
    for _ in range(data.draw(st.integers(1, 5))):
        chars.insert(data.draw(st.integers(0, len(chars))), data.draw(st.sampled_from(NOISE)))
    assert normalise_mobile("".join(chars)) == normalise_mobile(raw)


phone_like = st.text(
    "0123456789۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩+.,eE-() '٫nNaA\u200c\u00a0",
    max_size=20,
)


@PROPERTY
@given(st.one_of(st.text(), phone_like))
def test_any_text_gives_a_number_or_a_reason(raw: str) -> None:
    """Never raises; a number is always 09 and nine ASCII digits; a reason is never blank."""
    result = normalise_mobile(raw)
    if isinstance(result, str):
        assert NORMALISED.fullmatch(result)
    else:
        assert isinstance(result, InvalidNumber)
        assert result.reason.strip()
