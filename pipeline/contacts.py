"""Read the contacts source (CSV, TSV, Excel, JSON, JSON Lines, Parquet) as batches of text rows."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import difflib
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal
from functools import singledispatch
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import InputError
from pipeline.models import Contact

SUPPORTED = (".csv", ".tsv", ".txt", ".xlsx", ".json", ".jsonl", ".parquet")
DELIMITERS = (",", ";", "\t", "|")

_SNIFF_CHARS = 64 * 1024
_MAX_PLAIN_DIGITS = 40
_VALIDATE_BYTES = 1024 * 1024
_PARQUET_BUFFER = 1024 * 1024
_CENSUS_CHUNK = 100_000
_READ_ROWS = 10_000
_SAVE_AS_UTF8 = (
    'It was probably saved by Excel as plain "CSV" in a Windows code page: open it in Excel '
    'and use File > Save As > "CSV UTF-8 (Comma delimited) (*.csv)", '
    "or convert it to UTF-8 in a text editor."
)
_JSON_AS_UTF8 = "JSON must be UTF-8: save the file again as UTF-8 in a text editor."

# (row number, cells in header order); blank rows included so numbering stays true to the file.
Rows = Iterator[tuple[int, Sequence[str]]]


@dataclass(frozen=True, slots=True)
class Census:
    """A whole source read once at C speed, before anything is sent.

    It meets every error the real read would meet (so a broken row stops the run before the
    first request, not halfway) and counts the rows, which bounds what the run can cost. That
    lets the sending pass prepare rows as it streams them, instead of a first pass preparing
    every row in Python and keeping them on disk until the preflight has run.
    """

    rows: int  # the data rows the real read yields (not blank); never fewer: an upper bound
    values: frozenset[str]  # the stripped, distinct values of the column asked for
    rereads: bool = True  # the sending pass reads the file again (not a JSON array in memory)


# Census of the column at this header position (None: only count); None when this source
# cannot be counted without preparing every row in Python (the gate then does its first pass).
CensusReader = Callable[[int | None], Census | None]
# What a reader returns: the raw header, the rows, and the census of the same source.
Opened = tuple[list[str], Rows, CensusReader]


def _no_census(_column: int | None) -> None:
    return None


@dataclass(frozen=True, slots=True)
class ContactSource:
    """An opened contacts source: its header, checked, and its rows, still to be read."""

    path: Path | None  # the file; None for a database query (sql_source)
    columns: tuple[str, ...]  # header names, stripped of BOM and whitespace
    batches: Iterator[list[Contact]]  # read lazily; errors found on the way are InputError
    census: CensusReader = _no_census


def open_contacts(
    path: Path,
    phone_column: str,
    *,
    batch_size: int = 1_000,
    shown_path: str | None = None,
) -> ContactSource:
    """Open a contacts file, check its header now, and return its rows as lazy batches.

    Every cell is text exactly as the file holds it (leading zeros kept, no float phones):
    numbers that a format stores as numbers become their plain decimal text
    (9123456789.0 -> "9123456789"), dates ISO text, empty cells "". A row's number is its
    1-based position among the data rows (the header is not a row; for JSON Lines, which has
    no header, the line number). Blank rows are counted but not yielded.

    CSV text must be UTF-8 (a BOM is fine). A file in another encoding (such as Windows-1256,
    which Excel's plain "CSV" uses on Persian Windows) is refused with a fix rather than
    guessed at, since a wrong guess would send garbled names. The whole file is checked for
    this before anything is returned, so an encoding problem can never stop a run halfway.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    shown = str(path) if shown_path is None else shown_path
    suffix = path.suffix.lower()
    reader = _READERS.get(suffix)
    if reader is None:
        raise InputError(
            f"{shown}: cannot read files of type '{path.suffix or '(no suffix)'}'. "
            f"Save the contacts as one of: {', '.join(SUPPORTED)}."
        )
    if not path.is_file():
        raise InputError(
            f"{shown}: file not found. Check contacts.path in config.yaml "
            "(a relative path starts from the config file's folder)."
        )
    try:
        # Files are read in large chunks (pandas' cost per chunk is real) but handed on in
        # small batches: a run prepares a batch before sending any of it, so a small one
        # keeps requests leaving while the next rows are prepared.
        raw_header, rows, census = reader(path, shown, max(batch_size, _READ_ROWS))
    except OSError as exc:
        raise InputError(
            f"{shown}: cannot be read ({exc.strerror or exc}). "
            "Check that the file exists and that this user may read it."
        ) from exc
    columns = column_names(raw_header, shown)
    check_phone_column(phone_column, columns, shown)
    return ContactSource(path, columns, contact_batches(rows, columns, batch_size), census)


def contact_batches(
    rows: Rows, columns: tuple[str, ...], batch_size: int
) -> Iterator[list[Contact]]:
    """Rows as Contacts in lists of `batch_size`; a row of blank cells is counted, not yielded."""
    batch: list[Contact] = []
    width = len(columns)
    for row, cells in rows:
        if not "".join(cells).strip():
            continue
        padded = [*cells, *([""] * (width - len(cells)))] if len(cells) < width else cells
        batch.append(Contact(row, dict(zip(columns, padded, strict=False))))
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def column_names(
    raw: Sequence[str],
    shown: str,
    *,
    rename: str = "Give every column its own name in the header row.",
) -> tuple[str, ...]:
    """Clean header names; an unnamed column gets "column_N" so its cells are not lost."""
    names = [name.replace("\ufeff", "").strip() for name in raw]
    if not any(names):
        raise InputError(
            f"{shown}: the first row is empty. "
            "Put the header row (column names such as mobile) on the first line."
        )
    names = [name or f"column_{position}" for position, name in enumerate(names, 1)]
    duplicates = [name for name, count in Counter(names).items() if count > 1]
    if duplicates:
        listed = ", ".join(f"'{name}'" for name in duplicates)
        raise InputError(f"{shown}: the header names {listed} more than once. {rename}")
    return tuple(names)


def check_phone_column(phone_column: str, columns: tuple[str, ...], shown: str) -> None:
    """Refuse a source without the phone column, suggesting the closest name it has."""
    if phone_column in columns:
        return
    listed = ", ".join(f"'{name}'" for name in columns)
    hint = _closest(phone_column, columns)
    guess = f" Did you mean '{hint}'?" if hint else ""
    raise InputError(
        f"{shown}: there is no column '{phone_column}' for the phone numbers; "
        f"the columns are {listed}.{guess} "
        "Set contacts.phone_column in config.yaml to the column that holds the numbers."
    )


def _closest(word: str, choices: Iterable[str]) -> str | None:
    by_folded = {choice.casefold(): choice for choice in choices}
    if word.casefold() in by_folded:
        return by_folded[word.casefold()]
    found = difflib.get_close_matches(word.casefold(), list(by_folded), n=1, cutoff=0.6)
    return by_folded[found[0]] if found else None


@singledispatch
def cell_text(value: object) -> str:
    """A cell as text, without float damage: 9123456789.0 -> "9123456789", dates in ISO."""
    return str(value)


@cell_text.register(type(None))
def _none_text(value: None) -> str:
    return ""


@cell_text.register
def _str_text(value: str) -> str:
    return value


@cell_text.register
def _bool_text(value: bool) -> str:
    return "true" if value else "false"


@cell_text.register
def _int_text(value: int) -> str:
    return str(value)


@cell_text.register
def _float_text(value: float) -> str:
    if math.isnan(value):
        return ""  # a missing value in a float column (Parquet, pandas)
    return str(value) if math.isinf(value) else _decimal_text(Decimal(repr(value)))


@cell_text.register
def _decimal_number_text(value: Decimal) -> str:
    return _decimal_text(value) if value.is_finite() else str(value)


@cell_text.register
def _datetime_text(value: dt.datetime) -> str:
    if value.tzinfo is None and value.time() == dt.time():
        return value.date().isoformat()  # a date cell: Excel stores dates as midnight
    return value.isoformat()


@cell_text.register(dt.date)
@cell_text.register(dt.time)
def _iso_text(value: dt.date | dt.time) -> str:
    return value.isoformat()


@cell_text.register
def _bytes_text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


@cell_text.register(list)
@cell_text.register(tuple)
@cell_text.register(dict)
def _nested_text(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _decimal_text(number: Decimal) -> str:
    # Plain notation, never "9.12345678E+9": the digits are what a phone column needs.
    if number.adjusted() > _MAX_PLAIN_DIGITS:
        return str(number)  # no phone is this long; spelling it out would only cost memory
    if number == number.to_integral_value():
        return str(int(number))
    return format(number, "f")


# --- CSV / TSV / TXT -------------------------------------------------------------------------


def _read_delimited(path: Path, shown: str, batch_size: int) -> Opened:
    _check_utf8(path, shown)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        head = handle.read(_SNIFF_CHARS)
    if not head.strip():
        raise InputError(
            f"{shown}: the file is empty. It needs a header row naming the columns "
            "(such as mobile) and then one row per contact."
        )
    if not re.split(r"\r|\n", head, maxsplit=1)[0].strip():
        raise InputError(
            f"{shown}: the first row is empty. "
            "Put the header row (column names such as mobile) on the first line."
        )
    delimiter = "\t" if path.suffix.lower() == ".tsv" else _sniff_delimiter(head)
    options: dict[str, Any] = {
        "sep": delimiter,
        # header=None: the header is taken as the first record, so a first data row with an
        # extra cell is an error instead of silently becoming pandas' index.
        "header": None,
        "dtype": str,
        "keep_default_na": False,
        "na_filter": False,
        "skip_blank_lines": False,
        "encoding": "utf-8-sig",
        "engine": "c",
    }
    try:
        first = pd.read_csv(path, nrows=1, **options)
    except pd.errors.ParserError as exc:
        raise InputError(_ragged_message(str(exc), shown, 0, delimiter)) from exc
    header = [cell_text(cell) for cell in first.iloc[0]]
    width = len(header)
    _check_short_rows(path, shown, options, header)

    def census(column: int | None) -> Census:
        return _delimited_census(path, shown, options, width, column)

    return header, _delimited_rows(path, shown, options, width, batch_size), census


def _delimited_census(
    path: Path, shown: str, options: dict[str, Any], width: int, column: int | None
) -> Census:
    """Every record parsed with the very options of the real read (so the same errors), kept
    only as counts. Reading only some columns (usecols) would be faster but lets a row with an
    extra cell through, which the real read refuses."""
    rows = 0
    values: set[str] = set()
    try:
        with pd.read_csv(path, chunksize=_CENSUS_CHUNK, **options) as reader:
            for number, records in enumerate(reader):
                chunk = records.iloc[1:] if number == 0 else records  # record 0: the header
                # Rows of blank cells are skipped by the real read: not counted here either.
                filled = chunk.apply(lambda cells: cells.str.strip() != "").any(axis=1)
                rows += int(filled.sum())
                if column is not None and column < chunk.shape[1]:
                    cells = chunk.iloc[:, column][filled].unique()
                    values.update(_unguarded(cell).strip() for cell in cells)
    except pd.errors.ParserError as exc:
        raise InputError(_ragged_message(str(exc), shown, width, options["sep"])) from exc
    return Census(rows, frozenset(values))


def _delimited_rows(
    path: Path, shown: str, options: dict[str, Any], width: int, batch_size: int
) -> Rows:
    row = -1  # the header is record 0
    try:
        with pd.read_csv(path, chunksize=batch_size, **options) as reader:
            for chunk in reader:
                # na_filter=False makes every cell a str, a missing one "", so no check per cell.
                table = chunk.to_numpy(dtype=object)
                _drop_formula_guards(table)
                for cells in table.tolist():
                    row += 1
                    if row:
                        yield row, cells
    except pd.errors.ParserError as exc:
        raise InputError(_ragged_message(str(exc), shown, width, options["sep"])) from exc


# The pipeline's report and attention files (report.safe_cell), like many exports, put an
# apostrophe before a cell that starts with = + - or @, so that a spreadsheet does not run it as
# a formula. A spreadsheet hides an apostrophe typed there and never writes it into a CSV, so
# one found before these characters is such a guard, not the contact's data: it is dropped,
# and an attention file fed back as contacts gives the original cells (`@Ali`, `-20%`). This
# holds for every delimited file, since a renamed attention file or another tool's guarded
# export deserves the same; a real value such as `'@x` is vanishingly rare. Excel, JSON and
# Parquet cells are taken as they are: nothing writes such guards into them.
_GUARDED = ("'=", "'+", "'-", "'@")


def _unguarded(cell: str) -> str:
    return cell[1:] if cell.startswith(_GUARDED) else cell


def _drop_formula_guards(table: Any) -> None:
    """Undo the formula guard in a chunk's object array of str cells, in place."""
    for column in range(table.shape[1]):
        cells = table[:, column].tolist()
        # One C-speed scan of the column (the common one has no cell starting with "'", and
        # costs ~40 ns a cell); only a column that may hold a guard is looked at cell by cell.
        if "\0'" in "\0" + "\0".join(cells):
            table[:, column] = [_unguarded(cell) for cell in cells]


def _check_short_rows(path: Path, shown: str, options: dict[str, Any], header: list[str]) -> None:
    """Refuse a row with fewer cells than the header, naming the first one.

    pandas pads such a row with empty cells without a word, so a row that lost a cell would be
    sent with blanks where its values belong (or its values under the wrong names). The csv
    module, which splits records as pandas does, counts the cells of every record: at C speed
    while every record is wide enough, with a loop in Python only to find the row at fault.
    A blank row (nothing but spaces or delimiters) is skipped as before, whatever its width, and
    cells missing only where the header's last cells have no name (a header line that ends with
    a delimiter) are fine. A row with too many cells is left to pandas, which names it.
    """
    width = len(header)
    names = [name.replace("\ufeff", "").strip() for name in header]
    named = max((i for i, name in enumerate(names, 1) if name), default=0)
    delimiter = options["sep"]
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            # filter(None, ...) drops the empty records of blank lines; the set holds few widths.
            widths = set(map(len, filter(None, csv.reader(handle, delimiter=delimiter))))
            if all(cells >= named for cells in widths):
                return
            handle.seek(0)
            short = _first_short_row(csv.reader(handle, delimiter=delimiter), named)
    except csv.Error:  # a cell over the csv module's 128 KiB: pandas reads it, or says why
        return
    if short is None:
        return
    line, row, cells = short
    try:
        # What pandas refuses up to this row (an unclosed quote, which the csv module reads as
        # one long cell; a row with too many cells above) is named in pandas' words first.
        pd.read_csv(path, nrows=row + 1, **options)
    except pd.errors.ParserError as exc:
        raise InputError(_ragged_message(str(exc), shown, width, delimiter)) from exc
    shown_delimiter = _DELIMITER_NAMES[delimiter]
    empty = shown_delimiter if delimiter == "\t" else f"the {shown_delimiter}"
    missing = ", ".join(f"'{name}'" for name in names[cells:named])
    raise InputError(
        f"{shown}:{line}: row {row} has {cells} cell{'' if cells == 1 else 's'} but the header "
        f"has {width} (the row ends before {missing}). Fix: give the row a cell for every "
        f"column (an empty cell is just {empty}); if Excel saved this file (it can leave out "
        "the empty cells at the end of rows), point contacts.path at the .xlsx workbook itself."
    )


def _first_short_row(records: Any, named: int) -> tuple[int, int, int] | None:
    """(line, row, cells) of the first record that is not blank and has fewer than `named`
    cells; the header is record 0, a blank line an empty record, as pandas numbers them."""
    line = 1  # the line the next record starts on
    for row, cells in enumerate(records):
        if len(cells) < named and "".join(cells).strip():
            return line, row, len(cells)
        line = records.line_num + 1
    return None


_DELIMITER_NAMES = {"\t": "a tab", ",": "','", ";": "';'", "|": "'|'"}


def _ragged_message(error: str, shown: str, width: int, delimiter: str) -> str:
    # pandas' "line" counts records with the header as 1, so the data row is one less.
    ragged = re.search(r"Expected \d+ fields in line (\d+), saw (\d+)", error)
    if ragged:
        line, saw = int(ragged[1]), ragged[2]
        shown_delimiter = _DELIMITER_NAMES[delimiter]
        return (
            f"{shown}:{line}: row {line - 1} has {saw} cells but the header has {width}. "
            f"Remove the extra cells, or put the value that contains {shown_delimiter} "
            'in double quotes ("...").'
        )
    return (
        f"{shown}: cannot be read as delimited text ({error.strip()}). "
        'Check the quotes: a cell that starts with " must end with ".'
    )


def _check_utf8(path: Path, shown: str, fix: str = _SAVE_AS_UTF8) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines_before = 0
    with path.open("rb") as handle:
        while block := handle.read(_VALIDATE_BYTES):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                # exc.object is the decoder's held-back partial character plus this block;
                # a partial character never holds a newline, so counting in it is exact.
                line = lines_before + exc.object[: exc.start].count(b"\n") + 1
                bad = exc.object[exc.start]
                raise InputError(
                    f"{shown}:{line}: the file is not UTF-8 text (byte 0x{bad:02X}). {fix}"
                ) from exc
            lines_before += block.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{shown}: the file is not UTF-8 text (it ends inside a character). {fix}"
            ) from exc


def _sniff_delimiter(head: str) -> str:
    """The candidate that appears most often (outside quotes) in the header line; ',' if none."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in head:
        if char == '"':
            quoted = not quoted
        elif char in "\r\n" and not quoted:
            break
        elif char in counts and not quoted:
            counts[char] += 1
    best = max(DELIMITERS, key=lambda candidate: counts[candidate])
    return best if counts[best] else ","


# --- Excel -------------------------------------------------------------------------------------


def _read_xlsx(path: Path, shown: str, batch_size: int) -> Opened:
    del batch_size  # openpyxl reads row by row; there is no chunk to size
    with closing(_xlsx_cells(path, shown)) as cells_by_row:
        first = next(cells_by_row, ())
    header = [cell_text(cell) for cell in first]
    while header and not header[-1].strip():
        # Formatting left on empty cells right of the data widens the sheet; those are not columns.
        header.pop()
    if not header:
        raise InputError(
            f"{shown}: the first sheet is empty or its first row is empty. "
            "Put the header row (column names such as mobile) in row 1 of the first sheet."
        )
    return header, _xlsx_rows(path, shown, len(header)), _no_census


def _xlsx_rows(path: Path, shown: str, width: int) -> Rows:
    with closing(_xlsx_cells(path, shown)) as cells_by_row:
        next(cells_by_row, None)
        for row, cells in enumerate(cells_by_row, 1):
            texts = [cell_text(cell) for cell in cells]
            extra = [i for i, text in enumerate(texts[width:], width + 1) if text.strip()]
            if extra:
                from openpyxl.utils import get_column_letter  # noqa: PLC0415 - see _xlsx_cells

                raise InputError(
                    f"{shown}: row {row} (sheet row {row + 1}) has a value in column "
                    f"{get_column_letter(extra[0])}, which has no name in the header row. "
                    "Name that column in row 1 or delete the value."
                )
            yield row, texts[:width]


def _xlsx_cells(path: Path, shown: str) -> Generator[tuple[object, ...]]:
    # Imported here: openpyxl costs 0.15 s at start-up, paid only by runs that read Excel.
    import openpyxl  # noqa: PLC0415

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zip, XML and key errors for a damaged file
        raise InputError(
            f"{shown}: cannot be read as an Excel workbook ({type(exc).__name__}: {exc}). "
            "Open it in Excel and save it again as .xlsx."
        ) from exc
    try:
        if not book.worksheets:
            return
        sheet = book.worksheets[0]
        # The size stored in the file can be stale; read the rows that are really there.
        sheet.reset_dimensions()
        yield from sheet.iter_rows(values_only=True)
    finally:
        book.close()


# --- JSON and JSON Lines -----------------------------------------------------------------------

_EXAMPLE_OBJECT = '{"mobile": "09121234567", "name": "..."}'


class _DuplicateKeyError(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _number_literal(text: str) -> str:
    return _decimal_text(Decimal(text))


def _parsed(text: str, shown: str, line: int | None = None) -> Any:
    """Parse JSON with numbers kept as text from the start: no float ever holds a phone."""
    try:
        return json.loads(
            text,
            parse_int=str,
            parse_float=_number_literal,
            parse_constant=str,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        at = exc.lineno if line is None else line
        raise InputError(
            f"{shown}:{at}: not valid JSON ({exc.msg}, column {exc.colno}). "
            "Fix the JSON there (a text editor or a JSON checker shows the spot)."
        ) from exc
    except _DuplicateKeyError as exc:
        where = shown if line is None else f"{shown}:{line}"
        raise InputError(f"{where}: an object has the key '{exc.key}' twice. Keep one.") from exc
    except RecursionError as exc:  # json's C parser counts its depth against Python's limit
        raise InputError(_too_deep(shown if line is None else f"{shown}:{line}")) from exc


def _too_deep(where: str) -> str:
    return (
        f"{where}: lists or objects are nested inside each other too deeply to read "
        "(hundreds of levels). Fix: write each contact as an object of plain values, "
        f"like {_EXAMPLE_OBJECT}."
    )


def _record(item: object, where: str) -> dict[str, str]:
    if not isinstance(item, dict):
        raise InputError(
            f"{where} is {_json_kind(item)}, not an object. "
            f"Make every contact an object like {_EXAMPLE_OBJECT}."
        )
    try:
        record = {
            key.replace("\ufeff", "").strip(): cell_text(value) for key, value in item.items()
        }
    except RecursionError as exc:  # a nested value just within the parser's depth, written back
        raise InputError(_too_deep(where)) from exc
    if len(record) < len(item):
        twice = Counter(key.replace("\ufeff", "").strip() for key in item).most_common(1)[0][0]
        raise InputError(
            f"{where} has the key '{twice}' more than once (spaces around keys do not count). "
            "Keep one."
        )
    return record


def _json_kind(item: object) -> str:
    if isinstance(item, dict):
        return "an object"
    if isinstance(item, list):
        return "a list"
    return "null" if item is None else "a single value"


def _keys_in_order(records: Iterable[dict[str, str]]) -> list[str]:
    return list(dict.fromkeys(key for record in records for key in record))


def _read_json(path: Path, shown: str, batch_size: int) -> Opened:
    del batch_size  # a JSON array is one value: it is read whole
    _check_utf8(path, shown, _JSON_AS_UTF8)
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise InputError(
            f"{shown}: the file is empty. Write the contacts as [{_EXAMPLE_OBJECT}, ...]."
        )
    data = _parsed(text, shown)
    if not isinstance(data, list):
        raise InputError(
            f"{shown}: the top level is {_json_kind(data)}, not a list. "
            f"Write the contacts as a list of objects: [{_EXAMPLE_OBJECT}, ...]."
        )
    records = [_record(item, f"{shown}: item {index}") for index, item in enumerate(data, 1)]
    header = _keys_in_order(records)
    if not header:
        raise InputError(
            f"{shown}: no contact has any field. Write the contacts as [{_EXAMPLE_OBJECT}, ...]."
        )

    def census(column: int | None) -> Census:
        key = header[column] if column is not None else None
        filled = [r for r in records if "".join(r.values()).strip()]
        values = {r.get(key, "").strip() for r in filled} if key is not None else set()
        return Census(len(filled), frozenset(values), rereads=False)

    return header, _aligned(enumerate(records, 1), header), census


def _read_jsonl(path: Path, shown: str, batch_size: int) -> Opened:
    del batch_size  # read line by line, so memory stays bounded whatever the size
    # One full pass now: the header is every key in the file, and a broken line stops the run
    # before anything is sent rather than halfway through.
    _check_utf8(path, shown, _JSON_AS_UTF8)
    header = _keys_in_order(record for _, record in _jsonl_records(path, shown))
    if not header:
        raise InputError(
            f"{shown}: the file has no contacts. Write one object per line, like {_EXAMPLE_OBJECT}."
        )
    # Its rows are counted only by parsing every line again in Python: the gate's first pass.
    return header, _aligned(_jsonl_records(path, shown), header), _no_census


def _aligned(records: Iterable[tuple[int, dict[str, str]]], header: list[str]) -> Rows:
    for row, record in records:
        yield row, [record.get(key, "") for key in header]


def _jsonl_records(path: Path, shown: str) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(encoding="utf-8-sig") as handle:
        for line, text in enumerate(handle, 1):
            if text.strip():
                yield line, _record(_parsed(text, shown, line), f"{shown}:{line}: the line")
            else:
                yield line, {}


# --- Parquet -----------------------------------------------------------------------------------


def _read_parquet(path: Path, shown: str, batch_size: int) -> Opened:
    try:
        # Optional: only a Parquet source needs it, and it is a large install.
        import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]  # noqa: PLC0415
    except ImportError as exc:
        raise InputError(
            f"{shown}: reading .parquet files needs the pyarrow package, which is not installed. "
            "Install it (pip install pyarrow) or save the contacts as .csv."
        ) from exc
    try:
        with pq.ParquetFile(path) as parquet:
            names = [str(name) for name in parquet.schema_arrow.names]
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(
            f"{shown}: cannot be read as a Parquet file ({exc}). "
            "Write it again, or save the contacts as .csv."
        ) from exc

    def census(column: int | None) -> Census:
        return _parquet_census(pq, path, shown, column)

    return names, _parquet_rows(pq, path, shown, batch_size), census


def _parquet_census(pq: Any, path: Path, shown: str, column: int | None) -> Census:
    """Every batch decoded by pyarrow (a damaged page fails now) and converted to Python
    values as the real read converts them (a value Python cannot hold fails now), counted by
    pyarrow."""
    import pyarrow.compute as pc  # type: ignore[import-not-found, unused-ignore]  # noqa: PLC0415

    rows = 0
    values: set[str] = set()
    try:
        with pq.ParquetFile(path, pre_buffer=False, buffer_size=_PARQUET_BUFFER) as parquet:
            for batch in parquet.iter_batches(batch_size=_CENSUS_CHUNK):
                # A row is blank, as an empty CSV row is, when every cell reads as blank text.
                filled = None
                for i in range(batch.num_columns):
                    # Converted as the real read converts them, so a value Python cannot hold
                    # (a timestamp beyond year 9999) fails now, before anything is sent.
                    batch.column(i).to_pylist()
                    valid = _parquet_filled(pc, batch.column(i))
                    filled = valid if filled is None else pc.or_(filled, valid)
                if filled is None:
                    continue
                rows += pc.sum(filled).as_py() or 0
                if column is not None:
                    cells = pc.filter(batch.column(column), filled).unique().to_pylist()
                    values.update(cell_text(cell).strip() for cell in cells)
    except (OSError, ValueError, OverflowError) as exc:
        raise InputError(_parquet_unreadable(shown, exc)) from exc
    return Census(rows, frozenset(values))


# What str.strip() removes: str.isspace() is False for every code point above U+3000.
_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())


def _parquet_filled(pc: Any, column: Any) -> Any:
    """Which cells of a column the real read does not see as blank (cell_text(...).strip()).

    Exact for null, NaN (a float column's missing value, which pandas or pyarrow may store as
    NaN rather than null) and whitespace-only text, so the census counts the rows the report
    will hold and the progress ends at 100 %. Other cells count as filled: an upper bound,
    as the census needs (fewer rows than the real read would stop the run).
    """
    import pyarrow as pa  # type: ignore[import-not-found, unused-ignore]  # noqa: PLC0415

    if pa.types.is_dictionary(column.type):  # a pandas category column
        column = column.dictionary_decode()
    kind = column.type
    valid = pc.is_valid(column)
    # Kleene logic: a null cell is False (not filled), never null, when the columns are or-ed.
    if pa.types.is_floating(kind):
        return pc.and_kleene(valid, pc.invert(pc.is_nan(column)))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = pc.utf8_trim(column, characters=_WHITESPACE)
        return pc.and_kleene(valid, pc.not_equal(pc.utf8_length(text), 0))
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return pc.and_kleene(valid, pc.not_equal(pc.binary_length(column), 0))
    return valid


def _parquet_unreadable(shown: str, exc: Exception) -> str:
    return (
        f"{shown}: cannot be read as a Parquet file ({type(exc).__name__}: {exc}). "
        "Write it again, or save the contacts as .csv."
    )


def _parquet_rows(pq: Any, path: Path, shown: str, batch_size: int) -> Rows:
    try:
        yield from _parquet_cells(pq, path, batch_size)
    except (OSError, ValueError, OverflowError) as exc:
        raise InputError(_parquet_unreadable(shown, exc)) from exc


def _parquet_cells(pq: Any, path: Path, batch_size: int) -> Rows:
    row = 0
    # pyarrow's defaults read a whole row group's column chunks at once, and a writer may put
    # the whole list in one group (pyarrow's own default is up to 1Mi rows): unbuffered reads
    # through a small buffer keep memory flat whatever the group size.
    with pq.ParquetFile(path, pre_buffer=False, buffer_size=_PARQUET_BUFFER) as parquet:
        for batch in parquet.iter_batches(batch_size=batch_size):
            columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            for cells in zip(*columns, strict=True):
                row += 1
                yield row, [cell_text(cell) for cell in cells]


_READERS: dict[str, Callable[[Path, str, int], Opened]] = {
    ".csv": _read_delimited,
    ".tsv": _read_delimited,
    ".txt": _read_delimited,
    ".xlsx": _read_xlsx,
    ".json": _read_json,
    ".jsonl": _read_jsonl,
    ".parquet": _read_parquet,
}
