"""Mistakes in the input or config found before sending: exit 2, a fix, nothing sent.

Each test runs the command line (in-process, `run_main`) against the socket-served fake and
checks the three promises of exit 2: the message names where and how to fix it, the fake
received no request, and nothing was written (no journal, no report, inputs unchanged).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from pipeline.sandbox import AmootSimulator
from pipeline.sandbox_server import SandboxServer
from tests.conftest import TOKEN, Campaign, live_provider, run_main


@pytest.fixture
def live(campaign: Campaign, server: SandboxServer) -> Campaign:
    """A campaign that would send to the socket-served fake, with two good rows."""
    campaign.contacts([("09121111111", "علی", "C1"), ("09122222222", "سارا", "C2")])
    campaign.write_config(live_provider(server))
    return campaign


def refused(
    campaign: Campaign, simulator: AmootSimulator, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run the campaign and check exit 2, nothing received, nothing written; the result."""
    contacts = (campaign.folder / "contacts.csv").read_bytes()
    result = run_main(campaign.config, *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.rstrip().endswith("Nothing was sent.")
    assert simulator.requests == []
    assert not campaign.journal.exists()
    assert not (campaign.folder / "reports").exists()
    assert (campaign.folder / "contacts.csv").read_bytes() == contacts
    assert TOKEN not in result.stderr + result.stdout
    return result


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The message after `error: ` (the first line of stderr that has it)."""
    line = next(line for line in result.stderr.splitlines() if line.startswith("error: "))
    return line.removeprefix("error: ")


def test_a_row_with_fewer_cells_is_refused_instead_of_sent_with_blanks(live, simulator):
    """The issue's row: `09122222222` alone under `mobile,first_name,code` was sent as
    `عزیز، کد تخفیف شما  است.`; now the run stops before the first request."""
    path: Path = live.folder / "contacts.csv"
    path.write_text(path.read_text("utf-8") + "09123333333\n", "utf-8")
    message = error_line(refused(live, simulator))
    assert message.startswith("contacts.csv:4: row 3 has 1 cell but the header has 3")
    assert "Fix: give the row a cell for every column" in message


def test_a_json_source_nested_too_deeply_is_refused_not_a_traceback(live, simulator):
    """`[[[[...]]]]` 100,000 deep made Python's JSON reader raise RecursionError (exit 1)."""
    (live.folder / "contacts.json").write_text("[" * 100_000 + "]" * 100_000, "utf-8")
    text = live.config.read_text("utf-8")
    live.config.write_text(text.replace("path: contacts.csv", "path: contacts.json"), "utf-8")
    message = error_line(refused(live, simulator))
    assert message.startswith("contacts.json: lists or objects are nested inside each other")
    assert "Fix: write each contact as an object of plain values" in message


def test_an_unquoted_impossible_send_at_is_refused_with_its_line(live, simulator):
    """`send_at: 2026-02-30 10:00:00` unquoted made PyYAML raise ValueError (exit 1)."""
    text = live.config.read_text("utf-8") + "schedule:\n  send_at: 2026-02-30 10:00:00\n"
    live.config.write_text(text, "utf-8")
    message = error_line(refused(live, simulator))
    line = text.splitlines().index("  send_at: 2026-02-30 10:00:00") + 1
    assert message.startswith(f"{live.config}:{line}: schedule.send_at: '2026-02-30 10:00:00' is")
    assert "Fix: correct it" in message


def test_a_yaml_alias_bomb_in_the_config_is_refused_at_once(live, simulator):
    """The billion laughs under an unknown key ran for hours expanding ${VAR}s; now: exit 2."""
    lines = ['  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 10)]
    live.config.write_text(live.config.read_text("utf-8") + "laughs:\n" + "\n".join(lines), "utf-8")
    started = time.monotonic()
    message = error_line(refused(live, simulator))
    assert time.monotonic() - started < 1
    assert message.startswith(f"{live.config}: its aliases (*name) expand to more than 10,000")


def test_a_report_path_with_an_unknown_field_is_refused_before_the_run(live, simulator):
    """`{date}` made str.format raise KeyError when the run started (exit 1, a traceback)."""
    text = live.config.read_text("utf-8").replace("reports/report.csv", "reports/{date}.csv")
    live.config.write_text(text, "utf-8")
    message = error_line(refused(live, simulator))
    line = text.splitlines().index("  path: reports/{date}.csv") + 1
    assert message.startswith(f"{live.config}:{line}: report.path: {{date}} is not a field it")
