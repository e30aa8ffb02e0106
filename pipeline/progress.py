"""How far a run is: a one-line bar on a terminal, plain log lines for cron.

Our own, not rich's progress: one thread updates one line, which must degrade to plain log
lines that read well in cron's mail; rich would add a dependency and a display thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable

BAR_WIDTH = 24


def _rate_eta(done: int, total: int, elapsed: float) -> tuple[float, str]:
    rate = done / elapsed if elapsed > 0 else 0.0
    if rate <= 0 or done >= total:
        return rate, "0s"
    seconds = int((total - done) / rate)
    eta = f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
    return rate, eta


class TerminalProgress:
    """`[#########---------------]  1,200/10,000 rows  85 rows/s  ETA 1m43s`, redrawn in place
    by `write` (cli.Output's, which flushes), counting rows written to the report."""

    def __init__(
        self, write: Callable[[str], object], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._write = write
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
        self._write(f"\r[{bar}] {done:,}/{self._total:,} rows  {rate:,.0f} rows/s  ETA {eta}\x1b[K")
        self._drawn = True

    def finish(self) -> None:
        if self._drawn:
            self._write("\n")


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
        self._log(
            f"processed {done:,}/{self._total:,} rows ({100 * done // self._total}%), "
            f"{rate:,.0f} rows/s, ETA {eta}"
        )
