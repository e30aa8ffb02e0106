"""Quiet cron, honest messages (issue 16): -q, stamped stderr, the 4xx's base_url, a fatal
error said once, the --retry-failed advice, the progress after Ctrl-C and its width."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from pipeline.cli import Stamped
from pipeline.clock import TEHRAN
from pipeline.commands import Log
from pipeline.errors import InputError
from pipeline.progress import BAR_WIDTH, TerminalProgress
from pipeline.sandbox import AmootSimulator, Fault, Reply
from pipeline.sandbox_server import SandboxServer
from tests.conftest import (
    STAMP,
    TOKEN,
    Campaign,
    GatedSimulator,
    cli_env,
    live_provider,
    run_cli,
    run_main,
    sends,
    start_cli,
    unstamped,
)

NUMBERS = [f"0912{i:07d}" for i in range(1, 8)]


class _SpendingSimulator(AmootSimulator):
    """The fake whose credit is gone after its first SendPeerToPeer (someone else spent it)."""

    def decide(self, request: httpx.Request) -> Reply:
        reply = super().decide(request)
        if request.url.path.endswith("/SendPeerToPeer"):
            self.credit_rials = 0
        return reply


@pytest.fixture
def spending() -> Iterator[tuple[_SpendingSimulator, SandboxServer]]:
    sim = _SpendingSimulator(token=TOKEN)
    with SandboxServer(sim) as server:
        yield sim, server


def _contacts(campaign: Campaign, numbers: list[str] = NUMBERS) -> None:
    campaign.contacts([(number, "نام", f"C{i}") for i, number in enumerate(numbers, 1)])


def _raw_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`run_cli` with stderr as it came, stamps and all (stderr a pipe, as under cron)."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline", str(config), *args],
        cwd=config.parent.parent,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_quiet_run_that_ends_with_exit_0_prints_nothing_at_all(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """-q under cron (no terminal): exit 0, stdout and stderr both empty (cron mails any
    output), yet every row was sent and the report written."""
    _contacts(campaign)
    campaign.write_config(live_provider(server))
    done = run_cli(campaign.config, "-q")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert {r["status"] for r in campaign.read_report()} == {"sent"}
    assert len(simulator.accepted) == len(NUMBERS)


def test_quiet_run_that_fails_prints_the_summary_and_the_error(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """-q and a fatal answer: exit 3 with the whole summary on stdout and the error on stderr,
    as a run without -q ends, but no progress lines."""
    _contacts(campaign)
    campaign.write_config(live_provider(server))
    simulator.status_override = "Token_Disabled"
    failed = run_cli(campaign.config, "-q")
    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert "campaign test-campaign (live)" in failed.stdout
    assert re.search(r"pending\s+7", failed.stdout)
    assert "report: " in failed.stdout and "elapsed: " in failed.stdout
    err = failed.stderr.splitlines()  # run_cli checked and took off the stamps
    assert err[-1].startswith("error: the provider answered Token_Disabled")
    assert not any(line.startswith(("sending:", "processed")) for line in err)


def test_quiet_input_error_still_says_what_and_the_fix(campaign: Campaign):
    """-q and a config error (exit 2): the error is printed, nothing is silenced."""
    campaign.config.write_text("campaign: x\nprovider: {sandbox: true}\n", encoding="utf-8")
    failed = run_main(campaign.config, "-q")
    assert failed.returncode == 2
    assert "error: " in failed.stderr and failed.stdout == ""


def test_every_stderr_line_without_a_terminal_starts_with_the_tehran_time(
    campaign: Campaign, spending: tuple[_SpendingSimulator, SandboxServer]
):
    """A subprocess (stderr a pipe, as under cron): every line, each line of a multi-line error
    too, starts with `YYYY-MM-DD HH:MM:SS ` in Tehran time, whatever TZ says (UTC here)."""
    _, server = spending
    _contacts(campaign)
    campaign.write_config(live_provider(server, concurrency=1))
    before = datetime.now(UTC)
    failed = _raw_cli(campaign.config)
    assert failed.returncode == 3
    lines = failed.stderr.splitlines()
    assert len(lines) >= 3, failed.stderr  # sending:, stopping:, processed, error:
    for line in lines:
        assert STAMP.match(line), line
        when = datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=TEHRAN)
        assert before - timedelta(seconds=2) <= when <= datetime.now(UTC) + timedelta(seconds=1)
    assert failed.stdout and not STAMP.match(failed.stdout)  # stdout is not stamped

    usage = _raw_cli(campaign.config, "--limit", "0")  # argparse's own lines, too
    assert usage.returncode == 2
    assert usage.stderr.count("\n") >= 2
    assert all(STAMP.match(line) for line in usage.stderr.splitlines()), usage.stderr


def test_stamped_stream_stamps_each_line_once_however_it_is_written():
    """Partial writes join one line (one stamp); a multi-line write gets a stamp per line; a
    blank line is a line; nothing is stamped after the last newline until more comes."""
    sink = io.StringIO()
    moment = datetime(2026, 3, 20, 20, 30, 5, tzinfo=UTC)  # 2026-03-21 00:00:05 in Tehran
    stream = Stamped(sink, clock=lambda: moment)
    stream.write("error: first")
    stream.write(" half\nsecond line\n\nthird")
    stream.write("\n")
    stamp = "2026-03-21 00:00:05 "
    assert sink.getvalue() == (
        f"{stamp}error: first half\n{stamp}second line\n{stamp}\n{stamp}third\n"
    )


def test_a_4xx_names_the_base_url_that_was_configured(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """A base_url with a wrong path (the server answers 404): the fix names that URL, with
    AmootSMS's own beside it; exit 3 and nothing sent."""
    _contacts(campaign)
    wrong = server.base_url.removesuffix("/rest") + "/gateway/v1"
    campaign.write_config(live_provider(server, base_url=wrong))
    failed = run_main(campaign.config)
    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert f"check provider.base_url ({wrong}; AmootSMS's own is" in failed.stderr
    assert "https://portal.amootsms.com/rest)" in failed.stderr
    assert simulator.accepted == []


def test_a_fatal_answer_mid_run_is_printed_once(
    campaign: Campaign, spending: tuple[_SpendingSimulator, SandboxServer]
):
    """CreditNotEnough after the first request: the error's text appears once in stdout and
    stderr together (the mid-run `stopping:` line names only its title)."""
    _, server = spending
    _contacts(campaign)
    campaign.write_config(live_provider(server, concurrency=1))
    failed = run_main(campaign.config)
    assert failed.returncode == 3
    err = failed.stderr.splitlines()
    message = next(line for line in err if line.startswith("error: ")).removeprefix("error: ")
    assert "CreditNotEnough" in message
    assert (failed.stdout + failed.stderr).count(message) == 1
    assert (failed.stdout + failed.stderr).count("top up the AmootSMS account") == 1
    assert any(line.startswith("stopping: CreditNotEnough: ") for line in err)


def test_retry_failed_is_not_advised_for_numbers_just_put_on_the_suppression_list(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """Two numbers answered Mobile_Invalid (added to the list) and three rows `failed` for a
    `Failed` answer: the advice counts the three only; the note says the two are `suppressed`
    from now on; a rerun with --retry-failed indeed sends only the three."""
    # Rows 5 and 6, answered one by one in the 2nd request (a request of one rejected number
    # is answered Mobiles_Invalid for the whole list, which is not added: see the note).
    simulator.blacklist = {n[1:] for n in NUMBERS[4:6]}
    _contacts(campaign)
    campaign.write_config(live_provider(server, concurrency=1))
    simulator.faults.extend([Fault("title", title="Failed"), Fault("title", title="Failed")])
    done = run_main(campaign.config)
    assert done.returncode == 0, done.stdout + done.stderr
    report = {r["number"]: r for r in campaign.read_report()}
    assert [report[n]["status"] for n in NUMBERS] == [
        *["failed"] * 3,
        "sent",
        "failed",
        "failed",
        "sent",
    ]
    assert (
        "next: 3 row(s) `failed` whose numbers are not on the suppression list "
        "(see the error column); rerun with --retry-failed once fixed." in done.stdout
    ), done.stdout
    assert "note: 2 `failed` row(s) (Mobile_Invalid" in done.stdout

    simulator.blacklist = set()
    before = len(sends(simulator))
    again = run_main(campaign.config, "--retry-failed")
    assert again.returncode == 0, again.stdout + again.stderr
    posted = {item["Number"] for r in sends(simulator)[before:] for item in r.body["Input"]}
    assert {str(n) for n in posted} == set(NUMBERS[:3])
    report = {r["number"]: r for r in campaign.read_report()}
    assert {report[n]["status"] for n in NUMBERS[4:6]} == {"suppressed"}
    assert "--retry-failed" not in again.stdout


def test_only_rejected_numbers_failed_so_no_retry_advice(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """Every `failed` row's number was put on the list: no `--retry-failed` advice at all."""
    simulator.blacklist = {NUMBERS[0][1:]}
    _contacts(campaign)
    campaign.write_config(live_provider(server))
    done = run_main(campaign.config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed" in done.stdout and "--retry-failed once fixed" not in done.stdout


def _bar(columns: int, done: int, total: int = 10_000) -> str:
    ticks = iter([0.0, 0.0, 10.0])  # start, its first draw, the line
    progress = TerminalProgress(
        lambda _text: None, clock=lambda: next(ticks), columns=lambda: columns
    )
    progress.start(total)
    return progress.line(done)


def test_the_bar_fits_the_terminal_width():
    """Wide: the full 24-character bar; narrower: a shorter bar; narrower still: the numbers
    alone, cut to fit; never longer than the width less one (a full line would wrap)."""
    wide = _bar(200, 5_000)
    assert wide.startswith("[" + "#" * (BAR_WIDTH // 2) + "-" * (BAR_WIDTH // 2) + "] ")
    for columns in (80, 60, 45, 40, 30, 20, 10, 2, 1):
        line = _bar(columns, 5_000)
        assert len(line) <= max(columns - 1, 1), (columns, line)
    narrow = _bar(50, 5_000)
    assert narrow.startswith("[") and len(narrow.split("]")[0]) - 1 < BAR_WIDTH
    assert not _bar(30, 5_000).startswith("[")  # no room for a bar worth drawing
    assert _bar(30, 5_000).startswith("5,000/10,000 rows")


def test_progress_after_ctrl_c_counts_the_rows_really_sent(
    campaign: Campaign, gated: tuple[GatedSimulator, SandboxServer]
):
    """SIGINT with two requests of two rows in flight: the last progress line says 4 of 10
    rows were done, not 10 (the six left `pending` by the stop were not done)."""
    sim, server = gated
    numbers = [f"0915{i:07d}" for i in range(1, 11)]
    _contacts(campaign, numbers)
    campaign.write_config(live_provider(server, chunk_size=2, concurrency=2))
    proc = start_cli(campaign.config)
    sim.wait_for_arrivals(2)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    sim.gate.set()
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 3, out + err
    progress = [line for line in unstamped(err).splitlines() if line.startswith("processed ")]
    assert progress[-1].startswith("processed 4/10 rows (40%)"), err
    assert [r["status"] for r in campaign.read_report()].count("sent") == 4


def test_a_quiet_command_says_nothing_on_exit_0_and_everything_otherwise():
    """`replies -q`'s wrapper: exit 0 prints nothing; another exit, or an error, prints what
    the command said, in its order and on its stream, before the error goes on."""
    from pipeline.commands import _quietly

    def chatty(code: int) -> Callable[[Log, Log], int]:
        def command(out: Log, log: Log) -> int:
            out("1 opt-out added")
            log("warning: one reply unreadable")
            out("done")
            if code < 0:
                raise InputError("config.yaml: replies: broken")
            return code

        return command

    said: list[tuple[str, str]] = []
    out: Log = lambda line: said.append(("out", line))  # noqa: E731
    log: Log = lambda line: said.append(("log", line))  # noqa: E731
    assert _quietly(chatty(0), out, log) == 0 and said == []
    assert _quietly(chatty(3), out, log) == 3
    expected = [
        ("out", "1 opt-out added"),
        ("log", "warning: one reply unreadable"),
        ("out", "done"),
    ]
    assert said == expected
    said.clear()
    with pytest.raises(InputError):
        _quietly(chatty(-1), out, log)
    assert said == expected
