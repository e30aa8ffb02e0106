"""The SQLite write-ahead journal: what each campaign has in flight, sent, failed or lost."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from itertools import chain
from pathlib import Path
from typing import Any

from pipeline.errors import JournalError
from pipeline.journal_file import (
    SCHEMA_VERSION,
    closed_on_error,
    migrate,
    open_readonly,
    open_unchanged,
    open_writable,
    transaction,
    translated,
)
from pipeline.journal_replies import RepliesJournal, Reply
from pipeline.models import Outcome, Status

__all__ = [
    "RECOVERED_ERROR",
    "SCHEMA_VERSION",
    "SETTLED_AS_SENT",
    "TEST_KEY",
    "Entry",
    "Journal",
    "Reply",
    "State",
    "Summary",
    "read_summary",
]
RECOVERED_ERROR = "the run stopped while this request was in flight; the provider may have sent it"
_MAX_PARAMS = 999  # bound parameters per statement: SQLite before 3.32 allows no more
_NUMBER = re.compile(r"09[0-9]{9}")
_NUMBERS = re.compile(r"(?:09[0-9]{9}\n)*")

# A VALUES list of what differs per row, then the campaign and the time, bound once. SQLite
# needs the WHERE true, or it reads ON CONFLICT as part of a join. A `sent` row never changes.
_MARK = """WITH v (number, text) AS (VALUES {values})
INSERT INTO messages (campaign, number, state, text, attempts, updated_at)
SELECT ?, number, 'inflight', text, 1, ? FROM v WHERE true
ON CONFLICT (campaign, number) DO UPDATE SET
    state = 'inflight', error = '', message_id = '', campaign_id = '', text = excluded.text,
    attempts = messages.attempts + 1, updated_at = excluded.updated_at
WHERE messages.state <> 'sent'"""
# An answer without a mark (a caller bug) is still written: a `sent` is never lost.
_RECORD = """WITH v (number, state, error, message_id, campaign_id) AS (VALUES {values})
INSERT INTO messages (campaign, number, state, error, message_id, campaign_id, attempts, updated_at)
SELECT ?, number, state, error, message_id, campaign_id, 1, ? FROM v WHERE true
ON CONFLICT (campaign, number) DO UPDATE SET
    state = excluded.state, error = excluded.error, message_id = excluded.message_id,
    campaign_id = excluded.campaign_id, updated_at = excluded.updated_at
WHERE messages.state <> 'sent'"""
# Only the opening campaign's rows: another campaign's run may have its rows in flight right now
# (its own lock, not ours, says whether it is alive); a dead one's wait for its next run.
_RECOVER = """UPDATE messages SET state = 'unknown', error = ?, updated_at = ?
WHERE state = 'inflight' AND campaign = ?"""
# Only a sent row has a delivery; a final one is the last word.
_DELIVERY = """UPDATE messages SET delivery = ?, delivery_code = ?, delivery_final = ?,
    delivery_checked_at = ?
WHERE campaign = ? AND number = ? AND state = 'sent' AND delivery_final = 0"""


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


@dataclass(frozen=True, slots=True)
class Summary:
    """One campaign in the journal, as `status` shows it."""

    counts: dict[State, int]  # every state, maybe 0
    deliveries: dict[str, int]  # delivery class -> sent rows ('' = not looked up or not known)
    last_update: str | None  # the latest change to a row, UTC ISO 8601; None without rows
    unknown: list[str]  # the numbers in state `unknown`, in order


_COLUMNS = ", ".join(field.name for field in fields(Entry))  # each a column of the same name
_LOOKUP = f"SELECT {_COLUMNS} FROM messages WHERE number IN ({{values}}) AND campaign = ?"
_AWAITING = f"""SELECT {_COLUMNS} FROM messages WHERE campaign = ? AND state = 'sent'
AND delivery_final = 0 AND message_id <> '' ORDER BY number"""
# --test-to (issue 16): a test send's key starts so (after `sandbox:` in the sandbox). No
# campaign name has a colon: no campaign's own key can start so.
TEST_KEY = "test:"
# The frequency cap and settle (issue 15). Live sends only: a sandbox key never counts, nor a
# test send's; rows in flight or `unknown` do (they may have gone). Grouped by campaign, the
# primary key's order: by number, SQLite sorted a million rows (5 s, not 0.5).
_SENT_ELSEWHERE = f"""SELECT campaign, group_concat(number, ' ') FROM messages
WHERE state IN ('sent', 'inflight', 'unknown') AND updated_at >= ? AND campaign <> ?
    AND substr(campaign, 1, 8) <> 'sandbox:'
    AND substr(campaign, 1, {len(TEST_KEY)}) <> '{TEST_KEY}'
GROUP BY campaign ORDER BY campaign"""
_UNKNOWN = "SELECT number, error FROM messages WHERE campaign = ? AND state = 'unknown'"
_SETTLE = """UPDATE messages SET state = ?, error = ?, updated_at = coalesce(?, updated_at)
WHERE campaign = ? AND number = ? AND state = 'unknown'"""
# How a settled-as-sent entry's error starts: a later run shows it on the `already_sent` row.
SETTLED_AS_SENT = "settled as sent by the operator"
_STATE = {state.value: state for state in State}  # State(value) costs ~0.5 us a row
_ANSWERED = frozenset({Status.SENT, Status.FAILED, Status.UNKNOWN, Status.PENDING})  # as States


class Journal(RepliesJournal, contextlib.AbstractContextManager["Journal"]):
    """What one campaign has attempted, by number; every change fsynced before the call returns.
    One thread; writable only under `lock.hold_lock(path, campaign)`: opening recovers the
    campaign's rows in flight, which only a dead run of it can have left."""

    def __init__(
        self, conn: sqlite3.Connection, path: Path, campaign: str, *, readonly: bool, recovered: int
    ) -> None:
        self._conn, self.path, self.campaign = conn, path, campaign
        self.readonly, self.recovered = readonly, recovered

    @classmethod
    def open(
        cls, path: Path, campaign: str, *, readonly: bool = False, busy_timeout: float = 5.0
    ) -> Journal:
        """Open (or create) it; rows a dead run of `campaign` left `inflight` become `unknown`
        (`recovered` counts them); `readonly` (--dry-run) changes nothing. Refused before any
        change: a 0-byte file, a schema version or a row state of `campaign` not known here."""
        conn = open_readonly(path, busy_timeout) if readonly else open_writable(path, busy_timeout)
        with closed_on_error(conn), translated(path):
            if readonly:
                _check_states(conn, path, campaign)
                return cls(conn, path, campaign, readonly=True, recovered=0)
            with transaction(conn):
                migrate(conn, path)
                _check_states(conn, path, campaign)
                args = (RECOVERED_ERROR, _now(), campaign)
                recovered = conn.execute(_RECOVER, args).rowcount
        return cls(conn, path, campaign, readonly=False, recovered=recovered)

    def lookup(self, numbers: Sequence[str]) -> dict[str, Entry]:
        """The entries of this campaign for those of `numbers` the journal knows."""
        wanted = [(number,) for number in dict.fromkeys(_checked(numbers))]
        with translated(self.path):
            rows = _execute(self._conn, _LOOKUP, wanted, self.campaign)
        return {row[0]: _entry(row) for row in rows}

    def mark_inflight(
        self, items: Sequence[tuple[str, str]], answered: Sequence[tuple[str, Outcome]] = ()
    ) -> None:
        """Commit `(number, text)` pairs as in flight, attempts + 1, before the request leaves;
        `answered` outcomes share the transaction (one fsync a request: written late, an answer
        only widens a crash's `unknown`). A number already `sent` raises RuntimeError."""
        self._check_writable()
        numbers = _checked([number for number, _ in items])
        rows = _answer_rows(answered)
        now = _now()
        with translated(self.path), transaction(self._conn):
            _execute(self._conn, _RECORD, rows, self.campaign, now)
            before = self._conn.total_changes
            _execute(self._conn, _MARK, items, self.campaign, now)
            if self._conn.total_changes - before != len(items):  # _MARK skipped a sent row
                sent = [n for n, e in self.lookup(numbers).items() if e.state is State.SENT]
                raise RuntimeError(
                    f"{self.path}: campaign {self.campaign!r}: {', '.join(sent)} already sent; "
                    "refusing to send again (the caller should have skipped it)"
                )

    def record(self, results: Sequence[tuple[str, Outcome]]) -> None:
        """Commit answers in one transaction; a `sent` row stays `sent` whatever follows."""
        self._check_writable()
        rows = _answer_rows(results)
        with translated(self.path), transaction(self._conn):
            _execute(self._conn, _RECORD, rows, self.campaign, _now())

    def awaiting_delivery(self) -> list[Entry]:
        """This campaign's sent rows with a message ID and no final delivery, by number."""
        return [_entry(row) for row in self._query(_AWAITING)]

    def record_deliveries(self, results: Sequence[tuple[str, str, str, bool]]) -> None:
        """Commit `(number, delivery, code, final)` for sent rows whose delivery is not final."""
        self._check_writable()
        _checked([number for number, *_ in results])
        now = _now()
        rows = [(d, code, int(final), now, self.campaign, n) for n, d, code, final in results]
        with translated(self.path), transaction(self._conn):
            self._conn.executemany(_DELIVERY, rows)

    def delivery_counts(self) -> dict[str, int]:
        """How many sent rows of this campaign are in each delivery class ('' = not yet known)."""
        sql = "SELECT delivery, count(*) FROM messages WHERE campaign = ? AND state = 'sent'"
        return dict(self._query(f"{sql} GROUP BY delivery"))

    def counts(self) -> dict[State, int]:
        """How many numbers of this campaign are in each state (every state present, maybe 0)."""
        rows = self._query("SELECT state, count(*) FROM messages WHERE campaign = ? GROUP BY state")
        return dict.fromkeys(State, 0) | {State(s): n for s, n in rows}

    # --- status (issue 15): what the journal knows of the campaign, read only -----------------

    def summary(self) -> Summary:
        """Where this campaign's rows stand, for `status`."""
        last = self._query("SELECT max(updated_at) FROM messages WHERE campaign = ?")[0][0]
        unknown = self._query(
            "SELECT number FROM messages WHERE campaign = ? AND state = 'unknown' ORDER BY number"
        )
        return Summary(self.counts(), self.delivery_counts(), last, [n for (n,) in unknown])

    # --- issue 15: the frequency cap and settle (capsettle) ---

    def sent_elsewhere(self, since: datetime) -> dict[str, frozenset[str]]:
        """Each other campaign that sent live since `since` -> the numbers it sent to (or may
        have: in flight now, or `unknown`; a cap errs on the side of fewer messages). A sandbox
        key never counts, nor this campaign (live or sandbox). One scan of the journal: 0.6 s
        CPU at a million rows, 1.0 s when all of them are in the window (cap_lookup.py)."""
        since_at = since.astimezone(UTC).isoformat(timespec="milliseconds")  # as _now() writes
        live = self.campaign.removeprefix("sandbox:")
        with translated(self.path):
            rows = self._conn.execute(_SENT_ELSEWHERE, (since_at, live)).fetchall()
        # Sets, not one dict by number: built in C, and a batch meets them by set intersection
        # (a dict of campaign tuples cost 1.0 s more CPU at 900,000 rows).
        return {campaign: frozenset(joined.split()) for campaign, joined in rows}

    def settle_unknown(
        self,
        state: State,
        error: Callable[[str], str],
        *,
        numbers: Sequence[str] | None = None,
        updated_at: datetime | None = None,
    ) -> tuple[list[str], dict[str, Entry | None]]:
        """This campaign's `unknown` rows (all, or those of `numbers`) into `state` (`sent` or
        `pending`), each error `error(old error)`, in one transaction; `updated_at` None keeps
        the time of the attempt. Returns the numbers settled, sorted, and each of `numbers` not
        unknown here -> its entry (None: not in the journal)."""
        self._check_writable()
        if state not in (State.SENT, State.PENDING):
            raise ValueError(f"an unknown row is settled as sent or pending, not {state}")
        at = updated_at.astimezone(UTC).isoformat(timespec="milliseconds") if updated_at else None
        others: dict[str, Entry | None] = {}
        with translated(self.path), transaction(self._conn):
            if numbers is None:
                found = dict(self._conn.execute(_UNKNOWN, (self.campaign,)).fetchall())
            else:
                entries = self.lookup(numbers)
                found = {n: e.error for n, e in entries.items() if e.state is State.UNKNOWN}
                others = {n: entries.get(n) for n in dict.fromkeys(numbers) if n not in found}
            settled = sorted(found)
            rows = [(state.value, error(found[n]), at, self.campaign, n) for n in settled]
            before = self._conn.total_changes
            self._conn.executemany(_SETTLE, rows)
            if self._conn.total_changes - before != len(rows):  # the lock should exclude this
                raise RuntimeError(f"{self.path}: the unknown rows changed while being settled")
        return settled, others

    def close(self) -> None:
        """Close, a writable journal's WAL folded into the file first, so that a backup of the
        file alone has every row (SQLite folds it itself only when the last connection closes)."""
        if not self.readonly:
            # A fold that fails (a reader past busy_timeout, a full disk) loses nothing.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.close()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _query(self, sql: str) -> list[Any]:  # `sql` takes this campaign as its one parameter
        with translated(self.path):
            return self._conn.execute(sql, (self.campaign,)).fetchall()

    def _check_writable(self) -> None:
        if self.readonly:
            raise RuntimeError(f"{self.path}: the journal was opened read-only; nothing is written")


def read_summary(path: Path, campaign: str, *, busy_timeout: float = 5.0) -> Summary | None:
    """`campaign`'s Summary, or None when there is no journal yet; creates and changes nothing
    (not even the -wal and -shm a read-only open leaves). Refused as Journal.open refuses."""
    if not path.exists():
        return None
    for _ in range(3):  # a run that folds its WAL into the file meanwhile: read it again
        conn, still_holds = open_unchanged(path, busy_timeout)
        with closed_on_error(conn), translated(path):
            _check_states(conn, path, campaign)
        with Journal(conn, path, campaign, readonly=True, recovered=0) as journal:
            summary = journal.summary()
        if still_holds():
            return summary
    with Journal.open(path, campaign, readonly=True, busy_timeout=busy_timeout) as journal:
        return journal.summary()  # a file changing all the time has a -wal: nothing is created


def _check_states(conn: sqlite3.Connection, path: Path, campaign: str) -> None:
    """Refuse rows of `campaign` in a state this version does not know (newer, or hand-edited):
    read as any state, they would be sent again or crash the run. About 0.3 s a million rows."""
    unknown = conn.execute(
        f"SELECT state, count(*) FROM messages WHERE campaign = ? "
        f"AND state NOT IN ({', '.join('?' * len(State))}) GROUP BY state ORDER BY state",
        (campaign, *_STATE),
    ).fetchall()
    if unknown:
        found = ", ".join(f"{n} row{'s' if n > 1 else ''} in state {s!r}" for s, n in unknown)
        raise JournalError(
            f"{path}: campaign {campaign!r} has {found}, which this version of the pipeline "
            "does not know (a newer version or a hand edit wrote it). "
            "Fix: upgrade the pipeline, or restore the journal from a backup."
        )


def _answer_rows(results: Sequence[tuple[str, Outcome]]) -> list[tuple[str, ...]]:
    """`_RECORD`'s values: number, state, error, message_id, campaign_id."""
    _checked([number for number, _ in results])
    for number, outcome in results:
        if outcome.status not in _ANSWERED:
            raise ValueError(
                f"{number}: a {outcome.status!s} outcome has no journal state; "
                "only sent, failed, unknown and pending are recorded"
            )
    return [(n, o.status.value, o.error, o.message_id, o.campaign_id) for n, o in results]


def _execute(
    conn: sqlite3.Connection, sql: str, rows: Sequence[tuple[object, ...]], *shared: object
) -> list[Any]:
    """`sql` over `rows` (its `{values}`) in as few statements as _MAX_PARAMS allows, `shared`
    bound once a statement; the rows selected. Not executemany: sqlite3 releases the GIL at every
    step, each waiting up to a switch interval with senders busy (100 rows: ~1.5 ms, not 0.2)."""
    found: list[Any] = []
    width = len(rows[0]) if rows else 1
    group = (_MAX_PARAMS - len(shared)) // width
    for start in range(0, len(rows), group):
        part = rows[start : start + group]
        found += conn.execute(_statement(sql, width, len(part)), [*chain(*part), *shared])
    return found


@cache
def _statement(sql: str, width: int, count: int) -> str:
    """The same text for the same shape: sqlite3's statement cache then matches it at once."""
    return sql.format(values=", ".join(["(" + ", ".join("?" * width) + ")"] * count))


def _checked(numbers: Sequence[str]) -> Sequence[str]:
    """Refuse a key that is not `09XXXXXXXXX`: a differently written number would be sent twice."""
    joined = "\n".join(numbers) + "\n"
    if len(joined) != 12 * len(numbers) or not _NUMBERS.fullmatch(joined):
        for number in numbers:
            if not _NUMBER.fullmatch(number):
                raise ValueError(f"{number!r} is not a normalised mobile number (09XXXXXXXXX)")
    return numbers


def _entry(row: tuple[str, str, str, str, str, str, int, str, str, str]) -> Entry:
    return Entry(row[0], _STATE.get(row[1]) or State(row[1]), *row[2:])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
