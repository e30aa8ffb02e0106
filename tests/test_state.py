"""The shared state folder (issue 15): one journal and one opt-out list for every campaign of the
user, a lock per campaign, so two campaigns run at once and one campaign never twice."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import stat
import threading
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from pipeline.config import state_dir
from pipeline.errors import ConfigError, LockHeld
from pipeline.journal import SCHEMA_VERSION, Journal, State
from pipeline.lock import hold_lock, holder, lock_path, shared_lock_path
from pipeline.sandbox import AmootSimulator, Reply
from pipeline.sandbox_server import SandboxServer
from tests.conftest import (
    TOKEN,
    Campaign,
    GatedSimulator,
    live_provider,
    run_main,
    sends,
    start_cli,
)
from tests.test_journal import schema_version, write_v1_journal


def shared_campaign(
    folder: Path, name: str, server: SandboxServer, numbers: list[str], **provider: object
) -> Path:
    """A campaign folder whose config names no journal.path and no suppression.path: both are
    the shared state folder's. Its template marks the request as this campaign's."""
    folder.mkdir(parents=True)
    (folder / "contacts.csv").write_text("mobile\n" + "".join(f"{n}\n" for n in numbers), "utf-8")
    settings = live_provider(server, **provider).replace("\n", "\n  ")
    (folder / "config.yaml").write_text(
        f"campaign: {name}\ncontacts:\n  path: contacts.csv\ntemplate:\n  text: from-{name}\n"
        f"provider:\n  {settings}\nreport:\n  path: reports/report.csv\n",
        "utf-8",
    )
    return folder / "config.yaml"


def report_of(config: Path) -> dict[str, str]:
    """number -> status, from the campaign's report."""
    return {row["number"]: row["status"] for row in Campaign(config.parent).read_report()}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_two_campaign_folders_share_the_optout_list_and_the_journal(
    tmp_path: Path, state_home: Path
) -> None:
    """A number the provider rejects as blacklisted (Mobile_Invalid) in campaign A's live run
    goes on the shared opt-out list, so campaign B, run from another folder, skips it
    (`suppressed`); both campaigns' rows are in the one shared journal; nothing is kept in the
    campaign folders; the state folder is 0700, its files 0600, under umask 022."""
    sim = AmootSimulator(token=TOKEN, blacklist=["09120000003"])
    with SandboxServer(sim) as server:
        first = shared_campaign(
            tmp_path / "a", "autumn-a", server, ["09120000001", "09120000002", "09120000003"]
        )
        second = shared_campaign(
            tmp_path / "elsewhere" / "b", "autumn-b", server, ["09120000003", "09120000004"]
        )
        before = os.umask(0o022)
        try:
            ran_first = run_main(first)
            ran_second = run_main(second)
        finally:
            os.umask(before)
    assert ran_first.returncode == 0, ran_first.stdout + ran_first.stderr
    assert ran_second.returncode == 0, ran_second.stdout + ran_second.stderr
    assert report_of(first) == {
        "09120000001": "sent",
        "09120000002": "sent",
        "09120000003": "failed",
    }
    assert report_of(second) == {"09120000003": "suppressed", "09120000004": "sent"}
    assert sorted("0" + a.number for a in sim.accepted) == [
        "09120000001",
        "09120000002",
        "09120000004",
    ]
    optout = (state_home / "optout.txt").read_text("utf-8")
    assert "09120000003  # " in optout
    assert not (tmp_path / "a" / "state").exists()
    assert not (tmp_path / "elsewhere" / "b" / "state").exists()
    assert mode(state_home) == 0o700
    files = sorted(p.name for p in state_home.iterdir())
    assert files == [
        "journal.sqlite",
        "journal.sqlite.autumn-a.lock",
        "journal.sqlite.autumn-b.lock",
        "journal.sqlite.lock",
        "optout.txt",
        "optout.txt.lock",  # every change to the list is made under its flock
    ]
    assert {name: mode(state_home / name) for name in files} == dict.fromkeys(files, 0o600)
    journal = state_home / "journal.sqlite"
    for name, sent in (("autumn-a", 2), ("autumn-b", 1)):
        with Journal.open(journal, name, readonly=True) as opened:
            assert opened.counts()[State.SENT] == sent


def test_the_state_folder_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$PIPELINE_STATE_DIR, else $XDG_STATE_HOME/pipeline (an absolute one), else
    ~/.local/state/pipeline."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PIPELINE_STATE_DIR", str(tmp_path / "chosen"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "chosen"
    monkeypatch.delenv("PIPELINE_STATE_DIR")
    assert state_dir() == tmp_path / "xdg" / "pipeline"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # the XDG rule: ignored
    assert state_dir() == home / ".local" / "state" / "pipeline"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert state_dir() == home / ".local" / "state" / "pipeline"
    monkeypatch.setenv("PIPELINE_STATE_DIR", "")  # empty is unset
    assert state_dir() == home / ".local" / "state" / "pipeline"
    monkeypatch.setenv("PIPELINE_STATE_DIR", "state")
    with pytest.raises(ConfigError, match="PIPELINE_STATE_DIR='state' is not an absolute path"):
        state_dir()


def test_a_relative_state_folder_is_exit_2_and_nothing_is_sent(
    tmp_path: Path, simulator: AmootSimulator, server: SandboxServer
) -> None:
    """PIPELINE_STATE_DIR=state (relative: to which folder, under cron?) stops the run before
    anything is read or sent: exit 2, the message names it and the fix; a config that names
    both paths does not need the folder."""
    config = shared_campaign(tmp_path / "a", "spring", server, ["09120000001"])
    result = run_main(config, env={"PIPELINE_STATE_DIR": "state"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == (
        "error: PIPELINE_STATE_DIR='state' is not an absolute path. Fix: give the whole path, "
        "such as /home/shop/.local/state/pipeline.\nNothing was sent."
    )
    assert sends(simulator) == []
    named = config.read_text("utf-8") + "journal:\n  path: j.sqlite\nsuppression:\n  path: null\n"
    config.write_text(named, "utf-8")
    assert run_main(config, env={"PIPELINE_STATE_DIR": "state"}).returncode == 0
    assert len(sends(simulator)) == 1


class TimedSimulator(GatedSimulator):
    """The gated fake that also notes when each campaign's sends were answered (by the text)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.answered: list[tuple[float, str]] = []

    def decide(self, request: httpx.Request) -> Reply:
        reply = super().decide(request)
        if request.url.path.endswith("/SendPeerToPeer"):
            name = "a" if b"from-camp-a" in request.content else "b"
            self.answered.append((time.monotonic(), name))
        return reply


def test_two_campaigns_on_one_journal_run_at_the_same_time(
    tmp_path: Path, state_home: Path
) -> None:
    """Two campaigns sharing the journal (two cron lines at 10:00) send at the same time: the
    fake holds A's first request until B's has arrived too, so neither waits for the other.
    B opening the journal leaves A's rows in flight alone (not `unknown`); a second run of
    either campaign meanwhile exits 4 at once, naming the campaign and the PID. Both finish
    (exit 0), every number sent once, in well under the time of one after the other."""
    sim = TimedSimulator(token=TOKEN)
    a_numbers = [f"0912000{i:04d}" for i in range(24)]
    b_numbers = [f"0935000{i:04d}" for i in range(24)]
    with SandboxServer(sim, latency=0.1) as server:
        try:
            # One request in flight each, 8 in all; held by the fake well within the timeout.
            settings = {"concurrency": 1, "timeout": 60}
            config_a = shared_campaign(tmp_path / "a", "camp-a", server, a_numbers, **settings)
            config_b = shared_campaign(tmp_path / "b", "camp-b", server, b_numbers, **settings)
            run_a = start_cli(config_a)
            sim.wait_for_arrivals(1, timeout=60)  # A holds its lock, its first rows in flight
            run_b = start_cli(config_b)
            sim.wait_for_arrivals(2, timeout=60)  # ... and B sends beside it
            journal = state_home / "journal.sqlite"
            with Journal.open(journal, "camp-a", readonly=True) as opened:
                assert opened.counts()[State.INFLIGHT] >= 3  # B's open recovered none of them
                assert opened.counts()[State.UNKNOWN] == 0

            for config, proc, name in ((config_a, run_a, "camp-a"), (config_b, run_b, "camp-b")):
                started = time.monotonic()
                again = run_main(config)
                assert again.returncode == 4, again.stdout + again.stderr
                assert time.monotonic() - started < 5
                assert (
                    f"error: {lock_path(journal, name)}: another run of campaign '{name}' is in "
                    f"progress (PID {proc.pid}); this run did nothing." in again.stderr
                )
            assert sim.arrivals == 2  # the refused runs sent nothing
            released = time.monotonic()
            sim.gate.set()
            outcomes = [proc.communicate(timeout=120) for proc in (run_a, run_b)]
        finally:
            sim.gate.set()
    assert (run_a.returncode, run_b.returncode) == (0, 0), outcomes
    accepted = ["0" + a.number for a in sim.accepted]
    assert sorted(accepted) == sorted(a_numbers + b_numbers)  # each once
    assert set(report_of(config_a).values()) == set(report_of(config_b).values()) == {"sent"}
    last = {name: max(t for t, n in sim.answered if n == name) - released for name in "ab"}
    together = max(last.values())
    # One after the other would take the sum (each ~0.7 s of latency alone).
    assert together < 0.8 * sum(last.values()), last


def test_a_campaign_folder_journal_keeps_working(
    campaign: Campaign, simulator: AmootSimulator, server: SandboxServer, state_home: Path
) -> None:
    """A config with `journal.path: state/journal.sqlite` (as configs before the shared folder
    have), its journal and the lock file an older version left beside it: the next run finds
    its sent rows `already_sent` and sends nothing again; the shared folder holds no journal."""
    numbers = ["09121111111", "09122222222"]
    campaign.contacts([(n, "نام", "C") for n in numbers])
    campaign.write_config(live_provider(server))
    assert run_main(campaign.config).returncode == 0
    shared_lock_path(campaign.journal).write_text("")  # as an older version leaves it

    again = run_main(campaign.config)

    assert again.returncode == 0, again.stdout + again.stderr
    assert {r["status"] for r in campaign.read_report()} == {"already_sent"}
    assert len(sends(simulator)) == 1
    assert not (state_home / "journal.sqlite").exists()


def test_an_older_pipeline_running_on_the_journal_keeps_a_run_out(
    campaign: Campaign, simulator: AmootSimulator, server: SandboxServer
) -> None:
    """An older version locks the whole journal (`journal.sqlite.lock`, exclusive) and, opening
    it, recovers every campaign's rows in flight: a run beside it exits 4, naming it; and while
    a run holds its campaign's lock, an older version's lock attempt fails (it exits 4)."""
    campaign.contacts([("09121111111", "نام", "C")])
    campaign.write_config(live_provider(server))
    old = shared_lock_path(campaign.journal)
    old.parent.mkdir()
    with old.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as an older version takes it
        held.write("4242\n")
        held.flush()
        result = run_main(campaign.config)
    assert result.returncode == 4, result.stdout + result.stderr
    assert result.stderr.strip() == (
        f"error: {old}: a run of an older version of the pipeline holds this journal (PID 4242); "
        "this run did nothing. Wait for it to finish (or stop it), then run the same command again"
    )
    assert sends(simulator) == []
    with hold_lock(campaign.journal, "test-campaign"), old.open("r+") as older:
        with pytest.raises(BlockingIOError):
            fcntl.flock(older, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with hold_lock(campaign.journal, "another-campaign"):  # other campaigns run beside it
            pass


def test_lock_files_per_campaign_and_the_probe(tmp_path: Path) -> None:
    """Each campaign has its own lock file beside the journal (a sandbox key's `:` as `+`);
    `holder` finds the PID of a holder, None for no run, and creates no lock file; a probe's
    brief hold (no PID written) does not turn a starting run away."""
    journal = tmp_path / "journal.sqlite"
    assert lock_path(journal, "sandbox:spring") == tmp_path / "journal.sqlite.sandbox+spring.lock"
    assert holder(journal, "spring") is None
    assert list(tmp_path.iterdir()) == []
    with hold_lock(journal, "spring"), hold_lock(journal, "sandbox:spring"):
        assert holder(journal, "spring") == os.getpid()
        busy = r"campaign 'spring' \(sandbox\) is in progress"
        with pytest.raises(LockHeld, match=busy), hold_lock(journal, "sandbox:spring"):
            pass
    assert holder(journal, "spring") is None

    probe = os.open(lock_path(journal, "spring"), os.O_RDONLY)
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as `status` probes it
    threading.Timer(0.05, os.close, (probe,)).start()
    with hold_lock(journal, "spring"):  # waited for the probe to let go
        assert holder(journal, "spring") == os.getpid()
    with pytest.raises(ValueError, match="not a campaign's journal key"):
        lock_path(journal, "../escape")


def test_a_journal_migrated_by_two_runs_at_once_stays_correct(tmp_path: Path) -> None:
    """Two campaigns' runs open an old (version 1) journal at the same moment: each migration
    step runs once (BEGIN IMMEDIATE: the second open waits, then finds it done), every row is
    kept, and each run recovers only its own campaign's row in flight."""
    for attempt in range(5):
        path = tmp_path / f"journal-{attempt}.sqlite"
        write_v1_journal(path)
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute(
                "INSERT INTO messages VALUES ('autumn', '09129999999', 'inflight', '', '', '', "
                "'x', 1, '2026-03-01T10:00:00.000+00:00')"
            )
        opened: dict[str, int] = {}
        failures: list[BaseException] = []
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=_open_at_once, args=(path, n, barrier, opened, failures))
            for n in ("spring", "autumn")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert failures == []
        assert opened == {"spring": 1, "autumn": 1}
        assert schema_version(path) == str(SCHEMA_VERSION)
        with closing(sqlite3.connect(path)) as conn:
            columns = [row[1] for row in conn.execute("PRAGMA table_info(messages)")]
            rows = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        assert columns.count("delivery") == 1 and rows == 4


def _open_at_once(
    path: Path,
    name: str,
    barrier: threading.Barrier,
    opened: dict[str, int],
    failures: list[BaseException],
) -> None:
    try:
        barrier.wait()
        with Journal.open(path, name) as journal:
            opened[name] = journal.recovered
    except BaseException as exc:  # the test asserts there was none
        failures.append(exc)


def test_a_journal_in_rollback_mode_held_by_another_run_is_switched_to_wal_once_free(
    tmp_path: Path,
) -> None:
    """Switching to WAL needs the file alone, and SQLite says "locked" at once (no busy
    handler) while another connection writes it in rollback mode, as when two runs open a new
    state folder's journal together: the open waits for it (it failed at once before)."""
    path = tmp_path / "journal.sqlite"
    write_v1_journal(path)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] != "wal"
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        with Journal.open(path, "spring") as journal:
            assert journal.recovered == 1  # its in-flight row
    finally:
        release.join()
        other.close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
