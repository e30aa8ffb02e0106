"""The sender in-process against the fake: which outcomes are retried, split, stopped or unknown."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from pipeline.dispatch import Dispatcher
from pipeline.models import Message, Status
from pipeline.sandbox import AmootSimulator, Fault, Reply
from pipeline.send import Sender
from tests.conftest import FakeSleep, GatedSimulator, make_sender

TOKEN = "unit-token"


def _sender(sim: AmootSimulator, **kwargs: Any) -> tuple[Sender, FakeSleep]:
    return make_sender(sim, token=TOKEN, **kwargs)


def _messages(n: int) -> list[Message]:
    return [Message(i, f"0912000{i:04d}", f"سلام {i}") for i in range(1, n + 1)]


def _pages(messages):
    return {m.row: 1 for m in messages}


@pytest.fixture
def sim() -> AmootSimulator:
    return AmootSimulator(token=TOKEN)


def test_success_records_ids_and_tehran_send_time(sim):
    """Every message is sent once; IDs come back per row; SendDateTime is Tehran wall time."""
    sender, _ = _sender(sim)
    result = sender.send(_messages(3), _pages(_messages(3)))
    assert {o.status for o in result.outcomes.values()} == {Status.SENT}
    assert len(sim.accepted) == 3
    by_number = {a.number: a for a in sim.accepted}
    assert result.outcomes[1].message_id == str(by_number["9120000001"].message_id)
    assert sim.accepted[0].send_datetime == "2026-03-21 00:00:00"  # 20:30 UTC + 03:30
    assert result.attempts == {1: 1, 2: 1, 3: 1}


@pytest.mark.parametrize("status", [503, 429])
def test_busy_answers_are_retried_honouring_retry_after(sim, status):
    """HTTP 503 / 429 promise nothing was processed: retried after Retry-After seconds."""
    sim.faults.append(Fault(kind="http_status", http_status=status, retry_after="7"))
    sender, sleep = _sender(sim)
    result = sender.send(_messages(2), _pages(_messages(2)))
    assert {o.status for o in result.outcomes.values()} == {Status.SENT}
    assert 7 in sleep.calls
    assert result.attempts == {1: 2, 2: 2}
    assert len(sim.accepted) == 2


def test_connect_errors_retry_with_backoff_then_stop_the_run(sim):
    """A provider that cannot be reached is retried max_attempts times, then the run stops."""
    for _ in range(3):
        sim.faults.append(Fault(kind="drop_before"))
    sender, sleep = _sender(sim, max_attempts=3)
    result = sender.send(_messages(2), _pages(_messages(2)))
    assert {o.status for o in result.outcomes.values()} == {Status.PENDING}
    assert result.stop is not None and result.stop.exit_code == 3
    assert len(sleep.calls) == 2 and all(0 < s <= 61 for s in sleep.calls)
    assert sim.accepted == []


@pytest.mark.parametrize(
    "fault",
    [
        Fault(kind="drop_after"),
        Fault(kind="slow_after", delay=1),
        Fault(kind="title", title="ServerError", process=True),
        Fault(kind="html", process=True),
        Fault(kind="http_status", http_status=500, process=True),
        Fault(kind="http_status", http_status=502, process=True),
    ],
    ids=lambda f: f"{f.kind}-{f.http_status}-{f.title}",
)
def test_ambiguous_outcomes_are_unknown_and_never_retried(sim, fault):
    """What may have reached the server is `unknown` and sent exactly once."""
    sim.faults.append(fault)
    sender, sleep = _sender(sim)
    result = sender.send(_messages(3), _pages(_messages(3)))
    assert {o.status for o in result.outcomes.values()} == {Status.UNKNOWN}
    sends = [r for r in sim.requests if r.method == "SendPeerToPeer"]
    assert len(sends) == 1
    assert sleep.calls == []
    assert result.stop is None


def test_list_level_invalid_is_split_until_the_bad_number_stands_alone(sim):
    """Top-level Mobiles_Invalid with no data means nothing was processed: halves are resent."""
    sim.blacklist.update({"9120000002", "9120000003", "9120000004"})
    messages = _messages(5)
    sender, _ = _sender(sim)
    result = sender.send(messages, _pages(messages))
    statuses = {row: o.status for row, o in result.outcomes.items()}
    assert statuses == {
        1: Status.SENT,
        2: Status.FAILED,
        3: Status.FAILED,
        4: Status.FAILED,
        5: Status.SENT,
    }
    assert sorted(a.number for a in sim.accepted) == ["9120000001", "9120000005"]


def test_generic_failed_is_retried_once_then_fails_the_rows(sim):
    """`Failed` is retried at most twice in all (amoot-api.md), then the rows are `failed`."""
    sim.faults.extend([Fault(kind="title", title="Failed"), Fault(kind="title", title="Failed")])
    sender, _ = _sender(sim)
    result = sender.send(_messages(2), _pages(_messages(2)))
    assert {o.status for o in result.outcomes.values()} == {Status.FAILED}
    assert {o.error for o in result.outcomes.values()} == {"Failed"}
    assert len([r for r in sim.requests if r.method == "SendPeerToPeer"]) == 2


@pytest.mark.parametrize("title", ["Token_NotExists", "CreditNotEnough", "AccountIsDemo"])
def test_fatal_titles_stop_with_rows_pending(sim, title):
    """A fatal title stops the run; nothing in that request was processed: rows `pending`."""
    sim.status_override = title
    sender, _ = _sender(sim)
    result = sender.send(_messages(2), _pages(_messages(2)))
    assert {o.status for o in result.outcomes.values()} == {Status.PENDING}
    assert result.stop is not None and result.stop.title == title
    assert TOKEN not in str(result.stop)


def test_unknown_title_stops_and_marks_unknown(sim):
    """A title this tool does not know may mean anything: rows unknown, run stops."""
    sim.faults.append(Fault(kind="title", title="Brand_New_Title"))
    sender, _ = _sender(sim)
    result = sender.send(_messages(1), _pages(_messages(1)))
    assert result.outcomes[1].status is Status.UNKNOWN
    assert result.stop is not None


def test_stop_event_holds_back_everything_not_posted(sim):
    """After a stop request nothing new is posted: the rows are pending."""
    stop = threading.Event()
    stop.set()
    sender, _ = _sender(sim, stop=stop)
    result = sender.send(_messages(2), _pages(_messages(2)))
    assert {o.status for o in result.outcomes.values()} == {Status.PENDING}
    assert sim.requests == []


class _MeetingSimulator(AmootSimulator):
    """The fake that answers none of the first `parties` sends until all have been decided."""

    def __init__(self, parties: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._meeting = threading.Barrier(parties)
        self._arrivals = 0
        self._count = threading.Lock()

    def decide(self, request: httpx.Request) -> Reply:
        reply = super().decide(request)
        if request.url.path.endswith("/SendPeerToPeer"):
            with self._count:
                self._arrivals += 1
                first = self._arrivals <= self._meeting.parties
            if first:
                self._meeting.wait(timeout=10)  # a bound, so a failing test cannot hang
        return reply


def test_concurrent_sends_keep_their_own_retry_count():
    """Two chunks in flight on one Sender, each answered 503 once: each retries on its own
    count (max_attempts=2 leaves no room for the other's attempt), and both are sent."""
    sim = _MeetingSimulator(2, token=TOKEN)
    sim.faults.extend(
        [
            Fault(kind="http_status", http_status=503, retry_after="7"),
            Fault(kind="http_status", http_status=503, retry_after="7"),
        ]
    )
    sender, _ = _sender(sim, max_attempts=2)
    chunks = [_messages(4)[:2], _messages(4)[2:]]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda chunk: sender.send(chunk, _pages(chunk)), chunks))
    for result in results:
        assert result.stop is None
        assert {o.status for o in result.outcomes.values()} == {Status.SENT}
        assert set(result.attempts.values()) == {2}
    assert sorted(a.number for a in sim.accepted) == [f"912000{i:04d}" for i in range(1, 5)]


def test_dispatcher_queues_a_chunk_behind_each_thread_and_halt_cancels_it():
    """With one thread, a second chunk waits in the queue (marked, not posted); halt() hands
    it back unposted, and only the chunk that was posted gets an answer."""
    sim = GatedSimulator(token=TOKEN)
    sender, _ = make_sender(sim, token=TOKEN)
    marked: list[list[str]] = []
    answered: list[list[Status]] = []
    dispatcher = Dispatcher(
        sender,
        1,
        before_post=lambda ms: marked.append([m.number for m in ms]),
        after_answer=lambda ms, result: answered.append(
            [result.outcomes[m.row].status for m in ms]
        ),
    )
    first = [Message(1, "09120000001", "a"), Message(2, "09120000002", "b")]
    second = [Message(3, "09120000003", "c")]
    dispatcher.submit(first, {})
    dispatcher.submit(second, {})  # one thread busy: queued, not refused
    sim.wait_for_arrivals(1)
    assert marked == [["09120000001", "09120000002"], ["09120000003"]]
    assert dispatcher.halt() == second
    sim.gate.set()
    dispatcher.drain()
    assert answered == [[Status.SENT, Status.SENT]]
    assert sim.arrivals == 1 and {a.number for a in sim.accepted} == {"9120000001", "9120000002"}


def test_a_sender_crash_keeps_queued_chunks_from_starting():
    """A bug in a sender thread (not an HTTP error) halts the Sender: the chunk queued behind
    the crashed one is answered `pending` without a request, as after a fatal answer."""
    sim = AmootSimulator(token=TOKEN)
    raw: list[httpx.Request] = []

    def broken(request: httpx.Request) -> httpx.Response:
        raw.append(request)
        raise RuntimeError("a bug")

    sender, _ = make_sender(sim, token=TOKEN)
    sender._client = httpx.Client(transport=httpx.MockTransport(broken))
    answered: list[list[Status]] = []
    dispatcher = Dispatcher(
        sender,
        1,
        before_post=lambda _ms: None,
        after_answer=lambda ms, result: answered.append(
            [result.outcomes[m.row].status for m in ms]
        ),
    )
    dispatcher.submit([Message(1, "09120000001", "a")], {})
    dispatcher.submit([Message(2, "09120000002", "b")], {})
    dispatcher.drain()
    assert len(raw) == 1  # the second chunk never went out
    assert answered == [[Status.UNKNOWN], [Status.PENDING]]
