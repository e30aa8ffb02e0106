"""Wire the stages top to bottom: open, plan, check, send (or hold), report."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import httpx

from pipeline import schedule, trial
from pipeline.bounds import time_limit
from pipeline.campaign import Campaign, open_campaign, trial_key, trial_report_path
from pipeline.clock import Clock, utc_now
from pipeline.config import Config
from pipeline.deliveries import DeliveryReport, check_deliveries
from pipeline.dispatch import http_client
from pipeline.errors import InputError, PipelineError
from pipeline.inbox import (
    LIVE,
    SANDBOX,
    Receive,
    RepliesRead,
    honour_replies,
    reply_optouts,
    stopped_reading,
    warnings,
)
from pipeline.journal import Journal
from pipeline.lock import hold_cap_lock, hold_lock
from pipeline.models import Row, RunOptions, Status
from pipeline.outcomes import Log, Pass, Progress, settle_plan
from pipeline.plan import Spool, Verdict, check, make_plan
from pipeline.sandbox import shipped_sandbox
from pipeline.send import Sender, SenderSettings
from pipeline.suppression import load_suppression, locked
from pipeline.throttle import Throttle


@dataclass(frozen=True, slots=True)
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
    cost_rials: int | None = None  # sent in this run (dry run: would be sent)
    credit_rials: int | None = None
    unpriced: str = ""  # why a dry run's cost is unknown (AccountStatus failed)
    attention_path: Path | None = None
    held: str = ""  # why sendable rows were held back (outside the window), for the summary
    suppressed_added: int = 0
    blacklisted_unlisted: int = 0  # rejected numbers with no suppression.path to keep them in
    preview: list[Row] = field(default_factory=list)
    deliveries: DeliveryReport | None = None
    summary_page: Path | None = None  # the HTML summary beside the report
    replies: RepliesRead | None = None  # the line's new replies, read before the plan
    replies_unread: str = ""  # a dry run that did not read them (the read is destructive)
    tested: tuple[str, ...] = ()  # --test-to: the numbers messaged instead of the recipients

    @property
    def exit_code(self) -> int:
        unknown = 5 if self.counts[Status.UNKNOWN] else 0
        return self.stopped.exit_code if self.stopped is not None else unknown


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
    test = bool(options.test_to)
    if test:
        trial.check_options(options)
    campaign = open_campaign(config, clock)
    if test:  # sent now to the operator's own phones: the schedule is for the recipients
        path = trial_report_path(config, campaign.report_path)
        campaign = replace(campaign, report_path=path, timing=schedule.Decision("", send=True))
    timing = campaign.timing
    # time_limit: a row whose render runs away (time, memory) is `invalid`; the run goes on.
    with ExitStack() as stack, time_limit():
        stop = threading.Event()
        if not options.dry_run:
            # Before the journal, so still in place while it folds its WAL at the end (up to
            # busy_timeout): a SIGTERM then would say "nothing was sent" after a whole run.
            stack.enter_context(_stop_on_signals(stop))
            stack.enter_context(hold_lock(config.journal.path, campaign.journal_key))  # else exit 4
        # A test send reads the campaign's rows and journals its messages under a key of its own.
        readonly = options.dry_run or test
        journal = stack.enter_context(
            Journal.open(config.journal.path, campaign.journal_key, readonly=readonly)
        )
        written = journal
        if test:
            key = trial_key(config, clock())
            written = stack.enter_context(Journal.open(config.journal.path, key))
        # A live dry run too: it prices the plan with AccountStatus, which changes nothing.
        sender = open_sender(stack, config, transport, timing.send_at, stop, sleep, clock)
        deliveries = verdict = None
        if options.deliveries:  # its own flow: look up, then report the plan; nothing is sent
            assert sender is not None
            found = _look_up_deliveries(config, campaign, journal, sender, clock=clock, stop=stop)
            deliveries, verdict = found
        cap = config.suppression.frequency_cap
        sends = not (options.dry_run or test or options.deliveries)
        if cap is not None and sends:  # capped runs one after another; before the opt-outs
            # are read: the wait may be long, and they must be fresh when the plan starts.
            stack.enter_context(hold_cap_lock(config.journal.path, stop.wait, log))
        replies = _honour_opt_outs(config, options, campaign, journal, sender, clock, log)

        # A dry run spools in the temporary folder: it creates nothing beside the journal.
        spool = Spool(None if options.dry_run else config.journal.path.parent)
        stack.callback(spool.close)
        plan = make_plan(
            campaign.source, campaign.preparer, journal, options, spool, cap=cap, now=clock()
        )
        if test:
            tests = Spool(config.journal.path.parent)
            stack.callback(tests.close)
            plan = trial.pick(plan, options.test_to, tests)  # the preflight prices these only
        verdict = verdict or check(config, options, timing, plan, sender)
        if verdict.send and timing.reason:
            log(timing.reason)
        stage = Pass(config, options, written, sender, stop, clock, log, progress, detail)
        settled = settle_plan(campaign, plan, verdict, stage)

    report = settled.report
    return RunResult(
        report_path=campaign.report_path,
        counts=report.counts,
        pages_sent=report.pages_sent,
        # A dry run's: the plan's, --limit applied, as its cost (the report marks every row).
        pages_total=sum(plan.pages.values()) if options.dry_run else report.pages_total,
        elapsed=time.monotonic() - started,
        sandbox=config.provider.sandbox,
        dry_run=options.dry_run,
        recovered=journal.recovered,
        page_mismatches=settled.page_mismatches,
        stopped=settled.stopped,
        cost_rials=settled.cost if settled.priced and not options.deliveries else None,
        credit_rials=verdict.account.credit if verdict.account is not None else None,
        unpriced=verdict.unpriced,
        attention_path=report.attention_path,
        held=settled.hold if not timing.stale else "",
        suppressed_added=settled.suppressed_added,
        blacklisted_unlisted=settled.blacklisted_unlisted,
        preview=list(settled.preview),
        deliveries=deliveries,
        summary_page=settled.page,
        replies=replies,
        replies_unread=(
            f"the real run reads new replies first (or now: python -m pipeline replies "
            f"{config.source})"
            if options.dry_run and config.reads_replies
            else ""
        ),
        tested=options.test_to,
    )


def open_sender(  # noqa: PLR0917 - the run's own values in its order
    stack: ExitStack,
    config: Config,
    transport: httpx.BaseTransport | None,
    fixed: datetime | None,
    stop: threading.Event,
    sleep: Callable[[float], object] | None,
    clock: Clock,
) -> Sender:
    """The run's Sender and its HTTP client; the sandbox answers in-process (nothing leaves)."""
    provider = config.provider
    if transport is None and provider.sandbox:
        transport = httpx.MockTransport(shipped_sandbox(config.token).handle)
    client = stack.enter_context(http_client(provider.concurrency, provider.timeout, transport))
    settings = SenderSettings(
        provider.base_url, config.token, provider.line_number, provider.timeout,
        provider.max_attempts,
    )  # fmt: skip
    return Sender(
        client,
        settings,
        throttle=Throttle(provider.rate_limit, sleep=stop.wait),
        stop=stop,
        sleep=sleep or stop.wait,
        send_at=(lambda: fixed) if fixed is not None else clock,
    )


def _look_up_deliveries(
    config: Config,
    campaign: Campaign,
    journal: Journal,
    sender: Sender,
    *,
    clock: Clock,
    stop: threading.Event,
) -> tuple[DeliveryReport, Verdict]:
    """--deliveries: the delivery reports into the journal; the plan is then only reported."""
    # Sandbox verdicts are not real: they never touch the real suppression list.
    listed = None if config.provider.sandbox else campaign.suppression
    found = check_deliveries(
        journal, sender.get_deliveries, suppression=listed, clock=clock, stop=stop
    )
    held = "not sent: --deliveries only looks up delivery reports"
    return found, Verdict(False, held, found.stopped)


def _honour_opt_outs(  # noqa: PLR0917 - one caller, the run's own values in its order
    config: Config,
    options: RunOptions,
    campaign: Campaign,
    journal: Journal,
    sender: Sender | None,
    clock: Clock,
    log: Log,
) -> RepliesRead | None:
    """Before the plan: the line's new replies read and applied (not by a dry run: the
    provider hands each reply out once; nor a test send, whose campaign journal is read only),
    then the list read again and every opt-out reply the shared journal holds added, under
    the list's lock: a campaign beside this one may have listed an opt-out since open_campaign
    read the list (at 100,000 lines, 0.7 s), or applied one to its own list (or to none)."""
    replies = None
    if not options.dry_run and not options.test_to:
        reads = config.reads_replies and not options.deliveries
        receive = sender.receive_new_messages if reads and sender is not None else None
        replies = _honour_replies(config, campaign, journal, receive, clock=clock, log=log)
    listed = campaign.suppression
    with _list_locked(config, options):
        if listed.path is not None and not options.dry_run:
            again = load_suppression(listed.path, str(listed.path))
            listed.numbers.clear()
            listed.numbers.update(again.numbers)
        optouts = reply_optouts(journal, SANDBOX if config.provider.sandbox else LIVE)
    listed.numbers.update(optouts)
    listed.notes.update(optouts)
    return replies


def _list_locked(config: Config, options: RunOptions) -> AbstractContextManager[object]:
    """The opt-out list's lock, but for a dry run (which creates nothing) or no list; a lock
    that cannot be made (a read-only folder) only reads: the list is read, not changed."""
    path = config.suppression.path
    if path is None or options.dry_run:
        return nullcontext()
    stack = ExitStack()
    try:
        stack.enter_context(locked(path))
    except InputError:
        return nullcontext()
    return stack


def _honour_replies(
    config: Config,
    campaign: Campaign,
    journal: Journal,
    receive: Receive | None,
    *,
    clock: Clock,
    log: Log,
) -> RepliesRead:
    """The line's new replies (`receive`; None: only those kept earlier), honoured before the
    plan: whoever replied 11 since the last campaign is `suppressed` in this one. A failed read
    stops the run before anything is sent."""
    sandbox = config.provider.sandbox
    result = honour_replies(
        journal,
        receive,
        scope=SANDBOX if sandbox else LIVE,
        list_path=config.suppression.path,
        folder=campaign.report_path.parent,
        clock=clock,
    )
    for line in warnings(result):
        log(line)
    if result.stopped is not None:
        raise stopped_reading(
            result,
            "Nothing was sent: a run reads the line's new replies before it plans. Or set "
            "suppression.read_replies: false to send without reading them.",
        )
    return result  # the run reads the list again before it plans


# Ctrl-C; a cron timeout, a deploy, systemd; the terminal or the ssh session closed.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """A clean stop: in-flight requests finish and are recorded. A signal ignored when the run
    started stays ignored (`nohup` ignores SIGHUP, a shell script's `&` job SIGINT)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    previous = {
        sig: signal.signal(sig, lambda _signum, _frame: stop.set())
        for sig in STOP_SIGNALS
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
