"""What the operator is told when the sending pass fails: where, what is kept, the fix."""

from __future__ import annotations

from pipeline.errors import DiskTrouble, PipelineError, ReportUnwritable, StoppedMidRun
from pipeline.report import ReportWriter


def report_failed(error: OSError, *, posted: bool, stopped: bool) -> PipelineError:
    """The report could not be put in place; `stopped`: rows were left `pending` by a stop."""
    if not posted:  # the run stopped before its first request
        return report_trouble(error)
    if stopped:
        happened = (
            "The run stopped: the requests in flight finished and their answers are in the "
            "journal; the rows not sent are `pending`."
        )
        rerun = "it continues where it stopped and writes a whole report"
    else:
        happened = "Every answer is in the journal."
        rerun = "it sends nothing twice and writes the whole report"
    return ReportUnwritable(
        f"{described(error)}: the report cannot be written (the unfinished files were "
        f"removed). {happened} Fix: free space on that disk (or fix what the error says), "
        f"then rerun the same command: {rerun}."
    )


def report_trouble(exc: OSError) -> DiskTrouble:
    return DiskTrouble(
        f"report.path: cannot write {described(exc)}. Free space on that disk, make the "
        "folder writable by this user, or point report.path somewhere else"
    )


def described(exc: BaseException) -> str:
    """A PipelineError's own message; an OSError as `path: what went wrong`."""
    if isinstance(exc, OSError) and not isinstance(exc, PipelineError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return str(exc)


def stopped_mid_run(exc: PipelineError | OSError, report: ReportWriter) -> StoppedMidRun:
    report.close(complete=False)  # the rows known so far, before saying where they are
    kept = (
        f"The rows read so far are in {report.partial_path}."
        if report.error is None
        else f"The report could not be written either ({described(report.error)})."
    )
    return StoppedMidRun(
        f"{described(exc)}\nThe run stopped after sending had started. The journal keeps what "
        "was sent; rows whose request may have gone out are `unknown`. "
        f"{kept} Fix the cause, then rerun the same command: it continues where it stopped "
        "(and writes a whole report)."
    )
