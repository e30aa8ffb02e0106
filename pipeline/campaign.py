"""Open a campaign: the report's path, the contacts, the templates, the opt-out list, timing."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline import schedule
from pipeline.clock import Clock, tehran
from pipeline.config import Config
from pipeline.errors import ConfigError, TemplateError
from pipeline.journal import TEST_KEY
from pipeline.lock import cap_lock_path, lock_path, shared_lock_path
from pipeline.persian import FILTERS, template_globals
from pipeline.prepare import Preparer, Templates, read_template
from pipeline.render import Renderer
from pipeline.report import attention_file
from pipeline.sources import ContactSource, open_contacts, open_sql
from pipeline.suppression import Suppression, list_lock, load_suppression


@dataclass(frozen=True, slots=True)
class Campaign:
    """Everything a run reads before its first row, checked (exit 2 where it cannot be used)."""

    report_path: Path
    source: ContactSource
    preparer: Preparer
    suppression: Suppression  # path None: no list, only the journal's opt-out replies
    timing: schedule.Decision
    # Sandbox "sends" are journalled apart: going live must not find its numbers already sent.
    journal_key: str


def open_campaign(config: Config, clock: Clock) -> Campaign:
    report_path = _report_path(config, clock)
    source = _open_source(config)
    templates = _templates(config, source.columns, clock, report_path)
    path = config.suppression.path
    suppression = load_suppression(path, _shown(config, path)) if path is not None else None
    if suppression is None:  # no list: the journal's opt-out replies are still honoured
        suppression = Suppression(None, set())
    preparer = Preparer(
        phone_column=config.contacts.phone_column,
        templates=templates,
        footer=config.template.optout_footer,
        max_pages=config.template.max_pages,
        suppression=suppression,
        normalise=config.contacts.normalise_text,
    )
    settings = config.schedule
    timing = schedule.decide(
        clock(),
        send_at=schedule.parse_send_at(settings.send_at),
        window=schedule.parse_window(settings.window) if settings.window else None,
        max_lateness=(
            schedule.parse_duration(settings.max_lateness) if settings.max_lateness else None
        ),
        outside_window=settings.outside_window,
    )
    return Campaign(report_path, source, preparer, suppression, timing, journal_key(config))


def journal_key(config: Config) -> str:
    """The campaign's name in the journal (and its lock's): sandbox rows are kept apart."""
    return f"sandbox:{config.campaign}" if config.provider.sandbox else config.campaign


def trial_key(config: Config, moment: datetime) -> str:
    """The journal key of one test send (--test-to), kept apart from the campaign's own rows: a
    test never makes a row `already_sent` and never counts for the frequency cap. A new key
    each test send (its start, and a random tail for two in one second), so the same number can
    be tested again, while every test message is still journalled around its request."""
    sandbox = "sandbox:" if config.provider.sandbox else ""
    stamp = tehran(moment).strftime("%Y%m%d-%H%M%S")
    return f"{sandbox}{TEST_KEY}{config.campaign}@{stamp}-{secrets.token_hex(3)}"


def trial_report_path(config: Config, report_path: Path) -> Path:
    """A test send's report, `<report>.test.csv` beside the campaign's: the campaign's report
    (and its `-latest`) keeps telling the campaign's story. Exit 2 where it is a kept file."""
    path = report_path.with_name(f"{report_path.stem}.test{report_path.suffix}")
    if path.is_dir():
        raise ConfigError(
            f"{_shown(config, config.source)}: report.path: a test send's report {path} is a "
            "folder. Fix: rename that folder, or give report.path another name."
        )
    for other, name in kept_files(config):
        if _same_file(path, other):
            raise ConfigError(
                f"{_shown(config, config.source)}: report.path: a test send's report would be "
                f"{path}, which is {name}. Fix: give the report a file of its own, such as "
                "reports/{campaign}-{started}.csv."
            )
    return path


def kept_files(config: Config) -> list[tuple[Path, str]]:
    """The files a run reads or keeps, each named as a message names it: no report or
    companion of the report may be written over one of them."""
    journal = config.journal.path
    read = (
        (config.contacts.path, "the contacts file (contacts.path)"),
        (config.suppression.path, "the suppression list (suppression.path)"),
        (config.template.path, "the template (template.path)"),
    )
    return [
        (config.source, "the config file itself"),
        (journal, "the journal (journal.path)"),
        (lock_path(journal, journal_key(config)), "the campaign's lock file"),
        (shared_lock_path(journal), "the journal's lock file"),
        (cap_lock_path(journal), "the journal's frequency-cap lock file"),
        *((journal.with_name(journal.name + end), "a file of the journal") for end in _SQLITE),
        *((file, name) for file, name in read if file is not None),
        *(
            [(list_lock(config.suppression.path), "the suppression list's lock file")]
            if config.suppression.path is not None
            else []
        ),
    ]


def report_folder(config: Config, clock: Clock) -> Path:
    """The folder this moment's report goes to (report.path may name one per run)."""
    stamp = tehran(clock()).strftime("%Y%m%d-%H%M%S")
    return Path(config.report.path.format(campaign=config.campaign, started=stamp)).parent


def _report_path(config: Config, clock: Clock) -> Path:
    """This run's report file; exit 2 for a folder or a file the run reads or keeps."""
    stamp = tehran(clock()).strftime("%Y%m%d-%H%M%S")
    path = Path(config.report.path.format(campaign=config.campaign, started=stamp))
    base = config.source.resolve().parent

    def shown(written: Path) -> str:  # as configured: a symlink is named, not its target
        return str(written.relative_to(base)) if written.is_relative_to(base) else str(written)

    kept = kept_files(config)
    where = f"{_shown(config, config.source)}: report.path: {shown(path)}"
    fix = "Fix: give the report a file of its own, such as reports/{campaign}-{started}.csv"
    attention = attention_file(path)
    for written, said, fixed in (
        (path, where, fix),
        (
            attention,
            f"{where} puts the rows that need attention in {shown(attention)}, which",
            f"{fix} (to read an attention file back in, rename it first)",
        ),
    ):
        if written.is_dir():
            raise ConfigError(f"{said} is a folder. {fixed}.")
        for other, name in kept:
            if _same_file(written, other):
                raise ConfigError(f"{said} is {name}: the run would overwrite it. {fixed}.")
    return path


_SQLITE = ("-wal", "-shm", "-journal")  # the files SQLite keeps beside a database


def _same_file(a: Path, b: Path) -> bool:
    """The same file, through symlinks and hard links; or the same place, if one is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # not there (yet): where it would be, symlinked folders resolved
        return a.resolve() == b.resolve()


def _open_source(config: Config) -> ContactSource:
    contacts = config.contacts
    if contacts.path is None:
        assert contacts.query is not None and contacts.url is not None
        return open_sql(contacts.url, contacts.query, contacts.phone_column)
    return open_contacts(
        contacts.path,
        contacts.phone_column,
        shown_path=_shown(config, contacts.path),
        sheet=contacts.sheet,
        header_row=contacts.header_row,
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


def shown_path(config: Config, path: Path) -> str:
    return _shown(config, path)


def _shown(config: Config, path: Path) -> str:
    """A path as the operator thinks of it: relative to the config's folder when inside it."""
    base = config.source.resolve().parent
    try:
        return str(path.resolve().relative_to(base))
    except ValueError:
        return str(path)
