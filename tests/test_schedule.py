"""Tests for pipeline.schedule: send windows, send times, durations and the send decision."""

from __future__ import annotations

import os
import time as systime
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.clock import TEHRAN
from pipeline.schedule import (
    Decision,
    Window,
    decide,
    format_duration,
    parse_duration,
    parse_send_at,
    parse_window,
    tehran_label,
)

PROPERTY = settings(max_examples=150, deadline=None, derandomize=True)

# 03:00 UTC on 26 Nov 2026 is 06:30 in Tehran (1405/09/05), before an 08:00 window opens.
NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
DAY = Window(time(8, 0), time(21, 0))
NIGHT = Window(time(20, 0), time(2, 0))
TWO_HOURS = timedelta(hours=2)


def tehran_at(hour: int, minute: int = 0, day: int = 26, month: int = 11) -> datetime:
    """A moment on Tehran's wall clock in 2026 (after Iran dropped DST: always +03:30)."""
    return datetime(2026, month, day, hour, minute, tzinfo=TEHRAN)


@contextmanager
def machine_tz(name: str) -> Iterator[None]:
    """The process's local time zone set to `name`, as cron on a VPS would have it."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = name
    systime.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        systime.tzset()


# --- parse_window ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "08:00-21:00",
        "8:00-21:00",
        "08:00 - 21:00",
        "  08:00-21:00\n",
        "۰۸:۰۰-۲۱:۰۰",
        "٠٨:٠٠-٢١:٠٠",
        "08:00–21:00",  # an en dash, as chat apps and word processors write it
    ],
)
def test_parse_window_accepts_the_usual_spellings(text: str) -> None:
    """Single-digit hours, spaces, Persian and Arabic-Indic digits and dashes all parse."""
    window = parse_window(text)
    assert window == DAY
    assert str(window) == "08:00-21:00"


def test_parse_window_wrapping_midnight() -> None:
    """An end before the start is a window that runs past midnight."""
    window = parse_window("20:00-02:00")
    assert window == NIGHT
    assert str(window) == "20:00-02:00"


def test_parse_window_end_24_00_runs_to_midnight() -> None:
    """24:00 as the end means until midnight, and is shown that way again."""
    window = parse_window("08:00-24:00")
    assert window == Window(time(8, 0), time(0, 0))
    assert str(window) == "08:00-24:00"
    assert window.contains(tehran_at(23, 59))
    assert not window.contains(tehran_at(0, 0))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("8-21", "write it as HH:MM-HH:MM in Tehran time, e.g. 08:00-21:00"),
        ("08:00", "is not a send window"),
        ("", "is not a send window"),
        ("08:00-21:00-22:00", "is not a send window"),
        ("08:00:00-21:00:00", "is not a send window"),
        ("25:00-26:00", "25:00 is not a time of day; hours run 00-23"),
        ("08:60-21:00", "08:60 is not a time of day"),
        ("24:00-08:00", "24:00 is not a time of day"),
        ("08:00-24:30", "24:30 is not a time of day"),
        ("08:00-08:00", "is an empty send window: it starts and ends at the same time"),
        ("00:00-24:00", "is the whole day; leave the send window out"),
    ],
)
def test_parse_window_refuses_with_a_fix(text: str, says: str) -> None:
    """A bad window is a ValueError that quotes the text and says how to write it."""
    with pytest.raises(ValueError) as caught:
        parse_window(text)
    assert says in str(caught.value)
    assert repr(text) in str(caught.value)


def test_window_constructor_refuses_empty_and_aware_times() -> None:
    """A Window built in code obeys the same rules: never empty, wall-clock (naive) times."""
    with pytest.raises(ValueError, match="empty"):
        Window(time(8, 0), time(8, 0))
    with pytest.raises(ValueError, match="naive"):
        Window(time(8, 0, tzinfo=UTC), time(21, 0))


minutes_of_day = st.integers(min_value=0, max_value=24 * 60 - 1)


@st.composite
def windows(draw: st.DrawFn) -> Window:
    start = draw(minutes_of_day)
    end = draw(minutes_of_day.filter(lambda minute: minute != start))
    return Window(time(start // 60, start % 60), time(end // 60, end % 60))


@PROPERTY
@given(windows())
def test_window_text_round_trips(window: Window) -> None:
    """What str() shows is what parse_window reads back."""
    assert parse_window(str(window)) == window


# --- Window.contains and Window.next_open ---------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (tehran_at(7, 59) + timedelta(seconds=59, microseconds=999_999), False),
        (tehran_at(8, 0), True),  # the start is inclusive
        (tehran_at(20, 59) + timedelta(seconds=59), True),
        (tehran_at(21, 0), False),  # the end is exclusive
        (datetime(2026, 11, 26, 4, 29, tzinfo=UTC), False),  # 07:59 in Tehran
        (datetime(2026, 11, 26, 4, 30, tzinfo=UTC), True),  # 08:00 in Tehran
        (datetime(2026, 11, 26, 17, 30, tzinfo=UTC), False),  # 21:00 in Tehran
    ],
)
def test_contains_boundaries_on_tehran_clock(moment: datetime, inside: bool) -> None:
    """Start inclusive, end exclusive, compared on Tehran's clock whatever zone the moment has."""
    assert DAY.contains(moment) is inside


@pytest.mark.parametrize(
    ("hour", "minute", "inside"),
    [
        (19, 59, False),
        (20, 0, True),
        (23, 59, True),
        (0, 0, True),
        (1, 59, True),
        (2, 0, False),
        (12, 0, False),
    ],
)
def test_contains_in_a_window_that_wraps_midnight(hour: int, minute: int, inside: bool) -> None:
    """A 20:00-02:00 window holds the late evening and the small hours, not the day."""
    assert NIGHT.contains(tehran_at(hour, minute)) is inside


def test_contains_refuses_a_naive_moment() -> None:
    """A naive datetime would be read in the machine's zone, so it is refused outright."""
    with pytest.raises(ValueError, match="naive"):
        DAY.contains(datetime(2026, 11, 26, 10, 0))
    with pytest.raises(ValueError, match="naive"):
        DAY.next_open(datetime(2026, 11, 26, 10, 0))


def test_next_open_inside_the_window_is_the_moment_itself() -> None:
    """Already inside: the answer is the same instant, expressed on Tehran's clock."""
    moment = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # 12:30 in Tehran
    opens = DAY.next_open(moment)
    assert opens == moment
    assert opens.tzinfo is TEHRAN
    assert (opens.hour, opens.minute) == (12, 30)


@pytest.mark.parametrize(
    ("window", "moment", "expected"),
    [
        (DAY, NOW, tehran_at(8, 0)),  # before the start: today
        (DAY, tehran_at(21, 0), tehran_at(8, 0, day=27)),  # at the end: tomorrow
        (DAY, tehran_at(23, 30), tehran_at(8, 0, day=27)),
        (DAY, tehran_at(22, 0, day=30), tehran_at(8, 0, day=1, month=12)),  # month end
        (NIGHT, tehran_at(2, 0), tehran_at(20, 0)),  # the small-hours part just closed
        (NIGHT, tehran_at(12, 0), tehran_at(20, 0)),
        (Window(time(0, 0), time(6, 0)), tehran_at(7, 0), tehran_at(0, 0, day=27)),
        (Window(time(0, 0), time(6, 0)), tehran_at(5, 59), tehran_at(5, 59)),
    ],
)
def test_next_open_same_day_and_across_midnight(
    window: Window, moment: datetime, expected: datetime
) -> None:
    """The next opening is today's start if it is still ahead, else tomorrow's."""
    opens = window.next_open(moment)
    assert opens == expected
    assert opens.tzinfo is TEHRAN


# Iran has had no DST since 2022, so a day is always 24 hours on Tehran's clock after that.
moments = st.datetimes(
    min_value=datetime(2023, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)


@PROPERTY
@given(windows(), moments)
def test_next_open_is_the_first_open_moment(window: Window, moment: datetime) -> None:
    """next_open is never earlier, always inside, within a day, and a real opening."""
    opens = window.next_open(moment)
    assert opens >= moment
    assert window.contains(opens)
    assert opens - moment < timedelta(days=1)
    if window.contains(moment):
        assert opens == moment
    else:
        assert opens.time() == window.start
        assert not window.contains(opens - timedelta(microseconds=1))


@PROPERTY
@given(windows(), moments)
def test_contains_repeats_every_day(window: Window, moment: datetime) -> None:
    """The window is a daily rule: the same wall-clock time a day later gives the same answer."""
    assert window.contains(moment) is window.contains(moment + timedelta(days=1))


# --- parse_send_at --------------------------------------------------------------------------

APRIL_4_10AM = datetime(2026, 4, 4, 10, 0, tzinfo=TEHRAN)  # 1405/01/15 10:00


@pytest.mark.parametrize("text", ["now", "NOW", " Now "])
def test_parse_send_at_now_is_none(text: str) -> None:
    """'now' in any case means no SendDateTime: deliver on arrival."""
    assert parse_send_at(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "2026-04-04 10:00",
        "2026-04-04T10:00:00",
        "2026/04/04 10:00",
        "2026/4/4 10:00",
        "1405-01-15 10:00",
        "1405/01/15 10:00",
        "1405/1/15 10:00:00",
        "۱۴۰۵/۰۱/۱۵ ۱۰:۰۰",
        "۲۰۲۶-۰۴-۰۴ ۱۰:۰۰",
    ],
)
def test_parse_send_at_reads_tehran_wall_clock(text: str) -> None:
    """Gregorian and Jalali (year < 1700), Latin or Persian digits: 10:00 in Tehran."""
    moment = parse_send_at(text)
    assert moment == APRIL_4_10AM
    assert moment is not None
    assert moment.tzinfo is TEHRAN
    assert (moment.hour, moment.minute) == (10, 0)


@pytest.mark.parametrize(
    "text",
    [
        "2026-04-04T06:30:00Z",
        "2026-04-04T06:30:00z",
        "2026-04-04T10:00:00+03:30",
        "2026-04-04 09:00+02:30",
        "2026-04-04 02:30-0400",
        "1405/01/15 06:30Z",
    ],
)
def test_parse_send_at_honours_an_explicit_offset(text: str) -> None:
    """With an offset the instant is exact, then shown on Tehran's clock."""
    moment = parse_send_at(text)
    assert moment == APRIL_4_10AM
    assert moment is not None
    assert moment.tzinfo is TEHRAN


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-04-04", "give a time too, e.g. 2026-04-04 10:00"),
        ("1405/01/15", "give a time too, e.g. 1405/01/15 10:00"),
        ("۱۴۰۵/۰۱/۱۵", "give a time too, e.g. 1405/01/15 10:00"),
        ("1405/12/30 10:00", "is not a real date and time"),  # 1405 is not a leap year
        ("2026-02-30 10:00", "is not a real date and time"),
        ("2026-04-04 25:00", "is not a real date and time"),
        ("2026-04-04 10:61", "is not a real date and time"),
        ("2026-04-04 10:00+24:00", "is not a UTC offset"),
        ("tomorrow", "write now, or a Tehran date and time such as 1405/01/15 10:00"),
        ("", "is not a send time"),
        ("10:00", "is not a send time"),
        ("04/04/2026 10:00", "is not a send time"),
    ],
)
def test_parse_send_at_refuses_with_a_fix(text: str, says: str) -> None:
    """A date without a time, an impossible date or an unknown shape is a ValueError with a fix."""
    with pytest.raises(ValueError) as caught:
        parse_send_at(text)
    assert says in str(caught.value)
    assert repr(text) in str(caught.value)


# --- parse_duration and format_duration -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45s", timedelta(seconds=45)),
        ("90m", timedelta(minutes=90)),
        ("2h", timedelta(hours=2)),
        ("2H", timedelta(hours=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        ("1d", timedelta(days=1)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("۹۰m", timedelta(minutes=90)),
        ("0m", timedelta(0)),
    ],
)
def test_parse_duration_reads_unit_parts(text: str, expected: timedelta) -> None:
    """Whole numbers with d, h, m, s units, combined in that order, add up."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "  ", "90", "2 hours", "1.5h", "h", "30m1h", "-5m", "1w", "2h2h", "9999999999999d"],
)
def test_parse_duration_refuses_anything_else(text: str) -> None:
    """No bare numbers, words, fractions, signs, repeated or unordered units, or overflow."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(hours=2), "2h"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(days=1, seconds=5), "1d5s"),
        (timedelta(0), "0s"),
    ],
)
def test_format_duration_writes_what_the_config_would(delta: timedelta, text: str) -> None:
    """A duration is shown the way an operator writes it in config.yaml."""
    assert format_duration(delta) == text


@PROPERTY
@given(st.integers(min_value=0, max_value=10**9).map(lambda s: timedelta(seconds=s)))
def test_duration_text_round_trips(delta: timedelta) -> None:
    """Any whole-second duration survives format_duration then parse_duration."""
    assert parse_duration(format_duration(delta)) == delta


# --- tehran_label ---------------------------------------------------------------------------


def test_tehran_label_gives_both_calendars_on_tehran_clock() -> None:
    """An instant given in UTC is labelled on Tehran's clock, Jalali first, then Gregorian."""
    assert tehran_label(datetime(2026, 11, 27, 4, 30, tzinfo=UTC)) == (
        "1405/09/06 08:00 (2026-11-27 08:00)"
    )
    assert tehran_label(datetime(2026, 3, 20, 21, 0, tzinfo=UTC)) == (
        "1405/01/01 00:30 (2026-03-21 00:30)"
    )
    with pytest.raises(ValueError, match="naive"):
        tehran_label(datetime(2026, 11, 27, 8, 0))


# --- decide ---------------------------------------------------------------------------------


def test_now_without_a_window_sends_now() -> None:
    """send_at 'now' and no window: post now, no SendDateTime, no reason."""
    decision = decide(NOW, send_at=None, window=None, max_lateness=None, outside_window="wait")
    assert decision == Decision(send=True, send_at=None, reason="")


def test_now_inside_the_window_sends_now() -> None:
    """Inside the window, 'now' is sent now in either outside_window mode."""
    for mode in ("wait", "schedule"):
        decision = decide(
            tehran_at(10, 0), send_at=None, window=DAY, max_lateness=None, outside_window=mode
        )
        assert decision == Decision(send=True, send_at=None, reason="")


def test_now_before_the_window_waits_and_names_the_opening() -> None:
    """'wait' outside the window posts nothing; the reason gives the opening in both calendars."""
    decision = decide(NOW, send_at=None, window=DAY, max_lateness=None, outside_window="wait")
    assert decision == Decision(
        send=False,
        send_at=None,
        reason=(
            "outside the send window 08:00-21:00 (Tehran); "
            "it opens at 1405/09/05 08:00 (2026-11-26 08:00)."
        ),
    )


def test_now_after_the_window_waits_until_tomorrow() -> None:
    """After the window closes, the opening named is the next morning's."""
    decision = decide(
        tehran_at(21, 30), send_at=None, window=DAY, max_lateness=None, outside_window="wait"
    )
    assert not decision.send
    assert decision.reason == (
        "outside the send window 08:00-21:00 (Tehran); "
        "it opens at 1405/09/06 08:00 (2026-11-27 08:00)."
    )


def test_now_outside_the_window_schedules_at_the_opening() -> None:
    """'schedule' posts now with SendDateTime at the opening: the provider holds the messages."""
    decision = decide(NOW, send_at=None, window=DAY, max_lateness=None, outside_window="schedule")
    assert decision.send
    assert decision.send_at == tehran_at(8, 0)
    assert not decision.stale
    assert "holds the messages until it opens at 1405/09/05 08:00 (2026-11-26 08:00)" in (
        decision.reason
    )


def test_future_send_at_is_passed_to_the_provider() -> None:
    """A future send_at, inside the window or with none, is posted now for the provider to hold."""
    due = datetime(2026, 11, 26, 6, 30, tzinfo=UTC)  # 10:00 in Tehran
    for window in (None, DAY):
        decision = decide(
            NOW, send_at=due, window=window, max_lateness=TWO_HOURS, outside_window="wait"
        )
        assert decision.send
        assert decision.send_at == due
        assert decision.send_at is not None
        assert decision.send_at.tzinfo is TEHRAN
        assert "1405/09/05 10:00 (2026-11-26 10:00)" in decision.reason


def test_future_send_at_outside_the_window_waits_as_a_config_mistake() -> None:
    """'wait' with a send_at outside the window posts nothing and asks for a better time."""
    due = tehran_at(22, 0)
    decision = decide(NOW, send_at=due, window=DAY, max_lateness=None, outside_window="wait")
    assert decision == Decision(
        send=False,
        send_at=None,
        reason=(
            "send_at 1405/09/05 22:00 (2026-11-26 22:00) (Tehran) is outside the send window "
            "08:00-21:00 (Tehran), so nothing would be delivered then. Fix: set send_at inside "
            "the window, or change the window."
        ),
    )


def test_future_send_at_outside_the_window_moves_to_its_opening() -> None:
    """'schedule' moves a send_at outside the window to the window's next opening after it."""
    due = tehran_at(22, 0)
    decision = decide(NOW, send_at=due, window=DAY, max_lateness=None, outside_window="schedule")
    assert decision.send
    assert decision.send_at == tehran_at(8, 0, day=27)
    assert "opens at 1405/09/06 08:00 (2026-11-27 08:00)" in decision.reason


def test_future_send_at_moved_past_max_lateness_is_stale() -> None:
    """Moving send_at to an opening more than max_lateness later would deliver it stale."""
    due = tehran_at(22, 0)
    decision = decide(
        NOW, send_at=due, window=DAY, max_lateness=TWO_HOURS, outside_window="schedule"
    )
    assert not decision.send
    assert decision.stale
    assert "opens only at 1405/09/06 08:00 (2026-11-27 08:00), 10 hours later" in (decision.reason)
    assert "more than schedule.max_lateness (2h)" in decision.reason


def test_past_send_at_beyond_max_lateness_is_refused_as_stale() -> None:
    """A run later than send_at + max_lateness refuses, names the due time, lateness and fix."""
    due = tehran_at(4, 0)  # 150 minutes before NOW
    decision = decide(NOW, send_at=due, window=None, max_lateness=TWO_HOURS, outside_window="wait")
    assert decision == Decision(
        send=False,
        send_at=None,
        reason=(
            "the campaign was due at 1405/09/05 04:00 (2026-11-26 04:00) (Tehran), 150 minutes "
            "ago, more than schedule.max_lateness (2h): refusing to send a stale campaign. "
            "Fix: set a new send_at, or raise max_lateness."
        ),
        stale=True,
    )


@pytest.mark.parametrize(
    ("late", "shown"),
    [
        (timedelta(seconds=90), "1 minute"),
        (timedelta(minutes=179), "179 minutes"),
        (timedelta(hours=3), "3 hours"),
        (timedelta(hours=5, minutes=1), "5 hours 1 minute"),
        (timedelta(days=1, minutes=59), "1 day"),
        (timedelta(days=3, hours=5, minutes=10), "3 days 5 hours"),
    ],
)
def test_lateness_reads_at_a_glance(late: timedelta, shown: str) -> None:
    """Lateness is in minutes up to 3 hours, then hours and minutes, then days and hours."""
    decision = decide(
        NOW, send_at=NOW - late, window=None, max_lateness=timedelta(0), outside_window="wait"
    )
    assert decision.stale
    assert f"(Tehran), {shown} ago, more than schedule.max_lateness (0s)" in decision.reason


def test_max_lateness_boundary_is_inclusive() -> None:
    """Exactly max_lateness late is still sent; a microsecond more is stale."""
    on_the_edge = decide(
        NOW, send_at=NOW - TWO_HOURS, window=None, max_lateness=TWO_HOURS, outside_window="wait"
    )
    assert on_the_edge == Decision(send=True, send_at=None, reason="")
    too_late = decide(
        NOW,
        send_at=NOW - TWO_HOURS - timedelta(microseconds=1),
        window=None,
        max_lateness=TWO_HOURS,
        outside_window="wait",
    )
    assert too_late.stale
    assert not too_late.send


def test_past_send_at_without_max_lateness_sends_now() -> None:
    """With no max_lateness, a late campaign is sent now however late it is."""
    decision = decide(
        NOW, send_at=NOW - timedelta(days=30), window=None, max_lateness=None, outside_window="wait"
    )
    assert decision == Decision(send=True, send_at=None, reason="")


def test_send_at_equal_to_now_is_sent_now() -> None:
    """A send_at that is exactly now is due, not future: no SendDateTime is given."""
    decision = decide(NOW, send_at=NOW, window=None, max_lateness=TWO_HOURS, outside_window="wait")
    assert decision == Decision(send=True, send_at=None, reason="")


def test_past_send_at_within_lateness_follows_the_window() -> None:
    """A slightly late campaign is treated as 'now': sent inside the window, else wait/schedule."""
    inside = decide(
        tehran_at(10, 0),
        send_at=tehran_at(9, 30),
        window=DAY,
        max_lateness=TWO_HOURS,
        outside_window="wait",
    )
    assert inside == Decision(send=True, send_at=None, reason="")

    due, run = tehran_at(7, 0), tehran_at(7, 30)
    waiting = decide(run, send_at=due, window=DAY, max_lateness=TWO_HOURS, outside_window="wait")
    assert waiting == Decision(
        send=False,
        send_at=None,
        reason=(
            "outside the send window 08:00-21:00 (Tehran); "
            "it opens at 1405/09/05 08:00 (2026-11-26 08:00)."
        ),
    )
    scheduled = decide(
        run, send_at=due, window=DAY, max_lateness=TWO_HOURS, outside_window="schedule"
    )
    assert scheduled.send
    assert scheduled.send_at == tehran_at(8, 0)


@pytest.mark.parametrize("mode", ["wait", "schedule"])
def test_late_campaign_whose_window_opens_past_lateness_is_stale(mode: str) -> None:
    """Due 20:30, run at 21:10 after the window closed: tomorrow's 08:00 is too late for 2h."""
    decision = decide(
        tehran_at(21, 10),
        send_at=tehran_at(20, 30),
        window=DAY,
        max_lateness=TWO_HOURS,
        outside_window=mode,  # type: ignore[arg-type]
    )
    assert not decision.send
    assert decision.stale
    assert decision.reason.startswith(
        "the campaign is due at 1405/09/05 20:30 (2026-11-26 20:30) (Tehran), but the send "
        "window 08:00-21:00 (Tehran) opens only at 1405/09/06 08:00 (2026-11-27 08:00), "
        "11 hours 30 minutes later, more than schedule.max_lateness (2h)"
    )
    assert "Fix:" in decision.reason


def test_decide_refuses_naive_times_and_unknown_modes() -> None:
    """Naive datetimes and an outside_window other than wait/schedule are programming errors."""
    naive = datetime(2026, 11, 26, 6, 30)
    with pytest.raises(ValueError, match="now"):
        decide(naive, send_at=None, window=None, max_lateness=None, outside_window="wait")
    with pytest.raises(ValueError, match="send_at"):
        decide(NOW, send_at=naive, window=None, max_lateness=None, outside_window="wait")
    with pytest.raises(ValueError, match="outside_window"):
        decide(NOW, send_at=None, window=None, max_lateness=None, outside_window="later")  # type: ignore[arg-type]


@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles", "Pacific/Kiritimati"])
def test_results_do_not_depend_on_the_machine_time_zone(zone: str) -> None:
    """With the process TZ set (as cron's UTC), parsing and deciding give the same answers."""
    with machine_tz(zone):
        assert systime.localtime(0).tm_zone != "+0330"  # the zone really changed
        due = parse_send_at("1405/09/05 07:00")
        assert due == datetime(2026, 11, 26, 3, 30, tzinfo=UTC)
        assert parse_window("08:00-21:00").contains(NOW) is False
        decision = decide(
            NOW + timedelta(hours=1),
            send_at=due,
            window=DAY,
            max_lateness=TWO_HOURS,
            outside_window="schedule",
        )
        assert decision == Decision(
            send=True,
            send_at=tehran_at(8, 0),
            reason=(
                "outside the send window 08:00-21:00 (Tehran); the provider holds the messages "
                "until it opens at 1405/09/05 08:00 (2026-11-26 08:00)."
            ),
        )
        assert tehran_label(NOW) == "1405/09/05 06:30 (2026-11-26 06:30)"


@PROPERTY
@given(
    now=moments,
    offset=st.none() | st.integers(min_value=-3 * 24 * 60, max_value=3 * 24 * 60),
    window=st.none() | windows(),
    lateness=st.none() | st.integers(min_value=0, max_value=24 * 60),
    mode=st.sampled_from(["wait", "schedule"]),
)
def test_decide_never_delivers_outside_the_rules(
    now: datetime, offset: int | None, window: Window | None, lateness: int | None, mode: str
) -> None:
    """Whatever the inputs: delivery is never in the past, outside the window, or stale."""
    send_at = None if offset is None else now + timedelta(minutes=offset)
    max_lateness = None if lateness is None else timedelta(minutes=lateness)
    decision = decide(
        now,
        send_at=send_at,
        window=window,
        max_lateness=max_lateness,
        outside_window=mode,  # type: ignore[arg-type]
    )
    assert (decision.reason == "") is (decision.send and decision.send_at is None)
    if decision.stale:
        assert not decision.send
    if not decision.send and not decision.stale:
        assert mode == "wait"
        assert window is not None
    if decision.send:
        delivery = decision.send_at or now
        assert delivery >= now
        if decision.send_at is not None:
            assert decision.send_at.tzinfo is TEHRAN
        if window is not None:
            assert window.contains(delivery)
        if send_at is not None and max_lateness is not None:
            assert delivery - send_at <= max_lateness
