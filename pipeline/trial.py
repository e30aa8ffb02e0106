"""The test send (--test-to): the first sendable rows' texts to the operator's own numbers."""

from __future__ import annotations

import argparse
import re
from collections import Counter
from itertools import cycle

from pipeline.errors import InputError
from pipeline.models import InvalidNumber, Row, RunOptions, Status
from pipeline.phones import normalise_mobile
from pipeline.plan import Plan, Spool

MAX_NUMBERS = 10  # a test goes to the operator's phones, not to a list: more is a mistake
_SEPARATORS = re.compile("[,،]")  # the Persian comma too, as a Persian keyboard types it
_EXAMPLE = "(--test-to 09121234567,09351234567)."


def parse_test_to(text: str) -> tuple[str, ...]:
    """--test-to's value (argparse's `type`): numbers in any form (09…, +98…, Persian digits),
    comma separated, as 09XXXXXXXXX. Refused (argparse: exit 2, the message shown) when one is
    not a mobile number, one is given twice, none is given or more than MAX_NUMBERS."""
    try:
        return _parsed(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} Nothing was sent.") from None


def _parsed(text: str) -> tuple[str, ...]:
    parts = [part.strip() for part in _SEPARATORS.split(text)]
    numbers: list[str] = []
    for part in filter(None, parts):  # `a,b,` is a slip, not a missing number
        number = normalise_mobile(part)
        if isinstance(number, InvalidNumber):
            raise ValueError(
                f"{part!r} is not a mobile number ({number.reason}). "
                f"Fix: give Iranian mobile numbers, comma separated {_EXAMPLE}"
            )
        if number in numbers:
            raise ValueError(
                f"{number} is given twice; each test number gets one message. "
                "Fix: give each number once."
            )
        numbers.append(number)
    if not numbers:
        raise ValueError(f"no number given. Fix: give one or more, comma separated {_EXAMPLE}")
    if len(numbers) > MAX_NUMBERS:
        raise ValueError(
            f"{len(numbers)} numbers; a test send goes to at most {MAX_NUMBERS} (the operator's "
            "own phones). Fix: give fewer, or send part of the campaign with --limit N."
        )
    return tuple(numbers)


def check_options(options: RunOptions) -> None:
    """Refuse flags a test send cannot honour (exit 2, nothing sent)."""
    if options.limit is not None:
        raise InputError(
            "--test-to sends one message per test number: --limit does not apply to it. "
            "Fix: drop --limit (test one number with --test-to 0912...)."
        )


def pick(plan: Plan, numbers: tuple[str, ...], spool: Spool) -> Plan:
    """The test messages, into `spool`: test number i gets the text (and pages) of the i-th row
    this run would send; the row keeps its own number in the report, the message goes to the
    test number. With fewer sendable rows than numbers the rows are used again in turn (every
    phone listed gets a message). InputError when no row is sendable: no text to test."""
    sendable: list[Row] = []
    left: Counter[Status] = Counter()
    for batch in plan.spool.batches():
        for row in batch:
            if row.status is not None:
                left[row.status] += 1
            elif len(sendable) < len(numbers):
                sendable.append(row)
        if len(sendable) == len(numbers):
            break  # the rest of the spool is not needed (a million rows: seconds)
    if not sendable:
        found = ", ".join(f"{n:,} {status}" for status, n in left.most_common()) or "no rows"
        raise InputError(
            f"--test-to: no row of the campaign is left to send ({found}), so there is no text "
            "to test. Fix: test before the campaign is sent, or see every row's text with "
            "--dry-run (a row already sent shows the text that went out)."
        )
    rows, pages = [], Counter[str]()
    for number, source in zip(numbers, cycle(sendable), strict=False):
        test = Row(source.row, number, number=number, text=source.text, pages=source.pages)
        test.encoding = source.encoding
        rows.append(test)
        pages[source.encoding] += source.pages
    spool.write(rows)
    return Plan(spool, len(rows), len(rows), pages)


def summary_lines(numbers: tuple[str, ...]) -> list[str]:
    """What the summary says of a test send (none for a run)."""
    if not numbers:
        return []
    n = len(numbers)
    plural = "s" if n > 1 else ""
    to = ", ".join(numbers)
    return [f"test send: {n} message{plural} to {to}; the campaign's recipients got nothing"]
