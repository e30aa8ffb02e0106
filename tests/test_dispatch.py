"""The Dispatcher's contract over real HTTP (the socket-served fake): every chunk marked before
it leaves, answered once, and a stop that keeps queued chunks from starting."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.clock import utc_now
from pipeline.dispatch import Dispatcher, http_client
from pipeline.models import Message, Status
from pipeline.sandbox_server import SandboxServer
from pipeline.send import ChunkResult, Sender, SenderSettings
from pipeline.throttle import Throttle
from tests.conftest import TOKEN, Campaign, GatedSimulator, live_provider, sends, start_cli


def _chunk(first: int, count: int) -> list[Message]:
    return [Message(i, f"0912{i:07d}", f"پیام {i}") for i in range(first, first + count)]


class _Recorder:
    """The run's two callbacks: what was marked, and what each chunk came back with."""

    def __init__(self) -> None:
        self.marked: list[list[int]] = []
        self.answered: list[tuple[list[int], ChunkResult]] = []

    def before_post(self, messages: Sequence[Message]) -> None:
        self.marked.append([m.row for m in messages])

    def after_answer(self, messages: Sequence[Message], result: ChunkResult) -> None:
        self.answered.append(([m.row for m in messages], result))

    def statuses(self) -> dict[int, Status]:
        return {row: r.outcomes[row].status for rows, r in self.answered for row in rows}


@contextmanager
def dispatching(
    server: SandboxServer,
    recorder: _Recorder,
    concurrency: int,
    stop: threading.Event | None = None,
    rate_limit: float | None = None,
) -> Iterator[tuple[Sender, Dispatcher]]:
    """A real Sender over HTTP to `server`, behind a Dispatcher of `concurrency` threads."""
    stop = stop or threading.Event()
    settings = SenderSettings(server.base_url, TOKEN, "public", 10, 3)
    with http_client(concurrency, 10) as client:
        sender = Sender(
            client,
            settings,
            throttle=Throttle(rate_limit, sleep=stop.wait),
            stop=stop,
            sleep=stop.wait,
            send_at=utc_now,
        )
        yield (
            sender,
            Dispatcher(
                sender,
                concurrency,
                before_post=recorder.before_post,
                after_answer=recorder.after_answer,
            ),
        )


def test_every_chunk_is_marked_posted_once_and_answered(server: SandboxServer) -> None:
    recorder = _Recorder()
    with dispatching(server, recorder, 2) as (_, dispatcher):
        for first in (1, 4, 7):
            dispatcher.submit(_chunk(first, 3), {})
        dispatcher.drain()
    assert recorder.marked == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert sorted(rows for rows, _ in recorder.answered) == recorder.marked
    outcomes = [r.outcomes[row] for rows, r in recorder.answered for row in rows]
    assert {o.status for o in outcomes} == {Status.SENT}
    assert len({o.message_id for o in outcomes}) == 9  # the provider's own IDs came back
    assert len(sends(server.sim)) == 3


def test_marks_come_before_the_request_leaves(server: SandboxServer) -> None:
    """At each mark, the provider has not seen any number of that chunk yet."""
    seen_at_mark: list[set[str]] = []

    class Marking(_Recorder):
        def before_post(self, messages: Sequence[Message]) -> None:
            posted = {item["Number"] for r in sends(server.sim) for item in r.body["Input"]}
            seen_at_mark.append(posted & {m.number for m in messages})
            super().before_post(messages)

    with dispatching(server, Marking(), 2) as (_, dispatcher):
        for first in range(1, 40, 3):
            dispatcher.submit(_chunk(first, 3), {})
        dispatcher.drain()
    assert len(seen_at_mark) == 13 and all(not seen for seen in seen_at_mark)
    assert len(sends(server.sim)) == 13


def test_a_stop_keeps_the_queued_chunks_from_starting_while_answers_keep_coming(
    gated: tuple[GatedSimulator, SandboxServer],
) -> None:
    """Ctrl-C, then drain, while answers arrive at once: the queued chunks must not start."""
    sim, server = gated
    recorder, stop = _Recorder(), threading.Event()
    with dispatching(server, recorder, 4, stop) as (_, dispatcher):
        for first in range(1, 17, 2):
            dispatcher.submit(_chunk(first, 2), {})  # 4 at the provider, 4 queued
        sim.wait_for_arrivals(4)
        stop.set()
        threading.Timer(0.02, sim.gate.set).start()
        dispatcher.drain()
    statuses = list(recorder.statuses().values())
    assert statuses.count(Status.SENT) == 8 and statuses.count(Status.PENDING) == 8
    assert sim.arrivals == 4  # only the requests already on their way


def test_a_stop_while_the_main_thread_is_busy_elsewhere_starts_nothing_more(
    gated: tuple[GatedSimulator, SandboxServer],
) -> None:
    """Ctrl-C while the main thread reads rows (no call into the dispatcher): the queued
    chunk must not start when the request before it is answered."""
    sim, server = gated
    recorder, stop = _Recorder(), threading.Event()
    with dispatching(server, recorder, 1, stop) as (_, dispatcher):
        dispatcher.submit(_chunk(1, 2), {})
        dispatcher.submit(_chunk(3, 2), {})
        sim.wait_for_arrivals(1)
        stop.set()  # the signal handler
        time.sleep(0.3)  # the main thread busy elsewhere
        sim.gate.set()  # the first answer comes back; a thread is free for the next chunk
        time.sleep(0.3)
        dispatcher.drain()
    assert recorder.statuses() == {
        1: Status.SENT,
        2: Status.SENT,
        3: Status.PENDING,
        4: Status.PENDING,
    }
    assert sim.arrivals == 1


def test_an_error_while_settling_leaves_nothing_unsettled(
    gated: tuple[GatedSimulator, SandboxServer],
) -> None:
    """If recording one chunk fails (a full disk), the run's abort still settles the others:
    drain() after halt() neither spins nor loses a chunk."""
    sim, server = gated
    recorder = _Recorder()

    class Failing(_Recorder):
        def after_answer(self, messages: Sequence[Message], result: ChunkResult) -> None:
            if not self.answered:
                self.answered.append(([], result))
                raise OSError(28, "No space left on device")
            recorder.after_answer(messages, result)

    with dispatching(server, Failing(), 1) as (_, dispatcher):
        dispatcher.submit(_chunk(1, 2), {})
        dispatcher.submit(_chunk(3, 2), {})
        sim.wait_for_arrivals(1)
        sim.gate.set()
        with pytest.raises(OSError):
            dispatcher.drain()
        dispatcher.halt()
        dispatcher.drain()  # returns: the second chunk is settled
    assert [rows for rows, _ in recorder.answered] == [[3, 4]]


def test_the_pace_counts_every_request_of_the_sender(server: SandboxServer) -> None:
    """With a rate limit, the run's own AccountStatus counts: the first send waits its turn."""
    recorder = _Recorder()
    with dispatching(server, recorder, 2, rate_limit=2) as (sender, dispatcher):
        start = time.monotonic()
        sender.account_status()
        dispatcher.submit(_chunk(1, 1), {})
        dispatcher.drain()
    assert time.monotonic() - start >= 0.5
    assert len(recorder.answered) == 1


def test_a_live_run_sends_from_its_own_process(
    campaign: Campaign, gated: tuple[GatedSimulator, SandboxServer]
) -> None:
    """No second process: the run posts from its own threads."""
    sim, server = gated
    numbers = [f"0912{i:07d}" for i in range(1, 8)]
    campaign.contacts([(n, "نام", f"C{i}") for i, n in enumerate(numbers)])
    campaign.write_config(live_provider(server))
    proc = start_cli(campaign.config)
    sim.wait_for_arrivals(1)
    assert Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split() == []
    sim.gate.set()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, out + err
    assert {r["status"] for r in campaign.read_report()} == {"sent"}
    assert sorted("0" + a.number for a in sim.accepted) == numbers
