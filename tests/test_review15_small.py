"""Issue 15's review, the small ones: the new config keys' messages, status's plural, the run's
pointer to settle for `unknown` rows, and the CSV header rule of the files of numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError, InputError
from pipeline.phones import is_header_line
from pipeline.sandbox import AmootSimulator, Fault
from pipeline.sandbox_server import SandboxServer
from pipeline.settle import read_numbers
from pipeline.suppression import load_suppression
from tests.conftest import Campaign, live_provider, run_main
from tests.test_settle import settle
from tests.test_status import run_status

NUMBERS = [f"0912000000{i}" for i in range(1, 8)]


def config_with(campaign: Campaign, suppression: str) -> Path:
    campaign.contacts([(NUMBERS[0], "نام", "C")])
    campaign.write_config("sandbox: true", extra=f"suppression:\n{suppression}")
    return campaign.config


@pytest.mark.parametrize(
    ("suppression", "line", "message"),
    [
        (
            "  frequency_cap: {messages: 1, days: 7, hours: 2}\n",
            13,
            "suppression.frequency_cap.hours: unknown key; valid keys: messages, days",
        ),
        (
            "  frequency_cap: {messages: 1, days: 7, dayz: 2}\n",
            13,
            "suppression.frequency_cap.dayz: unknown key; did you mean 'days'?",
        ),
        (
            "  read_replies: maybe\n",
            13,
            "suppression.read_replies: must be auto, true or false (got 'maybe')",
        ),
        (
            "  frequency_cap: 3\n",
            13,
            "suppression.frequency_cap: must be a mapping such as {messages: 1, days: 7} (got 3)",
        ),
        (
            "  frequency_cap:\n    messages: true\n    days: 7\n",
            14,
            "suppression.frequency_cap.messages: must be a whole number such as 7, not true or "
            "false (got True)",
        ),
        (
            "  frequency_cap:\n    messages: 1\n    days: false\n",
            15,
            "suppression.frequency_cap.days: must be a whole number such as 7, not true or "
            "false (got False)",
        ),
    ],
)
def test_the_new_keys_say_where_what_and_the_fix(
    campaign: Campaign, suppression: str, line: int, message: str
) -> None:
    """Each is one line with the key's line number (exit 2), no pydantic internals."""
    config = config_with(campaign, suppression)
    result = run_main(config)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [f"error: {config}:{line}: {message}", "Nothing was sent."]
    assert "FrequencyCap" not in result.stderr and "literal" not in result.stderr
    assert result.stdout == ""


def test_the_new_keys_still_accept_what_they_should(campaign: Campaign) -> None:
    from pipeline.config import load_config

    config = load_config(
        config_with(campaign, "  read_replies: true\n  frequency_cap: {messages: 2, days: 7}\n")
    )
    assert config.suppression.read_replies is True
    cap = config.suppression.frequency_cap
    assert cap is not None and (cap.messages, cap.days) == (2, 7)
    config = load_config(config_with(campaign, "  read_replies: auto\n  frequency_cap:\n"))
    assert config.suppression.read_replies == "auto"
    assert config.suppression.frequency_cap is None
    with pytest.raises(ConfigError, match="read_replies: must be auto"):
        load_config(config_with(campaign, "  read_replies: 1\n"))


@pytest.mark.parametrize(("count", "said"), [(1, "1 number"), (2, "2 numbers")])
def test_status_counts_the_opt_out_list_in_the_right_number(
    campaign: Campaign, tmp_path: Path, count: int, said: str
) -> None:
    optout = tmp_path / "optout.txt"
    optout.write_text("".join(f"{n}\n" for n in NUMBERS[:count]), encoding="utf-8")
    config = config_with(campaign, f"  path: {optout}\n")
    result = run_status(config)
    assert result.returncode == 0, result.stderr
    assert f"opt-out list: {optout} ({said})" in result.stdout.splitlines()


def test_the_run_points_unknown_rows_to_settle_with_the_config_as_typed(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
) -> None:
    campaign.contacts([(n, "نام", f"C{i}") for i, n in enumerate(NUMBERS, 1)])
    campaign.write_config(
        live_provider(server, concurrency=1), extra="suppression:\n  path: null\n"
    )
    simulator.faults.extend([Fault("drop_after"), Fault("drop_after")])
    result = run_main(campaign.config)
    assert result.returncode == 5, result.stdout + result.stderr
    assert (
        "next: 6 row(s) are `unknown`: the provider may or may not have sent them. Check them "
        "in the AmootSMS panel (reports), then settle them: python -m pipeline settle "
        f"{campaign.config} --as sent|unsent [--numbers FILE] (or rerun with --resend-unknown "
        "to send them all again)."
    ) in result.stdout.splitlines()


@pytest.mark.parametrize(
    ("line", "header"),
    [
        ("mobile,name", True),
        ("mobile1,name", True),
        ("شماره۱,نام", True),
        ("phone_2024,note", True),
        ("09121234567", False),
        ("0912 123 456", False),  # a number short of a digit: an error, not skipped
        ("mobile,1234567", False),
        ("9.12E+09", False),  # Excel's rounding of a number: an error, not skipped
    ],
)
def test_the_header_rule(line: str, header: bool) -> None:
    assert is_header_line(line) is header


def test_settle_numbers_with_a_digit_in_the_header(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator, tmp_path: Path
) -> None:
    """`mobile1,name` is the header, not an unreadable line: settle reads on (exit 0)."""
    campaign.contacts([(n, "نام", f"C{i}") for i, n in enumerate(NUMBERS, 1)])
    campaign.write_config(
        live_provider(server, concurrency=1), extra="suppression:\n  path: null\n"
    )
    simulator.faults.extend([Fault("drop_after"), Fault("drop_after")])
    assert run_main(campaign.config).returncode == 5
    numbers = tmp_path / "checked.csv"
    numbers.write_text("mobile1,name\n09120000001,علی\n", encoding="utf-8")
    done = settle(campaign, "--as", "sent", "--numbers", str(numbers))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "settled 1 unknown row(s) of campaign test-campaign as sent: 09120000001" in (
        done.stdout.splitlines()
    )


def test_both_readers_skip_the_header_and_stop_at_a_broken_first_number(tmp_path: Path) -> None:
    listed = tmp_path / "list.csv"
    listed.write_text("mobile1,name\n09120000001,علی\n", encoding="utf-8")
    assert read_numbers(listed) == ["09120000001"]
    assert load_suppression(listed, "list.csv").numbers == {"09120000001"}
    listed.write_text("0912 000 000\n09120000001\n", encoding="utf-8")
    with pytest.raises(InputError, match=r":1: «0912 000 000»: no mobile number"):
        read_numbers(listed)
    with pytest.raises(InputError, match=r"list.csv:1: «0912 000 000»: no mobile number"):
        load_suppression(listed, "list.csv")
