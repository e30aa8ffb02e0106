"""The journal's replies to the line (issue 15): account-wide, kept before they are acted on."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.journal_file import transaction, translated


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


class RepliesJournal:
    """Journal's methods for replies (a part of Journal, apart to keep each module small)."""

    _conn: sqlite3.Connection
    path: Path

    def _check_writable(self) -> None:
        raise NotImplementedError  # Journal's

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

    def _select(self, sql: str, *args: object) -> list[Any]:
        with translated(self.path):
            return self._conn.execute(sql, args).fetchall()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
