"""The frequency cap's lookup on a big journal: `python -m benchmarks.cap_lookup JOURNAL`.

Builds JOURNAL if missing (1,000,000 `sent` rows: 10 campaigns x 100,000 of 300,000 numbers,
campaign k sent 2k days ago), then times `Journal.sent_elsewhere` as a run of campaign-0 calls
it once (best of 3, wall and CPU), for a 7-day window (campaigns 1-3) and a 30-day one (all).
"""

from __future__ import annotations

import random
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline.config import FrequencyCap
from pipeline.journal import Journal
from pipeline.journal_file import migrate
from pipeline.plan import _over_cap

TEXT = "سلام علی عزیز، کد تخفیف شما C12345 است. تا پایان هفته فرصت دارید. لغو۱۱"


def _pool() -> list[str]:
    """The customers the campaigns send to (the same each time)."""
    rng = random.Random(0)
    return sorted({f"09{rng.randrange(10**9):09d}" for _ in range(300_000)})


def build(path: Path, now: datetime) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN")
    migrate(conn, path)
    rng = random.Random(1)
    pool = _pool()
    for c in range(10):
        rows = [
            (f"campaign-{c}", number, str(10**6 + i), str(c), TEXT,
             (now - timedelta(days=2 * c, seconds=i)).isoformat(timespec="milliseconds"))
            for i, number in enumerate(sorted(rng.sample(pool, 100_000)))
        ]  # fmt: skip
        conn.executemany(
            "INSERT INTO messages (campaign, number, state, message_id, campaign_id, text, "
            "attempts, updated_at) VALUES (?, ?, 'sent', ?, ?, ?, 1, ?)",
            rows,
        )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def main() -> None:
    path = Path(sys.argv[1])
    now = datetime.now(UTC)
    if not path.exists():
        build(path, now)
    rng = random.Random(2)
    # A million-row run: 300,000 of them customers the other campaigns may have sent to.
    contacts = [f"09{rng.randrange(10**9):09d}" for _ in range(700_000)]
    contacts += _pool()
    with Journal.open(path, "campaign-0", readonly=True) as journal:
        for days in (7, 30):
            best = (float("inf"), float("inf"))
            for _ in range(3):
                wall, cpu = time.perf_counter(), time.process_time()
                sent = journal.sent_elsewhere(now - timedelta(days=days))
                best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
            counted = sum(map(len, sent.values()))
            print(f"days {days:>2}: lookup of {counted:,} sends, {best[0]:.2f} s wall, "
                  f"{best[1]:.2f} s CPU")  # fmt: skip
            cap = FrequencyCap(messages=1, days=days)
            wall, cpu = time.perf_counter(), time.process_time()
            anyone = frozenset[str]().union(*sent.values())
            capped = sum(
                len(_over_cap(cap, sent, anyone.intersection(contacts[i : i + 1000])))
                for i in range(0, len(contacts), 1000)
            )
            took = time.perf_counter() - wall, time.process_time() - cpu
            print(f"  1,000,000 plan rows met in batches of 1,000: {capped:,} capped, "
                  f"{took[0]:.2f} s wall, {took[1]:.2f} s CPU")  # fmt: skip


if __name__ == "__main__":
    main()
