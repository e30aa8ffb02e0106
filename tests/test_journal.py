"""Tests for pipeline.journal: the write-ahead journal behind "never the same message twice"."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import chain
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pipeline.errors import JournalError
from pipeline.journal import RECOVERED_ERROR, SCHEMA_VERSION, Entry, Journal, State
from pipeline.journal_file import _MIGRATIONS
from pipeline.models import Outcome, Status
from pipeline.sandbox import AmootSimulator
from pipeline.sandbox_server import SandboxServer
from tests.conftest import Campaign, cli_env, live_provider, run_main, sends

REPO = Path(__file__).resolve().parents[1]
SENT = Outcome(Status.SENT, message_id="9001", campaign_id="77")
FAILED = Outcome(Status.FAILED, error="Mobile_Invalid")
UNKNOWN = Outcome(Status.UNKNOWN, error="the connection dropped after the request was sent")
PENDING = Outcome(Status.PENDING, error="Credit_NotEnough")


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"0912{n:07d}" for n in range(start, start + count)]


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter that imports this checkout's pipeline package."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def snapshot(path: Path) -> list[tuple[object, ...]]:
    """Every row of the file, read with plain sqlite3, to compare before and after."""
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT * FROM messages ORDER BY campaign, number").fetchall()
    conn.close()
    return rows


def test_round_trip_every_state(tmp_path: Path) -> None:
    """Each outcome comes back from lookup as its state, with its error, IDs, text and attempts."""
    path = tmp_path / "journal.sqlite"
    a, b, c, d = numbers(4)
    with Journal.open(path, "spring") as journal:
        journal.mark_inflight([(a, "سلام a"), (b, "سلام b"), (c, "سلام c"), (d, "سلام d")])
        marked = journal.lookup([a, b, c, d])
        assert {e.state for e in marked.values()} == {State.INFLIGHT}
        assert marked[a].text == "سلام a"
        assert marked[a].attempts == 1
        journal.record([(a, SENT), (b, FAILED), (c, UNKNOWN), (d, PENDING)])
    with Journal.open(path, "spring") as journal:
        found = journal.lookup([a, b, c, d])
        assert journal.recovered == 0
        assert journal.counts() == {
            State.INFLIGHT: 0,
            State.SENT: 1,
            State.FAILED: 1,
            State.UNKNOWN: 1,
            State.PENDING: 1,
        }
    assert found[a] == Entry(a, State.SENT, "", "9001", "77", "سلام a", 1, found[a].updated_at)
    assert (found[b].state, found[b].error) == (State.FAILED, "Mobile_Invalid")
    assert (found[c].state, found[c].error) == (State.UNKNOWN, UNKNOWN.error)
    assert (found[d].state, found[d].error) == (State.PENDING, "Credit_NotEnough")
    assert found[d].text == "سلام d"


def test_open_creates_folders_schema_and_wal(tmp_path: Path) -> None:
    """Opening for writing creates missing folders, the schema with its version, in WAL mode."""
    path = tmp_path / "state" / "deep" / "journal.sqlite"
    Journal.open(path, "spring").close()
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        mode = conn.execute("PRAGMA journal_mode").fetchone()
    conn.close()
    assert version == (str(SCHEMA_VERSION),)
    assert mode == ("wal",)


def test_updated_at_is_utc_iso(tmp_path: Path) -> None:
    """updated_at is an ISO 8601 timestamp in UTC, taken when the row changed."""
    before = datetime.now(UTC)
    with Journal.open(tmp_path / "j.sqlite", "spring") as journal:
        journal.mark_inflight([("09120000001", "hi")])
        stamp = datetime.fromisoformat(journal.lookup(["09120000001"])["09120000001"].updated_at)
    assert stamp.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC)


CRASH = """
import os, signal, sys
from pathlib import Path
from pipeline.journal import Journal
from pipeline.models import Outcome, Status

spring = Journal.open(Path(sys.argv[1]), "spring")
autumn = Journal.open(Path(sys.argv[1]), "autumn")
spring.mark_inflight([("09120000001", "one"), ("09120000002", "two"), ("09120000003", "three")])
spring.record([("09120000003", Outcome(Status.SENT, message_id="m3", campaign_id="c1"))])
autumn.mark_inflight([("09120000001", "autumn one")])
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkilled_run_leaves_unknown_rows_on_reopen(tmp_path: Path) -> None:
    """A run killed with requests in flight: on reopen, the campaign's in-flight rows are unknown.

    The marks were committed before the kill, so they survive it. Only the opening campaign's
    rows are recovered: another campaign's may belong to its run in progress (issue 15); they
    are recovered when that campaign opens the journal.
    """
    path = tmp_path / "journal.sqlite"
    killed = run_python(CRASH, str(path))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with Journal.open(path, "spring") as spring:
        assert spring.recovered == 2
        found = spring.lookup(numbers(3, start=1))
    for number, text in (("09120000001", "one"), ("09120000002", "two")):
        assert (found[number].state, found[number].error) == (State.UNKNOWN, RECOVERED_ERROR)
        assert (found[number].text, found[number].attempts) == (text, 1)
    assert (found["09120000003"].state, found["09120000003"].message_id) == (State.SENT, "m3")
    with Journal.open(path, "autumn", readonly=True) as autumn:  # spring's open left it alone
        assert autumn.lookup(["09120000001"])["09120000001"].state is State.INFLIGHT
    with Journal.open(path, "autumn") as autumn:
        assert autumn.recovered == 1
        assert autumn.lookup(["09120000001"])["09120000001"].state is State.UNKNOWN
        assert autumn.counts()[State.INFLIGHT] == 0


RUN_THEN_CRASH = """
import os, signal, sys
from pathlib import Path
from pipeline.journal import Journal
from pipeline.models import Outcome, Status

journal = Journal.open(Path(sys.argv[1]), "spring")
journal.mark_inflight([("09120000001", "one"), ("09120000002", "two")])
answers = [
    ("09120000001", Outcome(Status.SENT, message_id="m1")),
    ("09120000002", Outcome(Status.FAILED, error="Mobile_Invalid")),
]
journal.mark_inflight([("09120000003", "three")], answers)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_answers_committed_with_the_next_mark_survive_a_kill(tmp_path: Path) -> None:
    """As a run calls it: the answers to one request ride in the next request's mark, and once
    that call returns both are committed: a kill right after keeps the answers, and only the
    last request's rows come back `unknown`."""
    path = tmp_path / "journal.sqlite"
    killed = run_python(RUN_THEN_CRASH, str(path))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with Journal.open(path, "spring") as journal:
        assert journal.recovered == 1
        found = journal.lookup(numbers(3, start=1))
    assert (found["09120000001"].state, found["09120000001"].message_id) == (State.SENT, "m1")
    assert (found["09120000002"].state, found["09120000002"].error) == (
        State.FAILED,
        "Mobile_Invalid",
    )
    assert (found["09120000003"].state, found["09120000003"].text) == (State.UNKNOWN, "three")


def test_closed_without_record_recovers_once(tmp_path: Path) -> None:
    """Rows left in flight by a run that stopped become unknown on the next open, and only then."""
    path = tmp_path / "journal.sqlite"
    with Journal.open(path, "spring") as journal:
        journal.mark_inflight([(n, "hi") for n in numbers(3)])
        journal.record([(numbers(1)[0], FAILED)])
    with Journal.open(path, "spring") as journal:
        assert journal.recovered == 2
        assert journal.counts()[State.UNKNOWN] == 2
    with Journal.open(path, "spring") as journal:
        assert journal.recovered == 0
        assert journal.counts()[State.UNKNOWN] == 2


def test_readonly_missing_file_creates_nothing(tmp_path: Path) -> None:
    """A read-only open of a missing journal reads as empty and creates no file and no folder."""
    path = tmp_path / "state" / "journal.sqlite"
    with Journal.open(path, "spring", readonly=True) as journal:
        assert journal.lookup(numbers(3)) == {}
        assert journal.counts() == dict.fromkeys(State, 0)
        assert journal.recovered == 0
        with pytest.raises(RuntimeError, match="read-only"):
            journal.mark_inflight([(numbers(1)[0], "hi")])
    assert list(tmp_path.iterdir()) == []


def test_readonly_changes_nothing(tmp_path: Path) -> None:
    """A read-only open shows in-flight rows as they are, recovers nothing and writes nothing."""
    path = tmp_path / "journal.sqlite"
    with Journal.open(path, "spring") as journal:
        journal.mark_inflight([(n, "hi") for n in numbers(3)])
        journal.record([(numbers(1)[0], SENT)])
    before_bytes, before_rows = path.read_bytes(), snapshot(path)
    with Journal.open(path, "spring", readonly=True) as journal:
        assert journal.recovered == 0
        assert journal.counts()[State.INFLIGHT] == 2
        with pytest.raises(RuntimeError, match="read-only"):
            journal.record([(numbers(2)[1], SENT)])
    assert path.read_bytes() == before_bytes
    assert snapshot(path) == before_rows
    with Journal.open(path, "spring") as journal:
        assert journal.recovered == 2  # still there for the first writer to recover


def test_an_empty_journal_file_is_refused_not_taken_for_a_new_one(tmp_path: Path) -> None:
    """A 0-byte journal (a failed restore, a copy onto a full disk) is refused, read-only too:
    taken for a new journal, it would send every number of its campaigns again."""
    path = tmp_path / "state" / "journal.sqlite"
    path.parent.mkdir()
    path.touch()
    for readonly in (False, True):
        with pytest.raises(JournalError) as caught:
            Journal.open(path, "spring", readonly=readonly)
        message = str(caught.value)
        assert message.startswith(f"{path}: the journal is empty (0 bytes)")
        assert message.endswith(
            "Fix: restore it from a backup; only if no run has ever sent with it, delete it."
        )
        assert caught.value.exit_code == 2
    assert path.read_bytes() == b""
    assert sorted(p.name for p in path.parent.iterdir()) == ["journal.sqlite"]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A journal written by a newer pipeline is refused, read-only too, and not touched."""
    path = tmp_path / "journal.sqlite"
    Journal.open(path, "spring").close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    for readonly in (False, True):
        with pytest.raises(JournalError, match=r"schema version 99, newer .*upgrade the pipeline"):
            Journal.open(path, "spring", readonly=readonly)


def test_not_a_sqlite_file_is_an_input_error(tmp_path: Path) -> None:
    """A file that is not SQLite gives a JournalError (exit 2) naming the path and a fix."""
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"campaign,number\n" * 100)
    for readonly in (False, True):
        with pytest.raises(JournalError, match="not a SQLite journal") as caught:
            Journal.open(path, "spring", readonly=readonly)
        assert str(caught.value).startswith(f"{path}: ")
        assert "journal.path" in str(caught.value)
        assert caught.value.exit_code == 2
    assert path.read_bytes() == b"campaign,number\n" * 100


def test_other_sqlite_database_is_refused(tmp_path: Path) -> None:
    """A SQLite file with someone else's tables is not taken over as a journal."""
    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (name TEXT)")
    conn.close()
    with pytest.raises(JournalError, match="not a pipeline journal"):
        Journal.open(path, "spring")
    with sqlite3.connect(path) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master").fetchall()
    conn.close()
    assert tables == [("customers",)]


def test_locked_past_busy_timeout(tmp_path: Path) -> None:
    """Another program holding the write lock past busy_timeout gives a JournalError, not a hang."""
    path = tmp_path / "journal.sqlite"
    Journal.open(path, "spring").close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(
            JournalError, match=f"^{re.escape(str(path))}: the journal is locked by another"
        ):
            Journal.open(path, "spring", busy_timeout=0.01)
    finally:
        holder.close()
    Journal.open(path, "spring").close()


def test_unwritable_place_names_path_and_fix(tmp_path: Path) -> None:
    """A journal path under a file, or that is a folder, gives a JournalError naming it."""
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    with pytest.raises(
        JournalError, match=f"^{re.escape(str(blocker / 'journal.sqlite'))}: cannot create"
    ):
        Journal.open(blocker / "journal.sqlite", "spring")
    folder = tmp_path / "folder.sqlite"
    folder.mkdir()
    with pytest.raises(
        JournalError, match=f"^{re.escape(str(folder))}: the journal cannot be opened for writing"
    ):
        Journal.open(folder, "spring")
    with pytest.raises(
        JournalError, match=f"^{re.escape(str(folder))}: the journal cannot be used"
    ):
        Journal.open(folder, "spring", readonly=True)


def test_record_never_downgrades_sent(tmp_path: Path) -> None:
    """Once sent, a number stays sent with its first IDs, whatever is recorded or marked later."""
    path = tmp_path / "journal.sqlite"
    number = numbers(1)[0]
    with Journal.open(path, "spring") as journal:
        journal.mark_inflight([(number, "hi")])
        journal.record([(number, SENT)])
        journal.record([(number, FAILED), (number, UNKNOWN), (number, PENDING)])
        journal.record([(number, Outcome(Status.SENT, message_id="other", campaign_id="x"))])
        before = journal.lookup([number])[number]
        with pytest.raises(RuntimeError, match=f"{number} already sent"):
            journal.mark_inflight([(numbers(1, start=5)[0], "ok"), (number, "again")])
        assert journal.lookup(numbers(1, start=5)) == {}  # the whole mark was refused
    with Journal.open(path, "spring") as journal:
        after = journal.lookup([number])[number]
    assert after == before
    assert (after.state, after.message_id, after.campaign_id, after.attempts) == (
        State.SENT,
        "9001",
        "77",
        1,
    )


def test_record_of_unmarked_number_is_kept(tmp_path: Path) -> None:
    """An answer for a number never marked (a caller bug) is still written: `sent` is never lost."""
    with Journal.open(tmp_path / "j.sqlite", "spring") as journal:
        journal.record([("09120000009", SENT)])
        entry = journal.lookup(["09120000009"])["09120000009"]
    assert (entry.state, entry.attempts, entry.message_id) == (State.SENT, 1, "9001")


def test_record_refuses_statuses_that_are_not_outcomes_of_a_request(tmp_path: Path) -> None:
    """Statuses like invalid or dry_run have no journal state: ValueError, and nothing written."""
    with Journal.open(tmp_path / "j.sqlite", "spring") as journal:
        journal.mark_inflight([("09120000001", "hi")])
        with pytest.raises(ValueError, match="invalid outcome has no journal state"):
            journal.record([("09120000001", SENT), ("09120000002", Outcome(Status.INVALID))])
        assert journal.counts()[State.INFLIGHT] == 1
        assert journal.counts()[State.SENT] == 0


@pytest.mark.parametrize("bad", ["9120000001", "+989120000001", "۰۹۱۲۰۰۰۰۰۰۱", "0912000000", ""])
def test_keys_must_be_normalised_numbers(tmp_path: Path, bad: str) -> None:
    """A number not in 09XXXXXXXXX form is refused: written differently, it would be sent twice."""
    with Journal.open(tmp_path / "j.sqlite", "spring") as journal:
        for call in (
            lambda: journal.lookup([bad]),
            lambda: journal.mark_inflight([(bad, "hi")]),
            lambda: journal.record([(bad, SENT)]),
        ):
            with pytest.raises(ValueError, match="not a normalised mobile number"):
                call()
        assert journal.counts() == dict.fromkeys(State, 0)


VALID = st.from_regex(r"09[0-9]{9}", fullmatch=True)
BAD = st.one_of(
    st.sampled_from(
        [
            "09120000001\n09120000002",  # two good numbers in one key
            "09120000001\n",
            "0912000000",  # one digit short ...
            "091200000011",  # ... and one too many: together the right length
            "۰۹۱۲۰۰۰۰۰۰۱",
            "09120000001 ",
        ]
    ),
    st.text(max_size=14).filter(lambda s: re.fullmatch(r"09[0-9]{9}", s) is None),
)


@pytest.fixture(scope="module")
def empty_journal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journal]:
    """One journal for many examples: a refused call writes nothing, so it stays empty."""
    with Journal.open(tmp_path_factory.mktemp("refusals") / "j.sqlite", "spring") as journal:
        yield journal


@settings(max_examples=60, deadline=None)
@given(
    good=st.lists(VALID, max_size=30),
    bad=st.lists(BAD, min_size=1, max_size=3),
    where=st.integers(min_value=0),
)
def test_one_bad_key_among_many_is_refused(
    empty_journal: Journal, good: list[str], bad: list[str], where: int
) -> None:
    """Numbers are checked as a batch: one key not in 09XXXXXXXXX form, anywhere among good
    ones, is refused by lookup, mark and record; the good ones alone pass."""
    keys = good[:]
    for value in bad:
        keys.insert(where % (len(keys) + 1), value)
    journal = empty_journal
    for call in (
        lambda: journal.lookup(keys),
        lambda: journal.mark_inflight([(k, "hi") for k in keys]),
        lambda: journal.record([(k, SENT) for k in keys]),
    ):
        with pytest.raises(ValueError, match="not a normalised mobile number"):
            call()
    assert journal.counts() == dict.fromkeys(State, 0)
    assert journal.lookup(good) == {}


def test_answers_riding_along_keep_their_own_values(tmp_path: Path) -> None:
    """Answers written with the next mark (more than one statement holds) each keep their own
    state and IDs, under the journal's campaign, and the new marks are in flight."""
    first, second = numbers(300), numbers(300, start=300)
    answers = [
        (n, SENT if i % 3 else Outcome(Status.FAILED, error=f"bad {n}"))
        for i, n in enumerate(first)
    ]
    answers = [
        (n, Outcome(Status.SENT, message_id=f"m{n}", campaign_id=f"c{n}") if o is SENT else o)
        for n, o in answers
    ]
    with Journal.open(tmp_path / "j.sqlite", "spring") as journal:
        journal.mark_inflight([(n, f"text {n}") for n in first])
        journal.mark_inflight([(n, f"text {n}") for n in second], answers)
        found = journal.lookup(first + second)
    with Journal.open(tmp_path / "j.sqlite", "autumn") as other:
        assert other.lookup(first + second) == {}
    for number, outcome in answers:
        entry = found[number]
        assert (entry.state.value, entry.error) == (outcome.status.value, outcome.error)
        assert (entry.message_id, entry.campaign_id) == (outcome.message_id, outcome.campaign_id)
        assert (entry.text, entry.attempts) == (f"text {number}", 1)
    for number in second:
        assert (found[number].state, found[number].text) == (State.INFLIGHT, f"text {number}")
    assert len({e.updated_at for n, e in found.items() if n in second}) == 1


def test_lookup_sees_only_its_own_campaign(tmp_path: Path) -> None:
    """The same number in two campaigns is two entries; each journal sees only its own."""
    path = tmp_path / "journal.sqlite"
    number = numbers(1)[0]
    with Journal.open(path, "spring") as spring:
        spring.mark_inflight([(number, "spring")])
        spring.record([(number, SENT)])
    with Journal.open(path, "autumn") as autumn:
        assert autumn.lookup([number]) == {}
        assert autumn.counts() == dict.fromkeys(State, 0)
        autumn.mark_inflight([(number, "autumn")])  # sent in spring does not block autumn
        assert autumn.lookup([number])[number].state is State.INFLIGHT
    with Journal.open(path, "spring") as spring:
        assert spring.lookup([number])[number].text == "spring"


def test_attempts_increment_and_text_is_not_the_key(tmp_path: Path) -> None:
    """Each mark adds one attempt; an edited template updates the text, never a second entry."""
    path = tmp_path / "journal.sqlite"
    number = numbers(1)[0]
    for attempt, text in enumerate(("first", "edited template", "third"), start=1):
        with Journal.open(path, "spring") as journal:
            journal.mark_inflight([(number, text)])
            journal.record([(number, FAILED if attempt < 3 else SENT)])
            entry = journal.lookup([number])[number]
            assert (entry.attempts, entry.text) == (attempt, text)
    with Journal.open(path, "spring") as journal:
        assert sum(journal.counts().values()) == 1
        assert journal.lookup([number])[number].error == ""


def test_lookup_of_more_numbers_than_one_query_can_bind(tmp_path: Path) -> None:
    """lookup batches its IN (...) query: 1200 known of 1500 asked (with repeats) are all found."""
    known = numbers(1200)
    with Journal.open(tmp_path / "j.sqlite", "spring") as journal:
        journal.mark_inflight([(n, "hi") for n in known])
        journal.record([(n, SENT) for n in known[::2]])
        found = journal.lookup([*numbers(1500), *known[:50]])
    assert set(found) == set(known)
    assert sum(e.state is State.SENT for e in found.values()) == 600


# The version-1 schema exactly as the first release wrote it (not read from the module, so a
# change to the first migration step cannot hide a broken upgrade).
V1_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE messages (
        campaign TEXT NOT NULL,
        number TEXT NOT NULL,
        state TEXT NOT NULL,
        error TEXT NOT NULL DEFAULT '',
        message_id TEXT NOT NULL DEFAULT '',
        campaign_id TEXT NOT NULL DEFAULT '',
        text TEXT NOT NULL DEFAULT '',
        attempts INT NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (campaign, number)
    ) WITHOUT ROWID""",
    "CREATE INDEX messages_inflight ON messages (campaign, number) WHERE state = 'inflight'",
)
V1_STAMP = "2026-03-01T10:00:00.000+00:00"


def write_v1_journal(path: Path) -> list[str]:
    """A version-1 journal with a sent, a failed and an in-flight row of `spring`."""
    a, b, c = numbers(3)
    with sqlite3.connect(path) as conn:
        for statement in V1_SCHEMA:
            conn.execute(statement)
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        conn.executemany(
            "INSERT INTO messages VALUES ('spring', ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (a, "sent", "", "9001", "77", "سلام a", 2, V1_STAMP),
                (b, "failed", "Mobile_Invalid", "", "", "سلام b", 1, V1_STAMP),
                (c, "inflight", "", "", "", "سلام c", 1, V1_STAMP),
            ],
        )
    conn.close()
    return [a, b, c]


def schema_version(path: Path) -> str:
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as conn:
        (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    conn.close()
    return str(version)


def test_version_1_journal_upgrades_in_place(tmp_path: Path) -> None:
    """A v1 journal opened for writing gains the delivery columns, keeps every row as it was,
    recovers its in-flight row, and opens again without migrating twice."""
    assert SCHEMA_VERSION == 3
    path = tmp_path / "journal.sqlite"
    a, b, c = write_v1_journal(path)
    with Journal.open(path, "spring") as journal:
        assert journal.recovered == 1
        found = journal.lookup([a, b, c])
        assert found[a] == Entry(a, State.SENT, "", "9001", "77", "سلام a", 2, V1_STAMP, "", "")
        assert (found[b].state, found[b].error, found[b].updated_at) == (
            State.FAILED,
            "Mobile_Invalid",
            V1_STAMP,
        )
        assert (found[c].state, found[c].error) == (State.UNKNOWN, RECOVERED_ERROR)
        assert [e.number for e in journal.awaiting_delivery()] == [a]
        journal.record_deliveries([(a, "delivered", "1", True)])
    assert schema_version(path) == "3"
    with sqlite3.connect(path) as conn:
        columns = {row[1]: (row[2], row[4]) for row in conn.execute("PRAGMA table_info(messages)")}
        row = conn.execute(
            "SELECT delivery, delivery_code, delivery_final FROM messages WHERE number = ?", (b,)
        ).fetchone()
    conn.close()
    assert columns["delivery"] == ("TEXT", "''")
    assert columns["delivery_code"] == ("TEXT", "''")
    assert columns["delivery_checked_at"] == ("TEXT", "''")
    assert columns["delivery_final"] == ("INTEGER", "0")
    assert row == ("", "", 0)
    with Journal.open(path, "spring") as journal:
        entry = journal.lookup([a])[a]
        assert (entry.delivery, entry.delivery_code) == ("delivered", "1")
        assert journal.awaiting_delivery() == []


def test_version_1_journal_reads_read_only_without_being_changed(tmp_path: Path) -> None:
    """A read-only open of a v1 journal (--dry-run) shows it upgraded, but the file stays v1."""
    path = tmp_path / "journal.sqlite"
    a, _, c = write_v1_journal(path)
    before_bytes = path.read_bytes()
    with Journal.open(path, "spring", readonly=True) as journal:
        found = journal.lookup([a, c])
        assert (found[a].delivery, found[a].delivery_code) == ("", "")
        assert found[c].state is State.INFLIGHT
        assert [e.number for e in journal.awaiting_delivery()] == [a]
        assert journal.delivery_counts() == {"": 1}
        with pytest.raises(RuntimeError, match="read-only"):
            journal.record_deliveries([(a, "delivered", "1", True)])
    assert path.read_bytes() == before_bytes
    assert schema_version(path) == "1"


KILLED_WHILE_CREATING = """
import os, signal, sys
from pathlib import Path

path = Path(sys.argv[1])
dying = False


def die_once_the_name_exists(event, args):
    # Every audited step (open, connect, link...) checks: the first moment the journal's name
    # exists is the worst one to die in, before anything is written into it.
    global dying
    if not dying and os.path.lexists(path):
        dying = True
        os.kill(os.getpid(), signal.SIGKILL)


sys.addaudithook(die_once_the_name_exists)
from pipeline.journal import Journal

Journal.open(path, "spring")
"""


def test_a_run_killed_while_creating_the_journal_leaves_none_that_is_refused(
    tmp_path: Path,
) -> None:
    """The journal's name appears only with its schema in it: a run killed the moment the file
    appears leaves a whole (empty) journal, never the 0-byte file that is refused as a loss."""
    path = tmp_path / "journal.sqlite"
    killed = run_python(KILLED_WHILE_CREATING, str(path))
    assert killed.returncode == -signal.SIGKILL, killed.stderr  # it did die in that moment
    assert path.stat().st_size > 0
    assert schema_version(path) == str(SCHEMA_VERSION)
    with Journal.open(path, "spring") as journal:
        assert journal.counts() == dict.fromkeys(State, 0)


@pytest.mark.parametrize("state", ["queued", "", "SENT"])
def test_a_state_this_version_does_not_know_is_refused(tmp_path: Path, state: str) -> None:
    """A row in a state this version does not know (a newer version, a hand edit) is refused
    at open, read-only too, naming the journal, the campaign and the value; nothing changes."""
    path = tmp_path / "journal.sqlite"
    a, b, c = numbers(3)
    with Journal.open(path, "spring") as journal:
        journal.mark_inflight([(a, "hi"), (b, "hi"), (c, "hi")])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE messages SET state = ? WHERE number IN (?, ?)", (state, b, c))
    conn.close()
    before = snapshot(path)
    for readonly in (False, True):
        with pytest.raises(JournalError) as caught:
            Journal.open(path, "spring", readonly=readonly)
        message = str(caught.value)
        assert message.startswith(
            f"{path}: campaign 'spring' has 2 rows in state {state!r}, which this version"
        ), message
        assert message.endswith("Fix: upgrade the pipeline, or restore the journal from a backup.")
        assert caught.value.exit_code == 2
    assert snapshot(path) == before  # not even the in-flight row was recovered
    with Journal.open(path, "autumn", readonly=True) as autumn:  # another campaign's rows
        assert autumn.counts() == dict.fromkeys(State, 0)


@pytest.mark.parametrize("value", ["two", "", "-1", "0", "1.5", "٢"])
def test_a_schema_version_that_is_no_version_is_refused(tmp_path: Path, value: str) -> None:
    """A schema_version that is not a version number (a hand edit, a damaged file) is refused,
    read-only too, naming the journal and the value; the file is not touched."""
    path = tmp_path / "journal.sqlite"
    Journal.open(path, "spring").close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (value,))
    conn.close()
    for readonly in (False, True):
        with pytest.raises(JournalError) as caught:
            Journal.open(path, "spring", readonly=readonly)
        message = str(caught.value)
        assert message.startswith(f"{path}: the journal's schema_version is {value!r}, ")
        assert message.endswith("Fix: restore the journal from a backup, or upgrade the pipeline.")
        assert caught.value.exit_code == 2
    assert schema_version(path) == value


def test_close_folds_the_wal_into_the_file_even_while_another_program_reads(
    tmp_path: Path,
) -> None:
    """After close, journal.sqlite alone holds every row: copied without its -wal it is whole.

    SQLite folds the WAL in by itself only when the last connection closes; an sqlite3 shell or
    a dashboard left open on the journal kept every row of the run in the -wal file."""
    path = tmp_path / "journal.sqlite"
    Journal.open(path, "spring").close()
    reader = sqlite3.connect(path)
    try:
        assert reader.execute("SELECT count(*) FROM messages").fetchone() == (0,)
        with Journal.open(path, "spring") as journal:
            journal.mark_inflight([(n, "hi") for n in numbers(50)])
            journal.record([(n, SENT) for n in numbers(50)])
            rows = snapshot(path)
        assert reader.execute("SELECT count(*) FROM messages").fetchone() == (50,)
        wal = path.with_name(path.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0
        copy = tmp_path / "copy" / "journal.sqlite"
        copy.parent.mkdir()
        copy.write_bytes(path.read_bytes())  # the file alone, as a plain backup copies it
    finally:
        reader.close()
    assert snapshot(copy) == rows
    assert len(rows) == 50


# -- a read-only journal folder (--dry-run) ------------------------------------------------------

PR_CAPBSET_DROP = 24  # <linux/prctl.h>
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2  # <linux/capability.h>


def _obey_permissions() -> None:
    """In the child, before exec: give up root's right to ignore permission bits.

    CI runs the suite as root, which writes into a 0555 folder as if it were 0755. Dropped from
    the bounding set, the two capabilities are not regained by exec, so the child is bound by
    the bits like any user (`setpriv --bounding-set=-dac_override,-dac_read_search`).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_bound_by_permissions(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`argv` in a child that obeys permission bits even when the tests run as root."""
    preexec = _obey_permissions if os.geteuid() == 0 else None
    return subprocess.run(
        argv, preexec_fn=preexec, capture_output=True, text=True, timeout=60, check=False, **kwargs
    )


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    """Makes folders 0555 for the test, then writable again; skips (saying why) where a child
    could still write into one (root without the capability to give up its override)."""
    folders: list[Path] = []

    def make(folder: Path) -> None:
        folder.chmod(0o555)
        folders.append(folder)
        probe = run_bound_by_permissions(
            [sys.executable, "-c", "import sys; open(sys.argv[1], 'w')", str(folder / "probe")]
        )
        if probe.returncode == 0:
            (folder / "probe").unlink()
            pytest.skip(f"cannot make {folder} read-only for a child process here (root?)")

    yield make
    for folder in folders:
        folder.chmod(0o755)


READ_COUNTS = """
import sys
from pathlib import Path
from pipeline.errors import JournalError
from pipeline.journal import Journal

try:
    with Journal.open(Path(sys.argv[1]), "spring", readonly=True) as journal:
        counts = journal.counts()
        print(" ".join(f"{state}={counts[state]}" for state in counts if counts[state]))
except JournalError as exc:
    print(exc, file=sys.stderr)
    sys.exit(exc.exit_code)
"""


def read_counts(path: Path) -> subprocess.CompletedProcess[str]:
    return run_bound_by_permissions(
        [sys.executable, "-c", READ_COUNTS, str(path)], env={**os.environ, "PYTHONPATH": str(REPO)}
    )


def test_a_read_only_folder_is_read_read_only(tmp_path: Path, read_only: Any) -> None:
    """A journal in a folder this user cannot write reads as it is: SQLite cannot create the
    -shm file it wants beside the file, so the rows are read from a private copy instead."""
    path = tmp_path / "state" / "journal.sqlite"
    with Journal.open(path, "spring") as journal:
        journal.mark_inflight([(n, "hi") for n in numbers(3)])
        journal.record([(numbers(1)[0], SENT)])
    before = path.read_bytes()
    read_only(path.parent)
    seen = read_counts(path)
    assert (seen.returncode, seen.stdout, seen.stderr) == (0, "inflight=2 sent=1\n", "")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["journal.sqlite"]


def test_a_read_only_folder_shows_what_a_running_writer_committed(
    tmp_path: Path, read_only: Any
) -> None:
    """While a run that may write there is sending, the reader sees its committed rows (in the
    -wal it keeps open), not the older state of the file alone (SQLite's `immutable` would)."""
    path = tmp_path / "state" / "journal.sqlite"
    with Journal.open(path, "spring") as writer:
        writer.mark_inflight([(n, "hi") for n in numbers(3)])
        read_only(path.parent)
        writer.record([(n, SENT) for n in numbers(2)])
        seen = read_counts(path)
    assert (seen.returncode, seen.stdout, seen.stderr) == (0, "inflight=1 sent=2\n", "")


def test_a_read_only_folder_with_rows_left_in_the_wal_alone_is_refused(
    tmp_path: Path, read_only: Any
) -> None:
    """A -wal still holding rows, in a folder where SQLite cannot make the -shm that reading it
    needs, is refused (exit 2) rather than read without those rows."""
    path = tmp_path / "state" / "journal.sqlite"
    copy = tmp_path / "copy" / "journal.sqlite"
    copy.parent.mkdir()
    with Journal.open(path, "spring") as journal:
        journal.mark_inflight([(n, "hi") for n in numbers(3)])
        for name in ("journal.sqlite", "journal.sqlite-wal"):  # as a copy taken mid-run has them
            (copy.parent / name).write_bytes((path.parent / name).read_bytes())
    read_only(copy.parent)
    seen = read_counts(copy)
    assert seen.returncode == 2, seen.stderr
    assert seen.stderr.startswith(f"{copy}: the journal's folder is read-only, and ")
    assert seen.stderr.rstrip().endswith(
        "Fix: make the folder writable by this user, or point journal.path at a writable copy."
    )


def test_dry_run_works_when_the_journal_folder_is_read_only(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator, read_only: Any
) -> None:
    """`--dry-run` with a journal folder this user cannot write: exit 0, the journal's word on
    every row, and not a byte changed in the folder (it was exit 2, "cannot be opened")."""
    campaign.contacts([(f"0912000{i:04d}", f"نام{i}", f"C{i}") for i in range(1, 6)])
    campaign.write_config(live_provider(server))
    first = run_main(campaign.config, "--limit", "3")
    assert first.returncode == 0, first.stderr
    state = campaign.journal.parent
    before = {p.name: p.read_bytes() for p in state.iterdir()}
    read_only(state)
    dry = run_bound_by_permissions(
        [sys.executable, "-m", "pipeline", str(campaign.config), "--dry-run"],
        cwd=campaign.folder.parent,
        env=cli_env(),
    )
    assert dry.returncode == 0, dry.stderr
    assert [r["status"] for r in campaign.read_report()] == ["already_sent"] * 3 + ["dry_run"] * 2
    assert {p.name: p.read_bytes() for p in state.iterdir()} == before
    assert len(sends(simulator)) == 1  # the first run's one request of 3


def test_a_run_refuses_a_journal_row_in_an_unknown_state_and_sends_nothing(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
) -> None:
    """A sending run and a dry run both stop with exit 2 and the message (it was exit 1, a
    ValueError traceback); no request leaves."""
    campaign.contacts([(f"0912000{i:04d}", f"نام{i}", f"C{i}") for i in range(1, 6)])
    campaign.write_config(live_provider(server))
    assert run_main(campaign.config, "--limit", "3").returncode == 0
    with sqlite3.connect(campaign.journal) as conn:
        conn.execute("UPDATE messages SET state = 'queued' WHERE number = '09120000002'")
    conn.close()
    for args in ((), ("--dry-run",)):
        again = run_main(campaign.config, *args)
        assert again.returncode == 2, again.stderr
        assert again.stderr.startswith(
            f"error: {campaign.journal}: campaign 'test-campaign' has 1 row in state 'queued'"
        ), again.stderr
        assert "Nothing was sent." in again.stderr
        assert "Traceback" not in again.stderr
    assert len(sends(simulator)) == 1


# What the second release added (v2), exactly as it wrote it.
V2_STEP = (
    "ALTER TABLE messages ADD COLUMN delivery TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE messages ADD COLUMN delivery_code TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE messages ADD COLUMN delivery_final INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE messages ADD COLUMN delivery_checked_at TEXT NOT NULL DEFAULT ''",
    "CREATE INDEX messages_awaiting_delivery ON messages (campaign, number) "
    "WHERE state = 'sent' AND delivery_final = 0",
)


def write_v2_journal(path: Path) -> list[str]:
    """A version-2 journal: the v1 rows, then the delivery columns and their index."""
    written = write_v1_journal(path)
    with sqlite3.connect(path) as conn:
        for statement in V2_STEP:
            conn.execute(statement)
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.close()
    return written


def indexes(path: Path) -> set[str]:
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as conn:
        found = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
    conn.close()
    return found


def test_the_awaiting_delivery_index_of_earlier_journals_is_dropped_version_kept(
    tmp_path: Path,
) -> None:
    """A journal written before the index was dropped: a read-only open (--dry-run) reads the
    file itself and changes nothing; an open for writing drops the index and keeps the schema
    version (so an older pipeline still opens it), every row, and the same answers."""
    path = tmp_path / "journal.sqlite"
    a, _, c = write_v2_journal(path)
    with sqlite3.connect(path) as conn:  # and the later steps, which kept the index
        for statement in chain.from_iterable(_MIGRATIONS[2:]):
            conn.execute(statement)
        conn.execute(f"UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema_version'")
    conn.close()
    before_bytes = path.read_bytes()
    with Journal.open(path, "spring", readonly=True) as journal:
        (_, _, file), *_ = journal._conn.execute("PRAGMA database_list").fetchall()
        assert file == str(path.resolve())  # an in-memory copy names no file
        assert [e.number for e in journal.awaiting_delivery()] == [a]
        assert journal.lookup([c])[c].state is State.INFLIGHT
    assert path.read_bytes() == before_bytes
    assert "messages_awaiting_delivery" in indexes(path)

    with Journal.open(path, "spring") as journal:
        assert journal.recovered == 1
        assert [e.number for e in journal.awaiting_delivery()] == [a]
        journal.record_deliveries([(a, "delivered", "1", True)])
        assert journal.awaiting_delivery() == []
    assert schema_version(path) == str(SCHEMA_VERSION)
    assert "messages_awaiting_delivery" not in indexes(path)
    assert "messages_inflight" in indexes(path)


def test_a_new_journal_has_no_awaiting_delivery_index(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.sqlite", "spring"):
        pass
    assert "messages_awaiting_delivery" not in indexes(tmp_path / "j.sqlite")


def sent_rows(journal: Journal, chosen: list[str], ids: list[str]) -> None:
    journal.mark_inflight([(n, "hi") for n in chosen])
    outcomes = [Outcome(Status.SENT, message_id=i, campaign_id="7") for i in ids]
    journal.record(list(zip(chosen, outcomes, strict=True)))


def test_deliveries_change_only_sent_rows_and_final_ones_never(tmp_path: Path) -> None:
    """record_deliveries never changes a row's state, ignores rows that are not sent, updates a
    non-final delivery and leaves a final one as it is; awaiting_delivery follows."""
    a, b, c, d = numbers(4)
    with Journal.open(tmp_path / "j.sqlite", "spring") as journal:
        sent_rows(journal, [a, b], ["11", "12"])
        journal.mark_inflight([(c, "hi"), (d, "hi")])
        journal.record([(c, FAILED), (d, UNKNOWN)])
        assert [e.number for e in journal.awaiting_delivery()] == [a, b]

        journal.record_deliveries(
            [
                (a, "pending", "0", False),
                (b, "delivered", "1", True),
                (c, "delivered", "1", True),
                (d, "blacklisted", "35", True),
            ]
        )
        assert [e.number for e in journal.awaiting_delivery()] == [a]
        journal.record_deliveries(
            [(a, "wrong_number", "950", True), (b, "not_delivered", "2", True)]
        )
        found = journal.lookup([a, b, c, d])
        assert [(found[n].delivery, found[n].delivery_code) for n in (a, b, c, d)] == [
            ("wrong_number", "950"),
            ("delivered", "1"),
            ("", ""),
            ("", ""),
        ]
        assert [found[n].state for n in (a, b, c, d)] == [
            State.SENT,
            State.SENT,
            State.FAILED,
            State.UNKNOWN,
        ]
        assert (found[b].message_id, found[b].campaign_id) == ("12", "7")
        assert journal.awaiting_delivery() == []
        assert journal.delivery_counts() == {"wrong_number": 1, "delivered": 1}


def test_awaiting_delivery_needs_an_id_and_its_own_campaign(tmp_path: Path) -> None:
    """Only this campaign's sent rows that carry a message ID are awaited, in number order;
    each recorded delivery is stamped with the UTC time it was checked."""
    path = tmp_path / "j.sqlite"
    a, b, c = numbers(3)
    with Journal.open(path, "autumn") as autumn:
        sent_rows(autumn, [a], ["99"])
    with Journal.open(path, "spring") as journal:
        sent_rows(journal, [c, b, a], ["3", "", "1"])
        awaited = journal.awaiting_delivery()
        assert [(e.number, e.message_id) for e in awaited] == [(a, "1"), (c, "3")]
        journal.record_deliveries([(a, "pending", "8", False)])
        assert [e.delivery for e in journal.awaiting_delivery()] == ["pending", ""]
        assert journal.delivery_counts() == {"pending": 1, "": 2}
    with Journal.open(path, "autumn") as autumn:
        assert [(e.number, e.delivery) for e in autumn.awaiting_delivery()] == [(a, "")]
    with sqlite3.connect(path) as conn:
        stamps = dict(conn.execute("SELECT campaign || number, delivery_checked_at FROM messages"))
    conn.close()
    assert stamps[f"autumn{a}"] == "" and stamps[f"spring{c}"] == ""
    checked = datetime.fromisoformat(stamps[f"spring{a}"])
    assert checked.utcoffset() == timedelta(0)


def test_record_deliveries_is_all_or_nothing(tmp_path: Path) -> None:
    """One bad number in the batch refuses the whole batch: nothing of it is recorded."""
    a, b = numbers(2)
    with Journal.open(tmp_path / "j.sqlite", "spring") as journal:
        sent_rows(journal, [a, b], ["1", "2"])
        with pytest.raises(ValueError, match="not a normalised mobile number"):
            journal.record_deliveries(
                [(a, "delivered", "1", True), ("912", "delivered", "1", True)]
            )
        assert len(journal.awaiting_delivery()) == 2
        assert journal.delivery_counts() == {"": 2}


POOL = numbers(4)
CAMPAIGNS = ("spring", "autumn")
STATE_OF = {
    Status.SENT: State.SENT,
    Status.FAILED: State.FAILED,
    Status.UNKNOWN: State.UNKNOWN,
    Status.PENDING: State.PENDING,
}
OUTCOMES = st.sampled_from(
    [
        Outcome(Status.SENT, message_id="m1", campaign_id="c"),
        Outcome(Status.SENT, message_id="m2", campaign_id="c"),
        FAILED,
        UNKNOWN,
        PENDING,
    ]
)


class JournalMachine(RuleBasedStateMachine):
    """Any interleaving of mark, record, crash and reopen matches a plain dictionary model."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.path = Path(self.folder.name) / "journal.sqlite"
        self.journals = {c: Journal.open(self.path, c) for c in CAMPAIGNS}
        # (campaign, number) -> (state, attempts, message_id)
        self.model: dict[tuple[str, str], tuple[State, int, str]] = {}
        self.ever_marked: set[tuple[str, str]] = set()
        self.ever_sent: dict[tuple[str, str], str] = {}

    @rule(
        campaign=st.sampled_from(CAMPAIGNS),
        chosen=st.lists(st.sampled_from(POOL), min_size=1, max_size=3, unique=True),
    )
    def mark(self, campaign: str, chosen: list[str]) -> None:
        journal = self.journals[campaign]
        if any((campaign, n) in self.ever_sent for n in chosen):
            with pytest.raises(RuntimeError, match="already sent"):
                journal.mark_inflight([(n, "text") for n in chosen])
            return
        journal.mark_inflight([(n, f"text for {n}") for n in chosen])
        for number in chosen:
            _, attempts, _ = self.model.get((campaign, number), (State.PENDING, 0, ""))
            self.model[(campaign, number)] = (State.INFLIGHT, attempts + 1, "")
            self.ever_marked.add((campaign, number))

    @rule(campaign=st.sampled_from(CAMPAIGNS), number=st.sampled_from(POOL), outcome=OUTCOMES)
    def record(self, campaign: str, number: str, outcome: Outcome) -> None:
        self.journals[campaign].record([(number, outcome)])
        key = (campaign, number)
        state, attempts, _ = self.model.get(key, (State.PENDING, 1, ""))
        if state is not State.SENT:
            self.model[key] = (STATE_OF[outcome.status], attempts, outcome.message_id)
            if outcome.status is Status.SENT:
                self.ever_sent[key] = outcome.message_id

    @rule()
    def crash_and_reopen(self) -> None:
        for journal in self.journals.values():
            journal.close()  # every change was committed: closing now is what a kill leaves
        inflight = Counter(c for (c, _), (s, _, _) in self.model.items() if s is State.INFLIGHT)
        self.model = {
            key: (State.UNKNOWN if s is State.INFLIGHT else s, a, m)
            for key, (s, a, m) in self.model.items()
        }
        first, second = CAMPAIGNS
        self.journals = {first: Journal.open(self.path, first)}
        assert self.journals[first].recovered == inflight[first]
        # The first open recovers its own campaign only: the second's rows are still in flight.
        assert self.journals[first].counts()[State.INFLIGHT] == 0
        with Journal.open(self.path, second, readonly=True) as peek:
            assert peek.counts()[State.INFLIGHT] == inflight[second]
        self.journals[second] = Journal.open(self.path, second)
        assert self.journals[second].recovered == inflight[second]
        for journal in self.journals.values():
            assert journal.counts()[State.INFLIGHT] == 0

    @invariant()
    def journal_matches_model(self) -> None:
        for campaign, journal in self.journals.items():
            found = journal.lookup(POOL)
            seen = {n: (e.state, e.attempts, e.message_id) for n, e in found.items()}
            assert seen == {n: v for (c, n), v in self.model.items() if c == campaign}
            expected_counts = Counter(
                s for (c, _), (s, _, _) in self.model.items() if c == campaign
            )
            assert journal.counts() == {s: expected_counts[s] for s in State}
            for c, number in self.ever_marked:
                if c == campaign:
                    assert number in found
            for (c, number), message_id in self.ever_sent.items():
                if c == campaign:
                    assert (found[number].state, found[number].message_id) == (
                        State.SENT,
                        message_id,
                    )

    def teardown(self) -> None:
        for journal in self.journals.values():
            journal.close()
        self.folder.cleanup()


JournalMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=12, deadline=None)
TestJournalMachine = JournalMachine.TestCase
