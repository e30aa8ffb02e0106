"""`status CONFIG`: what the journal knows of one campaign, read only: nothing made or changed."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.campaign import journal_key
from pipeline.clock import tehran
from pipeline.config import Config
from pipeline.deliveries import FINAL_DELIVERIES, Delivery
from pipeline.errors import InputError
from pipeline.journal import State, Summary, read_summary
from pipeline.lock import holder
from pipeline.suppression import load_suppression

SHOWN_UNKNOWN = 10  # unknown numbers listed in the text; --json lists them all
NOT_LOOKED_UP = "not_looked_up"  # sent rows with no delivery report yet (the journal's '')


@dataclass(frozen=True, slots=True)
class OptOut:
    """The opt-out list as status reports it: its size, or why it cannot be read."""

    path: Path
    numbers: int | None
    problem: str = ""


def status_command(config: Config, *, as_json: bool, out: Callable[[str], None]) -> int:
    """Print where the campaign stands; exit 0. Only the journal is needed (no contacts, no
    template); nothing is written, no lock taken: it works while a run is sending."""
    key = journal_key(config)
    path = config.journal.path
    summary = read_summary(path, key)
    running = holder(path, key)
    optout = _optout(config)
    empty = Summary(dict.fromkeys(State, 0), {}, None, [])
    shown = _shown(summary or empty, running, optout)
    if as_json:
        out(json.dumps(_as_json(config, summary or empty, running, optout), ensure_ascii=False))
        return 0
    lines = [f"campaign {config.campaign}" + (" (sandbox rows)" if config.provider.sandbox else "")]
    lines.append(f"journal: {path}")
    if summary is None:
        lines.append("no run of this campaign yet: the journal does not exist")
    lines += shown
    lines += _unknown_lines(config, (summary or empty).unknown)
    out("\n".join(lines))
    return 0


def _shown(summary: Summary, running: int | None, optout: OptOut | None) -> list[str]:
    counts = summary.counts
    lines = []
    if running is not None:
        lines.append("a run is in progress" + (f" (PID {running})" if running else ""))
    states = [State.SENT, State.FAILED, State.UNKNOWN, State.PENDING]
    lines += [f"  {state.value:<15}{counts[state]:>9,}" for state in states]
    if counts[State.INFLIGHT]:
        why = (
            "a run is in progress"
            if running is not None
            else "a run died with them in flight: its next run marks them unknown"
        )
        lines.append(f"  {'inflight':<15}{counts[State.INFLIGHT]:>9,}  ({why})")
    lines.append(f"  {'rows':<15}{sum(counts.values()):>9,}")
    deliveries = _deliveries(summary)
    if any(deliveries.values()):
        lines.append("deliveries (of the sent rows):")
        lines += [f"  {name:<15}{n:>9,}" for name, n in deliveries.items() if n]
        rate = _rate(deliveries)
        if rate is not None:
            lines.append(f"  {'rate':<15}{rate:>9.1%}  delivered, of those with a final state")
    if summary.last_update is not None:
        lines.append(f"last run: {_tehran(summary.last_update)} Tehran")
    if optout is None:
        lines.append("opt-out list: none (suppression.path: null)")
    elif optout.numbers is None:
        lines.append(f"opt-out list: {optout.problem}")
    else:
        missing = "" if optout.path.exists() else ", the file does not exist yet"
        plural = "number" if optout.numbers == 1 else "numbers"
        lines.append(f"opt-out list: {optout.path} ({optout.numbers:,} {plural}{missing})")
    return lines


def _unknown_lines(config: Config, unknown: list[str]) -> list[str]:
    if not unknown:
        return []
    listed = ", ".join(unknown[:SHOWN_UNKNOWN])
    more = f" and {len(unknown) - SHOWN_UNKNOWN:,} more" if len(unknown) > SHOWN_UNKNOWN else ""
    return [
        f"unknown: {listed}{more}",
        "  the provider may or may not have sent them. Check them in the AmootSMS panel, then:",
        f"  python -m pipeline settle {shlex.quote(str(config.source))} --as sent|unsent "
        "[--numbers FILE]",
    ]


def _as_json(
    config: Config, summary: Summary, running: int | None, optout: OptOut | None
) -> dict[str, object]:
    deliveries = _deliveries(summary)
    listed: dict[str, object] | None = None
    if optout is not None:
        listed = {"path": str(optout.path), "numbers": optout.numbers}
        if optout.problem:
            listed["problem"] = optout.problem
    return {
        "campaign": config.campaign,
        "sandbox": config.provider.sandbox,
        "journal": str(config.journal.path),
        "journal_exists": config.journal.path.exists(),
        "running": running is not None,
        "pid": running or None,
        "counts": {state.value: summary.counts[state] for state in State},
        "deliveries": deliveries,
        "delivery_rate": _rate(deliveries),
        "last_run": summary.last_update,
        "unknown_numbers": summary.unknown,
        "suppression": listed,
    }


def _deliveries(summary: Summary) -> dict[str, int]:
    """Every class, in the table's order, then the sent rows no report has classed yet."""
    found = summary.deliveries
    classes = {d.value: found.get(d.value, 0) for d in Delivery}
    return classes | {NOT_LOOKED_UP: found.get("", 0)}


def _rate(deliveries: dict[str, int]) -> float | None:
    """As `--deliveries` computes it: delivered / sent rows with a final class."""
    final = sum(deliveries[d.value] for d in FINAL_DELIVERIES)
    return deliveries[Delivery.DELIVERED.value] / final if final else None


def _optout(config: Config) -> OptOut | None:
    path = config.suppression.path
    if path is None:
        return None
    try:
        return OptOut(path, len(load_suppression(path, str(path)).numbers))
    except InputError as exc:  # the rest of the status is still worth seeing
        return OptOut(path, None, str(exc))


def _tehran(stamp: str) -> str:
    return tehran(datetime.fromisoformat(stamp)).strftime("%Y-%m-%d %H:%M")
