"""Parquet rows with every cell null, NaN or blank text: blank as in a CSV, and counted alike."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.sources import open_contacts
from tests.conftest import Campaign, live_provider, run_cli

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pd = pytest.importorskip("pandas")


def contacts_in(campaign: Campaign, name: str) -> None:
    text = campaign.config.read_text("utf-8").replace("path: contacts.csv", f"path: {name}")
    campaign.config.write_text(text, "utf-8")


def rows_read(path: Path) -> list[int]:
    return [contact.row for batch in open_contacts(path, "mobile").batches for contact in batch]


def test_a_nan_row_written_by_pyarrow_is_blank_and_the_progress_ends_at_100(
    campaign: Campaign, server
) -> None:
    """pyarrow keeps NaN in a float column (pandas turns it into null): a row of null and NaN
    is blank, as an empty CSV row is; it is not counted, so progress reaches 100 %."""
    table = pa.table(
        {
            "mobile": ["09120000001", None, "09120000003"],
            "first_name": ["a", None, "c"],
            "code": pa.array([1.5, math.nan, 2.5], type=pa.float64()),
        }
    )
    pq.write_table(table, campaign.folder / "contacts.parquet")
    campaign.write_config(live_provider(server))
    contacts_in(campaign, "contacts.parquet")
    result = run_cli(campaign.config)
    assert result.returncode == 0, result.stderr
    assert "sending: 2 rows to go through" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("processed 2/2 rows (100%)")
    report = campaign.read_report()
    assert [(r["row"], r["status"]) for r in report] == [("1", "sent"), ("3", "sent")]


def test_a_row_of_empty_text_written_by_pandas_is_blank_and_not_counted(tmp_path: Path) -> None:
    """pandas writes "" and "  " as text: a row of them is blank (row numbers still count it),
    in a category column too."""
    frame = pd.DataFrame(
        {
            "mobile": ["09120000001", "", "09120000003", " \u3000"],
            "name": ["a", "  ", "c", "\t"],
            "tier": pd.Categorical(["gold", "", "gold", ""]),
            "score": [1.0, float("nan"), 2.0, None],
        }
    )
    path = tmp_path / "c.parquet"
    frame.to_parquet(path)
    assert rows_read(path) == [1, 3]


BLANKISH = st.one_of(
    st.none(), st.just(""), st.just(" "), st.just("\u00a0\t"), st.just("x"), st.just("0912")
)
FLOATS = st.one_of(st.none(), st.just(math.nan), st.just(1.0))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(BLANKISH, BLANKISH, FLOATS), min_size=1, max_size=12))
def test_the_rows_read_are_exactly_the_rows_with_a_filled_cell(
    rows: list[tuple[str | None, str | None, float | None]],
) -> None:
    """Whatever mix of null, NaN, empty and whitespace cells, the rows read are the rows with a
    cell that is not null, NaN or whitespace, numbered by their place in the file."""
    mobile, name, score = zip(*rows, strict=True)
    table = pa.table(
        {
            "mobile": pa.array(mobile, type=pa.string()),
            "name": pa.array(name, type=pa.large_string()),
            "score": pa.array(score, type=pa.float64(), from_pandas=False),
        }
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.parquet"
        pq.write_table(table, path)
        read = rows_read(path)
    filled = [
        number
        for number, (mobile, name, score) in enumerate(rows, 1)
        if (mobile or "").strip()
        or (name or "").strip()
        or (score is not None and not math.isnan(score))
    ]
    assert read == filled
