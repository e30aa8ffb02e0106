"""The attention file: fed back as contacts it gives the original cells; a stale one goes."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import load_config
from pipeline.models import RunOptions, Status
from pipeline.report import safe_cell
from pipeline.run import RunResult, run
from pipeline.sandbox import AmootSimulator
from pipeline.sources import open_contacts
from tests.conftest import TOKEN, Campaign

PROVIDER = "sandbox: false\ntoken: ${AMOOT_TOKEN}\nchunk_size: 2\nconcurrency: 1"


def send(campaign: Campaign, sim: AmootSimulator, contacts: str = "contacts.csv") -> RunResult:
    campaign.write_config(PROVIDER)
    config = campaign.config.read_text("utf-8").replace(
        "  path: contacts.csv\n", f"  path: {contacts}\n"
    )
    campaign.config.write_text(config, "utf-8")
    return run(
        load_config(campaign.config), RunOptions(), transport=httpx.MockTransport(sim.handle)
    )


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> AmootSimulator:
    monkeypatch.setenv("AMOOT_TOKEN", TOKEN)
    return AmootSimulator(token=TOKEN)


def test_an_attention_file_fed_back_sends_the_original_cells(
    campaign: Campaign, sim: AmootSimulator
) -> None:
    """The attention file guards `@Ali` as `'@Ali` for spreadsheets; fed back as contacts (as
    the README says) the message holds `@Ali` and `-20%`, never the guard's apostrophe."""
    campaign.contacts([("0212", "@Ali", "-20%"), ("09120000002", "Sara", "C2")])
    first = send(campaign, sim)
    assert first.attention_path is not None
    attention = first.attention_path.read_text("utf-8-sig")
    assert attention.splitlines()[1].startswith("0212,'@Ali,'-20%,invalid,")  # guarded
    # The operator fixes the number and feeds the file back under a name of its own (the run
    # refuses to write its next attention file over its contacts).
    fixed = attention.replace("0212,", "09120000001,")
    (first.attention_path.parent / "fixed.csv").write_text(fixed, "utf-8-sig")
    second = send(campaign, sim, contacts="reports/fixed.csv")
    assert second.counts[Status.SENT] == 1
    assert [(a.number, a.text) for a in sim.accepted][-1] == (
        "9120000001",
        "@Ali عزیز، کد تخفیف شما -20%",
    )


def read_cells(path: Path) -> list[dict[str, str]]:
    source = open_contacts(path, "mobile")
    return [contact.values for batch in source.batches for contact in batch]


def test_only_a_formula_guard_is_dropped_from_a_csv_cell(tmp_path: Path) -> None:
    """An apostrophe right before = + - @ is a guard (dropped); any other apostrophe is data."""
    path = tmp_path / "contacts.csv"
    cells = ["'@Ali", "'-20%", "'=1+2", "'+98 912", "''@x", "'0912", "O'Brien", "'", "it's"]
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("mobile", "name"), *[("09120000001", c) for c in cells]])
    assert [row["name"] for row in read_cells(path)] == [
        "@Ali",
        "-20%",
        "=1+2",
        "+98 912",
        "''@x",
        "'0912",
        "O'Brien",
        "'",
        "it's",
    ]


def test_a_json_cell_keeps_its_apostrophe(tmp_path: Path) -> None:
    """Only delimited files carry formula guards: a JSON value is the contact's own text."""
    path = tmp_path / "contacts.json"
    path.write_text(json.dumps([{"mobile": "09120000001", "name": "'@Ali"}]), "utf-8")
    assert read_cells(path) == [{"mobile": "09120000001", "name": "'@Ali"}]


# Cells a spreadsheet user types: formulas' first characters, quotes, commas, Persian.
CELLS = st.text(alphabet="=+-@'\",\n ;.()%0123456789aB سلام۰۹", min_size=1, max_size=10)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(CELLS, min_size=1, max_size=8))
def test_what_the_guard_writes_the_reader_gives_back(values: list[str]) -> None:
    """Any cell written through safe_cell into a CSV reads back as the original, unless it
    itself starts with an apostrophe before = + - @ (it then loses that apostrophe)."""
    values = [v for v in values if not v.startswith(("'=", "'+", "'-", "'@"))]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "attention.csv"
        with path.open("w", encoding="utf-8-sig", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(("mobile", "name"))
            writer.writerows(("09120000001", safe_cell(v)) for v in values)
        assert [row["name"] for row in read_cells(path)] == values


def test_a_stale_attention_file_is_removed_when_nothing_needs_attention(
    campaign: Campaign, sim: AmootSimulator
) -> None:
    """report.path without {started}: a later run with nothing to attend to removes the
    attention file an earlier run left, so it cannot be mistaken for this run's."""
    campaign.contacts([("0212", "a", "C1"), ("09120000002", "b", "C2")])
    first = send(campaign, sim)
    assert first.attention_path is not None and first.attention_path.exists()
    campaign.contacts([("09120000001", "a", "C1"), ("09120000002", "b", "C2")])
    second = send(campaign, sim)
    assert second.attention_path is None
    assert not first.attention_path.exists()
    assert sorted(p.name for p in campaign.report.parent.iterdir()) == [
        "report.csv", "report.html", "test-campaign-latest.csv", "test-campaign-latest.html",
    ]  # fmt: skip
