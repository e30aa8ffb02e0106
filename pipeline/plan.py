"""The plan: every row read, prepared and decided against the journal, into a spool, counted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipeline import bounds
from pipeline.amoot import Account
from pipeline.journal import Entry, Journal, State
from pipeline.models import Outcome, Row, RunOptions, Status
from pipeline.prepare import Preparer
from pipeline.segments import count_pages
from pipeline.sources import ContactSource
from pipeline.spool import Spool


@dataclass(frozen=True, slots=True)
class Plan:
    """What this run holds and would send: the rows in a spool, and exact counts.

    A row still to send has no status; every other row is settled (invalid, duplicate,
    suppressed, or what the journal already knows).
    """

    spool: Spool
    rows: int  # every row read
    messages: int  # rows this run would send, --limit applied
    pages: Mapping[str, int]  # the pages of those messages, by encoding (GSM-7 / UCS-2)

    def cost(self, account: Account, tariff: str) -> int:
        """Rials: pages x the per-page price of each encoding's script."""
        return sum(pages * account.page_price(tariff, enc) for enc, pages in self.pages.items())


def make_plan(
    source: ContactSource, preparer: Preparer, journal: Journal, options: RunOptions, spool: Spool
) -> Plan:
    """Read, prepare and decide every row into `spool`."""
    rows = messages = 0
    pages: Counter[str] = Counter()
    for contacts in source.batches:
        batch = [preparer.prepare(contact) for contact in contacts]
        bounds.CLOCK.rest()  # rendered: the render timer stops ticking while they wait
        entries = lookup_entries(journal, batch)
        for row in batch:
            entry = entries.get(row.number)
            if row.status is None:
                _decide(row, entry, options)
            elif row.status is Status.INVALID and row.number:
                _sent_before(row, entry)
            if row.status is None and (options.limit is None or messages < options.limit):
                messages += 1
                pages[row.encoding] += row.pages
        spool.write(batch)
        rows += len(batch)
    return Plan(spool, rows, messages, pages)


def _decide(row: Row, entry: Entry | None, options: RunOptions) -> None:
    """Settle what the journal says is done; the rest stays to send."""
    if entry is None:
        return
    row.delivery, row.delivery_code = entry.delivery, entry.delivery_code
    skipped = journal_outcome(entry, options)
    if skipped is not None:
        row.settle(skipped)
        if skipped.status is Status.ALREADY_SENT:
            show_sent(row, entry)  # the text that went out, not today's render


def _sent_before(row: Row, entry: Entry | None) -> None:
    """A row today's template fails on (or makes too long) that an earlier run sent: the
    report says it went out, and what went out, rather than `invalid`."""
    if entry is None or entry.state is not State.SENT:
        return
    why = row.error
    row.settle(Outcome(Status.ALREADY_SENT, "", entry.message_id, entry.campaign_id))
    row.delivery, row.delivery_code = entry.delivery, entry.delivery_code
    show_sent(row, entry)
    row.error = f"sent in an earlier run; today's template fails on this row ({why})"


def journal_outcome(entry: Entry | None, options: RunOptions) -> Outcome | None:
    """The final word the journal already has for a row, unless a flag asks to try again."""
    if entry is None:
        return None
    if entry.state is State.SENT:
        return Outcome(Status.ALREADY_SENT, "", entry.message_id, entry.campaign_id)
    if entry.state is State.FAILED and not options.retry_failed:
        return Outcome(Status.FAILED, f"{entry.error} (in an earlier run; --retry-failed)")
    if entry.state in (State.UNKNOWN, State.INFLIGHT) and not options.resend_unknown:
        return Outcome(Status.UNKNOWN, entry.error or "outcome unknown from an earlier run")
    return None


# An already_sent row's error: its text cell is not what today's template renders.
TEXT_CHANGED = "the text sent differs from today's template; this is the text that was sent"
TEXT_NOT_KEPT = "the journal does not hold the text that was sent; this is today's render"


def show_sent(row: Row, entry: Entry) -> None:
    """Make an already_sent row show what went out: the journal's text and its pages.

    The report is the record of what recipients got; today's render of an edited template
    would misstate it. A journal row without its text keeps today's render, and says so.
    """
    if entry.text == row.text:
        return
    if not entry.text:
        row.error = TEXT_NOT_KEPT
        return
    pages = count_pages(entry.text)
    row.text, row.pages, row.encoding = entry.text, pages.pages, pages.encoding
    row.error = TEXT_CHANGED


def lookup_entries(journal: Journal, rows: Sequence[Row]) -> dict[str, Entry]:
    """The journal's entries for the rows still to decide, and for the rows today's template
    fails on (an earlier run may have sent them: the report must say so)."""
    numbers = [
        row.number
        for row in rows
        if row.status is None or (row.status is Status.INVALID and row.number)
    ]
    return journal.lookup(numbers) if numbers else {}
