"""The SQLite write-ahead journal: what each campaign has in flight, sent, failed or lost."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from itertools import chain
from pathlib import Path
from types import TracebackType
from typing import Self

from pipeline.errors import JournalError
from pipeline.models import Outcome, Status
from pipeline.private import FILE_MODE, private_folder

RECOVERED_ERROR = "the run stopped while this request was in flight; the provider may have sent it"
WAL_CHECKPOINT_PAGES = 10_000  # the WAL grows to about 40 MB before it is folded into the file
BUSY_TIMEOUT = 5.0  # seconds to wait for another program (an sqlite3 shell, a backup) to let go

# Old SQLite builds cap bound parameters at 999; every statement here stays within that.
_MAX_PARAMS = 999  # SQLite before 3.32 allows no more; newer ones allow 32766
_NUMBER = re.compile(r"09[0-9]{9}")
_NUMBERS = re.compile(r"(?:09[0-9]{9}\n)*")

# _MIGRATIONS[v] turns a version-v journal into version v+1. A later schema appends one step;
# old journals catch up on open (in the same transaction as recovery), read-only ones in memory.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
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
        # Recovery on every open looks only for in-flight rows: cheap even on a million rows.
        "CREATE INDEX messages_inflight ON messages (campaign, number) WHERE state = 'inflight'",
    ),
    (
        # Delivery reports of sent rows. Finality is stored rather than derived from the class,
        # so which rows to ask about again is one query, whatever the table says later.
        "ALTER TABLE messages ADD COLUMN delivery TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE messages ADD COLUMN delivery_code TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE messages ADD COLUMN delivery_final INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE messages ADD COLUMN delivery_checked_at TEXT NOT NULL DEFAULT ''",
        # (Until 2026-11 this step also created an index of the sent rows awaiting a delivery
        # report; _TIDY drops it from the journals that have it.)
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)

# Run on every open for writing, after the migrations. Not a schema step of its own: the
# rows and the queries are the same with or without the index, so versions before and after
# it share journals both ways (a new schema version would lock out a rollback).
_TIDY = (
    # That index cost every recorded answer about 4.5 us a row (a third of recording it), on
    # every send, to spare one scan of the campaign's primary-key range when delivery reports
    # are looked up: under a second on a million rows, next to minutes of lookups.
    "DROP INDEX IF EXISTS messages_awaiting_delivery",
)

_COLUMNS = (
    "number, state, error, message_id, campaign_id, text, attempts, updated_at, "
    "delivery, delivery_code"
)

# The rows come in as a VALUES list of what differs per row; the campaign and the time are bound
# once per statement (the last two parameters), not once per row. SQLite needs the WHERE on an
# upsert's SELECT, or it reads ON CONFLICT as part of a join.
_MARK = """
WITH v (number, text) AS (VALUES {values})
INSERT INTO messages (campaign, number, state, text, attempts, updated_at)
SELECT ?, number, 'inflight', text, 1, ? FROM v WHERE true
ON CONFLICT (campaign, number) DO UPDATE SET
    state = 'inflight', error = '', message_id = '', campaign_id = '', text = excluded.text,
    attempts = messages.attempts + 1, updated_at = excluded.updated_at
WHERE messages.state <> 'sent'
"""

# A number recorded without a mark (a caller bug) is still written, so that a `sent` answer is
# never lost; the provider answered about it, so one request did carry it.
_RECORD = """
WITH v (number, state, error, message_id, campaign_id) AS (VALUES {values})
INSERT INTO messages (campaign, number, state, error, message_id, campaign_id, attempts, updated_at)
SELECT ?, number, state, error, message_id, campaign_id, 1, ? FROM v WHERE true
ON CONFLICT (campaign, number) DO UPDATE SET
    state = excluded.state, error = excluded.error, message_id = excluded.message_id,
    campaign_id = excluded.campaign_id, updated_at = excluded.updated_at
WHERE messages.state <> 'sent'
"""

# Only a sent row has a delivery, and a final delivery is the last word: it is never rewritten.
_DELIVERY = """
UPDATE messages SET delivery = ?, delivery_code = ?, delivery_final = ?, delivery_checked_at = ?
WHERE campaign = ? AND number = ? AND state = 'sent' AND delivery_final = 0
"""

# Errors that mean a bug in this code, not a problem with the file: they keep their traceback.
_BUGS = (sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.IntegrityError)


class State(StrEnum):
    """Where a number stands in the journal of one campaign."""

    INFLIGHT = "inflight"  # a request carrying it may have left; no answer recorded yet
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the provider may or may not have sent it; an operator decides
    PENDING = "pending"  # answered "nothing processed": safe to send again


@dataclass(frozen=True, slots=True)
class Entry:
    """One journal row: the last word on one number of one campaign."""

    number: str
    state: State
    error: str
    message_id: str
    campaign_id: str
    text: str  # the text last sent, for the operator only: never part of the key
    attempts: int  # requests that carried this number, over every run
    updated_at: str  # UTC, ISO 8601
    delivery: str = ""  # the delivery class last reported for a sent row ('' = not yet known)
    delivery_code: str = ""  # the provider's raw DeliveryType behind `delivery`


_STATE_OF = {
    Status.SENT: State.SENT.value,
    Status.FAILED: State.FAILED.value,
    Status.UNKNOWN: State.UNKNOWN.value,
    Status.PENDING: State.PENDING.value,
}
_STATE = {state.value: state for state in State}  # State(value) costs ~0.5 us a row


class Journal:
    """What one campaign has attempted, keyed by (campaign, normalised number).

    Every change is committed before the call returns. Use it from one thread only, and open it
    for writing only while holding `pipeline.lock.hold_lock(path)`: recovery on open rewrites the
    in-flight rows of every campaign, which is right only when no other run is alive.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        campaign: str,
        *,
        readonly: bool,
        recovered: int,
        answers: sqlite3.Connection | None = None,
    ) -> None:
        self._conn = conn
        # Answers are committed on a second connection with synchronous=NORMAL (see
        # _answers_connection); marks stay on the FULL one.
        self._answers = answers or conn
        self.path = path
        self.campaign = campaign
        self.readonly = readonly
        self.recovered = recovered

    @classmethod
    def open(
        cls,
        path: Path,
        campaign: str,
        *,
        readonly: bool = False,
        busy_timeout: float = BUSY_TIMEOUT,
    ) -> Journal:
        """Open (or create) the journal at `path`, recovering what a dead run left in flight.

        Every row of any campaign still `inflight` becomes `unknown`, in one transaction;
        `recovered` counts those of `campaign`. With `readonly`, nothing on disk is created or
        changed and nothing is recovered: a missing file reads as an empty journal (--dry-run).
        SQLite may still leave its empty `-wal`/`-shm` companions beside an existing file.

        Refused with a JournalError, before anything is changed: an empty (0-byte) file, and a
        schema version or a row state of `campaign` that this version does not know.
        A journal this creates is 0600 (its -wal and -shm too), in folders it creates 0700.
        """
        if readonly:
            conn = _open_readonly(path, busy_timeout)
            try:
                with _translated(path):
                    _check_states(conn, path, campaign)
            except BaseException:
                conn.close()
                raise
            return cls(conn, path, campaign, readonly=True, recovered=0)
        try:
            private_folder(path.parent)
        except OSError as exc:
            raise JournalError(
                f"{path}: cannot create the folder {path.parent} ({exc.strerror}); "
                "create it, or point journal.path at a writable folder"
            ) from exc
        _refuse_empty(path)
        if not path.exists():
            _create(path)
        with _translated(path):
            conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        try:
            with _translated(path):
                # WAL: a --dry-run reading the journal never blocks the run that is sending.
                conn.execute("PRAGMA journal_mode = WAL")
                # In WAL mode, synchronous=NORMAL fsyncs only at checkpoints, so a power cut can
                # undo a commit that already returned. Losing an `inflight` mark for a request that
                # did leave would let the next run send that number again: the one thing promised
                # never to happen. FULL fsyncs every commit: one fsync per chunk of messages,
                # nothing next to the HTTP round trip that follows it.
                conn.execute("PRAGMA synchronous = FULL")
                # Numbers in random order (as real exports hold them) dirty a page per row;
                # checkpointing every 1,000 pages (the default) copied the same pages back
                # into the file again and again: 10.8 -> 7.4 ms a chunk on 100,000 rows.
                conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
                with _transaction(conn):
                    _migrate(conn, path)
                    _check_states(conn, path, campaign)  # before anything is recovered
                    for statement in _TIDY:
                        conn.execute(statement)
                    recovered = conn.execute(
                        "SELECT count(*) FROM messages WHERE campaign = ? AND state = 'inflight'",
                        (campaign,),
                    ).fetchone()[0]
                    conn.execute(
                        "UPDATE messages SET state = 'unknown', error = ?, updated_at = ? "
                        "WHERE state = 'inflight'",
                        (RECOVERED_ERROR, _now()),
                    )
        except BaseException:
            conn.close()
            raise
        try:
            with _translated(path):
                answers = _answers_connection(path, busy_timeout)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, campaign, readonly=False, recovered=recovered, answers=answers)

    def lookup(self, numbers: Sequence[str]) -> dict[str, Entry]:
        """The entries of this campaign for those of `numbers` the journal knows."""
        wanted = list(dict.fromkeys(_checked(numbers)))
        found: dict[str, Entry] = {}
        step = _MAX_PARAMS - 1  # one parameter is the campaign
        with _translated(self.path):
            for start in range(0, len(wanted), step):
                batch = wanted[start : start + step]
                rows = self._conn.execute(
                    f"SELECT {_COLUMNS} FROM messages "
                    f"WHERE campaign = ? AND number IN ({','.join('?' * len(batch))})",
                    (self.campaign, *batch),
                )
                for row in rows:
                    found[row[0]] = _entry(row)
        return found

    def mark_inflight(
        self,
        items: Sequence[tuple[str, str]],
        answered: Sequence[tuple[str, Outcome]] = (),
    ) -> None:
        """Commit `(number, text)` pairs as in flight, attempts + 1: call before the request leaves.

        `answered` outcomes (see `record`) not yet written may ride along in the same
        transaction: one fsync instead of two per request, the journal's main cost in a large
        run. Writing an answer late only widens the moment in which a crash leaves its rows
        `inflight` (later `unknown`), never the other way round.

        A number already `sent` raises RuntimeError and nothing is committed: sending it would
        break the promise of one message per recipient, and nothing has been posted yet.
        """
        self._check_writable()
        numbers = _checked([number for number, _ in items])
        rows = self._answer_rows(answered)
        now = _now()
        with _translated(self.path), _transaction(self._conn):
            _upsert(self._conn, _RECORD, rows, self.campaign, now)
            before = self._conn.total_changes
            _upsert(self._conn, _MARK, items, self.campaign, now)
            # _MARK leaves a sent row alone; fewer changes than items means one was sent.
            if self._conn.total_changes - before != len(items):
                sent = [n for n, e in self.lookup(numbers).items() if e.state is State.SENT]
                raise RuntimeError(
                    f"{self.path}: campaign {self.campaign!r}: {', '.join(sent)} already sent; "
                    "refusing to send again (the caller should have skipped it)"
                )

    def record(self, results: Sequence[tuple[str, Outcome]]) -> None:
        """Commit the provider's answer for each number, in one transaction.

        A `sent` row is never downgraded: a later failed, unknown or pending outcome for a number
        already sent (possible only through a bug) is ignored and the row keeps `sent` and its IDs,
        because the promise outranks the bug.
        """
        self._check_writable()
        rows = self._answer_rows(results)
        with _translated(self.path), _transaction(self._answers):
            _upsert(self._answers, _RECORD, rows, self.campaign, _now())

    def _answer_rows(self, results: Sequence[tuple[str, Outcome]]) -> list[tuple[str, ...]]:
        """`_RECORD`'s per-row values: number, state, error, message_id, campaign_id."""
        _checked([number for number, _ in results])
        rows: list[tuple[str, ...]] = []
        for number, outcome in results:
            state = _STATE_OF.get(outcome.status)
            if state is None:
                raise ValueError(
                    f"{number}: a {outcome.status!s} outcome has no journal state; "
                    "only sent, failed, unknown and pending are recorded"
                )
            rows.append((number, state, outcome.error, outcome.message_id, outcome.campaign_id))
        return rows

    def awaiting_delivery(self) -> list[Entry]:
        """This campaign's sent rows with a message ID whose delivery is not final, by number.

        A scan of the campaign's rows (no index: see _TIDY)."""
        with _translated(self.path):
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM messages "
                "WHERE campaign = ? AND state = 'sent' AND delivery_final = 0 "
                "AND message_id <> '' ORDER BY number",
                (self.campaign,),
            )
            return [_entry(row) for row in rows]

    def record_deliveries(self, results: Sequence[tuple[str, str, str, bool]]) -> None:
        """Commit `(number, delivery, code, final)` for sent rows, in one transaction.

        `state` never changes. Rows that are not `sent`, and rows whose delivery is already
        final, are left as they are: a final report is the last word, as `sent` is for `record`.
        """
        self._check_writable()
        _checked([number for number, *_ in results])
        now = _now()
        rows = [
            (delivery, code, int(final), now, self.campaign, number)
            for number, delivery, code, final in results
        ]
        with _translated(self.path), _transaction(self._answers):
            self._answers.executemany(_DELIVERY, rows)

    def delivery_counts(self) -> dict[str, int]:
        """How many sent rows of this campaign are in each delivery class ('' = not yet known)."""
        with _translated(self.path):
            return dict(
                self._conn.execute(
                    "SELECT delivery, count(*) FROM messages "
                    "WHERE campaign = ? AND state = 'sent' GROUP BY delivery",
                    (self.campaign,),
                ).fetchall()
            )

    def counts(self) -> dict[State, int]:
        """How many numbers of this campaign are in each state (every state present, maybe 0)."""
        result = dict.fromkeys(State, 0)
        with _translated(self.path):
            for state, count in self._conn.execute(
                "SELECT state, count(*) FROM messages WHERE campaign = ? GROUP BY state",
                (self.campaign,),
            ):
                result[State(state)] = count
        return result

    def close(self) -> None:
        """Close the connections; everything was committed already.

        A writable journal first folds its WAL into the file and empties it, so that the file
        alone is a whole copy after a run. SQLite does so by itself only when the last
        connection to the journal closes: an sqlite3 shell or a dry run left open on it kept
        the rows in the -wal, where a backup of `journal.sqlite` alone missed them.
        """
        if self._answers is not self._conn:
            self._answers.close()
        if not self.readonly:
            # A fold that fails (a reader mid-query past busy_timeout, a full disk) loses
            # nothing: the rows stay in the -wal, and the next open reads them from there.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_writable(self) -> None:
        if self.readonly:
            raise RuntimeError(f"{self.path}: the journal was opened read-only; nothing is written")


def _open_readonly(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A connection that cannot change the file, or an in-memory journal when there is none."""
    if not path.exists():
        memory = sqlite3.connect(":memory:", isolation_level=None)
        _migrate(memory, path)
        return memory
    _refuse_empty(path)
    with _translated(path):
        conn = _reader(path, busy_timeout)
    try:
        with _translated(path):
            if _schema_version(conn, path) == SCHEMA_VERSION:
                return conn
            # An older file: bring a private copy up to date, never the file itself.
            memory = sqlite3.connect(":memory:", isolation_level=None)
            conn.backup(memory)
    except BaseException:
        conn.close()
        raise
    conn.close()
    _migrate(memory, path)
    return memory


def _reader(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A read-only connection to the journal; an in-memory copy if its folder is read-only.

    Reading a WAL journal takes its -shm file, which SQLite creates beside the journal when
    it is missing (after every clean close): in a folder this user cannot write, even a
    read-only open fails. Then the file alone is the whole journal, because a WAL is deleted
    only once folded in, and it is copied at once with `immutable` (no -shm needed). That is
    right even if a run starts sending meanwhile: it writes only to a new -wal, and folds into
    the file only at its end or 40 MB later. Holding an immutable connection for the whole
    dry run instead would read pages that run may fold in under it.
    While a run is sending, its -wal and -shm exist, and the plain open reads its commits.
    """
    uri = path.resolve().as_uri()
    shm, wal = path.with_name(f"{path.name}-shm"), path.with_name(f"{path.name}-wal")
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=busy_timeout, isolation_level=None)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # takes the -shm
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        # What SQLite says when it cannot create the -shm: READONLY_DIRECTORY, or CANTOPEN
        # when a -wal is there. With a -shm there, a run may be writing: never `immutable`.
        name = getattr(exc, "sqlite_errorname", "")
        if name not in ("SQLITE_READONLY_DIRECTORY", "SQLITE_CANTOPEN") or shm.exists():
            raise
    with contextlib.suppress(FileNotFoundError):
        if wal.stat().st_size > 0:
            raise JournalError(
                f"{path}: the journal's folder is read-only, and {wal.name} holds changes not "
                f"yet folded into the journal, which SQLite cannot read without creating "
                f"{shm.name} beside it. Fix: make the folder writable by this user, or point "
                "journal.path at a writable copy."
            )
    frozen = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)
    try:
        memory = sqlite3.connect(":memory:", isolation_level=None)
        frozen.backup(memory)
    finally:
        frozen.close()
    return memory


def _refuse_empty(path: Path) -> None:
    """Refuse a journal file of 0 bytes: what a failed restore or a full disk leaves.

    Taken for a new journal, it would let every number of its campaigns be sent again. The
    pipeline never leaves one behind (see _create), so an empty file is always such a loss.
    """
    try:
        info = path.stat()
    except OSError:  # missing (a new journal), or unreachable: opening it says why
        return
    if stat.S_ISREG(info.st_mode) and info.st_size == 0:
        raise JournalError(
            f"{path}: the journal is empty (0 bytes), as a failed restore or a copy onto a "
            "full disk leaves it; taken for a new journal, it would let every message of its "
            "campaigns be sent again. Fix: restore it from a backup; only if no run has ever "
            "sent with it, delete it."
        )


def _create(path: Path) -> None:
    """Create the journal with its schema in one step: a journal that exists has its schema.

    The schema is committed (and fsynced) in a temporary file, which is then linked under the
    journal's name. A run killed half-way leaves at most a stray `<name>.new-*` file, never
    the 0-byte journal that _refuse_empty refuses. A link, not a rename: it never replaces a
    journal another process created meanwhile. The file is 0600, and SQLite gives its -wal
    and -shm the mode of the database file.
    """
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.new-")
    except OSError as exc:
        raise JournalError(
            f"{path}: cannot create the journal ({exc.strerror}); "
            "make its folder writable by this user, or point journal.path elsewhere"
        ) from exc
    temp = Path(name)
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp's 0600 is still filtered by the umask
        os.close(fd)
        with _translated(path):
            conn = sqlite3.connect(temp, isolation_level=None)
            try:
                with _transaction(conn):  # a rollback journal, synchronous=FULL: fsynced
                    _migrate(conn, path)
            finally:
                conn.close()
        try:
            os.link(temp, path)
        except FileExistsError:
            return  # created by another process meanwhile: that one is the journal
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the new name survives a power cut
        finally:
            os.close(folder)
    except OSError as exc:
        raise JournalError(
            f"{path}: cannot create the journal ({exc.strerror}); "
            "make its folder writable by this user, or point journal.path elsewhere"
        ) from exc
    finally:
        temp.unlink(missing_ok=True)


def _check_states(conn: sqlite3.Connection, path: Path, campaign: str) -> None:
    """Refuse rows of `campaign` in a state this version does not know (newer, or hand-edited).

    Read as any state, such a row would be sent again or crash the run half-way. A scan of
    the campaign's rows: about 0.3 s a million, against minutes to send them.
    """
    unknown = conn.execute(
        "SELECT state, count(*) FROM messages "
        f"WHERE campaign = ? AND state NOT IN ({', '.join('?' * len(State))}) "
        "GROUP BY state ORDER BY state",
        (campaign, *_STATE),
    ).fetchall()
    if unknown:
        found = ", ".join(
            f"{count} row{'s' if count > 1 else ''} in state {state!r}" for state, count in unknown
        )
        raise JournalError(
            f"{path}: campaign {campaign!r} has {found}, which this version of the pipeline "
            "does not know (a newer version or a hand edit wrote it). "
            "Fix: upgrade the pipeline, or restore the journal from a backup."
        )


def _schema_version(conn: sqlite3.Connection, path: Path) -> int:
    """The file's schema version, 0 with no tables; refuses other databases, unknown versions."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return 0
    row = None
    if "meta" in tables:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        raise JournalError(
            f"{path}: this SQLite file is not a pipeline journal; "
            "point journal.path at a new file (it is created on the first run)"
        )
    value = row[0]
    # Every version is written as digits; anything else (a hand edit, damage) is no version.
    is_number = isinstance(value, str) and value.isascii() and value.isdecimal()
    version = int(value) if is_number else 0
    if version < 1:
        raise JournalError(
            f"{path}: the journal's schema_version is {value!r}, which no version of the "
            "pipeline writes. Fix: restore the journal from a backup, or upgrade the pipeline."
        )
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"{path}: the journal has schema version {version}, newer than this pipeline "
            f"understands ({SCHEMA_VERSION}); upgrade the pipeline before using this journal"
        )
    return version


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema up to SCHEMA_VERSION (inside the caller's transaction, if any)."""
    version = _schema_version(conn, path)
    for step in _MIGRATIONS[version:]:
        for statement in step:
            conn.execute(statement)
    if version < SCHEMA_VERSION:
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )


def _upsert(
    conn: sqlite3.Connection, sql: str, rows: Sequence[tuple[object, ...]], *shared: object
) -> None:
    """Many rows in one statement per group, not one statement per row (executemany).

    sqlite3 releases the GIL around every statement step; while sender threads are busy,
    each re-acquisition can wait a whole switch interval, so a 100-row executemany cost
    ~1.5 ms in a run against ~0.2 ms alone. One multi-row VALUES is one step. The `shared`
    values, the same for every row, are bound once: binding costs a copy per parameter.
    """
    if not rows:
        return
    width = len(rows[0])
    group = (_MAX_PARAMS - len(shared)) // width
    for start in range(0, len(rows), group):
        part = rows[start : start + group]
        conn.execute(_statement(sql, width, len(part)), [*chain.from_iterable(part), *shared])


@cache
def _statement(sql: str, width: int, count: int) -> str:
    """The same text for the same shape: sqlite3's statement cache then matches it at once."""
    row = "(" + ", ".join("?" * width) + ")"
    return sql.format(values=", ".join([row] * count))


def _answers_connection(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A connection whose commits do not fsync by themselves (synchronous=NORMAL), for answers.

    Safe because of the direction a loss goes: if a power cut undoes a recorded answer, the
    row is back to `inflight` (its mark was fsynced on the FULL connection), which the next
    open turns into `unknown`, never into a resend. Only `mark_inflight` must reach the disk
    before the request leaves; the next FULL commit fsyncs the WAL with these frames in it.
    It halves the fsyncs per chunk, which dominated a large run's journal time.
    """
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
    return conn


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taking the write lock up front so it cannot fail half-way on BUSY."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """Turn SQLite's errors about the file into a JournalError that names the path and the fix."""
    try:
        yield
    except _BUGS:
        raise
    except sqlite3.Error as exc:
        raise _journal_error(path, exc) from exc


def _journal_error(path: Path, exc: sqlite3.Error) -> JournalError:
    name = str(getattr(exc, "sqlite_errorname", "") or "")  # absent on errors raised by Python
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        problem = "is locked by another program"
        fix = "close whatever holds it open (an sqlite3 shell, a backup tool) and run again"
    elif name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        problem = "is not a SQLite journal or is damaged"
        fix = "restore it from a backup, or point journal.path at a new file"
    elif name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        problem = "cannot be opened for writing"
        fix = "make the file and its folder writable by this user, or point journal.path elsewhere"
    elif name.startswith("SQLITE_FULL"):
        problem = "cannot grow: the disk is full"
        fix = "free some space and run the same command again"
    else:
        problem = f"cannot be used ({exc})"
        fix = "check the file and its folder, or point journal.path at a new file"
    return JournalError(f"{path}: the journal {problem}; {fix}")


def _checked(numbers: Sequence[str]) -> Sequence[str]:
    """Refuse a key that is not `09XXXXXXXXX`: a differently written number would be sent twice."""
    # One regex over them all, not one per number. The length check keeps a "number" with a
    # line break in it from passing as two; only a refusal looks at them one by one.
    joined = "\n".join(numbers) + "\n"
    if len(joined) == 12 * len(numbers) and _NUMBERS.fullmatch(joined):
        return numbers
    for number in numbers:
        if not _NUMBER.fullmatch(number):
            raise ValueError(f"{number!r} is not a normalised mobile number (09XXXXXXXXX)")
    return numbers


def _entry(row: tuple[str, str, str, str, str, str, int, str, str, str]) -> Entry:
    """An Entry from a row selected as _COLUMNS, which lists Entry's fields in order."""
    return Entry(row[0], _STATE.get(row[1]) or State(row[1]), *row[2:])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
