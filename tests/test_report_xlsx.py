"""report.xlsx: true: the workbook read back with openpyxl reads right to left, keeps every
leading zero, freezes the header, sizes its columns, colours statuses and sums them up."""

from __future__ import annotations

import csv
import stat
from collections import Counter

from openpyxl import Workbook, load_workbook

from tests.conftest import Campaign, run_main

ROWS = [
    ("09121234567", "Sara", "A1"),  # sent
    ("09120000000", "Blocked", "B2"),  # the sandbox's blacklisted number: failed
    ("0912", "Short", "C3"),  # invalid
    ("09121234567", "Again", "D4"),  # duplicate
    ("09351234567", '=HYPERLINK("x")', "E5"),  # sent; a formula-looking name
]


def test_the_workbook_reads_right_to_left_with_zeros_kept_and_a_summary(
    campaign: Campaign,
) -> None:
    campaign.contacts(ROWS)
    campaign.write_config("sandbox: true")
    text = campaign.config.read_text("utf-8")
    campaign.config.write_text(text.replace("report.csv\n", "report.csv\n  xlsx: true\n"), "utf-8")
    result = run_main(campaign.config)
    assert result.returncode == 0, result.stderr
    path = campaign.report.with_suffix(".xlsx")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (campaign.report.parent / "test-campaign-latest.xlsx").read_bytes() == path.read_bytes()

    book = load_workbook(path)
    sheet = book["report"]
    assert sheet.sheet_view.rightToLeft is True
    assert sheet.freeze_panes == "A2"
    header = [cell.value for cell in sheet[1]]
    assert header[:4] == ["row", "phone", "number", "status"]
    with campaign.report.open(encoding="utf-8-sig", newline="") as file:
        csv_rows = list(csv.DictReader(file))
    col = {name: i for i, name in enumerate(header)}
    fills = {}
    for line, expected in zip(sheet.iter_rows(min_row=2), csv_rows, strict=True):
        phone, number = line[col["phone"]], line[col["number"]]
        assert phone.value == expected["phone"] and phone.data_type == "s"
        assert (number.value or "") == expected["number"]
        if expected["number"]:
            assert number.value.startswith("09") and number.data_type == "s"
        assert (line[col["message_id"]].value or "") == expected["message_id"]
        assert line[col["row"]].value == int(expected["row"])  # counts stay numbers
        status = line[col["status"]]
        assert status.value == expected["status"]
        fills[status.value] = status.fill.fgColor.rgb[-6:]
    texts = [line[col["text"]] for line in sheet.iter_rows(min_row=2)]
    formula_like = next(cell for cell in texts if "HYPERLINK" in str(cell.value))
    assert formula_like.data_type == "s"  # text, never a formula, and not quoted as in the CSV
    assert formula_like.value.startswith('=HYPERLINK("x")')
    assert fills == {
        "sent": "C6EFCE", "failed": "FFC7CE", "invalid": "FFC7CE", "duplicate": "E7E6E6",
    }  # fmt: skip
    widths = {name: sheet.column_dimensions[chr(65 + i)].width for name, i in col.items()}
    assert widths["phone"] >= len("09121234567") and widths["row"] >= len("row")
    assert widths["text"] > widths["row"]

    summary = book["summary"]
    assert summary.sheet_view.rightToLeft is True
    values = {row[0]: row[1] for row in summary.iter_rows(values_only=True) if row and row[0]}
    counts = Counter(r["status"] for r in csv_rows)
    for status, n in counts.items():
        assert values[status] == n
    assert values["rows"] == len(ROWS)
    assert values["pages"] == sum(int(r["pages"]) for r in csv_rows if r["status"] == "sent")
    assert values["campaign"] == "test-campaign"
    assert values["mode"] == "sandbox"
    assert isinstance(values["cost (tomans)"], int)


def test_without_the_key_there_is_no_workbook(campaign: Campaign) -> None:
    campaign.contacts(ROWS[:1])
    campaign.write_config("sandbox: true")
    assert run_main(campaign.config).returncode == 0
    assert not campaign.report.with_suffix(".xlsx").exists()
    assert not (campaign.report.parent / "test-campaign-latest.xlsx").exists()


def test_the_workbook_never_overwrites_the_contacts_it_was_read_from(campaign: Campaign) -> None:
    """report.path beside an .xlsx contacts file of the same stem: a warning, the contacts kept."""
    book = Workbook()
    sheet = book.active
    sheet.append(["mobile", "first_name", "code"])
    sheet.append(["09121234567", "Sara", "A1"])
    contacts = campaign.folder / "customers.xlsx"
    book.save(contacts)
    before = contacts.read_bytes()
    campaign.write_config("sandbox: true")
    text = campaign.config.read_text("utf-8").replace("contacts.csv", "customers.xlsx")
    text = text.replace("reports/report.csv\n", "customers.csv\n  xlsx: true\n")
    campaign.config.write_text(text, "utf-8")
    result = run_main(campaign.config)
    assert result.returncode == 0, result.stderr
    assert contacts.read_bytes() == before
    assert f"warning: the .xlsx report would overwrite {contacts}, a file this run reads" in (
        result.stderr
    )
    assert (campaign.folder / "customers.csv").exists()
    assert (campaign.folder / "customers.html").exists()
