"""Scripted provider faults over a real socket: the fake, the journal and the report agree.

Each test runs `python -m pipeline` as a subprocess against the socket-served fake with faults
queued, then `Harness.run` compares what the fake accepted with the report and the journal.
Retry waits are real in a subprocess, so every retried fault carries a `Retry-After: 0`.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from collections import Counter, defaultdict
from typing import Any

import httpx
import pytest

from pipeline.sandbox import AmootSimulator, Fault, Reply
from pipeline.sandbox_server import SandboxServer
from tests.conftest import (
    TOKEN,
    Campaign,
    assert_journal_agrees,
    live_provider,
    run_main,
    start_cli,
)

ROWS = 7  # with chunk_size 3: requests of 3, 3 and 1
TIMEOUT = 0.5  # provider.timeout: slow_after beyond it is a read timeout
NUMBERS = [f"0912{i:07d}" for i in range(1, ROWS + 1)]
FATAL_TITLES = {"Token_Disabled", "CreditNotEnough", "LineNumber_NotExist"}


def _is_ambiguous(fault: Fault) -> bool:
    """The contract's word on a fault: could the server have processed that request?

    A socket closed "before processing" is still ambiguous to the client: the whole request
    had been written when the connection broke, so nothing tells it apart from a drop after.
    """
    match fault.kind:
        case "drop_before" | "drop_after" | "html" | "trickle":
            return True  # a trickle: its last byte comes long after provider.timeout
        case "slow_after":
            return fault.delay > TIMEOUT
        case "title":
            return fault.title not in FATAL_TITLES  # ServerError, or a title nobody knows
        case "http_status":  # a redirect too: it is never followed, and may come after
            code = fault.http_status
            return 300 <= code < 400 or (code >= 500 and code != 503)
    raise AssertionError(fault)


class Harness:
    """Runs the CLI against the fake and checks the invariants after every run."""

    def __init__(self, campaign: Campaign, simulator: _ClockedSimulator) -> None:
        self.campaign = campaign
        self.sim = simulator
        self.unknown: set[str] = set()  # numbers `unknown` after the previous run
        self.failed: set[str] = set()  # numbers `failed` after the previous run
        campaign.contacts([(number, "نام", f"C{i}") for i, number in enumerate(NUMBERS, 1)])

    def configure(self, server: SandboxServer, *, extra: str = "", **overrides: object) -> None:
        settings: dict[str, object] = {"timeout": TIMEOUT, "max_attempts": 3, **overrides}
        self.campaign.write_config(live_provider(server, **settings), extra=extra)

    def run(
        self,
        *args: str,
        faults: tuple[Fault, ...] = (),
        exit_code: int,
        env: dict[str, str] | None = None,
        reached: bool = True,
    ) -> tuple[dict[str, dict[str, str]], list[list[str]]]:
        """One run with `faults` queued; returns the report by number and each request's numbers."""
        sim = self.sim
        sim.faults.extend(faults)
        seen_requests, seen_accepted = len(sim.requests), len(sim.accepted)
        result = run_main(self.campaign.config, *args, env=env)
        assert result.returncode == exit_code, result.stdout + result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        assert TOKEN not in result.stdout + result.stderr
        assert not sim.faults, "a scripted fault never met a request"

        report = self.campaign.read_report()
        # every input row exactly once, in input order
        assert [r["row"] for r in report] == [str(i) for i in range(1, ROWS + 1)]
        by_number = {r["number"]: r for r in report}
        status: dict[str, set[str]] = defaultdict(set)
        for row in report:
            status[row["status"]].add(row["number"])

        sends = [r for r in sim.requests[seen_requests:] if r.method == "SendPeerToPeer"]
        carried = [[item["Number"] for item in r.body["Input"]] for r in sends]
        # The fake pops one fault per request in arrival order: request i met faults[i].
        ambiguous_at = [i for i, f in enumerate(faults[: len(carried)]) if _is_ambiguous(f)]
        ambiguous = {n for i in ambiguous_at for n in carried[i]}
        times_carried = Counter(n for ns in carried for n in ns)
        before = Counter("0" + a.number for a in sim.accepted[:seen_accepted])
        now = ["0" + a.number for a in sim.accepted[seen_accepted:]]
        resend = "--resend-unknown" in args

        # (a) nothing accepted twice in this run; an earlier acceptance is repeated only for
        # an `unknown` row the operator chose to resend
        assert len(now) == len(set(now)), Counter(now).most_common(3)
        assert set(now) & set(before) <= (self.unknown if resend else set())
        # (b) `sent` rows are exactly the numbers accepted in this run (but those whose answer
        # was lost, which are `unknown`), with the fake's IDs
        assert status["sent"] == set(now) - status["unknown"]
        for accepted in sim.accepted[seen_accepted:]:
            row = by_number["0" + accepted.number]
            if row["status"] == "unknown":
                continue
            assert row["message_id"] == str(accepted.message_id), row
            assert row["campaign_id"] == str(accepted.campaign_id), row
        assert status["already_sent"] <= set(before)
        # (c) `unknown` only where this run's request was ambiguous (or left from before, when
        # not resent); every row of an ambiguous request is unknown and was never carried again
        carried_over = set() if resend else self.unknown
        assert status["unknown"] <= ambiguous | carried_over
        assert ambiguous <= status["unknown"]
        for i in ambiguous_at:  # no later request carried a row of an ambiguous one
            assert not set(carried[i]) & {n for ns in carried[i + 1 :] for n in ns}, carried
        assert set(now) <= status["sent"] | status["unknown"]
        assert set(before) <= status["already_sent"] | status["unknown"] | status["sent"]
        # nothing settled earlier rides along in a request unless the operator asked
        settled = status["already_sent"] | carried_over
        if "--retry-failed" not in args:
            settled |= self.failed
        assert not settled & set(times_carried), settled & set(times_carried)
        # `attempts` counts the requests that carried each row in this run (a refused connect
        # counts too, though no request reached the fake)
        if reached:
            for number, row in by_number.items():
                assert int(row["attempts"]) == times_carried[number], row
        # (d) the journal tells the same story
        assert_journal_agrees(self.campaign, report)
        # (e) the exit code follows from the report when the run was not stopped
        if exit_code == 3:
            assert "error:" in result.stderr  # the operator is told why it stopped
        else:
            assert exit_code == (5 if status["unknown"] else 0)
            assert not status["pending"]

        self.unknown, self.failed = status["unknown"], status["failed"]
        return by_number, carried


class _ClockedSimulator(AmootSimulator):
    """The fake, noting when each SendPeerToPeer arrived (`arrived[i]` for the i-th one), and
    able to lose its credit after `spend_credit_after` sends (someone else spent it)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arrived: list[float] = []
        self.spend_credit_after: int | None = None
        self._order = threading.Lock()  # the fake decides one request at a time anyway

    def decide(self, request: httpx.Request) -> Reply:
        if not request.url.path.endswith("/SendPeerToPeer"):
            return super().decide(request)
        with self._order:
            self.arrived.append(time.monotonic())
            reply = super().decide(request)
            if len(self.arrived) == self.spend_credit_after:
                self.credit_rials = 0
            return reply


@pytest.fixture
def simulator() -> _ClockedSimulator:
    """This module's fake also notes when each request arrived (the `server` serves it)."""
    return _ClockedSimulator(token=TOKEN)


@pytest.fixture
def harness(campaign: Campaign, simulator: _ClockedSimulator) -> Harness:
    return Harness(campaign, simulator)


@pytest.mark.parametrize("code", [503, 429])
def test_busy_answer_is_retried_and_every_row_sent_once(
    harness: Harness, server: SandboxServer, code: int
):
    """A 503/429 with Retry-After is retried (not processed, so safe): exit 0, one copy each."""
    harness.configure(server)
    report, carried = harness.run(
        faults=(Fault("http_status", http_status=code, retry_after="0"),), exit_code=0
    )
    assert {r["status"] for r in report.values()} == {"sent"}
    refused = carried[0]
    assert len(refused) == 3
    assert sum(1 for ns in carried if ns == refused) == 2  # the same request, sent again
    assert all(report[n]["attempts"] == "2" for n in refused)
    # `Retry-After: 0` is obeyed: no backoff (which waits at least a second) before the retry
    retried = next(i for i in range(1, len(carried)) if carried[i] == refused)
    assert harness.sim.arrived[retried] - harness.sim.arrived[0] < 0.9

    again, carried = harness.run(exit_code=0)
    assert carried == []
    assert {r["status"] for r in again.values()} == {"already_sent"}
    assert len(harness.sim.accepted) == ROWS


AMBIGUOUS_FAULTS = {
    "drop_before": (Fault("drop_before"), False),
    "drop_after": (Fault("drop_after"), True),
    "slow_after": (Fault("slow_after", delay=TIMEOUT + 1.0), True),
    "ServerError": (Fault("title", title="ServerError"), False),
    "ServerError_processed": (Fault("title", title="ServerError", process=True), True),
    "html_processed": (Fault("html", process=True), False),
    "http500_processed": (Fault("http_status", http_status=500, process=True), True),
    "redirect302": (Fault("http_status", http_status=302), False),
    "redirect307_processed": (Fault("http_status", http_status=307, process=True), True),
    "trickle": (Fault("trickle", delay=0.1), True),
}


@pytest.mark.parametrize("name", AMBIGUOUS_FAULTS)
def test_ambiguous_fault_leaves_its_rows_unknown_and_never_resends_them(
    harness: Harness, server: SandboxServer, name: str
):
    """A request that may have been processed: its rows `unknown` (exit 5), never sent again
    automatically; a rerun keeps them unknown, or with --resend-unknown sends them once more."""
    fault, resend = AMBIGUOUS_FAULTS[name]
    harness.configure(server)
    report, carried = harness.run(faults=(fault,), exit_code=5)
    hit = set(carried[0])
    assert {n for n, r in report.items() if r["status"] == "unknown"} == hit
    assert all(r["status"] == "sent" for n, r in report.items() if n not in hit)
    processed = fault.kind in ("drop_after", "slow_after", "trickle") or fault.process
    accepted_first = {"0" + a.number for a in harness.sim.accepted}
    assert hit & accepted_first == (hit if processed else set())

    if not resend:
        again, carried = harness.run(exit_code=5)
        assert carried == []  # nothing to send: the rest is done, the unknown rows wait
        assert {n for n, r in again.items() if r["status"] == "unknown"} == hit
        assert len(harness.sim.accepted) == len(accepted_first)
        return
    again, carried = harness.run("--resend-unknown", exit_code=0)
    assert {n for ns in carried for n in ns} == hit  # only the unknown rows went out
    assert {n for n, r in again.items() if r["status"] == "sent"} == hit
    copies = Counter("0" + a.number for a in harness.sim.accepted)
    # the operator's choice is honoured exactly: a second copy only where the fake had one
    assert copies == Counter({n: 2 if n in hit and processed else 1 for n in NUMBERS})


def test_unknown_rows_wait_through_reruns_until_the_operator_resends(
    harness: Harness, server: SandboxServer
):
    """drop_after: unknown survives a plain rerun (exit 5, no request), --resend-unknown sends."""
    harness.configure(server)
    harness.run(faults=(Fault("drop_after"),), exit_code=5)
    hit = set(harness.unknown)
    assert len(hit) == 3
    _, carried = harness.run(exit_code=5)
    assert carried == []
    again, _ = harness.run("--resend-unknown", exit_code=0)
    assert {n for n, r in again.items() if r["status"] == "sent"} == hit
    copies = Counter("0" + a.number for a in harness.sim.accepted)
    assert copies == Counter({n: 2 if n in hit else 1 for n in NUMBERS})


def test_retry_that_meets_an_ambiguous_answer_is_not_retried_again(
    harness: Harness, server: SandboxServer
):
    """A 503 is retried, but when that retry's connection drops after processing, its rows are
    `unknown` (two attempts) and the request is not sent a third time."""
    harness.configure(server, concurrency=1)
    busy = Fault("http_status", http_status=503, retry_after="0")
    report, carried = harness.run(faults=(busy, Fault("drop_after")), exit_code=5)
    assert carried[0] == carried[1] and carried.count(carried[0]) == 2
    assert {report[n]["status"] for n in carried[0]} == {"unknown"}
    assert {report[n]["attempts"] for n in carried[0]} == {"2"}
    assert {"0" + a.number for a in harness.sim.accepted} == set(NUMBERS)


def test_credit_running_out_mid_run_stops_with_exit_3_and_rerun_continues(
    harness: Harness, server: SandboxServer
):
    """CreditNotEnough after one request: exit 3, sent = accepted, the rest pending; a rerun
    after topping up sends only the pending rows."""
    harness.sim.spend_credit_after = 1  # enough credit at the start, none after one request
    harness.configure(server)
    report, carried = harness.run(exit_code=3)
    sent = {n for n, r in report.items() if r["status"] == "sent"}
    assert len(sent) == 3
    pending = {n for n, r in report.items() if r["status"] == "pending"}
    assert pending == set(NUMBERS) - sent
    assert any("CreditNotEnough" in r["error"] for r in report.values())
    assert len(carried) >= 2

    harness.sim.credit_rials = 1_000_000
    again, carried = harness.run(exit_code=0)
    assert {n for ns in carried for n in ns} == pending
    assert {n for n, r in again.items() if r["status"] == "already_sent"} == sent
    assert sorted("0" + a.number for a in harness.sim.accepted) == NUMBERS


def test_rejected_token_stops_with_exit_3_and_nothing_accepted(
    harness: Harness, server: SandboxServer
):
    """Token_NotExists is fatal: exit 3, every row pending; with the right token all are sent."""
    harness.configure(server)
    report, _ = harness.run(exit_code=3, env={"AMOOT_TOKEN": "revoked-token-77"})
    assert {r["status"] for r in report.values()} == {"pending"}
    assert harness.sim.accepted == []
    again, _ = harness.run(exit_code=0)
    assert {r["status"] for r in again.values()} == {"sent"}


FATAL_FAULTS = {
    "Token_Disabled": (Fault("title", title="Token_Disabled"), 0),
    "LineNumber_NotExist": (Fault("title", title="LineNumber_NotExist"), 0),
    "http404": (Fault("http_status", http_status=404), 0),
    "unknown_title": (Fault("title", title="Queue_Overloaded", process=True), 5),
}


@pytest.mark.parametrize("name", FATAL_FAULTS)
def test_fatal_answer_stops_the_run_with_exit_3_and_rerun_continues(
    harness: Harness, server: SandboxServer, name: str
):
    """A fatal title or a 4xx stops the run (exit 3): its rows pending, nothing else posted
    after; a title nobody knows also stops it, but its rows are unknown (it may have gone out)."""
    fault, rerun_exit = FATAL_FAULTS[name]
    harness.configure(server, concurrency=1)
    report, carried = harness.run(faults=(fault,), exit_code=3)
    assert len(carried) == 1  # the run stopped at the first answer
    first = set(carried[0])
    expected = "unknown" if _is_ambiguous(fault) else "pending"
    assert {r["status"] for n, r in report.items() if n in first} == {expected}
    assert {r["status"] for n, r in report.items() if n not in first} == {"pending"}
    assert all(r["attempts"] == "0" for n, r in report.items() if n not in first)

    again, carried = harness.run(exit_code=rerun_exit)
    resent = set(NUMBERS) - (first if rerun_exit else set())
    assert {n for ns in carried for n in ns} == resent
    assert {n for n, r in again.items() if r["status"] == "sent"} == resent


def test_busy_until_attempts_run_out_stops_with_rows_pending(
    harness: Harness, server: SandboxServer
):
    """503 on every attempt of a request: exit 3, its rows pending (not unknown), rerun sends."""
    harness.configure(server, concurrency=1, max_attempts=2)
    busy = [Fault("http_status", http_status=503, retry_after="0") for _ in range(2)]
    report, carried = harness.run(faults=tuple(busy), exit_code=3)
    assert carried[0] == carried[1] and len(carried) == 2
    assert {r["status"] for r in report.values()} == {"pending"}
    assert harness.sim.accepted == []
    again, _ = harness.run(exit_code=0)
    assert {r["status"] for r in again.values()} == {"sent"}


def test_connection_refused_is_never_unknown(harness: Harness, server: SandboxServer):
    """Nothing listens: no request left, so the rows stay pending (exit 3), never unknown."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again at once: connecting there is refused
    harness.configure(
        server, base_url=f"http://127.0.0.1:{port}/rest", concurrency=1, max_attempts=1
    )
    report, carried = harness.run(exit_code=3, reached=False)
    assert carried == []
    assert {r["status"] for r in report.values()} == {"pending"}
    assert "cannot connect" in report[NUMBERS[0]]["error"]

    harness.configure(server)
    again, _ = harness.run(exit_code=0)
    assert {r["status"] for r in again.values()} == {"sent"}


def test_blacklisted_row_is_retried_only_with_retry_failed(harness: Harness, server: SandboxServer):
    """A rejected recipient stays failed on a rerun (no request); --retry-failed retries it."""
    blocked = NUMBERS[1]
    harness.sim.blacklist.add(blocked[1:])
    harness.configure(server, extra="suppression:\n  path: null\n")  # no list: it stays `failed`
    report, _ = harness.run(exit_code=0)
    assert report[blocked]["status"] == "failed"
    assert report[blocked]["error"] == "Mobile_Invalid"
    assert sum(r["status"] == "sent" for r in report.values()) == ROWS - 1

    again, carried = harness.run(exit_code=0)
    assert carried == []
    assert again[blocked]["status"] == "failed"
    assert "--retry-failed" in again[blocked]["error"]

    harness.sim.blacklist.clear()  # the operator sorted it out with the provider
    last, carried = harness.run("--retry-failed", exit_code=0)
    assert carried == [[blocked]]
    assert last[blocked]["status"] == "sent"
    assert sorted("0" + a.number for a in harness.sim.accepted) == NUMBERS


def test_retry_after_beyond_the_cap_stops_for_now(harness: Harness, server: SandboxServer):
    """A 503 asking for an hour's pause (beyond MAX_RETRY_AFTER) stops the run at once: exit 3,
    rows pending, for cron to rerun later, rather than sleeping in a worker."""
    harness.configure(server, concurrency=1, max_attempts=2)
    harness.sim.faults.append(Fault("http_status", http_status=503, retry_after="3600"))
    proc = start_cli(harness.campaign.config)
    deadline = time.monotonic() + 20
    while not harness.sim.arrived and time.monotonic() < deadline:
        time.sleep(0.002)
    try:
        out, err = proc.communicate(timeout=1.5)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # a clean stop; the run is still waiting out 300 s
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"still waiting 1.5 s after the 503 instead of stopping: {out}{err}")
    assert proc.returncode == 3, out + err
    assert {r["status"] for r in harness.campaign.read_report()} == {"pending"}


def test_retry_after_is_waited_out_before_the_retry(
    harness: Harness, server: SandboxServer, simulator: _ClockedSimulator
):
    """A 503 with `Retry-After: 1` is retried no sooner than a second later."""
    harness.configure(server, concurrency=1)
    _, carried = harness.run(
        faults=(Fault("http_status", http_status=503, retry_after="1"),), exit_code=0
    )
    assert carried[0] == carried[1]
    assert simulator.arrived[1] - simulator.arrived[0] >= 0.95
