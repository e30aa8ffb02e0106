"""The opt-out list: a number anywhere on a line suppresses it; an unreadable line stops the run."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import InputError
from pipeline.models import InvalidNumber
from pipeline.phones import find_mobiles, normalise_mobile
from pipeline.suppression import load_suppression
from tests.conftest import Campaign, journal_snapshot, live_provider, run_cli, sends

PROPERTY = settings(max_examples=300, deadline=None, derandomize=True)
MOMENT = datetime(2026, 3, 21, 6, 30, tzinfo=UTC)


def listed(tmp_path: Path, text: str) -> set[str]:
    path = tmp_path / "optout.txt"
    path.write_text(text, encoding="utf-8")
    return load_suppression(path, "optout.txt").numbers


def refused(tmp_path: Path, text: str) -> str:
    path = tmp_path / "optout.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_suppression(path, "optout.txt")
    return str(caught.value)


@pytest.mark.parametrize(
    "line",
    [
        "09121234567",
        "09121234567 - لغو",
        "09121234567 opted out by phone",
        "09121234567;Ali",
        "09121234567\tAli Rezaei",
        "Ali,09121234567",
        "۰۹۱۲۱۲۳۴۵۶۷،لغو",
        "٠٩١٢١٢٣٤٥٦٧ لغو",
        "9.121234567E+09",
        "9121234567.0",
        "+98 912 123 4567 (customer asked)",
        "0098-912-123-4567",
        "(0912) 123-4567 لغو کرد",
        "لغو: 0912\u200c123\u200c4567",
        "09121234567 2026-03-21 10:00 by phone",
        "1. 09121234567",
        '"Ali","09121234567","2026-03-21"',
        "'09121234567",
        "09121234567, 09121234567 (twice, one number)",
        "09121234567  # Mobile_Invalid (spring), 2026-03-21 10:00 Tehran",
        "09121234567  # replied «لغو ۰۹۱۲۹۹۹۹۹۹۹» on 1405-01-01",
    ],
)
def test_a_line_suppresses_the_number_written_anywhere_in_it(tmp_path: Path, line: str) -> None:
    """Whatever stands beside the number (words, cells, a date, a comment), the number is read."""
    assert listed(tmp_path, f"# opt-outs\n{line}\n") == {"09121234567"}


def test_a_csv_exports_header_line_is_skipped(tmp_path: Path) -> None:
    """The first line that is not blank or a comment may be a header, if it holds no digit."""
    text = "\ufeff# exported from the CRM\n\nname,mobile\nAli,09121234567\nSara,09351234567\n"
    assert listed(tmp_path, text) == {"09121234567", "09351234567"}
    assert listed(tmp_path, "شماره\n۰۹۱۲۱۲۳۴۵۶۷\n") == {"09121234567"}


@pytest.mark.parametrize(
    ("text", "line", "shown", "what"),
    [
        ("09121234567\nلغو\n", 2, "«لغو»", "no mobile number on this line (no digits)"),
        (
            "09121234567\n0912123456 - لغو\n",
            2,
            "«0912123456 - لغو»",
            "no mobile number on this line (too short: 10 digits, 11 expected)",
        ),
        ("9.12E+09\n", 1, "«9.12E+09»", "(Excel lost digits: 9.12E+09 keeps only 3"),
        ("name,mobile\nname,mobile\n", 2, "«name,mobile»", "no mobile number on this line"),
        ("0212345678 office\n", 1, "«0212345678 office»", "is a landline or service number"),
        (
            "09121234567\n\n# note\n09121234567 or 09351234567\n",
            4,
            "«09121234567 or 09351234567»",
            "2 mobile numbers on one line (09121234567, 09351234567)",
        ),
    ],
)
def test_a_line_without_exactly_one_number_stops_the_run(
    tmp_path: Path, text: str, line: int, shown: str, what: str
) -> None:
    """No number, a broken one, or two: InputError (exit 2) naming file, line, text and fix."""
    message = refused(tmp_path, text)
    assert message.startswith(f"optout.txt:{line}: {shown}: ")
    assert what in message
    assert "Fix: " in message


def test_every_unreadable_line_is_counted_in_the_message(tmp_path: Path) -> None:
    """The first bad line is shown; the others are named by number, so one edit fixes all."""
    lines = ["09121234567", "x", "09121234568", *["y"] * 7]
    message = refused(tmp_path, "\n".join(lines) + "\n")
    assert message.startswith("optout.txt:2: «x»: no mobile number on this line (no digits)")
    assert "lines 4, 5, 6, 7, 8, ... cannot be read either" in message
    assert message.endswith(
        "Fix: write the number on the line in full (such as 09121234567), or start the line "
        "with '#' to keep it as a comment."
    )


def test_the_lines_the_pipeline_appends_are_read_back(tmp_path: Path) -> None:
    """`add` writes a header and `number  # why, date Tehran`: the file it grows stays readable."""
    path = tmp_path / "state" / "optout.txt"
    suppression = load_suppression(path, "optout.txt")
    added = suppression.add(
        [("09121234567", "Mobile_Invalid (spring-1405)"), ("09351234567", "blacklisted")],
        moment=MOMENT,
    )
    assert added == 2
    assert load_suppression(path, "optout.txt").numbers == {"09121234567", "09351234567"}


# --- find_mobiles: the scan under every line ---------------------------------------------------

NATIONALS = st.builds(
    str.__add__,
    st.sampled_from(["912", "935", "901", "921", "990", "919"]),
    st.text("0123456789", min_size=7, max_size=7),
)


@st.composite
def written(draw: st.DrawFn, national: str) -> str:
    """One number the way people and spreadsheets write it."""
    prefix = draw(st.sampled_from(["0", "", "+98", "0098", "98", "+98 (0)", "+98 "]))
    form = draw(st.sampled_from(["plain", "grouped", "scientific", "float"]))
    if form == "scientific":
        return f"{national[0]}.{national[1:]}E+09"
    if form == "float":
        return f"{national}.0"
    if form == "plain":
        return prefix + national
    sep = draw(st.sampled_from([" ", "-", " - ", "\u200c", ".", "\u00a0"]))
    return prefix + sep.join([national[:3], national[3:6], national[6:]])


# Text around a number: anything but digits (of any script) and the Arabic decimal separator.
AROUND = st.text(
    st.characters(exclude_categories=["Nd", "Cs"], exclude_characters="٫"), max_size=12
)


@PROPERTY
@given(st.data(), NATIONALS, AROUND, AROUND)
def test_a_number_inside_any_text_without_digits_is_found(
    data: st.DataObject, national: str, before: str, after: str
) -> None:
    """A valid number, in any accepted form, with any digit-free text around it, is found once."""
    number = data.draw(written(national))
    assert normalise_mobile(number) == "0" + national  # the form itself is a valid one
    assert find_mobiles(before + number + after) == ["0" + national]


@PROPERTY
@given(NATIONALS, NATIONALS, AROUND.filter(bool))
def test_two_numbers_are_both_found(first: str, second: str, between: str) -> None:
    """Two numbers separated by any digit-free text are two numbers (one if they are equal)."""
    found = find_mobiles(f"0{first}{between}0{second}")
    assert found == list(dict.fromkeys(["0" + first, "0" + second]))


@PROPERTY
@given(st.text(max_size=40))
def test_any_text_gives_numbers_or_a_reason(text: str) -> None:
    """Never a crash: valid numbers, or a reason a person can read."""
    found = find_mobiles(text)
    if isinstance(found, InvalidNumber):
        assert found.reason
    else:
        assert found and all(normalise_mobile(number) == number for number in found)


# --- through the command line ------------------------------------------------------------------

OPTED_OUT = [
    "09120000001 - لغو",
    "09120000002 opted out by phone",
    "09120000003;Ali",
    "09120000004\tSara",
    "۰۹۱۲۰۰۰۰۰۰۵،لغو",
    "9.120000006E+09",
]


def test_every_opt_out_on_the_list_is_kept_out_of_the_send(
    campaign: Campaign, server, simulator
) -> None:
    """The legal one: each line form suppresses its number; only the other rows are sent."""
    (campaign.folder / "optout.txt").write_text(
        "name,mobile\nReza,09120000007\n" + "\n".join(OPTED_OUT) + "\n", "utf-8"
    )
    campaign.contacts([(f"0912000000{i}", "نام", f"C{i}") for i in range(1, 10)])
    campaign.write_config(live_provider(server), extra="suppression:\n  path: optout.txt\n")
    result = run_cli(campaign.config)
    assert result.returncode == 0, result.stderr
    assert sorted(a.number for a in simulator.accepted) == ["9120000008", "9120000009"]
    assert [r["status"] for r in campaign.read_report()] == ["suppressed"] * 7 + ["sent"] * 2


def test_an_unreadable_opt_out_line_stops_the_run_before_anything_is_sent(
    campaign: Campaign, server, simulator
) -> None:
    """Exit 2, the file, line and text in the message, no request, the journal untouched."""
    optout = campaign.folder / "optout.txt"
    optout.write_text("09120000001\n", "utf-8")
    campaign.contacts([("09120000001", "a", "C1"), ("09120000002", "b", "C2")])
    campaign.write_config(live_provider(server), extra="suppression:\n  path: optout.txt\n")
    assert run_cli(campaign.config).returncode == 0
    before_sends = len(sends(simulator))
    journal_before = journal_snapshot(campaign, ["09120000002", "09120000003"])
    journal_bytes = campaign.journal.read_bytes()

    optout.write_text("09120000001\nlast week's opt-outs: 0912000000\n", "utf-8")
    campaign.contacts([("09120000003", "c", "C3")])
    campaign.write_config(
        live_provider(server),
        campaign="next",
        extra="suppression:\n  path: optout.txt\n",
    )
    result = run_cli(campaign.config)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        "error: optout.txt:2: «last week's opt-outs: 0912000000»: no mobile number on this "
        "line (too short: 10 digits, 11 expected). Fix: "
    )
    assert "Nothing was sent." in result.stderr and "Traceback" not in result.stderr
    assert len(sends(simulator)) == before_sends
    assert journal_snapshot(campaign, ["09120000002", "09120000003"]) == journal_before
    assert campaign.journal.read_bytes() == journal_bytes
