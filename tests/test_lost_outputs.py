"""The terminal, the output pipe or the report's disk goes away mid-run: nothing is lost.

Each test runs `python -m pipeline` as a subprocess against the socket-served fake, with
requests in flight when the terminal closes (SIGHUP), when the reader of its output goes away,
or when a write to the report fails; then checks the exit code, the report and the journal,
and that a rerun sends the rest exactly once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.journal import State
from pipeline.sandbox import AmootSimulator, Fault, Reply
from pipeline.sandbox_server import SandboxServer
from tests.conftest import (
    TOKEN,
    Campaign,
    GatedSimulator,
    assert_journal_agrees,
    assert_stopped_cleanly,
    cli_env,
    journal_snapshot,
    live_provider,
    run_cli,
    run_main,
    sends,
    start_cli,
    unstamped,
)

SIGNAL_GRACE = 0.1  # for Python to run a handler the kernel has delivered (see test_crash)

# Started in the place of `python -m pipeline`, this becomes the run itself (exec keeps the
# process id), after one preparation that needs the run's id or its session.
_EXEC_RUN = "os.execv(sys.executable, [sys.executable, '-m', 'pipeline', *sys.argv[2:]])"
_WRAPPERS = {
    # The run's terminal: a session leader owning it, as the shell's job when ssh closes.
    "terminal": "import fcntl, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0)",
    # As `nohup`: the hang-up signal ignored before the run starts.
    "nohup": "import signal; signal.signal(signal.SIGHUP, signal.SIG_IGN)",
    # The report's unfinished file (`<report>.<pid>.partial`) made a pipe the test can close:
    # the run's writes to it then fail, as on a disk that filled up.
    "report-fifo": "os.mkfifo(f'{sys.argv[1]}.{os.getpid()}.partial')",
    # The attention file's unfinished name taken by a folder: the run cannot create it.
    "attention-folder": "os.mkdir(f'{sys.argv[1]}.{os.getpid()}.partial')",
}


def _start(
    campaign: Campaign, wrapper: str, *args: str, target: Path | None = None, **popen: Any
) -> subprocess.Popen[bytes]:
    code = f"import os, sys\n{_WRAPPERS[wrapper]}\n{_EXEC_RUN}"
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [sys.executable, "-c", code, str(target or ""), str(campaign.config), *args],
        cwd=campaign.folder.parent,
        env=cli_env(),
        **popen,
    )


def _numbers(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i:07d}" for i in range(1, count + 1)]


def _write_contacts(campaign: Campaign, numbers: list[str]) -> None:
    campaign.contacts([(number, "نام", f"C{i}") for i, number in enumerate(numbers, 1)])


def _assert_rerun_sends_the_rest_once(
    campaign: Campaign, sim: AmootSimulator, numbers: list[str], sent: set[str]
) -> None:
    """A rerun after the stop: the sent rows are `already_sent`, the rest sent now, each
    number accepted once in all, no row `unknown`."""
    again = run_cli(campaign.config)
    assert again.returncode == 0, again.stdout + again.stderr
    report = campaign.read_report()
    assert [r["row"] for r in report] == [str(i) for i in range(1, len(numbers) + 1)]
    assert {r["number"] for r in report if r["status"] == "already_sent"} == sent
    assert {r["number"] for r in report if r["status"] == "sent"} == set(numbers) - sent
    accepted = Counter("0" + a.number for a in sim.accepted)
    assert sorted(accepted) == sorted(numbers) and set(accepted.values()) == {1}
    assert_journal_agrees(campaign, report)


# -- SIGHUP: the terminal or the ssh session closed -----------------------------------------


def test_closing_the_terminal_mid_run_records_the_requests_in_flight_then_exits_3(
    campaign: Campaign, gated: tuple[GatedSimulator, SandboxServer]
):
    """The run's terminal closes (ssh dropped) while two requests are at the provider: the
    kernel sends SIGHUP and later writes to the terminal fail; the run stops as on SIGTERM:
    both answers recorded `sent`, the rest `pending`, exit 3; a rerun sends the rest once."""
    sim, server = gated
    numbers = _numbers("0915", 10)
    _write_contacts(campaign, numbers)
    campaign.write_config(live_provider(server, chunk_size=2, concurrency=2))
    leader, follower = pty.openpty()
    proc = _start(
        campaign,
        "terminal",
        stdin=follower,
        stdout=follower,
        stderr=follower,
        start_new_session=True,
    )
    os.close(follower)
    sim.wait_for_arrivals(2)
    # What the terminal shows so far (a few lines: it never fills the terminal's buffer).
    os.set_blocking(leader, False)
    shown = _read_available(leader)
    assert "\r[" in shown, shown  # a progress bar: the run knows it is on a terminal
    os.close(leader)  # the terminal hangs up
    time.sleep(SIGNAL_GRACE)
    sim.gate.set()
    assert proc.wait(timeout=20) == 3, shown

    posted = sends(sim)
    assert len(posted) == 2  # nothing was posted after the hang-up
    in_flight = {item["Number"] for r in posted for item in r.body["Input"]}
    report = campaign.read_report()
    assert [r["row"] for r in report] == [str(i) for i in range(1, 11)]
    sent = {r["number"] for r in report if r["status"] == "sent"}
    assert sent == in_flight == {"0" + a.number for a in sim.accepted}
    assert {r["status"] for r in report if r["number"] not in sent} == {"pending"}
    assert_journal_agrees(campaign, report)
    _assert_rerun_sends_the_rest_once(campaign, sim, numbers, sent)


def _read_available(fd: int, timeout: float = 10) -> str:
    """What a non-blocking `fd` holds, waiting up to `timeout` for the first bytes."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        try:
            data += os.read(fd, 65536)
        except BlockingIOError:
            if data or time.monotonic() > deadline:
                return data.decode("utf-8", "replace")
            time.sleep(0.01)


def test_sighup_to_the_session_records_the_requests_in_flight(
    campaign: Campaign, gated: tuple[GatedSimulator, SandboxServer]
):
    """SIGHUP twice (systemd ending a login session signals every process in it, the shell
    may too): the run stops cleanly, the answers in flight are recorded, exit 3."""
    sim, server = gated
    numbers = _numbers("0913", 8)
    _write_contacts(campaign, numbers)
    campaign.write_config(live_provider(server, chunk_size=2, concurrency=2))
    proc = start_cli(campaign.config)
    sim.wait_for_arrivals(2)
    os.kill(proc.pid, signal.SIGHUP)
    os.kill(proc.pid, signal.SIGHUP)
    time.sleep(SIGNAL_GRACE)
    sim.gate.set()
    assert_stopped_cleanly(proc, campaign, sim, sent=4)


def test_a_hang_up_while_the_journal_folds_its_wal_changes_nothing(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """The last step of a run folds the journal's WAL into the file, waiting (up to the busy
    timeout) for a reader such as an sqlite3 shell. A SIGHUP then finds nothing left to
    send: the run ends as it would have (exit 0, the summary), never with "interrupted
    before sending started: nothing was sent" after a whole run."""
    numbers = _numbers("0913", 3)
    _write_contacts(campaign, numbers[:2])
    campaign.write_config(live_provider(server))
    assert run_cli(campaign.config).returncode == 0
    _write_contacts(campaign, numbers)
    before = campaign.report.stat().st_mtime_ns
    reader = sqlite3.connect(campaign.journal)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM messages").fetchall()  # holds a snapshot
        proc = start_cli(campaign.config)
        deadline = time.monotonic() + 30
        while campaign.report.stat().st_mtime_ns == before:  # the report is put in place
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        time.sleep(0.3)  # into the fold, which waits for the reader
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate(timeout=30)
    finally:
        reader.close()
    assert proc.returncode == 0, out + err
    assert "nothing was sent" not in err and "Traceback" not in err, err
    assert "campaign" in out and "already_sent" in out, out
    assert [r["status"] for r in campaign.read_report()] == ["already_sent"] * 2 + ["sent"]


def test_a_run_started_under_nohup_keeps_sending_through_a_hang_up(
    campaign: Campaign, gated: tuple[GatedSimulator, SandboxServer]
):
    """`nohup python -m pipeline ...` asks to survive the terminal closing: a run that finds
    SIGHUP ignored leaves it so, and sends every row (exit 0)."""
    sim, server = gated
    numbers = _numbers("0914", 6)
    _write_contacts(campaign, numbers)
    campaign.write_config(live_provider(server, chunk_size=2, concurrency=1))
    proc = _start(campaign, "nohup")
    sim.wait_for_arrivals(1)
    proc.send_signal(signal.SIGHUP)
    time.sleep(SIGNAL_GRACE)
    sim.gate.set()
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, out + err
    report = campaign.read_report()
    assert {r["status"] for r in report} == {"sent"}
    assert sorted("0" + a.number for a in sim.accepted) == numbers


# -- the reader of the output goes away (`| head -2`) ---------------------------------------


class _FirstAnswerOnly(AmootSimulator):
    """The fake that answers the first SendPeerToPeer at once and holds the others' answers
    until `gate` opens: the run prints a line for the first, then waits with the rest."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = threading.Event()
        self._arrivals = 0
        self._lock = threading.Lock()

    def decide(self, request: httpx.Request) -> Reply:
        reply = super().decide(request)
        if request.url.path.endswith("/SendPeerToPeer"):
            with self._lock:
                self._arrivals += 1
                first = self._arrivals == 1
            if not first:
                self.gate.wait(30)
        return reply


def test_output_piped_into_head_that_exits_loses_nothing(campaign: Campaign):
    """`python -m pipeline config.yaml -v 2>&1 | head -2`: once head has its two lines and
    exits, every later line fails to print; the run still sends every row once, records each
    answer, writes the whole report and exits 0 (not 1, not 120 from a failed final flush)."""
    numbers = _numbers("0916", 12)
    _write_contacts(campaign, numbers)
    sim = _FirstAnswerOnly(token=TOKEN)
    with SandboxServer(sim) as server:
        try:
            campaign.write_config(live_provider(server, chunk_size=3, concurrency=2))
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline", str(campaign.config), "-v"],
                cwd=campaign.folder.parent,
                env=cli_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            assert proc.stdout is not None
            head = [unstamped(proc.stdout.readline().decode()) for _ in range(2)]
            proc.stdout.close()  # head exits
            sim.gate.set()
            code = proc.wait(timeout=20)
        finally:
            sim.gate.set()
    assert head[0].startswith("sending: 12 rows"), head
    assert head[1].startswith("rows ") and "3 sent" in head[1], head
    assert code == 0
    report = campaign.read_report()
    assert [r["number"] for r in report] == numbers
    assert {r["status"] for r in report} == {"sent"}
    accepted = Counter("0" + a.number for a in sim.accepted)
    assert sorted(accepted) == numbers and set(accepted.values()) == {1}
    assert_journal_agrees(campaign, report)


def test_stdout_closed_from_the_start_still_exits_0_without_a_traceback(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator, tmp_path: Path
):
    """`python -m pipeline config.yaml | true`: the summary cannot be printed; the run's
    outcome is unchanged (exit 0, whole report), and stderr shows no traceback."""
    numbers = _numbers("0917", 5)
    _write_contacts(campaign, numbers)
    campaign.write_config(live_provider(server))
    errors = tmp_path / "stderr.txt"
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read the run's stdout
    with errors.open("wb") as stderr:
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", str(campaign.config)],
            cwd=campaign.folder.parent,
            env=cli_env(),
            stdout=write_end,
            stderr=stderr,
            timeout=60,
            check=False,
        )
    os.close(write_end)
    said = errors.read_text(encoding="utf-8")
    assert proc.returncode == 0, said
    assert "Traceback" not in said and "Exception ignored" not in said, said
    assert {r["status"] for r in campaign.read_report()} == {"sent"}
    assert len(sends(simulator)) == 2


@pytest.mark.parametrize("closed", [">&-", "2>&-", ">&- 2>&-"])
def test_standard_outputs_closed_from_the_start_change_nothing(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator, closed: str
):
    """`python -m pipeline config.yaml >&-` (or `2>&-`): the stream is not there at all, not
    a pipe that fails. The run sends every row once, writes its whole report and exits 0, as
    with the stream open, quiet (-q) or not; no file the run opens takes the closed
    descriptor."""
    numbers = _numbers("0916", 5)
    _write_contacts(campaign, numbers)
    campaign.write_config(live_provider(server))
    for flags in ("", "-q"):
        script = f'exec "$@" {flags} {closed}'
        proc = subprocess.run(
            ["bash", "-c", script, "bash", sys.executable, "-m", "pipeline", str(campaign.config)],
            cwd=campaign.folder.parent,
            env=cli_env(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        report = campaign.read_report()
        assert len(report) == len(numbers)
    assert {r["status"] for r in report} == {"already_sent"}
    accepted = Counter("0" + a.number for a in simulator.accepted)
    assert sorted(accepted) == sorted(numbers) and set(accepted.values()) == {1}
    assert_journal_agrees(campaign, report)


# -- a write to the report or its attention file fails (the disk filled up) -----------------


def _close_when_opened(fifo: Path, timeout: float = 20) -> None:
    """Wait until the run has opened the FIFO for writing, then close the reading end: every
    write the run then makes to it fails (EPIPE), as writes to a full disk fail (ENOSPC)."""
    deadline = time.monotonic() + timeout
    while not fifo.exists():
        assert time.monotonic() < deadline, "the run never made its report"
        time.sleep(0.005)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:  # EOF while no writer has it open; EAGAIN once one has (it wrote nothing yet)
                os.read(fd, 1)
            except BlockingIOError:
                return
            assert time.monotonic() < deadline, "the run never opened its report"
            time.sleep(0.005)
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("rows", "mid_run"), [(300, True), (6, False)], ids=["mid-run", "at-the-end"]
)
def test_report_that_cannot_be_written_stops_with_exit_3_and_loses_no_answer(
    campaign: Campaign,
    server: SandboxServer,
    simulator: AmootSimulator,
    rows: int,
    mid_run: bool,
):
    """Writes to the report fail while requests are in flight (a large report: the first
    buffer written fails mid-run), or only when the report is closed (a small one): exit 3,
    a message naming the file and the fix, no traceback; every answer is in the journal (no
    row in flight), and a rerun finds no row `unknown`, sends the rest once, and writes the
    whole report."""
    numbers = _numbers("0918", rows)
    _write_contacts(campaign, numbers)
    (campaign.folder / "message.j2").write_text(
        "{{ first_name }} عزیز، کد تخفیف شما {{ code }} است. " * 4 + "\n", "utf-8"
    )
    campaign.write_config(live_provider(server, chunk_size=5, concurrency=2))
    simulator.faults.extend(Fault("slow_after", delay=0.01) for _ in range(rows))
    campaign.report.parent.mkdir()
    proc = _start(campaign, "report-fifo", target=campaign.report)
    _close_when_opened(campaign.report.with_name(f"report.csv.{proc.pid}.partial"))
    out, err = (text.decode() for text in proc.communicate(timeout=60))
    simulator.faults.clear()
    assert proc.returncode == 3, out + err
    assert "Traceback" not in err
    assert f"report.csv.{proc.pid}.partial" in err and "rerun the same command" in err, err
    assert not campaign.report.exists()

    entries, counts = journal_snapshot(campaign, numbers)
    assert counts[State.INFLIGHT] == 0 and counts[State.UNKNOWN] == 0, counts
    sent = {n for n, e in entries.items() if e.state is State.SENT}
    assert sent == {"0" + a.number for a in simulator.accepted}
    if mid_run:  # it stopped: some rows were never sent
        assert 0 < len(sent) < rows
    else:
        assert len(sent) == rows
    _assert_rerun_sends_the_rest_once(campaign, simulator, numbers, sent)


class _SlowFor(AmootSimulator):
    """The fake that answers the requests carrying one of `slow` only after `delay` seconds."""

    def __init__(self, slow: set[str], delay: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.slow = slow
        self.delay = delay
        self.on_first_send: Callable[[], object] | None = None
        self._hook_lock = threading.Lock()

    def decide(self, request: httpx.Request) -> Reply:
        reply = super().decide(request)
        if request.url.path.endswith("/SendPeerToPeer"):
            with self._hook_lock:  # two requests may arrive at once: the hook runs once
                hook, self.on_first_send = self.on_first_send, None
            if hook is not None:
                hook()
            carried = {"0" + item["Number"] for item in json.loads(request.content)["Input"]}
            if carried & self.slow:
                return dataclasses.replace(reply, action="slow_after", delay=self.delay)
        return reply


@pytest.mark.parametrize("mid_run", [True, False], ids=["mid-run", "at-the-end"])
def test_attention_file_that_cannot_be_written_stops_with_exit_3(campaign: Campaign, mid_run: bool):
    """Rows that need attention (invalid numbers) cannot go to the attention file: mid-run
    (its file cannot be created when the first such row is written, while requests are in
    flight and more such rows wait behind them), or only at the end (it cannot be put in
    place). Exit 3 with a message naming the file, no traceback; every answer is recorded
    (none left in flight to become `unknown`); once the cause is fixed, a rerun sends the
    rest once."""
    numbers = _numbers("0919", 40)
    invalid = {10, 13, 16, 19}  # rows
    valid = [n for row, n in enumerate(numbers, 1) if row not in invalid]
    campaign.contacts(
        [
            ("12345" if row in invalid else number, "نام", f"C{row}")
            for row, number in enumerate(numbers, 1)
        ]
    )
    # The requests after the first invalid row answer late: they are in flight when it fails.
    sim = _SlowFor(set(numbers[11:20]) if mid_run else set(), 0.3, token=TOKEN)
    campaign.report.parent.mkdir()
    attention = campaign.report.with_name("report-attention.csv")
    with SandboxServer(sim) as server:
        campaign.write_config(live_provider(server, chunk_size=2, concurrency=2))
        if mid_run:
            proc = _start(campaign, "attention-folder", target=attention)
        else:
            # A folder where the file goes, made once the run is under way (a folder there at
            # the start is refused before anything is read, exit 2).
            sim.on_first_send = lambda: (attention / "in-the-way").mkdir(parents=True)
            proc = _start(campaign, "nohup")
        out, err = (text.decode() for text in proc.communicate(timeout=60))
        assert proc.returncode == 3, out + err
        assert "Traceback" not in err
        assert str(attention) in err and "rerun the same command" in err, err

        entries, counts = journal_snapshot(campaign, numbers)
        assert counts[State.INFLIGHT] == 0 and counts[State.UNKNOWN] == 0, counts
        sent = {n for n, e in entries.items() if e.state is State.SENT}
        assert sent == {"0" + a.number for a in sim.accepted}
        if mid_run:
            assert 0 < len(sent) < len(valid)  # it stopped
        else:
            assert len(sent) == len(valid)
            # Neither file was put in place, as the message says (the report came first once,
            # and the message said it could not be written while it was there).
            assert not campaign.report.exists()
            shutil.rmtree(attention)
        sim.slow.clear()
        again = run_cli(campaign.config)
    assert again.returncode == 0, again.stdout + again.stderr
    report = campaign.read_report()
    assert [r["row"] for r in report if r["status"] == "invalid"] == [
        str(r) for r in sorted(invalid)
    ]
    assert {r["number"] for r in report if r["status"] == "already_sent"} == sent
    assert {r["number"] for r in report if r["status"] == "sent"} == set(valid) - sent
    accepted = Counter("0" + a.number for a in sim.accepted)
    assert sorted(accepted) == valid and set(accepted.values()) == {1}
    assert attention.read_text(encoding="utf-8-sig").count("\n") == 1 + len(invalid)
    assert_journal_agrees(campaign, report)


def test_attention_file_that_fails_before_the_first_request_exits_2_and_sends_nothing(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """The attention file cannot be created for an invalid first row, before any request
    has left (all rows fit one request, not yet full): exit 2, nothing sent, nothing in the
    journal, no report left behind, as for any file the run cannot write before sending."""
    numbers = _numbers("0920", 4)
    campaign.contacts(
        [("12345", "نام", "C1"), *[(n, "نام", f"C{i}") for i, n in enumerate(numbers, 2)]]
    )
    campaign.write_config(live_provider(server, chunk_size=10))
    campaign.report.parent.mkdir()
    # In this process (run_main), so the unfinished file's name is known beforehand.
    (campaign.report.parent / f"report-attention.csv.{os.getpid()}.partial").mkdir()
    result = run_main(campaign.config)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "report-attention.csv" in result.stderr and "Nothing was sent." in result.stderr
    assert sends(simulator) == []
    assert sum(journal_snapshot(campaign, numbers)[1].values()) == 0
    assert sorted(p.name for p in campaign.report.parent.iterdir()) == [
        f"report-attention.csv.{os.getpid()}.partial"  # the folder the test made
    ]
