"""What every source shares: ContactSource, the one cell-to-text rule, header checks, batching."""

from __future__ import annotations

import codecs
import contextlib
import datetime as dt
import difflib
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial, singledispatch
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import InputError
from pipeline.models import Contact, InvalidNumber
from pipeline.phones import normalise_mobile

# A reader's output: the raw header, then each row's cells, blank rows too (numbering is by place).
Rows = Generator[Sequence[str]]

_MAX_PLAIN_DIGITS = 40
SAVE_AS_UTF8 = (
    'It was probably saved by Excel as plain "CSV" in a Windows code page: open it in Excel '
    'and use File > Save As > "CSV UTF-8 (Comma delimited) (*.csv)", '
    "or convert it to UTF-8 in a text editor."
)
FIRST_ROW_EMPTY = (
    "the first row is empty. Put the header row (column names such as mobile) on the first line."
)


@dataclass(frozen=True, slots=True)
class ContactSource:
    """An opened contacts source: its header, checked, and its rows, still to be read."""

    path: Path | None  # the file; None for a database query
    columns: tuple[str, ...]  # header names, stripped of BOM and whitespace
    batches: Iterator[list[Contact]]  # read lazily; errors found on the way are InputError


def contact_source(
    path: Path | None,
    rows: Rows,
    phone_column: str,
    shown: str,
    batch_size: int,
    *,
    rename: str,
    table_hint: Callable[[str], str] | None = None,
) -> ContactSource:
    """Take the header from `rows` now and check it; the rest is read as the batches are.
    `table_hint(phone_column)`: where else the table may be (a workbook's other sheets or rows),
    asked only when the phone column is missing."""
    try:
        columns = column_names(next(rows), shown, rename=rename)
        if phone_column not in columns:  # the run stops: a few rows can say which column it is
            hint = table_hint(phone_column) if table_hint is not None else ""  # file still open
            sample = _first_rows(rows, _SAMPLE_ROWS)
            check_phone_column(phone_column, columns, shown, sample=sample, table_hint=hint)
    except BaseException:
        rows.close()  # a file or a database connection is not left open until collected
        raise
    return ContactSource(path, columns, contact_batches(rows, columns, batch_size))


def contact_batches(
    rows: Iterable[Sequence[str]], columns: tuple[str, ...], batch_size: int
) -> Iterator[list[Contact]]:  # a row of blank cells is counted, not yielded
    batch: list[Contact] = []
    width = len(columns)
    for row, cells in enumerate(rows, 1):
        if not "".join(cells).strip():
            continue
        padded = [*cells, *([""] * (width - len(cells)))] if len(cells) < width else cells
        batch.append(Contact(row, dict(zip(columns, padded, strict=False))))
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def column_names(raw: Sequence[str], shown: str, *, rename: str) -> tuple[str, ...]:
    """Clean header names; an unnamed column gets "column_N" so its cells are not lost."""
    names = [name.replace("\ufeff", "").strip() for name in raw]
    if not any(names):
        raise InputError(f"{shown}: {FIRST_ROW_EMPTY}")
    names = [name or f"column_{position}" for position, name in enumerate(names, 1)]
    duplicates = [name for name, count in Counter(names).items() if count > 1]
    if duplicates:
        listed = ", ".join(f"'{name}'" for name in duplicates)
        raise InputError(f"{shown}: the header names {listed} more than once. {rename}")
    return tuple(names)


def check_phone_column(
    phone_column: str,
    columns: tuple[str, ...],
    shown: str,
    *,
    sample: Sequence[Sequence[str]] = (),
    table_hint: str = "",
) -> None:
    """Refuse a missing phone column, suggesting the one meant: a near spelling, else a column
    named like a mobile column (Persian names too), else one whose `sample` values are mobiles."""
    if phone_column in columns:
        return
    listed = ", ".join(f"'{name}'" for name in columns)
    by_folded = {loose(name): name for name in reversed(columns)}  # the first of equals wins
    folded = loose(phone_column)
    hit = [folded] if folded in by_folded else difflib.get_close_matches(folded, [*by_folded], 1)
    problem = f"{shown}: there is no column '{phone_column}' for the phone numbers; "
    if hit:
        problem += f"the columns are {listed}. Did you mean '{by_folded[hit[0]]}'?"
    elif (named := named_like_mobile(columns)) is not None:
        problem += (
            f"the column «{named}» looks like one (set contacts.phone_column: "
            f"{yaml_scalar(named)}). The columns are {listed}."
        )
    elif (holding := _holding_mobiles(columns, sample)) is not None:
        problem += (
            f"the column «{holding}» holds what look like mobile numbers (set "
            f"contacts.phone_column: {yaml_scalar(holding)}). The columns are {listed}."
        )
    else:
        problem += f"the columns are {listed}."
    raise InputError(
        f"{problem} {table_hint + ' ' if table_hint else ''}"
        "Set contacts.phone_column in config.yaml to the column that holds the numbers."
    )


# What people name the mobile column, compared loosely (see `loose`). Exact names first; then
# a name holding one of the words (`Mobile (primary)`, `شماره همراه مشتری`).
_MOBILE_NAMES = (
    "mobile",
    "موبایل",
    "شمارهموبایل",
    "تلفنهمراه",
    "همراه",
    "شمارههمراه",
    "شماره",
    "mobilenumber",
    "mobileno",
    "phone",
    "phonenumber",
    "cell",
    "cellphone",
    "msisdn",
    "تلفن",
    "شمارهتلفن",
    "شمارهتماس",
)
_MOBILE_WORDS = ("mobile", "موبایل", "همراه", "phone", "cell")
_NAME_CHARS = 20  # longer is a sentence (a guide sheet's note), not a column's name
_LOOSE = str.maketrans({"ي": "ی", "ى": "ی", "ك": "ک", "ة": "ه", "ۀ": "ه"})
_NOT_LETTERS = re.compile(r"[\W_]+")  # spaces, ZWNJ and other marks, punctuation, '_'
_SAMPLE_ROWS = 20
_MOSTLY = 0.6  # of a sample's non-blank values that must be mobiles to suggest the column


def loose(name: str) -> str:
    """A name as people mean it: case, Arabic ي/ك for Persian ی/ک, ZWNJ and spaces ignored."""
    return _NOT_LETTERS.sub("", name.casefold().translate(_LOOSE))


def yaml_scalar(text: str) -> str:
    """`text` as config.yaml should hold it to read it back as that text: plain if it can
    be (`شماره موبایل`), else quoted (`1405`, `no`, `Mobile #2` would read otherwise)."""
    try:
        plain = yaml.safe_load(f"key: {text}") == {"key": text}
    except yaml.YAMLError:
        plain = False
    return text if plain else json.dumps(text, ensure_ascii=False)  # JSON's strings are YAML's


def named_like_mobile(columns: Sequence[str]) -> str | None:
    """The first column named as people name a mobile column, if any."""
    names = [loose(name) for name in columns]
    for known in _MOBILE_NAMES:
        if known in names:
            return columns[names.index(known)]
    holding = (
        column
        for column, name in zip(columns, names, strict=True)
        if len(name) <= _NAME_CHARS and any(word in name for word in _MOBILE_WORDS)
    )
    return next(holding, None)


def _holding_mobiles(columns: Sequence[str], sample: Sequence[Sequence[str]]) -> str | None:
    """The column whose sample values are mostly Iranian mobiles (the most such), if any."""
    best, best_count = None, 0
    for position, name in enumerate(columns):
        values = [row[position] for row in sample if position < len(row) and row[position].strip()]
        mobiles = sum(not isinstance(normalise_mobile(v), InvalidNumber) for v in values)
        if mobiles > best_count and mobiles >= _MOSTLY * len(values):
            best, best_count = name, mobiles
    return best


def _first_rows(rows: Rows, count: int) -> list[Sequence[str]]:
    """Up to `count` rows, fewer if a bad row stops the reader (that error is the next fix)."""
    taken: list[Sequence[str]] = []
    with contextlib.suppress(InputError):
        for cells in itertools.islice(rows, count):
            taken.append(cells)
    return taken


def check_utf8(path: Path, shown: str, fix: str = SAVE_AS_UTF8) -> None:
    """Refuse a file that is not UTF-8, naming the line: a guess would garble names."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines_before = 0
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                # exc.object is a held-back partial character (no newline) plus this block.
                line = lines_before + exc.object[: exc.start].count(b"\n") + 1
                raise InputError(
                    f"{shown}:{line}: the file is not UTF-8 text "
                    f"(byte 0x{exc.object[exc.start]:02X}). {fix}"
                ) from exc
            lines_before += block.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{shown}: the file is not UTF-8 text (it ends inside a character). {fix}"
            ) from exc


@singledispatch
def cell_text(value: object) -> str:
    """Every format's cells as text: leading zeros kept, 9123456789.0 -> "9123456789", ISO dates."""
    return str(value)


_json_text = partial(json.dumps, ensure_ascii=False, default=str)
_ONE_LINE_RULES: dict[type, Callable[[Any], str]] = {  # str and int keep the default
    type(None): lambda _: "",
    bool: lambda value: "true" if value else "false",
    bytes: lambda value: value.decode("utf-8", errors="replace"),
    dt.date: lambda value: value.isoformat(),
    dt.time: lambda value: value.isoformat(),
    Decimal: lambda value: decimal_text(value) if value.is_finite() else str(value),
    list: _json_text,
    tuple: _json_text,
    dict: _json_text,
}
for _kind, _rule in _ONE_LINE_RULES.items():
    cell_text.register(_kind, _rule)


@cell_text.register
def _float_text(value: float) -> str:
    if math.isnan(value):
        return ""  # a missing value in a float column (Parquet, pandas)
    return str(value) if math.isinf(value) else decimal_text(Decimal(repr(value)))


@cell_text.register
def _datetime_text(value: dt.datetime) -> str:
    if value.tzinfo is None and value.time() == dt.time():
        return value.date().isoformat()  # a date cell: Excel stores dates as midnight
    return value.isoformat()


def decimal_text(number: Decimal) -> str:
    """Plain notation, never "9.12345678E+9": digits are what a phone column needs."""
    if number.adjusted() > _MAX_PLAIN_DIGITS:
        return str(number)  # no phone is this long; spelling it out would only cost memory
    if number == number.to_integral_value():
        return str(int(number))
    return format(number, "f")
