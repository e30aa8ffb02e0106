"""Mistakes in the input or config found before sending: exit 2, a fix, nothing sent.

Each test runs the command line (in-process, `run_main`) against the socket-served fake and
checks the three promises of exit 2: the message names where and how to fix it, the fake
received no request, and nothing was written (no journal, no report, inputs unchanged).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.sandbox import AmootSimulator
from pipeline.sandbox_server import SandboxServer
from tests.conftest import (
    TOKEN,
    Campaign,
    cli_env,
    journal_snapshot,
    live_provider,
    run_main,
    unstamped,
)


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


def _report_at(campaign: Campaign, path: str) -> None:
    text = campaign.config.read_text("utf-8")
    campaign.config.write_text(text.replace("reports/report.csv", path), "utf-8")


def test_a_report_path_that_is_a_folder_is_refused_before_sending(live, simulator, tmp_path):
    """`report.path: out` with out/ a folder sent everything, then failed to put the report in
    place (IsADirectoryError, exit 1). Now: exit 2 before the first request."""
    (live.folder / "out").mkdir()
    _report_at(live, "out")
    message = error_line(refused(live, simulator))
    assert message == (
        "config.yaml: report.path: out is a folder. Fix: give the report a file of its own, "
        "such as reports/{campaign}-{started}.csv."
    )


@pytest.mark.parametrize(
    ("setting", "name"),
    [
        ("contacts.csv", "the contacts file (contacts.path)"),
        ("optout.txt", "the suppression list (suppression.path)"),
        ("message.j2", "the template (template.path)"),
        ("state/journal.sqlite", "the journal (journal.path)"),
        ("state/journal.sqlite-wal", "a file of the journal"),
        ("state/journal.sqlite.lock", "the journal's lock file"),
        ("state/journal.sqlite.test-campaign.lock", "the campaign's lock file"),
        ("config.yaml", "the config file itself"),
        ("linked.csv", "the contacts file (contacts.path)"),  # a symlink to it
    ],
)
def test_a_report_path_onto_a_file_the_campaign_needs_is_refused(live, simulator, setting, name):
    """The report silently replaced the contacts or the opt-out list. Now: exit 2, naming
    which file it is; the contacts, the list and the template are unchanged byte for byte."""
    (live.folder / "optout.txt").write_text("09129999999\n", "utf-8")
    (live.folder / "linked.csv").symlink_to("contacts.csv")
    live.write_config(live_provider_of(live), extra="suppression:\n  path: optout.txt\n")
    _report_at(live, setting)
    kept = {f: (live.folder / f).read_bytes() for f in ("optout.txt", "message.j2", "config.yaml")}
    message = error_line(refused(live, simulator))
    assert message.startswith(f"config.yaml: report.path: {setting} is {name}: the run would ")
    assert message.endswith(
        "Fix: give the report a file of its own, such as reports/{campaign}-{started}.csv."
    )
    assert {f: (live.folder / f).read_bytes() for f in kept} == kept


def test_a_fed_back_attention_file_is_not_overwritten_by_the_next_attention_file(live, simulator):
    """Reading `reports/report-attention.csv` back in as the contacts: the run's own attention
    file would have replaced it. Now: exit 2, with the way out (rename it first)."""
    attention = live.folder / "attention" / "report-attention.csv"
    attention.parent.mkdir()
    attention.write_text("mobile,first_name,code\n09121111111,علی,C1\n", "utf-8")
    text = live.config.read_text("utf-8").replace("path: contacts.csv", f"path: {attention}")
    live.config.write_text(text.replace("reports/report.csv", "attention/report.csv"), "utf-8")
    before = attention.read_bytes()
    message = error_line(refused(live, simulator))
    assert message == (
        "config.yaml: report.path: attention/report.csv puts the rows that need attention in "
        "attention/report-attention.csv, which is the contacts file (contacts.path): the run "
        "would overwrite it. Fix: give the report a file of its own, such as "
        "reports/{campaign}-{started}.csv (to read an attention file back in, rename it first)."
    )
    assert attention.read_bytes() == before


def live_provider_of(campaign: Campaign) -> str:
    """The provider section already in the campaign's config (to rewrite the rest)."""
    text = campaign.config.read_text("utf-8")
    section = text.split("provider:\n", 1)[1].split("report:\n", 1)[0]
    return "\n".join(line.removeprefix("  ") for line in section.splitlines())


def _template_at(campaign: Campaign, name: str) -> None:
    text = campaign.config.read_text("utf-8")
    campaign.config.write_text(text.replace("path: message.j2", f"path: {name}"), "utf-8")


def test_a_template_saved_as_ansi_says_so_and_how_to_save_it_as_utf8(live, simulator):
    """Notepad's "ANSI" on Persian Windows is Windows-1256: read_text raised UnicodeDecodeError
    (exit 1, a traceback). Now the message names the file and line, the likely encoding and the
    Notepad steps."""
    text = "{{ first_name }} عزيز، کد تخفيف شما {{ code }} است.\n"
    (live.folder / "ansi.j2").write_bytes(text.encode("cp1256"))
    _template_at(live, "ansi.j2")
    message = error_line(refused(live, simulator))
    assert message == (
        'ansi.j2:1: the file is not UTF-8 text (byte 0xDA); it looks like Windows-1256 ("ANSI", '
        "as Notepad saves on Persian Windows). Fix: save it as UTF-8 (in Notepad: File > Save "
        "As, Encoding: UTF-8)."
    )


def test_a_template_path_that_is_a_folder_is_refused(live, simulator):
    """read_text on a folder raised IsADirectoryError (exit 1)."""
    (live.folder / "templates").mkdir()
    _template_at(live, "templates")
    message = error_line(refused(live, simulator))
    assert message == (
        "templates: is a folder, not a template file. Fix: name the file itself, not its folder."
    )


def test_a_template_this_user_cannot_read_is_refused(live, simulator):
    """A PermissionError (or an I/O error) reading it raised a traceback (exit 1). Root reads
    any file whatever its mode, so as root the template is one the kernel refuses even to root:
    a link to /proc/self/mem, whose first page is never mapped (EIO)."""
    if os.geteuid() == 0:
        (live.folder / "locked.j2").symlink_to("/proc/self/mem")
        reason = "Input/output error"
    else:
        (live.folder / "locked.j2").write_text("{{ code }}", "utf-8")
        (live.folder / "locked.j2").chmod(0)
        reason = "Permission denied"
    _template_at(live, "locked.j2")
    message = error_line(refused(live, simulator))
    assert message.endswith(
        f"locked.j2: cannot be read ({reason}). Fix: let this user read it (chmod u+r), or copy "
        "it to a readable file."
    )


FILE_LIMIT = 1 << 20  # bytes a file may grow to in the run below: the journal fits, the spool not


def test_a_full_disk_while_rows_are_prepared_is_exit_2_and_nothing_is_sent(
    campaign, server, simulator
):
    """A sending run first plans every row into a spool file
    beside the journal. A disk that fills there raised OSError from pickle (exit 1, a
    traceback). Now: exit 2 naming the folder and the fix; no request, no row journalled.

    The full disk is real, not patched: the run's process may not grow any file past 1 MiB
    (RLIMIT_FSIZE, with SIGXFSZ ignored so the write fails with EFBIG, as ENOSPC would)."""
    rows = [{"mobile": f"0912{i:07d}", "first_name": "نام", "code": f"C{i}"} for i in range(20_000)]
    contacts = campaign.folder / "contacts.jsonl"
    contacts.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    campaign.write_config(live_provider(server))
    text = campaign.config.read_text("utf-8").replace("path: contacts.csv", "path: contacts.jsonl")
    campaign.config.write_text(text, "utf-8")
    limited = (
        "import resource, runpy, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({FILE_LIMIT}, {FILE_LIMIT}))\n"
        f"sys.argv = ['pipeline', {str(campaign.config)!r}]\n"
        "runpy.run_module('pipeline', run_name='__main__', alter_sys=True)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", limited],
        cwd=campaign.folder.parent,
        env=cli_env({"PYTHONDONTWRITEBYTECODE": "1"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    result.stderr = unstamped(result.stderr)
    assert result.returncode == 2, result.stderr
    assert error_line(result) == (
        f"{campaign.journal.parent}: cannot keep the prepared rows there until sending starts "
        "(File too large). Fix: free space on that disk, or point journal.path at a folder on "
        "a disk with room (the rows are kept beside the journal)."
    )
    assert result.stderr.rstrip().endswith("Nothing was sent.")
    assert simulator.requests == []
    assert sum(journal_snapshot(campaign, [])[1].values()) == 0
    assert not (campaign.folder / "reports").exists()
    assert list(campaign.journal.parent.glob("pipeline-spool-*")) == []


def test_rows_still_buffered_when_the_plan_ends_meet_the_full_disk_then(tmp_path):
    """The last rows of a plan may still sit in the file's buffer: they are written when
    the sending pass is handed the spool, not when it starts reading, so a full disk is still
    the SpoolError (exit 2) rather than a disk error once the run is under way."""
    script = (
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))\n"
        "from pathlib import Path\n"
        "from pipeline.errors import SpoolError\n"
        "from pipeline.models import Row\n"
        "from pipeline.plan import Spool\n"
        f"spool = Spool(Path({str(tmp_path)!r}))\n"
        "spool.write([Row(row=1, phone='09121111111', values={})])  # buffered: fits\n"
        "try:\n"
        "    spool.batches()\n"
        "except SpoolError as exc:\n"
        "    print(exc.exit_code, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=cli_env({"PYTHONDONTWRITEBYTECODE": "1"}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.stdout.startswith(f"2 {tmp_path}: cannot keep the prepared rows"), result.stderr
