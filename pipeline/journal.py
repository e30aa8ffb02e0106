"""The SQLite write-ahead journal: what each campaign has in flight, sent, failed or lost."""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
from collections.abc import Sequence
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
    open_writable,
    transaction,
    translated,
)
from pipeline.models import Outcome, Status

__all__ = ["RECOVERED_ERROR", "SCHEMA_VERSION", "Entry", "Journal", "Reply", "State"]
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
_RECOVER = """UPDATE messages SET state = 'unknown', error = ?, updated_at = ?
WHERE state = 'inflight'"""
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
class Reply:
    """One reply to the line as kept in the journal (the provider's values as text)."""

    scope: str  # "live" or "sandbox": sandbox replies never touch the real opt-out list
    message_id: str  # the provider's MessageID; "" here gets a key from the content
    mobile: str  # as the provider gave it
    number: str  # 09XXXXXXXXX, or "" when `mobile` is not a readable mobile number
    text: str
    received_at: str  # the provider's ReceiveDateTime (Tehran), as given
    read_at: str  # UTC, ISO 8601: when this pipeline read it
    action: str = ""  # what was done with it ("" = not applied yet)
    note: str = ""  # why, for the operator
    seq: int = 0  # the order it was read in (0 until kept)


_REPLY_COLUMNS = ", ".join(field.name for field in fields(Reply))
_SAVE_REPLY = """INSERT OR IGNORE INTO replies
(scope, message_id, mobile, number, text, received_at, read_at) VALUES (?, ?, ?, ?, ?, ?, ?)"""
# `action = ''`: a reply is applied once, even when two processes apply at the same time.
_MARK_REPLY = """UPDATE replies SET action = ?, note = ?, applied_at = ?
WHERE scope = ? AND message_id = ? AND action = ''"""


def _reply_key(reply: Reply) -> tuple[str, str]:
    """(scope, message_id); a reply without an ID is keyed by its content, so reading it again
    (the same mobile, text and time) is not a new reply."""
    if reply.message_id:
        return reply.scope, reply.message_id
    content = "\0".join((reply.mobile, reply.text, reply.received_at)).encode()
    return reply.scope, "content:" + hashlib.sha256(content).hexdigest()[:24]


_COLUMNS = ", ".join(field.name for field in fields(Entry))  # each a column of the same name
_LOOKUP = f"SELECT {_COLUMNS} FROM messages WHERE number IN ({{values}}) AND campaign = ?"
_AWAITING = f"""SELECT {_COLUMNS} FROM messages WHERE campaign = ? AND state = 'sent'
AND delivery_final = 0 AND message_id <> '' ORDER BY number"""
_STATE = {state.value: state for state in State}  # State(value) costs ~0.5 us a row
_ANSWERED = frozenset({Status.SENT, Status.FAILED, Status.UNKNOWN, Status.PENDING})  # as States


class Journal(contextlib.AbstractContextManager["Journal"]):
    """What one campaign has attempted, by number; every change fsynced before the call returns.
    One thread; writable only under `lock.hold_lock(path)`: opening recovers every campaign."""

    def __init__(
        self, conn: sqlite3.Connection, path: Path, campaign: str, *, readonly: bool, recovered: int
    ) -> None:
        self._conn, self.path, self.campaign = conn, path, campaign
        self.readonly, self.recovered = readonly, recovered

    @classmethod
    def open(
        cls, path: Path, campaign: str, *, readonly: bool = False, busy_timeout: float = 5.0
    ) -> Journal:
        """Open (or create) it; rows a dead run left `inflight` become `unknown` (`recovered`
        counts this campaign's); `readonly` (--dry-run) changes nothing. Refused before any
        change: a 0-byte file, a schema version or a row state of `campaign` not known here."""
        conn = open_readonly(path, busy_timeout) if readonly else open_writable(path, busy_timeout)
        with closed_on_error(conn), translated(path):
            if readonly:
                _check_states(conn, path, campaign)
                return cls(conn, path, campaign, readonly=True, recovered=0)
            with transaction(conn):
                migrate(conn, path)
                _check_states(conn, path, campaign)
                args = (RECOVERED_ERROR, _now())
                recovered = conn.execute(f"{_RECOVER} AND campaign = ?", (*args, campaign)).rowcount
                conn.execute(_RECOVER, args)  # the other campaigns' rows
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

    # -- Replies (issue 15): account-wide, kept before anything is done with them --

    def save_replies(self, replies: Sequence[Reply]) -> int:
        """Commit one answer's replies in one transaction; a (scope, message_id) already kept
        is not new. Returns how many were new."""
        self._check_writable()
        rows = [
            (*_reply_key(r), r.mobile, r.number, r.text, r.received_at, r.read_at) for r in replies
        ]
        with translated(self.path), transaction(self._conn):
            before = self._conn.total_changes
            self._conn.executemany(_SAVE_REPLY, rows)
            return self._conn.total_changes - before

    def unapplied_replies(self, scope: str) -> list[Reply]:
        """The replies of `scope` kept but not yet applied, in the order they were read."""
        sql = f"SELECT {_REPLY_COLUMNS} FROM replies WHERE scope = ? AND action = '' ORDER BY seq"
        return [Reply(*row) for row in self._select(sql, scope)]

    def mark_replies(self, scope: str, applied: Sequence[tuple[str, str, str]]) -> set[str]:
        """Commit `(message_id, action, note)` for replies not applied yet; the IDs this call
        claimed (another process may have applied some meanwhile: those are not claimed)."""
        self._check_writable()
        claimed: set[str] = set()
        now = _now()
        with translated(self.path), transaction(self._conn):
            for message_id, action, note in applied:
                done = self._conn.execute(_MARK_REPLY, (action, note, now, scope, message_id))
                if done.rowcount:
                    claimed.add(message_id)
        return claimed

    def applied_replies(self, scope: str, actions: Sequence[str]) -> list[Reply]:
        """The replies of `scope` applied with one of `actions`, in the order they were read."""
        marks = ", ".join("?" * len(actions))
        sql = f"SELECT {_REPLY_COLUMNS} FROM replies WHERE scope = ? AND action IN ({marks})"
        return [Reply(*row) for row in self._select(f"{sql} ORDER BY seq", scope, *actions)]

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

    def _select(self, sql: str, *args: object) -> list[Any]:
        with translated(self.path):
            return self._conn.execute(sql, args).fetchall()

    def _check_writable(self) -> None:
        if self.readonly:
            raise RuntimeError(f"{self.path}: the journal was opened read-only; nothing is written")


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
