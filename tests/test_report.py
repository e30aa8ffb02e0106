"""Tests for pipeline.report: the CSV report is exactly what csv.writer would write, in order."""

from __future__ import annotations

import csv
import io
import re
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.models import Row, Status
from pipeline.report import ATTENTION, COLUMNS, ReportWriter, safe_cell

CONTACT_COLUMNS = ("mobile", "name")
BOM = b"\xef\xbb\xbf"


def formula_safe(value: str) -> str:
    """The CSV-injection rule, written plainly: the reference safe_cell must agree with."""
    if value.startswith(("=", "+", "-", "@", "\t", "\r")) and not re.fullmatch(
        r"[+-]?[\d\s().-]+", value
    ):
        return "'" + value
    return value


def csv_text(rows: list[tuple[object, ...]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def expected_report(rows: list[Row]) -> bytes:
    lines: list[tuple[object, ...]] = [COLUMNS]
    for row in rows:
        status = row.status or Status.PENDING
        lines.append(
            (
                row.row,
                formula_safe(row.phone),
                row.number,
                status.value,
                formula_safe(row.error),
                row.message_id,
                row.campaign_id,
                row.pages or "",
                row.attempts,
                formula_safe(row.text),
                row.delivery,
                row.delivery_code,
            )
        )
    return BOM + csv_text(lines).encode("utf-8")


def expected_attention(rows: list[Row]) -> bytes | None:
    lines: list[tuple[object, ...]] = [(*CONTACT_COLUMNS, "status", "error")]
    for row in rows:
        if row.status in ATTENTION:
            cells = [formula_safe(row.values.get(c, "")) for c in CONTACT_COLUMNS]
            lines.append((*cells, row.status.value, formula_safe(row.error)))
    return BOM + csv_text(lines).encode("utf-8") if len(lines) > 1 else None


# Characters a CSV or a spreadsheet treats specially, plus Persian text and digits.
AWKWARD = st.text(alphabet=",\"\r\n\t =+-@'.()0123456789۰۹abc سلام،", max_size=12)
CELL = st.one_of(AWKWARD, st.text(max_size=12), st.just(""))
STATUS = st.sampled_from([*Status, None])


@st.composite
def rows(draw: st.DrawFn) -> list[Row]:
    count = draw(st.integers(min_value=0, max_value=25))
    result = []
    for index in range(1, count + 1):
        row = Row(
            index,
            draw(CELL),
            {"mobile": draw(CELL), "name": draw(CELL)},
            number=draw(st.one_of(st.just("09120000001"), CELL)),
            text=draw(CELL),
            pages=draw(st.integers(min_value=0, max_value=4)),
            status=draw(STATUS),
            error=draw(CELL),
            message_id=draw(CELL),
            campaign_id=draw(CELL),
            attempts=draw(st.integers(min_value=0, max_value=3)),
            delivery=draw(CELL),
            delivery_code=draw(CELL),
        )
        result.append(row)
    return result


@settings(max_examples=80, deadline=None)
@given(rows=rows(), groups=st.lists(st.integers(min_value=1, max_value=7), max_size=30))
def test_report_is_exactly_what_csv_writer_writes(rows: list[Row], groups: list[int]) -> None:
    """Whatever the cells hold (commas, quotes, line breaks, formulas, Persian), and however
    rows are flushed in groups, the report and the attention file are byte for byte what
    csv.writer writes after a UTF-8 BOM, every row once in input order; the tallies agree."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "report.csv"
        writer = ReportWriter(path, columns=CONTACT_COLUMNS, attention=True)
        start = 0
        for size in groups:
            for row in rows[start : start + size]:
                writer.add(row)
            writer.flush_ready()
            start += size
        for row in rows[start:]:
            writer.add(row)
        unsettled = [row for row in rows if row.status is None]
        writer.close()
        assert all(row.status is Status.UNKNOWN for row in unsettled)
        assert path.read_bytes() == expected_report(rows)
        attention = expected_attention(rows)
        assert (writer.attention_path is None) == (attention is None)
        if writer.attention_path is not None:
            assert writer.attention_path.read_bytes() == attention
        assert sum(writer.counts.values()) == len(rows)
        sendable = (Status.SENT, Status.DRY_RUN)
        assert writer.pages_total == sum(row.pages for row in rows if row.status in sendable)
        assert writer.pages_sent == sum(row.pages for row in rows if row.status is Status.SENT)


TEXT_FIELDS = (
    "phone",
    "number",
    "error",
    "message_id",
    "campaign_id",
    "text",
    "delivery",
    "delivery_code",
)


def test_every_awkward_cell_in_every_column_is_written_as_csv_writer_would(
    tmp_path: Path,
) -> None:
    """A comma, quote, CR or LF alone in any text column is quoted (quotes doubled) exactly as
    csv.writer does, and the cells next to it are unchanged."""
    awkward = ["a,b", 'say "hi"', "a\rb", "a\nb", "\r\n", '"', ",", "=1+1", "-", "+98 912"]
    rows: list[Row] = []
    for field in TEXT_FIELDS:
        for value in awkward:
            row = Row(len(rows) + 1, "09120000001", number="09120000001", text="سلام")
            setattr(row, field, value)
            row.status = Status.SENT
            rows.append(row)
    path = tmp_path / "report.csv"
    with ReportWriter(path) as writer:
        for row in rows:
            writer.add(row)
            writer.flush_ready()
    assert path.read_bytes() == expected_report(rows)


@settings(max_examples=300)
@given(value=st.one_of(AWKWARD, st.text(max_size=20), st.from_regex(r"[+-][۰-۹0-9 ]{0,12}")))
def test_safe_cell_quotes_exactly_what_a_spreadsheet_would_run(value: str) -> None:
    """A cell starting with = + - @ TAB or CR gets a leading quote, unless it is a plain number
    (digits of any script, spaces, brackets, dots, dashes): +98 912 ... stays as it is."""
    assert safe_cell(value) == formula_safe(value)


def test_rows_wait_for_an_earlier_row_still_in_flight(tmp_path: Path) -> None:
    """A row waiting for its answer holds back every later row; once it settles, the flush
    writes them all, in input order."""
    path = tmp_path / "report.csv"
    rows = [Row(n, f"0912000000{n}", number=f"0912000000{n}", pages=1) for n in (1, 2, 3)]
    rows[0].status = rows[2].status = Status.SENT
    with ReportWriter(path) as writer:
        for row in rows:
            writer.add(row)
        writer.flush_ready()
        assert sum(writer.counts.values()) == 1
        rows[1].status = Status.FAILED
        writer.flush_ready()
        assert writer.counts == {Status.SENT: 2, Status.FAILED: 1}
        assert (writer.pages_sent, writer.pages_total) == (2, 2)  # a failed row's page: not sent
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    assert [line.split(",")[:4] for line in lines[1:]] == [
        ["1", "09120000001", "09120000001", "sent"],
        ["2", "09120000002", "09120000002", "failed"],
        ["3", "09120000003", "09120000003", "sent"],
    ]


def test_discard_leaves_no_file_behind(tmp_path: Path) -> None:
    """A run that stops before any request leaves no half report (nor attention file)."""
    path = tmp_path / "report.csv"
    row = Row(1, "0912", values={"mobile": "0912"})
    row.status, row.error = Status.INVALID, "too short"
    with ReportWriter(path, columns=("mobile",), attention=True) as writer:
        writer.add(row)
        writer.flush_ready()
        assert writer.partial_path.exists() and writer.attention_path is not None
        writer.discard()
    assert list(tmp_path.iterdir()) == []
