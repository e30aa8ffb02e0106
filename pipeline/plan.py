"""The plan (every row read, prepared, decided and counted, into a spool) and its preflight."""

from __future__ import annotations

import contextlib
import operator
import pickle
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline import bounds, schedule
from pipeline.amoot import TITLES, Account, describe
from pipeline.config import Config, FrequencyCap
from pipeline.errors import PipelineError, ProviderFatal, Refused, SpoolError
from pipeline.journal import SETTLED_AS_SENT, Entry, Journal, State
from pipeline.models import Outcome, Row, RunOptions, Status
from pipeline.prepare import Preparer
from pipeline.private import private_folder
from pipeline.segments import count_pages
from pipeline.send import Sender
from pipeline.sources import ContactSource


@dataclass(frozen=True, slots=True)
class Plan:
    """The rows in a spool (those still to send have no status), and exact counts."""

    spool: Spool
    rows: int  # every row read
    messages: int  # rows this run would send, --limit applied
    pages: Mapping[str, int]  # the pages of those messages, by encoding (GSM-7 / UCS-2)

    def cost(self, account: Account, tariff: str) -> int:
        """Rials: pages x the per-page price of each encoding's script."""
        return sum(pages * account.page_price(tariff, enc) for enc, pages in self.pages.items())


def make_plan(
    source: ContactSource,
    preparer: Preparer,
    journal: Journal,
    options: RunOptions,
    spool: Spool,
    *,
    cap: FrequencyCap | None = None,
    now: datetime | None = None,
) -> Plan:
    """Read, prepare and decide every row into `spool`; `cap` (at the run's `now`) suppresses
    the rows to send whose number other campaigns have already messaged enough."""
    rows = messages = 0
    pages: Counter[str] = Counter()
    sent: dict[str, frozenset[str]] = {}
    if cap is not None:
        assert now is not None, "the frequency cap counts back from the run's clock"
        sent = journal.sent_elsewhere(now - timedelta(days=cap.days))
    anyone = frozenset[str]().union(*sent.values())  # a row is looked up once, not per campaign
    for contacts in source.batches:
        batch = [preparer.prepare(contact) for contact in contacts]
        bounds.CLOCK.rest()  # rendered: the render timer stops ticking while they wait
        # Also the rows today's template fails on: an earlier run may have sent them.
        numbers = [
            r.number for r in batch if r.status is None or (r.status is Status.INVALID and r.number)
        ]
        entries = journal.lookup(numbers) if numbers else {}
        capped = _over_cap(cap, sent, anyone.intersection(numbers)) if cap is not None else {}
        for row in batch:
            entry = entries.get(row.number)
            if row.status is None:
                _decide(row, entry, options)
                if row.status is None and row.number in capped:
                    row.settle(Outcome(Status.SUPPRESSED, capped[row.number]))
            elif row.status is Status.INVALID and row.number:
                _sent_before(row, entry)
            if row.status is None and (options.limit is None or messages < options.limit):
                messages += 1
                pages[row.encoding] += row.pages
        spool.write(batch)
        rows += len(batch)
    return Plan(spool, rows, messages, pages)


def _decide(row: Row, entry: Entry | None, options: RunOptions) -> None:
    """Settle what the journal says is done, unless a flag asks to try again."""
    if entry is None:
        return
    row.delivery, row.delivery_code = entry.delivery, entry.delivery_code
    if entry.state is State.SENT:
        _already_sent(row, entry)
    elif entry.state is State.FAILED and not options.retry_failed:
        row.settle(Outcome(Status.FAILED, f"{entry.error} (in an earlier run; --retry-failed)"))
    elif entry.state in (State.UNKNOWN, State.INFLIGHT) and not options.resend_unknown:
        row.settle(Outcome(Status.UNKNOWN, entry.error or "outcome unknown from an earlier run"))


_NAMED_CAMPAIGNS = 5  # in a capped row's error; the rest counted


def _over_cap(
    cap: FrequencyCap, sent: Mapping[str, frozenset[str]], numbers: frozenset[str]
) -> dict[str, str]:
    """Those of `numbers` (each sent by some other campaign) that `cap.messages` or more other
    campaigns sent -> the row's error."""
    by: dict[str, list[str]] = {number: [] for number in numbers}
    for campaign, theirs in sent.items():  # in C: only the batch's hits are walked in Python
        for number in theirs.intersection(numbers):
            by[number].append(campaign)
    errors: dict[tuple[str, ...], str] = {}  # one sentence per set of campaigns, not per row
    capped = {}
    for number, found in by.items():
        if len(found) >= cap.messages:
            campaigns = tuple(found)
            if (error := errors.get(campaigns)) is None:
                error = errors[campaigns] = _cap_error(cap, campaigns)
            capped[number] = error
    return capped


def _cap_error(cap: FrequencyCap, campaigns: tuple[str, ...]) -> str:
    shown = ", ".join(campaigns[:_NAMED_CAMPAIGNS])
    if len(campaigns) > _NAMED_CAMPAIGNS:
        shown += f" and {len(campaigns) - _NAMED_CAMPAIGNS} more"
    return (
        f"frequency cap: {len(campaigns)} message(s) in the last {cap.days} days already sent "
        f"(campaigns {shown}); suppression.frequency_cap allows {cap.messages}"
    )


def _sent_before(row: Row, entry: Entry | None) -> None:
    """A row today's template fails on that an earlier run sent: the report says what went out."""
    if entry is None or entry.state is not State.SENT:
        return
    why = row.error
    row.delivery, row.delivery_code = entry.delivery, entry.delivery_code
    _already_sent(row, entry)
    row.error = f"sent in an earlier run; today's template fails on this row ({why})"


# An already_sent row's error: its text cell is not what today's template renders.
TEXT_CHANGED = "the text sent differs from today's template; this is the text that was sent"
TEXT_NOT_KEPT = "the journal does not hold the text that was sent; this is today's render"


def _already_sent(row: Row, entry: Entry) -> None:
    """`already_sent`, with the journal's text and pages: what recipients got."""
    row.settle(Outcome(Status.ALREADY_SENT, "", entry.message_id, entry.campaign_id))
    if entry.text != row.text:
        if not entry.text:
            row.error = TEXT_NOT_KEPT
        else:
            pages = count_pages(entry.text)
            row.text, row.pages, row.encoding = entry.text, pages.pages, pages.encoding
            row.error = TEXT_CHANGED
    if entry.error.startswith(SETTLED_AS_SENT):  # the operator's word is why it is not sent
        row.error = f"{entry.error}; {row.error}" if row.error else entry.error


# A Row as a tuple in Row's field order (Row(*fields) makes it again): pickling slotted
# dataclasses costs ~3 x as much (10 against 4 us a row, dump and load, timeit on 1,000 rows).
_fields_of = operator.attrgetter(*(f.name for f in fields(Row)))


class Spool:
    """The plan's rows in an anonymous file (0600, gone when closed or on a crash), read back
    once by the sending pass; only this process reads it, so pickle is safe."""

    def __init__(self, folder: Path | None) -> None:
        if folder is None:
            self._folder = Path(tempfile.gettempdir())
            self._fix = "free space on that disk, or point TMPDIR at a folder with room"
        else:
            self._folder = folder
            self._fix = (
                "free space on that disk, or point journal.path at a folder on a disk with "
                "room (the rows are kept beside the journal)"
            )
            private_folder(folder)
        self._file = tempfile.TemporaryFile(dir=self._folder, prefix="pipeline-spool-")  # noqa: SIM115

    def write(self, rows: list[Row]) -> None:
        tuples: list[tuple[Any, ...]] = [_fields_of(r) for r in rows]
        try:
            pickle.dump(tuples, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        except OSError as exc:
            raise self._full(exc) from exc

    def batches(self) -> Iterator[list[Row]]:
        """Every batch, in order, then the file is gone; the seek flushes: a full disk shows now."""
        try:
            self._file.seek(0)
        except OSError as exc:
            raise self._full(exc) from exc
        return self._read()

    def close(self) -> None:
        self._file.close()

    def _full(self, exc: OSError) -> SpoolError:
        with contextlib.suppress(OSError):  # closing flushes again; the file goes either way
            self._file.close()  # and frees the space it took at once
        return SpoolError(
            f"{self._folder}: cannot keep the prepared rows there until sending starts "
            f"({exc.strerror or exc}). Fix: {self._fix}."
        )

    def _read(self) -> Iterator[list[Row]]:
        try:
            while True:
                try:
                    tuples: list[tuple[Any, ...]] = pickle.load(self._file)
                except EOFError:
                    return
                yield [Row(*f) for f in tuples]
        finally:
            self._file.close()


@dataclass(frozen=True, slots=True)
class Verdict:
    """The check's answer: only `send` lets the sending pass post anything."""

    send: bool
    hold: str = ""  # why the rows to send are held back (`pending`), when they are
    stopped: PipelineError | None = None  # refused (stale, credit, max_cost): exit 3
    account: Account | None = None  # AccountStatus, when it was asked
    unpriced: str = ""  # a dry run's AccountStatus failed: why its cost is unknown


def check(
    config: Config,
    options: RunOptions,
    timing: schedule.Decision,
    plan: Plan,
    sender: Sender | None,
) -> Verdict:
    """The preflight on the plan's exact cost; a dry run only prices the plan (read-only)."""
    hold = "" if timing.send else timing.reason
    if timing.stale and not (options.dry_run and config.provider.sandbox):
        # A live dry run too: it says what the real run would do (exit 3), and prices nothing.
        return Verdict(False, hold, Refused("stale", timing.reason))
    if options.dry_run:
        return _priced(Verdict(False, hold), plan, sender)
    if not timing.send:
        return Verdict(False, hold)
    if not (config.provider.preflight and sender is not None and plan.messages):
        return Verdict(True)
    try:
        account = sender.account_status()
    except ProviderFatal as exc:  # nothing sent: the rows are reported `pending`
        return Verdict(False, stopped=exc)
    refused = fits(config, account, plan)
    return Verdict(refused is None, stopped=refused, account=account)


def _priced(verdict: Verdict, plan: Plan, sender: Sender | None) -> Verdict:
    """A dry run's verdict with the account's prices and credit (AccountStatus changes nothing);
    when it fails the dry run still completes, its cost unknown and why. Nothing to send asks
    nothing: that costs 0 whatever the prices."""
    if sender is None or not plan.messages:
        return verdict
    try:
        return replace(verdict, account=sender.account_status())
    except ProviderFatal as exc:
        title = exc.title
        why = describe(title) if title in TITLES else f"no answer: {title}"
        return replace(verdict, unpriced=f"AccountStatus failed ({why})")


def fits(config: Config, account: Account, plan: Plan) -> Refused | None:
    """Why a run of `plan` must not start (exit 3, nothing sent), or None when it fits."""
    cost = plan.cost(account, config.provider.tariff)
    pages = sum(plan.pages.values())
    need = f"{plan.messages:,} messages, {pages:,} pages, about {tomans(cost)}"
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
