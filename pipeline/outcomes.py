"""The sending pass: each planned row to the report, through the provider when it is sent."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from pipeline import schedule
from pipeline.campaign import Campaign, kept_files
from pipeline.clock import Clock, tehran
from pipeline.config import Config
from pipeline.dispatch import Dispatcher
from pipeline.errors import DiskTrouble, InternalFailure, Interrupted, PipelineError, ProviderFatal
from pipeline.failures import described, report_failed, report_trouble, stopped_mid_run
from pipeline.journal import Journal
from pipeline.models import Message, Outcome, Row, RunOptions, Status
from pipeline.plan import Plan, Verdict
from pipeline.report import ReportWriter
from pipeline.report_files import finish_files
from pipeline.send import ChunkResult, Sender
from pipeline.summary_page import RunFacts
from pipeline.suppression import Suppression

PREVIEW_ROWS = 5
Log = Callable[[str], None]


class Progress(Protocol):
    """Where the run reports how far it is (a bar on a terminal, log lines under cron)."""

    def start(self, total: int) -> None: ...
    def update(self, done: int) -> None: ...
    def finish(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Settled:
    """What the pass did: the report's tallies and what the summary says besides."""

    report: ReportWriter
    stopped: PipelineError | None
    cost: int  # rials, at AccountStatus prices: sent (dry run: would be sent)
    page_mismatches: int
    suppressed_added: int
    blacklisted_unlisted: int  # rejected numbers with no suppression list to keep them in
    preview: tuple[Row, ...]
    hold: str  # why the rows to send were held back (the window may close mid-run)
    priced: bool = False  # the account's prices were known (or nothing was to send): `cost` is real
    page: Path | None = None  # the HTML summary beside the report, once written


@dataclass(frozen=True, slots=True)
class Pass:
    """What the sending pass works with, besides the plan and the verdict."""

    config: Config
    options: RunOptions
    journal: Journal
    sender: Sender | None
    stop: threading.Event
    clock: Clock
    log: Log
    progress: Progress | None
    detail: Log | None  # --verbose: one line per answered request


def settle_plan(campaign: Campaign, plan: Plan, verdict: Verdict, run: Pass) -> Settled:
    """Every planned row into the report, in order; an error once sending began: StoppedMidRun.
    A test send's plan holds its test messages only: its report is those, and no companion."""
    test = bool(run.options.test_to)
    try:
        report = ReportWriter(
            campaign.report_path,
            columns=campaign.source.columns,
            attention=not test,
            xlsx=run.config.report.xlsx and not test,
        )
    except OSError as exc:
        raise report_trouble(exc) from exc
    with report:
        rows = _Rows(run, verdict, report, campaign.suppression, campaign.timing.send_at)
        if verdict.send and run.progress is not None:
            run.progress.start(plan.rows)
        try:
            for batch in plan.spool.batches():
                rows.take(batch)
            rows.finish()
        except BaseException as exc:
            rows.abort()
            if not rows.posted:
                report.discard()  # nothing happened: no half report to wonder about
            if isinstance(exc, (PipelineError, OSError)) and rows.posted:
                raise stopped_mid_run(exc, report) from exc
            if isinstance(exc, OSError):  # a disk or a folder, before any request left
                raise DiskTrouble(f"{described(exc)}; fix it and run again") from exc
            raise
        if run.progress is not None:
            run.progress.finish()
        report.close()  # a write that failed, on the way or now, ends the run here
        if report.error is not None:
            raise report_failed(report.error, posted=rows.posted, stopped=bool(rows.unsent_by_stop))
    settled = rows.settled()
    if not plan.messages:  # nothing to send costs nothing, prices known or not
        settled = replace(settled, priced=True)
    if test:  # not the campaign's report: never its `-latest`, nor counted by report.keep
        return settled
    return replace(settled, page=_finish_files(settled, run))


def _finish_files(settled: Settled, run: Pass) -> Path | None:
    """The summary page, the workbook, the `-latest` names and report.keep, once it is whole."""
    config = run.config
    mode = "dry run" if run.options.dry_run else "sandbox" if config.provider.sandbox else "live"
    facts = RunFacts(
        campaign=config.campaign,
        mode=mode,
        finished=tehran(run.clock()),
        report=settled.report.path.name,
        cost_rials=settled.cost if settled.priced else None,
        stopped=str(settled.stopped) if settled.stopped is not None else "",
        held=settled.hold,
    )
    kept = tuple(path for path, _name in kept_files(config))
    return finish_files(
        settled.report,
        facts,
        pattern=config.report.path,
        keep=config.report.keep,
        kept=kept,
        warn=run.log,
        detail=run.detail,
    )


class _Rows:
    """The per-row decisions of the pass, and the journal around each request (main thread)."""

    def __init__(
        self,
        run: Pass,
        verdict: Verdict,
        report: ReportWriter,
        suppression: Suppression | None,
        send_at: datetime | None,  # a future SendDateTime: the window is judged at delivery
    ) -> None:
        self.send_at = send_at
        self.run, self.report, self.stop, self.suppression = run, report, run.stop, suppression
        self.hold, self.stopped, self.account = verdict.hold, verdict.stopped, verdict.account
        window = run.config.schedule.window
        # A test send goes to the operator's own numbers now: the window protects recipients.
        self.window = schedule.parse_window(window) if window and not run.options.test_to else None
        self.dispatcher: Dispatcher | None = None
        if verdict.send and run.sender is not None:
            self.dispatcher = Dispatcher(
                run.sender,
                run.config.provider.concurrency,
                before_post=self.before_post,
                after_answer=self.after_answer,
            )
        self.queued = 0  # messages handed to the sender this run (for --limit)
        self.chunk: list[Message] = []
        self.chunk_pages: dict[int, int] = {}
        self.submitting: list[Message] = []  # the chunk being handed to the dispatcher
        self.inflight: dict[int, Row] = {}
        self.unrecorded: list[tuple[str, Outcome]] = []  # answers the journal has not yet
        self.posted = False  # a request was handed to the sender: errors now are mid-run
        self.unsent_by_stop = 0  # rows left pending because the run was asked to stop
        # Rows shown done: written less left by a stop. A stopped row is counted when settled,
        # before it is written, so the difference may dip by a moment; its final value is exact.
        self.shown = 0
        self.prices: dict[str, int] = {}  # rials per page, by encoding
        self.page_mismatches = self.cost = self.suppressed_added = self.blacklisted_unlisted = 0
        self.preview: list[Row] = []

    def settled(self) -> Settled:
        return Settled(
            self.report, self.stopped, self.cost, self.page_mismatches, self.suppressed_added,
            self.blacklisted_unlisted, tuple(self.preview), self.hold, self.account is not None,
        )  # fmt: skip

    def take(self, rows: Sequence[Row]) -> None:
        for row in rows:
            self.report.add(row)
            if row.status is None:
                self._decide(row)
        if self.dispatcher is not None:
            self.dispatcher.poll()
        self._flush_report()

    def _flush_report(self) -> None:
        self.report.flush_ready()
        if self.report.error is not None and not self.stop.is_set():  # a full disk: as a signal
            self.stop.set()
            self.run.log(
                f"stopping: {described(self.report.error)}: the report cannot be written; "
                "the requests in flight finish and are recorded"
            )
        if self.run.progress is not None:
            # Rows a stop left `pending` were not done: after Ctrl-C the count stays where the
            # sending was, not at every row. Never backwards (see `shown`).
            self.shown = max(self.shown, sum(self.report.counts.values()) - self.unsent_by_stop)
            self.run.progress.update(self.shown)

    def _decide(self, row: Row) -> None:
        limit = self.run.options.limit
        if self.run.options.dry_run:
            row.status = Status.DRY_RUN
            if limit is None or self.queued < limit:  # priced as the plan counts: what is sent
                self.queued += 1
                self._priced(row)
            if len(self.preview) < PREVIEW_ROWS:
                self.preview.append(row)
        elif self.hold:
            row.settle(Outcome(Status.PENDING, self.hold))
        elif self.stopped is not None or self.stop.is_set():
            row.settle(Outcome(Status.PENDING, self._why_stopped()))
            self.unsent_by_stop += 1
        elif limit is not None and self.queued >= limit:
            row.settle(Outcome(Status.PENDING, f"held back by --limit {limit}"))
        else:
            self.queued += 1
            # A test send may use one row's text twice (more numbers than rows): by message.
            key = self.queued if self.run.options.test_to else row.row
            self.inflight[key] = row
            self.chunk.append(Message(key, row.number, row.text))
            self.chunk_pages[key] = row.pages
            if len(self.chunk) >= self.run.config.provider.chunk_size:
                self._flush_chunk()

    def _flush_chunk(self) -> None:
        chunk, pages = self.chunk, self.chunk_pages
        self.chunk, self.chunk_pages = [], {}
        if not chunk:
            return
        window, now = self.window, self.run.clock()
        due = max(now, self.send_at) if self.send_at is not None else now  # when it is delivered
        if (  # a long run that reaches the window's end stops sending (outside_window: wait)
            window is not None
            and self.run.config.schedule.outside_window == "wait"
            and not window.contains(due)
        ):
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
        self.submitting = chunk  # until submit returns, no request carries it (see abort)
        self.dispatcher.submit(chunk, pages)
        self.submitting = []

    def finish(self) -> None:
        self._flush_chunk()
        if self.dispatcher is not None:
            self.dispatcher.drain()
        if self.unrecorded:
            self.run.journal.record(self.unrecorded)
            self.unrecorded = []
        if self.stopped is None and self.stop.is_set() and self.unsent_by_stop:  # rows were left
            self.stopped = Interrupted(
                "interrupted: the requests in flight finished and were recorded; the rest are "
                "`pending`. Fix: rerun the same command to continue."
            )
        self._flush_report()  # rows settled in the last partial chunk count too

    def abort(self) -> None:
        """After an unexpected error: start nothing, keep the answers on their way; rows no
        request carried are `pending`, rows still in flight `unknown`."""
        unposted = Outcome(Status.PENDING, "not sent: the run stopped with an error")
        if self.dispatcher is not None:
            self.stop.set()  # a chunk waiting to retry gives up instead
            for m in self.dispatcher.halt():  # queued: no request carried them
                self.inflight.pop(m.row).settle(unposted)
                self.unrecorded.append((m.number, unposted))
            # Requests posting end within provider.timeout: recorded now, not `unknown` next run.
            with contextlib.suppress(Exception):  # e.g. the report cannot be written
                self.dispatcher.drain()
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
        if self.unrecorded:  # if the journal itself failed, its rows are `unknown` next run
            with contextlib.suppress(PipelineError):
                self.run.journal.record(self.unrecorded)
            self.unrecorded = []

    def before_post(self, messages: Sequence[Message]) -> None:
        self.posted = True  # the answers gathered since the last request share this transaction
        self.run.journal.mark_inflight([(m.number, m.text) for m in messages], self.unrecorded)
        self.unrecorded = []

    def after_answer(self, messages: Sequence[Message], result: ChunkResult) -> None:
        recorded, blacklisted = [], []
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
                and not self.run.config.provider.sandbox  # sandbox verdicts are not real
                and not self.run.options.test_to  # the operator's own number, typed by hand
            ):
                why = f"Mobile_Invalid (invalid or blacklisted), {self.run.config.campaign}"
                blacklisted.append((m.number, why))
        self.unrecorded.extend(recorded)
        self._suppress(blacklisted)
        self.page_mismatches += result.page_mismatches
        if self.run.detail is not None:
            tally = Counter(outcome.status.value for _, outcome in recorded)
            counts = ", ".join(f"{n} {status}" for status, n in sorted(tally.items()))
            self.run.detail(f"rows {messages[0].row}-{messages[-1].row}: {counts}")
        if self.stopped is None and (result.internal or result.stop) is not None:
            self.stopped = result.internal or result.stop
            self.stop.set()
            if result.stop is not None and result.internal is None:
                # Only its title: the whole text is the run's final `error:` line, once.
                self.run.log(
                    f"stopping: {result.stop.title}: the requests in flight finish and are "
                    "recorded (the error follows the summary)"
                )
        self._flush_report()

    def _suppress(self, numbers: list[tuple[str, str]]) -> None:
        if not numbers or not self.run.config.suppression.add_blacklisted:
            return
        if self.suppression is None or self.suppression.path is None:
            if not self.run.config.provider.sandbox:  # the sandbox's are never kept
                self.blacklisted_unlisted += len(numbers)
            return
        try:
            self.suppressed_added += self.suppression.add(numbers, moment=self.run.clock())
        except PipelineError as exc:  # a list we cannot write must not stop a run mid-way
            self.blacklisted_unlisted += len(numbers)
            self.run.log(f"warning: {exc}")

    def _priced(self, row: Row) -> None:
        if self.account is None:
            return
        price = self.prices.get(row.encoding)
        if price is None:  # once per encoding, not per message
            price = self.prices[row.encoding] = self.account.page_price(
                self.run.config.provider.tariff, row.encoding
            )
        self.cost += row.pages * price

    def _why_stopped(self) -> str:
        if isinstance(self.stopped, ProviderFatal):
            return f"not sent: the run stopped on {self.stopped.title}"
        if isinstance(self.stopped, InternalFailure):
            return "not sent: the run stopped on an internal error"
        return "not sent: the run was interrupted"
