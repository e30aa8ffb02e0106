"""The contacts sources: a file, one module per format, or a SQL query, read as text rows.

Every cell is text exactly as the source holds it (leading zeros kept, no float phones):
numbers a format stores as numbers become their plain digits (9123456789.0 -> "9123456789"),
dates ISO text, empty cells "" (common.cell_text, the one rule every format shares). A row's
number is its 1-based position among the data rows (for JSON Lines, which has no header, its
line); blank rows are counted but not yielded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.errors import InputError
from pipeline.sources import delimited, excel, json, parquet
from pipeline.sources.common import ContactSource, Rows, cell_text, contact_source
from pipeline.sources.sql import open_sql  # imports SQLAlchemy only when called: it is an extra

__all__ = ["SUPPORTED", "ContactSource", "cell_text", "open_contacts", "open_sql"]

# Files are read in large chunks (pandas' cost per chunk is real) but handed on in small
# batches, so that a caller's work on one batch does not wait for the file's next chunk.
_READ_ROWS = 10_000
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
    """Open a contacts file, check it and its header now, and return its rows as lazy batches.

    What can be checked before the first row is handed on is: the whole of a delimited file is
    UTF-8 with no row short of cells, and every line of JSON Lines parses.
    """
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
        return contact_source(path, rows, phone_column, shown, batch_size)
    except OSError as exc:
        raise InputError(
            f"{shown}: cannot be read ({exc.strerror or exc}). "
            "Check that the file exists and that this user may read it."
        ) from exc
