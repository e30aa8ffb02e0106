"""Tests for pipeline.sources: every format read as exact text, true row numbers, clear errors."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sqlite3
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import InputError
from pipeline.models import Contact
from pipeline.sources import ContactSource, cell_text, open_contacts, open_sql

DATA = Path(__file__).parent / "data"
ZWNJ = "\u200c"


def read_all(source: ContactSource) -> list[Contact]:
    return [contact for batch in source.batches for contact in batch]


def rows_of(
    path: Path, phone_column: str = "mobile", **kwargs: Any
) -> list[tuple[int, dict[str, str]]]:
    source = open_contacts(path, phone_column, **kwargs)
    return [(contact.row, contact.values) for contact in read_all(source)]


def input_error(path: Path, phone_column: str = "mobile", **kwargs: Any) -> str:
    """The message of the InputError that opening and fully reading `path` raises."""
    with pytest.raises(InputError) as caught:
        read_all(open_contacts(path, phone_column, **kwargs))
    return str(caught.value)


# --- each format: columns, row numbers, exact text ---------------------------------------------


def test_csv_with_bom_and_crlf_keeps_leading_zeros_and_cleans_header() -> None:
    """A BOM and padded header names are stripped; CRLF is fine; codes keep their zeros."""
    source = open_contacts(DATA / "bom.csv", "mobile")
    assert source.columns == ("name", "mobile", "code")
    assert [(c.row, c.values) for c in read_all(source)] == [
        (1, {"name": "علی", "mobile": "09121234567", "code": "00123"}),
        (2, {"name": "مریم", "mobile": "9351234567", "code": "0042"}),
    ]


def test_semicolon_delimiter_is_sniffed_and_persian_text_kept() -> None:
    """';' is detected from the header; ZWNJ, the Persian comma and quoted ';' survive."""
    source = open_contacts(DATA / "semicolon.csv", "mobile")
    assert source.columns == ("نام", "mobile", "شهر")
    assert [(c.row, c.values) for c in read_all(source)] == [
        (1, {"نام": f"زهرا{ZWNJ}سادات", "mobile": "+989121234567", "شهر": "تهران، ونک"}),
        (2, {"نام": "رضا;حسینی", "mobile": "0098 912 123 4567", "شهر": "شیراز"}),
    ]


def test_tsv_reads_tabs_and_keeps_commas_and_quotes_inside_values() -> None:
    """A .tsv splits on tabs only; an empty last cell is the empty string, not NaN."""
    assert rows_of(DATA / "contacts.tsv") == [
        (1, {"first name": "Sara", "mobile": "09121234567", "note": 'says "hi", twice'}),
        (2, {"first name": "Amir", "mobile": "0912-123-4567", "note": ""}),
    ]


def test_pipe_delimited_txt_is_sniffed() -> None:
    """A .txt file with '|' between cells is read as delimited text."""
    assert rows_of(DATA / "pipe.txt") == [
        (1, {"name": "A", "mobile": "09120000001"}),
        (2, {"name": "B", "mobile": "09120000002"}),
    ]


def test_excel_mangled_numbers_stay_exactly_as_written() -> None:
    """Phones that Excel turned into 9.12E+09 or 9123456789.0 reach the caller as written."""
    assert [values["mobile"] for _, values in rows_of(DATA / "excel_numbers.csv")] == [
        "9.12345678E+09",
        "9123456789.0",
        "9123456789",
        "09123456789",
    ]


def test_persian_and_arabic_indic_digits_are_kept() -> None:
    """Digits in other scripts are not converted or dropped here (normalising is phones.py's)."""
    assert rows_of(DATA / "digits.csv") == [
        (1, {"name": f"فاطمه{ZWNJ}زهرا", "mobile": "۰۹۱۲۱۲۳۴۵۶۷"}),
        (2, {"name": "حسن", "mobile": "٠٩١٢١٢٣٤٥٦٧"}),
    ]


def test_blank_rows_are_skipped_but_counted() -> None:
    """Empty, whitespace-only and delimiters-only lines are not yielded, yet rows keep numbering."""
    assert rows_of(DATA / "blank_rows.csv") == [
        (1, {"name": "A", "mobile": "09120000001"}),
        (3, {"name": "B", "mobile": "09120000002"}),
        (6, {"name": "C", "mobile": "09120000003"}),
    ]


def test_quoted_newlines_stay_in_one_row_and_an_empty_last_cell_is_a_cell(tmp_path: Path) -> None:
    """A quoted line break is one row's value; `B,0935,` under a 3-column header is 3 cells."""
    path = tmp_path / "c.csv"
    path.write_text('name,mobile,note\n"two\nlines",0912,x\nB,0935,\n', encoding="utf-8")
    assert rows_of(path) == [
        (1, {"name": "two\nlines", "mobile": "0912", "note": "x"}),
        (2, {"name": "B", "mobile": "0935", "note": ""}),
    ]


def test_a_row_with_fewer_cells_than_the_header_is_refused_when_opened() -> None:
    """pandas would pad `09122222222` with blanks and the message would go out with no name and
    no code; instead opening the file refuses it, naming the line, the row, the count and the fix
    (blank lines, counted as rows, do not hide it). Excel's habit of leaving out empty cells at the
    end of rows is named, with its way out: read the workbook itself."""
    with pytest.raises(InputError) as caught:
        open_contacts(DATA / "short_row.csv", "mobile", shown_path="data/short_row.csv")
    message = str(caught.value)
    assert message.startswith(
        "data/short_row.csv:4: row 3 has 1 cell but the header has 3 "
        "(the row ends before 'first_name', 'code'). Fix: give the row a cell for every column "
        "(an empty cell is just the ',');"
    )
    assert message.endswith("point contacts.path at the .xlsx workbook itself.")


def test_a_short_row_far_down_or_after_a_quoted_line_break_is_found_on_its_line(
    tmp_path: Path,
) -> None:
    """The whole file is checked before the first row is handed on; a record spread over two
    lines counts once as a row, and the message gives the line an editor shows."""
    path = tmp_path / "c.tsv"
    rows = "".join(f"0912{i:07d}\tn\tC\n" for i in range(20_000))
    path.write_text(f'mobile\tname\tcode\n0912\t"two\nlines"\tC\n{rows}0913\tn\n', "utf-8")
    with pytest.raises(InputError, match=r"^c\.tsv:20004: row 20002 has 2 cells .*'code'\)") as e:
        open_contacts(path, "mobile", shown_path="c.tsv", batch_size=10)
    assert "an empty cell is just a tab" in str(e.value)


def test_blank_rows_and_cells_missing_only_under_unnamed_columns_are_fine() -> None:
    """A header line ending in ',' (an unnamed last column) may meet rows with or without that
    last ','; rows of only delimiters or spaces stay blank rows, whatever their width."""
    assert rows_of(DATA / "trailing_delimiters.csv") == [
        (1, {"mobile": "09121111111", "first_name": "A", "code": "C1", "column_4": ""}),
        (2, {"mobile": "09122222222", "first_name": "B", "code": "C2", "column_4": ""}),
        (6, {"mobile": "09123333333", "first_name": "C", "code": "", "column_4": ""}),
    ]


def test_the_first_broken_row_is_named_whether_it_has_too_many_cells_or_too_few(
    tmp_path: Path,
) -> None:
    """A row with an extra cell above a short one is named first, in the words it always had;
    an unclosed quote (one long cell to the csv module) is still named as a quote."""
    path = tmp_path / "c.csv"
    path.write_text("mobile,name\n0912,a,extra\n0935\n", encoding="utf-8")
    assert input_error(path, shown_path="c.csv").startswith(
        "c.csv:2: row 1 has 3 cells but the header has 2. Remove the extra cells"
    )
    path.write_text('mobile,name\n"0912,a\n0935\n', encoding="utf-8")
    assert "Check the quotes" in input_error(path, shown_path="c.csv")


def test_header_only_file_has_columns_and_no_rows(tmp_path: Path) -> None:
    """A file with a header and no contacts opens fine and yields nothing."""
    path = tmp_path / "c.csv"
    path.write_text("mobile,name\n", encoding="utf-8")
    source = open_contacts(path, "mobile")
    assert source.columns == ("mobile", "name")
    assert list(source.batches) == []


def test_unnamed_header_cell_gets_a_positional_name(tmp_path: Path) -> None:
    """Excel's trailing ',' gives an unnamed column: it is kept as column_N, not an error."""
    path = tmp_path / "c.csv"
    path.write_text("name,mobile,\nA,0912,\n", encoding="utf-8")
    source = open_contacts(path, "mobile")
    assert source.columns == ("name", "mobile", "column_3")
    assert read_all(source)[0].values == {"name": "A", "mobile": "0912", "column_3": ""}


def test_single_column_file_needs_no_delimiter(tmp_path: Path) -> None:
    """A file holding only the phone column is read with the default delimiter."""
    path = tmp_path / "c.csv"
    path.write_text("mobile\n09120000001\n09120000002\n", encoding="utf-8")
    assert [values for _, values in rows_of(path)] == [
        {"mobile": "09120000001"},
        {"mobile": "09120000002"},
    ]


def test_xlsx_numbers_dates_and_blank_rows(tmp_path: Path) -> None:
    """Excel numbers become plain digits, dates ISO text; blank sheet rows are counted."""
    path = tmp_path / "c.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append([" نام ", "mobile", "code", "joined", "score"])
    sheet.append(["علی", 9123456789, "00123", dt.datetime(2024, 3, 20), 12.5])
    sheet.append([])
    sheet.append(["B", 9123456789.0, 42, dt.datetime(2024, 3, 20, 9, 30), None])
    sheet.cell(row=4, column=2).value = 9123456789.0  # stored as a float cell
    sheet.append([None, "", "   ", None, None])
    sheet.append(["C", "09121234567", None, None, True])
    book.create_sheet("ignored").append(["other", "sheet"])
    book.save(path)

    source = open_contacts(path, "mobile")
    assert source.columns == ("نام", "mobile", "code", "joined", "score")
    contacts = read_all(source)
    assert [c.row for c in contacts] == [1, 3, 5]
    assert contacts[0].values == {
        "نام": "علی",
        "mobile": "9123456789",
        "code": "00123",
        "joined": "2024-03-20",
        "score": "12.5",
    }
    assert contacts[1].values["mobile"] == "9123456789"
    assert contacts[1].values["code"] == "42"
    assert contacts[1].values["joined"] == "2024-03-20T09:30:00"
    assert contacts[1].values["score"] == ""
    assert contacts[2].values["score"] == "true"


def test_xlsx_value_in_an_unnamed_column_is_an_error(tmp_path: Path) -> None:
    """A value right of the last named column would be silently lost, so it stops the run."""
    path = tmp_path / "c.xlsx"
    book = openpyxl.Workbook()
    book.active.append(["name", "mobile"])
    book.active.append(["A", "0912", "stray"])
    book.save(path)
    message = input_error(path, shown_path="c.xlsx")
    assert message.startswith("c.xlsx: row 1 (sheet row 2) has a value in column C")
    assert "Name that column in row 1 or delete the value." in message


def test_xlsx_that_is_not_a_workbook_is_an_input_error(tmp_path: Path) -> None:
    """A .xlsx that is really something else names the file and says to save it again."""
    path = tmp_path / "c.xlsx"
    path.write_text("name,mobile\n", encoding="utf-8")
    message = input_error(path, shown_path="c.xlsx")
    assert message.startswith("c.xlsx: cannot be read as an Excel workbook")
    assert message.endswith("save it again as .xlsx.")


def test_json_array_numbers_become_text_without_float_damage() -> None:
    """JSON numbers are text (9123456789.0 -> "9123456789"); keys of all objects are columns."""
    source = open_contacts(DATA / "contacts.json", "mobile")
    assert source.columns == ("name", "mobile", "code", "score", "vip", "note")
    assert [(c.row, c.values) for c in read_all(source)] == [
        (
            1,
            {
                "name": "علی",
                "mobile": "09121234567",
                "code": "007",
                "score": "",
                "vip": "",
                "note": "",
            },
        ),
        (
            2,
            {
                "name": "B",
                "mobile": "9123456789",
                "code": "",
                "score": "12.50",
                "vip": "",
                "note": "",
            },
        ),
        (
            4,
            {
                "name": "D",
                "mobile": "9123456789",
                "code": "",
                "score": "",
                "vip": "true",
                "note": "",
            },
        ),
    ]


def test_jsonl_rows_are_line_numbers_and_blank_lines_count() -> None:
    """Each line is a row (no header in JSON Lines); exponent numbers become plain digits."""
    source = open_contacts(DATA / "contacts.jsonl", "mobile")
    assert source.columns == ("name", "mobile", "city", "tags")
    assert [(c.row, c.values) for c in read_all(source)] == [
        (1, {"name": "علی", "mobile": "09121234567", "city": "", "tags": ""}),
        (3, {"name": "", "mobile": "9123456780", "city": "تهران", "tags": ""}),
        (4, {"name": "C", "mobile": "09120000003", "city": "", "tags": '["a", "b"]'}),
    ]


def test_parquet_is_read_in_batches_as_text(tmp_path: Path) -> None:
    """Parquet columns of any type become text; batches follow batch_size; row numbers run on."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "c.parquet"
    table = pa.table(
        {
            "mobile": ["09120000001", None, "09120000003", "09120000004"],
            "number": pa.array([9123456789, None, 1, 2], type=pa.int64()),
            "score": [9123456789.0, None, 0.5, 2.0],
        }
    )
    pq.write_table(table, path, row_group_size=2)
    batches = list(open_contacts(path, "mobile", batch_size=2).batches)
    assert [[c.row for c in batch] for batch in batches] == [[1, 3], [4]]
    assert batches[0][0].values == {
        "mobile": "09120000001",
        "number": "9123456789",
        "score": "9123456789",
    }
    assert batches[0][1].values == {"mobile": "09120000003", "number": "1", "score": "0.5"}


def test_parquet_without_pyarrow_says_how_to_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without pyarrow a .parquet source is an InputError that says to install it."""
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    path = tmp_path / "c.parquet"
    path.write_bytes(b"PAR1")
    message = input_error(path, shown_path="data/c.parquet")
    assert message.startswith("data/c.parquet: reading .parquet files needs the pyarrow package")
    assert "pip install pyarrow" in message


# --- batching ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["blank_rows.csv", "contacts.jsonl", "contacts.json"])
def test_small_batches_keep_row_numbers_across_batches(name: str) -> None:
    """Reading in tiny batches gives the same contacts, in order, as one big batch."""
    whole = read_all(open_contacts(DATA / name, "mobile"))
    batches = list(open_contacts(DATA / name, "mobile", batch_size=1).batches)
    assert len(batches) == len(whole) > 1
    assert [contact for batch in batches for contact in batch] == whole


def test_csv_batches_are_at_most_batch_size(tmp_path: Path) -> None:
    """A large CSV arrives in several bounded batches with continuous row numbers."""
    path = tmp_path / "c.csv"
    lines = [f"{i},0912{i:07d}" for i in range(1, 2501)]
    lines[999] = ""  # row 1000 is blank
    path.write_text("id,mobile\n" + "\n".join(lines) + "\n", encoding="utf-8")
    batches = list(open_contacts(path, "mobile", batch_size=1000).batches)
    assert len(batches) >= 3
    assert all(0 < len(batch) <= 1000 for batch in batches)
    rows = [c.row for batch in batches for c in batch]
    assert rows == [r for r in range(1, 2501) if r != 1000]
    assert all(c.values["id"] == str(c.row) for batch in batches for c in batch)


# --- errors ------------------------------------------------------------------------------------


def test_unsupported_suffix_names_it_and_the_supported_list(tmp_path: Path) -> None:
    """An unknown file type is refused with the suffix and the list of types that work."""
    path = tmp_path / "contacts.xls"
    path.write_bytes(b"")
    message = input_error(path, shown_path="data/contacts.xls")
    assert message.startswith("data/contacts.xls: cannot read files of type '.xls'")
    assert ".csv, .tsv, .txt, .xlsx, .json, .jsonl, .parquet" in message


def test_missing_file(tmp_path: Path) -> None:
    """A missing file names the path as the user wrote it and where relative paths start."""
    message = input_error(tmp_path / "nope.csv", shown_path="data/nope.csv")
    assert message.startswith("data/nope.csv: file not found.")
    assert "contacts.path in config.yaml" in message


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n\n  \n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    """An empty file (even one holding only a BOM or blank lines) asks for a header row."""
    path = tmp_path / "c.csv"
    path.write_bytes(content)
    message = input_error(path)
    assert message.startswith(f"{path}: the file is empty.")
    assert "header row" in message


def test_blank_first_line_is_a_missing_header(tmp_path: Path) -> None:
    """A file whose first line is blank has no header; the message says where it must go."""
    path = tmp_path / "c.csv"
    path.write_text("\nname,mobile\nA,0912\n", encoding="utf-8")
    message = input_error(path, shown_path="c.csv")
    assert message.startswith("c.csv: the first row is empty.")
    assert message.endswith("on the first line.")


def test_duplicate_columns() -> None:
    """A header naming a column twice (after trimming) is refused, naming the column."""
    message = input_error(DATA / "duplicate_columns.csv", shown_path="dup.csv")
    assert message.startswith("dup.csv: the header names 'name' more than once.")
    assert message.endswith("Give every column its own name in the header row.")


def test_duplicate_keys_after_trimming_in_json(tmp_path: Path) -> None:
    """JSON keys that differ only by surrounding spaces are the same column twice."""
    path = tmp_path / "c.jsonl"
    path.write_text('{"mobile": "0912", " mobile": "0935"}\n', encoding="utf-8")
    assert input_error(path, shown_path="c.jsonl") == (
        "c.jsonl:1: the line has the key 'mobile' more than once "
        "(spaces around keys do not count). Keep one."
    )


def test_missing_phone_column_lists_columns_and_suggests() -> None:
    """A wrong phone_column names it, lists the real columns and suggests the closest."""
    message = input_error(DATA / "bom.csv", "mobil", shown_path="data/bom.csv")
    assert message.startswith("data/bom.csv: there is no column 'mobil' for the phone numbers")
    assert "the columns are 'name', 'mobile', 'code'." in message
    assert "Did you mean 'mobile'?" in message
    assert message.endswith(
        "Set contacts.phone_column in config.yaml to the column that holds the numbers."
    )


def test_missing_phone_column_suggests_a_different_case() -> None:
    """'Mobile' for a column 'mobile' is suggested even though difflib alone may not."""
    assert "Did you mean 'mobile'?" in input_error(DATA / "bom.csv", "MOBILE")


def test_missing_phone_column_without_a_close_match_has_no_guess() -> None:
    """When nothing is close, no misleading suggestion is made."""
    message = input_error(DATA / "bom.csv", "telephone_number_of_customer")
    assert "Did you mean" not in message


def test_ragged_row_names_the_row_and_the_fix() -> None:
    """A row with more cells than the header is an error naming its row, found while reading
    (files are read 10,000 rows at a time, so here before the first batch is handed on)."""
    source = open_contacts(
        DATA / "ragged.csv", "mobile", shown_path="data/ragged.csv", batch_size=1
    )
    with pytest.raises(InputError) as caught:
        next(iter(source.batches))  # the first batch of one row is never handed on
    message = str(caught.value)
    assert message.startswith("data/ragged.csv:4: row 3 has 3 cells but the header has 2.")
    assert "in double quotes" in message


def test_extra_cell_on_the_first_data_row_is_not_taken_as_an_index(tmp_path: Path) -> None:
    """pandas would make the first column an index here; the reader refuses instead."""
    path = tmp_path / "c.csv"
    path.write_text("name,mobile\nA,0912,extra\nB,0935\n", encoding="utf-8")
    assert input_error(path, shown_path="c.csv").startswith("c.csv:2: row 1 has 3 cells")


def test_unclosed_quote_is_an_input_error(tmp_path: Path) -> None:
    """A quote that never closes is reported as an InputError about quotes, not a crash."""
    path = tmp_path / "c.csv"
    path.write_text('name,mobile\n"A,0912\nB,0935\n', encoding="utf-8")
    message = input_error(path, shown_path="c.csv")
    assert message.startswith("c.csv: ")
    assert "Check the quotes" in message


def test_windows_1256_csv_is_refused_with_the_excel_fix(tmp_path: Path) -> None:
    """A CSV saved in Excel's Persian code page names the line and how to save as UTF-8."""
    path = tmp_path / "c.csv"
    path.write_bytes("name,mobile\nAli,0912\nسلام,0935\n".encode("cp1256"))
    message = input_error(path, shown_path="data/c.csv")
    assert message.startswith("data/c.csv:3: the file is not UTF-8 text (byte 0x")
    assert '"CSV UTF-8 (Comma delimited) (*.csv)"' in message


def test_invalid_utf8_is_found_before_any_batch(tmp_path: Path) -> None:
    """A bad byte far down the file stops open_contacts itself, before anything could be sent."""
    path = tmp_path / "c.csv"
    good = "".join(f"n{i},0912{i:07d}\n" for i in range(50_000)).encode()
    path.write_bytes(b"name,mobile\n" + good + "سلام,0935\n".encode("cp1256"))
    with pytest.raises(InputError, match=r":50002: the file is not UTF-8 text"):
        open_contacts(path, "mobile")


def test_broken_jsonl_line_is_found_at_open_with_its_line() -> None:
    """A broken JSON line is reported with its line number before any row is returned."""
    with pytest.raises(InputError) as caught:
        open_contacts(DATA / "broken.jsonl", "mobile", shown_path="data/broken.jsonl")
    message = str(caught.value)
    assert message.startswith("data/broken.jsonl:3: not valid JSON (")
    assert message.endswith("shows the spot).")


def test_broken_json_array_names_its_line(tmp_path: Path) -> None:
    """An unparseable .json names the line the parser stopped on."""
    path = tmp_path / "c.json"
    path.write_text('[\n {"mobile": "0912"},\n {"mobile": "0935"\n]\n', encoding="utf-8")
    assert input_error(path, shown_path="c.json").startswith("c.json:4: not valid JSON (")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"mobile": "0912"}', "c.json: the top level is an object, not a list."),
        ('["0912"]', "c.json: item 1 is a single value, not an object."),
        ("[]", "c.json: no contact has any field."),
    ],
)
def test_json_of_the_wrong_shape(tmp_path: Path, text: str, expected: str) -> None:
    """A .json that is not a list of objects says what it is and shows the right shape."""
    path = tmp_path / "c.json"
    path.write_text(text, encoding="utf-8")
    message = input_error(path, shown_path="c.json")
    assert message.startswith(expected)
    assert '{"mobile": "09121234567"' in message


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    """A JSON Lines line holding a list is named by its line number."""
    path = tmp_path / "c.jsonl"
    path.write_text('{"mobile": "0912"}\n["0935"]\n', encoding="utf-8")
    assert input_error(path, shown_path="c.jsonl").startswith(
        "c.jsonl:2: the line is a list, not an object."
    )


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("c.json", "[" * 100_000 + "]" * 100_000, "c.json:"),
        ("c.json", '[{"mobile": "0912", "x": ' + "[" * 100_000 + "]" * 100_000 + "}]", "c.json:"),
        (
            "c.jsonl",
            '{"mobile": "0912"}\n{"x": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
            "c.jsonl:2:",
        ),
    ],
)
def test_json_nested_too_deeply_is_an_input_error_not_a_crash(
    tmp_path: Path, name: str, text: str, where: str
) -> None:
    """Python's JSON reader gives up past about 1,000 levels with a RecursionError (exit 1, a
    traceback); the reader names the file (and the line of JSON Lines) and what to write."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    message = input_error(path, shown_path=name)
    assert message.startswith(f"{where} lists or objects are nested inside each other too deeply")
    assert message.endswith('like {"mobile": "09121234567", "name": "..."}.')


def test_duplicate_key_inside_one_json_object(tmp_path: Path) -> None:
    """JSON would keep only the last of two equal keys; the reader refuses instead."""
    path = tmp_path / "c.jsonl"
    path.write_text('{"mobile": "0912"}\n{"mobile": "0912", "mobile": "0935"}\n', encoding="utf-8")
    assert input_error(path, shown_path="c.jsonl") == (
        "c.jsonl:2: an object has the key 'mobile' twice. Keep one."
    )


def test_batch_size_must_be_positive() -> None:
    """A zero batch size is a programming error, caught at once."""
    with pytest.raises(ValueError, match="batch_size"):
        open_contacts(DATA / "bom.csv", "mobile", batch_size=0)


# --- cell text ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("0912", "0912"),
        (9123456789, "9123456789"),
        (9123456789.0, "9123456789"),
        (9.12345678e09, "9123456780"),
        (12.5, "12.5"),
        (1e-7, "0.0000001"),
        (float("nan"), ""),
        (Decimal("12.50"), "12.50"),
        (True, "true"),
        (dt.datetime(2024, 3, 20), "2024-03-20"),
        (dt.datetime(2024, 3, 20, 9, 30, 5), "2024-03-20T09:30:05"),
        (dt.date(2024, 3, 20), "2024-03-20"),
        (dt.time(9, 30), "09:30:00"),
        (b"\xd8\xb9", "ع"),
        (["a", 1], '["a", 1]'),
    ],
)
def test_cell_text(value: object, text: str) -> None:
    """Each kind of cell value becomes the text a person would expect to see."""
    assert cell_text(value) == text


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=10**15))
def test_int_valued_floats_never_gain_a_decimal_point(number: int) -> None:
    """Any whole number Excel stores as a float comes back as its digits alone."""
    assert cell_text(float(number)) == str(int(float(number)))


# A cell starting with '= '+ '- '@ is a spreadsheet's formula guard, which the reader drops on
# purpose (tested on its own): such cells do not round-trip, by design.
cell_strategy = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\x00"),
    max_size=12,
).filter(lambda cell: not cell.startswith(("'=", "'+", "'-", "'@")))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(cell_strategy, cell_strategy), max_size=8))
def test_any_csv_round_trips_as_exact_text(rows: list[tuple[str, str]]) -> None:
    """Whatever text csv.writer puts in a file comes back unchanged, with true row numbers."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
            writer.writerow(["name", "mobile"])
            writer.writerows(rows)
        got = rows_of(path, batch_size=3)
    expected = [
        (number, {"name": name, "mobile": mobile})
        for number, (name, mobile) in enumerate(rows, 1)
        if name.strip() or mobile.strip()
    ]
    assert got == expected


@settings(max_examples=40, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["mobile", "name"]), cell_strategy), max_size=6))
def test_any_jsonl_round_trips_as_exact_text(records: list[dict[str, str]]) -> None:
    """Strings written as JSON Lines come back unchanged; empty objects count as rows."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.jsonl"
        lines = [json.dumps({"mobile": "x", "name": "y"})] + [json.dumps(r) for r in records]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        got = rows_of(path)
    expected = [(1, {"mobile": "x", "name": "y"})] + [
        (number, {"mobile": r.get("mobile", ""), "name": r.get("name", "")})
        for number, r in enumerate(records, 2)
        if any(value.strip() for value in r.values())
    ]
    assert got == expected


def test_unclosed_quote_in_the_header_is_an_input_error(tmp_path: Path) -> None:
    """Even the header's own quoting problem is an InputError at open time."""
    path = tmp_path / "c.csv"
    path.write_text('"name,mobile\nA,0912\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"^c\.csv: .*Check the quotes"):
        open_contacts(path, "mobile", shown_path="c.csv")


def test_json_that_is_not_utf8_says_so(tmp_path: Path) -> None:
    """A .jsonl in a Windows code page names the line and asks for UTF-8, without Excel advice."""
    path = tmp_path / "c.jsonl"
    path.write_bytes('{"mobile": "0912"}\n{"name": "سلام"}\n'.encode("cp1256"))
    message = input_error(path, shown_path="c.jsonl")
    assert message.startswith("c.jsonl:2: the file is not UTF-8 text")
    assert message.endswith("save the file again as UTF-8 in a text editor.")


def test_damaged_parquet_is_an_input_error(tmp_path: Path) -> None:
    """A .parquet that is not Parquet names the file and how to fix it."""
    pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "c.parquet"
    path.write_bytes(b"not parquet at all")
    message = input_error(path, shown_path="c.parquet")
    assert message.startswith("c.parquet: cannot be read as a Parquet file (")
    assert message.endswith("save the contacts as .csv.")


# --- what the census proved, now proved by the read itself ------------------------------------


def test_a_row_of_only_delimiters_is_not_read_and_cells_keep_their_spaces(tmp_path: Path) -> None:
    """The rows read are the non-blank ones (`,,` is blank), numbered as in the file, each cell
    exactly as written (" vip.j2" keeps its space: trimming is the caller's)."""
    path = tmp_path / "c.csv"
    path.write_text(
        "mobile,name,template\n09120000001,a, vip.j2\n,,\n09120000002,b,\n09120000003,c,vip.j2\n",
        encoding="utf-8",
    )
    assert [(row, values["template"]) for row, values in rows_of(path)] == [
        (1, " vip.j2"),
        (3, ""),
        (4, "vip.j2"),
    ]


def test_a_ragged_row_far_down_is_refused_when_the_batches_reach_it(tmp_path: Path) -> None:
    """A row with an extra cell past the first read chunk: the first batches come, then reading
    on raises the InputError naming its line and row (a run reads every row before sending)."""
    path = tmp_path / "c.csv"
    rows = "".join(f"0912{i:07d},n\n" for i in range(20_000))
    path.write_text(f"mobile,name\n{rows}09129999999,n,extra\n", encoding="utf-8")
    source = open_contacts(path, "mobile", batch_size=10, shown_path="c.csv")
    assert len(next(source.batches)) == 10  # the read has not met it yet
    with pytest.raises(InputError, match=r"^c\.csv:20002: row 20001 has 3 cells but the header"):
        read_all(source)


def test_parquet_rows_of_nulls_are_not_read(tmp_path: Path) -> None:
    """Parquet: an all-null row is blank; the other rows keep their numbers, values as text."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "c.parquet"
    table = pa.table(
        {
            "mobile": ["09120000001", None, "09120000003"],
            "tier": pa.array([1, None, 2], type=pa.int64()),
        }
    )
    pq.write_table(table, path, row_group_size=2)
    assert rows_of(path) == [
        (1, {"mobile": "09120000001", "tier": "1"}),
        (3, {"mobile": "09120000003", "tier": "2"}),
    ]


def test_a_json_array_is_read_whole_when_opened(tmp_path: Path) -> None:
    """A .json is parsed at open: rewriting the file afterwards changes nothing that is read."""
    array = tmp_path / "c.json"
    array.write_text(json.dumps([{"mobile": "09120000001"}, {"mobile": ""}]), "utf-8")
    source = open_contacts(array, "mobile")
    array.write_text(json.dumps([{"mobile": "09129999999"}]), "utf-8")
    assert [(c.row, c.values) for c in read_all(source)] == [(1, {"mobile": "09120000001"})]


# --- one cell-to-text rule across formats ------------------------------------------------------

TEXTS = ["09121234567", f"زهرا{ZWNJ}سادات", "  padded  ", "12.50", "9.12E+09", "007", ""]
TYPED: dict[str, Any] = {
    "int": 9123456789,
    "whole_float": 9123456789.0,
    "float": 12.5,
    "none": None,
}
TYPED_TEXT = {"int": "9123456789", "whole_float": "9123456789", "float": "12.5", "none": ""}


def each_format(folder: Path, columns: dict[str, list[Any]], formats: list[str]) -> dict[str, Path]:
    """The same table written as each format asked for; SQLite as a file of one table."""
    names, rows = list(columns), list(zip(*columns.values(), strict=True))
    written: dict[str, Path] = {}
    for kind in formats:
        path = folder / f"c.{kind}"
        if kind == "csv":
            with path.open("w", encoding="utf-8", newline="") as handle:
                csv.writer(handle).writerows([names, *rows])
        elif kind == "json":
            path.write_text(json.dumps([dict(zip(names, row, strict=True)) for row in rows]))
        elif kind == "jsonl":
            path.write_text(
                "".join(json.dumps(dict(zip(names, r, strict=True))) + "\n" for r in rows)
            )
        elif kind == "xlsx":
            book = openpyxl.Workbook()
            for row in [names, *rows]:
                book.active.append(list(row))
            book.save(path)
        elif kind == "parquet":
            pq = pytest.importorskip("pyarrow.parquet")
            pq.write_table(pytest.importorskip("pyarrow").table(columns), path)
        else:  # sqlite
            with sqlite3.connect(path) as db:
                db.execute(f"CREATE TABLE t ({', '.join(names)})")
                db.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(names))})", rows)
            db.close()
        written[kind] = path
    return written


def read_back(kind: str, path: Path) -> list[dict[str, str]]:
    if kind == "sqlite":
        source = open_sql(f"sqlite:///{path}", "SELECT * FROM t ORDER BY rowid", "mobile")
    else:
        source = open_contacts(path, "mobile")
    return [contact.values for contact in read_all(source)]


def test_the_same_text_reads_as_the_same_text_in_every_format(tmp_path: Path) -> None:
    """Text cells come back unchanged from CSV (read as str), JSON, JSON Lines, Excel, Parquet
    and SQL alike: leading zeros, spaces, Persian, number-like text."""
    columns = {"mobile": ["0912"] * len(TEXTS), "value": TEXTS}
    formats = ["csv", "json", "jsonl", "xlsx", "parquet", "sqlite"]
    expected = [{"mobile": "0912", "value": text} for text in TEXTS]
    for kind, path in each_format(tmp_path, columns, formats).items():
        assert read_back(kind, path) == expected, kind


def test_the_same_numbers_read_as_the_same_text_in_every_format_that_types_them(
    tmp_path: Path,
) -> None:
    """A number (or a missing value) becomes the same text whichever format stored it: plain
    digits for a whole float, never 9123456789.0, and "" for null."""
    columns: dict[str, list[Any]] = {"mobile": ["0912"], **{k: [v] for k, v in TYPED.items()}}
    expected = [{"mobile": "0912", **TYPED_TEXT}]
    for kind, path in each_format(tmp_path, columns, ["json", "jsonl", "xlsx", "parquet"]).items():
        assert read_back(kind, path) == expected, kind
    sqlite = each_format(tmp_path, columns, ["sqlite"])["sqlite"]
    assert read_back("sqlite", sqlite) == expected


def test_opening_a_file_source_needs_neither_sqlalchemy_nor_openpyxl() -> None:
    """SQLAlchemy (an extra) and openpyxl (0.15 s to import) load only for the sources that
    need them: importing the sources and reading a CSV leaves both out."""
    code = (
        "import sys; from pathlib import Path; from pipeline.sources import open_contacts; "
        f"list(open_contacts(Path({str(DATA / 'bom.csv')!r}), 'mobile').batches); "
        "print(sorted({'sqlalchemy', 'openpyxl'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
