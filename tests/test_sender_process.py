"""The sending process: the Dispatcher's contract across a process boundary, against the
socket-served fake (a real child process, real pipes, real HTTP)."""

from __future__ import annotations

import io
import pickle
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from pipeline.errors import ProviderFatal
from pipeline.models import Message, Status
from pipeline.sandbox_server import SandboxServer
from pipeline.send import ChunkResult, SenderSettings
from pipeline.sender_process import (
    ProcessDispatcher,
    SenderProcess,
    Start,
    WorkerFailed,
    read_frame,
    write_frame,
)
from tests.conftest import (
    TOKEN,
    Campaign,
    GatedSimulator,
    live_provider,
    run_main,
    sends,
    start_cli,
)


def _start(server: SandboxServer, concurrency: int = 2) -> Start:
    settings = SenderSettings(
        base_url=server.base_url, token=TOKEN, line_number="public", timeout=10, max_attempts=3
    )
    return Start(settings, concurrency, None, None)


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


@pytest.fixture
def gated() -> Iterator[tuple[GatedSimulator, SandboxServer]]:
    sim = GatedSimulator(token=TOKEN)
    with SandboxServer(sim) as server:
        try:
            yield sim, server
        finally:
            sim.gate.set()


def _dispatcher(
    worker: SenderProcess, recorder: _Recorder, concurrency: int, stop: threading.Event
) -> ProcessDispatcher:
    worker.wait_ready()
    return ProcessDispatcher(
        worker,
        concurrency,
        stop=stop,
        before_post=recorder.before_post,
        after_answer=recorder.after_answer,
    )


def test_frames_round_trip_and_a_cut_frame_reads_as_the_end() -> None:
    stream = io.BytesIO()
    write_frame(stream, ("chunk", 7, _chunk(1, 2), {1: 1}))
    whole = stream.getvalue()
    assert read_frame(io.BytesIO(whole)) == ("chunk", 7, _chunk(1, 2), {1: 1})
    assert read_frame(io.BytesIO(whole[:-1])) is None  # the writer died mid-frame
    assert read_frame(io.BytesIO(b"")) is None


def test_a_fatal_answer_survives_the_trip_back_with_its_title() -> None:
    fatal = pickle.loads(pickle.dumps(ProviderFatal("Token_Expired", "the token has expired")))
    assert (fatal.title, str(fatal)) == ("Token_Expired", "the token has expired")


def test_chunks_are_marked_before_posting_and_every_one_is_answered(
    server: SandboxServer,
) -> None:
    recorder = _Recorder()
    with SenderProcess(_start(server)) as worker:
        dispatcher = _dispatcher(worker, recorder, 2, threading.Event())
        for first in (1, 4, 7):
            dispatcher.submit(_chunk(first, 3), {})
        dispatcher.drain()
    assert recorder.marked == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert sorted(rows for rows, _ in recorder.answered) == recorder.marked
    outcomes = [r.outcomes[row] for rows, r in recorder.answered for row in rows]
    assert {o.status for o in outcomes} == {Status.SENT}
    assert len({o.message_id for o in outcomes}) == 9  # the provider's own IDs came back
    assert len(sends(server.sim)) == 3


def test_halt_hands_back_the_queued_chunks_and_never_posts_them(
    gated: tuple[GatedSimulator, SandboxServer],
) -> None:
    sim, server = gated
    recorder = _Recorder()
    with SenderProcess(_start(server, concurrency=1)) as worker:
        dispatcher = _dispatcher(worker, recorder, 1, threading.Event())
        dispatcher.submit(_chunk(1, 2), {})
        dispatcher.submit(_chunk(3, 2), {})  # queued in the child behind the first
        sim.wait_for_arrivals(1)
        assert dispatcher.halt() == _chunk(3, 2)
        sim.gate.set()
        dispatcher.drain()
    assert [rows for rows, _ in recorder.answered] == [[1, 2]]
    assert sim.arrivals == 1


def test_a_stop_reaches_the_child_and_queued_chunks_come_back_pending(
    gated: tuple[GatedSimulator, SandboxServer],
) -> None:
    sim, server = gated
    recorder, stop = _Recorder(), threading.Event()
    with SenderProcess(_start(server, concurrency=1)) as worker:
        dispatcher = _dispatcher(worker, recorder, 1, stop)
        dispatcher.submit(_chunk(1, 2), {})
        dispatcher.submit(_chunk(3, 2), {})
        sim.wait_for_arrivals(1)
        stop.set()  # as the signal handler does
        dispatcher.poll()  # forwards it
        sim.gate.set()
        dispatcher.drain()
    statuses = {row: r.outcomes[row].status for rows, r in recorder.answered for row in rows}
    assert statuses == {1: Status.SENT, 2: Status.SENT, 3: Status.PENDING, 4: Status.PENDING}
    assert sim.arrivals == 1


def test_a_child_that_dies_leaves_its_chunks_unknown_and_stops_the_run(
    gated: tuple[GatedSimulator, SandboxServer],
) -> None:
    sim, server = gated
    recorder = _Recorder()
    with SenderProcess(_start(server, concurrency=1)) as worker:
        dispatcher = _dispatcher(worker, recorder, 1, threading.Event())
        dispatcher.submit(_chunk(1, 2), {})
        dispatcher.submit(_chunk(3, 2), {})
        sim.wait_for_arrivals(1)  # the first request reached the provider: it may be sent
        worker._proc.kill()
        dispatcher.drain()
        dispatcher.submit(_chunk(5, 1), {})  # after the end: never posted, and said so
    results = {tuple(rows): r for rows, r in recorder.answered}
    assert set(results) == {(1, 2), (3, 4), (5,)}
    for rows in ((1, 2), (3, 4)):  # the request at the provider, and the one queued behind
        result = results[rows]
        assert {result.outcomes[row].status for row in rows} == {Status.UNKNOWN}
        assert "sending process ended unexpectedly" in str(result.internal)
    assert results[(5,)].outcomes[5].status is Status.PENDING
    assert recorder.marked == [[1, 2], [3, 4]]  # the last one was never marked in flight


def test_a_child_that_cannot_start_is_reported_before_anything_is_marked(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONHOME", "/nonexistent")  # the child's Python cannot start
    worker = SenderProcess(_start(server))
    with pytest.raises(WorkerFailed, match=r"did not start: exit code [1-9]"):
        worker.wait_ready(timeout=30)
    worker.close()


def test_a_run_whose_sending_process_cannot_start_sends_from_threads(
    campaign: Campaign, server: SandboxServer
) -> None:
    numbers = [f"0912{i:07d}" for i in range(1, 6)]
    campaign.contacts([(n, "نام", f"C{i}") for i, n in enumerate(numbers)])
    campaign.write_config(live_provider(server))
    done = run_main(campaign.config, env={"PYTHONHOME": "/nonexistent"})
    assert done.returncode == 0, done.stderr
    assert "sending from threads in this process instead" in done.stderr
    assert {r["status"] for r in campaign.read_report()} == {"sent"}
    assert sorted("0" + a.number for a in server.sim.accepted) == numbers


def sending_process(run_pid: int) -> int:
    """The pid of the run's sending process (a child whose command runs sender_process)."""
    children = Path(f"/proc/{run_pid}/task/{run_pid}/children").read_text().split()
    for pid in children:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"pipeline.sender_process" in command:
            return int(pid)
    raise AssertionError(f"no sending process under {run_pid}: children {children}")


def test_a_live_run_sends_from_its_sending_process(
    campaign: Campaign, gated: tuple[GatedSimulator, SandboxServer]
) -> None:
    sim, server = gated
    numbers = [f"0912{i:07d}" for i in range(1, 8)]
    campaign.contacts([(n, "نام", f"C{i}") for i, n in enumerate(numbers)])
    campaign.write_config(live_provider(server))
    proc = start_cli(campaign.config)
    sim.wait_for_arrivals(1)
    assert sending_process(proc.pid)
    sim.gate.set()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, out + err
    assert "warning" not in err
    assert {r["status"] for r in campaign.read_report()} == {"sent"}
    assert sorted("0" + a.number for a in sim.accepted) == numbers
