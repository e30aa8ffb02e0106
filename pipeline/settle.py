"""`settle CONFIG --as sent|unsent [--numbers FILE]`: the operator closes `unknown` rows."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from pipeline import suppression
from pipeline.campaign import journal_key
from pipeline.clock import Clock, tehran, utc_now
from pipeline.config import Config
from pipeline.errors import InputError, JournalError
from pipeline.journal import SETTLED_AS_SENT, Entry, Journal, State
from pipeline.lock import hold_lock

SHOWN_NUMBERS = 5  # settled numbers printed; the rest counted


def settle_command(
    config: Config,
    *,
    as_state: str,
    numbers: Path | None,
    out: Callable[[str], None],
    clock: Clock = utc_now,
) -> int:
    """Mark the campaign's `unknown` rows (all, or those in `numbers`) `sent` or `pending`."""
    wanted = read_numbers(numbers) if numbers is not None else None  # bad input: nothing locked
    path = config.journal.path
    if not path.exists():
        raise JournalError(
            f"no journal at {path}: this campaign has not run yet, so it has no unknown rows. "
            "Fix: check journal.path in the config (or $PIPELINE_STATE_DIR), or run the campaign."
        )
    moment = clock()
    stamp = f"on {tehran(moment).strftime('%Y-%m-%d %H:%M')} Tehran"
    key = journal_key(config)
    name = f"{config.campaign} (sandbox)" if config.provider.sandbox else config.campaign
    with _campaign_lock(config), Journal.open(path, key) as journal:  # recovers dead runs first
        if as_state == "sent":

            def error(old: str) -> str:
                before = f": {old}" if old else ""
                return f"{SETTLED_AS_SENT} {stamp} (after an unknown outcome{before})"

            # The time of the send attempt stays: the frequency cap counts it.
            settled, others = journal.settle_unknown(State.SENT, error, numbers=wanted)
        else:
            note = f"settled as unsent by the operator {stamp}"
            settled, others = journal.settle_unknown(
                State.PENDING, lambda _old: note, numbers=wanted, updated_at=moment
            )
    if others:
        out(f"not unknown in campaign {name}, left as they are: {_listed_others(others)}")
    if not settled:
        if wanted is None:
            out(f"no unknown rows in campaign {name}: nothing to settle")
        else:
            out(
                f"none of the {len(wanted)} number(s) in {numbers} is unknown in campaign "
                f"{name}: nothing to settle"
            )
        return 0
    out(f"settled {len(settled)} unknown row(s) of campaign {name} as {as_state}: {_few(settled)}")
    if as_state == "sent":
        out("they are never sent again: the next run reports them already_sent")
    else:
        out("they are pending: the next run sends them")
    return 0


def _campaign_lock(config: Config) -> AbstractContextManager[None]:
    """The lock a run of this campaign holds (exit 4 while one runs)."""
    return hold_lock(config.journal.path, journal_key(config))


def _few(numbers: list[str]) -> str:
    shown = ", ".join(numbers[:SHOWN_NUMBERS])
    more = len(numbers) - SHOWN_NUMBERS
    return f"{shown} and {more} more" if more > 0 else shown


def _listed_others(others: dict[str, Entry | None]) -> str:
    said = [
        f"{number} ({entry.state})" if entry is not None else f"{number} (not in the journal)"
        for number, entry in others.items()
    ]
    more = len(said) - 2 * SHOWN_NUMBERS
    return ", ".join(said[: 2 * SHOWN_NUMBERS]) + (f" and {more} more" if more > 0 else "")


def read_numbers(path: Path) -> list[str]:
    """The numbers of FILE, in order, once each: one per line in any format, as the suppression
    list reads them (`#` comments, a CSV header line). A line with none or two: InputError."""
    shown = str(path)
    fix_read = "Fix: check the path given to --numbers"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{shown}: no such file. {fix_read}.") from None
    except IsADirectoryError:
        raise InputError(f"{shown}: is a folder, not a file of numbers. {fix_read}.") from None
    except OSError as exc:
        raise InputError(
            f"{shown}: cannot be read ({exc.strerror or exc}). Fix: let this user read it "
            "(chmod u+r), or copy it to a readable file."
        ) from None
    except UnicodeDecodeError:
        raise InputError(
            f"{shown}: not UTF-8 text. Fix: save it as UTF-8, one number per line."
        ) from None
    found = suppression.read_numbers(text, shown)
    if not found:
        raise InputError(
            f"{shown}: no mobile number in the file. Fix: list the numbers to settle, one per "
            "line (such as 09121234567), or leave out --numbers to settle every unknown row."
        )
    return found
