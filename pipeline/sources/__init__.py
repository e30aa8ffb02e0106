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
_READERS: dict[str, Callable[[Path, str, int], Rows]] = {
    ".csv": delimited.read,
    ".tsv": delimited.read,
    ".txt": delimited.read,
    ".xlsx": excel.read,
    ".json": json.read_array,
    ".jsonl": json.read_lines,
    ".parquet": parquet.read,
}
SUPPORTED = tuple(_READERS)


def open_contacts(
    path: Path, phone_column: str, *, batch_size: int = 1_000, shown_path: str | None = None
) -> ContactSource:
    """Check the header (and what a format checks whole: UTF-8, short rows, JSON) now; the rows
    come as lazy batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    shown = str(path) if shown_path is None else shown_path
    reader = _READERS.get(path.suffix.lower())
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
    rows = reader(path, shown, max(batch_size, _READ_ROWS))
    try:
        rename = "Give every column its own name in the header row."
        return contact_source(path, rows, phone_column, shown, batch_size, rename=rename)
    except OSError as exc:
        raise InputError(
            f"{shown}: cannot be read ({exc.strerror or exc}). "
            "Check that the file exists and that this user may read it."
        ) from exc
