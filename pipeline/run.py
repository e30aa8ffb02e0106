"""Wire the stages top to bottom: load, normalise, render, skip what is done, send, report."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from pipeline.clock import Clock, tehran, utc_now
from pipeline.config import Config
from pipeline.contacts import open_contacts
from pipeline.errors import Interrupted, PipelineError, ProviderFatal, TemplateError
from pipeline.journal import Entry, Journal, State
from pipeline.lock import hold_lock
from pipeline.models import Contact, InvalidNumber, Message, Outcome, Row, Status
from pipeline.phones import normalise_mobile
from pipeline.render import Renderer, RenderFailure
from pipeline.report import ReportWriter
from pipeline.sandbox import AmootSimulator
from pipeline.segments import count_pages
from pipeline.send import ChunkResult, Dispatcher, Sender, SenderSettings
from pipeline.throttle import Throttle


@dataclass(frozen=True, slots=True)
class RunOptions:
    dry_run: bool = False
    limit: int | None = None
    resend_unknown: bool = False
    retry_failed: bool = False


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
    notes: list[str] = field(default_factory=list)

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
) -> RunResult:
    """Run one campaign as the config says; raises only errors found before anything is sent."""
    started = time.monotonic()
    source = open_contacts(
        config.contacts.path,
        config.contacts.phone_column,
        shown_path=_shown(config, config.contacts.path),
    )
    renderer = _load_template(config)
    renderer.check_columns(source.columns)
    report_path = Path(
        config.report.path.format(
            campaign=config.campaign, started=tehran(clock()).strftime("%Y%m%d-%H%M%S")
        )
    )

    # Sandbox "sends" are journalled apart: switching the same campaign to live sending
    # must not find its numbers already sent.
    journal_key = f"sandbox:{config.campaign}" if config.provider.sandbox else config.campaign
    with ExitStack() as stack:
        if options.dry_run:
            journal = stack.enter_context(
                Journal.open(config.journal.path, journal_key, readonly=True)
            )
        else:
            stack.enter_context(hold_lock(config.journal.path))
            journal = stack.enter_context(Journal.open(config.journal.path, journal_key))
        stop = threading.Event()
        if not options.dry_run:
            stack.enter_context(_stop_on_signals(stop))
        report = stack.enter_context(ReportWriter(report_path))
        campaign = _Campaign(config, options, journal=journal, report=report, stop=stop, log=log)
        if not options.dry_run:
            client = stack.enter_context(_client(config, transport))
            throttle = Throttle(config.provider.rate_limit, sleep=stop.wait)
            sender = Sender(
                client,
                SenderSettings(
                    base_url=config.provider.base_url,
                    token=config.token,
                    line_number=config.provider.line_number,
                    timeout=config.provider.timeout,
                    max_attempts=config.provider.max_attempts,
                ),
                throttle=throttle,
                stop=stop,
                sleep=sleep or stop.wait,
                send_at=clock,
            )
            campaign.dispatcher = Dispatcher(
                sender,
                config.provider.concurrency,
                before_post=campaign.before_post,
                after_answer=campaign.after_answer,
            )
        for batch in source.batches:
            campaign.take(batch, renderer)
        campaign.finish()
        report.close()

    return RunResult(
        report_path=report_path,
        counts=report.counts,
        pages_sent=report.pages_sent,
        pages_total=report.pages_total,
        elapsed=time.monotonic() - started,
        sandbox=config.provider.sandbox,
        dry_run=options.dry_run,
        recovered=getattr(journal, "recovered", 0),
        page_mismatches=campaign.page_mismatches,
        stopped=campaign.stopped,
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
        self.dispatcher: Dispatcher | None = None
        self.seen: dict[str, int] = {}  # number -> first row that will get it
        self.queued = 0  # messages handed to the sender this run (for --limit)
        self.chunk: list[Message] = []
        self.chunk_pages: dict[int, int] = {}
        self.inflight: dict[int, Row] = {}
        self.stopped: PipelineError | None = None
        self.page_mismatches = 0
        self.chunks_done = 0

    # -- stages per batch -------------------------------------------------------------

    def take(self, batch: Sequence[Contact], renderer: Renderer) -> None:
        rows = [self._prepare(contact, renderer) for contact in batch]
        ready = [row for row in rows if row.status is None]
        entries = self.journal.lookup([row.number for row in ready]) if ready else {}
        for row in rows:
            self.report.add(row)
            if row.status is None:
                self._decide(row, entries.get(row.number))
        if self.dispatcher is not None:
            self.dispatcher.poll()
        self.report.flush_ready()

    def _prepare(self, contact: Contact, renderer: Renderer) -> Row:
        phone = contact.values.get(self.config.contacts.phone_column, "")
        row = Row(row=contact.row, phone=phone, values=contact.values)
        number = normalise_mobile(phone)
        if isinstance(number, InvalidNumber):
            row.status, row.error = Status.INVALID, number.reason
            return row
        row.number = number
        first = self.seen.get(number)
        if first is not None:
            row.status, row.error = Status.DUPLICATE, f"same number as row {first}"
            return row
        text = renderer.render(contact.values)
        if isinstance(text, RenderFailure):
            row.status, row.error = Status.INVALID, text.reason
            return row
        row.text = text
        row.pages = count_pages(text).pages
        self.seen[number] = row.row
        return row

    def _decide(self, row: Row, entry: Entry | None) -> None:
        """Skip what the journal says is done; send (or hold back) the rest."""
        opts = self.options
        if entry is not None and entry.state is State.SENT:
            row.settle(Outcome(Status.ALREADY_SENT, "", entry.message_id, entry.campaign_id))
            return
        if entry is not None and entry.state is State.FAILED and not opts.retry_failed:
            row.settle(Outcome(Status.FAILED, f"{entry.error} (in an earlier run; --retry-failed)"))
            return
        if (
            entry is not None
            and entry.state in (State.UNKNOWN, State.INFLIGHT)
            and not opts.resend_unknown
        ):
            row.settle(
                Outcome(Status.UNKNOWN, entry.error or "outcome unknown from an earlier run")
            )
            return
        if opts.dry_run:
            row.status = Status.DRY_RUN
            return
        if self.stopped is not None or self.stop.is_set():
            row.settle(Outcome(Status.PENDING, self._why_stopped()))
            return
        if opts.limit is not None and self.queued >= opts.limit:
            row.settle(Outcome(Status.PENDING, f"held back by --limit {opts.limit}"))
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
        if self.stopped is not None or self.stop.is_set():
            self._settle_all(chunk, Outcome(Status.PENDING, self._why_stopped()))
            return
        assert self.dispatcher is not None  # dry runs never queue messages
        self.dispatcher.submit(chunk, pages)

    def finish(self) -> None:
        self._flush_chunk()
        if self.dispatcher is not None:
            self.dispatcher.drain()
        if self.stopped is None and self.stop.is_set():
            self.stopped = Interrupted(
                "interrupted: the requests in flight finished and were recorded; the rest are "
                "`pending`. Fix: rerun the same command to continue."
            )

    # -- journal around each request (main thread only) ---------------------------------

    def before_post(self, messages: Sequence[Message]) -> None:
        self.journal.mark_inflight([(m.number, m.text) for m in messages])

    def after_answer(self, messages: Sequence[Message], result: ChunkResult) -> None:
        recorded = []
        for m in messages:
            outcome = result.outcomes.get(m.row) or Outcome(
                Status.UNKNOWN, "no outcome was recorded for this message"
            )
            row = self.inflight.pop(m.row)
            row.settle(outcome)
            row.attempts = result.attempts.get(m.row, 0)
            recorded.append((m.number, outcome))
        self.journal.record(recorded)
        self.page_mismatches += result.page_mismatches
        self.chunks_done += 1
        if result.stop is not None and self.stopped is None:
            self.stopped = result.stop
            self.stop.set()
            self.log(f"stopping: {result.stop}")
        self.report.flush_ready()

    def _settle_all(self, messages: Sequence[Message], outcome: Outcome) -> None:
        for m in messages:
            self.inflight.pop(m.row).settle(outcome)

    def _why_stopped(self) -> str:
        if isinstance(self.stopped, ProviderFatal):
            return f"not sent: the run stopped on {self.stopped.title}"
        return "not sent: the run was interrupted"


def _load_template(config: Config) -> Renderer:
    template = config.template
    if template.text is not None:
        return Renderer(template.text, name=f"{_shown(config, config.source)}: template.text")
    assert template.path is not None  # the config allows exactly one of path / text
    shown = _shown(config, template.path)
    try:
        source = template.path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TemplateError(
            f"{shown}: no such template file. Fix: check template.path in "
            f"{_shown(config, config.source)}."
        ) from None
    return Renderer(source, name=shown)


def _shown(config: Config, path: Path) -> str:
    """A path as the operator thinks of it: relative to the config's folder when inside it."""
    base = config.source.resolve().parent
    try:
        return str(path.resolve().relative_to(base))
    except ValueError:
        return str(path)


@contextmanager
def _client(config: Config, transport: httpx.BaseTransport | None) -> Iterator[httpx.Client]:
    """One client for the run; the sandbox answers in-process, so nothing leaves the machine."""
    if transport is None and config.provider.sandbox:
        simulator = AmootSimulator(token=config.token, blacklist_zeros=True)
        transport = httpx.MockTransport(simulator.handle)
    limits = httpx.Limits(
        max_connections=config.provider.concurrency,
        max_keepalive_connections=config.provider.concurrency,
        keepalive_expiry=5.0,  # shorter than servers' idle close: fewer "dropped" keep-alive races
    )
    with httpx.Client(
        transport=transport or httpx.HTTPTransport(retries=0, limits=limits),
        limits=limits,
        timeout=config.provider.timeout,
        follow_redirects=False,  # a redirect on a POST would resend it: never silently
    ) as client:
        yield client


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT / SIGTERM ask for a clean stop: in-flight requests finish and are recorded."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
