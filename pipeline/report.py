"""The per-recipient CSV report (every input row once, in input order) and the run's tallies."""

from __future__ import annotations

import csv
import os
import re
from collections import Counter, deque
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from pipeline.models import Row, Status

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
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[\d\s().-]+")


def safe_cell(value: str) -> str:
    """Quote a cell a spreadsheet would run as a formula; a plain number (+98912...) stays."""
    if value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


class ReportWriter:
    """Writes rows in input order as soon as every earlier row is settled.

    Rows are added in input order; one still waiting for the provider (status None) holds
    back the rows after it, so memory holds only the window in flight, not the whole list.
    The file is written as `<name>.partial` and renamed when complete, so a report that
    exists is never half-written.
    """

    def __init__(
        self, path: Path, *, columns: tuple[str, ...] = (), attention: bool = False
    ) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        # utf-8-sig writes the BOM Excel needs to show Persian.
        self._file = self._partial.open("w", encoding="utf-8-sig", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(COLUMNS)
        self._attention: _Attention | None = (
            _Attention(path.with_name(f"{path.stem}-attention{path.suffix}"), columns)
            if attention
            else None
        )
        self._waiting: deque[Row] = deque()
        self.counts: Counter[Status] = Counter()
        self.pages_sent = 0
        self.pages_total = 0

    def add(self, row: Row) -> None:
        self._waiting.append(row)

    def flush_ready(self) -> None:
        """Write every row at the front whose status is settled."""
        waiting = self._waiting
        while waiting and waiting[0].status is not None:
            self._write(waiting.popleft())

    def close(self) -> None:
        """Write what is left (all settled by now) and put the file in place."""
        self._write_remaining()  # all settled by now, unless a bug: never lose a row over it
        self._file.close()
        os.replace(self._partial, self.path)
        if self._attention is not None:
            self._attention.close()

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
        if exc is None:
            self.close()
            return
        # The run failed part-way: write what is known, but leave the file under its
        # `.partial` name (rows not read yet are missing; the journal is the truth).
        self._write_remaining()
        self._file.close()

    def _write_remaining(self) -> None:
        """Every row still waiting, in order; one never settled may have gone out: unknown."""
        for row in self._waiting:
            if row.status is None:
                row.status = Status.UNKNOWN
                row.error = "the run stopped with an error before this row was settled"
            self._write(row)
        self._waiting.clear()

    def _write(self, row: Row) -> None:
        status = row.status or Status.PENDING
        self.counts[status] += 1
        if status is Status.SENT:
            self.pages_sent += row.pages
        self.pages_total += row.pages
        self._csv.writerow(
            (
                row.row,
                safe_cell(row.phone),
                row.number,
                status.value,
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
        if self._attention is not None and status in ATTENTION:
            self._attention.write(row, status)


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
        self._csv: Any = None

    def write(self, row: Row, status: Status) -> None:
        if self._file is None:
            self._file = self._partial.open("w", encoding="utf-8-sig", newline="")
            self._csv = csv.writer(self._file)
            self._csv.writerow((*self._columns, "status", "error"))
        values = row.values
        self._csv.writerow(
            (*(safe_cell(values.get(c, "")) for c in self._columns), status.value, row.error)
        )
        self.rows += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            os.replace(self._partial, self.path)
