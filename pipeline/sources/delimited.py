"""CSV, TSV and TXT files, read by pandas' C parser as text, exactly as the file holds it."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import InputError
from pipeline.sources.common import FIRST_ROW_EMPTY, Rows, cell_text, check_utf8

_DELIMITER_NAMES = {",": "','", ";": "';'", "\t": "a tab", "|": "'|'"}  # ties: the first wins
_SNIFF_CHARS = 64 * 1024
_OPTIONS: dict[str, Any] = {
    "header": None,  # the header is record 0: an extra cell in row 1 is no silent index
    "dtype": str,
    "keep_default_na": False,
    "na_filter": False,  # every cell a str, a missing one ""
    "skip_blank_lines": False,  # blank rows count: row numbers stay true to the file
    "encoding": "utf-8-sig",
    "engine": "c",
}
# The report (report.safe_cell), like many exports, puts ' before a cell starting = + - @ so no
# spreadsheet runs it; none writes one into a CSV: dropped, a report read back gives `@Ali`.
_GUARDED = ("'=", "'+", "'-", "'@")


def read(path: Path, shown: str, read_rows: int) -> Rows:
    """The header, then the rows; a first pass checks it is UTF-8 and has no short rows."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            head = handle.read(_SNIFF_CHARS)
            delimiter = "\t" if path.suffix.lower() == ".tsv" else _sniff_delimiter(head)
            handle.seek(0)
            # filter(None, ...) drops the empty records of blank lines; the set holds few widths.
            widths = set(map(len, filter(None, csv.reader(handle, delimiter=delimiter))))
    except UnicodeDecodeError:
        check_utf8(path, shown)  # names the line of the first bad byte
        raise
    except csv.Error:  # a cell over the csv module's 128 KiB: pandas reads it, or says why
        check_utf8(path, shown)
        widths = set()
    if not head.strip():
        raise InputError(
            f"{shown}: the file is empty. It needs a header row naming the columns "
            "(such as mobile) and then one row per contact."
        )
    if not re.split(r"\r|\n", head, maxsplit=1)[0].strip():
        raise InputError(f"{shown}: {FIRST_ROW_EMPTY}")
    options = {"sep": delimiter, **_OPTIONS}
    width = 0
    try:
        header = [cell_text(cell) for cell in pd.read_csv(path, nrows=1, **options).iloc[0]]
        width = len(header)
        _check_short_rows(path, shown, options, header, widths)
        yield header
        with pd.read_csv(path, chunksize=read_rows, **options) as reader:
            for number, chunk in enumerate(reader):
                table = chunk.to_numpy(dtype=object)
                _drop_formula_guards(table)
                rows = table.tolist()
                yield from rows[1:] if number == 0 else rows  # record 0 is the header
    except pd.errors.ParserError as exc:
        raise InputError(_ragged_message(str(exc), shown, width, delimiter)) from exc


def _drop_formula_guards(table: Any) -> None:  # in place, in a chunk's array of str cells
    for column in range(table.shape[1]):
        cells = table[:, column].tolist()
        # One C-speed scan (~40 ns a cell); only a column that may hold a guard is looked into.
        if "\0'" in "\0" + "\0".join(cells):
            table[:, column] = [cell[1:] if cell.startswith(_GUARDED) else cell for cell in cells]


def _check_short_rows(
    path: Path, shown: str, options: dict[str, Any], header: list[str], widths: set[int]
) -> None:
    """Refuse the first row short of the named header cells: pandas would pad it silently."""
    names = [name.replace("\ufeff", "").strip() for name in header]
    named = max((i for i, name in enumerate(names, 1) if name), default=0)
    if min(widths, default=named) >= named:
        return
    delimiter = options["sep"]
    with path.open(encoding="utf-8-sig", newline="") as handle:
        records = csv.reader(handle, delimiter=delimiter)
        line, row = 1, 0  # where the next record starts; the header is record 0, as in pandas
        for cells in records:
            if len(cells) < named and "".join(cells).strip():
                break
            line, row = records.line_num + 1, row + 1
        else:
            return
    # What pandas refuses up to this row (an unclosed quote, read by csv as one long cell; a row
    # with too many cells) is named in pandas' words first.
    pd.read_csv(path, nrows=row + 1, **options)
    shown_delimiter = _DELIMITER_NAMES[delimiter]
    empty = shown_delimiter if delimiter == "\t" else f"the {shown_delimiter}"
    missing = ", ".join(f"'{name}'" for name in names[len(cells) : named])
    raise InputError(
        f"{shown}:{line}: row {row} has {len(cells)} cell{'' if len(cells) == 1 else 's'} but the "
        f"header has {len(header)} (the row ends before {missing}). Fix: give the row a cell for "
        f"every column (an empty cell is just {empty}); if Excel saved this file (it can leave "
        "out the empty cells at the end of rows), point contacts.path at the .xlsx workbook itself."
    )


def _ragged_message(error: str, shown: str, width: int, delimiter: str) -> str:
    # pandas' "line" counts records with the header as 1, so the data row is one less.
    ragged = re.search(r"Expected \d+ fields in line (\d+), saw (\d+)", error)
    if ragged:
        line, saw, named = int(ragged[1]), ragged[2], _DELIMITER_NAMES[delimiter]
        return (
            f"{shown}:{line}: row {line - 1} has {saw} cells but the header has {width}. "
            f"Remove the extra cells, or put the value that contains {named} "
            'in double quotes ("...").'
        )
    return (
        f"{shown}: cannot be read as delimited text ({error.strip()}). "
        'Check the quotes: a cell that starts with " must end with ".'
    )


def _sniff_delimiter(head: str) -> str:
    """The candidate most often in the header line (outside quotes); ',' if none."""
    counts = dict.fromkeys(_DELIMITER_NAMES, 0)
    quoted = False
    for char in head:
        if char == '"':
            quoted = not quoted
        elif char in "\r\n" and not quoted:
            break
        elif char in counts and not quoted:
            counts[char] += 1
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","
