"""The journal's SQLite file: created whole, opened, migrated, its errors named with the fix."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from itertools import chain
from pathlib import Path

from pipeline.errors import JournalError
from pipeline.private import FILE_MODE, private_folder

# _MIGRATIONS[v] turns a version-v journal into version v+1; a later schema appends a step.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        """CREATE TABLE messages (campaign TEXT NOT NULL, number TEXT NOT NULL,
            state TEXT NOT NULL, error TEXT NOT NULL DEFAULT '', message_id TEXT NOT NULL
            DEFAULT '', campaign_id TEXT NOT NULL DEFAULT '', text TEXT NOT NULL DEFAULT '',
            attempts INT NOT NULL DEFAULT 0, updated_at TEXT NOT NULL,
            PRIMARY KEY (campaign, number)) WITHOUT ROWID""",
        # Recovery on every open looks only for in-flight rows: cheap even on a million rows.
        "CREATE INDEX messages_inflight ON messages (campaign, number) WHERE state = 'inflight'",
    ),
    (
        # Finality is stored, not derived from the class: which rows to ask again is one query.
        "ALTER TABLE messages ADD COLUMN delivery TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE messages ADD COLUMN delivery_code TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE messages ADD COLUMN delivery_final INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE messages ADD COLUMN delivery_checked_at TEXT NOT NULL DEFAULT ''",
    ),
    (
        # Replies to the line, account-wide (no campaign): the provider hands each out once, so
        # each is kept before it is acted on. `seq` is the order they were read in; `scope`
        # keeps sandbox replies apart from live ones; `action` '' = not applied yet.
        """CREATE TABLE replies (seq INTEGER PRIMARY KEY, scope TEXT NOT NULL,
            message_id TEXT NOT NULL, mobile TEXT NOT NULL, number TEXT NOT NULL,
            text TEXT NOT NULL, received_at TEXT NOT NULL, read_at TEXT NOT NULL,
            action TEXT NOT NULL DEFAULT '', note TEXT NOT NULL DEFAULT '',
            applied_at TEXT NOT NULL DEFAULT '', UNIQUE (scope, message_id))""",
        # Every command first looks for replies saved but not applied (a crash in between).
        "CREATE INDEX replies_unapplied ON replies (scope, seq) WHERE action = ''",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


def open_writable(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """The journal for writing, created (0600, folders 0700) if missing; not migrated."""
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
        with closed_on_error(conn):
            # WAL: a --dry-run reading the journal never blocks the run that is sending.
            _into_wal(conn, busy_timeout)
            # NORMAL would fsync only at checkpoints: a power cut could undo the `inflight` mark
            # of a request that left, and the next run send it again. FULL: a fsync a chunk.
            conn.execute("PRAGMA synchronous = FULL")
            # Numbers in random order dirty a page each: folding the WAL in every 1,000 pages (not
            # 10,000, a WAL of 40 MB) copied them back again and again (10.8 -> 7.4 ms a chunk).
            conn.execute("PRAGMA wal_autocheckpoint = 10000")
    return conn


def _into_wal(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """`journal_mode = WAL`, waiting up to busy_timeout: switching a journal still in rollback
    mode (a new one, an old one) needs it alone, and SQLite answers "locked" at once, without
    its busy handler, while another run opens it (two cron lines on a new state folder)."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(_WAL_POLL)


_WAL_POLL = 0.02  # seconds between tries of the switch to WAL


def open_readonly(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A connection that cannot change the file; in memory when there is none or it is older."""
    if not path.exists():
        memory = sqlite3.connect(":memory:", isolation_level=None)
    else:
        _refuse_empty(path)
        with translated(path):
            conn = _reader(path, busy_timeout)
            with closed_on_error(conn):
                if _schema_version(conn, path) == SCHEMA_VERSION:
                    return conn
            memory = _copied(conn)
    migrate(memory, path)
    return memory


def _reader(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A read-only connection; in a read-only folder (where SQLite cannot create the -shm) a copy
    in memory, `immutable` when no -wal holds changes: a run starting meanwhile may fold its new
    -wal in under a held connection."""
    uri = path.resolve().as_uri()
    shm, wal = path.with_name(f"{path.name}-shm"), path.with_name(f"{path.name}-wal")
    if not (wal.exists() or shm.exists()):
        # A mode=ro connection leaves the -wal and -shm it makes behind (it cannot delete them);
        # a read-write one that SQLite forbids to write (query_only) deletes them when it is
        # the last to close, and an empty WAL leaves the file unchanged, byte for byte.
        with contextlib.suppress(sqlite3.OperationalError):  # e.g. a read-only folder
            conn = sqlite3.connect(
                f"{uri}?mode=rw", uri=True, timeout=busy_timeout, isolation_level=None
            )
            try:
                conn.execute("PRAGMA query_only = ON")
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # takes the -shm
                return conn
            except sqlite3.OperationalError:
                conn.close()
                raise
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=busy_timeout, isolation_level=None)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # takes the -shm
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        # What SQLite says when it cannot create the -shm (CANTOPEN when a -wal is there).
        # With a -shm there, a run may be writing: never `immutable`.
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
    return _copied(sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None))


def _copied(conn: sqlite3.Connection) -> sqlite3.Connection:
    """A copy in memory of what `conn` reads; `conn` is closed."""
    with closing(conn):
        memory = sqlite3.connect(":memory:", isolation_level=None)
        conn.backup(memory)
    return memory


def _refuse_empty(path: Path) -> None:
    """Refuse a 0-byte journal: taken for a new one, its campaigns' numbers would be sent again."""
    with contextlib.suppress(OSError):  # missing (a new journal) or unreachable: opening says why
        info = path.stat()
        if stat.S_ISREG(info.st_mode) and info.st_size == 0:
            raise JournalError(
                f"{path}: the journal is empty (0 bytes), as a failed restore or a copy onto a "
                "full disk leaves it; taken for a new journal, it would let every message of "
                "its campaigns be sent again. Fix: restore it from a backup; only if no run "
                "has ever sent with it, delete it."
            )


def _create(path: Path) -> None:
    """Create the journal with its schema, fsynced in a temporary file then linked under its
    name: a killed run leaves a stray `<name>+new-*` (never a campaign's lock, which is
    `<name>.<key>.lock`), never a 0-byte journal; a link, unlike a rename, never replaces a
    journal another process made meanwhile."""
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}+new-")
        try:
            os.fchmod(fd, FILE_MODE)  # mkstemp's 0600 is still filtered by the umask
            os.close(fd)
            with (
                translated(path),
                closing(sqlite3.connect(name, isolation_level=None)) as conn,
                transaction(conn),  # a rollback journal, synchronous=FULL: fsynced
            ):
                migrate(conn, path)
            with contextlib.suppress(FileExistsError):  # another process's is the journal
                os.link(name, path)
                folder = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(folder)  # the new name survives a power cut
                finally:
                    os.close(folder)
        finally:
            Path(name).unlink(missing_ok=True)
    except OSError as exc:
        raise JournalError(
            f"{path}: cannot create the journal ({exc.strerror}); "
            "make its folder writable by this user, or point journal.path elsewhere"
        ) from exc


def _schema_version(conn: sqlite3.Connection, path: Path) -> int:
    """The file's schema version, 0 with no tables; refuses other databases, unknown versions."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return 0
    query = "SELECT value FROM meta WHERE key = 'schema_version'"
    row = conn.execute(query).fetchone() if "meta" in tables else None
    if row is None:
        raise JournalError(
            f"{path}: this SQLite file is not a pipeline journal; "
            "point journal.path at a new file (it is created on the first run)"
        )
    value = row[0]  # always written as digits: anything else (a hand edit, damage) is none
    version = int(value) if isinstance(value, str) and value.isascii() and value.isdecimal() else 0
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
    for statement in chain.from_iterable(_MIGRATIONS[version:]):
        conn.execute(statement)
    if version < SCHEMA_VERSION:
        conn.execute(f"INSERT OR REPLACE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}')")
    # Once step 2's (4.5 us an answer); dropped outside the steps, so versions share journals.
    conn.execute("DROP INDEX IF EXISTS messages_awaiting_delivery")


@contextmanager
def closed_on_error(conn: sqlite3.Connection) -> Iterator[None]:
    try:
        yield
    except BaseException:
        conn.close()
        raise


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
    except (sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.IntegrityError):
        raise  # a bug in this code, not a problem with the file: it keeps its traceback
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


def open_unchanged(
    path: Path, busy_timeout: float
) -> tuple[sqlite3.Connection, Callable[[], bool]]:
    """A read-only connection to an existing journal that creates no file (`status`), and a
    check that what was read through it still holds. A read-only connection to a WAL database
    leaves a -wal and a -shm behind when none is there; with none there, no connection is open,
    so the file alone is read, `immutable`, and the check says whether the file changed
    meanwhile (a run started and folded its WAL in): then the caller reads again."""
    wal, shm = path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")
    if wal.exists() or shm.exists():  # a run is open (or one died): its files are already there
        return open_readonly(path, busy_timeout), lambda: True
    _refuse_empty(path)
    with translated(path):
        before = _stamp(path)
        uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        with closed_on_error(conn):
            if _schema_version(conn, path) < SCHEMA_VERSION:
                conn = _copied(conn)
                migrate(conn, path)
    return conn, lambda: not wal.exists() and _stamp(path) == before


def _stamp(path: Path) -> tuple[int, int, int, int]:
    info = path.stat()
    return info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns
