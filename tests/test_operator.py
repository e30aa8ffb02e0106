"""The operator's features through whole runs: window, lateness, opt-out, footer, templates."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from pipeline.config import load_config
from pipeline.models import RunOptions, Status
from pipeline.run import run
from pipeline.sandbox import AmootSimulator
from tests.conftest import TOKEN, Campaign

# 2026-11-26 03:00 UTC is 06:30 in Tehran: before an 08:00-21:00 window.
EARLY = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
# 2026-11-26 07:00 UTC is 10:30 in Tehran: inside it.
MORNING = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)

PROVIDER = "sandbox: false\ntoken: ${AMOOT_TOKEN}\nchunk_size: 2\nconcurrency: 1"


@pytest.fixture
def go(campaign: Campaign, monkeypatch):
    monkeypatch.setenv("AMOOT_TOKEN", TOKEN)
    sim = AmootSimulator(token=TOKEN)
    campaign.contacts([(f"0912000{i:04d}", f"نام{i}", f"C{i}") for i in range(1, 6)])

    def _run(extra: str = "", *, now: datetime = MORNING, provider: str = PROVIDER, **opts):
        campaign.write_config(provider, extra=extra)
        result = run(
            load_config(campaign.config),
            RunOptions(**opts),
            transport=httpx.MockTransport(sim.handle),
            clock=lambda: now,
            sleep=lambda _s: False,
        )
        return result, sim

    return _run


def test_outside_the_window_nothing_is_sent_and_exit_is_0(go, campaign):
    """Before the window opens: rows pending, exit 0, and the summary says when it opens."""
    result, sim = go('schedule:\n  window: "08:00-21:00"\n', now=EARLY)
    assert sim.requests == []
    assert result.exit_code == 0
    assert result.counts[Status.PENDING] == 5
    assert "08:00-21:00" in result.held and "2026-11-26 08:00" in result.held
    assert {r["error"] for r in campaign.read_report()} == {result.held}


def test_inside_the_window_it_sends(go):
    """At 10:30 Tehran the same config sends everything."""
    result, sim = go('schedule:\n  window: "08:00-21:00"\n', now=MORNING)
    assert result.counts[Status.SENT] == 5 and len(sim.accepted) == 5


def test_outside_the_window_can_schedule_for_its_opening(go):
    """outside_window: schedule posts now with SendDateTime = the window's start (Tehran)."""
    extra = 'schedule:\n  window: "08:00-21:00"\n  outside_window: schedule\n'
    result, sim = go(extra, now=EARLY)
    assert result.counts[Status.SENT] == 5
    assert {a.send_datetime for a in sim.accepted} == {"2026-11-26 08:00:00"}


def test_future_send_at_is_passed_as_send_datetime(go):
    """send_at in Jalali (Tehran) becomes the provider's SendDateTime."""
    result, sim = go('schedule:\n  send_at: "1405/09/07 10:15"\n', now=MORNING)
    assert result.counts[Status.SENT] == 5
    assert {a.send_datetime for a in sim.accepted} == {"2026-11-28 10:15:00"}


def test_a_stale_campaign_is_refused(go, campaign):
    """A run long after send_at (a delayed cron) refuses to send: exit 3, rows pending."""
    extra = 'schedule:\n  send_at: "2026-11-25 09:00"\n  max_lateness: 2h\n'
    result, sim = go(extra, now=MORNING)
    assert result.exit_code == 3
    assert sim.requests == []
    assert result.counts[Status.PENDING] == 5
    assert "max_lateness" in str(result.stopped)


def test_suppression_list_in_any_format(go, campaign):
    """Numbers on the list, written in any format the normaliser reads, are `suppressed`."""
    (campaign.folder / "optout.txt").write_text(
        "# opted out\n+98 912 000 0001\n۰۹۱۲۰۰۰۰۰۰۲  # by phone\n9120000003,from a CSV\n",
        "utf-8",
    )
    result, sim = go("suppression:\n  path: optout.txt\n")
    assert result.counts[Status.SUPPRESSED] == 3 and result.counts[Status.SENT] == 2
    assert sorted(a.number for a in sim.accepted) == ["9120000004", "9120000005"]
    rows = campaign.read_report()
    assert rows[0]["status"] == "suppressed" and rows[0]["error"] == "on the suppression list"


def test_blacklisted_number_is_suppressed_in_the_next_campaign(go, campaign):
    """Mobile_Invalid for a locally valid number goes on the list; the next campaign skips it."""
    extra = "suppression:\n  path: optout.txt\n"
    campaign.contacts([("09120000005", "x", "y"), ("09120000006", "z", "w")])
    campaign.write_config(PROVIDER, extra=extra)
    sim = AmootSimulator(token=TOKEN, blacklist=["09120000005"])
    first = run(
        load_config(campaign.config),
        RunOptions(),
        transport=httpx.MockTransport(sim.handle),
        clock=lambda: MORNING,
    )
    assert first.counts[Status.FAILED] == 1 and first.suppressed_added == 1
    assert "09120000005" in (campaign.folder / "optout.txt").read_text("utf-8")
    campaign.write_config(PROVIDER, campaign="next-campaign", extra=extra)
    second = run(
        load_config(campaign.config),
        RunOptions(),
        transport=httpx.MockTransport(sim.handle),
        clock=lambda: MORNING,
    )
    assert second.counts[Status.SUPPRESSED] == 1 and second.counts[Status.SENT] == 1


def test_optout_footer_is_appended_and_counted_in_pages(go, campaign):
    """The footer stands on its own line and its characters count toward the pages."""
    (campaign.folder / "message.j2").write_text("{{ 'ب' * 66 }}", "utf-8")
    alone, _ = go(dry_run=True)
    assert alone.pages_total == 5  # 66 UCS-2 units: one page each
    campaign.write_config(PROVIDER)
    text = campaign.config.read_text("utf-8").replace(
        "  path: message.j2\n", '  path: message.j2\n  optout_footer: "لغو۱۱"\n'
    )
    campaign.config.write_text(text, "utf-8")
    with_footer = run(load_config(campaign.config), RunOptions(dry_run=True), clock=lambda: MORNING)
    rows = campaign.read_report()
    assert rows[0]["text"] == "ب" * 66 + "\nلغو۱۱"
    assert rows[0]["pages"] == "2"  # 66 + newline + 5 = 72 units: two pages
    assert with_footer.pages_total == 10


def test_too_many_pages_is_invalid_with_the_count(go, campaign):
    """A text over template.max_pages is `invalid` and says how many pages it had."""
    (campaign.folder / "message.j2").write_text("{{ 'ب' * 300 }}", "utf-8")
    result, sim = go()
    assert result.counts[Status.INVALID] == 5 and sim.accepted == []
    assert "5 pages" in campaign.read_report()[0]["error"]


def test_per_row_template_from_a_column(campaign, monkeypatch):
    """A contacts column names each row's template file; empty cells use template.path."""
    monkeypatch.setenv("AMOOT_TOKEN", TOKEN)
    (campaign.folder / "vip.j2").write_text("VIP {{ first_name }}", "utf-8")
    campaign.contacts(
        [("09120000001", "a", "vip.j2"), ("09120000002", "b", ""), ("09120000003", "c", "no.j2")],
        header="mobile,first_name,code\n",
    )
    campaign.write_config(PROVIDER, extra="")
    text = campaign.config.read_text("utf-8").replace(
        "  path: message.j2\n", "  path: message.j2\n  column: code\n"
    )
    campaign.config.write_text(text, "utf-8")
    sim = AmootSimulator(token=TOKEN)
    run(load_config(campaign.config), RunOptions(), transport=httpx.MockTransport(sim.handle))
    rows = campaign.read_report()
    assert rows[0]["text"] == "VIP a"
    assert rows[1]["text"].startswith("b عزیز")
    assert rows[2]["status"] == "invalid" and "no.j2" in rows[2]["error"]


def test_arabic_letters_in_contact_data_become_persian(campaign, monkeypatch):
    """ي and ك in a name are written as ی and ک in the SMS (normalise_text, on by default)."""
    monkeypatch.setenv("AMOOT_TOKEN", TOKEN)
    campaign.contacts([("09120000001", "علي كريمي", "C1")])
    campaign.write_config(PROVIDER)
    sim = AmootSimulator(token=TOKEN)
    run(load_config(campaign.config), RunOptions(), transport=httpx.MockTransport(sim.handle))
    assert campaign.read_report()[0]["text"].startswith("علی کریمی عزیز")


def test_attention_file_holds_original_columns_of_rows_to_fix(go, campaign):
    """failed / invalid / unknown rows go to <report>-attention.csv with status and error."""
    campaign.contacts([("09120000001", "a", "C1"), ("0212", "b", "C2")])
    result, _ = go()
    assert result.attention_path is not None
    lines = result.attention_path.read_text("utf-8-sig").splitlines()
    assert lines[0] == "mobile,first_name,code,status,error"
    assert lines[1].startswith("0212,b,C2,invalid,")
    assert len(lines) == 2


def test_an_unwritable_suppression_list_warns_and_the_run_goes_on(campaign, monkeypatch):
    """A blacklisted number that cannot be added to the list is a warning, not a stop."""
    monkeypatch.setenv("AMOOT_TOKEN", TOKEN)
    # A list that reads as empty (it does not exist yet) but cannot be created, even by root:
    # its folder would be inside /proc.
    (campaign.folder / "optout").symlink_to("/proc/no-such-folder/optout.txt")
    campaign.contacts([("09120000005", "x", "y"), ("09120000006", "z", "w")])
    campaign.write_config(PROVIDER, extra="suppression:\n  path: optout\n")
    sim = AmootSimulator(token=TOKEN, blacklist=["09120000005"])
    lines: list[str] = []
    result = run(
        load_config(campaign.config),
        RunOptions(),
        transport=httpx.MockTransport(sim.handle),
        log=lines.append,
    )
    assert result.exit_code == 0
    assert result.counts[Status.FAILED] == 1 and result.counts[Status.SENT] == 1
    assert any(line.startswith("warning:") for line in lines)
