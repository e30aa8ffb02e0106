"""The SQLite write-ahead journal: what each campaign has in flight, sent, failed or lost."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from itertools import chain
from pathlib import Path
from types import TracebackType
from typing import Self

from pipeline.errors import JournalError
from pipeline.journal_file import (
    BUSY_TIMEOUT,
    SCHEMA_VERSION,
    migrate,
    open_readonly,
    open_writable,
    transaction,
    translated,
)
from pipeline.models import Outcome, Status

__all__ = ["RECOVERED_ERROR", "SCHEMA_VERSION", "Entry", "Journal", "State"]

RECOVERED_ERROR = "the run stopped while this request was in flight; the provider may have sent it"

_MAX_PARAMS = 999  # bound parameters per statement: SQLite before 3.32 allows no more
_NUMBER = re.compile(r"09[0-9]{9}")
_NUMBERS = re.compile(r"(?:09[0-9]{9}\n)*")

_COLUMNS = (
    "number, state, error, message_id, campaign_id, text, attempts, updated_at, "
    "delivery, delivery_code"
)

# The rows come in as a VALUES list of what differs per row; the campaign and the time are bound
# once per statement (the last two parameters). SQLite needs the WHERE on an upsert's SELECT,
# or it reads ON CONFLICT as part of a join.
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

    Every change is committed before the call returns, on one connection (synchronous=FULL).
    Use it from one thread only, and open it for writing only while holding
    `pipeline.lock.hold_lock(path)`: recovery on open rewrites the in-flight rows of every
    campaign, which is right only when no other run is alive.
    """

    def __init__(
        self, conn: sqlite3.Connection, path: Path, campaign: str, *, readonly: bool, recovered: int
    ) -> None:
        self._conn = conn
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
        conn = open_readonly(path, busy_timeout) if readonly else open_writable(path, busy_timeout)
        try:
            with translated(path):
                if readonly:
                    _check_states(conn, path, campaign)
                    return cls(conn, path, campaign, readonly=True, recovered=0)
                with transaction(conn):
                    migrate(conn, path)
                    _check_states(conn, path, campaign)  # before anything is recovered
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
        return cls(conn, path, campaign, readonly=False, recovered=recovered)

    def lookup(self, numbers: Sequence[str]) -> dict[str, Entry]:
        """The entries of this campaign for those of `numbers` the journal knows."""
        wanted = list(dict.fromkeys(_checked(numbers)))
        found: dict[str, Entry] = {}
        step = _MAX_PARAMS - 1  # one parameter is the campaign
        with translated(self.path):
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

        `answered` outcomes (see `record`) not yet written ride along in the same transaction:
        one fsync instead of two per request, the journal's main cost in a large run. Writing
        an answer late only widens the moment in which a crash leaves its rows `inflight`
        (later `unknown`), never the other way round.

        A number already `sent` raises RuntimeError and nothing is committed: sending it would
        break the promise of one message per recipient, and nothing has been posted yet.
        """
        self._check_writable()
        numbers = _checked([number for number, _ in items])
        rows = _answer_rows(answered)
        now = _now()
        with translated(self.path), transaction(self._conn):
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
        rows = _answer_rows(results)
        with translated(self.path), transaction(self._conn):
            _upsert(self._conn, _RECORD, rows, self.campaign, _now())

    def awaiting_delivery(self) -> list[Entry]:
        """This campaign's sent rows with a message ID whose delivery is not final, by number.

        A scan of the campaign's rows (no index: see journal_file._TIDY)."""
        with translated(self.path):
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
        with translated(self.path), transaction(self._conn):
            self._conn.executemany(_DELIVERY, rows)

    def delivery_counts(self) -> dict[str, int]:
        """How many sent rows of this campaign are in each delivery class ('' = not yet known)."""
        with translated(self.path):
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
        with translated(self.path):
            for state, count in self._conn.execute(
                "SELECT state, count(*) FROM messages WHERE campaign = ? GROUP BY state",
                (self.campaign,),
            ):
                result[State(state)] = count
        return result

    def close(self) -> None:
        """Close the connection; everything was committed already.

        A writable journal first folds its WAL into the file and empties it, so that the file
        alone is a whole copy after a run. SQLite does so by itself only when the last
        connection to the journal closes: with an sqlite3 shell or a dry run open on it, the
        rows stayed in the -wal, and a backup of `journal.sqlite` alone missed them.
        """
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


def _answer_rows(results: Sequence[tuple[str, Outcome]]) -> list[tuple[str, ...]]:
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


def _upsert(
    conn: sqlite3.Connection, sql: str, rows: Sequence[tuple[object, ...]], *shared: object
) -> None:
    """Many rows in one statement per group, not one statement per row (executemany).

    sqlite3 releases the GIL around every statement step; while sender threads are busy, each
    re-acquisition can wait a whole switch interval, so a 100-row executemany cost ~1.5 ms in
    a run against ~0.2 ms alone. One multi-row VALUES is one step. The `shared` values, the
    same for every row, are bound once: binding costs a copy per parameter.
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
