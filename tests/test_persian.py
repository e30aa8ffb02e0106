"""Tests for pipeline.persian: Jalali dates, digits, money and contact text, in templates too."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import jdatetime
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.persian import (
    FILTERS,
    en_digits,
    fa_digits,
    jalali,
    money,
    normalise_text,
    rial,
    template_globals,
    toman,
    weekday,
)
from pipeline.render import Renderer, RenderFailure

PROPERTY = settings(max_examples=100, deadline=None, derandomize=True)
ZWNJ = "\u200c"
# 21:00 UTC on 20 March 2026 is 00:30 on 1 Farvardin 1405 in Tehran.
LATE_EVENING_UTC = dt.datetime(2026, 3, 20, 21, 0, tzinfo=dt.UTC)


def fixed_clock() -> dt.datetime:
    return LATE_EVENING_UTC


def renderer(source: str) -> Renderer:
    return Renderer(
        source, name="templates/t.j2", filters=FILTERS, globals=template_globals(fixed_clock)
    )


# --- jalali ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gregorian", "expected"),
    [
        (dt.date(2026, 3, 21), "۱۴۰۵/۰۱/۰۱"),  # Nowruz 1405
        (dt.date(2025, 3, 20), "۱۴۰۳/۱۲/۳۰"),  # 1403 is a leap year: Esfand has 30 days
        (dt.date(2025, 3, 21), "۱۴۰۴/۰۱/۰۱"),  # Nowruz 1404
        (dt.date(2024, 4, 3), "۱۴۰۳/۰۱/۱۵"),
    ],
)
def test_known_gregorian_dates_in_jalali(gregorian: dt.date, expected: str) -> None:
    """Known Nowruz and leap-year dates convert to the right Jalali day, in Persian digits."""
    assert jalali(gregorian) == expected
    assert jalali(gregorian.isoformat()) == expected


def test_month_names_are_persian_and_padding_follows_jdatetime() -> None:
    """%B gives the Persian month name; %d is zero-padded, %-d is not."""
    assert jalali("2024-04-03", "%d %B %Y") == "۱۵ فروردین ۱۴۰۳"
    assert jalali("2026-03-21", "%d %B %Y") == "۰۱ فروردین ۱۴۰۵"
    assert jalali("2026-03-21", "%-d %B %Y") == "۱ فروردین ۱۴۰۵"
    assert jalali("2025-03-20", "%-d %B", digits="en") == "30 اسفند"
    assert jalali("2025-12-01", "%B") == "آذر"


def test_latin_digits_on_request() -> None:
    """digits="en" keeps the Jalali date in Latin digits."""
    assert jalali("2026-03-21", digits="en") == "1405/01/01"


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-21T10:00:00",
        "2026-03-21 10:00",
        "2026-03-21T10:00:00.250000",
        "2026/3/21",
        "۲۰۲۶-۰۳-۲۱",
        "  2026-03-21  ",
        "1405/01/01",
        "1405-1-1 10:00",
        "۱۴۰۵/۰۱/۰۱",
    ],
)
def test_accepted_text_forms(text: str) -> None:
    """ISO Gregorian text (T or space, optional seconds) and Jalali text give the same day."""
    assert jalali(text) == "۱۴۰۵/۰۱/۰۱"


def test_jalali_text_keeps_its_time() -> None:
    """A Jalali date with a time is read as Tehran wall-clock time."""
    assert jalali("1405/01/01 10:05", "%Y/%m/%d %H:%M", digits="en") == "1405/01/01 10:05"


def test_aware_utc_evening_crosses_midnight_in_tehran() -> None:
    """An aware UTC datetime at 21:00 on 20 March is 00:30 on Nowruz in Tehran."""
    fmt = "%Y/%m/%d %H:%M"
    assert jalali(LATE_EVENING_UTC, fmt) == "۱۴۰۵/۰۱/۰۱ ۰۰:۳۰"
    assert jalali("2026-03-20T21:00:00Z", fmt) == "۱۴۰۵/۰۱/۰۱ ۰۰:۳۰"
    assert jalali("2026-03-20T21:00:00+00:00", fmt) == "۱۴۰۵/۰۱/۰۱ ۰۰:۳۰"
    assert jalali("2026-03-21T00:30:00+03:30", fmt) == "۱۴۰۵/۰۱/۰۱ ۰۰:۳۰"


def test_naive_datetime_is_taken_as_tehran_time() -> None:
    """A naive datetime is not shifted: it already is Tehran wall-clock time."""
    assert jalali(dt.datetime(2026, 3, 20, 21, 0), "%d %H:%M", digits="en") == "29 21:00"


def test_jdatetime_values_are_accepted_with_persian_names() -> None:
    """jdatetime dates and datetimes (even made in the English locale) format in Persian."""
    assert jalali(jdatetime.date(1405, 1, 1), "%-d %B %Y") == "۱ فروردین ۱۴۰۵"
    assert jalali(jdatetime.datetime(1405, 1, 1, 9, 5), "%B %H:%M") == "فروردین ۰۹:۰۵"
    aware = jdatetime.datetime.fromgregorian(datetime=LATE_EVENING_UTC)
    assert jalali(aware, "%Y/%m/%d %H:%M", digits="en") == "1405/01/01 00:30"


def test_weekday_names() -> None:
    """weekday gives the Persian day name, ZWNJ included where Persian spells one."""
    assert weekday("2026-03-21") == "شنبه"
    assert weekday(dt.date(2025, 3, 20)) == f"پنج{ZWNJ}شنبه"
    assert weekday("1404/01/01") == "جمعه"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "jalali: there is no date (None)"),
        ("", "jalali: '' is not a date; write it like 2026-03-21 or 1405/01/01"),
        ("tomorrow", "jalali: 'tomorrow' is not a date; write it like 2026-03-21 or 1405/01/01"),
        ("2026-02-30", "jalali: '2026-02-30' is not a real date (day is out of range for month)"),
        ("1404/12/30", "jalali: '1404/12/30' is not a real date (day is out of range for month)"),
        ("2026-13-01", "jalali: '2026-13-01' is not a real date (month must be in 1..12)"),
        (20260321, "jalali: 20260321 is not a date"),
        (1.5, "jalali: 1.5 is not a date"),
    ],
)
def test_bad_dates_raise_a_clear_value_error(value: object, message: str) -> None:
    """A value that is no date, or no real one, is a ValueError naming the value and the form."""
    with pytest.raises(ValueError) as caught:
        jalali(value)
    assert str(caught.value) == message


def test_long_bad_values_are_cut_short_in_the_message() -> None:
    """A long bad value is shortened so the report's reason stays readable."""
    with pytest.raises(ValueError) as caught:
        jalali("x" * 500)
    assert len(str(caught.value)) < 120


def test_bad_digits_option_is_named() -> None:
    """digits must be "fa" or "en"."""
    with pytest.raises(ValueError, match="jalali: digits must be 'fa' or 'en', not 'ar'"):
        jalali("2026-03-21", digits="ar")  # type: ignore[arg-type]


# --- digits ---------------------------------------------------------------------------------


def test_fa_digits_converts_latin_and_arabic_indic() -> None:
    """Latin and Arabic-Indic digits become Persian; everything else is untouched."""
    assert fa_digits("کد 0123 و ٤٥٦") == "کد ۰۱۲۳ و ۴۵۶"
    assert fa_digits(2026) == "۲۰۲۶"
    assert fa_digits(1.5) == "۱.۵"
    assert fa_digits(dt.date(2026, 3, 21)) == "۲۰۲۶-۰۳-۲۱"


def test_en_digits_converts_persian_and_arabic_indic() -> None:
    """Persian and Arabic-Indic digits become Latin; everything else is untouched."""
    assert en_digits("کد ۰۱۲۳ و ٤٥٦") == "کد 0123 و 456"
    assert en_digits(42) == "42"


def test_digits_of_none_is_an_error_not_the_word_none() -> None:
    """None would print "None" into the SMS, so it is a ValueError instead."""
    with pytest.raises(ValueError, match="fa_digits: there is no value"):
        fa_digits(None)
    with pytest.raises(ValueError, match="en_digits: there is no value"):
        en_digits(None)


# --- money ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "۰ تومان"),
        (999, "۹۹۹ تومان"),
        (1000, "۱٬۰۰۰ تومان"),
        (125000, "۱۲۵٬۰۰۰ تومان"),
        (125000.0, "۱۲۵٬۰۰۰ تومان"),
        (1234567.5, "۱٬۲۳۴٬۵۶۷٫۵ تومان"),  # up to two decimals, trailing zeros dropped
        (Decimal("19.999"), "۲۰ تومان"),  # rounded half up to cents, then whole
        (Decimal("0.125"), "۰٫۱۳ تومان"),
        (-125000, "-۱۲۵٬۰۰۰ تومان"),
        (-0.001, "۰ تومان"),  # rounds to zero: no "-0"
        ("125000", "۱۲۵٬۰۰۰ تومان"),
        ("۱۲۵٬۰۰۰", "۱۲۵٬۰۰۰ تومان"),
        ("١٢٥,٠٠٠", "۱۲۵٬۰۰۰ تومان"),
        ("۱۲۵۰۰٫۵", "۱۲٬۵۰۰٫۵ تومان"),
        (" 1,234,567 ", "۱٬۲۳۴٬۵۶۷ تومان"),
        ("\u22125000", "-۵٬۰۰۰ تومان"),
    ],
)
def test_money_formats(value: object, expected: str) -> None:
    """Amounts get Persian digits, U+066C thousands and U+066B decimal separators, and a unit."""
    assert money(value) == expected


def test_money_unit_and_latin_digits() -> None:
    """unit="" leaves the unit out; digits="en" uses Latin digits, "," and "."."""
    assert money(125000, unit="") == "۱۲۵٬۰۰۰"
    assert money(125000, unit="ریال") == "۱۲۵٬۰۰۰ ریال"
    assert money(1234567.5, unit="", digits="en") == "1,234,567.5"
    assert money(-1000, digits="en") == "-1,000 تومان"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "money: there is no amount (None)"),
        ("", "money: '' is not an amount; write it like 125000 or 125,000"),
        ("12,5", "money: '12,5' is not an amount; write it like 125000 or 125,000"),
        ("1e5", "money: '1e5' is not an amount; write it like 125000 or 125,000"),
        ("NaN", "money: 'NaN' is not an amount; write it like 125000 or 125,000"),
        ("۱۲۵ هزار", "money: '۱۲۵ هزار' is not an amount; write it like 125000 or 125,000"),
        (float("inf"), "money: inf is not an amount"),
        (True, "money: True is not an amount"),
        (dt.date(2026, 3, 21), "money: datetime.date(2026, 3, 21) is not an amount"),
        ("1" + "0" * 30, "money: '1000000000000000000000000000000' is too large to show"),
    ],
)
def test_bad_amounts_raise_a_clear_value_error(value: object, message: str) -> None:
    """A value that is no finite amount, or has misplaced separators, is a ValueError."""
    with pytest.raises(ValueError) as caught:
        money(value)
    assert str(caught.value) == message


def test_toman_and_rial() -> None:
    """Ten rials make a toman: whole results are ints, others exact Decimals."""
    assert toman(1250000) == 125000
    assert isinstance(toman("1250000"), int)
    assert toman("۱۲۳٬۴۵۵") == Decimal("12345.5")
    assert rial(125000) == 1250000
    assert rial("12.55") == Decimal("125.5")
    assert rial(toman(987654321)) == 987654321
    with pytest.raises(ValueError, match="toman: 'x' is not an amount"):
        toman("x")


# --- normalise_text -------------------------------------------------------------------------


def test_normalise_text_makes_arabic_letters_persian() -> None:
    """Arabic yeh (ي), alef maksura (ى) and kaf (ك) become Persian ی and ک."""
    assert normalise_text("علي كاظمى") == "علی کاظمی"


def test_normalise_text_keeps_inner_zwnj_digits_and_other_letters() -> None:
    """ZWNJ inside a word, digits of any script, and ة are left as they are."""
    text = f"فاطمة{ZWNJ}زهرا ۱۲۳ ١٢٣ 123"
    assert normalise_text(text) == text


def test_normalise_text_trims_invisible_marks_at_the_ends() -> None:
    """ZWNJ, ZWJ, ZWSP, bidi marks, BOM and spaces at the ends go, even interleaved."""
    assert normalise_text(f"\ufeff{ZWNJ} \u200bمریم{ZWNJ}\u200f \u200d") == "مریم"


# --- through the renderer -------------------------------------------------------------------


def test_globals_come_from_the_injected_clock_in_tehran_time() -> None:
    """today is the Tehran day of the clock's instant (already Nowruz), now is Tehran time."""
    values = template_globals(fixed_clock)
    today = values["today"]
    assert isinstance(today, jdatetime.date)
    assert (today.year, today.month, today.day) == (1405, 1, 1)
    assert today.jmonth() == "فروردین"  # made in the Persian locale
    assert values["now"] == LATE_EVENING_UTC
    assert values["now"].utcoffset() == dt.timedelta(hours=3, minutes=30)


def test_naive_clock_is_refused() -> None:
    """A naive clock would be read in the machine's zone, so it is refused."""
    with pytest.raises(ValueError, match="naive datetime"):
        template_globals(lambda: dt.datetime(2026, 3, 20, 21, 0))


def test_template_renders_dates_money_and_globals_end_to_end() -> None:
    """A realistic template renders through the sandboxed Renderer with the filters and globals."""
    template = renderer(
        "{{ name }} عزیز، سفارش {{ order | fa_digits }} در {{ day | jalali('%-d %B %Y') }} "
        "({{ day | weekday }}) به مبلغ {{ price | toman | money }} ثبت شد. "
        "امروز {{ today | jalali }} ساعت {{ now | jalali('%H:%M') }}"
    )
    text = template.render(
        {"name": "علی", "order": "4021", "day": "2024-04-03", "price": "1,250,000"}
    )
    assert text == (
        "علی عزیز، سفارش ۴۰۲۱ در ۱۵ فروردین ۱۴۰۳ (چهارشنبه) به مبلغ ۱۲۵٬۰۰۰ تومان ثبت شد. "
        "امروز ۱۴۰۵/۰۱/۰۱ ساعت ۰۰:۳۰"
    )
    assert template.variables == frozenset({"name", "order", "day", "price"})


def test_today_attributes_work_in_the_sandbox() -> None:
    """jdatetime attributes of today are readable inside the sandbox."""
    text = renderer("{{ today.year }}/{{ today.month }} {{ today | jalali('%B', digits='en') }}")
    assert text.render({}) == "1405/1 فروردین"


def test_bad_date_in_a_row_is_a_render_failure_not_an_exception() -> None:
    """A row with a bad date fails alone, with the filter's message; the next row renders."""
    template = renderer("تحویل: {{ day | jalali }}")
    failure = template.render({"day": "2026-02-30"})
    assert failure == RenderFailure(
        "the template failed on this row: ValueError: "
        "jalali: '2026-02-30' is not a real date (day is out of range for month)"
    )
    assert template.render({"day": "1405/01/01"}) == "تحویل: ۱۴۰۵/۰۱/۰۱"


def test_bad_amount_in_a_row_is_a_render_failure() -> None:
    """A row with an amount that is not a number fails with the filter's message."""
    result = renderer("{{ price | money }}").render({"price": "free"})
    assert isinstance(result, RenderFailure)
    assert "money: 'free' is not an amount" in result.reason


# --- properties -----------------------------------------------------------------------------


@PROPERTY
@given(st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_digits_round_trip(digits: str) -> None:
    """Latin digits -> Persian -> Latin is the identity, and the Persian form has no Latin digit."""
    persian = fa_digits(digits)
    assert not any(c in "0123456789" for c in persian)
    assert en_digits(persian) == digits
    assert fa_digits(en_digits(persian)) == persian


@PROPERTY
@given(st.dates(min_value=dt.date(1000, 1, 1), max_value=dt.date(3000, 12, 31)))
def test_jalali_converts_back_to_the_same_gregorian_date(day: dt.date) -> None:
    """jdatetime reads the filter's Jalali date back as the very Gregorian date it came from."""
    shown = jalali(day, "%Y/%m/%d", digits="en")
    year, month, date_of_month = (int(part) for part in shown.split("/"))
    assert jdatetime.date(year, month, date_of_month).togregorian() == day


# Jalali years 1000-1699 (written with four digits, below the 1700 that marks Gregorian text).
@PROPERTY
@given(st.dates(min_value=dt.date(1622, 3, 22), max_value=dt.date(2321, 3, 20)))
def test_jalali_output_reads_back_as_the_same_day(day: dt.date) -> None:
    """The filter's own Persian-digit output, fed back in, names the same day."""
    assert jalali(jalali(day)) == jalali(day)
    assert jalali(jalali(day, "%Y-%m-%d")) == jalali(day)


@PROPERTY
@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_money_reads_back_as_the_same_whole_amount(amount: int) -> None:
    """A whole amount shown by money (no unit) parses back to itself, and toman/rial invert."""
    assert toman(money(amount, unit="")) == Decimal(amount) / 10
    assert rial(toman(amount)) == amount
