"""When a campaign may be posted: send time, daily send window and lateness, in Tehran time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Literal

import jdatetime  # ships no type information

from pipeline.clock import TEHRAN, tehran
from pipeline.persian import en_digits, gregorian_date

OutsideWindow = Literal["wait", "schedule"]

_MIDNIGHT = time(0, 0)

# Operators paste windows from chat and documents, where the hyphen is often a dash or minus.
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2212", "-"))
_WINDOW = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})", re.ASCII)
_SEND_AT = re.compile(
    r"(?P<y>\d{4})[-/](?P<m>\d{1,2})[-/](?P<d>\d{1,2})"
    r"(?:(?:T|\s+)(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,6}))?)?)?"
    r"\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?",
    re.ASCII | re.IGNORECASE,
)
_DURATION = re.compile(
    r"(?:(?P<d>\d+)\s*d)?\s*(?:(?P<h>\d+)\s*h)?\s*(?:(?P<m>\d+)\s*m)?\s*(?:(?P<s>\d+)\s*s)?",
    re.ASCII | re.IGNORECASE,
)
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


@dataclass(frozen=True, slots=True)
class Window:
    """A daily window on Tehran's clock, ``end`` exclusive; an earlier ``end`` wraps midnight."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("a send window is Tehran wall-clock time: give naive times")
        if self.start == self.end:
            raise ValueError(
                f"the send window {self} is empty: it starts and ends at the same time"
            )

    def contains(self, moment: datetime) -> bool:
        local = _tehran_time(moment, "Window.contains").time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_open(self, moment: datetime) -> datetime:
        """``moment`` itself (on Tehran's clock) when inside, else the window's next opening."""
        local = _tehran_time(moment, "Window.next_open")
        if self.contains(local):
            return local
        day = local.date() if local.time() < self.start else local.date() + timedelta(days=1)
        return datetime.combine(day, self.start, tzinfo=TEHRAN)

    def __str__(self) -> str:
        end = "24:00" if self.end == _MIDNIGHT else _clock(self.end)
        return f"{_clock(self.start)}-{end}"


@dataclass(frozen=True, slots=True)
class Decision:
    """What a run may do now: nothing unless ``send``; ``reason`` is empty when sending now."""

    reason: str  # a sentence for the operator
    send: bool = False
    send_at: datetime | None = None  # SendDateTime, on Tehran's clock; None: deliver on arrival
    stale: bool = False  # refused: delivery would come later than send_at + max_lateness


def parse_window(text: str) -> Window:
    """A send window from ``HH:MM-HH:MM`` (Tehran time, any digits); ``24:00`` ends at midnight."""
    cleaned = en_digits(text).translate(_DASHES).strip()
    match = _WINDOW.fullmatch(cleaned)
    if match is None:
        raise ValueError(
            f"{text!r} is not a send window; write it as HH:MM-HH:MM in Tehran time, "
            "e.g. 08:00-21:00"
        )
    start = _time_of_day(int(match[1]), int(match[2]), text, end=False)
    end = _time_of_day(int(match[3]), int(match[4]), text, end=True)
    if start == end:
        if (int(match[3]), int(match[4])) == (24, 0):
            raise ValueError(
                f"{text!r} is the whole day; leave the send window out to send at any hour"
            )
        raise ValueError(
            f"{text!r} is an empty send window: it starts and ends at the same time; "
            "give a later end, e.g. 08:00-21:00 (leave it out to send at any hour)"
        )
    return Window(start, end)


def parse_send_at(text: str) -> datetime | None:
    """``now``: None; else a Gregorian or Jalali (year < 1700) date-time, Tehran's by default."""
    cleaned = en_digits(text).strip()
    if cleaned.lower() == "now":
        return None
    match = _SEND_AT.fullmatch(cleaned)
    if match is None:
        raise ValueError(
            f"{text!r} is not a send time; write now, or a Tehran date and time such as "
            "1405/01/15 10:00 or 2026-04-04 10:00"
        )
    if match["H"] is None:
        raise ValueError(
            f"{text!r} has no time of day; give a time too, e.g. {match[0].strip()} 10:00"
        )
    try:
        day = gregorian_date(int(match["y"]), int(match["m"]), int(match["d"]))
        zone = _offset(match["tz"]) if match["tz"] else TEHRAN
        micro = int((match["f"] or "0").ljust(6, "0"))
        clock = time(int(match["H"]), int(match["M"]), int(match["S"] or 0), micro)
        moment = datetime.combine(day, clock, tzinfo=zone)
    except (ValueError, OverflowError) as exc:
        raise ValueError(
            f"{text!r} is not a real date and time ({exc}). Fix: correct it; a year below 1700 "
            "is read as Jalali (1405/02/31 10:00), a later one as Gregorian"
        ) from exc
    return tehran(moment)


def parse_duration(text: str) -> timedelta:
    """A duration written with d, h, m and s parts in that order: ``90m``, ``1h30m``, ``1d``."""
    cleaned = en_digits(text).strip()
    match = _DURATION.fullmatch(cleaned)
    if not cleaned or match is None:
        raise ValueError(
            f"{text!r} is not a duration; write whole numbers with units d, h, m, s, "
            "e.g. 45s, 90m, 2h, 1h30m, 1d"
        )
    seconds = sum(int(match[unit] or 0) * size for unit, size in _UNITS)
    try:
        return timedelta(seconds=seconds)
    except OverflowError as exc:
        raise ValueError(f"{text!r} is too long a duration") from exc


def format_duration(delta: timedelta) -> str:
    """A duration as ``parse_duration`` reads it (``2h``, ``1h30m``); sub-seconds are dropped."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        raise ValueError(f"format_duration: {delta} is negative")
    parts = []
    for unit, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def tehran_label(moment: datetime) -> str:
    """The aware moment on Tehran's clock, as 1405/09/06 08:00 (2026-11-27 08:00)."""
    local = _tehran_time(moment, "tehran_label")
    jalali: str = jdatetime.datetime.fromgregorian(datetime=local).strftime("%Y/%m/%d %H:%M")
    return f"{jalali} ({local:%Y-%m-%d %H:%M})"


def decide(
    now: datetime,
    *,
    send_at: datetime | None,
    window: Window | None,
    max_lateness: timedelta | None,
    outside_window: OutsideWindow,
) -> Decision:
    """Whether to post now, and with which SendDateTime. Outside the window ``"wait"`` posts
    nothing, ``"schedule"`` posts for the next opening; stale (refused either way): now or that
    opening later than ``send_at`` by more than ``max_lateness``."""
    if outside_window not in ("wait", "schedule"):
        raise ValueError(f"outside_window must be 'wait' or 'schedule', not {outside_window!r}")
    _tehran_time(now, "decide: now")
    if send_at is not None and _tehran_time(send_at, "decide: send_at") <= now:
        late = now - send_at
        if max_lateness is not None and late > max_lateness:
            return Decision(
                f"the campaign was due at {tehran_label(send_at)} (Tehran), {_ago(late)} ago, "
                f"more than schedule.max_lateness ({format_duration(max_lateness)}): refusing "
                "to send a stale campaign. Fix: set a new send_at, or raise max_lateness.",
                stale=True,
            )
    ahead = send_at if send_at is not None and send_at > now else None  # the provider holds it
    due = ahead or now
    if window is None or window.contains(due):
        if ahead is not None:
            return Decision(
                f"send_at is {tehran_label(ahead)} (Tehran): the provider holds the messages "
                "until then.",
                send=True,
                send_at=tehran(ahead),
            )
        return Decision("", send=True)
    opens = window.next_open(due)
    if ahead is not None and outside_window == "wait":
        return Decision(
            f"send_at {tehran_label(due)} (Tehran) is outside the send window {window} "
            "(Tehran), so nothing would be delivered then. Fix: set send_at inside the "
            "window, or change the window.",
        )
    if send_at is not None and max_lateness is not None and opens - send_at > max_lateness:
        return Decision(
            f"the campaign is due at {tehran_label(send_at)} (Tehran), but the send window "
            f"{window} (Tehran) opens only at {tehran_label(opens)}, {_ago(opens - send_at)} "
            f"later, more than schedule.max_lateness ({format_duration(max_lateness)}): "
            "refusing to send a stale campaign. Fix: set a new send_at inside the window, "
            "or raise max_lateness.",
            stale=True,
        )
    outside = f"outside the send window {window} (Tehran)"
    if ahead is not None:
        outside = f"send_at {tehran_label(due)} (Tehran) is {outside}"
    elif outside_window == "wait":
        return Decision(f"{outside}; it opens at {tehran_label(opens)}.")
    return Decision(
        f"{outside}; the provider holds the messages until it opens at {tehran_label(opens)}.",
        send=True,
        send_at=opens,
    )


def _tehran_time(moment: datetime, name: str) -> datetime:  # naive: the cron-in-UTC mistake
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name}: {moment.isoformat()} is naive; give an aware datetime")
    return tehran(moment)


def _time_of_day(hour: int, minute: int, text: str, *, end: bool) -> time:
    if end and (hour, minute) == (24, 0):
        return _MIDNIGHT
    if hour > 23 or minute > 59:
        raise ValueError(
            f"{text!r}: {hour:02d}:{minute:02d} is not a time of day; hours run 00-23 and "
            "minutes 00-59, e.g. 08:00-21:00"
        )
    return time(hour, minute)


def _clock(moment: time) -> str:
    return moment.strftime("%H:%M:%S" if moment.second else "%H:%M")


def _offset(text: str) -> timezone:
    if text.upper() == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise ValueError(f"{text} is not a UTC offset such as +03:30")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _ago(delta: timedelta) -> str:
    """A lateness read at a glance: minutes up to 3 hours, then hours and minutes, then days."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return _count(seconds, "second")
    minutes = seconds // 60
    if minutes < 3 * 60:
        return _count(minutes, "minute")
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return _count(hours, "hour") + (f" {_count(minutes, 'minute')}" if minutes else "")
    days, hours = divmod(hours, 24)
    return _count(days, "day") + (f" {_count(hours, 'hour')}" if hours else "")


def _count(number: int, unit: str) -> str:
    return f"{number} {unit}" if number == 1 else f"{number} {unit}s"
