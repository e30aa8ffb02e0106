"""Excel workbooks (.xlsx): one sheet (the first, or contacts.sheet), read row by row by openpyxl,
its column names in contacts.header_row (rows above it, a title or a note, are skipped)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.sources.common import Rows, cell_text, loose, named_like_mobile, yaml_scalar


@dataclass(frozen=True, slots=True)
class Table:
    """The chosen sheet, opened: its rows still to be read (the header first)."""

    shown: str  # the file as messages name it, with the sheet when the workbook has several
    hint: Callable[[str], str]  # for a missing phone column: where the table seems to be
    rows: Rows


def open_table(path: Path, shown: str, *, sheet: str | int | None, header_row: int) -> Table:
    """Open the workbook and choose the sheet now (a missing one: exit 2 listing the sheets)."""
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
        names = tuple(book.sheetnames)
        name = _sheet_name(book, names, sheet, shown)
    except BaseException:
        book.close()
        raise
    several = len(names) > 1
    where = f"{shown} (sheet «{name}»)" if several and name is not None else shown

    def hint(phone_column: str) -> str:  # asked before the rows are closed: the book is open
        listed = ", ".join(f"«{n}»" for n in names)
        said = f"Sheets in this workbook: {listed}. " if several else ""
        try:
            found = _find_header(book, names, name, header_row, phone_column)
        except Exception:  # only a hint: a sheet openpyxl cannot read must not hide the error
            found = None
        if found is None:
            return said + f"The column names are read from row {header_row} (contacts.header_row)."
        sheet_found, row, cells = found
        shown_cells = ", ".join(f"«{c}»" for c in cells if c)
        if sheet_found == name:
            return said + (
                f"Sheet row {row} looks like the header ({shown_cells}): "
                f"set contacts.header_row: {row}."
            )
        return said + (
            f"The sheet «{sheet_found}» looks like the table, its header in row {row} "
            f"({shown_cells}): set contacts.sheet: {yaml_scalar(sheet_found)}"
            + (f" and contacts.header_row: {row}." if row != 1 else ".")
        )

    return Table(where, hint, _rows(book, name, where, header_row))


_LOOK_ROWS = 30  # rows of each sheet looked at for a header when the phone column is missing


def _find_header(
    book: Any, names: Sequence[str], chosen: str | None, header_row: int, phone_column: str
) -> tuple[str, int, list[str]] | None:
    """The first row (the chosen sheet first, then the others) that names the phone column
    or a column named like a mobile one: (sheet, sheet row, its cells), or None."""
    wanted = loose(phone_column)
    for name in sorted(names, key=lambda n: n != chosen):  # stable: the chosen sheet first
        sheet = book[name]
        if not hasattr(sheet, "iter_rows"):  # a chart sheet
            continue
        with closing(sheet.iter_rows(max_row=_LOOK_ROWS, values_only=True)) as rows:
            for row, cells in enumerate(rows, 1):
                if name == chosen and row == header_row:
                    continue  # the header in use: the column hint covers it
                texts = [cell_text(cell).strip() for cell in cells]
                if sum(map(bool, texts)) < 2:  # a title or a note, not a table's header
                    continue
                if wanted in map(loose, texts) or named_like_mobile(texts) is not None:
                    return name, row, texts
    return None


def _sheet_name(book: Any, names: Sequence[str], sheet: str | int | None, shown: str) -> str | None:
    """The sheet to read: by name (exactly, else loosely: case, ی/ي, ZWNJ), by its 1-based
    number (also as text, `${SHEET}`), or the first worksheet; None for a book without one."""
    if sheet is None:
        return book.worksheets[0].title if book.worksheets else None
    listed = ", ".join(f"«{n}»" for n in names)
    if isinstance(sheet, str):
        if sheet in names:
            return sheet
        alike = [n for n in names if loose(n) == loose(sheet)]
        if len(alike) == 1:
            return alike[0]
        if not sheet.strip().isdigit():
            raise InputError(
                f"{shown}: contacts.sheet: there is no sheet «{sheet}» in this workbook; its "
                f"sheets are {listed}. Fix: set contacts.sheet to one of them (a name, or its "
                "number counting from 1)."
            )
        sheet = int(sheet)
    if not 1 <= sheet <= len(names):
        raise InputError(
            f"{shown}: contacts.sheet: there is no sheet {sheet}; the workbook has "
            f"{len(names)} sheet(s): {listed}. Fix: set contacts.sheet to a number from 1 to "
            f"{len(names)}, or to a sheet's name."
        )
    return names[sheet - 1]


def _rows(book: Any, name: str | None, shown: str, header_row: int) -> Rows:
    """The header (sheet row `header_row`), then the rows; a value right of the last named
    column is refused. Row numbers count the data rows (the report's `row`), from 1."""
    from openpyxl.utils import get_column_letter  # noqa: PLC0415

    # Closed first: a suspended iter_rows holds the sheet's zip member, which keeps the file
    # open after book.close() until the garbage collector finds it.
    with closing(book), closing(_sheet_rows(book, name, shown, header_row)) as cells_by_row:
        header = [cell_text(cell) for cell in next(cells_by_row, ())]
        while header and not header[-1].strip():  # formatted empty cells right of the data
            header.pop()
        if not header:
            raise InputError(f"{shown}: {_empty_header(header_row, name)}")
        yield header
        width = len(header)
        for row, cells in enumerate(cells_by_row, 1):
            texts = [cell_text(cell) for cell in cells]
            extra = [i for i, text in enumerate(texts[width:], width + 1) if text.strip()]
            if extra:
                raise InputError(
                    f"{shown}: row {row} (sheet row {row + header_row}) has a value in column "
                    f"{get_column_letter(extra[0])}, which has no name in the header row. "
                    f"Name that column in row {header_row} or delete the value."
                )
            yield texts[:width]


def _sheet_rows(book: Any, name: str | None, shown: str, header_row: int) -> Generator[Any]:
    """The sheet's cell values from `header_row` on; nothing for a book without a sheet."""
    if name is None:
        return
    sheet = book[name]
    if not hasattr(sheet, "iter_rows"):
        raise InputError(
            f"{shown}: the sheet «{name}» is a chart, not a table. "
            "Fix: set contacts.sheet to the sheet that holds the contacts."
        )
    sheet.reset_dimensions()  # the size stored in the file can be stale
    yield from sheet.iter_rows(min_row=header_row, values_only=True)


def _empty_header(header_row: int, name: str | None) -> str:
    if header_row == 1:
        return (
            "the sheet is empty or its first row is empty. Put the header row (column names "
            "such as mobile) in row 1, or set contacts.header_row to the row that holds them."
        )
    return (
        f"row {header_row} of the sheet «{name}» (contacts.header_row) is empty or past the "
        "end of the sheet. Fix: set contacts.header_row to the row that holds the column names."
    )
