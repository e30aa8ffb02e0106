"""Wire the stages top to bottom: load, prepare, skip what is done, check, send, report."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Protocol

import httpx

from pipeline import schedule
from pipeline.amoot import Account
from pipeline.bounds import time_limit
from pipeline.clock import Clock, tehran, utc_now
from pipeline.config import Config
from pipeline.deliveries import DeliveryReport
from pipeline.errors import (
    ConfigError,
    DiskTrouble,
    InternalFailure,
    Interrupted,
    PipelineError,
    ProviderFatal,
    ReportUnwritable,
    StoppedMidRun,
    TemplateError,
    WorkerFailed,
)
from pipeline.gate import Gate, journal_outcome, lookup_entries, show_sent
from pipeline.journal import Entry, Journal, State
from pipeline.lock import hold_lock, lock_path
from pipeline.models import Message, Outcome, Row, RunOptions, Status
from pipeline.persian import FILTERS, template_globals
from pipeline.prepare import Preparer, Templates, read_template
from pipeline.render import Renderer
from pipeline.report import ReportWriter, attention_file
from pipeline.sandbox import shipped_sandbox
from pipeline.send import (
    ChunkResult,
    Dispatcher,
    Sender,
    SenderSettings,
    http_client,
)
from pipeline.sender_process import ProcessDispatcher, SenderProcess, Start
from pipeline.sources import ContactSource, open_contacts
from pipeline.suppression import Suppression, load_suppression
from pipeline.throttle import Throttle

PREVIEW_ROWS = 5


class Progress(Protocol):
    """Where the run reports how far it is (a bar on a terminal, log lines under cron)."""

    def start(self, total: int) -> None: ...
    def update(self, done: int) -> None: ...
    def finish(self) -> None: ...


class _NoProgress:
    def start(self, total: int) -> None:
        pass

    def update(self, done: int) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass(slots=True)
class RunResult:
    """What the run did: enough for the summary and the exit code."""

    report_path: Path
    counts: Counter[Status]
    pages_sent: int
    pages_total: int
    elapsed: float
    sandbox: bool
    dry_run: bool
    recovered: int = 0  # rows a dead run left in flight, now `unknown`
    page_mismatches: int = 0
    stopped: PipelineError | None = None
    cost_rials: int | None = (
        None  # sent in this run (dry run: would be sent), at AccountStatus prices
    )
    credit_rials: int | None = None
    attention_path: Path | None = None
    held: str = ""  # why sendable rows were held back (outside the window), for the summary
    suppressed_added: int = 0
    blacklisted_unlisted: int = 0  # rejected numbers with no suppression.path to keep them in
    preview: list[Row] = field(default_factory=list)
    deliveries: DeliveryReport | None = None
    streamed: bool = False  # sent while reading, without a first pass (see gate.Gate)

    @property
    def exit_code(self) -> int:
        if self.stopped is not None:
            return self.stopped.exit_code
        return 5 if self.counts[Status.UNKNOWN] else 0


Log = Callable[[str], None]


def run(
    config: Config,
    options: RunOptions,
    *,
    transport: httpx.BaseTransport | None = None,
    clock: Clock = utc_now,
    sleep: Callable[[float], object] | None = None,
    log: Log = lambda _line: None,
    progress: Progress | None = None,
    detail: Log | None = None,
) -> RunResult:
    """Run one campaign as the config says; raises only errors found before anything is sent."""
    started = time.monotonic()
    progress = progress or _NoProgress()
    report_path = _report_path(config, clock)
    source = _open(config)
    templates = _templates(config, source.columns, clock, report_path)
    suppression = _suppression(config)
    timing = _timing(config, clock)
    # Sandbox "sends" are journalled apart: switching the same campaign to live sending
    # must not find its numbers already sent.
    journal_key = f"sandbox:{config.campaign}" if config.provider.sandbox else config.campaign

    # time_limit: a row whose render runs away (time, memory) is `invalid`; the run goes on.
    with ExitStack() as stack, time_limit():
        stop = threading.Event()
        if not options.dry_run:
            # Before the journal: its handler is then still in place while the journal folds
            # its WAL at the end (up to busy_timeout), where a SIGTERM would otherwise raise
            # KeyboardInterrupt and say "nothing was sent" after a whole run.
            stack.enter_context(_stop_on_signals(stop))
        journal = _open_journal(stack, config, journal_key, readonly=options.dry_run)
        sender: Sender | None = None
        worker: SenderProcess | None = None
        if not options.dry_run or config.provider.sandbox:
            client = stack.enter_context(_open_client(config, transport))
            sender = _sender(config, client, stop=stop, sleep=sleep, clock=clock, timing=timing)
            # Over real HTTP, requests are posted from a child process, started now so that
            # its imports overlap the census. Injected transports, clocks and sleeps (tests)
            # and the in-process sandbox keep the sender threads in this process.
            sends = not (options.dry_run or options.deliveries)
            if sends and transport is None and sleep is None and clock is utc_now:
                worker = _start_worker(stack, config, timing, log)

        gate = Gate(
            config, options, timing=timing, journal=journal, sender=sender, clock=clock, stop=stop
        )
        batches = gate.decide(source, _preparer(config, templates, suppression), suppression)

        report = stack.enter_context(_report_writer(report_path, source.columns))
        if gate.sending:
            progress.start(gate.rows)
        campaign = _Campaign(
            config,
            options,
            journal=journal,
            report=report,
            stop=stop,
            log=log,
        )
        campaign.account, campaign.suppression = gate.account, suppression
        campaign.clock, campaign.progress, campaign.detail = clock, progress, detail
        campaign.hold, campaign.stopped = gate.hold, gate.stopped
        if gate.sending and sender is not None:
            if timing.reason:
                log(timing.reason)
            stack.enter_context(_quick_thread_switches())
            campaign.dispatcher = _dispatcher(
                config, sender, worker=worker, campaign=campaign, stop=stop, log=log
            )
        try:
            for rows in batches:
                campaign.take(rows)
            campaign.finish()
        except BaseException as exc:
            campaign.abort()
            if not campaign.posted:
                report.discard()  # nothing happened: no half report to wonder about
            if isinstance(exc, (PipelineError, OSError)) and campaign.posted:
                raise _stopped_mid_run(exc, report) from exc
            if isinstance(exc, OSError):  # a disk or a folder, before any request left
                raise DiskTrouble(f"{_described(exc)}; fix it and run again") from exc
            raise
        progress.finish()
        _close_report(report, campaign)

    return RunResult(
        report_path=report_path,
        counts=report.counts,
        pages_sent=report.pages_sent,
        pages_total=report.pages_total,
        elapsed=time.monotonic() - started,
        sandbox=config.provider.sandbox,
        dry_run=options.dry_run,
        recovered=journal.recovered,
        page_mismatches=campaign.page_mismatches,
        stopped=campaign.stopped,
        cost_rials=campaign.cost if gate.account is not None else None,
        credit_rials=gate.account.credit if gate.account is not None else None,
        attention_path=report.attention_path,
        held=campaign.hold if not timing.stale else "",
        suppressed_added=campaign.suppressed_added,
        blacklisted_unlisted=campaign.blacklisted_unlisted,
        preview=campaign.preview,
        deliveries=gate.deliveries,
        streamed=gate.streamed,
    )


def _report_path(config: Config, clock: Clock) -> Path:
    """This run's report file; exit 2 (nothing read or written yet) where it cannot be one.

    A folder would fail only when the finished report is put in place, after sending. A file
    the run reads (the contacts, the suppression list, the template, the config) or the
    journal's would be overwritten without a word: the report, or the rows that need attention
    beside it, never replaces a file the campaign needs.
    """
    stamp = tehran(clock()).strftime("%Y%m%d-%H%M%S")
    path = Path(config.report.path.format(campaign=config.campaign, started=stamp))
    base = config.source.resolve().parent

    def shown(written: Path) -> str:  # as configured: a symlink is named, not its target
        return str(written.relative_to(base)) if written.is_relative_to(base) else str(written)

    kept = _kept_files(config)
    where = f"{_shown(config, config.source)}: report.path: {shown(path)}"
    fix = "Fix: give the report a file of its own, such as reports/{campaign}-{started}.csv"
    _refuse_to_overwrite(path, kept, where, fix)
    attention = attention_file(path)
    _refuse_to_overwrite(
        attention,
        kept,
        f"{where} puts the rows that need attention in {shown(attention)}, which",
        f"{fix} (to read an attention file back in, rename it first)",
    )
    return path


def _refuse_to_overwrite(written: Path, kept: list[tuple[Path, str]], where: str, fix: str) -> None:
    if written.is_dir():
        raise ConfigError(f"{where} is a folder. {fix}.")
    for path, name in kept:
        if _same_file(written, path):
            raise ConfigError(f"{where} is {name}: the run would overwrite it. {fix}.")


def _kept_files(config: Config) -> list[tuple[Path, str]]:
    """The files a run reads or keeps, with how the message names them."""
    journal = config.journal.path
    kept = [
        (config.source, "the config file itself"),
        (journal, "the journal (journal.path)"),
        (lock_path(journal), "the journal's lock file"),
        *((journal.with_name(journal.name + end), "a file of the journal") for end in _SQLITE),
    ]
    if config.contacts.path is not None:
        kept.append((config.contacts.path, "the contacts file (contacts.path)"))
    if config.suppression.path is not None:
        kept.append((config.suppression.path, "the suppression list (suppression.path)"))
    if config.template.path is not None:
        kept.append((config.template.path, "the template (template.path)"))
    return kept


_SQLITE = ("-wal", "-shm", "-journal")  # the files SQLite keeps beside a database


def _same_file(a: Path, b: Path) -> bool:
    """The same file, through symlinks and hard links; or the same place, if one is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # not there (yet): where it would be, symlinked folders resolved
        return a.resolve() == b.resolve()


def _report_writer(path: Path, columns: tuple[str, ...]) -> ReportWriter:
    try:
        return ReportWriter(path, columns=columns, attention=True)
    except OSError as exc:
        raise _report_trouble(exc) from exc


def _report_trouble(exc: OSError) -> DiskTrouble:
    return DiskTrouble(
        f"report.path: cannot write {_described(exc)}. Free space on that disk, make the "
        "folder writable by this user, or point report.path somewhere else"
    )


def _close_report(report: ReportWriter, campaign: _Campaign) -> None:
    """Put the report in place; a write to it that failed, on the way or now, ends the run
    here, with every answer in the journal."""
    report.close()
    if report.error is not None:
        raise _report_failed(report.error, campaign)


def _report_failed(error: OSError, campaign: _Campaign) -> PipelineError:
    if not campaign.posted:  # the run stopped before its first request
        return _report_trouble(error)
    if campaign.unsent_by_stop:
        happened = (
            "The run stopped: the requests in flight finished and their answers are in the "
            "journal; the rows not sent are `pending`."
        )
        rerun = "it continues where it stopped and writes a whole report"
    else:
        happened = "Every answer is in the journal."
        rerun = "it sends nothing twice and writes the whole report"
    return ReportUnwritable(
        f"{_described(error)}: the report cannot be written (the unfinished files were "
        f"removed). {happened} Fix: free space on that disk (or fix what the error says), "
        f"then rerun the same command: {rerun}."
    )


def _described(exc: BaseException) -> str:
    """A PipelineError's own message; an OSError as `path: what went wrong`."""
    if isinstance(exc, OSError) and not isinstance(exc, PipelineError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return str(exc)


def _stopped_mid_run(exc: PipelineError | OSError, report: ReportWriter) -> StoppedMidRun:
    report.close(complete=False)  # the rows known so far, before saying where they are
    kept = (
        f"The rows read so far are in {report.partial_path}."
        if report.error is None
        else f"The report could not be written either ({_described(report.error)})."
    )
    return StoppedMidRun(
        f"{_described(exc)}\nThe run stopped after sending had started. The journal keeps what "
        "was sent; rows whose request may have gone out are `unknown`. "
        f"{kept} Fix the cause, then rerun the same command: it continues where it stopped "
        "(and writes a whole report)."
    )


class _Campaign:
    """The per-row decisions of one run, fed batch by batch from the contacts source."""

    def __init__(
        self,
        config: Config,
        options: RunOptions,
        *,
        journal: Journal,
        report: ReportWriter,
        stop: threading.Event,
        log: Log,
    ) -> None:
        self.config = config
        self.options = options
        self.journal = journal
        self.report = report
        self.stop = stop
        self.log = log
        self.dispatcher: Dispatcher | ProcessDispatcher | None = None
        self.account: Account | None = None
        self.suppression: Suppression | None = None
        self.clock: Clock = utc_now
        self.progress: Progress = _NoProgress()
        self.detail: Log | None = None  # --verbose: one line per answered request
        self.window = (
            schedule.parse_window(config.schedule.window) if config.schedule.window else None
        )
        self.hold = ""  # a reason to hold every sendable row back (outside the window)
        self.queued = 0  # messages handed to the sender this run (for --limit)
        self.chunk: list[Message] = []
        self.chunk_pages: dict[int, int] = {}
        self.inflight: dict[int, Row] = {}
        self.unrecorded: list[tuple[str, Outcome]] = []  # answers the journal has not yet
        self.posted = False  # a request was handed to the sender: errors now are mid-run
        self.unsent_by_stop = 0  # rows left pending because the run was asked to stop
        self.stopped: PipelineError | None = None
        self.page_mismatches = 0
        self.cost = 0
        self._prices: dict[str, int] = {}  # rials per page, by encoding
        self.suppressed_added = 0
        self.blacklisted_unlisted = 0
        self.preview: list[Row] = []
        self.submitting: list[Message] = []  # the chunk being handed to the dispatcher

    # -- stages per batch -------------------------------------------------------------

    def take(self, rows: Sequence[Row]) -> None:
        entries = lookup_entries(self.journal, rows)
        for row in rows:
            self.report.add(row)
            if row.status is None:
                self._decide(row, entries.get(row.number))
            elif row.status is Status.INVALID and row.number:
                self._sent_before(row, entries.get(row.number))
        if self.dispatcher is not None:
            self.dispatcher.poll()
        self._flush_report()

    def _flush_report(self) -> None:
        """Write the rows settled so far; the progress counts rows in the report."""
        self.report.flush_ready()
        if self.report.error is not None and not self.stop.is_set():
            # A report that cannot be written (a full disk) stops the run as a signal does:
            # no new request; those in flight finish and their answers go to the journal (a
            # file of its own, perhaps on another disk). run() then says what failed.
            self.stop.set()
            self.log(
                f"stopping: {_described(self.report.error)}: the report cannot be written; "
                "the requests in flight finish and are recorded"
            )
        self.progress.update(sum(self.report.counts.values()))

    def _sent_before(self, row: Row, entry: Entry | None) -> None:
        """A row today's template fails on (or makes too long) that an earlier run sent: the
        report says it went out, and what went out, rather than `invalid`."""
        if entry is None or entry.state is not State.SENT:
            return
        why = row.error
        row.settle(Outcome(Status.ALREADY_SENT, "", entry.message_id, entry.campaign_id))
        row.delivery, row.delivery_code = entry.delivery, entry.delivery_code
        show_sent(row, entry)
        row.error = f"sent in an earlier run; today's template fails on this row ({why})"

    def _decide(self, row: Row, entry: Entry | None) -> None:
        """Skip what the journal says is done; send (or hold back) the rest."""
        skipped = journal_outcome(entry, self.options)
        if entry is not None:
            row.delivery, row.delivery_code = entry.delivery, entry.delivery_code
        if skipped is not None:
            row.settle(skipped)
            if entry is not None and skipped.status is Status.ALREADY_SENT:
                show_sent(row, entry)  # the text that went out, not today's render
            return
        if self.options.dry_run:
            row.status = Status.DRY_RUN
            self._priced(row)
            if len(self.preview) < PREVIEW_ROWS:
                self.preview.append(row)
            return
        if self.hold:
            row.settle(Outcome(Status.PENDING, self.hold))
            return
        if self.stopped is not None or self.stop.is_set():
            row.settle(Outcome(Status.PENDING, self._why_stopped()))
            self.unsent_by_stop += 1
            return
        if self.options.limit is not None and self.queued >= self.options.limit:
            row.settle(Outcome(Status.PENDING, f"held back by --limit {self.options.limit}"))
            return
        self.queued += 1
        self.inflight[row.row] = row
        self.chunk.append(Message(row.row, row.number, row.text))
        self.chunk_pages[row.row] = row.pages
        if len(self.chunk) >= self.config.provider.chunk_size:
            self._flush_chunk()

    def _flush_chunk(self) -> None:
        chunk, pages = self.chunk, self.chunk_pages
        self.chunk, self.chunk_pages = [], {}
        if not chunk:
            return
        if self._window_closed():
            self.hold = (
                f"held back: the send window {self.window} (Tehran) closed during the run; "
                "rerun the same command when it opens"
            )
        if self.hold or self.stopped is not None or self.stop.is_set():
            reason = self.hold or self._why_stopped()
            self.unsent_by_stop += 0 if self.hold else len(chunk)
            for m in chunk:
                self.inflight.pop(m.row).settle(Outcome(Status.PENDING, reason))
            return
        assert self.dispatcher is not None  # only a sending run queues messages
        # Until submit returns, no request carries this chunk: an error in it (waiting for a
        # slot, or the journal refusing the mark) leaves the chunk unposted (see abort).
        self.submitting = chunk
        self.dispatcher.submit(chunk, pages)
        self.submitting = []

    def _window_closed(self) -> bool:
        """A long run that reaches the window's end stops sending (outside_window: wait)."""
        return (
            self.window is not None
            and self.config.schedule.outside_window == "wait"
            and not self.window.contains(self.clock())
        )

    def finish(self) -> None:
        self._flush_chunk()
        if self.dispatcher is not None:
            self.dispatcher.drain()
        if self.unrecorded:
            self.journal.record(self.unrecorded)
            self.unrecorded = []
        # A signal that came when nothing was left to send changes nothing.
        if self.stopped is None and self.stop.is_set() and self.unsent_by_stop:
            self.stopped = Interrupted(
                "interrupted: the requests in flight finished and were recorded; the rest are "
                "`pending`. Fix: rerun the same command to continue."
            )
        self._flush_report()  # rows settled in the last partial chunk count too

    def abort(self) -> None:
        """After an unexpected error: start nothing more, wait for the requests already on
        their way and keep their answers; rows no request carried are `pending`, rows whose
        request's fate is not known are `unknown`."""
        unposted = Outcome(Status.PENDING, "not sent: the run stopped with an error")
        if self.dispatcher is not None:
            self.stop.set()  # a chunk waiting to retry gives up instead
            # Queued chunks never start: no request carried their rows (the journal hears so).
            for m in self.dispatcher.halt():
                self.inflight.pop(m.row).settle(unposted)
                self.unrecorded.append((m.number, unposted))
            # Requests already posting end within provider.timeout. Their answers are recorded
            # while this run still holds the lock, instead of being left `inflight` (`unknown`
            # next run) while an overlapping run could already be sending.
            with contextlib.suppress(Exception):  # e.g. the report cannot be written
                self.dispatcher.drain()
        # Never handed to a request, and never marked: `pending`, and the journal has no row.
        for m in [*self.chunk, *self.submitting]:
            row = self.inflight.pop(m.row, None)
            if row is not None and row.status is None:
                row.settle(unposted)
        self.chunk, self.submitting = [], []
        reason = "the run stopped with an error while this was in flight; it may have gone out"
        for row in self.inflight.values():
            if row.status is None:
                row.settle(Outcome(Status.UNKNOWN, reason))
        self.inflight.clear()
        if self.unrecorded:
            # If the journal itself failed, its rows stay in flight: `unknown` next run.
            with contextlib.suppress(PipelineError):
                self.journal.record(self.unrecorded)
            self.unrecorded = []

    # -- journal around each request (main thread only) ---------------------------------

    def before_post(self, messages: Sequence[Message]) -> None:
        self.posted = True
        # The answers gathered since the last request share this mark's transaction.
        self.journal.mark_inflight([(m.number, m.text) for m in messages], self.unrecorded)
        self.unrecorded = []

    def after_answer(self, messages: Sequence[Message], result: ChunkResult) -> None:
        recorded = []
        blacklisted = []
        for m in messages:
            outcome = result.outcomes.get(m.row) or Outcome(
                Status.UNKNOWN, "no outcome was recorded for this message"
            )
            row = self.inflight.pop(m.row)
            row.settle(outcome)
            row.attempts = result.attempts.get(m.row, 0)
            recorded.append((m.number, outcome))
            if outcome.status is Status.SENT:
                self._priced(row)
            elif outcome.status is Status.PENDING:
                self.unsent_by_stop += 1
            elif (
                outcome.status is Status.FAILED
                and outcome.error == "Mobile_Invalid"
                and not self.config.provider.sandbox  # sandbox verdicts are not real
            ):
                blacklisted.append(
                    (m.number, f"Mobile_Invalid (invalid or blacklisted), {self.config.campaign}")
                )
        self.unrecorded.extend(recorded)
        self._suppress(blacklisted)
        self.page_mismatches += result.page_mismatches
        if self.detail is not None:
            tally = Counter(outcome.status.value for _, outcome in recorded)
            first, last = messages[0].row, messages[-1].row
            self.detail(
                f"rows {first}-{last}: "
                + ", ".join(f"{n} {status}" for status, n in sorted(tally.items()))
            )
        if result.internal is not None and self.stopped is None:
            self.stopped = result.internal
            self.stop.set()
        if result.stop is not None and self.stopped is None:
            self.stopped = result.stop
            self.stop.set()
            self.log(f"stopping: {result.stop}")
        self._flush_report()

    def _suppress(self, numbers: list[tuple[str, str]]) -> None:
        if not numbers or not self.config.suppression.add_blacklisted:
            return
        if self.suppression is None:
            self.blacklisted_unlisted += len(numbers)
            return
        try:
            self.suppressed_added += self.suppression.add(numbers, moment=self.clock())
        except PipelineError as exc:  # a list we cannot write must not stop a run mid-way
            self.blacklisted_unlisted += len(numbers)
            self.log(f"warning: {exc}")

    def _priced(self, row: Row) -> None:
        if self.account is None:
            return
        price = self._prices.get(row.encoding)
        if price is None:  # once per encoding, not per message
            price = self._prices[row.encoding] = self.account.page_price(
                self.config.provider.tariff, row.encoding
            )
        self.cost += row.pages * price

    def _why_stopped(self) -> str:
        if isinstance(self.stopped, ProviderFatal):
            return f"not sent: the run stopped on {self.stopped.title}"
        if isinstance(self.stopped, InternalFailure):
            return "not sent: the run stopped on an internal error"
        return "not sent: the run was interrupted"


def _open_journal(stack: ExitStack, config: Config, key: str, *, readonly: bool) -> Journal:
    """The journal, read-only for a dry run; otherwise behind the lock (exit 4 if held)."""
    if readonly:
        return stack.enter_context(Journal.open(config.journal.path, key, readonly=True))
    stack.enter_context(hold_lock(config.journal.path))
    return stack.enter_context(Journal.open(config.journal.path, key))


def _preparer(config: Config, templates: Templates, suppression: Suppression | None) -> Preparer:
    return Preparer(
        phone_column=config.contacts.phone_column,
        templates=templates,
        footer=config.template.optout_footer,
        max_pages=config.template.max_pages,
        suppression=suppression,
        normalise=config.contacts.normalise_text,
    )


def _timing(config: Config, clock: Clock) -> schedule.Decision:
    settings = config.schedule
    return schedule.decide(
        clock(),
        send_at=schedule.parse_send_at(settings.send_at),
        window=schedule.parse_window(settings.window) if settings.window else None,
        max_lateness=(
            schedule.parse_duration(settings.max_lateness) if settings.max_lateness else None
        ),
        outside_window=settings.outside_window,
    )


def _open(config: Config) -> ContactSource:
    contacts = config.contacts
    if contacts.path is None:
        # The config allows no path only together with query and url.
        assert contacts.query is not None and contacts.url is not None
        from pipeline.sources import open_sql  # noqa: PLC0415 - SQLAlchemy is an extra

        return open_sql(contacts.url, contacts.query, contacts.phone_column)
    return open_contacts(
        contacts.path, contacts.phone_column, shown_path=_shown(config, contacts.path)
    )


def _templates(
    config: Config, columns: tuple[str, ...], clock: Clock, report_path: Path
) -> Templates:
    template = config.template
    globals_ = template_globals(clock)
    default: Renderer | None = None
    folder = config.source.resolve().parent
    if template.text is not None:
        name = f"{_shown(config, config.source)}: template.text"
        default = Renderer(template.text, name=name, filters=FILTERS, globals=globals_)
    elif template.path is not None:
        shown = _shown(config, template.path)
        try:
            source = read_template(template.path, shown)
        except FileNotFoundError:
            raise TemplateError(
                f"{shown}: no such template file. Fix: check template.path in "
                f"{_shown(config, config.source)}."
            ) from None
        default = Renderer(source, name=shown, filters=FILTERS, globals=globals_)
        folder = template.path.parent
    if template.column is not None and template.column not in columns:
        raise TemplateError(
            f"{_shown(config, config.source)}: template.column: the contacts have no column "
            f"'{template.column}'. Fix: name the column that holds each row's template file."
        )
    return Templates(
        default,
        folder=folder,
        column=template.column,
        columns=columns,
        filters=FILTERS,
        globals=globals_,
        written=(report_path, attention_file(report_path)),
    )


def _suppression(config: Config) -> Suppression | None:
    path = config.suppression.path
    return load_suppression(path, _shown(config, path)) if path is not None else None


def _start_worker(
    stack: ExitStack, config: Config, timing: schedule.Decision, log: Log
) -> SenderProcess | None:
    if config.provider.sandbox:
        return None
    start = Start(
        _sender_settings(config),
        config.provider.concurrency,
        config.provider.rate_limit,
        timing.send_at,
    )
    try:
        return stack.enter_context(SenderProcess(start))
    except WorkerFailed as exc:
        _warn_threads(log, exc)
        return None


def _warn_threads(log: Log, exc: WorkerFailed) -> None:
    log(f"warning: {exc}; sending from threads in this process instead")


def _dispatcher(
    config: Config,
    sender: Sender,
    *,
    worker: SenderProcess | None,
    campaign: _Campaign,
    stop: threading.Event,
    log: Log,
) -> Dispatcher | ProcessDispatcher:
    """The child process's dispatcher once it is ready (nothing is marked before), else threads."""
    concurrency = config.provider.concurrency
    if worker is not None:
        try:
            worker.wait_ready()
        except WorkerFailed as exc:
            _warn_threads(log, exc)
        else:
            return ProcessDispatcher(
                worker,
                concurrency,
                stop=stop,
                before_post=campaign.before_post,
                after_answer=campaign.after_answer,
                not_before=sender.throttle.next_start(),  # after this run's AccountStatus
            )
    return Dispatcher(
        sender,
        concurrency,
        before_post=campaign.before_post,
        after_answer=campaign.after_answer,
    )


def _sender_settings(config: Config) -> SenderSettings:
    return SenderSettings(
        base_url=config.provider.base_url,
        token=config.token,
        line_number=config.provider.line_number,
        timeout=config.provider.timeout,
        max_attempts=config.provider.max_attempts,
    )


def _sender(
    config: Config,
    client: httpx.Client,
    *,
    stop: threading.Event,
    sleep: Callable[[float], object] | None,
    clock: Clock,
    timing: schedule.Decision,
) -> Sender:
    fixed = timing.send_at
    return Sender(
        client,
        _sender_settings(config),
        throttle=Throttle(config.provider.rate_limit, sleep=stop.wait),
        stop=stop,
        sleep=sleep or stop.wait,
        send_at=(lambda: fixed) if fixed is not None else clock,
    )


def _shown(config: Config, path: Path) -> str:
    """A path as the operator thinks of it: relative to the config's folder when inside it."""
    base = config.source.resolve().parent
    try:
        return str(path.resolve().relative_to(base))
    except ValueError:
        return str(path)


@contextmanager
def _open_client(config: Config, transport: httpx.BaseTransport | None) -> Iterator[httpx.Client]:
    """One client for the run; the sandbox answers in-process, so nothing leaves the machine."""
    if transport is None and config.provider.sandbox:
        transport = httpx.MockTransport(shipped_sandbox(config.token).handle)
    with http_client(config.provider.concurrency, config.provider.timeout, transport) as client:
        yield client


# Seconds a thread may hold the interpreter lock while another waits (Python's default: 0.005).
SWITCH_INTERVAL = 0.001


@contextmanager
def _quick_thread_switches() -> Iterator[None]:
    """Let a sender thread whose answer has arrived run within a millisecond, not five.

    While the main thread prepares rows it holds the interpreter lock, and each socket read
    of a sender thread waits up to a switch interval to get it back: with a CPU-bound thread
    beside them, 1,000 requests at 50 ms and 8 in flight took 14.8 s at Python's default
    against 7.3 s at 0.5 ms. In a run of 100,000 messages at 50 ms it saved about 0.5 s; at
    0 ms the extra switching costs a little (1 ms is the compromise).
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


# Ctrl-C; a cron timeout, a deploy, systemd; the terminal or the ssh session closed.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT / SIGTERM / SIGHUP ask for a clean stop: in-flight requests finish and are
    recorded. A signal ignored when the run started stays ignored: `nohup` ignores SIGHUP so
    that the run outlives the terminal, a shell script's `&` job ignores SIGINT."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {
        sig: signal.signal(sig, handler)
        for sig in STOP_SIGNALS
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
