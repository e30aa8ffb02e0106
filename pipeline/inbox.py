"""Replies to the line: read once from the provider, kept in the journal first, then applied to
the opt-out list (11 / لغو on, 12 off) and listed in a CSV beside the reports."""

from __future__ import annotations

import contextlib
import csv
import os
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from pipeline.clock import TEHRAN, Clock, tehran
from pipeline.errors import DiskTrouble, ProviderFatal
from pipeline.journal import Journal, Reply
from pipeline.phones import normalise_mobile
from pipeline.private import open_private, private_folder
from pipeline.reply_words import Word, classify
from pipeline.report import safe_cell
from pipeline.suppression import REPLIED, ListEdit, locked

LIVE, SANDBOX = "live", "sandbox"  # a reply's scope: sandbox replies never touch the real list
COUNT = 100  # replies an answer may bring (RecieveNewMessages' Count; the docs' clients use 100)
MAX_ANSWERS = 50  # a bound on one read (5,000 replies): a provider that never says "none" ends

# Actions: what was done with a reply (the journal's `action`, the CSV's column).
OPTED_OUT = "opted_out"  # put on the opt-out list (sandbox: the sandbox runs skip the number)
ALREADY_LISTED = "already_listed"
NO_LIST = "no_list"  # an opt-out or opt-in with `suppression.path: null`: nothing to change
OPTED_IN = "opted_in"  # the lines written for its opt-out replies removed
OPTIN_KEPT = "optin_kept"  # another line lists it: a person decides
NOT_LISTED = "not_listed"  # an opt-in from a number the list does not hold
BAD_NUMBER = "bad_number"  # an opt-out or opt-in from a sender this pipeline cannot read
CHECK_OPTOUT = "check_optout"  # a sentence with an opt-out word: a person reads it
OTHER = "other"

NOTES = {
    OPTED_OUT: "added to the opt-out list",
    ALREADY_LISTED: "already on the opt-out list",
    OPTED_IN: "taken off the opt-out list",
    OPTIN_KEPT: (
        "listed by the operator or the provider; remove that line by hand if they really "
        "opted back in"
    ),
    NOT_LISTED: "was not on the opt-out list",
    CHECK_OPTOUT: "mentions an opt-out word; read it",
    OTHER: "",
}
_SANDBOX_NOTES = {
    Word.OPT_OUT: "sandbox: kept in the journal only; sandbox runs skip this number",
    Word.OPT_IN: "sandbox: sandbox runs send to this number again",
}
_NO_LIST_NOTES = {
    Word.OPT_OUT: "suppression.path is null: on no list, the next campaigns message it",
    Word.OPT_IN: "suppression.path is null: there is no list to take it off",
}
CSV_COLUMNS = ("received_at", "mobile", "number", "text", "action", "note", "message_id")
_QUOTED_CHARS = 40  # of a reply's text in the opt-out list's comment


class Inbound(Protocol):
    """One reply as the provider's reader gives it (amoot.InboundSMS)."""

    @property
    def message_id(self) -> str: ...
    @property
    def mobile(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def received_at(self) -> str: ...


Receive = Callable[[int], Sequence[Inbound]]  # Sender.receive_new_messages


@dataclass(frozen=True, slots=True)
class Applied:
    """One reply and what was done with it."""

    reply: Reply
    word: Word
    action: str
    note: str


@dataclass(frozen=True, slots=True)
class RepliesRead:
    """What one read of the line's replies did."""

    scope: str
    new: int  # replies this read brought that the journal did not hold
    applied: list[Applied] = field(default_factory=list)  # in this call, earlier ones included
    earlier: int = 0  # of `applied`, those an earlier command kept but did not apply
    csv_path: Path | None = None
    stopped: ProviderFatal | None = None  # reading failed after what came before was kept
    more: bool = False  # MAX_ANSWERS answers were read: more may wait
    read: bool = True  # False: only replies kept earlier were applied; the provider not asked

    def of(self, *words: Word) -> list[Applied]:
        return [a for a in self.applied if a.word in words]

    @property
    def counts(self) -> tuple[int, int, int]:
        """Opted out, opted in, other (a question, or a sentence that mentions opting out)."""
        out, in_ = len(self.of(Word.OPT_OUT)), len(self.of(Word.OPT_IN))
        return out, in_, len(self.applied) - out - in_


def honour_replies(
    journal: Journal,
    receive: Receive | None,
    *,
    scope: str,
    list_path: Path | None,
    folder: Path,
    clock: Clock,
) -> RepliesRead:
    """Apply what was kept and not applied, read every new reply (each answer committed before
    anything is done with it), apply them, and list them in `folder`'s replies CSV. With no
    `receive`, only the first step: a run that does not read still loses nothing kept."""
    earlier = apply_saved(journal, scope, list_path, clock)
    new, stopped, more = read_new(journal, receive, scope, clock) if receive else (0, None, False)
    applied = earlier + (apply_saved(journal, scope, list_path, clock) if receive else [])
    path = write_csv(folder, applied, clock) if applied else None
    return RepliesRead(scope, new, applied, len(earlier), path, stopped, more, receive is not None)


def read_new(
    journal: Journal, receive: Receive, scope: str, clock: Clock
) -> tuple[int, ProviderFatal | None, bool]:
    """Read answers until one brings nothing new; each kept in the journal as it comes (the
    provider hands a reply out once). Returns the new replies, why it stopped early, and
    whether the bound stopped it."""
    new = 0
    for _ in range(MAX_ANSWERS):
        try:
            answer = receive(COUNT)
        except ProviderFatal as exc:  # what came before is kept: the caller applies it
            return new, exc, False
        if not answer:
            return new, None, False
        read_at = clock().astimezone(UTC).isoformat(timespec="milliseconds")
        fresh = journal.save_replies([_kept(scope, sms, read_at) for sms in answer])
        new += fresh
        if not fresh:  # only replies seen before (the sandbox hands its sample out each run)
            return new, None, False
    return new, None, True


def apply_saved(
    journal: Journal, scope: str, list_path: Path | None, clock: Clock
) -> list[Applied]:
    """Apply the replies kept and not yet applied, in the order they were received, and mark
    them applied; an opt-out is on disk (fsynced) before its mark. Under the list's flock, so
    two campaigns reading at once neither interleave their edits nor apply a reply twice."""
    if not journal.unapplied_replies(scope):
        return []
    if scope == SANDBOX or list_path is None:  # no file to change: the mark alone claims them
        return _claimed(journal, scope, [_decide(r, None, scope) for r in _ordered(journal, scope)])
    with locked(list_path) as real:
        edit = ListEdit(real)
        decided = [_decide(r, edit, scope) for r in _ordered(journal, scope)]  # again, locked
        edit.save()
        return _claimed(journal, scope, decided)


# Replies that opted a number out or back in, whatever they did to a list.
# '' : kept and not applied yet (a campaign running beside this one is about to apply it).
_OPT_ACTIONS = (OPTED_OUT, ALREADY_LISTED, NO_LIST, OPTED_IN, OPTIN_KEPT, NOT_LISTED, "")


def reply_optouts(journal: Journal, scope: str) -> dict[str, str]:
    """The numbers whose last opt-out or opt-in reply in the journal opted out, and why (the
    row's error). Every run suppresses them in memory, besides its list: the journal is shared,
    so a reply another campaign applied to its own list (or to none), or applied after this
    run read the list, is honoured here too. The sandbox's are the sandbox runs' only."""
    last: dict[str, Reply] = {}
    for reply in sorted(journal.applied_replies(scope, _OPT_ACTIONS), key=_order):
        last[reply.number] = reply
    where = " (sandbox)" if scope == SANDBOX else ""
    return {
        number: f"replied «{_quoted(r.text)}» on {_stamp(r)} Tehran{where}"
        for number, r in last.items()
        if classify(r.text) is Word.OPT_OUT and r.number
    }


def write_csv(folder: Path, applied: Sequence[Applied], clock: Clock) -> Path:
    """`replies-<Tehran time>.csv` in `folder` (UTF-8 with a BOM, 0600, cells a spreadsheet
    will not run), in the order they were applied; a name already taken gets -2, -3..."""
    stamp = tehran(clock()).strftime("%Y%m%d-%H%M%S")
    partial = folder / f"replies-{stamp}.{os.getpid()}.partial"
    try:
        private_folder(folder)
        with open_private(partial, "w", encoding="utf-8", newline="") as f:
            f.write("\ufeff")
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            for a in applied:
                r = a.reply
                values = (r.received_at, r.mobile, r.number, r.text, a.action, a.note, r.message_id)
                writer.writerow([safe_cell(value) for value in values])
        for attempt in range(1, 1000):
            path = folder / f"replies-{stamp}{f'-{attempt}' if attempt > 1 else ''}.csv"
            try:
                os.link(partial, path)  # unlike a rename, never replaces another run's file
                return path
            except FileExistsError:
                continue
        raise FileExistsError(f"{folder}/replies-{stamp}-*.csv")
    except OSError as exc:
        raise DiskTrouble(
            f"{folder}: cannot write the replies file ({exc.strerror or exc}); the replies are "
            "kept in the journal and applied to the opt-out list. Fix: free some space or make "
            "the folder writable by this user."
        ) from None
    finally:
        with contextlib.suppress(OSError):
            partial.unlink()


def warnings(result: RepliesRead) -> list[str]:
    """What a person must act on: opt-outs with no list to keep them, opt-ins kept listed."""
    lines = []
    numbers = [a.reply.number for a in result.of(Word.OPT_OUT) if a.action == NO_LIST]
    if numbers:
        lines.append(
            f"warning: {len(numbers)} number(s) opted out but suppression.path is null: "
            f"nothing keeps them out of the next campaigns ({', '.join(numbers)}). Fix: remove "
            "`path: null` under suppression (the shared optout.txt) or name a list, and add "
            "them to it by hand."
        )
    unread = [f"«{a.reply.mobile}»" for a in result.applied if a.action == BAD_NUMBER]
    if unread:
        lines.append(
            f"warning: {len(unread)} opt-out or opt-in repl{'y' if len(unread) == 1 else 'ies'} "
            f"came from a sender that is no mobile number ({', '.join(unread)}): nothing was "
            "changed for them. Fix: read them in the replies file and act on them by hand."
        )
    kept = [a.reply.number for a in result.applied if a.action == OPTIN_KEPT]
    if kept:
        lines.append(
            f"note: {', '.join(kept)} replied 12 (opt back in) but stay on the opt-out list: "
            "listed by the operator or the provider; remove that line by hand if they really "
            "opted back in."
        )
    return lines


def stopped_reading(result: RepliesRead, then: str = "") -> ProviderFatal:
    """The reading's provider error (which names its own fix), saying that what was read
    before it is kept, then `then`."""
    assert result.stopped is not None
    message = f"reading replies: {result.stopped}"
    if result.new:
        many = "y read before it is" if result.new == 1 else "ies read before it are"
        message += f" The {result.new} new repl{many} kept and applied."
    return ProviderFatal(result.stopped.title, f"{message} {then}".rstrip())


def _kept(scope: str, sms: Inbound, read_at: str) -> Reply:
    number = normalise_mobile(sms.mobile)
    return Reply(
        scope, sms.message_id, sms.mobile, number if isinstance(number, str) else "",
        sms.text, sms.received_at, read_at,
    )  # fmt: skip


def _ordered(journal: Journal, scope: str) -> list[Reply]:
    return sorted(journal.unapplied_replies(scope), key=_order)


def _claimed(journal: Journal, scope: str, decided: list[Applied]) -> list[Applied]:
    """Mark them applied; only those this call claimed are its to report."""
    claimed = journal.mark_replies(scope, [(a.reply.message_id, a.action, a.note) for a in decided])
    return [a for a in decided if a.reply.message_id in claimed]


def _decide(reply: Reply, edit: ListEdit | None, scope: str) -> Applied:
    """What `reply` does to the list (`edit`; None: there is none to change)."""
    word = classify(reply.text)
    if word is Word.OTHER or word is Word.MENTIONS_OPT_OUT:
        action = OTHER if word is Word.OTHER else CHECK_OPTOUT
        return Applied(reply, word, action, NOTES[action])
    if not reply.number:
        why = f"«{reply.mobile}» is not a mobile number this pipeline reads; act on it by hand"
        return Applied(reply, word, BAD_NUMBER, why)
    if scope == SANDBOX:
        return Applied(reply, word, OPTED_OUT if word is Word.OPT_OUT else OPTED_IN,
                       _SANDBOX_NOTES[word])  # fmt: skip
    if edit is None:
        return Applied(reply, word, NO_LIST, _NO_LIST_NOTES[word])
    if word is Word.OPT_OUT:
        if edit.listed(reply.number):
            return Applied(reply, word, ALREADY_LISTED, NOTES[ALREADY_LISTED])
        edit.append(reply.number, f"{REPLIED}{_quoted(reply.text)}» on {_stamp(reply)} Tehran")
        return Applied(reply, word, OPTED_OUT, NOTES[OPTED_OUT])
    removed, still_listed = edit.remove_replied(reply.number)
    action = OPTIN_KEPT if still_listed else OPTED_IN if removed else NOT_LISTED
    return Applied(reply, word, action, NOTES[action])


def _received(reply: Reply) -> datetime | None:
    """The provider's ReceiveDateTime (Tehran time), if it reads as a date and time."""
    try:
        moment = datetime.fromisoformat(reply.received_at.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=TEHRAN) if moment.tzinfo is None else moment


def _order(reply: Reply) -> tuple[datetime, int]:
    """Received order (11 then 12 ends off the list), whatever order the answers listed them
    in; without a readable time, when it was read."""
    return (_received(reply) or datetime.fromisoformat(reply.read_at)).astimezone(UTC), reply.seq


def _stamp(reply: Reply) -> str:
    moment = _received(reply) or datetime.fromisoformat(reply.read_at)
    return tehran(moment).strftime("%Y-%m-%d %H:%M")


def _quoted(text: str) -> str:
    """The reply's text on one line (a line break would end the list's line), cut short."""
    flat = " ".join("".join(" " if unicodedata.category(c) == "Cc" else c for c in text).split())
    return flat if len(flat) <= _QUOTED_CHARS else flat[: _QUOTED_CHARS - 1] + "…"
