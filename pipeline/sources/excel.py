"""Excel workbooks (.xlsx): the first sheet, read row by row by openpyxl."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import closing
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.sources.common import Rows, cell_text


def read(path: Path, shown: str, _read_rows: int) -> Rows:  # openpyxl reads row by row
    """The header (row 1), then the rows; a value right of the last named column is refused."""
    # Imported here: openpyxl costs 0.15 s at start-up, paid only by runs that read Excel.
    import openpyxl  # noqa: PLC0415
    from openpyxl.utils import get_column_letter  # noqa: PLC0415

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zip, XML and key errors for a damaged file
        raise InputError(
            f"{shown}: cannot be read as an Excel workbook ({type(exc).__name__}: {exc}). "
            "Open it in Excel and save it again as .xlsx."
        ) from exc
    with closing(_first_sheet(book)) as cells_by_row:
        header = [cell_text(cell) for cell in next(cells_by_row, ())]
        while header and not header[-1].strip():  # formatted empty cells right of the data
            header.pop()
        if not header:
            raise InputError(
                f"{shown}: the first sheet is empty or its first row is empty. "
                "Put the header row (column names such as mobile) in row 1 of the first sheet."
            )
        yield header
        width = len(header)
        for row, cells in enumerate(cells_by_row, 1):
            texts = [cell_text(cell) for cell in cells]
            extra = [i for i, text in enumerate(texts[width:], width + 1) if text.strip()]
            if extra:
                raise InputError(
                    f"{shown}: row {row} (sheet row {row + 1}) has a value in column "
                    f"{get_column_letter(extra[0])}, which has no name in the header row. "
                    "Name that column in row 1 or delete the value."
                )
            yield texts[:width]


def _first_sheet(book: Any) -> Generator[tuple[object, ...]]:
    try:
        if book.worksheets:
            sheet = book.worksheets[0]
            sheet.reset_dimensions()  # the size stored in the file can be stale
            yield from sheet.iter_rows(values_only=True)
    finally:
        book.close()
