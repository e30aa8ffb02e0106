"""The contacts sources: a file (a module per format) or a SQL query, read as text rows: every
cell by one rule (common.cell_text). A row's number is its place among the data rows (JSON
Lines: its line); blank rows count but are not yielded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.errors import InputError
from pipeline.sources import delimited, excel, json, parquet
from pipeline.sources.common import ContactSource, Rows, cell_text, contact_source
from pipeline.sources.sql import open_sql  # imports SQLAlchemy only when called: it is an extra

__all__ = ["SUPPORTED", "ContactSource", "cell_text", "open_contacts", "open_sql"]

_READ_ROWS = 10_000  # read in large chunks (pandas' cost per chunk is real), handed on in batches
_EXCEL = ".xlsx"  # opened by excel.open_table: a sheet to choose, a header row to find
_READERS: dict[str, Callable[[Path, str, int], Rows]] = {
    ".csv": delimited.read,
    ".tsv": delimited.read,
    ".txt": delimited.read,
    ".json": json.read_array,
    ".jsonl": json.read_lines,
    ".parquet": parquet.read,
}
SUPPORTED = (".csv", ".tsv", ".txt", _EXCEL, ".json", ".jsonl", ".parquet")  # as listed to people


def open_contacts(
    path: Path,
    phone_column: str,
    *,
    batch_size: int = 1_000,
    shown_path: str | None = None,
    sheet: str | int | None = None,
    header_row: int = 1,
) -> ContactSource:
    """Check the header (and what a format checks whole: UTF-8, short rows, JSON) now; the rows
    come as lazy batches. `sheet` and `header_row` (1-based) are for workbooks only."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    suffix = path.suffix.lower()
    if (sheet is not None or header_row != 1) and suffix != _EXCEL:
        raise ValueError("sheet and header_row are for .xlsx files (config.py checks this)")
    shown = str(path) if shown_path is None else shown_path
    if suffix not in SUPPORTED:
        raise InputError(
            f"{shown}: cannot read files of type '{path.suffix or '(no suffix)'}'. "
            f"Save the contacts as one of: {', '.join(SUPPORTED)}."
        )
    if not path.is_file():
        raise InputError(
            f"{shown}: file not found. Check contacts.path in config.yaml "
            "(a relative path starts from the config file's folder)."
        )
    rename = "Give every column its own name in the header row."
    try:
        hint = None
        if suffix == _EXCEL:
            table = excel.open_table(path, shown, sheet=sheet, header_row=header_row)
            rows, shown, hint = table.rows, table.shown, table.hint
        else:
            rows = _READERS[suffix](path, shown, max(batch_size, _READ_ROWS))
        return contact_source(
            path, rows, phone_column, shown, batch_size, rename=rename, table_hint=hint
        )
    except OSError as exc:
        raise InputError(
            f"{shown}: cannot be read ({exc.strerror or exc}). "
            "Check that the file exists and that this user may read it."
        ) from exc
