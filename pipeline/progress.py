"""How far a run is: a one-line bar on a terminal, plain log lines for cron.

Our own ~60 lines rather than rich's progress: the run updates from one thread, needs one
line, and must degrade to plain timestamp-free log lines that cron mails read well; rich
would add a dependency and a live-display thread for no gain here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

BAR_WIDTH = 24


class Stream(Protocol):
    """Where the bar is drawn: a terminal's stderr (through the CLI's cli.Output)."""

    def write(self, text: str, /) -> object: ...
    def flush(self) -> object: ...


def _rate_eta(done: int, total: int, elapsed: float) -> tuple[float, str]:
    rate = done / elapsed if elapsed > 0 else 0.0
    if rate <= 0 or done >= total:
        return rate, "0s"
    seconds = int((total - done) / rate)
    eta = f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
    return rate, eta


class TerminalProgress:
    """`[#########---------------]  1,200/10,000 rows  85 rows/s  ETA 1m43s`, redrawn in place.

    It counts rows written to the report (sent, skipped or refused alike), out of the rows
    the source holds, so the bar ends at the end of the report, not at the last request.
    """

    def __init__(self, stream: Stream, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock
        self._total = 0
        self._started = 0.0
        self._drawn = False

    def start(self, total: int) -> None:
        self._total = total
        self._started = self._clock()
        if total:
            self.update(0)

    def update(self, done: int) -> None:
        if not self._total:
            return
        rate, eta = _rate_eta(done, self._total, self._clock() - self._started)
        filled = BAR_WIDTH * done // self._total
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        line = f"[{bar}] {done:,}/{self._total:,} rows  {rate:,.0f} rows/s  ETA {eta}"
        self._stream.write(f"\r{line}\x1b[K")
        self._stream.flush()
        self._drawn = True

    def finish(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()


class LogProgress:
    """One plain line at most every `every` seconds (and at the end), for cron's mail."""

    def __init__(
        self,
        log: Callable[[str], None],
        *,
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._every = every
        self._clock = clock
        self._total = 0
        self._started = 0.0
        self._last = 0.0
        self._done = 0

    def start(self, total: int) -> None:
        self._total = total
        self._started = self._last = self._clock()
        if total:
            self._log(f"sending: {total:,} rows to go through")

    def update(self, done: int) -> None:
        if not self._total:  # not a sending run (dry run, held, refused): nothing to show
            return
        self._done = done
        now = self._clock()
        if now - self._last >= self._every:
            self._last = now
            self._line(done, now)

    def finish(self) -> None:
        if self._total and self._done:
            self._line(self._done, self._clock())

    def _line(self, done: int, now: float) -> None:
        rate, eta = _rate_eta(done, self._total, now - self._started)
        percent = 100 * done // self._total if self._total else 100
        self._log(
            f"processed {done:,}/{self._total:,} rows ({percent}%), {rate:,.0f} rows/s, ETA {eta}"
        )
