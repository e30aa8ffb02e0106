"""suppression.frequency_cap: numbers other live campaigns already messaged are `suppressed`.

Every campaign here shares one journal (state/journal.sqlite) and sends over a real socket to
the fake (`server`); each test's docstring states the rule it checks.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from pipeline.sandbox import AmootSimulator
from pipeline.sandbox_server import SandboxServer
from tests.conftest import Campaign, live_provider, run_main, sends

NUMBERS = [f"0912000000{i}" for i in range(1, 6)]
CAP_1_IN_7 = "frequency_cap: {messages: 1, days: 7}"


def setup(
    campaign: Campaign,
    server: SandboxServer,
    name: str,
    numbers: list[str],
    *,
    cap: str = "",
    sandbox: bool = False,
) -> None:
    """Campaign `name` to `numbers`, with no opt-out list (only the cap suppresses)."""
    campaign.contacts([(n, "نام", f"C{i}") for i, n in enumerate(numbers, 1)])
    provider = "sandbox: true" if sandbox else live_provider(server)
    extra = "suppression:\n  path: null\n" + (f"  {cap}\n" if cap else "")
    campaign.write_config(provider, campaign=name, extra=extra)


def run(campaign: Campaign, *args: str, exit_code: int = 0) -> dict[str, dict[str, str]]:
    result = run_main(campaign.config, *args)
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return {r["number"]: r for r in campaign.read_report()}


def sent_to(simulator: AmootSimulator, since: int = 0) -> list[str]:
    return [item["Number"] for r in sends(simulator)[since:] for item in r.body["Input"]]


def statuses(report: dict[str, dict[str, str]]) -> dict[str, str]:
    return {n: r["status"] for n, r in report.items()}


def test_numbers_another_campaign_messaged_this_week_are_suppressed_naming_it(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
) -> None:
    """A sends to three numbers; B (1 in 7 days) suppresses them, naming A, sends the other two;
    the fake receives only those two, and the summary counts three suppressed."""
    setup(campaign, server, "yalda-1404", NUMBERS[:3])
    run(campaign)
    before = len(sends(simulator))
    setup(campaign, server, "spring-1405", NUMBERS, cap=CAP_1_IN_7)
    result = run_main(campaign.config)
    assert result.returncode == 0, result.stdout + result.stderr
    report = {r["number"]: r for r in campaign.read_report()}
    assert statuses(report) == dict.fromkeys(NUMBERS[:3], "suppressed") | dict.fromkeys(
        NUMBERS[3:], "sent"
    )
    assert report[NUMBERS[0]]["error"] == (
        "frequency cap: 1 message(s) in the last 7 days already sent (campaigns yalda-1404); "
        "suppression.frequency_cap allows 1"
    )
    assert sorted(n[-10:] for n in sent_to(simulator, before)) == [n[-10:] for n in NUMBERS[3:]]
    assert "suppressed           3" in result.stdout
    assert "sent                 2" in result.stdout


def test_sends_older_than_the_cap_s_days_do_not_count(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
) -> None:
    """A's sends moved 8 days back in the journal: a 7-day cap lets B send to them all, while a
    9-day cap still suppresses them (the window is counted from the run's clock)."""
    setup(campaign, server, "yalda-1404", NUMBERS[:3])
    run(campaign)
    old = (datetime.now(UTC) - timedelta(days=8)).isoformat(timespec="milliseconds")
    with sqlite3.connect(campaign.journal) as conn:
        conn.execute("UPDATE messages SET updated_at = ?", (old,))
    conn.close()
    setup(campaign, server, "nowruz-1405", NUMBERS, cap="frequency_cap: {messages: 1, days: 9}")
    assert statuses(run(campaign, "--dry-run")) == dict.fromkeys(
        NUMBERS[:3], "suppressed"
    ) | dict.fromkeys(NUMBERS[3:], "dry_run")
    setup(campaign, server, "spring-1405", NUMBERS, cap=CAP_1_IN_7)
    assert set(statuses(run(campaign)).values()) == {"sent"}


def test_sandbox_sends_never_count_and_a_sandbox_run_applies_the_live_cap(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
) -> None:
    """A sandbox campaign's "sends" do not count towards the cap; a sandbox run of a capped
    campaign shows what the live run would do (A's live sends suppress), as does a dry run,
    which changes nothing in the journal."""
    setup(campaign, server, "trial", NUMBERS, sandbox=True)
    assert set(statuses(run(campaign)).values()) == {"sent"}
    setup(campaign, server, "yalda-1404", NUMBERS[:2])
    run(campaign)
    setup(campaign, server, "spring-1405", NUMBERS, cap=CAP_1_IN_7, sandbox=True)
    report = run(campaign)
    assert statuses(report) == dict.fromkeys(NUMBERS[:2], "suppressed") | dict.fromkeys(
        NUMBERS[2:], "sent"
    )
    assert "(campaigns yalda-1404)" in report[NUMBERS[0]]["error"]  # not "trial"
    setup(campaign, server, "spring-1405", NUMBERS, cap=CAP_1_IN_7)
    journal = campaign.journal.read_bytes()
    report = run(campaign, "--dry-run")
    assert statuses(report) == dict.fromkeys(NUMBERS[:2], "suppressed") | dict.fromkeys(
        NUMBERS[2:], "dry_run"
    )
    assert campaign.journal.read_bytes() == journal


def test_two_messages_allowed_lets_one_more_through(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
) -> None:
    """messages: 2: after A, B still sends (one earlier message); after A and B, C does not,
    and its error counts and names both."""
    cap = "frequency_cap: {messages: 2, days: 7}"
    setup(campaign, server, "yalda-1404", NUMBERS[:2])
    run(campaign)
    setup(campaign, server, "spring-1405", NUMBERS[:1], cap=cap)
    assert statuses(run(campaign)) == {NUMBERS[0]: "sent"}
    setup(campaign, server, "summer-1405", NUMBERS[:3], cap=cap)
    report = run(campaign)
    assert statuses(report) == {NUMBERS[0]: "suppressed", NUMBERS[1]: "sent", NUMBERS[2]: "sent"}
    assert report[NUMBERS[0]]["error"] == (
        "frequency cap: 2 message(s) in the last 7 days already sent "
        "(campaigns spring-1405, yalda-1404); suppression.frequency_cap allows 2"
    )


def test_rows_this_campaign_sent_stay_already_sent_and_resent_unknown_are_capped(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
) -> None:
    """B sent to a number before A did: B's rerun reports it `already_sent`, not capped. A row
    --resend-unknown would send again is capped like a new one."""
    setup(campaign, server, "spring-1405", NUMBERS[:1])
    run(campaign)
    setup(campaign, server, "yalda-1404", NUMBERS[:2])
    run(campaign)
    with sqlite3.connect(campaign.journal) as conn:  # as a dropped answer leaves it
        conn.execute(
            "INSERT INTO messages (campaign, number, state, attempts, updated_at) "
            "VALUES ('spring-1405', ?, 'unknown', 1, '2026-01-01T00:00:00.000+00:00')",
            (NUMBERS[1],),
        )
    conn.close()
    setup(campaign, server, "spring-1405", NUMBERS[:3], cap=CAP_1_IN_7)
    before = len(sends(simulator))
    report = run(campaign, "--resend-unknown")
    assert statuses(report) == {
        NUMBERS[0]: "already_sent",
        NUMBERS[1]: "suppressed",
        NUMBERS[2]: "sent",
    }
    assert [n[-10:] for n in sent_to(simulator, before)] == [NUMBERS[2][-10:]]


def test_the_preflight_prices_only_the_rows_the_cap_lets_through(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
) -> None:
    """Credit for two one-page messages: five rows, three capped, fit (exit 0); the plan's
    message and page counts leave the capped rows out."""
    setup(campaign, server, "yalda-1404", NUMBERS[:3])
    run(campaign)
    simulator.credit_rials = 2_500  # two one-page Persian messages at 1,000 rials, not three
    setup(campaign, server, "spring-1405", NUMBERS, cap=CAP_1_IN_7)
    report = run(campaign)
    assert sorted(n for n, s in statuses(report).items() if s == "sent") == NUMBERS[3:]
