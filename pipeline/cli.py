"""The command line: parse argv, run, show progress and the summary, choose the exit code (the
only printer)."""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TextIO, cast

from pipeline import __version__, trial
from pipeline.clock import Clock, log_stamp, utc_now
from pipeline.commands import COMMANDS, LISTED, USAGE, run_command
from pipeline.config import load_config
from pipeline.deliveries import DeliveryReport
from pipeline.errors import PipelineError
from pipeline.models import RunOptions, Status
from pipeline.outcomes import Progress
from pipeline.progress import LogProgress, TerminalProgress
from pipeline.replies import replies_line
from pipeline.run import RunResult, run

EPILOG = f"""\
{LISTED}
  (`python -m pipeline COMMAND --help` for each)

exit codes:
  0  done (rows held back on purpose by --limit stay pending)
  2  config or input error found before anything was sent
  3  stopped early (fatal provider answer or interrupted); rerun the same command to continue
  4  another run of this campaign is in progress; this one did nothing
  5  finished, but some rows are `unknown`: check them in the panel, then `settle` them
     (or --resend-unknown)
"""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        usage=USAGE,
        description="Send one personalised Persian SMS per contact through AmootSMS.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", type=Path, help="the campaign's config.yaml")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="render and count pages for every row and write the report; send nothing",
    )
    mode.add_argument(
        "--test-to",
        type=trial.parse_test_to,
        default=(),
        metavar="0912...[,0912...]",
        help="send the first sendable rows' texts to these numbers only (one each, at most "
        f"{trial.MAX_NUMBERS}); the campaign's recipients get nothing, its rows are untouched",
    )
    mode.add_argument(
        "--deliveries",
        action="store_true",
        help="look up the delivery reports of this campaign's sent messages (sends nothing)",
    )
    parser.add_argument(
        "--limit", type=_positive, metavar="N", help="send at most N messages in this run"
    )
    parser.add_argument(
        "--resend-unknown",
        action="store_true",
        help="send again the rows whose earlier outcome is unknown (after checking the panel)",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="try again the rows the provider rejected in an earlier run",
    )
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print nothing when the run ends with exit 0 (cron mails any output); "
        "otherwise the summary and the error",
    )
    noise.add_argument(
        "-v", "--verbose", action="store_true", help="also print a line per answered request"
    )
    parser.add_argument("--version", action="version", version=f"pipeline {__version__}")
    return parser


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    # Until run() installs its clean-stop handler, SIGTERM and SIGHUP end like Ctrl-C (exit 3,
    # not a silent death); one ignored from the start (nohup) stays so.
    previous = {
        sig: signal.signal(sig, _interrupt)
        for sig in (signal.SIGTERM, signal.SIGHUP)
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    try:
        # A standard stream closed (`>&-`) would hand its descriptor to the next file the run
        # opens (the lock, the report), which would receive what is printed: /dev/null takes it.
        for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
            try:
                os.fstat(fd)
            except OSError:
                null = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: `fd` itself
                if null != fd:
                    os.dup2(null, fd)
                    os.close(null)
                if getattr(sys, name) is None:
                    setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115
        argv = sys.argv[1:] if argv is None else list(argv)
        if not sys.stderr.isatty():  # cron's mail, a log file: each line says when (Tehran)
            sys.stderr = cast("TextIO", Stamped(sys.stderr))  # a TextIO in all but its ABC
        if argv and argv[0] in COMMANDS:  # a config file named so: `./status`
            out, err = Output(sys.stdout), Output(sys.stderr)
            try:
                return run_command(argv, out=out.line, log=err.line)
            except BaseException as exc:  # _failure re-raises what it does not report
                return _failure(
                    exc,
                    err,
                    interrupted="interrupted: what was saved is kept; rerun the same command.",
                    unchanged="Nothing was changed.",
                )
        return _main(build_parser().parse_args(argv))
    finally:
        if isinstance(sys.stderr, Stamped):
            sys.stderr = sys.stderr.stream
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Stamped(io.TextIOBase):
    """stderr without a terminal: every line, each line of a multi-line message too, starts
    with the Tehran time (`YYYY-MM-DD HH:MM:SS `); argparse's and Python's own lines included."""

    def __init__(self, stream: TextIO, *, clock: Clock = utc_now) -> None:
        super().__init__()
        self.stream, self._clock = stream, clock
        self._fresh = True  # the next character starts a line

    def write(self, text: str) -> int:
        parts, pieces = [], text.split("\n")  # "a\nb\n": ["a", "b", ""]
        for n, piece in enumerate(pieces):
            last = n == len(pieces) - 1
            if last and not piece:  # the text ended with its newline
                break
            if self._fresh:
                parts.append(log_stamp(self._clock()))
            parts.append(piece if last else piece + "\n")
            self._fresh = not last
        self.stream.write("".join(parts))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


class Output:
    """stdout or stderr; once its reader is gone (`| head`, a hung-up ssh) writes are dropped."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.gone = False

    def write(self, text: str) -> None:
        if self.gone:
            return
        try:
            self._stream.write(text)
            self._stream.flush()
        except OSError:  # EPIPE from a closed pipe, EIO from a hung-up terminal
            self.gone = True
            # Its buffer is flushed again at exit: to /dev/null, not BrokenPipeError and exit 120.
            try:
                fd = self._stream.fileno()
            except (OSError, ValueError):  # a stream without a descriptor (a test's StringIO)
                return
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, fd)
            finally:
                os.close(devnull)

    def line(self, text: str) -> None:
        self.write(text + "\n")


def _main(args: argparse.Namespace) -> int:
    options = RunOptions(**{field.name: getattr(args, field.name) for field in fields(RunOptions)})
    out, err = Output(sys.stdout), Output(sys.stderr)
    held: list[str] = []  # -q: what the run said, shown only if it does not end with exit 0
    log = held.append if args.quiet else err.line
    detail = log if args.verbose else None
    progress: Progress | None = None
    if not args.quiet:  # a bar only where a person watches; cron (no terminal) gets plain lines
        on_terminal = sys.stdout.isatty() and sys.stderr.isatty()
        progress = TerminalProgress(err.write) if on_terminal else LogProgress(log)
    try:
        config = load_config(args.config)
        result = run(config, options, log=log, progress=progress, detail=detail)
    except BaseException as exc:  # _failure re-raises what it does not report
        _replay(held, err)
        return _failure(exc, err)
    if args.quiet and result.exit_code == 0:
        return 0  # cron mails any output: a run that did what it was asked says nothing
    _replay(held, err)
    out.line(summary(config.campaign, result, config=str(args.config)))
    if result.stopped is not None:
        err.line(f"error: {result.stopped}")
    return result.exit_code


def _replay(held: list[str], err: Output) -> None:
    for line in held:
        err.line(line)


STOPPED_EARLY = "interrupted before sending started: nothing was sent; rerun the same command."


def _failure(
    exc: BaseException,
    err: Output,
    *,
    interrupted: str = STOPPED_EARLY,
    unchanged: str | None = None,  # after an exit-2 error; None: the error's own line
) -> int:
    """Print a failure once and give its exit code (a bug: 1, with the traceback); anything
    else (SystemExit from argparse) goes on. Called in the `except` block: the traceback is live."""
    if isinstance(exc, PipelineError):
        err.line(f"error: {exc}")
        if exc.exit_code == 2:
            own = exc.unchanged != PipelineError.unchanged  # the error says it (init's undo)
            err.line(exc.unchanged if own or unchanged is None else unchanged)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        err.line(interrupted)
        return 3
    if not isinstance(exc, Exception):
        raise exc
    err.write(traceback.format_exc())
    err.line(
        "error: an unexpected internal error (a bug). The journal keeps what was sent; "
        "please report the traceback above."
    )
    return 1


def summary(campaign: str, result: RunResult, *, config: str = "CONFIG") -> str:
    where = "sandbox: nothing left this machine" if result.sandbox else "live"
    if result.dry_run:
        where = "dry run: nothing was sent"
    lines = []
    for row in result.preview:  # a dry run's first rows
        lines.append(f"row {row.row} -> {row.number}  ({row.pages} page(s), {row.encoding})")
        lines += [f"  | {line}" for line in row.text.splitlines()]
    if lines:
        lines.append("")
    lines.append(f"campaign {campaign} ({where})")
    lines += trial.summary_lines(result.tested)
    counts = result.counts
    lines += [f"  {status.value:<13}{counts[status]:>9,}" for status in Status if counts[status]]
    lines.append(f"  {'rows':<13}{sum(counts.values()):>9,}")
    pages = result.pages_total if result.dry_run else result.pages_sent
    scope = "would be sent" if result.dry_run else "sent in this run"
    lines.append(f"  {'pages':<13}{pages:>9,}  ({scope})")
    if result.cost_rials is not None:
        lines.append(f"  {'cost':<13}{result.cost_rials / 10:>9,.0f}  tomans, estimated ({scope})")
    elif result.unpriced:  # the dry run still did its work; only the price is missing
        lines.append(f"  cost unknown: {result.unpriced}")
    if result.credit_rials is not None and not result.sandbox:  # the sandbox's is make-believe
        lines.append(f"  {'credit':<13}{result.credit_rials / 10:>9,.0f}  tomans before this run")
    if result.replies is not None and (result.replies.read or result.replies.applied):
        lines.append(replies_line(result.replies))
    elif result.replies_unread:
        lines.append(f"  {'replies':<13}{'-':>9}  {result.replies_unread}")
    if result.deliveries is not None:
        lines += _delivery_lines(result.deliveries)
    lines.append(f"report: {result.report_path}")
    if result.summary_page is not None:
        lines.append(f"summary page: {result.summary_page}")
    if result.attention_path is not None:
        lines.append(f"needs attention: {result.attention_path}")
    lines.append(f"elapsed: {result.elapsed:.1f}s")
    lines += _next_steps(result, config)
    return "\n".join(lines)


def _delivery_lines(report: DeliveryReport) -> list[str]:
    """Where the sent messages stand (--deliveries)."""
    lines = [f"deliveries (looked up {report.checked:,} now):"]
    lines += [f"  {name:<13}{n:>9,}" for name, n in sorted(report.counts.items()) if n]
    if report.rate is not None:
        lines.append(f"  {'rate':<13}{report.rate:>9.1%}  delivered, of those with a final state")
    if report.still_open:
        lines.append(
            f"  {report.still_open:,} not final yet: run --deliveries again later (cron can)."
        )
    return lines


def _next_steps(result: RunResult, config: str) -> list[str]:
    if result.tested:  # a test's rows are not the campaign's: their next steps do not apply
        return []
    steps = []
    counts = result.counts
    if result.recovered:
        steps.append(
            f"note: {result.recovered} row(s) were in flight when an earlier run died; "
            "they are `unknown` (the provider may have sent them)."
        )
    if counts[Status.UNKNOWN]:
        steps.append(
            f"next: {counts[Status.UNKNOWN]} row(s) are `unknown`: the provider may or may not "
            "have sent them. Check them in the AmootSMS panel (reports), then settle them: "
            f"python -m pipeline settle {config} --as sent|unsent [--numbers FILE] "
            "(or rerun with --resend-unknown to send them all again)."
        )
    # A number this run put on the suppression list is `suppressed` next run: retrying it is
    # false advice. Only this run's Mobile_Invalid rows are added, each number once.
    listed = min(result.suppressed_added, counts[Status.FAILED])
    if retry := counts[Status.FAILED] - listed:
        which = " whose numbers are not on the suppression list" if listed else ""
        steps.append(
            f"next: {retry} row(s) `failed`{which} (see the error column); "
            "rerun with --retry-failed once fixed."
        )
    if result.held and result.deliveries is None:
        steps.append(f"held: {result.held}")
    if result.blacklisted_unlisted:
        steps.append(
            f"note: {result.blacklisted_unlisted} number(s) were rejected as invalid or "
            "blacklisted but are on no suppression list; set suppression.path to keep them out "
            "of the next campaigns (if it is set, the warning above says why it was not written)."
        )
    if result.deliveries is not None and result.deliveries.suppressed_added:
        steps.append(
            f"note: {result.deliveries.suppressed_added} blacklisted or wrong number(s) were "
            "added to the suppression list; the next campaigns skip them."
        )
    if result.suppressed_added:
        steps.append(
            f"note: {result.suppressed_added} `failed` row(s) (Mobile_Invalid: invalid or "
            "blacklisted) had their numbers added to the suppression list: from now on they "
            "are `suppressed`, in this campaign and the next ones (--retry-failed skips them)."
        )
    if counts[Status.PENDING] and result.stopped is None and not result.held:
        steps.append(
            f"next: {counts[Status.PENDING]} row(s) are `pending`; "
            "rerun the same command to send them."
        )
    if result.page_mismatches:
        steps.append(
            f"warning: for {result.page_mismatches} message(s) the provider counted a different "
            "number of pages than this tool; the cost may differ from the estimate."
        )
    return steps
