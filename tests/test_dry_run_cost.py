"""A live dry run prices exactly the rows that would be sent, with the account's own tariff
(AccountStatus, read-only), shows the credit, and says why when the cost is unknown."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from pipeline.config import load_config
from pipeline.models import RunOptions, Status
from pipeline.run import run
from pipeline.sandbox import AmootSimulator, Fault
from pipeline.sandbox_server import SandboxServer
from tests.conftest import TOKEN, Campaign, live_provider, run_cli, run_main

LONG = "فرزانه " * 9  # a name that makes row 2's text two UCS-2 pages
PEOPLE: list[tuple[str, ...]] = [
    ("09121111111", "سارا", "A1"),  # 1 page
    ("09122222222", LONG.strip(), "A2"),  # 2 pages
    ("not a number", "بی‌شماره", "A0"),  # invalid
    ("0912 111 1111", "تکراری", "A9"),  # duplicate of row 1
    ("09123333333", "مریم", "A3"),  # suppressed
    ("09124444444", "رضا", "A4"),  # 1 page
]


def _cost(tomans: int, scope: str = "would be sent") -> str:
    return f"  {'cost':<13}{tomans:>9,}  tomans, estimated ({scope})"


def _credit(tomans: int) -> str:
    return f"  {'credit':<13}{tomans:>9,}  tomans before this run"


@pytest.fixture
def live(campaign: Campaign, server: SandboxServer) -> Campaign:
    campaign.contacts(PEOPLE)
    optout = campaign.folder / "optout.txt"
    optout.write_text("09123333333\n", "utf-8")
    campaign.write_config(live_provider(server), extra=f"suppression:\n  path: {optout}\n")
    return campaign


def test_the_dry_runs_cost_before_and_after_a_partial_send(
    live: Campaign, simulator: AmootSimulator
):
    """Before: rows 1, 2 and 6 (4 pages at the fake's 1,000-rial Persian base price: 400
    tomans); invalid, duplicate and suppressed rows count for nothing. After `--limit 1`
    sent row 1: only the rest (3 pages, 300 tomans), and the credit the account has now."""
    before = run_cli(live.config, "--dry-run")
    assert before.returncode == 0, before.stdout + before.stderr
    assert [r.method for r in simulator.requests] == ["AccountStatus"]
    assert f"  {'pages':<13}{4:>9,}  (would be sent)" in before.stdout
    assert _cost(400) in before.stdout and _credit(1_000_000) in before.stdout
    assert [r["status"] for r in live.read_report()] == [
        "dry_run", "dry_run", "invalid", "duplicate", "suppressed", "dry_run",
    ]  # fmt: skip

    sent = run_main(live.config, "--limit", "1")
    assert sent.returncode == 0, sent.stderr
    assert _cost(100, "sent in this run") in sent.stdout

    after = run_main(live.config, "--dry-run")
    assert after.returncode == 0, after.stderr
    assert f"  {'pages':<13}{3:>9,}  (would be sent)" in after.stdout
    assert _cost(300) in after.stdout and _credit(999_900) in after.stdout
    assert live.read_report()[0]["status"] == "already_sent"


def test_a_dry_run_with_limit_prices_the_rows_the_limit_lets_through(live: Campaign):
    """`--dry-run --limit 1` costs what `--limit 1` would send: row 1's one page."""
    result = run_main(live.config, "--dry-run", "--limit", "1")
    assert result.returncode == 0, result.stderr
    assert f"  {'pages':<13}{1:>9,}  (would be sent)" in result.stdout
    assert _cost(100) in result.stdout


def test_the_dry_run_uses_the_configured_tariff(live: Campaign, server: SandboxServer):
    """provider.tariff: service prices at ServiceSMS_PersianPrice (2,050 rials a page)."""
    optout = live.folder / "optout.txt"
    live.write_config(
        live_provider(server, tariff="service"), extra=f"suppression:\n  path: {optout}\n"
    )
    result = run_main(live.config, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert _cost(820) in result.stdout


def test_accountstatus_refused_leaves_the_cost_unknown_and_the_dry_run_done(
    live: Campaign, simulator: AmootSimulator
):
    """A fatal title to AccountStatus: the dry run still writes its report (exit 0) and says
    the cost is unknown and why, in place of the cost line."""
    simulator.faults.append(Fault(kind="title", method="AccountStatus", title="Token_Disabled"))
    result = run_main(live.config, "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "  cost unknown: AccountStatus failed (Token_Disabled (the token is disabled))"
        in result.stdout
    )
    assert "tomans" not in result.stdout
    assert [r["status"] for r in live.read_report()].count("dry_run") == 3


def test_an_unreachable_provider_leaves_the_cost_unknown(campaign: Campaign, monkeypatch):
    """AccountStatus unreachable after every attempt (connections refused; no real sleeps):
    the dry run completes, exit 0, the cost unknown with the reason."""
    monkeypatch.setenv("AMOOT_TOKEN", TOKEN)
    campaign.contacts(PEOPLE[:2])
    campaign.write_config("sandbox: false\ntoken: ${AMOOT_TOKEN}\nmax_attempts: 2")
    sim = AmootSimulator(token=TOKEN)
    sim.faults.extend(Fault(kind="drop_before", method="AccountStatus") for _ in range(2))
    result = run(
        load_config(campaign.config),
        RunOptions(dry_run=True),
        transport=httpx.MockTransport(sim.handle),
        sleep=lambda _s: False,
    )
    assert result.exit_code == 0 and result.counts[Status.DRY_RUN] == 2
    assert result.cost_rials is None and result.credit_rials is None
    assert result.unpriced == "AccountStatus failed (no answer: cannot connect: ConnectError)"
    assert campaign.report.exists()


def test_nothing_left_to_send_costs_0_without_asking(live: Campaign, simulator: AmootSimulator):
    """Once every row is settled, the dry run and the run both say `cost 0 tomans`, and ask
    the provider nothing."""
    assert run_main(live.config).returncode == 0
    asked = len(simulator.requests)
    for args, scope in ((("--dry-run",), "would be sent"), ((), "sent in this run")):
        result = run_main(live.config, *args)
        assert result.returncode == 0, result.stderr
        assert _cost(0, scope) in result.stdout, result.stdout
    assert len(simulator.requests) == asked


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_dry_run_leaves_the_journal_byte_for_byte_and_no_wal_or_shm(
    live: Campaign, simulator: AmootSimulator
):
    """After a partial run, a live dry run (and a sandbox one) reads the journal and leaves it
    as it was, byte for byte, with no -wal or -shm file beside it."""
    assert run_main(live.config, "--limit", "1").returncode == 0
    folder = live.journal.parent
    before = _digest(live.journal)
    files = sorted(p.name for p in folder.iterdir())
    assert "journal.sqlite-wal" not in files and "journal.sqlite-shm" not in files
    result = run_main(live.config, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert live.read_report()[0]["status"] == "already_sent"  # it did read the journal
    assert _digest(live.journal) == before
    assert sorted(p.name for p in folder.iterdir()) == files
