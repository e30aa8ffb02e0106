"""Test helpers: a campaign folder in tmp_path, the socket-served fake, the CLI as a subprocess."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings

from pipeline.journal import Entry, Journal, State
from pipeline.sandbox import AmootSimulator, RecordedRequest, Reply
from pipeline.sandbox_server import SandboxServer
from pipeline.send import Sender, SenderSettings
from pipeline.throttle import Throttle

# No per-example deadline and no "too slow" health check: on a shared, loaded CI machine they
# turn a slow moment into a failure that says nothing about the code.
settings.register_profile("pipeline", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("pipeline")

REPO = Path(__file__).resolve().parent.parent
TOKEN = "test-token-5f3a9c"  # the fake's token; tests assert it never leaks into output

CONTACTS_HEADER = "mobile,first_name,code\n"


class FakeSleep:
    """Records requested sleeps instead of sleeping; returns False (not stopped)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> bool:
        self.calls.append(seconds)
        return False


# 2026-03-20 20:30 UTC is 2026-03-21 00:00 in Tehran: a SendDateTime tests can assert exactly.
SEND_MOMENT = datetime(2026, 3, 20, 20, 30, tzinfo=UTC)


def make_sender(
    sim: AmootSimulator,
    *,
    token: str,
    max_attempts: int = 4,
    stop: threading.Event | None = None,
    raw: list[httpx.Request] | None = None,
) -> tuple[Sender, FakeSleep]:
    """A real Sender against the in-process simulator, with a fake sleep (no real waiting)."""

    def handle(request: httpx.Request) -> httpx.Response:
        if raw is not None:
            raw.append(request)
        return sim.handle(request)

    sleep = FakeSleep()
    settings = SenderSettings(
        base_url="https://portal.amootsms.com/rest",
        token=token,
        line_number="public",
        timeout=5,
        max_attempts=max_attempts,
    )
    sender = Sender(
        httpx.Client(transport=httpx.MockTransport(handle)),
        settings,
        throttle=Throttle(None, sleep=sleep),
        stop=stop or threading.Event(),
        sleep=sleep,
        send_at=lambda: SEND_MOMENT,
    )
    return sender, sleep


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shared state folder of every test (and its subprocesses): never the real home's."""
    folder = tmp_path / "state-home"
    monkeypatch.setenv("PIPELINE_STATE_DIR", str(folder))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    return folder


@dataclass
class Campaign:
    """A campaign folder: config.yaml, contacts.csv, a template, reports/ and state/."""

    folder: Path

    @property
    def config(self) -> Path:
        return self.folder / "config.yaml"

    @property
    def report(self) -> Path:
        return self.folder / "reports" / "report.csv"

    @property
    def journal(self) -> Path:
        return self.folder / "state" / "journal.sqlite"

    def contacts(self, rows: Sequence[tuple[str, ...]], header: str = CONTACTS_HEADER) -> None:
        lines = [",".join(row) for row in rows]
        (self.folder / "contacts.csv").write_text(
            header + "\n".join(lines) + "\n", encoding="utf-8"
        )

    def write_config(
        self, provider: str, *, campaign: str = "test-campaign", extra: str = ""
    ) -> None:
        text = f"""\
campaign: {campaign}
contacts:
  path: contacts.csv
template:
  path: message.j2
provider:
{textwrap.indent(textwrap.dedent(provider).strip(), "  ")}
report:
  path: reports/report.csv
journal:
  path: state/journal.sqlite
{extra}"""
        self.config.write_text(text, encoding="utf-8")

    def read_report(self) -> list[dict[str, str]]:
        with self.report.open(encoding="utf-8-sig", newline="") as f:
            return list(csv.DictReader(f))


@pytest.fixture
def campaign(tmp_path: Path) -> Campaign:
    folder = tmp_path / "campaign"
    folder.mkdir()
    (folder / "message.j2").write_text("{{ first_name }} عزیز، کد تخفیف شما {{ code }}\n", "utf-8")
    return Campaign(folder)


@pytest.fixture
def simulator() -> AmootSimulator:
    return AmootSimulator(token=TOKEN)


@pytest.fixture
def server(simulator: AmootSimulator) -> Iterator[SandboxServer]:
    with SandboxServer(simulator) as served:
        yield served


def live_provider(server: SandboxServer, **overrides: object) -> str:
    """The provider section pointing at the socket-served fake."""
    settings: dict[str, object] = {
        "sandbox": "false",
        "base_url": server.base_url,
        "token": "${AMOOT_TOKEN}",
        "chunk_size": 3,
        "concurrency": 2,
        "timeout": 5,
        "max_attempts": 3,
    }
    settings.update(overrides)
    return "\n".join(f"{key}: {value}" for key, value in settings.items())


def cli_env(env: dict[str, str] | None = None) -> dict[str, str]:
    full_env = {**os.environ, "TZ": "UTC", "AMOOT_TOKEN": TOKEN, "PYTHONPATH": str(REPO)}
    full_env.update(env or {})
    return full_env


STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")  # Tehran time, before every line


def unstamped(stderr: str) -> str:
    """stderr without a terminal (every test's): each line must start with the time; without it.

    So every test that reads stderr also checks the stamps, and compares the words only."""
    lines = stderr.splitlines(keepends=True)
    assert all(STAMP.match(line) for line in lines), stderr
    return "".join(line[len("YYYY-MM-DD HH:MM:SS ") :] for line in lines)


def run_cli(
    config: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m pipeline CONFIG ...` as an operator runs it: another cwd, TZ=UTC, real env;
    stderr without its time stamps (checked)."""
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", str(config), *args],
        cwd=config.parent.parent,  # not the config's folder: relative paths must still resolve
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    done.stderr = unstamped(done.stderr)
    return done


def run_main(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`run_cli` in this process: the same `main()`, environment and cwd, in milliseconds.

    For the many fault scenarios whose point is the pipeline's answer to the socket-served
    fake, not the interpreter starting; signals and kills still use real subprocesses.
    """
    from pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    os.environ.update(cli_env(env))
    os.chdir(config.parent.parent)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(config), *args])
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
    return subprocess.CompletedProcess(
        ["pipeline", str(config), *args], code, out.getvalue(), unstamped(err.getvalue())
    )


def start_cli(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`run_cli`, but started in the background, for tests that signal or race the run."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", str(config), *args],
        cwd=config.parent.parent,
        env=cli_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def gated() -> Iterator[tuple[GatedSimulator, SandboxServer]]:
    """A socket-served fake that holds every SendPeerToPeer answer until `gate` is set."""
    sim = GatedSimulator(token=TOKEN)
    with SandboxServer(sim) as server:
        try:
            yield sim, server
        finally:
            sim.gate.set()  # let held answers go, so closing the server does not wait


def sends(simulator: AmootSimulator) -> list[RecordedRequest]:
    """The SendPeerToPeer requests the fake received (other methods, such as a credit check
    with AccountStatus, change nothing)."""
    return [r for r in list(simulator.requests) if r.method == "SendPeerToPeer"]


class GatedSimulator(AmootSimulator):
    """The fake that processes each SendPeerToPeer at once but holds its answer until `gate`
    opens.

    So a test decides exactly how long requests stay in flight (accepted, not yet answered):
    long enough to signal the run, or to start a second run beside it.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = threading.Event()
        self.arrivals = 0  # SendPeerToPeer requests processed so far
        self._arrived = threading.Condition()

    def decide(self, request: httpx.Request) -> Reply:
        reply = super().decide(request)
        if not request.url.path.endswith("/SendPeerToPeer"):
            return reply
        with self._arrived:
            self.arrivals += 1
            self._arrived.notify_all()
        self.gate.wait(30)  # a bound, so a failing test cannot hang the server's close
        return reply

    def wait_for_arrivals(self, count: int, timeout: float = 20) -> None:
        """Block until `count` sends have been processed (and are held at the gate)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: self.arrivals >= count, timeout):
                raise AssertionError(f"the fake saw {self.arrivals} send(s), not {count}")


def journal_snapshot(
    campaign: Campaign, numbers: list[str], name: str = "test-campaign"
) -> tuple[dict[str, Entry], dict[State, int]]:
    """What the journal (opened read-only) holds for `numbers`, and its counts per state."""
    with Journal.open(campaign.journal, name, readonly=True) as journal:
        return journal.lookup(numbers), journal.counts()


_JOURNAL_STATE = {
    "sent": State.SENT,
    "already_sent": State.SENT,
    "failed": State.FAILED,
    "unknown": State.UNKNOWN,
}


def assert_stopped_cleanly(
    proc: subprocess.Popen[str], campaign: Campaign, sim: AmootSimulator, *, sent: int
) -> None:
    """Exit 3, `interrupted`: the `sent` rows in flight were answered and recorded, the rest
    `pending`, and the journal agrees with the report."""
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 3, out + err
    assert "interrupted" in err and "Traceback" not in err
    report = campaign.read_report()
    done = {r["number"] for r in report if r["status"] == "sent"}
    assert len(done) == sent and done == {"0" + a.number for a in sim.accepted}
    assert {r["status"] for r in report if r["number"] not in done} == {"pending"}
    assert_journal_agrees(campaign, report)


def assert_journal_agrees(
    campaign: Campaign, report: list[dict[str, str]], name: str = "test-campaign"
) -> None:
    """The journal and the report tell the same story, row by row (IDs included)."""
    rows = [r for r in report if r["number"] and r["status"] not in ("duplicate", "invalid")]
    entries, counts = journal_snapshot(campaign, [r["number"] for r in rows], name)
    assert sum(counts.values()) == len(entries), "the journal holds numbers the report lacks"
    assert counts[State.INFLIGHT] == 0, "a finished run left rows in flight"
    for row in rows:
        entry = entries.get(row["number"])
        status = row["status"]
        if status == "pending":
            # never attempted (no entry), or answered "nothing was processed"
            assert entry is None or entry.state is State.PENDING, (row, entry)
            continue
        assert entry is not None, row
        assert entry.state is _JOURNAL_STATE[status], (row, entry)
        if entry.state is State.SENT:
            assert (entry.message_id, entry.campaign_id) == (
                row["message_id"],
                row["campaign_id"],
            ), (row, entry)
