"""Excel as people keep it: contacts.sheet and contacts.header_row, and a missing phone column
answered with the column (or the sheet and row) that looks like the one meant."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from pipeline.config import load_config
from pipeline.errors import ConfigError, InputError
from pipeline.sources import open_contacts
from tests.conftest import Campaign, run_cli

ZWNJ = "\u200c"


def workbook(path: Path, *, guide: bool = True, header: tuple[str, ...] = ()) -> Path:
    """A guide sheet first; the table on sheet 2 «مشتریان» under a title row and a blank row
    (header in sheet row 3), with a blank data row inside."""
    book = openpyxl.Workbook()
    first = book.active
    if guide:
        first.title = "راهنما"
        first.append(["این فایل را پر کنید"])
        first.append(["ستون شماره موبایل را خالی نگذارید؛ هر مشتری یک ردیف"])
        table = book.create_sheet("مشتریان")
    else:
        table = first
        table.title = "مشتریان"
    table.append(["فهرست مشتریان یلدا ۱۴۰۵"])
    table.append([])
    table.append(list(header or ("first_name", "mobile", "code")))
    table.append(["سارا", 9121234567, "A1"])  # a number cell: the zero Excel drops
    table.append(["علی", "۰۹۱۲۷۶۵۴۳۲۱", "A2"])
    table.append([])
    table.append(["رضا", "+98 935 123 4567", "A3"])
    book.save(path)
    return path


def read(
    path: Path, phone_column: str = "mobile", **kwargs: Any
) -> list[tuple[int, dict[str, str]]]:
    source = open_contacts(path, phone_column, **kwargs)
    return [(c.row, c.values) for batch in source.batches for c in batch]


def error(path: Path, phone_column: str = "mobile", **kwargs: Any) -> str:
    with pytest.raises(InputError) as caught:
        read(path, phone_column, **kwargs)
    return str(caught.value)


def test_sheet_and_header_row_read_the_table_under_a_title(tmp_path: Path) -> None:
    """Sheet 2 by name or number (also as text, as ${SHEET} gives it), the header in row 3:
    rows above it are skipped and `row` counts the data rows from 1 (blank rows counted)."""
    path = workbook(tmp_path / "c.xlsx")
    expected = [
        (1, {"first_name": "سارا", "mobile": "9121234567", "code": "A1"}),
        (2, {"first_name": "علی", "mobile": "۰۹۱۲۷۶۵۴۳۲۱", "code": "A2"}),
        (4, {"first_name": "رضا", "mobile": "+98 935 123 4567", "code": "A3"}),
    ]
    for sheet in ("مشتریان", 2, "2", f"مشتر{ZWNJ}يان"):  # Arabic ي and a stray ZWNJ too
        assert read(path, sheet=sheet, header_row=3) == expected, sheet


def test_a_value_outside_the_header_names_its_true_sheet_row(tmp_path: Path) -> None:
    """With the header in row 3, data row 2 is sheet row 5: the message says both, and which
    sheet (the workbook has two)."""
    path = workbook(tmp_path / "c.xlsx")
    book = openpyxl.load_workbook(path)
    book["مشتریان"].cell(row=5, column=4).value = "stray"
    book.save(path)
    message = error(path, sheet=2, header_row=3, shown_path="c.xlsx")
    assert message.startswith(
        "c.xlsx (sheet «مشتریان»): row 2 (sheet row 5) has a value in column D, which has no "
        "name in the header row. Name that column in row 3 or delete the value."
    )


def test_a_sheet_that_does_not_exist_lists_the_sheets(tmp_path: Path) -> None:
    """A wrong name or number: the sheets there are, and the fix."""
    path = workbook(tmp_path / "c.xlsx")
    assert error(path, sheet="customers", shown_path="c.xlsx") == (
        "c.xlsx: contacts.sheet: there is no sheet «customers» in this workbook; its sheets "
        "are «راهنما», «مشتریان». Fix: set contacts.sheet to one of them (a name, or its "
        "number counting from 1)."
    )
    assert error(path, sheet=3, shown_path="c.xlsx").startswith(
        "c.xlsx: contacts.sheet: there is no sheet 3; the workbook has 2 sheet(s): "
        "«راهنما», «مشتریان». Fix: set contacts.sheet to a number from 1 to 2"
    )


def test_a_header_row_past_the_end_says_so(tmp_path: Path) -> None:
    path = workbook(tmp_path / "c.xlsx")
    assert error(path, sheet=2, header_row=40, shown_path="c.xlsx") == (
        "c.xlsx (sheet «مشتریان»): row 40 of the sheet «مشتریان» (contacts.header_row) is empty "
        "or past the end of the sheet. Fix: set contacts.header_row to the row that holds the "
        "column names."
    )


def test_the_guide_sheet_first_points_to_the_table(tmp_path: Path) -> None:
    """Nothing set, the first sheet a guide: the message names the sheet read, lists the
    sheets and says which sheet and row hold the table, as config keys to copy."""
    path = workbook(tmp_path / "c.xlsx")
    assert error(path, shown_path="data/contacts.xlsx") == (
        "data/contacts.xlsx (sheet «راهنما»): there is no column 'mobile' for the phone "
        "numbers; the columns are 'این فایل را پر کنید'. Sheets in this workbook: «راهنما», "
        "«مشتریان». The sheet «مشتریان» looks like the table, its header in row 3 («first_name», "
        "«mobile», «code»): set contacts.sheet: مشتریان and contacts.header_row: 3. "
        "Set contacts.phone_column in config.yaml to the column that holds the numbers."
    )
    # the right sheet, the title row taken for the header: the row that is
    assert (
        "Sheet row 3 looks like the header («first_name», «mobile», «code»): set "
        "contacts.header_row: 3."
    ) in error(path, sheet=2)


@pytest.mark.parametrize(
    "column",
    [
        "شماره موبایل",
        f"شماره{ZWNJ}موبایل",
        "موبايل",  # Arabic ي
        "تلفن همراه",
        "شماره",
        "همراه",
        "Phone",
        "Cell (primary)",
    ],
)
def test_a_column_named_like_a_mobile_column_is_suggested(tmp_path: Path, column: str) -> None:
    """`mobile` missing, a column named as people name it (Persian too): that one, with the
    line to write in config.yaml."""
    path = workbook(tmp_path / "c.xlsx", guide=False, header=("نام", column, "کد"))
    message = error(path, header_row=3, shown_path="c.xlsx")
    assert message.startswith(
        "c.xlsx: there is no column 'mobile' for the phone numbers; "
        f"the column «{column}» looks like one (set contacts.phone_column: {column}). "
        f"The columns are 'نام', '{column}', 'کد'. "
    ), message


def test_a_suggested_name_yaml_would_misread_is_quoted(tmp_path: Path) -> None:
    path = workbook(tmp_path / "c.xlsx", guide=False, header=("name", "همراه #1", "code"))
    assert '(set contacts.phone_column: "همراه #1")' in error(path, header_row=3)


def test_a_column_holding_mobiles_is_suggested_by_its_values(tmp_path: Path) -> None:
    """No telling name: the column whose first values are mostly Iranian mobiles (in a CSV
    as well as a workbook)."""
    path = tmp_path / "c.csv"
    path.write_text(
        "name,ref,c\nسارا,09121234567,12\nعلی,+98 912 765 4321,13\nرضا,0912 x,14\n",
        encoding="utf-8",
    )
    message = error(path, shown_path="c.csv")
    assert message == (
        "c.csv: there is no column 'mobile' for the phone numbers; the column «ref» holds what "
        "look like mobile numbers (set contacts.phone_column: ref). The columns are 'name', "
        "'ref', 'c'. Set contacts.phone_column in config.yaml to the column that holds the "
        "numbers."
    )
    path.write_text("name,ref\nسارا,12\nعلی,13\n", encoding="utf-8")
    assert "looks like" not in error(path) and "look like" not in error(path)


def test_sheet_or_header_row_on_a_csv_is_a_config_error(campaign: Campaign) -> None:
    """contacts.sheet / header_row are for workbooks: exit 2 before anything is read or sent."""
    campaign.contacts([("09121234567", "سارا", "A1")])
    for key in ("sheet: 2", "header_row: 2"):
        campaign.write_config("sandbox: true")
        text = campaign.config.read_text(encoding="utf-8")
        text = text.replace("  path: contacts.csv\n", f"  path: contacts.csv\n  {key}\n")
        campaign.config.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_config(campaign.config)
        name = key.split(":")[0]
        assert f"contacts.{name} applies to .xlsx files only (contacts.path is a .csv file)" in (
            str(caught.value)
        )
        result = run_cli(campaign.config)
        assert result.returncode == 2, result.stderr
        assert f"contacts.{name} applies to .xlsx files only" in result.stderr
        assert result.stderr.endswith("Nothing was sent.\n") and "Traceback" not in result.stderr
    assert not (campaign.folder / "reports").exists()


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("sheet: 0", "contacts.sheet: give a sheet's name, or its number counting from 1"),
        ("sheet: true", "contacts.sheet: give a sheet's name, or its number counting from 1"),
        ('sheet: " "', "contacts.sheet: give a sheet's name"),
        ("header_row: 0", "contacts.header_row: Input should be greater than or equal to 1"),
    ],
)
def test_bad_sheet_and_header_row_values(campaign: Campaign, line: str, said: str) -> None:
    campaign.write_config("sandbox: true")
    text = campaign.config.read_text(encoding="utf-8")
    text = text.replace("  path: contacts.csv\n", f"  path: contacts.xlsx\n  {line}\n")
    campaign.config.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(campaign.config)
    assert said in str(caught.value)


def test_a_workbook_campaign_runs_with_sheet_and_header_row(campaign: Campaign) -> None:
    """From the command line: the table on sheet 2 under a title row sends in the sandbox;
    the report's rows are the data rows, the Excel number cell's lost zero restored."""
    workbook(campaign.folder / "contacts.xlsx")
    campaign.write_config("sandbox: true")
    text = campaign.config.read_text(encoding="utf-8")
    text = text.replace(
        "  path: contacts.csv\n", "  path: contacts.xlsx\n  sheet: مشتریان\n  header_row: 3\n"
    )
    campaign.config.write_text(text, encoding="utf-8")
    result = run_cli(campaign.config)
    assert result.returncode == 0, result.stderr
    with campaign.report.open(encoding="utf-8-sig", newline="") as f:
        report = list(csv.DictReader(f))
    assert [(r["row"], r["number"], r["status"]) for r in report] == [
        ("1", "09121234567", "sent"),
        ("2", "09127654321", "sent"),
        ("4", "09351234567", "sent"),
    ]

    wrong = text.replace("sheet: مشتریان", "sheet: customers")
    campaign.config.write_text(wrong, encoding="utf-8")
    refused = run_cli(campaign.config)
    assert refused.returncode == 2
    assert "there is no sheet «customers» in this workbook; its sheets are «راهنما», «مشتریان»" in (
        refused.stderr
    )
