"""One pace for all workers: a request-rate limit and a shared pause after 429/503."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Throttle:
    """Spaces request starts at least 1/rate apart. A 429 or 503 means the provider is
    overrun, so `pause` holds every worker back. `sleep` returns True when the run is asked to
    stop, so a waiting worker wakes at once on Ctrl-C."""

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
