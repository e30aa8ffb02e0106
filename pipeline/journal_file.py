"""The journal's SQLite file: created whole, opened, migrated, its errors named with the fix."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import JournalError
from pipeline.private import FILE_MODE, private_folder

WAL_CHECKPOINT_PAGES = 10_000  # the WAL grows to about 40 MB before it is folded into the file
BUSY_TIMEOUT = 5.0  # seconds to wait for another program (an sqlite3 shell, a backup) to let go

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
        # Finality is stored rather than derived from the class, so which rows to ask about
        # again is one query, whatever the table says later.
        "ALTER TABLE messages ADD COLUMN delivery TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE messages ADD COLUMN delivery_code TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE messages ADD COLUMN delivery_final INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE messages ADD COLUMN delivery_checked_at TEXT NOT NULL DEFAULT ''",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)

# Step 2 also made an index of the sent rows awaiting a delivery report until 2026-11: it cost
# every recorded answer about 4.5 us (a third of recording it) to spare one scan when reports
# are looked up. Dropped after the migrations, not by a schema step: the rows and queries are
# the same either way, so versions before and after share journals (a new version would lock
# out a rollback).
_TIDY = ("DROP INDEX IF EXISTS messages_awaiting_delivery",)

# Errors that mean a bug in this code, not a problem with the file: they keep their traceback.
_BUGS = (sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.IntegrityError)


def open_writable(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A connection to the journal at `path` for writing, creating it (and its folders) if missing.

    Refuses an empty (0-byte) file. A journal this creates is 0600 (its -wal and -shm too), in
    folders it creates 0700. The caller migrates it (`migrate`) in its own transaction.
    """
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
    with translated(path):
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    try:
        with translated(path):
            # WAL: a --dry-run reading the journal never blocks the run that is sending.
            conn.execute("PRAGMA journal_mode = WAL")
            # In WAL mode, NORMAL fsyncs only at checkpoints, so a power cut could undo a
            # committed `inflight` mark of a request that left, and the next run would send
            # it again. FULL fsyncs every commit: one per chunk, nothing next to its HTTP trip.
            conn.execute("PRAGMA synchronous = FULL")
            # Numbers in random order dirty a page per row; checkpointing every 1,000 pages
            # copied the same pages back again and again: 10.8 -> 7.4 ms a chunk on 100,000 rows.
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
    except BaseException:
        conn.close()
        raise
    return conn


def open_readonly(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A connection that cannot change the file, or an in-memory journal when there is none.

    An older file is migrated in an in-memory copy, never in place.
    """
    if not path.exists():
        memory = sqlite3.connect(":memory:", isolation_level=None)
        migrate(memory, path)
        return memory
    _refuse_empty(path)
    with translated(path):
        conn = _reader(path, busy_timeout)
    try:
        with translated(path):
            if _schema_version(conn, path) == SCHEMA_VERSION:
                return conn
            memory = sqlite3.connect(":memory:", isolation_level=None)
            conn.backup(memory)
    except BaseException:
        conn.close()
        raise
    conn.close()
    migrate(memory, path)
    return memory


def _reader(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A read-only connection to the journal; an in-memory copy if its folder is read-only.

    Reading a WAL journal takes its -shm, which SQLite creates when missing (after every clean
    close): in a folder this user cannot write, even a read-only open fails. Then the file alone
    is the whole journal (a WAL is deleted only once folded in) and is copied at once with
    `immutable`. That holds even if a run starts sending meanwhile: it writes to a new -wal and
    folds it in only at its end or 40 MB later; an immutable connection held for the whole dry
    run could read pages folded in under it. While a run sends, its -wal and -shm exist, and
    the plain open reads its commits.
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
    """Refuse a 0-byte journal: what a failed restore or a full disk leaves, never _create.

    Taken for a new journal, it would let every number of its campaigns be sent again.
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

    The schema is committed (and fsynced) in a temporary file, then linked under the journal's
    name: a run killed half-way leaves at most a stray `<name>.new-*`, never a 0-byte journal.
    A link, not a rename, never replaces a journal another process created meanwhile. SQLite
    gives the -wal and -shm the mode of the file (0600).
    """
    problem = f"{path}: cannot create the journal"
    fix = "make its folder writable by this user, or point journal.path elsewhere"
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.new-")
    except OSError as exc:
        raise JournalError(f"{problem} ({exc.strerror}); {fix}") from exc
    temp = Path(name)
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp's 0600 is still filtered by the umask
        os.close(fd)
        with translated(path):
            conn = sqlite3.connect(temp, isolation_level=None)
            try:
                with transaction(conn):  # a rollback journal, synchronous=FULL: fsynced
                    migrate(conn, path)
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
        raise JournalError(f"{problem} ({exc.strerror}); {fix}") from exc
    finally:
        temp.unlink(missing_ok=True)


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


def migrate(conn: sqlite3.Connection, path: Path) -> None:
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
    for statement in _TIDY:
        conn.execute(statement)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
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
def translated(path: Path) -> Iterator[None]:
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
