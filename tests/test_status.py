"""`python -m pipeline status CONFIG [--json]`: what the journal knows, read only."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

from pipeline.journal import Journal, State
from pipeline.lock import lock_path
from pipeline.models import Outcome, Status
from pipeline.sandbox_server import SandboxServer
from tests.conftest import (
    Campaign,
    GatedSimulator,
    cli_env,
    live_provider,
    start_cli,
    unstamped,
)

SENT = [f"0912100000{i}" for i in range(5)]
FAILED = ["09122000000"]
UNKNOWN = [f"091230000{i:02d}" for i in range(12)]
PENDING = ["09124000000", "09124000001"]
# 2026-03-20 20:30 UTC is 2026-03-21 00:00 in Tehran.
LAST = "2026-03-20T20:30:00.000+00:00"


def run_status(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m pipeline status CONFIG ...` in this process, from another folder."""
    from pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    os.environ.update(cli_env())
    os.chdir(config.parent.parent)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["status", str(config), *args])
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
    return subprocess.CompletedProcess(["status"], code, out.getvalue(), unstamped(err.getvalue()))


def listing(*folders: Path) -> dict[str, bytes]:
    """Every file under `folders`, with its bytes: what "changes nothing" compares."""
    return {
        str(path): path.read_bytes()
        for folder in folders
        if folder.exists()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def fill_journal(path: Path, campaign: str) -> None:
    """A journal as runs leave it: sent rows (some with delivery reports), failed, unknown,
    pending rows, and another campaign's rows that status must not count."""
    with Journal.open(path, campaign) as journal:
        everyone = SENT + FAILED + UNKNOWN + PENDING
        journal.mark_inflight([(n, "text") for n in everyone])
        journal.record(
            [(n, Outcome(Status.SENT, message_id=str(i), campaign_id="7")) for i, n in
             enumerate(SENT, 1)]
            + [(n, Outcome(Status.FAILED, error="Mobile_Invalid")) for n in FAILED]
            + [(n, Outcome(Status.UNKNOWN, error="timeout")) for n in UNKNOWN]
            + [(n, Outcome(Status.PENDING)) for n in PENDING]
        )  # fmt: skip
        journal.record_deliveries(
            [
                (SENT[0], "delivered", "1", True),
                (SENT[1], "delivered", "1", True),
                (SENT[2], "delivered", "1", True),
                (SENT[3], "not_delivered", "2", True),
            ]
        )
    with Journal.open(path, "other-campaign") as other:
        other.mark_inflight([("09129999999", "text")])
        other.record([("09129999999", Outcome(Status.UNKNOWN, error="timeout"))])
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE messages SET updated_at = ? WHERE campaign = ?", (LAST, campaign))


def live_campaign(campaign: Campaign, server: SandboxServer, **provider: object) -> None:
    campaign.write_config(
        live_provider(server, **provider), extra="suppression:\n  path: lists/optout.txt\n"
    )
    (campaign.folder / "lists").mkdir(exist_ok=True)
    (campaign.folder / "lists" / "optout.txt").write_text(
        "# opted out\n09125550001\n+98 912 555 0002  # replied 11\n۰۹۱۲۵۵۵۰۰۰۳\n", "utf-8"
    )


def test_status_shows_the_journal_without_the_contacts_file(
    campaign: Campaign, server: SandboxServer
) -> None:
    """Counts per state, deliveries and their rate, the last run in Tehran time, the first 10
    unknown numbers with the settle command (the config as typed), the opt-out list's size and
    where the journal and the list are; the contacts file is not needed (it is deleted)."""
    campaign.contacts([(SENT[0], "نام", "C")])
    live_campaign(campaign, server)
    fill_journal(campaign.journal, "test-campaign")
    (campaign.folder / "contacts.csv").unlink()

    result = run_status(campaign.config)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "campaign test-campaign"  # a live config: no "sandbox rows"
    assert lines[1] == f"journal: {campaign.journal}"
    assert "  sent                   5" in lines
    assert "  failed                 1" in lines
    assert "  unknown               12" in lines
    assert "  pending                2" in lines
    assert "  rows                  20" in lines
    assert not any("inflight" in line for line in lines)  # none: not shown
    assert not any("in progress" in line for line in lines)
    assert "deliveries (of the sent rows):" in lines
    assert "  delivered              3" in lines
    assert "  not_delivered          1" in lines
    assert "  not_looked_up          1" in lines
    assert "  rate               75.0%  delivered, of those with a final state" in lines
    assert "last run: 2026-03-21 00:00 Tehran" in lines
    shown = ", ".join(UNKNOWN[:10])
    assert f"unknown: {shown} and 2 more" in lines
    assert "09129999999" not in result.stdout  # another campaign's row
    assert (
        f"  python -m pipeline settle {campaign.config} --as sent|unsent [--numbers FILE]" in lines
    )
    optout = campaign.folder / "lists" / "optout.txt"
    assert f"opt-out list: {optout} (3 numbers)" in lines


def test_status_json_has_every_key(campaign: Campaign, server: SandboxServer) -> None:
    """--json prints one object: campaign, journal, counts (inflight too), deliveries, sandbox,
    last_run (ISO UTC), delivery_rate, every unknown number, the suppression list."""
    live_campaign(campaign, server)
    fill_journal(campaign.journal, "test-campaign")

    result = run_status(campaign.config, "--json")

    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["campaign"] == "test-campaign"
    assert found["sandbox"] is False
    assert found["journal"] == str(campaign.journal)
    assert found["counts"] == {"sent": 5, "failed": 1, "unknown": 12, "pending": 2, "inflight": 0}
    assert found["deliveries"]["delivered"] == 3
    assert found["deliveries"]["not_delivered"] == 1
    assert found["deliveries"]["not_looked_up"] == 1
    assert found["delivery_rate"] == 0.75
    assert found["last_run"] == LAST
    assert found["unknown_numbers"] == UNKNOWN  # all of them, not the first 10
    optout = campaign.folder / "lists" / "optout.txt"
    assert found["suppression"] == {"path": str(optout), "numbers": 3}
    assert found["running"] is False and found["pid"] is None


def test_status_of_a_campaign_that_never_ran_creates_nothing(
    campaign: Campaign, state_home: Path
) -> None:
    """No journal yet: "no run of this campaign yet", every count 0, exit 0, and no file or
    folder is created (not the journal, its folder, nor a lock file). A sandbox config's
    campaign is its sandbox rows; a null suppression.path is "none"."""
    (campaign.folder / "config.yaml").write_text(
        "campaign: spring\ncontacts:\n  path: contacts.csv\ntemplate:\n  text: hi\n"
        "suppression:\n  path: null\n",
        "utf-8",
    )
    before = listing(campaign.folder)

    text = run_status(campaign.config)
    as_json = run_status(campaign.config, "--json")

    assert text.returncode == as_json.returncode == 0, text.stderr + as_json.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "campaign spring (sandbox rows)"
    assert lines[1] == f"journal: {state_home / 'journal.sqlite'}"
    assert "no run of this campaign yet: the journal does not exist" in lines
    assert "  sent                   0" in lines and "  rows                   0" in lines
    assert "opt-out list: none (suppression.path: null)" in lines
    found = json.loads(as_json.stdout)
    assert found["counts"] == dict.fromkeys(["inflight", "sent", "failed", "unknown", "pending"], 0)
    assert (found["sandbox"], found["last_run"], found["delivery_rate"]) == (True, None, None)
    assert (found["unknown_numbers"], found["suppression"]) == ([], None)
    assert not state_home.exists()
    assert listing(campaign.folder) == before


def test_status_changes_nothing(campaign: Campaign, server: SandboxServer) -> None:
    """After runs: the journal's bytes and the folder's files are the same after status as
    before (no -wal or -shm left beside the journal, no lock file made)."""
    live_campaign(campaign, server)
    fill_journal(campaign.journal, "test-campaign")
    before = listing(campaign.folder)
    assert not campaign.journal.with_name("journal.sqlite-wal").exists()

    assert run_status(campaign.config).returncode == 0
    assert run_status(campaign.config, "--json").returncode == 0

    assert listing(campaign.folder) == before


def test_an_unreadable_optout_list_is_named_and_the_rest_still_shown(
    campaign: Campaign, server: SandboxServer
) -> None:
    """A list the run would refuse: status says why, and still shows the journal; exit 0."""
    live_campaign(campaign, server)
    (campaign.folder / "lists" / "optout.txt").write_text("09125550001\nnot a number\n", "utf-8")
    fill_journal(campaign.journal, "test-campaign")

    result = run_status(campaign.config)

    assert result.returncode == 0, result.stderr
    optout = campaign.folder / "lists" / "optout.txt"
    assert f"opt-out list: {optout}:2: «not a number»: no mobile number" in result.stdout
    assert "  sent                   5" in result.stdout.splitlines()
    found = json.loads(run_status(campaign.config, "--json").stdout)
    assert found["suppression"]["numbers"] is None
    assert found["suppression"]["problem"].startswith(f"{optout}:2:")


def test_a_file_that_is_not_a_journal_is_exit_2(campaign: Campaign, server: SandboxServer) -> None:
    """journal.path pointing at something else: the journal's error (exit 2), not a traceback."""
    live_campaign(campaign, server)
    campaign.journal.parent.mkdir()
    campaign.journal.write_bytes(b"this is a spreadsheet, not a journal\n" * 200)
    before = listing(campaign.folder)

    result = run_status(campaign.config)

    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {campaign.journal}: the journal is not a SQLite")
    assert "Traceback" not in result.stderr
    assert listing(campaign.folder) == before


def test_status_during_a_run_says_so_and_takes_no_lock(
    campaign: Campaign, gated: tuple[GatedSimulator, SandboxServer]
) -> None:
    """While a run of the campaign sends (its request held by the fake): "a run is in progress
    (PID n)", its rows in flight counted; the run's lock file and the journal are untouched,
    and the run then finishes normally (status held no lock it could trip on)."""
    sim, server = gated
    numbers = [f"0912600000{i}" for i in range(6)]
    campaign.contacts([(n, "نام", "C") for n in numbers])
    live_campaign(campaign, server, chunk_size=3, concurrency=1, timeout=60)
    run = start_cli(campaign.config)
    try:
        sim.wait_for_arrivals(1)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the second chunk is marked soon after the first
            with Journal.open(campaign.journal, "test-campaign", readonly=True) as journal:
                if journal.counts()[State.INFLIGHT] == 6:
                    break
            time.sleep(0.05)
        lock = lock_path(campaign.journal, "test-campaign")
        lock_before = lock.read_bytes()
        journal_before = campaign.journal.read_bytes()
        names_before = sorted(p.name for p in campaign.journal.parent.iterdir())

        result = run_status(campaign.config)
        as_json = json.loads(run_status(campaign.config, "--json").stdout)

        assert result.returncode == 0, result.stderr
        assert f"a run is in progress (PID {run.pid})" in result.stdout.splitlines()
        assert "  inflight               6  (a run is in progress)" in result.stdout.splitlines()
        assert (as_json["running"], as_json["pid"]) == (True, run.pid)
        assert as_json["counts"]["inflight"] == 6
        assert lock.read_bytes() == lock_before
        assert campaign.journal.read_bytes() == journal_before
        assert sorted(p.name for p in campaign.journal.parent.iterdir()) == names_before
    finally:
        sim.gate.set()
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, out + err
    after = run_status(campaign.config).stdout.splitlines()
    assert "  sent                   6" in after
    assert not any("in progress" in line for line in after)


def test_rows_left_in_flight_by_a_dead_run_are_explained(
    campaign: Campaign, server: SandboxServer
) -> None:
    """Rows in flight with no run holding the lock: a run died; its next run marks them."""
    live_campaign(campaign, server)
    with Journal.open(campaign.journal, "test-campaign") as journal:
        journal.mark_inflight([("09127000001", "text")])  # closed without an answer

    result = run_status(campaign.config)

    assert (
        "  inflight               1  (a run died with them in flight: its next run marks them "
        "unknown)" in result.stdout.splitlines()
    )
