"""End to end: `python -m pipeline config.yaml` as a subprocess against the socket-served fake."""

from __future__ import annotations

import csv
import shutil
import time
from datetime import UTC, datetime, timedelta

from pipeline.plan import TEXT_CHANGED
from pipeline.sandbox import AmootSimulator
from pipeline.sandbox_server import SandboxServer
from tests.conftest import REPO, TOKEN, Campaign, live_provider, run_cli


def _statuses(report: list[dict[str, str]]) -> dict[str, str]:
    return {r["row"]: r["status"] for r in report}


def test_shipped_config_runs_in_the_sandbox(tmp_path):
    """The README's first command works: the shipped config sends through the in-process sandbox."""
    for name in ("config.yaml", "data", "templates"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name)
        else:
            shutil.copy(source, tmp_path / name)
    result = run_cli(tmp_path / "config.yaml")
    assert result.returncode == 0, result.stderr
    assert "sandbox" in result.stdout
    written = list((tmp_path / "reports").glob("spring-sale-1405-2*.csv"))  # not -latest.csv
    reports = [p for p in written if not p.name.endswith("-attention.csv")]
    assert len(reports) == 1 and len(written) == 2  # the report and the rows needing attention
    latest = tmp_path / "reports" / "spring-sale-1405-latest.csv"
    assert latest.read_bytes() == reports[0].read_bytes()
    assert f"summary page: {reports[0].with_suffix('.html')}" in result.stdout
    with reports[0].open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    statuses = [r["status"] for r in rows]
    assert statuses.count("sent") == 6
    assert statuses.count("failed") == 1  # 09120000000: the sandbox's blacklisted number
    assert statuses.count("duplicate") == 1
    assert statuses.count("invalid") == 2  # a landline and a short number
    assert [int(r["row"]) for r in rows] == [1, 2, 3, 4, 5, 7, 8, 9, 10, 11]  # row 6 is blank

    again = run_cli(tmp_path / "config.yaml")
    assert again.returncode == 0, again.stderr
    assert "already_sent" in again.stdout

    # the in-process sandbox forgets between runs; it reports earlier messages delivered
    looked = run_cli(tmp_path / "config.yaml", "--deliveries")
    assert looked.returncode == 0, looked.stderr
    assert "deliveries (looked up 6 now)" in looked.stdout and "100.0%" in looked.stdout


def test_mixed_formats_duplicates_invalid_and_blacklisted(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """All formats normalise, the first duplicate wins, invalid rows stay out, blacklisted fails."""
    simulator.blacklist.add("9127777777")
    campaign.contacts(
        [
            ("09121111111", "سارا", "A1"),
            ("+98 912 222 2222", "علی", "A2"),
            ("۰۹۱۲۳۳۳۳۳۳۳", "مریم", "A3"),
            ("0098-912-444-4444", "رضا", "A4"),
            ("9.125555555E+09", "زهرا", "A5"),
            ("09127777777", "مسدود", "A6"),
            ("912 111 1111", "تکراری", "A7"),
            ("02188776655", "دفتر", "A8"),
            ("0912", "کوتاه", "A9"),
            ("989126666666", "حسین", "A10"),
        ]
    )
    campaign.write_config(live_provider(server))
    result = run_cli(campaign.config)
    assert result.returncode == 0, result.stderr
    report = campaign.read_report()
    assert [r["row"] for r in report] == [str(i) for i in range(1, 11)]
    by_row = {r["row"]: r for r in report}
    for row in ("1", "2", "3", "4", "5", "10"):
        assert by_row[row]["status"] == "sent", by_row[row]
        assert by_row[row]["message_id"] and by_row[row]["campaign_id"]
    assert by_row["2"]["number"] == "09122222222"
    assert by_row["3"]["number"] == "09123333333"
    assert by_row["5"]["number"] == "09125555555"
    assert by_row["5"]["phone"] == "9.125555555E+09"
    assert by_row["7"]["status"] == "duplicate" and "row 1" in by_row["7"]["error"]
    assert by_row["8"]["status"] == "invalid" and by_row["8"]["number"] == ""
    assert by_row["9"]["status"] == "invalid"
    # chunk_size 3: the blacklisted number shares a request with two good ones
    assert by_row["6"]["status"] == "failed" and by_row["6"]["error"] == "Mobile_Invalid"
    assert by_row["1"]["text"] == "سارا عزیز، کد تخفیف شما A1"
    assert by_row["1"]["pages"] == "1"
    accepted = sorted(a.number for a in simulator.accepted)
    assert accepted == sorted(
        ["9121111111", "9122222222", "9123333333", "9124444444", "9125555555", "9126666666"]
    )
    assert TOKEN not in result.stdout + result.stderr
    assert TOKEN not in campaign.report.read_text(encoding="utf-8-sig")


def test_documented_invalid_json_answer_is_read(campaign: Campaign):
    """An answer shaped like the docs' example (`"Number": 09120000000`, invalid JSON) is read."""
    simulator = AmootSimulator(token=TOKEN, number_style="leading_zero_literal")
    campaign.contacts([("09121111111", "سارا", "A1"), ("09122222222", "علی", "A2")])
    with SandboxServer(simulator) as server:
        campaign.write_config(live_provider(server))
        result = run_cli(campaign.config)
    assert result.returncode == 0, result.stderr
    report = campaign.read_report()
    assert [r["status"] for r in report] == ["sent", "sent"]
    ids = {a.number: str(a.message_id) for a in simulator.accepted}
    assert report[0]["message_id"] == ids["9121111111"]
    assert report[1]["message_id"] == ids["9122222222"]


def test_rejected_token_stops_with_exit_3_and_rows_pending(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """Token_NotExists is fatal: exit 3, nothing accepted, rows pending, the token not echoed."""
    campaign.contacts([(f"0912000{i:04d}", "نام", f"C{i}") for i in range(1, 8)])
    campaign.write_config(live_provider(server))
    result = run_cli(campaign.config, env={"AMOOT_TOKEN": "wrong-token-123"})
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Token_NotExists" in result.stderr
    assert "wrong-token-123" not in result.stdout + result.stderr
    assert simulator.accepted == []
    report = campaign.read_report()
    assert len(report) == 7
    assert {r["status"] for r in report} == {"pending"}

    fixed = run_cli(campaign.config)
    assert fixed.returncode == 0, fixed.stderr
    assert {r["status"] for r in campaign.read_report()} == {"sent"}
    assert len(simulator.accepted) == 7


def test_missing_template_variable_exits_2_and_sends_nothing(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """A template variable that is no column stops before sending: exit 2, names it and columns."""
    (campaign.folder / "message.j2").write_text("{{ first_nme }} عزیز {{ code }}", "utf-8")
    campaign.contacts([("09121111111", "سارا", "A1")])
    campaign.write_config(live_provider(server))
    result = run_cli(campaign.config)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "first_nme" in result.stderr
    assert "first_name" in result.stderr
    assert "Traceback" not in result.stderr
    assert simulator.requests == []
    assert not campaign.journal.exists()


def test_send_datetime_is_tehran_time_with_tz_utc(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """With TZ=UTC the SendDateTime posted is Tehran wall-clock time (UTC+03:30)."""
    campaign.contacts([("09121111111", "سارا", "A1")])
    campaign.write_config(live_provider(server))
    before = datetime.now(UTC)
    result = run_cli(campaign.config, env={"TZ": "UTC"})
    after = datetime.now(UTC)
    assert result.returncode == 0, result.stderr
    posted = datetime.strptime(simulator.accepted[0].send_datetime, "%Y-%m-%d %H:%M:%S")
    tehran_offset = timedelta(hours=3, minutes=30)
    low = (before + tehran_offset).replace(tzinfo=None, microsecond=0)
    high = (after + tehran_offset).replace(tzinfo=None)
    assert low <= posted <= high


def test_requests_carry_raw_token_and_json_body(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """Each chunk is one SendPeerToPeer POST: raw token header, JSON Input of at most chunk_size."""
    campaign.contacts([(f"0912000{i:04d}", "نام", f"C{i}") for i in range(1, 8)])
    campaign.write_config(live_provider(server, chunk_size=3))
    authorizations = []
    decide = simulator.decide

    def record_authorization(request):  # the fake's log leaves the token out on purpose
        authorizations.append(request.headers.get("Authorization"))
        return decide(request)

    simulator.decide = record_authorization  # type: ignore[method-assign]
    result = run_cli(campaign.config)
    assert result.returncode == 0, result.stderr
    assert set(authorizations) == {TOKEN}  # the raw token: no "Bearer " prefix
    sends = [r for r in simulator.requests if r.method == "SendPeerToPeer"]
    assert sorted(len(r.body["Input"]) for r in sends) == [1, 3, 3]
    assert all(r.body["LineNumber"] == "public" for r in sends)
    assert all(r.headers["content-type"].startswith("application/json") for r in sends)
    posted = sorted(item["Number"] for r in sends for item in r.body["Input"])
    assert posted == [f"0912000{i:04d}" for i in range(1, 8)]


def test_preflight_refusal_against_account_status(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """Too little credit for the whole run: exit 3 before any SendPeerToPeer, rows pending."""
    simulator.credit_rials = 2_500  # two one-page Persian messages at 1,000 rials, not three
    campaign.contacts([(f"0912000{i:04d}", "نام", f"C{i}") for i in range(1, 4)])
    campaign.write_config(live_provider(server))
    result = run_cli(campaign.config)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "preflight" in result.stderr and "250 tomans" in result.stderr
    assert [r.method for r in simulator.requests] == ["AccountStatus"]
    assert {r["status"] for r in campaign.read_report()} == {"pending"}


def test_dry_run_sends_nothing_and_previews(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """--dry-run sends nothing (its one request is the read-only AccountStatus that prices
    it), previews messages and writes a `dry_run` report."""
    campaign.contacts([(f"0912000{i:04d}", "نام", f"C{i}") for i in range(1, 8)])
    campaign.write_config(live_provider(server))
    result = run_cli(campaign.config, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert [r.method for r in simulator.requests] == ["AccountStatus"]
    assert "row 1 -> 09120000001  (1 page(s), UCS-2)" in result.stdout
    assert "row 6 ->" not in result.stdout  # a preview of the first five
    assert {r["status"] for r in campaign.read_report()} == {"dry_run"}
    assert not campaign.journal.exists()


def test_no_progress_bar_without_a_terminal(campaign: Campaign, server: SandboxServer):
    """Under cron (no terminal) progress is plain lines on stderr, never a redrawn bar."""
    campaign.contacts([(f"0912000{i:04d}", "نام", f"C{i}") for i in range(1, 8)])
    campaign.write_config(live_provider(server))
    result = run_cli(campaign.config)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stdout + result.stderr
    assert "[#" not in result.stderr
    assert "sending: 7 rows to go through" in result.stderr
    assert "processed 7/7 rows (100%)" in result.stderr


def test_progress_bar_on_a_terminal(campaign: Campaign, server: SandboxServer):
    """On a terminal the progress is one bar redrawn in place."""
    import os
    import pty
    import subprocess
    import sys

    campaign.contacts([(f"0912000{i:04d}", "نام", f"C{i}") for i in range(1, 8)])
    campaign.write_config(live_provider(server))
    leader, follower = pty.openpty()
    env = {**os.environ, "AMOOT_TOKEN": TOKEN, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", str(campaign.config)],
        stdout=follower,
        stderr=follower,
        env=env,
        timeout=60,
        check=False,
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    text = output.decode("utf-8", "replace")
    assert proc.returncode == 0, text
    assert "\r[" in text and "7/7" in text


def test_already_sent_rows_show_the_text_that_was_sent(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """After the template is edited, an already_sent row's text and pages are the journal's
    (what the recipient got), not today's render, and its error says they differ: in the dry
    run's report and in the sending run's. With the template unchanged there is no error.
    The summary's pages count only rows sent (or that the dry run would send)."""
    people: list[tuple[str, ...]] = [("09121111111", "سارا", "A1"), ("09122222222", "علی", "A2")]
    campaign.contacts(people)
    campaign.write_config(live_provider(server))
    assert run_cli(campaign.config).returncode == 0
    sent = [(r["text"], r["pages"]) for r in campaign.read_report()]
    assert sent == [("سارا عزیز، کد تخفیف شما A1", "1"), ("علی عزیز، کد تخفیف شما A2", "1")]

    unchanged = run_cli(campaign.config)
    assert unchanged.returncode == 0, unchanged.stderr
    assert [(r["status"], r["error"], r["text"], r["pages"]) for r in campaign.read_report()] == [
        ("already_sent", "", text, pages) for text, pages in sent
    ]

    (campaign.folder / "message.j2").write_text(
        "{{ first_name }} جان، کد تخفیف ویژه شما {{ code }} است؛ تا آخر هفته فرصت دارید از آن "
        "استفاده کنید و از خرید لذت ببرید. فروشگاه نمونه\n",
        "utf-8",
    )
    campaign.contacts([*people, ("09123333333", "مریم", "A3")])
    for args, status, scope in (
        (("--dry-run",), "dry_run", "would be sent"),
        ((), "sent", "sent in this run"),
    ):
        result = run_cli(campaign.config, *args)
        assert result.returncode == 0, result.stderr
        report = campaign.read_report()
        assert [(r["status"], r["error"], r["text"], r["pages"]) for r in report[:2]] == [
            ("already_sent", TEXT_CHANGED, text, pages) for text, pages in sent
        ]
        assert report[2]["status"] == status and report[2]["error"] == ""
        assert report[2]["text"].startswith("مریم جان،") and report[2]["pages"] == "2"
        assert f"  {'pages':<13}{2:>9,}  ({scope})" in result.stdout  # row 3's, alone
    assert sorted(a.number for a in simulator.accepted) == [
        "9121111111",
        "9122222222",
        "9123333333",
    ]


def test_a_sent_row_that_todays_template_fails_on_is_already_sent_not_invalid(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """A row sent earlier stays `already_sent`, with the text that went out, when today's
    template fails on it (a variable it lacks, too many pages): the report never calls a
    message that went out `invalid`. A row never sent that fails today is `invalid`."""
    people: list[tuple[str, ...]] = [("09121111111", "سارا", "A1"), ("09122222222", "علی", "A2")]
    campaign.contacts(people)
    campaign.write_config(live_provider(server))
    assert run_cli(campaign.config).returncode == 0
    first_text = campaign.read_report()[0]["text"]

    # row["A1"] is no column: the render fails on every row (a per-row failure, not exit 2).
    (campaign.folder / "message.j2").write_text("{{ first_name }} {{ row[code] }}\n", "utf-8")
    campaign.contacts([*people, ("09123333333", "مریم", "A3")])
    for args in (("--dry-run",), ()):
        result = run_cli(campaign.config, *args)
        assert result.returncode == 0, result.stderr
        report = campaign.read_report()
        assert [r["status"] for r in report] == ["already_sent", "already_sent", "invalid"]
        assert report[0]["text"] == first_text and report[0]["pages"] == "1"
        assert report[0]["error"].startswith(
            "sent in an earlier run; today's template fails on this row (the template"
        ), report[0]["error"]
        assert report[0]["message_id"] != ""
    assert sorted(a.number for a in simulator.accepted) == ["9121111111", "9122222222"]


def test_a_runaway_template_costs_its_row_and_the_run_goes_on(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """A template that, on some rows, loops without end, writes without end or repeats a
    column's count of characters makes just those rows `invalid`, each with its reason,
    within seconds; the other rows render (dry run) and are sent (the timer that stops a
    render disturbs neither the sender threads nor the journal)."""
    (campaign.folder / "message.j2").write_text(
        '{% if code == "spin" %}{% for i in range(99999) %}{% for j in range(99999) %}'
        "{% endfor %}{% endfor %}{% endif %}"
        '{% if code == "flood" %}{% for i in range(99999) %}{% for j in range(99999) %}'
        "{{ first_name }}{% endfor %}{% endfor %}{% endif %}"
        "{{ first_name }} {{ '*' * (code|int(1)) }}",
        "utf-8",
    )
    campaign.contacts(
        [
            ("09120000001", "سارا", "3"),
            ("09120000002", "علی", "spin"),
            ("09120000003", "مریم", "flood"),
            ("09120000004", "رضا", "1000000000"),
            ("09120000005", "زهرا", "2"),
        ]
    )
    campaign.write_config(live_provider(server))
    expected = {
        "2": "the template took longer than 2 s",
        "3": "the template rendered 10,",
        "4": "the template would build a value of 1,000,000,000 characters, more than 100,000",
    }
    for args, status in ((("--dry-run",), "dry_run"), ((), "sent")):
        started = time.monotonic()
        result = run_cli(campaign.config, *args)
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - started < 20  # one 2 s bound, not a render without end
        by_row = {r["row"]: r for r in campaign.read_report()}
        for row, reason in expected.items():
            assert by_row[row]["status"] == "invalid", by_row[row]
            assert by_row[row]["error"].startswith(reason), by_row[row]
        assert (by_row["1"]["status"], by_row["1"]["text"]) == (status, "سارا ***")
        assert (by_row["5"]["status"], by_row["5"]["text"]) == (status, "زهرا **")
    assert sorted(a.number for a in simulator.accepted) == ["9120000001", "9120000005"]
