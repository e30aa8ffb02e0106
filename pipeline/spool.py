"""Prepared rows kept on disk between the first pass and the sending pass."""

from __future__ import annotations

import contextlib
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import SpoolError
from pipeline.models import Row
from pipeline.private import private_folder


class Spool:
    """Batches of prepared rows written once and read back once, in order.

    The first pass must prepare every row before anything is sent (the preflight needs the
    cost, and every error must surface first). Reading them back from here instead of
    preparing again costs a fraction of reading, normalising and rendering twice. The file
    is anonymous (deleted by the OS when closed, also on a crash) and only this process
    reads what it wrote, so pickle is safe here.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        private_folder(folder)
        # Closed by batches() when read back, and by the OS if the run dies first. The file
        # is 0600 (tempfile's own mode): it holds every prepared row, numbers and texts.
        self._file = tempfile.TemporaryFile(dir=folder, prefix="pipeline-spool-")  # noqa: SIM115

    def write(self, rows: list[Row]) -> None:
        try:
            pickle.dump(rows, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        except OSError as exc:
            raise self._full(exc) from exc

    def batches(self) -> Iterator[list[Row]]:
        """Every batch written, in order; the file is closed (and gone) at the end.

        What is still buffered is written now, not when the sending pass starts reading, so
        a full disk is met before anything is sent.
        """
        try:
            self._file.seek(0)
        except OSError as exc:
            raise self._full(exc) from exc
        return self._read()

    def _full(self, exc: OSError) -> SpoolError:
        with contextlib.suppress(OSError):  # closing flushes again; the file goes either way
            self._file.close()  # and frees the space it took at once
        return SpoolError(
            f"{self._folder}: cannot keep the prepared rows there until sending starts "
            f"({exc.strerror or exc}). Fix: free space on that disk, or point journal.path at a "
            "folder on a disk with room (the rows are kept beside the journal)."
        )

    def _read(self) -> Iterator[list[Row]]:
        try:
            while True:
                try:
                    yield pickle.load(self._file)
                except EOFError:
                    return
        finally:
            self._file.close()
