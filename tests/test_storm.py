"""A storm of ambiguous answers (the request's outcome unknown) stops the run; the rest stays
`pending`. Over a real socket through the CLI, and the count itself in-process."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from pipeline.errors import AmbiguousStorm
from pipeline.models import Message, Status
from pipeline.sandbox import MOVED, AmootSimulator, Fault
from pipeline.sandbox_server import SandboxServer
from pipeline.throttle import STORM
from tests.conftest import (
    Campaign,
    assert_journal_agrees,
    live_provider,
    make_sender,
    run_cli,
    sends,
)


def _numbers(count: int) -> list[str]:
    return [f"0912{i:07d}" for i in range(1, count + 1)]


def _write_contacts(campaign: Campaign, numbers: list[str]) -> None:
    campaign.contacts([(n, "نام", f"C{i}") for i, n in enumerate(numbers, 1)])


def _carried(simulator: AmootSimulator, since: int = 0) -> list[list[str]]:
    """The numbers of each SendPeerToPeer the fake received (after the first `since`)."""
    return [[item["Number"] for item in r.body["Input"]] for r in sends(simulator)[since:]]


def _by_status(report: list[dict[str, str]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for row in report:
        found.setdefault(row["status"], set()).add(row["number"])
    return found


def test_every_answer_dropped_stops_the_run_with_most_rows_pending(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """1,000 rows, 100 a request, 4 in flight, every connection dropped after the fake
    processed the request: the run stops after the requests already on their way (exit 5),
    their rows `unknown`, the rest `pending`; once the fake recovers, a rerun sends exactly
    the pending rows and leaves the unknown ones alone."""
    numbers = _numbers(1000)
    _write_contacts(campaign, numbers)
    campaign.write_config(live_provider(server, chunk_size=100, concurrency=4))
    simulator.faults.extend(Fault("drop_after") for _ in range(10))

    result = run_cli(campaign.config)
    assert result.returncode == 5, result.stdout + result.stderr
    assert f"no clear answer to {STORM} requests in a row" in result.stderr
    assert "--resend-unknown" in result.stderr and "`pending`" in result.stderr
    report = campaign.read_report()
    status = _by_status(report)
    carried = _carried(simulator)
    # Only the requests in flight when the first drop came, then one at a time up to STORM.
    assert STORM <= len(carried) <= max(4, STORM)
    assert status["unknown"] == {n for ns in carried for n in ns}
    assert status["pending"] == set(numbers) - status["unknown"]
    assert len(status["pending"]) >= 600
    assert {r["error"] for r in report if r["status"] == "pending"} <= {
        "the run stopped before this was sent",
        f"not sent: the run stopped on {STORM} ambiguous answers in a row",
    }
    assert_journal_agrees(campaign, report)
    unknown, pending = status["unknown"], status["pending"]

    simulator.faults.clear()  # the provider is answering again
    again = run_cli(campaign.config)
    assert again.returncode == 5, again.stdout + again.stderr  # the unknown rows still wait
    resent = [n for ns in _carried(simulator, since=len(carried)) for n in ns]
    assert sorted(resent) == sorted(pending)  # each pending row once, no unknown row
    status = _by_status(campaign.read_report())
    assert status["sent"] == pending and status["unknown"] == unknown
    copies = Counter("0" + a.number for a in simulator.accepted)
    assert set(copies.values()) == {1} and set(copies) == set(numbers)


def test_redirects_count_among_the_ambiguous_answers_in_a_row(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """A 302 or a 307 may come after the request was processed (it is never followed, which
    would post it twice): its rows are `unknown`, and with a dropped answer between them they
    make the STORM that stops the run (exit 5), the last chunk `pending`."""
    assert STORM == 3
    numbers = _numbers(12)
    _write_contacts(campaign, numbers)
    campaign.write_config(live_provider(server, chunk_size=3, concurrency=1))
    simulator.faults.extend(
        [
            Fault("http_status", http_status=302, process=True),
            Fault("drop_after"),
            Fault("http_status", http_status=307),
        ]
    )
    result = run_cli(campaign.config)
    assert result.returncode == 5, result.stdout + result.stderr
    assert "HTTP 307" in result.stderr  # the last of the three, named in the message
    carried = _carried(simulator)
    assert carried == [numbers[0:3], numbers[3:6], numbers[6:9]]
    report = {r["number"]: r for r in campaign.read_report()}
    assert {report[n]["status"] for n in numbers[:9]} == {"unknown"}
    assert {report[n]["error"] for n in numbers[0:3]} == {"HTTP 302"}
    assert {report[n]["status"] for n in numbers[9:]} == {"pending"}
    assert not [r for r in simulator.requests if r.method == MOVED.strip("/")]


# -- in-process: the count itself -------------------------------------------------------------

TOKEN = "unit-token"


def _chunk(first: int) -> tuple[list[Message], dict[int, int]]:
    messages = [Message(i, f"0912000{i:04d}", f"سلام {i}") for i in range(first, first + 2)]
    return messages, {m.row: 1 for m in messages}


@pytest.fixture
def sim() -> AmootSimulator:
    return AmootSimulator(token=TOKEN)


def test_the_storm_bound_stops_the_sender_and_starts_nothing_after(sim: AmootSimulator):
    """STORM ambiguous answers in a row (a drop, ServerError, an HTML page): the last result
    stops the run with AmbiguousStorm (exit 5); the next chunk is never posted."""
    sim.faults.extend(
        [
            Fault("drop_after"),
            Fault("title", title="ServerError", process=True),
            Fault("html", process=True),
        ]
    )
    sender, _ = make_sender(sim, token=TOKEN)
    results = [sender.send(*_chunk(first)) for first in (1, 3, 5, 7)]
    assert [r.stop is None for r in results[:2]] == [True, True]
    stop = results[2].stop
    assert isinstance(stop, AmbiguousStorm) and stop.exit_code == 5
    assert {o.status for r in results[:3] for o in r.outcomes.values()} == {Status.UNKNOWN}
    assert {o.status for o in results[3].outcomes.values()} == {Status.PENDING}
    assert len(sends(sim)) == 3


def test_a_definite_answer_between_ambiguous_ones_starts_the_count_again(sim: AmootSimulator):
    """Two drops, an answer, two drops: never STORM in a row, so the run goes on; a third
    drop then stops it."""
    sender, _ = make_sender(sim, token=TOKEN)
    outcomes = []
    for first, fault in [(1, True), (3, True), (5, False), (7, True), (9, True), (11, True)]:
        if fault:
            sim.faults.append(Fault("drop_after"))
        result = sender.send(*_chunk(first))
        outcomes.append(({o.status for o in result.outcomes.values()}, result.stop is None))
    unknown, sent = {Status.UNKNOWN}, {Status.SENT}
    assert outcomes == [
        (unknown, True),
        (unknown, True),
        (sent, True),
        (unknown, True),
        (unknown, True),
        (unknown, False),
    ]


def test_a_request_waiting_for_its_turn_gives_up_soon_after_a_stop():
    """After an ambiguous answer, a request waits until the one still on its way answers.
    When the run is stopped meanwhile (Ctrl-C, a fatal answer elsewhere), it gives up within
    a fraction of a second, not when that answer comes (up to provider.timeout later)."""
    from pipeline.throttle import DOUBT_CHECK, Doubt

    doubt, stop = Doubt(), threading.Event()
    on_its_way = doubt.turn(give_up=stop.is_set)
    on_its_way.__enter__()(True)  # an answer in doubt came; this request is still on its way
    gave_up: list[float] = []

    def waiting() -> None:
        with doubt.turn(give_up=stop.is_set):
            gave_up.append(time.monotonic())

    thread = threading.Thread(target=waiting)
    thread.start()
    time.sleep(0.3)
    assert gave_up == []  # it waits while the other is on its way
    stopped = time.monotonic()
    stop.set()
    thread.join(timeout=5)
    assert gave_up and gave_up[0] - stopped < DOUBT_CHECK + 0.5
    on_its_way.__exit__(None, None, None)
