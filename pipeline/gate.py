"""Between loading and sending: deliveries, the census or first pass (errors, cost), preflight."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import bounds, schedule
from pipeline.amoot import Account
from pipeline.clock import Clock
from pipeline.config import Config
from pipeline.contacts import ContactSource
from pipeline.deliveries import DeliveryReport, check_deliveries
from pipeline.errors import InputError, PipelineError, ProviderFatal, Refused
from pipeline.journal import Entry, Journal, State
from pipeline.models import Outcome, Row, RunOptions, Status
from pipeline.prepare import Preparer
from pipeline.segments import ENCODINGS, count_pages
from pipeline.send import Sender
from pipeline.spool import Spool
from pipeline.suppression import Suppression


@dataclass(slots=True)
class Estimate:
    """What a run is about to send: messages and pages per encoding (GSM-7 / UCS-2)."""

    messages: int = 0
    pages: Counter[str] = field(default_factory=Counter)
    rows: int = 0  # every row read, sent or not

    def add(self, row: Row) -> None:
        self.messages += 1
        self.pages[row.encoding] += row.pages

    def cost(self, account: Account, tariff: str) -> int:
        """Rials: pages x the per-page price of each encoding's script."""
        return sum(pages * account.page_price(tariff, enc) for enc, pages in self.pages.items())


class Gate:
    """The checks between loading and the sending pass: what this run may do, and why not.

    Deliveries are looked up first (--deliveries). Before sending, every input and template
    error must be found and the cost must fit the credit. Two ways lead there:

    - streamed: the source's census (a C-speed read of the whole file) finds the input errors
      and counts the rows, every template the rows name is compiled and checked, and the
      preflight proves that even rows x max_pages x the dearer page price fits. The sending
      pass then prepares each row as it streams it: one pass, sending from the first chunk.
    - first pass: when the source has no census (Excel, JSON Lines, SQL) or the bound does not
      fit, every row is prepared before anything is sent, written to a spool, and the exact
      cost goes to the preflight; the sending pass reads the spool back.

    Only a gate that stays open lets the sending pass post anything.
    """

    def __init__(
        self,
        config: Config,
        options: RunOptions,
        *,
        timing: schedule.Decision,
        journal: Journal,
        sender: Sender | None,
        clock: Clock,
        stop: threading.Event,
    ) -> None:
        self.config, self.options, self.timing = config, options, timing
        self.journal, self.sender, self.clock, self.stop = journal, sender, clock, stop
        self.sending = not options.dry_run and not options.deliveries and timing.send
        self.hold = "" if timing.send else timing.reason
        self.stopped: PipelineError | None = None
        self.account: Account | None = None
        self.deliveries: DeliveryReport | None = None
        self.rows = 0  # the rows the sending pass will report (for progress; may overshoot)
        self.streamed = False  # prepared while sending (see the class docstring)

    def decide(
        self, source: ContactSource, preparer: Preparer, suppression: Suppression | None
    ) -> Iterator[list[Row]]:
        """Run the checks; returns the prepared batches for the main pass."""
        options, sender = self.options, self.sender
        batches = prepared(source, preparer)
        if options.deliveries:
            self.hold = "not sent: --deliveries only looks up delivery reports"
            self._deliveries(suppression)
        elif self.sending:
            try:
                batches = self._before_sending(source, preparer, batches)
            except ProviderFatal as exc:  # before any row was read: all reported `pending`
                self.stopped, self.sending = exc, False
        elif options.dry_run and sender is not None:
            self.account = sender.account_status()  # the in-process sandbox: no network
        elif self.timing.stale:
            self.stopped = Refused("stale", self.timing.reason)
        return batches

    def _before_sending(
        self, source: ContactSource, preparer: Preparer, streamed: Iterator[list[Row]]
    ) -> Iterator[list[Row]]:
        """The checks of a sending run; the batches the sending pass is to read."""
        check_credit = self.config.provider.preflight and self.sender is not None
        column = self.config.template.column
        stamp = _stamp(source.path)
        census = source.census(source.columns.index(column) if column is not None else None)
        if census is not None:
            if column is not None:  # every named template compiled and checked: exit 2 now
                for name in census.values:
                    preparer.templates.for_row({column: name})
            self.rows = census.rows
            if census.rereads:  # what is sent must be the file the census read
                streamed = _as_counted(streamed, source.path, stamp, census.rows)
            if not check_credit or census.rows == 0:
                self.streamed = True
                return streamed
            assert self.sender is not None
            self.account = self.sender.account_status()
            if fits(self.config, self.account, self._most(census.rows, self.account)) is None:
                self.streamed = True
                return streamed
        spool = Spool(self.config.journal.path.parent)
        estimate = estimate_run(source, preparer, self.journal, self.options, spool)
        self.rows = estimate.rows
        if check_credit and estimate.messages:
            assert self.sender is not None
            try:
                self.account = self.account or self.sender.account_status()
                refused: ProviderFatal | None = fits(self.config, self.account, estimate)
            except ProviderFatal as exc:
                refused = exc
            if refused is not None:  # nothing sent: the spooled rows are reported `pending`
                self.stopped, self.sending = refused, False
        return spool.batches()

    def _most(self, rows: int, account: Account) -> Estimate:
        """The dearest run `rows` rows could make: every one sent, at max_pages, dearer script."""
        messages = rows if self.options.limit is None else min(rows, self.options.limit)
        price = {enc: account.page_price(self.config.provider.tariff, enc) for enc in ENCODINGS}
        dearer = max(price, key=price.__getitem__)
        return Estimate(messages, Counter({dearer: messages * self.config.template.max_pages}))

    def _deliveries(self, suppression: Suppression | None) -> None:
        if self.sender is None:
            return
        self.deliveries = check_deliveries(
            self.journal,
            self.sender.get_deliveries,
            # Sandbox verdicts are not real: they never touch the real suppression list.
            suppression=None if self.config.provider.sandbox else suppression,
            clock=self.clock,
            stop=self.stop,
        )
        self.stopped = self.deliveries.stopped


def _stamp(path: Path | None) -> tuple[int, int, int] | None:
    """What tells a file apart from a changed one: size, modification time, inode."""
    if path is None:
        return None
    try:
        info = path.stat()
    except OSError:  # moved away or deleted: not the file the census read
        return -1, -1, -1
    return info.st_size, info.st_mtime_ns, info.st_ino


def _as_counted(
    batches: Iterator[list[Row]], path: Path | None, stamp: tuple[int, int, int] | None, rows: int
) -> Iterator[list[Row]]:
    """The streamed batches, stopped if the file is not the one the census read.

    The census's checks (no broken row, rows x max_pages within the credit) hold only for the
    file it read: an export still being written, or replaced, must not send more than was
    checked. Looked at before the first batch and after each one (a stat per 1,000 rows).
    """
    seen = 0
    for batch in batches:
        seen += len(batch)
        if seen > rows or _stamp(path) != stamp:
            raise InputError(
                f"{path}: the file changed while the run was reading it (an export still being "
                "written, replaced, moved or deleted). What was sent is in the journal. Fix: "
                "let the export finish, then rerun the same command: it continues where it "
                "stopped."
            )
        yield batch


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
    would misstate it. A journal row written without its text (only a caller bug records a
    number that was never marked) keeps today's render, and the error says so.
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


def prepared(source: ContactSource, preparer: Preparer) -> Iterator[list[Row]]:
    for batch in source.batches:
        rows = [preparer.prepare(contact) for contact in batch]
        bounds.CLOCK.rest()  # rendered: the render timer stops ticking while they are sent
        yield rows


def estimate_run(
    source: ContactSource, preparer: Preparer, journal: Journal, options: RunOptions, spool: Spool
) -> Estimate:
    """The first pass: what this run would send (limit and journal considered), by encoding.

    Every prepared batch goes to the spool, for the sending pass to read back.
    """
    estimate = Estimate()
    for rows in prepared(source, preparer):
        spool.write(rows)
        estimate.rows += len(rows)
        entries = lookup_entries(journal, rows)
        for row in rows:
            if row.status is not None or journal_outcome(entries.get(row.number), options):
                continue
            if options.limit is not None and estimate.messages >= options.limit:
                continue
            estimate.add(row)
    return estimate


def fits(config: Config, account: Account, estimate: Estimate) -> Refused | None:
    """Why a run of `estimate` must not start (exit 3, nothing sent), or None when it fits."""
    cost = estimate.cost(account, config.provider.tariff)
    pages = sum(estimate.pages.values())
    need = f"{estimate.messages:,} messages, {pages:,} pages, about {tomans(cost)}"
    if cost > account.credit:
        return Refused(
            "CreditNotEnough",
            f"preflight: this run needs {need}; the account has {tomans(account.credit)}. "
            "Nothing was sent. Fix: top up the AmootSMS account, or send part with --limit N.",
        )
    max_cost = config.provider.max_cost
    if max_cost is not None and cost > max_cost * 10:
        return Refused(
            "max_cost",
            f"preflight: this run needs {need}, more than provider.max_cost "
            f"({max_cost:,.0f} tomans). Nothing was sent. Fix: raise max_cost, or use --limit N.",
        )
    return None


def tomans(rials: int) -> str:
    return f"{rials / 10:,.0f} tomans"
