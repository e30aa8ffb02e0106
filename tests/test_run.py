"""A whole run in-process (fake provider via MockTransport): journal, flags, exit codes."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from pipeline.config import load_config
from pipeline.errors import DiskTrouble, InputError, TemplateError
from pipeline.journal import Journal
from pipeline.models import Outcome, RunOptions, Status
from pipeline.plan import TEXT_NOT_KEPT
from pipeline.run import RunResult, run
from pipeline.sandbox import AmootSimulator, Fault
from tests.conftest import TOKEN, Campaign, assert_journal_agrees


def _go(campaign: Campaign, sim: AmootSimulator, **options: object):
    config = load_config(campaign.config)
    return run(
        config,
        RunOptions(**options),  # type: ignore[arg-type]
        transport=httpx.MockTransport(sim.handle),
        sleep=lambda _s: False,
    )


@pytest.fixture
def setup(campaign: Campaign, monkeypatch):
    monkeypatch.setenv("AMOOT_TOKEN", TOKEN)
    campaign.contacts([(f"0912000{i:04d}", f"نام{i}", f"C{i}") for i in range(1, 11)])
    campaign.write_config(
        "sandbox: false\nbase_url: https://portal.amootsms.com/rest\n"
        "token: ${AMOOT_TOKEN}\nchunk_size: 3\nconcurrency: 2",
        extra="suppression:\n  path: null\n",  # a rejected number stays a `failed` row
    )
    return campaign, AmootSimulator(token=TOKEN)


def test_dry_run_sends_nothing_and_creates_no_journal(setup):
    """--dry-run renders every row and writes the report, with no journal and no request but
    the read-only AccountStatus that prices it."""
    campaign, sim = setup
    result = _go(campaign, sim, dry_run=True)
    assert [r.method for r in sim.requests] == ["AccountStatus"]
    assert not campaign.journal.exists()
    assert result.counts[Status.DRY_RUN] == 10
    assert result.exit_code == 0
    rows = campaign.read_report()
    assert rows[0]["text"] == "نام1 عزیز، کد تخفیف شما C1" and rows[0]["pages"] == "1"


def test_limit_holds_the_rest_pending_and_the_next_run_continues(setup):
    """--limit N sends N; the rest are pending (exit 0); a rerun sends only the rest."""
    campaign, sim = setup
    first = _go(campaign, sim, limit=4)
    assert first.counts[Status.SENT] == 4 and first.counts[Status.PENDING] == 6
    assert first.exit_code == 0
    second = _go(campaign, sim)
    assert second.counts[Status.ALREADY_SENT] == 4 and second.counts[Status.SENT] == 6
    assert len(sim.accepted) == 10
    assert len({a.number for a in sim.accepted}) == 10


def test_editing_the_template_never_resends(setup):
    """The journal key is (campaign, number): a new text does not make a new message."""
    campaign, sim = setup
    _go(campaign, sim)
    (campaign.folder / "message.j2").write_text("متن تازه {{ code }}", "utf-8")
    again = _go(campaign, sim)
    assert again.counts[Status.ALREADY_SENT] == 10
    assert len(sim.accepted) == 10
    report = campaign.read_report()
    assert all(r["message_id"] for r in report)


def test_a_sent_row_whose_text_the_journal_lacks_keeps_todays_render(setup):
    """A journal row recorded `sent` without its text (only a caller bug records a number that
    was never marked) shows today's render, and its error says the text sent is not known."""
    campaign, sim = setup
    campaign.journal.parent.mkdir()
    with Journal.open(campaign.journal, "test-campaign") as journal:
        journal.record([("09120000001", Outcome(Status.SENT, "", "7001", "8001"))])
    result = _go(campaign, sim, dry_run=True)
    assert result.counts[Status.ALREADY_SENT] == 1
    first = campaign.read_report()[0]
    assert (first["status"], first["error"]) == ("already_sent", TEXT_NOT_KEPT)
    assert (first["text"], first["pages"]) == ("نام1 عزیز، کد تخفیف شما C1", "1")
    assert result.pages_total == 9  # the nine rows a sending run would send, one page each


def test_unknown_rows_exit_5_and_are_resent_only_on_request(setup):
    """An ambiguous answer leaves rows unknown (exit 5); only --resend-unknown sends them again."""
    campaign, sim = setup
    sim.faults.append(Fault(kind="drop_after"))
    first = _go(campaign, sim)
    assert first.counts[Status.UNKNOWN] == 3
    assert first.exit_code == 5
    assert len(sim.accepted) == 10  # the dropped request was processed by the fake

    second = _go(campaign, sim)
    assert second.counts[Status.UNKNOWN] == 3 and second.exit_code == 5
    assert len(sim.accepted) == 10

    third = _go(campaign, sim, resend_unknown=True)
    assert third.counts[Status.SENT] == 3 and third.exit_code == 0
    assert len(sim.accepted) == 13  # the operator chose to resend: exactly those three again


def test_failed_rows_are_retried_only_with_retry_failed(setup):
    """A provider rejection stays `failed` on rerun unless --retry-failed is given."""
    campaign, sim = setup
    sim.blacklist.add("9120000005")
    first = _go(campaign, sim)
    assert first.counts[Status.FAILED] == 1
    again = _go(campaign, sim)
    assert again.counts[Status.FAILED] == 1
    assert len([r for r in sim.requests if r.method == "SendPeerToPeer"]) == 4
    sim.blacklist.clear()
    retried = _go(campaign, sim, retry_failed=True)
    assert retried.counts[Status.SENT] == 1 and retried.counts[Status.ALREADY_SENT] == 9


def test_fatal_mid_run_exits_3_and_rerun_continues(setup):
    """CreditNotEnough on the 2nd request: exit 3, rest pending; after a top-up it continues."""
    campaign, sim = setup
    config = load_config(campaign.config)
    # preflight off: the credit runs out during the run, not before it
    config = config.model_copy(
        update={
            "provider": config.provider.model_copy(update={"concurrency": 1, "preflight": False})
        }
    )
    sim.credit_rials = 3 * 1000  # one chunk of three one-page Persian messages at 1000 rials
    first = run(config, RunOptions(), transport=httpx.MockTransport(sim.handle))
    assert first.exit_code == 3
    assert first.counts[Status.SENT] == 3
    assert first.counts[Status.PENDING] == 7
    assert "CreditNotEnough" in str(first.stopped)
    sim.credit_rials = 10_000_000
    second = run(config, RunOptions(), transport=httpx.MockTransport(sim.handle))
    assert second.exit_code == 0
    assert second.counts[Status.ALREADY_SENT] == 3 and second.counts[Status.SENT] == 7
    assert len({a.number for a in sim.accepted}) == len(sim.accepted) == 10


def test_report_cells_cannot_become_formulas(campaign: Campaign, monkeypatch):
    """A contact value starting with = or @ is quoted in the report; +98 phone numbers stay."""
    monkeypatch.setenv("AMOOT_TOKEN", TOKEN)
    campaign.contacts([("+989120000001", "=HYPERLINK(1)", "C1"), ("@evil", "x", "C2")])
    (campaign.folder / "message.j2").write_text("{{ first_name }}", "utf-8")
    campaign.write_config("sandbox: true")
    sim = AmootSimulator()
    run(
        load_config(campaign.config),
        RunOptions(dry_run=True),
        transport=httpx.MockTransport(sim.handle),
    )
    rows = campaign.read_report()
    assert rows[0]["phone"] == "+989120000001"
    assert rows[0]["text"] == "'=HYPERLINK(1)"
    assert rows[1]["phone"] == "'@evil"


def test_sandbox_sends_never_count_as_sent_for_real(setup):
    """A campaign tried in the sandbox and then switched to live sends every row for real."""
    campaign, sim = setup
    live = campaign.config.read_text(encoding="utf-8")
    campaign.config.write_text(live.replace("sandbox: false", "sandbox: true"), "utf-8")
    trial = run(load_config(campaign.config), RunOptions())
    assert trial.counts[Status.SENT] == 10 and sim.requests == []
    campaign.config.write_text(live, "utf-8")
    real = _go(campaign, sim)
    assert real.counts[Status.SENT] == 10
    assert len(sim.accepted) == 10


def test_preflight_refuses_a_campaign_the_credit_cannot_pay(setup):
    """Before the first send, pages x tariff is checked against RemaindCredit: exit 3, none sent."""
    campaign, sim = setup
    sim.credit_rials = 9 * 1000  # ten one-page Persian messages at 1000 rials need 10,000
    result = _go(campaign, sim)
    assert result.exit_code == 3
    assert "10,000 messages" not in str(result.stopped)
    assert "1,000 tomans" in str(result.stopped) and "900 tomans" in str(result.stopped)
    assert sim.accepted == []
    assert [r.method for r in sim.requests] == ["AccountStatus"]
    assert result.counts[Status.PENDING] == 10


def test_preflight_refuses_above_max_cost(setup):
    """provider.max_cost (tomans) caps what one run may spend."""
    campaign, sim = setup
    text = campaign.config.read_text(encoding="utf-8")
    campaign.config.write_text(text.replace("concurrency: 2", "concurrency: 2\n  max_cost: 500"))
    result = _go(campaign, sim)
    assert result.exit_code == 3 and "max_cost" in str(result.stopped)
    assert sim.accepted == []


def _scripted(
    sim: AmootSimulator, misbehave: Callable[[httpx.Request, int], httpx.Response | None]
) -> httpx.MockTransport:
    """A transport that answers like `sim`, except where `misbehave(request, n)` answers."""
    calls = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("SendPeerToPeer"):
            calls.append(request)
            answer = misbehave(request, len(calls))
            if answer is not None:
                return answer
        return sim.handle(request)

    return httpx.MockTransport(handle)


def test_an_undecodable_answer_is_unknown_not_a_crash(setup):
    """A 200 whose body cannot be decoded (a proxy's broken gzip) may hide a processed request:
    its rows are `unknown` (exit 5), the rest are sent, nothing crashes."""
    campaign, sim = setup

    def broken_gzip(request, n):
        if n == 2:
            sim.handle(request)  # the provider did process it
            return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"not gzip")
        return None

    config = load_config(campaign.config)
    result = run(config, RunOptions(), transport=_scripted(sim, broken_gzip))
    assert result.exit_code == 5
    assert result.counts[Status.UNKNOWN] == 3 and result.counts[Status.SENT] == 7
    assert len({a.number for a in sim.accepted}) == len(sim.accepted) == 10


def test_list_level_invalid_with_data_is_never_split_and_resent(setup):
    """Mobiles_Invalid is "nothing processed" only with Data null; with data, the rows are
    `unknown` and not one of them is posted again."""
    campaign, sim = setup

    def with_data(request, n):
        if n == 1:
            sim.handle(request)
            body = {"Status": "Mobiles_Invalid", "Data": {"CampaignsCreated": 1}}
            return httpx.Response(200, json=body)
        return None

    result = run(load_config(campaign.config), RunOptions(), transport=_scripted(sim, with_data))
    assert result.counts[Status.UNKNOWN] == 3
    assert len({a.number for a in sim.accepted}) == len(sim.accepted) == 10


def test_a_crash_in_a_sender_thread_keeps_every_row(setup):
    """An unexpected exception in a sender thread (a bug): its rows are `unknown`, the run
    stops with exit 1, the report still has every row, and a rerun sends no row twice."""
    campaign, sim = setup

    def explode(request, n):
        if n == 2:
            raise RuntimeError("boom")

    config = load_config(campaign.config)
    config = config.model_copy(
        update={"provider": config.provider.model_copy(update={"concurrency": 1})}
    )
    result = run(config, RunOptions(), transport=_scripted(sim, explode))
    assert result.exit_code == 1
    report = campaign.read_report()
    assert len(report) == 10
    assert [r["status"] for r in report[3:6]] == ["unknown"] * 3
    assert {r["status"] for r in report[:3]} == {"sent"}
    rerun = run(config, RunOptions(), transport=httpx.MockTransport(sim.handle))
    assert rerun.counts[Status.UNKNOWN] == 3
    assert len({a.number for a in sim.accepted}) == len(sim.accepted)


def test_a_signal_after_the_last_request_changes_nothing(setup):
    """SIGTERM while the last request is in flight: everything was sent, so exit 0."""
    import os
    import signal as signals

    campaign, sim = setup
    config = load_config(campaign.config)
    config = config.model_copy(
        update={"provider": config.provider.model_copy(update={"concurrency": 1})}
    )

    def signal_on_last(request, n):
        if n == 4:  # 10 rows in chunks of 3: the fourth request is the last
            os.kill(os.getpid(), signals.SIGTERM)

    result = run(config, RunOptions(), transport=_scripted(sim, signal_on_last))
    assert result.counts[Status.SENT] == 10
    assert result.exit_code == 0


def test_the_preflight_prices_the_plan_exactly_then_sends(setup):
    """Credit for exactly the planned pages: one AccountStatus, then every row goes."""
    campaign, sim = setup
    sim.credit_rials = 10 * 1000  # ten one-page messages exactly (max_pages would need 150,000)
    result = _go(campaign, sim)
    assert result.exit_code == 0 and result.counts[Status.SENT] == 10
    assert [r.method for r in sim.requests][:2] == ["AccountStatus", "SendPeerToPeer"]
    assert [r.method for r in sim.requests].count("AccountStatus") == 1
    assert result.cost_rials == 10 * 1000


def test_a_broken_last_row_stops_the_run_before_any_request(setup):
    """The plan reads the whole file first: a ragged row past the first 10,000 (which a
    streamed send would have sent before meeting it) means exit 2 and nothing sent."""
    campaign, sim = setup
    campaign.contacts([(f"0912{i:07d}", f"n{i}", f"C{i}") for i in range(1, 10_501)])
    path = campaign.folder / "contacts.csv"
    path.write_text(path.read_text("utf-8") + "09129999999,x,C99,extra\n", "utf-8")
    with pytest.raises(InputError, match=r"row 10501 has 4 cells but the header has 3"):
        _go(campaign, sim)
    assert sim.requests == []


def test_a_template_named_only_by_the_last_row_is_checked_before_any_request(setup):
    """A per-row template with an unknown variable stops the run (exit 2) before the first send."""
    campaign, sim = setup
    (campaign.folder / "bad.j2").write_text("{{ no_such_column }}", "utf-8")
    rows = [(f"0912{i:07d}", f"n{i}", "") for i in range(1, 10_500)]
    campaign.contacts([*rows, ("09129999999", "last", "bad.j2")])  # past the first 10,000
    text = campaign.config.read_text("utf-8")
    campaign.config.write_text(
        text.replace("  path: message.j2\n", "  path: message.j2\n  column: code\n"), "utf-8"
    )
    with pytest.raises(TemplateError, match="no_such_column"):
        _go(campaign, sim)
    assert sim.requests == []


def _sent_while_the_file_changes(
    campaign: Campaign, sim: AmootSimulator, change: Callable[[], None]
) -> RunResult:
    """3,000 rows, chunks of 30 on 2 threads; the contacts file changes during the first
    request, after the plan read it."""
    campaign.contacts([(f"0912{i:07d}", f"n{i}", f"C{i}") for i in range(1, 3_001)])
    campaign.write_config(
        "sandbox: false\nbase_url: https://portal.amootsms.com/rest\n"
        "token: ${AMOOT_TOKEN}\nchunk_size: 30\nconcurrency: 2"
    )

    def misbehave(request: httpx.Request, n: int) -> httpx.Response | None:
        if n == 1:
            change()
        return None

    config = load_config(campaign.config)
    return run(config, RunOptions(), transport=_scripted(sim, misbehave), sleep=lambda _s: False)


def _assert_the_plan_was_sent(campaign: Campaign, sim: AmootSimulator, result: RunResult) -> None:
    """The spool is what is sent: every planned row once, nothing the file gained later."""
    assert result.exit_code == 0 and result.counts[Status.SENT] == 3_000
    accepted = sorted(f"0{a.number}" for a in sim.accepted)
    assert accepted == [f"0912{i:07d}" for i in range(1, 3_001)]
    report = campaign.read_report()
    assert [r["row"] for r in report] == [str(i) for i in range(1, 3_001)]
    assert_journal_agrees(campaign, report)


def test_a_file_that_grows_after_the_plan_changes_nothing_that_is_sent(setup):
    """An export still being written: the rows it gains after the plan read it are not sent
    (the next run plans them), and the run ends as it would have (exit 0)."""
    campaign, sim = setup
    path = campaign.folder / "contacts.csv"

    def grow() -> None:
        with path.open("a", encoding="utf-8") as f:
            f.write("".join(f"0913{i:07d},late,C{i}\n" for i in range(500)))

    _assert_the_plan_was_sent(campaign, sim, _sent_while_the_file_changes(campaign, sim, grow))


def test_a_file_moved_away_after_the_plan_changes_nothing_that_is_sent(setup):
    """The export moved or deleted mid-run: the planned rows are still sent, from the spool."""
    campaign, sim = setup
    path = campaign.folder / "contacts.csv"
    result = _sent_while_the_file_changes(
        campaign, sim, lambda: path.replace(path.with_suffix(".old"))
    )
    _assert_the_plan_was_sent(campaign, sim, result)


def test_a_report_folder_that_cannot_be_made_is_exit_2_before_any_request(setup, tmp_path):
    """Not a traceback: the message names the folder and the fix, and nothing is sent."""
    campaign, sim = setup
    blocker = tmp_path / "a-file"
    blocker.write_text("", "utf-8")
    text = campaign.config.read_text("utf-8")
    campaign.config.write_text(
        text.replace("path: reports/report.csv", f"path: {blocker}/reports/report.csv"), "utf-8"
    )
    with pytest.raises(DiskTrouble, match=r"report\.path: cannot write .*a-file") as caught:
        _go(campaign, sim)
    assert caught.value.exit_code == 2
    assert not sim.accepted


def _per_row_templates(campaign: Campaign) -> None:
    """template.column: code, so each row's code cell names its template file (or is empty)."""
    text = campaign.config.read_text("utf-8")
    campaign.config.write_text(
        text.replace("  path: message.j2\n", "  path: message.j2\n  column: code\n"), "utf-8"
    )


def test_a_per_row_template_saved_as_ansi_makes_its_rows_invalid_saying_why(setup):
    """A row's template that is not UTF-8 was reported as "not found"; its rows now say it is
    Windows-1256 and how to save it as UTF-8, and the other rows are sent."""
    campaign, sim = setup
    (campaign.folder / "vip.j2").write_bytes("{{ first_name }} عزيز".encode("cp1256"))
    campaign.contacts([("09121111111", "a", "vip.j2"), ("09122222222", "b", "")])
    _per_row_templates(campaign)
    result = _go(campaign, sim)
    rows = {r["number"]: r for r in campaign.read_report()}
    assert rows["09121111111"]["status"] == "invalid"
    assert rows["09121111111"]["error"] == (
        "template file 'vip.j2':1: the file is not UTF-8 text (byte 0xDA); it looks like "
        'Windows-1256 ("ANSI", as Notepad saves on Persian Windows). Fix: save it as UTF-8 '
        "(in Notepad: File > Save As, Encoding: UTF-8)."
    )
    assert rows["09122222222"]["status"] == "sent" and result.exit_code == 0


def test_a_per_row_template_that_is_the_report_file_stops_before_any_request(setup):
    """A row naming the very file report.path writes: the finished report would replace the
    template. The run stops (exit 2) before the first request; the template is unchanged."""
    campaign, sim = setup
    template = campaign.folder / "reports" / "report.csv"
    template.parent.mkdir()
    template.write_text("{{ first_name }}", "utf-8")
    _per_row_templates(campaign)
    text = campaign.config.read_text("utf-8").replace("path: message.j2", "path: reports/t.j2")
    campaign.config.write_text(text, "utf-8")
    (campaign.folder / "reports" / "t.j2").write_text("{{ code }}", "utf-8")
    campaign.contacts([("09121111111", "a", ""), ("09122222222", "b", "report.csv")])
    with pytest.raises(TemplateError, match=r"report\.csv: the column 'code' names this file"):
        _go(campaign, sim)
    assert sim.requests == [] and template.read_text("utf-8") == "{{ first_name }}"


_LIVE = "sandbox: false\nbase_url: https://portal.amootsms.com/rest\ntoken: ${AMOOT_TOKEN}"


def test_a_future_send_at_inside_the_window_is_sent_from_outside_it(setup):
    """Run at 22:00 Tehran for 10:00 the next morning, window 08:00-21:00: the provider holds
    the messages until send_at, which is inside the window, so every row goes (it was held
    as "the send window closed during the run", every rerun outside the window alike)."""
    from datetime import UTC, datetime

    campaign, sim = setup
    schedule = 'schedule:\n  send_at: "2026-03-22 10:00"\n  window: "08:00-21:00"\n'
    campaign.write_config(f"{_LIVE}\nchunk_size: 3", extra=schedule)
    evening = datetime(2026, 3, 21, 18, 30, tzinfo=UTC)  # 22:00 in Tehran
    result = run(
        load_config(campaign.config),
        RunOptions(),
        transport=httpx.MockTransport(sim.handle),
        sleep=lambda _s: False,
        clock=lambda: evening,
    )
    assert result.counts[Status.SENT] == 10 and result.exit_code == 0
    assert len(sim.accepted) == 10
    assert {a.send_datetime[:16] for a in sim.accepted} == {"2026-03-22 10:00"}


def test_a_live_dry_run_of_a_stale_campaign_is_refused_as_the_send_would_be(setup):
    """Past send_at + max_lateness, a live dry run exits 3 with the reason, as the send does."""
    campaign, sim = setup
    stale = "schedule:\n  send_at: 2026-01-01 10:00\n  max_lateness: 2h\n"
    campaign.write_config(_LIVE, extra=stale)
    result = _go(campaign, sim, dry_run=True)
    assert result.exit_code == 3 and result.stopped is not None
    assert "max_lateness" in str(result.stopped)
    assert sim.requests == []
