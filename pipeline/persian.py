"""Persian helpers for SMS templates (Jalali dates, digits, money) and for contact text."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

import jdatetime  # ships no type information

from pipeline.clock import Clock, tehran

Digits = Literal["fa", "en"]

_PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹"
_ARABIC_INDIC_DIGITS = "٠١٢٣٤٥٦٧٨٩"
_TO_PERSIAN = str.maketrans("0123456789" + _ARABIC_INDIC_DIGITS, _PERSIAN_DIGITS * 2)
_TO_LATIN = str.maketrans(_PERSIAN_DIGITS + _ARABIC_INDIC_DIGITS, "0123456789" * 2)
_THOUSANDS = "٬"  # U+066C ARABIC THOUSANDS SEPARATOR, what Persian typesetting uses
_DECIMAL = "٫"  # U+066B ARABIC DECIMAL SEPARATOR
# Arabic yeh and kaf (Arabic keyboards, Windows-1256) look Persian but break search and dedupe.
_PERSIAN_LETTERS = str.maketrans({"ي": "ی", "ى": "ی", "ك": "ک"})
_ARABIC_LETTER = re.compile("[يىك]")
# Invisible marks copy-paste leaves around a value; inside a word ZWNJ is spelling (می‌خواهم).
_INVISIBLE = "\u061c\u200b\u200c\u200d\u200e\u200f\u2060\ufeff"
_TRIMMED = _INVISIBLE + " \t\r\n\f\v\u00a0"
# 2026-03-21, 2026/3/21, 1405/01/01, with an optional time and UTC offset.
_DATE = re.compile(
    r"(?P<y>\d{4})[-/](?P<m>\d{1,2})[-/](?P<d>\d{1,2})"
    r"(?:[T ](?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d{1,6}))?)?)?"
    r"\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?",
    re.ASCII | re.IGNORECASE,
)
_JALALI_BEFORE = 1700  # Jalali years now are ~1400 and Gregorian ones ~2000
# Whole number with optional fraction; thousands separators, if any, must group by three.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
_GROUPED_NUMBER = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?", re.ASCII)
# Numeric text as Decimal reads it; U+2212 is the typographic minus sign.
_AMOUNT_TEXT = str.maketrans(
    _PERSIAN_DIGITS + _ARABIC_INDIC_DIGITS + _THOUSANDS + _DECIMAL + "\u2212",
    "0123456789" * 2 + ",.-",
)
_CENTS = Decimal("0.01")
_SHOWN_CHARS = 40


def normalise_text(value: str) -> str:
    """Contact text with Arabic ي/ى/ك as Persian ی/ک and the ends trimmed of space and marks."""
    if _ARABIC_LETTER.search(value):  # several times faster than translate() on most values
        value = value.translate(_PERSIAN_LETTERS)
    return value.strip(_TRIMMED)


def fa_digits(value: object) -> str:
    """The value as text with Latin and Arabic-Indic digits written as Persian ۰-۹."""
    return _text(value, "fa_digits").translate(_TO_PERSIAN)


def en_digits(value: object) -> str:
    """The value as text with Persian and Arabic-Indic digits written as Latin 0-9."""
    return _text(value, "en_digits").translate(_TO_LATIN)


def jalali(value: object, fmt: str = "%Y/%m/%d", digits: Digits = "fa") -> str:
    """A date, datetime or date text (Jalali below year 1700) in the Jalali calendar, with
    jdatetime's strftime codes; aware times on Tehran's clock, naive ones taken as Tehran's."""
    if not isinstance(fmt, str):
        raise ValueError(f"jalali: the format must be text such as '%Y/%m/%d', not {fmt!r}")
    return _with_digits(_to_jalali(value, "jalali").strftime(fmt), digits, "jalali")


def weekday(value: object) -> str:
    """The Persian name of the date's weekday (شنبه ... جمعه); takes what ``jalali`` takes."""
    return str(_to_jalali(value, "weekday").jweekday())


def money(value: object, unit: str = "تومان", digits: Digits = "fa") -> str:
    """An amount with thousands separators and a unit (``۱۲۵٬۰۰۰ تومان``); a fraction is rounded
    half up to two places, trailing zeros dropped, so no part of a price disappears."""
    if not isinstance(unit, str):
        raise ValueError(f"money: the unit must be text, not {unit!r}")
    amount = _amount(value, "money")
    try:
        rounded = amount.quantize(_CENTS, rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:
        raise ValueError(f"money: {_shown(value)} is too large to show") from exc
    whole = rounded == rounded.to_integral_value()
    number = f"{abs(rounded):,.0f}" if whole else f"{abs(rounded):,.2f}".rstrip("0")
    if digits == "fa":
        number = number.translate({ord(","): _THOUSANDS, ord("."): _DECIMAL})
    number = _with_digits(number, digits, "money")
    if rounded < 0:  # after rounding, so -0.001 is shown as 0, not -0
        number = "-" + number
    return f"{number} {unit}" if unit else number


def toman(rials: object) -> int | Decimal:
    """Rials as tomans (one toman is ten rials): an int when exact, else a Decimal."""
    return _plain(_amount(rials, "toman") / 10)


def rial(tomans: object) -> int | Decimal:
    """Tomans as rials (one toman is ten rials): an int when exact, else a Decimal."""
    return _plain(_amount(tomans, "rial") * 10)


def template_globals(now: Clock) -> dict[str, Any]:
    """``today`` (jdatetime) and ``now`` (aware), Tehran time, read once: one day for a run."""
    moment = now()
    if moment.tzinfo is None:
        raise ValueError("the clock gave a naive datetime; it must give an aware one (UTC)")
    local = tehran(moment)
    return {"today": _from_gregorian(local.date()), "now": local}


FILTERS: dict[str, Callable[..., Any]] = {
    f.__name__: f for f in (jalali, weekday, fa_digits, en_digits, money, toman, rial)
}


def gregorian_date(year: int, month: int, day: int) -> dt.date:
    """The day a written date names: Jalali when the year is below 1700, else Gregorian."""
    if year < _JALALI_BEFORE:
        gregorian: dt.date = jdatetime.date(year, month, day).togregorian()
        return gregorian
    return dt.date(year, month, day)


def _text(value: object, name: str) -> str:
    if value is None:
        # Jinja would print "None" into the SMS; a missing value is the row's problem.
        raise ValueError(f"{name}: there is no value (None)")
    return str(value)


def _with_digits(text: str, digits: object, name: str) -> str:
    if digits == "fa":
        return text.translate(_TO_PERSIAN)
    if digits == "en":
        return text.translate(_TO_LATIN)
    raise ValueError(f"{name}: digits must be 'fa' or 'en', not {digits!r}")


def _shown(value: object) -> str:
    """The value as a message quotes it, short enough for one readable line."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _to_jalali(value: object, name: str) -> Any:
    """The value as a jdatetime date or datetime with Persian names, on Tehran's clock."""
    if value is None:
        raise ValueError(f"{name}: there is no date (None)")
    match = _DATE.fullmatch(value.strip().translate(_TO_LATIN)) if isinstance(value, str) else None
    if isinstance(value, str) and match is None:
        raise ValueError(
            f"{name}: {_shown(value)} is not a date; write it like 2026-03-21 or 1405/01/01"
        )
    try:
        if isinstance(value, jdatetime.date):  # or jdatetime.datetime, a subclass
            if getattr(value, "tzinfo", None) is not None:
                return _from_gregorian(value.togregorian())
            return value.aslocale(jdatetime.FA_LOCALE)
        if isinstance(value, dt.date):
            return _from_gregorian(value)
        if match is not None:
            return _from_gregorian(_gregorian(match))
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{name}: {_shown(value)} is not a real date ({exc})") from exc
    raise ValueError(f"{name}: {_shown(value)} is not a date")


def _from_gregorian(value: dt.date) -> Any:
    if isinstance(value, dt.datetime):
        local = tehran(value) if value.tzinfo is not None else value
        return jdatetime.datetime.fromgregorian(datetime=local, locale=jdatetime.FA_LOCALE)
    return jdatetime.date.fromgregorian(date=value, locale=jdatetime.FA_LOCALE)


def _gregorian(match: re.Match[str]) -> dt.date:
    day_of = gregorian_date(int(match["y"]), int(match["m"]), int(match["d"]))
    if match["H"] is None and match["tz"] is None:
        return day_of
    zone = _offset(match["tz"]) if match["tz"] else None
    micro = int((match["f"] or "0").ljust(6, "0"))
    clock = dt.time(int(match["H"] or 0), int(match["M"] or 0), int(match["S"] or 0), micro)
    return dt.datetime.combine(day_of, clock, tzinfo=zone)


def _offset(text: str) -> dt.timezone:
    if text.upper() == "Z":
        return dt.UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def _amount(value: object, name: str) -> Decimal:
    """A finite Decimal from a number or numeric text (Persian digits and separators allowed)."""
    if value is None:
        raise ValueError(f"{name}: there is no amount (None)")
    if isinstance(value, bool):  # an int to Python, never an amount
        raise ValueError(f"{name}: {value!r} is not an amount")
    if isinstance(value, int | Decimal):
        amount = Decimal(value)
    elif isinstance(value, float):
        amount = Decimal(repr(value))  # repr, so 0.1 stays 0.1 and not its binary expansion
    elif isinstance(value, str):
        cleaned = value.strip().translate(_AMOUNT_TEXT)
        if not (_PLAIN_NUMBER.fullmatch(cleaned) or _GROUPED_NUMBER.fullmatch(cleaned)):
            raise ValueError(
                f"{name}: {_shown(value)} is not an amount; write it like 125000 or 125,000"
            )
        amount = Decimal(cleaned.replace(",", ""))
    else:
        raise ValueError(f"{name}: {_shown(value)} is not an amount")
    if not amount.is_finite():
        raise ValueError(f"{name}: {_shown(value)} is not an amount")
    return amount


def _plain(amount: Decimal) -> int | Decimal:
    return int(amount) if amount == amount.to_integral_value() else amount
