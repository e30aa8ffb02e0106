"""Files that hold customers' numbers, names and codes are their owner's alone, whatever the umask.

Every test here runs with umask 000, under which a plain open() or mkdir() makes files that
every user of the machine can read (0666) and folders anyone can list (0777): what the
pipeline creates must be 0600 (files) and 0700 (folders) all the same.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from pipeline.config import load_config
from pipeline.journal import Journal
from pipeline.models import Row, RunOptions, Status
from pipeline.plan import Spool
from pipeline.run import run
from pipeline.sandbox import AmootSimulator
from pipeline.suppression import load_suppression
from tests.conftest import TOKEN

FILE, FOLDER = 0o600, 0o700


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """umask 000 for the test (the worst a cron job or a shared account may have)."""
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def held_under(folder: Path) -> dict[str, int]:
    """The files this process holds open under `folder` (named or not), with their modes."""
    held = {}
    for fd in os.listdir("/proc/self/fd"):
        try:  # the listing's own descriptor is gone by now
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(f"{folder}/"):
                held[target] = mode(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            continue
    return held


class Watch:
    """A progress display that, at every update, notes the mode of each file and folder the
    run has made under `folder`, and of each file the run holds open there (the spool has no
    name: it is seen through /proc/self/fd)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.before = set(folder.rglob("*"))
        self.modes: dict[str, int] = {}

    def start(self, total: int) -> None:
        self.look()

    def update(self, done: int) -> None:
        self.look()

    def finish(self) -> None:
        self.look()

    def look(self) -> None:
        for path in set(self.folder.rglob("*")) - self.before:
            self.modes[str(path.relative_to(self.folder))] = mode(path)
        for target, found in held_under(self.folder).items():
            name = str(Path(target).relative_to(self.folder))
            if name.endswith(" (deleted)"):  # an anonymous file: only the spool is one
                name = "(spool)"
            self.modes.setdefault(name, found)


def test_every_file_and_folder_a_run_creates_is_its_owners_alone(tmp_path: Path) -> None:
    """A whole sending run (its plan through the spool, a blacklisted number, an invalid
    row): the journal, its -wal, -shm and lock, the spool, the report and its partial file, the
    attention file and a new opt-out list are 0600; state/, reports/ and lists/ are 0700."""
    folder = tmp_path / "campaign"
    folder.mkdir(mode=0o755)
    contacts = [{"mobile": f"0912000{i:04d}", "first_name": f"نام{i}"} for i in range(1, 8)]
    contacts.append({"mobile": "12345", "first_name": "بد"})  # invalid: an attention row
    (folder / "contacts.jsonl").write_text(
        "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in contacts), encoding="utf-8"
    )
    (folder / "config.yaml").write_text(
        "campaign: private\n"
        "contacts: {path: contacts.jsonl}\n"  # every run's plan goes through the spool
        "template: {text: '{{ first_name }} عزیز، سلام'}\n"
        "provider: {sandbox: false, token: '${AMOOT_TOKEN}', chunk_size: 2, preflight: false}\n"
        "suppression: {path: lists/optout.txt}\n"
        "report: {path: reports/report.csv}\n"
        "journal: {path: state/journal.sqlite}\n",
        encoding="utf-8",
    )
    os.environ["AMOOT_TOKEN"] = TOKEN
    try:
        config = load_config(folder / "config.yaml")
    finally:
        del os.environ["AMOOT_TOKEN"]
    simulator = AmootSimulator(token=TOKEN, blacklist=["09120000003"])
    watch = Watch(folder)
    result = run(
        config,
        RunOptions(),
        transport=httpx.MockTransport(simulator.handle),
        sleep=lambda _s: False,
        progress=watch,
    )
    watch.look()
    assert result.counts[Status.SENT] == 6
    assert result.suppressed_added == 1
    names = set(watch.modes)
    expected = {
        "state",
        "state/journal.sqlite",
        "state/journal.sqlite-wal",
        "state/journal.sqlite-shm",
        "state/journal.sqlite.lock",
        "state/journal.sqlite.private.lock",
        "(spool)",
        "reports",
        "reports/report.csv",
        f"reports/report.csv.{os.getpid()}.partial",
        "reports/report-attention.csv",
        "lists",
        "lists/optout.txt",
    }
    assert expected <= names, expected - names
    wrong = {
        name: oct(found)
        for name, found in watch.modes.items()
        if found != (FOLDER if name in {"state", "reports", "lists"} else FILE)
    }
    assert wrong == {}


def test_the_wal_and_shm_of_a_new_journal_are_its_owners_alone(tmp_path: Path) -> None:
    """SQLite gives -wal and -shm the journal's own mode, so they are 0600 like the file."""
    path = tmp_path / "state" / "deep" / "journal.sqlite"
    with Journal.open(path, "spring") as journal:
        journal.mark_inflight([("09120000001", "سلام")])
        found = {p.name: oct(mode(p)) for p in path.parent.iterdir()}
    assert found == {
        name: oct(FILE) for name in ("journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm")
    }
    assert (mode(tmp_path / "state"), mode(path.parent)) == (FOLDER, FOLDER)


def test_the_spool_and_the_folders_it_creates_are_its_owners_alone(tmp_path: Path) -> None:
    """The spool holds every prepared row (numbers and texts): its file is 0600, and the
    folders it makes for itself 0700."""
    folder = tmp_path / "made" / "for the spool"
    spool = Spool(folder)
    spool.write([Row(row=1, phone="09120000001", values={"first_name": "سارا"})])
    held = list(held_under(folder).values())
    assert [len(batch) for batch in spool.batches()] == [1]  # read back, and closed
    assert held == [FILE]
    assert (mode(tmp_path / "made"), mode(folder)) == (FOLDER, FOLDER)


def test_a_new_opt_out_list_is_its_owners_alone_an_existing_one_keeps_its_mode(
    tmp_path: Path,
) -> None:
    """A list the pipeline starts is 0600 in a 0700 folder; a list the user made keeps the
    mode they gave it (it may be shared on purpose)."""
    moment = datetime(2026, 3, 20, 20, 30, tzinfo=UTC)
    new = tmp_path / "lists" / "optout.txt"
    assert load_suppression(new, "optout.txt").add([("09120000001", "blacklisted")], moment=moment)
    assert (mode(new), mode(new.parent)) == (FILE, FOLDER)
    shared = tmp_path / "shared.txt"
    shared.write_text("09120000002\n", encoding="utf-8")
    shared.chmod(0o644)
    load_suppression(shared, "shared.txt").add([("09120000001", "blacklisted")], moment=moment)
    assert mode(shared) == 0o644
    assert "09120000001" in shared.read_text(encoding="utf-8")
