"""The report as an Excel workbook (report.xlsx: true): right to left, numbers kept as text,
statuses coloured, and a "summary" sheet; streamed (openpyxl's write-only mode)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

from pipeline.models import Status
from pipeline.private import open_private
from pipeline.summary_page import LABELS, Facts, RunFacts

# Cells a spreadsheet would read as numbers and lose a leading zero or digits of (0912...,
# long IDs): written as text cells (a str, never converted), whatever they look like.
TEXT_COLUMNS = frozenset({"phone", "number", "message_id", "campaign_id"})
_NOT_TEXT = frozenset("=#")
SIZED_FROM = 50  # the widths come from the header and this many first rows
MAX_WIDTH = 60  # a long message wraps in the cell's view, not across the screen

FILLS = {  # status -> light background (the page's bar colours, paler for text on it)
    Status.SENT: "C6EFCE",
    Status.ALREADY_SENT: "D9EAD3",
    Status.DRY_RUN: "DDEBF7",
    Status.FAILED: "FFC7CE",
    Status.INVALID: "FFC7CE",
    Status.DUPLICATE: "E7E6E6",
    Status.SUPPRESSED: "E7E6E6",
    Status.UNKNOWN: "F8CBAD",
    Status.PENDING: "FFEB9C",
}


class XlsxReport:
    """Rows in as the CSV gets them; `finish` adds the summary sheet and puts the file in
    place through `<name>.<pid>.partial`. The rows wait in openpyxl's temporary file."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self.partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        self._columns = tuple(columns)
        self._book = Workbook(write_only=True)
        self._sheet: Any = self._book.create_sheet("report")
        self._sheet.sheet_view.rightToLeft = True
        self._sheet.freeze_panes = "A2"
        self._first: list[Sequence[object]] | None = []  # till the widths are known
        self._status_at = self._columns.index("status")
        self._text_at = frozenset(i for i, c in enumerate(self._columns) if c in TEXT_COLUMNS)
        self._fills = {
            s.value: PatternFill("solid", start_color=c, end_color=c) for s, c in FILLS.items()
        }
        self._bold = Font(bold=True)

    def write(self, lines: Sequence[Sequence[object]]) -> None:
        if self._first is not None:
            self._first.extend(lines)
            if len(self._first) < SIZED_FROM:
                return
            lines, self._first = self._first, None
            self._start(lines)
        append, cell = self._sheet.append, self._cell
        for line in lines:
            append([cell(i, value) for i, value in enumerate(line)])

    def finish(self, facts: Facts, run: RunFacts) -> None:
        if self._first is not None:  # fewer rows than SIZED_FROM
            lines, self._first = self._first, None
            self._start(lines)
            self.write(lines)
        self._summary(facts, run)
        try:
            with open_private(self.partial, "wb") as file:  # customers' numbers: 0600
                self._book.save(file)
            os.replace(self.partial, self.path)
        except BaseException:
            self.partial.unlink(missing_ok=True)
            raise

    def _start(self, first: Sequence[Sequence[object]]) -> None:
        """Widths from the header and the first rows (set before the first row: write-only)."""
        sheet = self._sheet
        for i, name in enumerate(self._columns):
            longest = max([len(name), *(_longest_line(line[i]) for line in first)])
            width = min(MAX_WIDTH, longest + 2)
            sheet.column_dimensions[get_column_letter(i + 1)].width = width
        header = []
        for name in self._columns:
            cell = WriteOnlyCell(sheet, value=name)
            cell.font = self._bold
            header.append(cell)
        sheet.append(header)

    def _cell(self, i: int, value: object) -> object:
        """A plain value where it can be (a styled cell costs several times as much): a str is
        a text cell already, so 0912... keeps its zero without a format of its own."""
        if i == self._status_at:
            cell = WriteOnlyCell(self._sheet, value=value)
            if (fill := self._fills.get(str(value))) is not None:
                cell.fill = fill
            return cell
        if i in self._text_at:
            value = str(value)
        if isinstance(value, str):
            if value[:1] in _NOT_TEXT:  # openpyxl would make "=..." a formula, "#N/A" an error
                return self._as_text(WriteOnlyCell(self._sheet, value=value))
            return value or None
        return value

    @staticmethod
    def _as_text(cell: Any) -> Any:
        cell.data_type = "s"
        return cell

    def _summary(self, facts: Facts, run: RunFacts) -> None:
        sheet = self._book.create_sheet("summary")
        sheet.sheet_view.rightToLeft = True
        sheet.column_dimensions["A"].width = 24
        sheet.column_dimensions["B"].width = 40
        sheet.column_dimensions["C"].width = 22
        bold = self._bold

        def heading(text: str) -> list[object]:
            cell = WriteOnlyCell(sheet, value=text)
            cell.font = bold
            return [cell]

        sheet.append(heading("campaign"))
        sheet.append(["campaign", run.campaign])
        sheet.append(["mode", run.mode])
        sheet.append(["finished (Tehran)", run.finished.strftime("%Y-%m-%d %H:%M:%S")])
        sheet.append(["report", run.report])
        if run.stopped:
            sheet.append(["stopped", run.stopped])
        if run.held:
            sheet.append(["held", run.held])
        sheet.append([])
        sheet.append(heading("status"))
        for status in Status:
            if facts.counts[status]:
                cell = WriteOnlyCell(sheet, value=status.value)
                cell.fill = self._fills[status.value]
                sheet.append([cell, facts.counts[status], LABELS[status]])
        sheet.append(["rows", sum(facts.counts.values())])
        sheet.append([])
        pages = sum(n * size for size, n in facts.page_sizes.items())
        sheet.append(["pages", pages])
        cost = None if run.cost_rials is None else run.cost_rials // 10
        sheet.append(["cost (tomans)", cost if cost is not None else "unknown"])


def _longest_line(value: object) -> int:
    return max((len(line) for line in str(value).splitlines()), default=0)
