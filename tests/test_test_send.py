"""--test-to: the first sendable rows' texts go to the operator's own numbers, nothing to any
recipient; the campaign's rows stay as they were and the test is journalled apart."""

from __future__ import annotations

import csv
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from pipeline.campaign import trial_key
from pipeline.config import load_config
from pipeline.errors import InputError
from pipeline.journal import Journal, State
from pipeline.models import Outcome, RunOptions, Status
from pipeline.run import run
from pipeline.sandbox import AmootSimulator, Fault
from pipeline.sandbox_server import SandboxServer
from pipeline.trial import MAX_NUMBERS, parse_test_to
from tests.conftest import (
    TOKEN,
    Campaign,
    GatedSimulator,
    assert_journal_agrees,
    live_provider,
    run_cli,
    run_main,
    sends,
    start_cli,
)

TESTER = "09350000001"  # the operator's own phone: no recipient's
PEOPLE: list[tuple[str, ...]] = [
    ("09121111111", "سارا", "A1"),
    ("09122222222", "علی", "A2"),
    ("not a number", "بی‌شماره", "A0"),
    ("09123333333", "مریم", "A3"),
    ("09124444444", "رضا", "A4"),
]
RECIPIENTS = ["9121111111", "9122222222", "9123333333", "9124444444"]


def _keys(journal: Path) -> dict[str, int]:
    """Each journal key -> its rows."""
    with sqlite3.connect(journal) as conn:
        rows = conn.execute("SELECT campaign, count(*) FROM messages GROUP BY campaign")
        return dict(rows.fetchall())


@pytest.fixture
def live(campaign: Campaign, server: SandboxServer) -> Campaign:
    campaign.contacts(PEOPLE)
    campaign.write_config(live_provider(server), extra="suppression:\n  path: null\n")
    return campaign


def test_only_the_test_number_receives_then_the_campaign_sends_everyone_once(
    live: Campaign, simulator: AmootSimulator
):
    """`--test-to` (the real command line, against the socket fake): the fake accepts one
    message, to the test number, with the first sendable row's text; the report holds that
    message; the campaign has no row in the journal. The normal run after it then sends every
    recipient once, none `already_sent`."""
    result = run_cli(live.config, "--test-to", "0935 000 0001")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [(a.number, a.text) for a in simulator.accepted] == [
        ("9350000001", "سارا عزیز، کد تخفیف شما A1")
    ]
    assert f"test send: 1 message to {TESTER}; the campaign's recipients got nothing" in (
        result.stdout
    )
    test_report = live.report.with_name("report.test.csv")
    assert f"report: {test_report}" in result.stdout
    assert not live.report.exists()  # the campaign's own report is not written
    with test_report.open(encoding="utf-8-sig", newline="") as f:
        tested = list(csv.DictReader(f))
    assert [(r["row"], r["phone"], r["number"], r["status"]) for r in tested] == [
        ("1", TESTER, TESTER, "sent")
    ]
    assert tested[0]["text"] == "سارا عزیز، کد تخفیف شما A1" and tested[0]["message_id"]
    keys = _keys(live.journal)
    assert "test-campaign" not in keys
    (key,) = keys
    assert key.startswith("test:test-campaign@") and keys[key] == 1

    again = run_cli(live.config)
    assert again.returncode == 0, again.stdout + again.stderr
    report = live.read_report()
    assert [r["status"] for r in report] == ["sent", "sent", "invalid", "sent", "sent"]
    campaign_numbers = [a.number for a in simulator.accepted[1:]]
    assert sorted(campaign_numbers) == RECIPIENTS  # each once; the test number not among them
    assert_journal_agrees(live, report)


def test_a_recipient_tested_still_gets_the_campaign_message(
    live: Campaign, simulator: AmootSimulator
):
    """A test number that is also a recipient (row 4) gets row 1's text as the test, and its
    own campaign message in the run after: the test never makes its row `already_sent`."""
    result = run_main(live.config, "--test-to", "09123333333")
    assert result.returncode == 0, result.stderr
    assert [(a.number, a.text) for a in simulator.accepted] == [
        ("9123333333", "سارا عزیز، کد تخفیف شما A1")
    ]
    assert run_main(live.config).returncode == 0
    report = live.read_report()
    assert report[3]["status"] == "sent" and report[3]["error"] == ""
    got = [a.text for a in simulator.accepted if a.number == "9123333333"]
    assert got == ["سارا عزیز، کد تخفیف شما A1", "مریم عزیز، کد تخفیف شما A3"]


def test_the_same_number_can_be_tested_again(live: Campaign, simulator: AmootSimulator):
    """Test sends are not deduplicated against each other: each has its own journal key."""
    for _ in range(2):
        result = run_main(live.config, "--test-to", TESTER)
        assert result.returncode == 0, result.stderr
    assert [a.number for a in simulator.accepted] == ["9350000001", "9350000001"]
    keys = _keys(live.journal)
    assert len(keys) == 2 and all(k.startswith("test:test-campaign@") for k in keys)


def test_several_numbers_take_the_first_sendable_rows_in_order(
    live: Campaign, simulator: AmootSimulator
):
    """Test number i gets the i-th sendable row's text: rows already sent (and invalid ones)
    are passed over, as the run would pass them over."""
    assert run_main(live.config, "--limit", "1").returncode == 0  # row 1 is sent
    simulator.accepted.clear()
    numbers = "09350000001,+989350000002"
    result = run_main(live.config, "--test-to", numbers)
    assert result.returncode == 0, result.stderr
    assert sorted((a.number, a.text[:4]) for a in simulator.accepted) == [
        ("9350000001", "علی "),  # row 2
        ("9350000002", "مریم"),  # row 4: row 3 is invalid
    ]
    assert "test send: 2 messages to 09350000001, 09350000002;" in result.stdout
    rows = [line.split(",")[:4] for line in _test_report_lines(live)]
    assert rows == [
        ["2", "09350000001", "09350000001", "sent"],
        ["4", "09350000002", "09350000002", "sent"],
    ]


def _test_report_lines(campaign: Campaign) -> list[str]:
    text = campaign.report.with_name("report.test.csv").read_text("utf-8-sig")
    return [line for line in text.splitlines()[1:] if line[:1].isdigit()]


def test_fewer_sendable_rows_than_numbers_are_used_again_in_turn(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """Every phone listed gets a message: with two sendable rows and three test numbers the
    third gets row 1's text again."""
    campaign.contacts(PEOPLE[:2])
    campaign.write_config(live_provider(server))
    result = run_main(campaign.config, "--test-to", "09350000001,09350000002,09350000003")
    assert result.returncode == 0, result.stderr
    assert sorted((a.number, a.text[:4]) for a in simulator.accepted) == [
        ("9350000001", "سارا"),
        ("9350000002", "علی "),
        ("9350000003", "سارا"),
    ]
    rows = [line.split(",")[:4] for line in _test_report_lines(campaign)]
    assert rows == [
        ["1", "09350000001", "09350000001", "sent"],
        ["2", "09350000002", "09350000002", "sent"],
        ["1", "09350000003", "09350000003", "sent"],
    ]


def test_nothing_sendable_is_exit_2_and_sends_nothing(live: Campaign, simulator: AmootSimulator):
    """After the whole campaign is sent there is no text left to test: exit 2, saying why."""
    assert run_main(live.config).returncode == 0
    before = len(simulator.requests)
    result = run_main(live.config, "--test-to", TESTER)
    assert result.returncode == 2
    assert "--test-to: no row of the campaign is left to send (4 already_sent, 1 invalid)" in (
        result.stderr
    )
    assert "Nothing was sent." in result.stderr and "Traceback" not in result.stderr
    assert len(simulator.requests) == before


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("0912abc", "'0912abc' is not a mobile number"),
        ("09350000001,02188776655", "'02188776655' is not a mobile number"),
        ("09350000001,0935-000-0001", "09350000001 is given twice"),
        (",", "no number given"),
        (",".join(f"0935000{i:04d}" for i in range(1, 12)), "11 numbers; a test send goes to"),
    ],
)
def test_a_bad_number_list_is_exit_2_naming_it(
    live: Campaign, simulator: AmootSimulator, value: str, said: str
):
    """A list with a number that is not a mobile one, a repeat, none or too many: exit 2,
    the message names it and says the fix, nothing is asked of the provider."""
    result = run_cli(live.config, "--test-to", value)
    assert result.returncode == 2
    assert f"argument --test-to: {said}" in result.stderr, result.stderr
    assert "Fix:" in result.stderr and "Nothing was sent." in result.stderr
    assert simulator.requests == []


def test_the_list_takes_any_number_form():
    """09…, 9…, +98…, 0098…, Persian digits, the Persian comma, spaces around: all the same."""
    assert parse_test_to(" +98 935 000 0001 ،۰۹۳۵۰۰۰۰۰۰۲, 00989350000003,") == (
        "09350000001",
        "09350000002",
        "09350000003",
    )
    assert len(parse_test_to(",".join(f"0935000{i:04d}" for i in range(MAX_NUMBERS)))) == 10


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (("--limit", "2"), "--limit does not apply"),
        (("--dry-run",), "not allowed with argument --test-to"),
        (("--deliveries",), "not allowed with argument --test-to"),
    ],
)
def test_flags_a_test_send_cannot_honour_are_exit_2(
    live: Campaign, simulator: AmootSimulator, flags: tuple[str, ...], said: str
):
    result = run_cli(live.config, "--test-to", TESTER, *flags)
    assert result.returncode == 2 and said in result.stderr, result.stderr
    assert simulator.requests == []


def test_the_preflight_prices_the_test_messages_only(live: Campaign, simulator: AmootSimulator):
    """Credit for one message, not for the campaign's four: the test is sent; with none, it
    is refused (exit 3) before any SendPeerToPeer, naming the one message it needs."""
    simulator.credit_rials = 1_500  # one Persian page at 1,000 rials
    result = run_main(live.config, "--test-to", TESTER)
    assert result.returncode == 0, result.stderr
    assert f"  {'cost':<13}{100:>9,}  tomans, estimated (sent in this run)" in result.stdout
    assert f"  {'credit':<13}{150:>9,}  tomans before this run" in result.stdout
    simulator.credit_rials = 500
    refused = run_main(live.config, "--test-to", TESTER)
    assert refused.returncode == 3
    assert "this run needs 1 messages, 1 pages, about 100 tomans" in refused.stderr
    assert len(sends(simulator)) == 1


def test_a_test_send_takes_the_campaign_lock(
    campaign: Campaign, gated: tuple[GatedSimulator, SandboxServer]
):
    """While a run of the campaign is sending, a test send of it is exit 4 and sends nothing;
    the run then finishes as if the test had never been tried."""
    sim, server = gated
    campaign.contacts(PEOPLE)
    campaign.write_config(live_provider(server, chunk_size=10, concurrency=1))
    proc = start_cli(campaign.config)
    try:
        sim.wait_for_arrivals(1)
        result = run_cli(campaign.config, "--test-to", TESTER)
        assert result.returncode == 4, result.stdout + result.stderr
    finally:
        sim.gate.set()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, out + err
    assert sorted(a.number for a in sim.accepted) == RECIPIENTS


def test_test_sends_never_count_for_the_frequency_cap(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """Campaign `other` tests to a number of this capped campaign: this campaign still sends
    to it. (A real send by `other` to the same number, the control, caps it.)"""
    campaign.contacts(PEOPLE[:2])
    cap = "suppression:\n  path: null\n  frequency_cap: {messages: 1, days: 7}\n"
    campaign.write_config(live_provider(server), campaign="other", extra=cap)
    assert run_main(campaign.config, "--test-to", "09121111111").returncode == 0
    campaign.write_config(live_provider(server), extra=cap)
    first = run_main(campaign.config, "--limit", "1")
    assert first.returncode == 0, first.stderr
    assert campaign.read_report()[0]["status"] == "sent"

    campaign.write_config(live_provider(server), campaign="other", extra=cap)
    assert run_main(campaign.config).returncode == 0  # `other` really sends row 2's number
    campaign.write_config(live_provider(server), extra=cap)
    assert run_main(campaign.config).returncode == 0
    second = campaign.read_report()[1]
    assert second["status"] == "suppressed" and "frequency cap" in second["error"]


def test_the_journal_rule_leaves_test_keys_out_of_sent_elsewhere(tmp_path: Path):
    """sent_elsewhere (the cap's look-up) skips `test:` and `sandbox:` keys, not real ones."""
    path = tmp_path / "journal.sqlite"
    sent = [("09121111111", Outcome(Status.SENT, "", "1", "2"))]
    for key in ("test:spring@20260101-100000-abcdef", "sandbox:test:spring@x", "autumn"):
        with Journal.open(path, key) as journal:
            journal.record(sent)
    with Journal.open(path, "winter", readonly=True) as journal:
        found = journal.sent_elsewhere(datetime(2000, 1, 1, tzinfo=UTC))
    assert found == {"autumn": frozenset({"09121111111"})}


def test_the_campaigns_rows_and_report_are_untouched(live: Campaign, simulator: AmootSimulator):
    """After a partial run, a test send changes none of the campaign's journal rows (its
    unknown and sent rows stay as they were, nothing is recovered) and neither the campaign's
    report nor its `-latest` name; the test's own report is `report.test.csv`."""
    simulator.faults.append(Fault(kind="drop_after"))  # the first request's rows: unknown
    first = run_main(live.config, "--limit", "3")
    assert first.returncode == 5, first.stderr
    report_before = live.report.read_bytes()
    latest = live.report.with_name("test-campaign-latest.csv")
    latest_before = latest.read_bytes()
    with sqlite3.connect(live.journal) as conn:
        rows_before = conn.execute(
            "SELECT * FROM messages WHERE campaign = 'test-campaign' ORDER BY number"
        ).fetchall()
    result = run_main(live.config, "--test-to", TESTER)
    assert result.returncode == 0, result.stderr
    assert simulator.accepted[-1].text.startswith("رضا")  # row 5: rows 1, 2, 4 are unknown
    with sqlite3.connect(live.journal) as conn:
        rows_after = conn.execute(
            "SELECT * FROM messages WHERE campaign = 'test-campaign' ORDER BY number"
        ).fetchall()
    assert rows_after == rows_before and {r[2] for r in rows_after} == {State.UNKNOWN.value}
    assert live.report.read_bytes() == report_before
    assert latest.read_bytes() == latest_before
    assert not live.report.with_name("report.test.html").exists()  # no companion pages


def test_a_test_send_goes_now_whatever_the_schedule(campaign: Campaign, monkeypatch):
    """A campaign scheduled for later (send_at) is tested now: the test message carries no
    SendDateTime in the future (the window and send_at are for the recipients)."""
    monkeypatch.setenv("AMOOT_TOKEN", TOKEN)
    campaign.contacts(PEOPLE[:2])
    campaign.write_config(
        "sandbox: false\ntoken: ${AMOOT_TOKEN}",
        extra='schedule:\n  send_at: 2099-01-01 10:00\n  window: "08:00-08:01"\n',
    )
    sim = AmootSimulator(token=TOKEN)
    moment = datetime(2026, 3, 20, 20, 30, tzinfo=UTC)  # 00:00 in Tehran: outside the window
    result = run(
        load_config(campaign.config),
        RunOptions(test_to=(TESTER,)),
        transport=httpx.MockTransport(sim.handle),
        sleep=lambda _s: False,
        clock=lambda: moment,
    )
    assert result.exit_code == 0 and result.counts[Status.SENT] == 1
    assert [a.send_datetime[:16] for a in sim.accepted] == ["2026-03-21 00:00"]


def test_a_rejected_test_number_is_not_put_on_the_suppression_list(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """A test number the provider rejects (Mobile_Invalid) is `failed` in the test's report,
    and the suppression list is left alone: the operator typed it, no customer opted out."""
    simulator.blacklist = {"9350000001"}
    campaign.contacts(PEOPLE[:2])
    optout = campaign.folder / "optout.txt"
    campaign.write_config(live_provider(server), extra=f"suppression:\n  path: {optout}\n")
    result = run_main(campaign.config, "--test-to", TESTER)
    assert result.returncode == 0, result.stderr
    assert _test_report_lines(campaign)[0].split(",")[3] == "failed"
    assert not optout.exists() or TESTER not in optout.read_text("utf-8")
    assert "--retry-failed" not in result.stdout


def test_sandbox_test_keys_stay_in_the_sandbox(campaign: Campaign):
    """A sandbox test send's key starts `sandbox:test:`, a live one's `test:`; each is new."""
    campaign.contacts(PEOPLE[:1])
    campaign.write_config("sandbox: true")
    config = load_config(campaign.config)
    moment = datetime(2026, 3, 20, 20, 30, tzinfo=UTC)
    key = trial_key(config, moment)
    assert key.startswith("sandbox:test:test-campaign@20260321-000000-")
    assert trial_key(config, moment) != key
    result = run(config, RunOptions(test_to=(TESTER,)))
    assert result.exit_code == 0 and result.counts[Status.SENT] == 1
    assert result.report_path.name == "report.test.csv"
    (found,) = _keys(campaign.journal)
    assert found.startswith("sandbox:test:test-campaign@")


def test_no_sendable_row_names_what_the_rows_are(campaign: Campaign):
    """Only invalid rows: the error counts them."""
    campaign.contacts([("123", "x", "y")])
    campaign.write_config("sandbox: true")
    with pytest.raises(InputError, match=r"left to send \(1 invalid\)"):
        run(load_config(campaign.config), RunOptions(test_to=(TESTER,)))
