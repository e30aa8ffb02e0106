"""The per-recipient CSV report (every input row once, in input order) and the run's tallies."""

from __future__ import annotations

import csv
import os
import re
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from pipeline.models import Row, Status
from pipeline.private import open_private, private_folder
from pipeline.summary_page import Facts

if TYPE_CHECKING:
    from pipeline.report_xlsx import XlsxReport

COLUMNS = (
    "row", "phone", "number", "status", "error", "message_id", "campaign_id", "pages", "attempts",
    "text", "delivery", "delivery_code",
)  # fmt: skip

# A spreadsheet treats a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = frozenset("=+-@\t\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[\d\s().-]+")


def safe_cell(value: str) -> str:
    """Quote a cell a spreadsheet would run as a formula; a plain number (+98912...) stays."""
    # Most cells start with a letter or digit; isdecimal() (regex \d) spares +98912... the regex.
    if (
        value
        and value[0] in _FORMULA_START
        and not (value[0] in "+-" and value[1:].isdecimal())
        and _PLAIN_NUMBER.fullmatch(value) is None
    ):
        return "'" + value
    return value


class ReportWriter:
    """Writes rows in input order once every earlier row is settled, to `<name>.<pid>.partial`,
    renamed when complete: a report that exists is whole. A failed write raises nothing: it is
    kept in `error` (the run stops), the tallies go on and nothing more is written. The page's
    facts gather as rows are written; the .xlsx (`xlsx`) gets the rows too, finished later."""

    def __init__(
        self,
        path: Path,
        *,
        columns: tuple[str, ...] = (),
        attention: bool = False,
        xlsx: bool = False,
    ) -> None:
        self.path = path
        private_folder(path.parent)
        self.partial_path = path.with_name(f"{path.name}.{os.getpid()}.partial")  # till complete
        self._file, self._csv = _open_csv(self.partial_path, COLUMNS)
        self._attention: _Attention | None = (
            _Attention(attention_file(path), columns) if attention else None
        )
        self._waiting: deque[Row] = deque()
        self.facts = Facts()
        self.counts: Counter[Status] = self.facts.counts
        self.xlsx: XlsxReport | None = None
        if xlsx:  # openpyxl costs a run that does not write a workbook 0.2 s to import
            from pipeline.report_xlsx import XlsxReport  # noqa: PLC0415

            self.xlsx = XlsxReport(xlsx_file(path), COLUMNS)
        self.xlsx_error: OSError | None = None  # the workbook only is lost, not the run
        self.pages_sent = 0
        self.pages_total = 0  # of rows sent or a dry run would send (not invalid, already_sent)
        self.error: OSError | None = None  # the first failed write, naming its file

    def add(self, row: Row) -> None:
        self._waiting.append(row)

    def flush_ready(self) -> None:
        """Write every row at the front whose status is settled."""
        waiting, ready = self._waiting, []
        while waiting and waiting[0].status is not None:
            ready.append(waiting.popleft())
        if ready:
            self._write(ready)

    def close(self, *, complete: bool = True) -> None:
        """Write the rest; the files in place, `.partial` if not `complete`, gone on failure."""
        rows = list(self._waiting)
        self._waiting.clear()
        for row in rows:  # all settled by now, unless a bug: never lose a row over it
            if row.status is None:  # it may have gone out
                row.status = Status.UNKNOWN
                row.error = "the run stopped with an error before this row was settled"
        self._write(rows)
        self._attempt(self.partial_path, self._file.close)  # flushes: a full disk may say so now
        attention = self._attention  # first: if it cannot be put in place, neither is the report
        if attention is not None:
            self._attempt(
                attention.partial, attention.close, complete=complete and self.error is None
            )
        if complete and self.error is None:
            self._attempt(self.partial_path, os.replace, self.partial_path, self.path)
        if self.error is not None:
            # Cut short: no use to anyone, and it takes the space a rerun needs.
            self._attempt(self.partial_path, self.partial_path.unlink, missing_ok=True)
            if attention is not None:
                self._attempt(attention.partial, attention.discard)

    def discard(self) -> None:
        """Close and remove the unfinished files (a run that stopped before any request)."""
        self._attempt(self.partial_path, self._file.close)
        self.partial_path.unlink(missing_ok=True)
        if self._attention is not None:
            self._attempt(self._attention.partial, self._attention.discard)

    @property
    def attention_path(self) -> Path | None:  # when there were any
        return self._attention.path if self._attention and self._attention.rows else None

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if not self._file.closed:  # failed part-way: what is known is written, as `.partial`
            self.close(complete=exc_type is None)

    def _attempt(self, path: Path, action: Callable[..., object], *args: Any, **kw: Any) -> None:
        """Do `action`; a failure goes to `error`, naming `path` (a rename's: its target)."""
        try:
            action(*args, **kw)
        except OSError as exc:
            if self.error is None:  # the first says why; what follows is the same cause
                where = exc.filename2 or path
                self.error = OSError(exc.errno, exc.strerror, str(where))

    def _write(self, rows: list[Row]) -> None:
        lines, attention, add = [], [], self.facts.add
        for row in rows:
            status = row.status or Status.PENDING
            add(row, status)
            if status is Status.SENT:
                self.pages_sent += row.pages
            if status is Status.SENT or status is Status.DRY_RUN:
                self.pages_total += row.pages
            if status in ATTENTION:
                attention.append(row)
            lines.append((
                row.row, safe_cell(row.phone), row.number, _VALUE[status], safe_cell(row.error),
                row.message_id, row.campaign_id, row.pages or "", row.attempts,
                safe_cell(row.text), row.delivery, row.delivery_code,
            ))  # fmt: skip
        if self.error is None:
            self._attempt(self.partial_path, self._csv.writerows, lines)
        if attention and self._attention is not None and self.error is None:
            self._attempt(self._attention.partial, self._attention.write, attention)
        if self.xlsx is not None and self.error is None:
            self._to_xlsx(rows)

    def _to_xlsx(self, rows: list[Row]) -> None:
        """The rows as they are, not CSV-guarded: the workbook keeps text as text itself."""
        assert self.xlsx is not None
        try:
            self.xlsx.write([
                (row.row, row.phone, row.number, _VALUE[row.status or Status.PENDING], row.error,
                 row.message_id, row.campaign_id, row.pages or "", row.attempts, row.text,
                 row.delivery, row.delivery_code)
                for row in rows
            ])  # fmt: skip
        except OSError as exc:  # its temporary file: a full /tmp, say
            self.xlsx, self.xlsx_error = None, exc


def xlsx_file(report: Path) -> Path:
    """`<report stem>.xlsx` beside the report (report.xlsx: true)."""
    if report.suffix.lower() == ".xlsx":
        return report.with_name(f"{report.name}.xlsx")
    return report.with_suffix(".xlsx")


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
        self.path, self.rows, self._columns = path, 0, columns
        self.partial = path.with_name(f"{path.name}.{os.getpid()}.partial")  # till complete
        self._file: TextIO | None = None
        self._csv: Any = None  # the csv module's writer, once the first row comes

    def write(self, rows: list[Row]) -> None:
        if self._file is None:
            self._file, self._csv = _open_csv(self.partial, (*self._columns, "status", "error"))
        columns = self._columns  # then status and error, guarded as in the report
        self._csv.writerows(
            (*[safe_cell(row.values.get(c, "")) for c in columns], row.status, safe_cell(row.error))
            for row in rows
        )
        self.rows += len(rows)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self.partial.unlink(missing_ok=True)

    def close(self, *, complete: bool = True) -> None:
        """Close and, when complete, put it in place; with no rows, remove an earlier run's."""
        if self._file is not None:
            self._file.close()
            if complete:
                os.replace(self.partial, self.path)
        elif complete:
            self.path.unlink(missing_ok=True)


def _open_csv(path: Path, header: tuple[str, ...]) -> tuple[TextIO, Any]:
    """A new 0600 CSV file with its header and the BOM Excel needs for Persian (by hand:
    "utf-8-sig" would encode every write through a Python codec)."""
    file = cast(TextIO, open_private(path, "w", encoding="utf-8", newline=""))
    file.write("\ufeff")
    writer = csv.writer(file)
    writer.writerow(header)
    return file, writer
