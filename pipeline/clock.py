"""Tehran time, whatever the machine's time zone (cron on a VPS usually runs in UTC)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

# Iran has had no DST since 2022 (tzdata >= 2022b, pinned in pyproject): a fixed UTC+03:30.
TEHRAN = ZoneInfo("Asia/Tehran")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)  # aware, so it converts correctly to any zone


def tehran(moment: datetime) -> datetime:
    return moment.astimezone(TEHRAN)


def send_datetime(moment: datetime) -> str:
    """`SendDateTime` as AmootSMS reads it: naive `yyyy-MM-dd HH:mm:ss` in Tehran time."""
    return tehran(moment).strftime("%Y-%m-%d %H:%M:%S")


def log_stamp(moment: datetime) -> str:
    """The prefix of a line on stderr without a terminal (cron's mail, a log file): when, in
    Tehran, as an operator reads it: `YYYY-MM-DD HH:MM:SS `."""
    return tehran(moment).strftime("%Y-%m-%d %H:%M:%S ")
