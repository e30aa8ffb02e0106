"""When a request may start: one pace for all workers (a rate limit, a shared pause after
429/503), and one at a time after an ambiguous answer, STORM in a row stopping the run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pipeline import amoot
from pipeline.amoot import Kind
from pipeline.errors import AmbiguousStorm
from pipeline.models import Status

STORM = 3  # ambiguous answers in a row that stop the run (see Doubt)
DOUBT_CHECK = 0.2  # seconds between two looks at a stop, for a request waiting for its turn


class Doubt:
    """Ambiguous answers in a row to one Sender's requests, over all its threads. One happens (a
    closed keep-alive); several mean the provider is broken, so after one, requests go one at a
    time, and STORM stop the run: one dropping every answer costs max(concurrency, STORM)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._posting = 0  # requests between their turn and their answer
        self._in_a_row = 0

    @contextmanager
    def turn(self, *, give_up: Callable[[], bool]) -> Iterator[Callable[[bool], int]]:
        """Wait until a request may start (or `give_up()`, looked at every DOUBT_CHECK); yields
        `answered(ambiguous)`, which counts the answer and returns how many are in a row."""
        with self._changed:
            while not (give_up() or not (self._in_a_row and self._posting)):
                self._changed.wait(DOUBT_CHECK)
            self._posting += 1
        try:
            yield self._answered
        finally:
            with self._changed:
                self._posting -= 1
                self._changed.notify_all()

    def _answered(self, ambiguous: bool) -> int:
        with self._changed:
            self._in_a_row = self._in_a_row + 1 if ambiguous else 0
            return self._in_a_row


def in_doubt(reply: amoot.SendReply) -> bool:
    """An answer that leaves every row of its request `unknown`."""
    if reply.kind is Kind.SUCCESS:
        return all(o.status is Status.UNKNOWN for o in reply.outcomes.values())
    return reply.kind is Kind.AMBIGUOUS


def storm_stop(reply: amoot.SendReply) -> AmbiguousStorm:
    last = "a Success naming none of its numbers" if reply.kind is Kind.SUCCESS else reply.title
    return AmbiguousStorm(
        f"{STORM} ambiguous answers in a row",
        f"the provider gave no clear answer to {STORM} requests in a row (the last: {last}); "
        "the run stopped rather than leave more rows `unknown`. The rows of those requests, "
        "and of any others already on their way, are `unknown`: they may have gone out; the "
        "rest are `pending`. Fix: check the `unknown` rows in the AmootSMS panel (reports), "
        "then leave them or rerun with --resend-unknown; rerun the same command later for the "
        "`pending` rows (cron will): it never resends the `unknown` ones by itself.",
    )


class Throttle:
    """Spaces request starts 1/rate apart; `pause` (a 429 or 503) holds every worker back.
    `sleep` returns True when the run is asked to stop: a waiting worker wakes on Ctrl-C."""

    def __init__(self, rate_limit: float | None, *, sleep: Callable[[float], bool]) -> None:
        self._interval = 1.0 / rate_limit if rate_limit else 0.0
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_start = self._paused_until = 0.0

    def acquire(self) -> bool:
        """Wait for this worker's turn to post; False when the run is stopping instead."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start, self._paused_until)
            self._next_start = start + self._interval
        delay = start - now
        return delay <= 0 or not self._sleep(delay)

    def pause(self, seconds: float) -> None:
        """Hold every worker back for `seconds` from now (a 429 / 503 / Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
