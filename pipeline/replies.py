"""`python -m pipeline replies CONFIG`: read the line's new replies, honour them, say what
was done (and the run's one summary line about them)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import ExitStack

import httpx

from pipeline.campaign import journal_key, report_folder, shown_path
from pipeline.clock import Clock, utc_now
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.inbox import (
    ALREADY_LISTED,
    BAD_NUMBER,
    LIVE,
    NO_LIST,
    NOT_LISTED,
    OPTIN_KEPT,
    SANDBOX,
    Applied,
    RepliesRead,
    honour_replies,
    stopped_reading,
    warnings,
)
from pipeline.journal import Journal
from pipeline.lock import hold_lock
from pipeline.reply_words import Word
from pipeline.run import open_sender
from pipeline.suppression import load_suppression

Log = Callable[[str], None]
_SHOWN_NUMBERS = 10  # numbers listed under a count line


def replies_command(
    config: Config,
    *,
    out: Log,
    log: Log,
    transport: httpx.BaseTransport | None = None,
    clock: Clock = utc_now,
) -> int:
    """Apply the replies kept earlier, read and apply the new ones, print what was done;
    a provider error while reading raises ProviderFatal (exit 3) once the rest is kept."""
    scope = SANDBOX if config.provider.sandbox else LIVE
    if scope == LIVE and config.provider.line_number.strip().lower() == "public":
        log(
            "note: provider.line_number is public: replies to the shared line do not reach "
            "this account (only a dedicated line's do); reading anyway."
        )
    with ExitStack() as stack:
        stack.enter_context(hold_lock(config.journal.path, journal_key(config)))  # else exit 4
        journal = stack.enter_context(Journal.open(config.journal.path, journal_key(config)))
        sender = open_sender(stack, config, transport, None, threading.Event(), None, clock)
        result = honour_replies(
            journal,
            sender.receive_new_messages,
            scope=scope,
            list_path=config.suppression.path,
            folder=report_folder(config, clock),
            clock=clock,
        )
    for line in warnings(result):
        log(line)
    for line in describe(config, result):
        out(line)
    if result.stopped is not None:
        raise stopped_reading(result)
    return 0


def describe(config: Config, result: RepliesRead) -> list[str]:
    """The command's report: counts, the numbers, where the CSV and the list are."""
    line = config.provider.line_number
    lines = [f"replies ({result.scope}, line {line}): {result.new} new"]
    if result.earlier:
        lines[0] += f" (and {result.earlier} read earlier, applied now)"
    out, in_, other = result.counts
    where = f"   read them in {shown_path(config, result.csv_path)}" if result.csv_path else ""
    for name, count, words in (
        ("opted out", out, (Word.OPT_OUT,)),
        ("opted in", in_, (Word.OPT_IN,)),
        ("other", other, (Word.OTHER, Word.MENTIONS_OPT_OUT)),
    ):
        if not count:
            continue
        lines.append(f"  {name:<15}{count:>3}{where if words[0] is Word.OTHER else ''}")
        if words[0] is not Word.OTHER:
            numbers = list(dict.fromkeys(_shown_number(a) for a in result.of(*words)))
            more = len(numbers) - _SHOWN_NUMBERS
            shown = ", ".join(numbers[:_SHOWN_NUMBERS])
            lines.append(f"    {shown}{f' and {more} more' if more > 0 else ''}")
        flagged = len(result.of(Word.MENTIONS_OPT_OUT))
        if words[0] is Word.OTHER and flagged:
            lines.append(
                f"    {flagged} of them mention{'s' if flagged == 1 else ''} an opt-out word "
                "(check_optout): read them, and list the number by hand if they meant it"
            )
    if result.csv_path and not other:
        lines.append(f"  listed in {shown_path(config, result.csv_path)}")
    lines.append(_list_line(config, result.scope))
    if result.more:
        lines.append("more replies may be waiting: run the same command again")
    return lines


def replies_line(result: RepliesRead) -> str:
    """The run summary's line about the replies it read before the plan."""
    out, in_, other = result.counts
    line = f"  {'replies':<13}{result.new:>9,}  new"
    if result.applied:
        line += f": {out} opted out, {in_} opted in, {other} other"
    if result.csv_path is not None:
        line += f" ({result.csv_path})"
    return line


# How a number under its count line is marked when the reply did not simply change the list.
_MARKS = {
    ALREADY_LISTED: " (already listed)",
    NO_LIST: " (on no list)",
    OPTIN_KEPT: " (kept: listed by hand)",
    NOT_LISTED: " (was not listed)",
}


def _shown_number(applied: Applied) -> str:
    if applied.action == BAD_NUMBER:
        return f"«{applied.reply.mobile}» (not a mobile number: act on it by hand)"
    if applied.reply.scope == SANDBOX:
        return f"{applied.reply.number} (sandbox)"
    return applied.reply.number + _MARKS.get(applied.action, "")


def _list_line(config: Config, scope: str) -> str:
    path = config.suppression.path
    if scope == SANDBOX:
        return "opt-out list: not used by the sandbox (sandbox runs skip its opted-out numbers)"
    if path is None:
        return "opt-out list: none (suppression.path: null)"
    try:
        count = len(load_suppression(path, str(path)).numbers)
    except PipelineError:  # unreadable: the next run names the line; the replies are applied
        return f"opt-out list: {path}"
    return f"opt-out list: {path} ({count:,} number{'' if count == 1 else 's'})"
