"""Replies honoured end to end, against the socket-served fake: `python -m pipeline replies`,
the sending run that reads them first, a kill -9, a provider error, the shipped sandbox."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from pipeline.journal import Journal
from pipeline.journal import Reply as JournalReply
from pipeline.sandbox import AmootSimulator, Fault, Reply
from pipeline.sandbox_server import SandboxServer
from tests.conftest import (
    REPO,
    TOKEN,
    Campaign,
    GatedSimulator,
    cli_env,
    live_provider,
    run_main,
    sends,
    start_cli,
)

LINE = "50001234"
ZWNJ = "\u200c"


def replies_main(
    config: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m pipeline replies CONFIG` in this process (as conftest's run_main)."""
    from pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    os.environ.update(cli_env(env))
    os.chdir(config.parent.parent)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["replies", str(config)])
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
    return subprocess.CompletedProcess(
        ["replies", str(config)], code, out.getvalue(), err.getvalue()
    )


def replies_cli(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "replies", str(config)],
        cwd=config.parent.parent, env=cli_env(), capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


def reads(sim: AmootSimulator) -> int:
    return sum(1 for r in list(sim.requests) if r.method == "RecieveNewMessages")


def optout_lines(state_home: Path) -> list[str]:
    path = state_home / "optout.txt"
    if not path.exists():
        return []
    return [line for line in path.read_text("utf-8").splitlines() if not line.startswith("#")]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def setup(campaign: Campaign, server: SandboxServer, *, line: str = LINE, extra: str = "") -> None:
    campaign.contacts([
        ("09121234567", "علی", "A1"), ("09121234568", "سارا", "B2"), ("09121234569", "رضا", "C3"),
    ])  # fmt: skip
    server.sim.line_numbers.append(LINE)  # the account's dedicated line
    campaign.write_config(live_provider(server, line_number=f'"{line}"'), extra=extra)


def test_replies_in_every_digit_form_opt_out_and_a_question_is_listed_for_reading(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator, state_home: Path
) -> None:
    """۱۱, ١١, 11, «لغو ۱۱», «لغو‌۱۱» (ZWNJ), STOP and Off each put their number on the shared
    opt-out list once; a question is `other`, read in the CSV; a second read finds 0 new."""
    setup(campaign, server)
    forms = ["۱۱", "١١", "11", "لغو ۱۱", f"لغو{ZWNJ}۱۱", "STOP", "Off"]
    numbers = [f"0912000{i:04d}" for i in range(len(forms))]
    for number, text in zip(numbers, forms, strict=True):
        simulator.add_reply(number, text)
    simulator.add_reply("+989350000000", "سلام، قیمت چنده؟")
    done = replies_main(campaign.config)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"replies (live, line {LINE}): 8 new"
    assert lines[1] == "  opted out        7"
    assert lines[2] == "    " + ", ".join(numbers)
    csv_name = next(p.name for p in (campaign.folder / "reports").glob("replies-*.csv"))
    assert lines[3] == f"  other            1   read them in reports/{csv_name}"
    assert lines[4] == f"opt-out list: {state_home / 'optout.txt'} (7 numbers)"
    listed = optout_lines(state_home)
    assert [line.split()[0] for line in listed] == numbers
    assert listed[3].startswith("09120000003  # replied «لغو ۱۱» on ")
    rows = read_csv(campaign.folder / "reports" / csv_name)
    assert [r["action"] for r in rows] == ["opted_out"] * 7 + ["other"]
    assert rows[-1]["number"] == "09350000000" and rows[-1]["mobile"] == "+989350000000"
    assert oct((campaign.folder / "reports" / csv_name).stat().st_mode & 0o777) == "0o600"
    assert oct((state_home / "optout.txt").stat().st_mode & 0o777) == "0o600"

    again = replies_main(campaign.config)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == f"replies (live, line {LINE}): 0 new"
    assert optout_lines(state_home) == listed


def test_twelve_after_eleven_is_off_the_list_and_an_operator_listed_number_stays(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator, state_home: Path
) -> None:
    """11 then 12 ends off the list; 12 from a number the operator listed keeps it listed,
    with a note saying to remove the line by hand if they really opted back in."""
    setup(campaign, server)
    state_home.mkdir(parents=True, exist_ok=True)
    (state_home / "optout.txt").write_text("09350000000  complained by phone\n", "utf-8")
    simulator.add_reply("09121234567", "11", received_at="2026-12-01T09:00:00")
    assert replies_main(campaign.config).returncode == 0
    assert [line.split()[0] for line in optout_lines(state_home)] == ["09350000000", "09121234567"]
    simulator.add_reply("09121234567", "۱۲", received_at="2026-12-01T10:00:00")
    simulator.add_reply("09350000000", "12", received_at="2026-12-01T10:01:00")
    done = replies_main(campaign.config)
    assert done.returncode == 0, done.stderr
    assert "  opted in         2\n    09121234567, 09350000000 (kept: listed by hand)\n" in (
        done.stdout
    )
    assert (
        "note: 09350000000 replied 12 (opt back in) but stay on the opt-out list: listed by the "
        "operator or the provider; remove that line by hand if they really opted back in."
    ) in done.stderr
    assert optout_lines(state_home) == ["09350000000  complained by phone"]


def test_the_sending_run_reads_replies_first_and_those_numbers_are_suppressed(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator, state_home: Path
) -> None:
    """A dedicated line with read_replies auto: the run reads the new replies before the plan;
    whoever replied «۱۱» since the last campaign is `suppressed` in this one; its summary says
    how many were read and where they are listed."""
    setup(campaign, server)
    simulator.add_reply("09121234568", "لغو ۱۱")
    simulator.add_reply("09121234569", "کی ارسال میشه؟")
    done = run_main(campaign.config)
    assert done.returncode == 0, done.stdout + done.stderr
    statuses = {r["number"]: (r["status"], r["error"]) for r in campaign.read_report()}
    status, why = statuses["09121234568"]  # the row says which reply it was
    assert status == "suppressed" and why.startswith("replied «لغو ۱۱» on "), why
    assert statuses["09121234567"][0] == statuses["09121234569"][0] == "sent"
    methods = [r.method for r in simulator.requests]
    assert methods.index("RecieveNewMessages") < methods.index("SendPeerToPeer")
    csv_path = next((campaign.folder / "reports").glob("replies-*.csv"))
    assert f"  replies              2  new: 1 opted out, 0 opted in, 1 other ({csv_path})" in (
        done.stdout.splitlines()
    )
    assert [line.split()[0] for line in optout_lines(state_home)] == ["09121234568"]


def test_a_public_line_with_auto_does_not_read_replies(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
) -> None:
    """Replies to the shared line do not reach the account: with auto the run never asks."""
    setup(campaign, server, line="public")
    simulator.add_reply("09121234568", "11")
    done = run_main(campaign.config)
    assert done.returncode == 0, done.stderr
    assert reads(simulator) == 0
    assert {r["status"] for r in campaign.read_report()} == {"sent"}
    assert "replies" not in done.stdout


def test_a_dry_run_never_reads_the_replies(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
) -> None:
    """The read is destructive: a dry run leaves them for the real run, and says so."""
    setup(campaign, server)
    simulator.add_reply("09121234568", "11")
    done = run_main(campaign.config, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert reads(simulator) == 0
    assert (
        "the real run reads new replies first (or now: python -m pipeline replies "
        f"{campaign.config})"
    ) in done.stdout


def test_a_failed_read_stops_the_run_before_anything_is_sent(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
) -> None:
    setup(campaign, server)
    simulator.faults.append(Fault("title", method="RecieveNewMessages", title="Token_Expired"))
    done = run_main(campaign.config)
    assert done.returncode == 3, done.stdout + done.stderr
    assert sends(simulator) == []
    assert "Nothing was sent: a run reads the line's new replies before it plans." in done.stderr
    assert "set suppression.read_replies: false to send without reading them" in done.stderr
    assert "Traceback" not in done.stderr


class SecondReadFails(AmootSimulator):
    """The fake whose second RecieveNewMessages answers Token_Expired."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reads = 0

    def decide(self, request: httpx.Request) -> Reply:
        if request.url.path.endswith("/RecieveNewMessages"):
            self.reads += 1
            if self.reads == 2:
                self.faults.append(
                    Fault("title", method="RecieveNewMessages", title="Token_Expired")
                )
        return super().decide(request)


def test_a_provider_error_mid_loop_exits_3_and_keeps_the_earlier_answers(
    campaign: Campaign, state_home: Path
) -> None:
    """A full first answer (100 replies), then an error: exit 3, and the 100 are kept in the
    journal and applied (the message says so); a rerun reads the rest."""
    sim = SecondReadFails(token=TOKEN)
    for i in range(150):
        sim.add_reply(f"0912{i:07d}", "11")
    with SandboxServer(sim) as server:
        setup(campaign, server)
        done = replies_main(campaign.config)
        assert done.returncode == 3, done.stdout + done.stderr
        assert done.stdout.splitlines()[0] == f"replies (live, line {LINE}): 100 new"
        assert "The 100 new replies read before it are kept and applied." in done.stderr
        assert len(optout_lines(state_home)) == 100
        again = replies_main(campaign.config)
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines()[0] == f"replies (live, line {LINE}): 50 new"
        assert len(optout_lines(state_home)) == 150


def test_a_run_killed_after_its_replies_were_kept_loses_none(
    campaign: Campaign, gated: tuple[GatedSimulator, SandboxServer], state_home: Path
) -> None:
    """kill -9 while the first SendPeerToPeer hangs: the replies it read are in the journal,
    applied; the next `replies` finds 0 new, the list has each number once, and the next run
    has the number `suppressed`."""
    sim, server = gated
    setup(campaign, server)
    sim.add_reply("09121234568", "۱۱")
    proc = start_cli(campaign.config)
    try:
        sim.wait_for_arrivals(1)
        proc.kill()  # kill -9: no handler runs, nothing is cleaned up
    finally:
        proc.communicate(timeout=20)
    assert proc.returncode == -signal.SIGKILL
    with Journal.open(campaign.journal, "test-campaign", readonly=True) as journal:
        (kept,) = journal.applied_replies("live", ["opted_out"])
    assert kept.number == "09121234568"
    sim.gate.set()
    again = replies_main(campaign.config)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == f"replies (live, line {LINE}): 0 new"
    assert [line.split()[0] for line in optout_lines(state_home)] == ["09121234568"]
    rerun = run_main(campaign.config, "--resend-unknown")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    statuses = {r["number"]: r["status"] for r in campaign.read_report()}
    assert statuses["09121234568"] == "suppressed"


def test_the_shipped_sandbox_loop(tmp_path: Path, state_home: Path) -> None:
    """The repo's config.yaml as a newcomer runs it: `replies` reads the sample «لغو۱۱» from
    09121234567 (sandbox); a sandbox run has that row `suppressed`, saying why; `replies`
    again finds 0 new; the real opt-out list is never written."""
    folder = tmp_path / "shipped"
    folder.mkdir()
    shutil.copy(REPO / "config.yaml", folder / "config.yaml")
    shutil.copytree(REPO / "templates", folder / "templates")
    shutil.copytree(REPO / "data", folder / "data")
    config = folder / "config.yaml"

    first = replies_cli(config)
    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == "replies (sandbox, line public): 1 new"
    assert lines[1:3] == ["  opted out        1", "    09121234567 (sandbox)"]
    assert lines[-1].startswith("opt-out list: not used by the sandbox")

    run = subprocess.run(
        [sys.executable, "-m", "pipeline", str(config)], cwd=tmp_path, env=cli_env(),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = folder / "reports" / "spring-sale-1405-latest.csv"  # the run's whole report
    rows = [r for r in read_csv(report) if r["number"] == "09121234567"]  # rows 1 and 7
    assert [r["status"] for r in rows] == ["suppressed", "suppressed"]
    assert rows[0]["error"].startswith("replied «لغو۱۱» on ")
    assert rows[0]["error"].endswith(" Tehran (sandbox)")
    assert "suppressed" in run.stdout

    again = replies_cli(config)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == "replies (sandbox, line public): 0 new"
    assert not (state_home / "optout.txt").exists()


def test_replies_on_a_public_line_say_they_do_not_reach_the_account(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
) -> None:
    """`replies` on the shared line still asks (the account may have a line of its own), and
    says that replies to the shared line do not reach it."""
    setup(campaign, server, line="public")
    done = replies_main(campaign.config)
    assert done.returncode == 0, done.stderr
    assert "note: provider.line_number is public: replies to the shared line do not reach" in (
        done.stderr
    )
    assert done.stdout.splitlines()[0] == "replies (live, line public): 0 new"
    assert reads(simulator) == 1


def test_an_opt_out_with_no_list_is_kept_in_the_journal_and_said_loudly(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator, state_home: Path
) -> None:
    setup(campaign, server, extra="suppression:\n  path: null\n")
    simulator.add_reply("09121234568", "لغو")
    done = replies_main(campaign.config)
    assert done.returncode == 0, done.stderr
    assert (
        "warning: 1 number(s) opted out but suppression.path is null: nothing keeps them out "
        "of the next campaigns (09121234568)."
    ) in done.stderr
    assert "    09121234568 (on no list)" in done.stdout.splitlines()
    assert "opt-out list: none (suppression.path: null)" in done.stdout
    with Journal.open(campaign.journal, "test-campaign", readonly=True) as journal:
        assert [r.number for r in journal.applied_replies("live", ["no_list"])] == ["09121234568"]
    assert not (state_home / "optout.txt").exists()


def test_a_run_that_does_not_read_still_applies_replies_kept_earlier(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator, state_home: Path
) -> None:
    """A reply committed by a process that died before applying it: the next run, even one
    with read_replies false, applies it first (its number `suppressed`) and asks nothing."""
    setup(campaign, server, extra="suppression:\n  read_replies: false\n")
    with Journal.open(campaign.journal, "another-campaign") as journal:
        number, read_at = "09121234568", "2026-12-02T06:00:00+00:00"
        journal.save_replies([JournalReply("live", "77", number, number, "11", "", read_at)])
    done = run_main(campaign.config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert reads(simulator) == 0
    statuses = {r["number"]: r["status"] for r in campaign.read_report()}
    assert statuses["09121234568"] == "suppressed"
    assert [line.split()[0] for line in optout_lines(state_home)] == ["09121234568"]
    assert "  replies              0  new: 1 opted out, 0 opted in, 0 other (" in done.stdout


def test_a_report_path_onto_the_opt_out_lists_lock_is_refused(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator, state_home: Path
) -> None:
    """The list's `<list>.lock` is a file the run keeps: a report written over it is refused
    before anything is read or sent (exit 2)."""
    setup(campaign, server)
    text = campaign.config.read_text("utf-8")
    lock = state_home / "optout.txt.lock"
    campaign.config.write_text(text.replace("path: reports/report.csv", f"path: {lock}"), "utf-8")
    done = run_main(campaign.config)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is the suppression list's lock file: the run would overwrite it." in done.stderr
    assert simulator.requests == []
