"""The plan's rows kept on disk, written once and read back once, in order, by the next pass."""

from __future__ import annotations

import contextlib
import dataclasses
import operator
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import SpoolError
from pipeline.models import Row
from pipeline.private import private_folder

# A Row as a tuple in Row's field order (Row(*fields) makes it again): pickling slotted
# dataclasses costs ~3 x as much (10 against 4 us a row, dump and load, timeit on 1,000 rows).
_fields_of = operator.attrgetter(*(f.name for f in dataclasses.fields(Row)))


class Spool:
    """Batches of rows in an anonymous file (0600, gone when closed, also on a crash); only
    this process reads what it wrote, so pickle is safe. `folder` None: the temporary folder."""

    def __init__(self, folder: Path | None) -> None:
        if folder is None:
            self._folder = Path(tempfile.gettempdir())
            self._fix = "free space on that disk, or point TMPDIR at a folder with room"
        else:
            self._folder = folder
            self._fix = (
                "free space on that disk, or point journal.path at a folder on a disk with "
                "room (the rows are kept beside the journal)"
            )
            private_folder(folder)
        self._file = tempfile.TemporaryFile(dir=self._folder, prefix="pipeline-spool-")  # noqa: SIM115

    def write(self, rows: list[Row]) -> None:
        fields: list[tuple[Any, ...]] = [_fields_of(r) for r in rows]
        try:
            pickle.dump(fields, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        except OSError as exc:
            raise self._full(exc) from exc

    def batches(self) -> Iterator[list[Row]]:
        """Every batch written, in order, then the file is gone. The seek writes what is still
        buffered now, so a full disk is met before anything is sent."""
        try:
            self._file.seek(0)
        except OSError as exc:
            raise self._full(exc) from exc
        return self._read()

    def close(self) -> None:
        self._file.close()

    def _full(self, exc: OSError) -> SpoolError:
        with contextlib.suppress(OSError):  # closing flushes again; the file goes either way
            self._file.close()  # and frees the space it took at once
        return SpoolError(
            f"{self._folder}: cannot keep the prepared rows there until sending starts "
            f"({exc.strerror or exc}). Fix: {self._fix}."
        )

    def _read(self) -> Iterator[list[Row]]:
        try:
            while True:
                try:
                    fields: list[tuple[Any, ...]] = pickle.load(self._file)
                except EOFError:
                    return
                yield [Row(*f) for f in fields]
        finally:
            self._file.close()
