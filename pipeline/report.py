"""The per-recipient CSV report (every input row once, in input order) and the run's tallies."""

from __future__ import annotations

import csv
import os
import re
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO, cast

from pipeline.models import Row, Status
from pipeline.private import open_private, private_folder

COLUMNS = (
    "row",
    "phone",
    "number",
    "status",
    "error",
    "message_id",
    "campaign_id",
    "pages",
    "attempts",
    "text",
    "delivery",
    "delivery_code",
)

# A spreadsheet treats a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = frozenset("=+-@\t\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[\d\s().-]+")


def safe_cell(value: str) -> str:
    """Quote a cell a spreadsheet would run as a formula; a plain number (+98912...) stays."""
    # The common cell starts with a letter or digit: one index and one set lookup decide it.
    if value and value[0] in _FORMULA_START and not _plain_number(value):
        return "'" + value
    return value


def _plain_number(value: str) -> bool:
    # isdecimal() is exactly regex \d (category Nd): the usual +98912... skips the regex.
    if value[0] in "+-" and value[1:].isdecimal():
        return True
    return _PLAIN_NUMBER.fullmatch(value) is not None


class ReportWriter:
    """Writes rows in input order as soon as every earlier row is settled.

    A row still waiting for the provider (status None) holds back the rows after it, so memory
    holds only the window in flight. The file is written as `<name>.<pid>.partial` and renamed
    when complete: a report that exists is never half-written. A failed write (a full disk)
    raises nothing: it goes to `error`, nothing more is written and the unfinished files are
    removed when closed, while the tallies go on (the run reads `error` and stops).
    """

    def __init__(
        self, path: Path, *, columns: tuple[str, ...] = (), attention: bool = False
    ) -> None:
        self.path = path
        private_folder(path.parent)
        self._partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        self._file, self._csv = _open_csv(self._partial, COLUMNS)
        self._attention: _Attention | None = (
            _Attention(attention_file(path), columns) if attention else None
        )
        self._waiting: deque[Row] = deque()
        self.counts: Counter[Status] = Counter()
        self.pages_sent = 0
        self.pages_total = 0  # of rows sent or a dry run would send (not invalid, already_sent)
        self.error: OSError | None = None  # the first failed write, naming its file

    def add(self, row: Row) -> None:
        self._waiting.append(row)

    def flush_ready(self) -> None:
        """Write every row at the front whose status is settled."""
        waiting = self._waiting
        ready = []
        while waiting and waiting[0].status is not None:
            ready.append(waiting.popleft())
        if ready:
            self._write(ready)

    def close(self, *, complete: bool = True) -> None:
        """Write what is left and put the files in place; with `complete=False` (the run
        failed part-way) leave them under their `.partial` names. After a failed write
        (`error`) the unfinished files are removed instead."""
        self._write_remaining()  # all settled by now, unless a bug: never lose a row over it
        self._attempt(self._partial, self._file.close)  # flushes: a full disk may say so now
        # The attention file first: if it cannot be put in place, neither is the report, and
        # the message that says the report cannot be written is true.
        attention = self._attention
        if attention is not None:
            self._attempt(
                attention.partial, attention.close, complete=complete and self.error is None
            )
        if complete and self.error is None:
            self._attempt(self._partial, os.replace, self._partial, self.path)
        if self.error is not None:
            # Cut short at an unknown row: no use to anyone, and it takes the space a rerun
            # needs (the journal keeps what was sent; the rerun writes a whole report).
            self._attempt(self._partial, self._partial.unlink, missing_ok=True)
            if attention is not None:
                self._attempt(attention.partial, attention.discard)

    @property
    def partial_path(self) -> Path:
        """Where the report is written until complete (left if the run fails, unless writing it
        is what failed)."""
        return self._partial

    def discard(self) -> None:
        """Close and remove the unfinished files (a run that stopped before any request)."""
        self._attempt(self._partial, self._file.close)
        self._partial.unlink(missing_ok=True)
        if self._attention is not None:
            self._attempt(self._attention.partial, self._attention.discard)

    @property
    def attention_path(self) -> Path | None:
        """The file of rows that need attention, when there were any."""
        return self._attention.path if self._attention and self._attention.rows else None

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file.closed:
            return
        # Failed part-way: what is known is written, under the `.partial` name.
        self.close(complete=exc is None)

    def _attempt(self, path: Path, action: Callable[..., object], *args: Any, **kw: Any) -> None:
        """Do `action` on the report's file at `path`; a failure goes to `error`, naming the
        file (a failed rename names where it was to go: usually the folder is the cause)."""
        try:
            action(*args, **kw)
        except OSError as exc:
            if self.error is None:  # the first says why; what follows is the same cause
                where = exc.filename2 or path
                self.error = OSError(exc.errno, exc.strerror, str(where))

    def _write_remaining(self) -> None:
        """Every row still waiting, in order; one never settled may have gone out: unknown."""
        for row in self._waiting:
            if row.status is None:
                row.status = Status.UNKNOWN
                row.error = "the run stopped with an error before this row was settled"
        rows = list(self._waiting)
        self._waiting.clear()
        self._write(rows)

    def _write(self, rows: list[Row]) -> None:
        """The rows' lines to the file and the attention file; their tallies."""
        lines = []
        attention = []
        for row in rows:
            status = row.status or Status.PENDING
            self.counts[status] += 1
            if status is Status.SENT:
                self.pages_sent += row.pages
            if status is Status.SENT or status is Status.DRY_RUN:
                self.pages_total += row.pages
            if status in ATTENTION:
                attention.append(row)
            lines.append(
                (
                    row.row,
                    safe_cell(row.phone),
                    row.number,
                    _VALUE[status],
                    safe_cell(row.error),
                    row.message_id,
                    row.campaign_id,
                    row.pages or "",
                    row.attempts,
                    safe_cell(row.text),
                    row.delivery,
                    row.delivery_code,
                )
            )
        if self.error is None:
            self._attempt(self._partial, self._csv.writerows, lines)
        if attention and self._attention is not None and self.error is None:
            self._attempt(self._attention.partial, self._attention.write, attention)


def attention_file(report: Path) -> Path:
    """Where the rows that need attention go, beside the report: `<report>-attention.csv`."""
    return report.with_name(f"{report.stem}-attention{report.suffix}")


# csv formats a StrEnum through its Python-level __str__ (2 us a row): its value, looked up.
_VALUE = {status: status.value for status in Status}

# Rows an operator has to look at: fix the data or decide, then feed the file back in.
ATTENTION = frozenset({Status.FAILED, Status.INVALID, Status.UNKNOWN})


class _Attention:
    """`<report>-attention.csv`: the original contacts columns plus status and error."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path = path
        self.rows = 0
        self._columns = columns
        self._partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        self._file: TextIO | None = None
        self._csv: Any = None  # the csv module's writer, once the first row comes

    @property
    def partial(self) -> Path:
        """Where the rows are written until the run is complete."""
        return self._partial

    def write(self, rows: list[Row]) -> None:
        if self._file is None:
            self._file, self._csv = _open_csv(self._partial, (*self._columns, "status", "error"))
        columns = self._columns
        self._csv.writerows(
            [
                (
                    *[safe_cell(row.values.get(c, "")) for c in columns],
                    row.status,
                    safe_cell(row.error),  # guarded as in the report: it may quote a cell
                )
                for row in rows
            ]
        )
        self.rows += len(rows)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._partial.unlink(missing_ok=True)

    def close(self, *, complete: bool = True) -> None:
        """Close the file; put it in place only when the run is complete.

        A complete run with nothing to attend to removes the file an earlier run left at
        the same path (a report.path without {started}): it would list rows that are fine now.
        """
        if self._file is not None:
            self._file.close()
            if complete:
                os.replace(self._partial, self.path)
        elif complete:
            self.path.unlink(missing_ok=True)


def _open_csv(path: Path, header: tuple[str, ...]) -> tuple[TextIO, Any]:
    """A new 0600 CSV file (customers' numbers) with the BOM Excel needs to show Persian, and
    a csv writer on it with `header` written."""
    # The BOM by hand: encoding="utf-8-sig" would encode every write through a Python codec.
    file = cast(TextIO, open_private(path, "w", encoding="utf-8", newline=""))
    file.write("\ufeff")
    writer = csv.writer(file)
    writer.writerow(header)
    return file, writer
