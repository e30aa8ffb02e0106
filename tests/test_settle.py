"""`python -m pipeline settle CONFIG --as sent|unsent [--numbers FILE]`: the operator closes
the campaign's `unknown` rows; the next run sends exactly those settled `unsent`.

The `unknown` rows come from the socket fake's "drop after processing" fault. Settle runs through
the same `main()` in this process (`settle`), and once as a subprocess, as an operator runs it.
"""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.journal import State
from pipeline.lock import hold_lock
from pipeline.sandbox import AmootSimulator, Fault
from pipeline.sandbox_server import SandboxServer
from pipeline.settle import read_numbers
from tests.conftest import Campaign, cli_env, journal_snapshot, live_provider, run_main, sends

NUMBERS = [f"0912000000{i}" for i in range(1, 8)]  # chunk_size 3: requests of 3, 3 and 1


def settle_cli(campaign: Campaign, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m pipeline settle CONFIG ARGS` from the campaign's parent folder."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "settle", str(campaign.config), *args],
        cwd=campaign.folder.parent,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def settle(campaign: Campaign, *args: str) -> subprocess.CompletedProcess[str]:
    """`settle_cli` in this process: the same `main()`, environment and cwd (as run_main)."""
    from pipeline.cli import main

    argv = ["settle", str(campaign.config), *args]
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    os.environ.update(cli_env())
    os.chdir(campaign.folder.parent)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's exit 2
                code = int(exc.code or 0)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


@pytest.fixture
def unknown(campaign: Campaign, server: SandboxServer, simulator: AmootSimulator) -> list[str]:
    """A run whose first two requests lose their answers after the fake processed them: their
    six rows are `unknown` (exit 5), the last one `sent`."""
    campaign.contacts([(n, "نام", f"C{i}") for i, n in enumerate(NUMBERS, 1)])
    campaign.write_config(
        live_provider(server, concurrency=1), extra="suppression:\n  path: null\n"
    )
    simulator.faults.extend([Fault("drop_after"), Fault("drop_after")])
    result = run_main(campaign.config)
    assert result.returncode == 5, result.stdout + result.stderr
    lost = sorted(r["number"] for r in campaign.read_report() if r["status"] == "unknown")
    assert lost == NUMBERS[:6]
    return lost


def journal_files(campaign: Campaign) -> dict[str, bytes]:
    folder = campaign.journal.parent
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name.startswith("journal")}


def test_settled_rows_are_never_resent_and_the_unsent_ones_go_out_on_the_next_run(
    campaign: Campaign, simulator: AmootSimulator, unknown: list[str], tmp_path: Path
) -> None:
    """Two rows settled `sent` from a file of mixed formats (+98..., Persian digits, a header,
    a comment, a number not unknown, one not in the journal), the rest `unsent`: the next run
    sends exactly the four unsent (exit 0), and reports the two `already_sent` with the
    operator's sentence; the journal keeps the attempt's time for the settled-sent rows."""
    before, _ = journal_snapshot(campaign, NUMBERS)
    numbers = tmp_path / "checked.csv"
    numbers.write_text(
        "mobile,note\n"
        "+98 912 000 0001,delivered in the panel\n"
        "۰۹۱۲۰۰۰۰۰۰۲\n"
        "# checked on the panel's report page\n"
        "09120000007\n"
        "0935 000 0000\n",
        encoding="utf-8",
    )
    done = settle_cli(campaign, "--as", "sent", "--numbers", str(numbers))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "not unknown in campaign test-campaign, left as they are: 09120000007 (sent), "
        "09350000000 (not in the journal)",
        "settled 2 unknown row(s) of campaign test-campaign as sent: 09120000001, 09120000002",
        "they are never sent again: the next run reports them already_sent",
    ]
    rest = settle(campaign, "--as", "unsent")
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert rest.stdout.splitlines() == [
        "settled 4 unknown row(s) of campaign test-campaign as unsent: 09120000003, "
        "09120000004, 09120000005, 09120000006",
        "they are pending: the next run sends them",
    ]
    entries, counts = journal_snapshot(campaign, NUMBERS)
    assert counts[State.UNKNOWN] == 0 and counts[State.PENDING] == 4
    for number in NUMBERS[:2]:
        entry = entries[number]
        assert entry.state is State.SENT
        assert entry.updated_at == before[number].updated_at  # the cap counts the attempt
        assert entry.error.startswith("settled as sent by the operator on ")
        assert entry.error.endswith(f"Tehran (after an unknown outcome: {before[number].error})")
    for number in NUMBERS[2:6]:
        assert entries[number].state is State.PENDING
        assert entries[number].error.startswith("settled as unsent by the operator on ")

    seen = len(sends(simulator))
    result = run_main(campaign.config)
    assert result.returncode == 0, result.stdout + result.stderr
    carried = [item["Number"] for r in sends(simulator)[seen:] for item in r.body["Input"]]
    assert sorted(n[-10:] for n in carried) == [n[-10:] for n in NUMBERS[2:6]]
    report = {r["number"]: r for r in campaign.read_report()}
    assert {n: r["status"] for n, r in report.items()} == (
        dict.fromkeys(NUMBERS[:2], "already_sent")
        | dict.fromkeys(NUMBERS[2:6], "sent")
        | {NUMBERS[6]: "already_sent"}
    )
    assert report[NUMBERS[0]]["error"] == entries[NUMBERS[0]].error
    assert report[NUMBERS[6]]["error"] == ""  # a plain earlier send keeps its empty error

    again = settle(campaign, "--as", "sent")
    assert again.returncode == 0, again.stderr
    assert again.stdout == "no unknown rows in campaign test-campaign: nothing to settle\n"
    listed = settle(campaign, "--as", "sent", "--numbers", str(numbers))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[-1] == (
        f"none of the 4 number(s) in {numbers} is unknown in campaign test-campaign: "
        "nothing to settle"
    )


def test_settled_sent_rows_count_towards_another_campaign_s_frequency_cap(
    campaign: Campaign, server: SandboxServer, unknown: list[str]
) -> None:
    """Settled `sent`, a row is a message the number got: a capped campaign suppresses it."""
    assert settle(campaign, "--as", "sent").returncode == 0
    campaign.write_config(
        live_provider(server),
        campaign="spring-1405",
        extra="suppression:\n  path: null\n  frequency_cap: {messages: 1, days: 7}\n",
    )
    result = run_main(campaign.config, "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {r["status"] for r in campaign.read_report()} == {"suppressed"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "# nothing yet\nmobile\n\n",
            "checked.txt: no mobile number in the file. Fix: list the numbers to settle, one per "
            "line (such as 09121234567), or leave out --numbers to settle every unknown row.",
        ),
        (
            "09120000001\n0912 000\n",
            "checked.txt:2: «0912 000»: no mobile number on this line",
        ),
        (
            "09120000001\n09120000002 09120000003\n",
            "checked.txt:2: «09120000002 09120000003»: 2 mobile numbers on one line "
            "(09120000002, 09120000003). Fix: put each number on its own line.",
        ),
    ],
)
def test_a_numbers_file_that_cannot_be_read_changes_nothing(
    campaign: Campaign, unknown: list[str], text: str, message: str
) -> None:
    """No number at all, a line with none or two: exit 2 naming FILE(:LINE) and the fix; the
    journal is unchanged, byte for byte."""
    (campaign.folder.parent / "checked.txt").write_text(text, encoding="utf-8")
    before = journal_files(campaign)
    result = settle(campaign, "--as", "sent", "--numbers", "checked.txt")  # relative to the cwd
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert journal_files(campaign) == before


def test_a_missing_numbers_file_or_journal_is_exit_2(campaign: Campaign, tmp_path: Path) -> None:
    """A --numbers FILE that is not there, or a campaign that never ran (no journal): exit 2,
    and no journal is created."""
    campaign.contacts([(NUMBERS[0], "نام", "C1")])
    campaign.write_config("sandbox: true")
    missing = settle(campaign, "--as", "unsent", "--numbers", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2
    shown = tmp_path / "nope.txt"
    assert f"error: {shown}: no such file. Fix: check the path given to --numbers." in (
        missing.stderr
    )
    never = settle(campaign, "--as", "unsent")
    assert never.returncode == 2
    assert f"error: no journal at {campaign.journal}: this campaign has not run yet" in never.stderr
    assert not campaign.journal.exists()


def test_settle_while_a_run_holds_the_lock_exits_4_and_changes_nothing(
    campaign: Campaign, unknown: list[str]
) -> None:
    """A run in progress (its lock held by another process): settle does nothing, exit 4."""
    before = journal_files(campaign)
    with hold_lock(campaign.journal, "test-campaign"):
        result = settle_cli(campaign, "--as", "sent")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "another run of campaign 'test-campaign' is in progress" in result.stderr
    assert journal_files(campaign) == before


def test_an_unknown_as_value_is_refused_by_the_parser(campaign: Campaign) -> None:
    """`--as maybe`: exit 2, the choices named."""
    campaign.write_config("sandbox: true")
    result = settle(campaign, "--as", "maybe")
    assert result.returncode == 2
    assert "argument --as: invalid choice: 'maybe' (choose from 'sent', 'unsent')" in result.stderr


def test_read_numbers_reads_every_format_once_in_order(tmp_path: Path) -> None:
    """A header, comments, blank lines, +98 and Persian digits, a repeat: the numbers in order."""
    path = tmp_path / "n.txt"
    path.write_text(
        "\ufeffphone\n\n+989120000002  # twice\n۰۹۳۵۰۰۰۰۰۰۰\n9120000002\n", encoding="utf-8"
    )
    assert read_numbers(path) == ["09120000002", "09350000000"]
    path.write_bytes(b"\xff\xfe0912")
    with pytest.raises(InputError, match="not UTF-8 text"):
        read_numbers(path)
    with pytest.raises(InputError, match="is a folder"):
        read_numbers(tmp_path)


def test_rows_a_dead_run_left_in_flight_are_recovered_then_settled(
    campaign: Campaign, unknown: list[str]
) -> None:
    """A row left `inflight` by a killed run becomes `unknown` when settle opens the journal,
    so it is settled with the others."""
    with sqlite3.connect(campaign.journal) as conn:
        conn.execute("UPDATE messages SET state = 'inflight' WHERE number = ?", (NUMBERS[6],))
    conn.close()
    result = settle(campaign, "--as", "unsent")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("settled 7 unknown row(s) of campaign test-campaign as unsent")
    _, counts = journal_snapshot(campaign, NUMBERS)
    assert counts[State.PENDING] == 7 and counts[State.INFLIGHT] == 0
