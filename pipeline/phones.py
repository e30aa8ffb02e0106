"""Normalise a phone cell to an Iranian mobile number `09XXXXXXXXX`, or say why it is not one."""

from __future__ import annotations

import functools
import re

import phonenumbers
from phonenumbers import PhoneNumberType

from pipeline.models import InvalidNumber

# Persian and Arabic-Indic digits as ASCII; "٫" is the Arabic decimal point of an Excel float.
_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩٫", "0123456789" * 2 + ".")
# What people and spreadsheets put in a number that carries no digit: every Unicode space,
# invisible marks (ZWNJ, bidi marks, BOM), dashes, brackets, separators, quotes, kashida.
_INVISIBLE = (
    "\u00ad\u061c\u180e\u200b\u200c\u200d\u200e\u200f"
    "\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff"
)
_DASHES = "-_\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\ufe58\ufe63\uff0d"
_PUNCTUATION = "()[]{}（）/\\|,،٬'\"‘’‚‛“”„«»`\u0640"
# str.isspace() is False for every code point above U+3000, so this range finds them all.
_SPACES = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
_NOISE = _SPACES + _INVISIBLE + _DASHES + _PUNCTUATION
_TABLE = {**_DIGITS, **str.maketrans("", "", _NOISE)}
# A blank cell as spreadsheets and pandas write it in text ("n/a" arrives as "na").
_BLANK_MARKERS = frozenset({"nan", "nat", "none", "null", "na", "<na>"})
# Excel's 9.123456789E+09; dashes are noise, so 9.12E-09 reads as 9.12E09.
_SCIENTIFIC = re.compile(r"([0-9]+)(?:\.([0-9]*))?[eE]\+?([0-9]{1,3})")
_NATIONAL_LENGTH = 10  # 9XXXXXXXXX, the number without its trunk 0 or country code
_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
# phonenumbers' IR mobile pattern fixes at most five national digits, then takes any five: one
# cached parse per prefix answers for all (tested against a full parse of every prefix).
_DECIDING_PREFIX = 5


@functools.cache
def _is_mobile_prefix(prefix: str) -> bool:
    """Whether ten-digit national numbers starting with `prefix` are Iranian mobiles."""
    number = phonenumbers.parse("0" + prefix.ljust(_NATIONAL_LENGTH, "0"), "IR")
    return bool(
        phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) in _MOBILE_TYPES
    )


def normalise_mobile(raw: str) -> str | InvalidNumber:
    """`raw` as `09XXXXXXXXX` (from 09…, 9…, +98…, 0098…, 98…, any digits, noise and Excel's
    leftovers), or an InvalidNumber whose reason a person can act on; never raises for a str."""
    # Most cells of a clean list are already 09XXXXXXXXX: answer those without translating.
    text = raw if raw.isascii() and raw.isdigit() else raw.translate(_TABLE)
    if text.isascii() and text.isdigit():
        if len(text) == 11 and text[:2] == "09" and _is_mobile_prefix(text[1:6]):
            return text
        return _from_digits(text, international=False)
    return _from_text(text)


# In free text, digit groups joined by noise or dots are one number; anything else ends it.
_DIGIT_RUN = re.compile(f"[0-9]+(?:[{re.escape(_NOISE + '.')}]+[0-9]+)*")
_DIGIT_GROUP = re.compile("[0-9]+")
_SCIENTIFIC_IN_TEXT = re.compile(r"(?<![0-9])([0-9]+)(?:\.[0-9]*)?[eE]\+?([0-9]{1,3})(?![0-9])")
_MOST_DIGITS = 15  # 0098, a trunk 0 as in "+98 (0)912...", and the ten national digits


def find_mobiles(text: str) -> list[str] | InvalidNumber:
    """Every distinct mobile number in free text, in order; else why not, about the longest run.

    A number is an Excel float or a run of digit groups joined by noise (`(0912) 123-4567`); in
    a run every stretch of whole groups holding 10-15 digits is tried, so a date next to a
    number, or two numbers side by side, still read right.
    """
    bare = text.strip()
    if bare.isdigit():  # the common line: the number alone, in any script's digits
        whole = normalise_mobile(bare)
        if isinstance(whole, str):
            return [whole]
    if not text.isascii():
        text = text.translate(_DIGITS)
    found: dict[str, None] = {}  # insertion-ordered, one entry per number
    reason = InvalidNumber("no digits")
    longest = 0

    def scientific(match: re.Match[str]) -> str:
        nonlocal reason, longest
        implied = len(match[1]) + int(match[2])  # the digits of the number it stands for
        if implied < _NATIONAL_LENGTH:
            return match[0]  # not a phone-sized float ("2E3"): read as it stands
        number = normalise_mobile(match[0])
        if isinstance(number, str):
            found[number] = None
        elif implied > longest:
            reason, longest = number, implied
        return " x "  # ends the runs on either side: its digits are read once, here

    if "e" in text or "E" in text:
        text = _SCIENTIFIC_IN_TEXT.sub(scientific, text)
    for run in _DIGIT_RUN.finditer(text):
        spans = [group.span() for group in _DIGIT_GROUP.finditer(run[0])]
        before = len(found)
        for first, (start, _end) in enumerate(spans):
            digits = 0
            for group_start, end in spans[first:]:
                digits += end - group_start
                if digits > _MOST_DIGITS:
                    break
                if digits >= _NATIONAL_LENGTH:
                    number = normalise_mobile(run[0][start:end])
                    if isinstance(number, str):
                        found[number] = None
        run_digits = sum(end - start for start, end in spans)
        if len(found) == before and run_digits > longest:
            longest = run_digits
            run_number = normalise_mobile(run[0])
            reason = run_number if isinstance(run_number, InvalidNumber) else reason
    return list(found) if found else reason


def _from_text(text: str) -> str | InvalidNumber:
    if not text or text.lower() in _BLANK_MARKERS:
        return InvalidNumber("empty")
    international = text.startswith("+")
    if international:
        text = text[1:]
        # No country code starts with 0, so "+0912..." is a stray plus on a national number.
        international = not text.startswith("0")
    if "e" in text or "E" in text:
        match = _SCIENTIFIC.fullmatch(text)
        if match is not None:
            return _from_scientific(text, match, international)
    if "." in text:  # `9123456789.0` is a float's whole part; any other dot separates digits
        head, _, tail = text.partition(".")
        whole_float = "." not in tail and head and tail and tail.strip("0") == ""
        text = head if whole_float else text.replace(".", "")
    if not text:
        return InvalidNumber("not a number: no digits")
    if text.isascii() and text.isdigit():
        return _from_digits(text, international)
    if any(char.isalpha() for char in text):
        return InvalidNumber("not a number: contains letters")
    odd = next(char for char in text if not ("0" <= char <= "9"))
    if odd.isprintable():
        return InvalidNumber(f"not a number: contains '{odd}'")
    return InvalidNumber(f"not a number: contains the invisible character U+{ord(odd):04X}")


def _from_scientific(text: str, match: re.Match[str], international: bool) -> str | InvalidNumber:
    """Accept scientific notation only when it spells out every digit of a whole number."""
    whole, fraction, exponent = match.groups()
    mantissa = whole + (fraction or "")
    point = len(whole) + int(exponent)
    if point > len(mantissa):
        # 9.12E+09 lost seven digits: padding them with zeros would message a stranger.
        return InvalidNumber(
            f"Excel lost digits: {text} keeps only {len(mantissa)} of the number's {point} digits;"
            " format the phone column as Text in Excel and enter the numbers again"
        )
    if mantissa[point:].strip("0"):
        return InvalidNumber(f"not a number: {text} is not a whole number")
    return _from_digits(mantissa[:point], international)


def _from_digits(digits: str, international: bool) -> str | InvalidNumber:
    # Strip the country code and trunk 0; what is left must start with 9 (or be too short).
    if international:
        if not digits.startswith("98"):
            return _foreign(digits)
        national = digits[2:]
    elif digits.startswith("0098"):
        national = digits[4:]
    elif digits.startswith("00"):
        return _foreign(digits[2:])
    elif digits.startswith("98") and len(digits) > _NATIONAL_LENGTH:
        # Ten digits starting 98 are a national (non-mobile) number; longer ones carry +98.
        national = digits[2:]
    else:
        national = digits
    if national.startswith("0"):  # the trunk 0, alone or after +98 as in "+98 (0)912..."
        national = national[1:]
    if national[:1] == "0":
        return InvalidNumber("not a mobile number: too many zeros before the 9")
    if national[:1] not in ("", "9"):
        return InvalidNumber(
            f"not a mobile number: 0{national[:3]}… is a landline or service number"
            " (Iranian mobiles start with 09)"
        )
    if len(national) != _NATIONAL_LENGTH:
        given, expected = len(digits), len(digits) - len(national) + _NATIONAL_LENGTH
        word = "short" if given < expected else "long"
        hint = "; two numbers in one cell?" if given >= 2 * _NATIONAL_LENGTH else ""
        unit = "digit" if given == 1 else "digits"
        return InvalidNumber(f"too {word}: {given} {unit}, {expected} expected{hint}")
    if not _is_mobile_prefix(national[:_DECIDING_PREFIX]):
        return InvalidNumber(
            f"not an Iranian mobile number: prefix 0{national[:_DECIDING_PREFIX]}…"
            " is not assigned to any mobile operator"
        )
    return "0" + national


def _foreign(after_plus: str) -> InvalidNumber:
    if not after_plus:
        return InvalidNumber("too short: no digits after the international prefix")
    return InvalidNumber(
        f"not an Iranian number: +{after_plus[:4]}… (Iranian numbers start with +98)"
    )


_HEADER_MOST_DIGITS = 6  # "mobile1,name2" is a header; 7 digits already look like a number


def is_header_line(line: str) -> bool:
    """A CSV header, as the first non-comment line of a file of numbers may be: no readable
    mobile number, and too few digits (fewer than 7, in any script) to be a number mistyped,
    so a first line that is a broken number is never skipped unnoticed."""
    if isinstance(find_mobiles(line), list):
        return False
    if _SCIENTIFIC_IN_TEXT.search(line.translate(_DIGITS)):  # 9.12E+09: Excel ate a number
        return False
    return sum(char.isdigit() for char in line) <= _HEADER_MOST_DIGITS
