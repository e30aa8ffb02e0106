"""How far a sending run is: a bar redrawn in place on a terminal, plain lines under cron.

Our own: rich's would add a dependency and a thread."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable

BAR_WIDTH = 24  # the most: a narrower terminal gets a shorter bar, then none
MIN_BAR = 5  # below this a bar says nothing; the numbers alone are shown
Seconds = Callable[[], float]  # a monotonic clock
Columns = Callable[[], int]  # the terminal's width now (it may be resized mid-run)


def terminal_columns() -> int:
    return shutil.get_terminal_size().columns


def _rate_eta(done: int, total: int, elapsed: float) -> tuple[float, str]:
    rate = done / elapsed if elapsed > 0 else 0.0
    if rate <= 0 or done >= total:
        return rate, "0s"
    seconds = int((total - done) / rate)
    eta = f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
    return rate, eta


class TerminalProgress:
    """`[#########---------------]  1,200/10,000 rows  85 rows/s  ETA 1m43s`, redrawn in place.

    The line always fits the terminal's width: a line one character too long wraps, and `\\r`
    then redraws only its second half, leaving a stack of stale lines."""

    def __init__(
        self,
        write: Callable[[str], object],
        *,
        clock: Seconds = time.monotonic,
        columns: Columns = terminal_columns,
    ) -> None:
        self._write, self._clock, self._columns = write, clock, columns
        self._total, self._started, self._drawn = 0, 0.0, False

    def start(self, total: int) -> None:
        self._total = total
        self._started = self._clock()
        if total:
            self.update(0)

    def update(self, done: int) -> None:
        if not self._total:
            return
        self._write(f"\r{self.line(done)}\x1b[K")
        self._drawn = True

    def line(self, done: int) -> str:
        """The text drawn for `done` rows: at most the terminal's width less one (the cursor)."""
        rate, eta = _rate_eta(done, self._total, self._clock() - self._started)
        text = f"{done:,}/{self._total:,} rows  {rate:,.0f} rows/s  ETA {eta}"
        room = max(self._columns() - 1, 1)
        width = min(BAR_WIDTH, room - len(text) - 3)  # "[", "] "
        if width < MIN_BAR:
            return text[:room]
        filled = width * done // self._total
        return f"[{'#' * filled}{'-' * (width - filled)}] {text}"

    def finish(self) -> None:
        if self._drawn:
            self._write("\n")


class LogProgress:
    """One plain line at most every `every` seconds (and at the end), for cron's mail."""

    def __init__(
        self, log: Callable[[str], None], *, every: float = 5.0, clock: Seconds = time.monotonic
    ) -> None:
        self._log, self._every, self._clock = log, every, clock
        self._total = self._done = 0
        self._started = self._last = 0.0

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
        self._log(
            f"processed {done:,}/{self._total:,} rows ({100 * done // self._total}%), "
            f"{rate:,.0f} rows/s, ETA {eta}"
        )
