"""The report folder kept tidy: `<campaign>-latest.*` names the newest whole report, and only
the newest `report.keep` timestamped reports of the campaign stay (with their companions)."""

from __future__ import annotations

import errno
import glob
import os
import re
import shutil
import string
from collections.abc import Callable
from pathlib import Path

from pipeline.failures import described
from pipeline.private import open_private
from pipeline.report import ReportWriter, attention_file, xlsx_file
from pipeline.summary_page import RunFacts, page_path, write_page

_NO_LINK = frozenset({errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS})
STAMP = r"\d{8}-\d{6}"  # {started}, as campaign.py formats it: %Y%m%d-%H%M%S


def finish_files(
    report: ReportWriter,
    run: RunFacts,
    *,
    pattern: str,
    keep: int,
    kept: tuple[Path, ...],
    warn: Callable[[str], None],
    detail: Callable[[str], None] | None,
) -> Path | None:
    """After the report is in place: the page and the workbook beside it, the `-latest` names,
    then the old reports pruned. These are conveniences around the report (the contract's file):
    a failure here is a warning, the run's outcome stands. No file in `kept` (what the run reads
    or keeps: contacts, template, journal, ...) is written or deleted. Returns the page."""

    def safe(file: Path, what: str) -> bool:
        if not any(_same_file(file, other) for other in kept):
            return True
        warn(
            f"warning: {what} would overwrite {file}, a file this run reads or keeps; it was "
            "not written. Fix: give report.path a folder of its own, such as "
            "reports/{campaign}-{started}.csv"
        )
        return False

    written = [(report.path, report.path.suffix)]
    page: Path | None = page_path(report.path)
    assert page is not None
    try:
        if safe(page, "the summary page"):
            write_page(page, report.facts, run)
            written.append((page, ".html"))
        else:
            page = None
    except OSError as exc:
        page = None
        warn(f"warning: the summary page could not be written: {described(exc)}")
    if report.xlsx is not None and safe(report.xlsx.path, "the .xlsx report"):
        try:
            report.xlsx.finish(report.facts, run)
            written.append((report.xlsx.path, ".xlsx"))
        except OSError as exc:
            report.xlsx_error = exc
    if report.xlsx_error is not None:
        warn(f"warning: the .xlsx report could not be written: {described(report.xlsx_error)}")
    try:
        for file, suffix in written:
            latest = latest_file(report.path, run.campaign, suffix)
            if safe(latest, f"the newest report's name {latest.name}"):
                publish_latest(file, latest)
        for old in old_reports(pattern, run.campaign, report.path, keep):
            if any(_same_file(old, other) for other in kept):
                continue  # a file the run reads is never tidied away, whatever its name
            old.unlink(missing_ok=True)
            if detail is not None:
                detail(f"deleted an old report (report.keep: {keep}): {old}")
    except OSError as exc:
        warn(f"warning: the report folder could not be tidied: {described(exc)}")
    return page


def _same_file(a: Path, b: Path) -> bool:
    """The same file through symlinks and hard links; or the same place, if one is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def latest_file(report: Path, campaign: str, suffix: str) -> Path:
    """`<campaign>-latest<suffix>` in the report's folder."""
    return report.with_name(f"{campaign}-latest{suffix}")


def publish_latest(
    source: Path, latest: Path, *, link: Callable[[Path, Path], None] = os.link
) -> None:
    """Make `latest` the same content as `source`, in one rename: a reader sees the old whole
    file or the new whole file, never a half-written one. A hard link costs no space; where the
    filesystem has none (FAT, some network shares), a copy."""
    if latest.exists() and os.path.samefile(source, latest):
        return  # report.path names the latest file itself, or the link is already there
    temp = latest.with_name(f"{latest.name}.{os.getpid()}.partial")
    temp.unlink(missing_ok=True)
    try:
        try:
            link(source, temp)
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            with source.open("rb") as src, open_private(temp, "wb") as dst:  # as private as it
                shutil.copyfileobj(src, dst)
        os.replace(temp, latest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def old_reports(pattern: str, campaign: str, current: Path, keep: int) -> list[Path]:
    """The timestamped reports of `campaign` past the `keep` newest (the current one always
    stays), with their companions that exist: only files `pattern` (report.path) could have
    written; none when it has no {started} (every run writes the same file)."""
    fields = [name for _text, name, _spec, _conv in string.Formatter().parse(pattern)]
    if "started" not in fields:
        return []
    matcher, wildcard = _pattern(pattern, campaign)
    found: list[tuple[str, Path]] = []
    for name in glob.glob(wildcard):
        match = matcher.fullmatch(name)
        if match is not None and os.path.isfile(name):
            found.append((match["started"], Path(name)))
    found.sort(reverse=True)  # the stamp sorts as the time it names
    current_name = os.path.abspath(current)
    doomed = [path for _stamp, path in found[keep:] if os.path.abspath(path) != current_name]
    return [file for path in doomed for file in companions(path) if file.exists()]


def companions(report: Path) -> list[Path]:
    """A report and the files a run writes beside it."""
    return [report, attention_file(report), page_path(report), xlsx_file(report)]


def _pattern(pattern: str, campaign: str) -> tuple[re.Pattern[str], str]:
    """report.path as a regex (the stamp captured once, the same everywhere) and a glob."""
    regex, wildcard, seen = [], [], False
    for text, name, _spec, _conv in string.Formatter().parse(pattern):
        regex.append(re.escape(text))
        wildcard.append(glob.escape(text))
        if name == "campaign":
            regex.append(re.escape(campaign))
            wildcard.append(glob.escape(campaign))
        elif name == "started":
            regex.append("(?P=started)" if seen else f"(?P<started>{STAMP})")
            wildcard.append("[0-9]" * 8 + "-" + "[0-9]" * 6)
            seen = True
    return re.compile("".join(regex)), "".join(wildcard)
