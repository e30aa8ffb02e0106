"""Parquet files (pyarrow), read a batch of rows at a time in flat memory."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import InputError
from pipeline.sources.common import Rows, cell_text

_BUFFER = 1024 * 1024


def read(path: Path, shown: str, read_rows: int) -> Rows:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]  # noqa: PLC0415
    except ImportError as exc:
        raise InputError(
            f"{shown}: reading .parquet files needs the pyarrow package, which is not installed. "
            "Install it (pip install pyarrow) or save the contacts as .csv."
        ) from exc
    opened = False
    try:
        # pyarrow's defaults read a whole row group's column chunks at once, and a writer may put
        # the whole list in one group: unbuffered reads through a small buffer keep memory flat.
        with pq.ParquetFile(path, pre_buffer=False, buffer_size=_BUFFER) as parquet:
            names = [str(name) for name in parquet.schema_arrow.names]
            opened = True
            yield names
            for batch in parquet.iter_batches(batch_size=read_rows):
                columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
                for cells in zip(*columns, strict=True):
                    yield [cell_text(cell) for cell in cells]
    # pyarrow's ArrowInvalid is a ValueError; a value Python cannot hold is an OverflowError.
    except (OSError, ValueError, OverflowError) as exc:
        kind = f"{type(exc).__name__}: " if opened else ""
        raise InputError(
            f"{shown}: cannot be read as a Parquet file ({kind}{exc}). "
            "Write it again, or save the contacts as .csv."
        ) from exc
