"""`<campaign>-latest.*` is the newest whole report; report.keep prunes only this campaign's
timestamped reports (with their companions), never a file the pattern could not have written."""

from __future__ import annotations

import errno
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import load_config
from pipeline.models import RunOptions
from pipeline.report_files import old_reports, publish_latest
from pipeline.run import run
from tests.conftest import Campaign, run_main

START = datetime(2026, 3, 20, 8, 0, tzinfo=UTC)  # 11:30 in Tehran: stamp 20260320-113000


def report_section(campaign: Campaign, section: str) -> None:
    """The fixture's config with its report section's path line replaced by `section`."""
    text = campaign.config.read_text("utf-8")
    campaign.config.write_text(text.replace("  path: reports/report.csv\n", section), "utf-8")


def stamped(campaign: Campaign, keep: int, *, xlsx: bool = False) -> None:
    campaign.contacts([("09121234567", "Sara", "A1"), ("09351234567", "Ali", "B2")])
    campaign.write_config("sandbox: true")
    report_section(
        campaign, f"  path: reports/{{campaign}}-{{started}}.csv\n  keep: {keep}\n  xlsx: {xlsx}\n"
    )


def run_at(campaign: Campaign, moment: datetime, **options: Any) -> list[str]:
    details: list[str] = []
    config = load_config(campaign.config)
    run(config, RunOptions(**options), clock=lambda: moment, detail=details.append)
    return [line for line in details if line.startswith("deleted")]  # not the request lines


def test_latest_is_the_newest_report_and_keep_prunes_this_campaigns_old_ones(
    campaign: Campaign,
) -> None:
    """Four runs, keep 2: the two newest reports stay with their page, workbook and attention
    file; -latest.* equals the newest; files the pattern could not have written stay."""
    stamped(campaign, keep=2, xlsx=True)
    reports = campaign.folder / "reports"
    reports.mkdir(mode=0o700)
    strangers = [
        "notes.txt",  # not the pattern
        "other-campaign-20200101-000000.csv",  # another campaign's
        "test-campaign-20200101-000000-copy.csv",  # the operator's copy
        "test-campaign-2020.csv",  # not a stamp
        "test-campaign-20200101-000000.csv.123.partial",  # a run's unfinished file
    ]
    for name in strangers:
        (reports / name).write_text("keep me\n")
    campaign.contacts([("09121234567", "Sara", "A1"), ("0912", "Bad", "B2")])
    details = [run_at(campaign, START + timedelta(minutes=i)) for i in range(4)]

    stamps = ["20260320-113200", "20260320-113300"]  # the two newest
    expected = {f"test-campaign-{s}{end}" for s in stamps for end in (".csv", ".html", ".xlsx")}
    expected |= {f"test-campaign-{s}-attention.csv" for s in stamps}
    expected |= {f"test-campaign-latest{end}" for end in (".csv", ".html", ".xlsx")}
    assert {p.name for p in reports.iterdir()} == expected | set(strangers)
    newest = reports / "test-campaign-20260320-113300"
    for end in (".csv", ".html", ".xlsx"):
        latest = reports / f"test-campaign-latest{end}"
        assert latest.read_bytes() == newest.with_suffix(end).read_bytes()
        assert stat.S_IMODE(latest.stat().st_mode) == 0o600
    assert details[0] == details[1] == []  # nothing to delete yet
    gone = sorted(line.rsplit("/", 1)[1] for line in details[2])
    assert gone == [
        "test-campaign-20260320-113000-attention.csv",
        "test-campaign-20260320-113000.csv",
        "test-campaign-20260320-113000.html",
        "test-campaign-20260320-113000.xlsx",
    ]
    assert all(line.startswith("deleted an old report (report.keep: 2): ") for line in details[2])


def test_a_report_path_without_started_is_one_file_and_nothing_is_deleted(
    campaign: Campaign,
) -> None:
    """report.path with no {started}: each run replaces it; keep 1 deletes nothing."""
    campaign.contacts([("09121234567", "Sara", "A1")])
    campaign.write_config("sandbox: true")
    report_section(campaign, "  path: reports/report.csv\n  keep: 1\n")
    (campaign.folder / "reports").mkdir()
    (campaign.folder / "reports" / "test-campaign-20200101-000000.csv").write_text("old\n")
    for i in range(2):
        assert run_at(campaign, START + timedelta(minutes=i)) == []
    latest = campaign.folder / "reports" / "test-campaign-latest.csv"
    assert latest.read_bytes() == campaign.report.read_bytes()
    assert (campaign.folder / "reports" / "test-campaign-20200101-000000.csv").exists()


def test_verbose_names_what_it_deleted_and_the_summary_does_not(campaign: Campaign) -> None:
    """From the command line: --verbose says which old report went; the summary stays as it was."""
    stamped(campaign, keep=1)
    reports = campaign.folder / "reports"
    reports.mkdir()
    old = reports / "test-campaign-20200101-000000.csv"
    old.write_text("old\n")
    old.with_suffix(".html").write_text("old\n")
    quiet = run_main(campaign.config)
    assert quiet.returncode == 0, quiet.stderr
    assert not old.exists() and not old.with_suffix(".html").exists()
    assert "deleted" not in quiet.stdout + quiet.stderr

    old.write_text("old\n")
    loud = run_main(campaign.config, "--verbose")
    assert loud.returncode == 0, loud.stderr
    assert f"deleted an old report (report.keep: 1): {old}" in loud.stderr
    assert "deleted" not in loud.stdout
    assert not old.exists()


def test_keep_below_one_is_a_config_error(campaign: Campaign) -> None:
    stamped(campaign, keep=0)
    result = run_main(campaign.config)
    assert result.returncode == 2
    assert "report.keep" in result.stderr
    assert not (campaign.folder / "reports").exists()


def test_latest_is_a_copy_where_the_filesystem_has_no_hard_links(tmp_path: Path) -> None:
    """EPERM from link() (FAT, some shares): a private copy, renamed into place."""
    source = tmp_path / "r.csv"
    source.write_text("new\n")
    latest = tmp_path / "c-latest.csv"
    latest.write_text("old\n")

    def no_links(_src: object, _dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    publish_latest(source, latest, link=no_links)
    assert latest.read_text() == "new\n"
    assert not os.path.samefile(source, latest)
    assert stat.S_IMODE(latest.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c-latest.csv", "r.csv"]


def test_a_link_failure_that_is_not_about_links_is_raised(tmp_path: Path) -> None:
    source = tmp_path / "r.csv"
    source.write_text("new\n")

    def full(_src: object, _dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        publish_latest(source, tmp_path / "c-latest.csv", link=full)
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]


def test_the_stamp_must_be_the_same_wherever_the_pattern_repeats_it(tmp_path: Path) -> None:
    """{started} in the folder and the name: a file whose two stamps differ is not a report."""
    pattern = str(tmp_path / "{started}" / "{campaign}-{started}.csv")
    for folder, name in [
        ("20260101-000000", "c-20260101-000000.csv"),
        ("20260102-000000", "c-20260102-000000.csv"),
        ("20260103-000000", "c-20260101-000000.csv"),  # mismatched: not ours
    ]:
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_text("x\n")
    current = tmp_path / "20260102-000000" / "c-20260102-000000.csv"
    assert old_reports(pattern, "c", current, keep=1) == [
        tmp_path / "20260101-000000" / "c-20260101-000000.csv"
    ]
