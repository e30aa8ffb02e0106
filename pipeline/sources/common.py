"""What every source shares: ContactSource, the one cell-to-text rule, header checks, batching."""

from __future__ import annotations

import codecs
import datetime as dt
import difflib
import json
import math
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial, singledispatch
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.models import Contact

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
    path: Path | None, rows: Rows, phone_column: str, shown: str, batch_size: int, *, rename: str
) -> ContactSource:
    """Take the header from `rows` now and check it; the rest is read as the batches are."""
    try:
        columns = column_names(next(rows), shown, rename=rename)
        check_phone_column(phone_column, columns, shown)
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


def check_phone_column(phone_column: str, columns: tuple[str, ...], shown: str) -> None:
    if phone_column in columns:
        return
    listed = ", ".join(f"'{name}'" for name in columns)
    by_folded = {name.casefold(): name for name in columns}
    folded = phone_column.casefold()
    hit = [folded] if folded in by_folded else difflib.get_close_matches(folded, [*by_folded], 1)
    guess = f" Did you mean '{by_folded[hit[0]]}'?" if hit else ""
    raise InputError(
        f"{shown}: there is no column '{phone_column}' for the phone numbers; "
        f"the columns are {listed}.{guess} "
        "Set contacts.phone_column in config.yaml to the column that holds the numbers."
    )


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
