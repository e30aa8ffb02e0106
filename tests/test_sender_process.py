"""The sending process: the Dispatcher's contract across a process boundary, against the
socket-served fake (a real child process, real pipes, real HTTP)."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.errors import ProviderFatal, WorkerFailed
from pipeline.models import Message, Status
from pipeline.sandbox import AmootSimulator
from pipeline.sandbox_server import SandboxServer
from pipeline.send import ChunkResult, SenderSettings
from pipeline.sender_process import (
    STOP_CHECK,
    ProcessDispatcher,
    SenderProcess,
    Start,
    _child_env,
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


def make_simulator() -> AmootSimulator:
    return AmootSimulator(token=TOKEN)


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


@contextmanager
def one_held_one_queued(
    gated: tuple[GatedSimulator, SandboxServer], recorder: _Recorder, stop: threading.Event
) -> Iterator[tuple[SenderProcess, ProcessDispatcher]]:
    """One request at the provider (its answer held), one chunk queued in the child."""
    sim, server = gated
    with SenderProcess(_start(server, concurrency=1)) as worker:
        dispatcher = _dispatcher(worker, recorder, 1, stop)
        dispatcher.submit(_chunk(1, 2), {})
        dispatcher.submit(_chunk(3, 2), {})
        sim.wait_for_arrivals(1)
        yield worker, dispatcher


def test_a_stop_after_the_child_was_closed_is_quiet(server: SandboxServer) -> None:
    """A stop that comes as the run ends (a fatal answer, a signal) reaches the watcher thread
    after the child's pipe is closed: it finds the child gone, as a dead one, and no thread
    fails with a traceback (pytest reports an exception in any thread as a failure)."""
    stop = threading.Event()
    before = set(threading.enumerate())
    with SenderProcess(_start(server)) as worker:
        _dispatcher(worker, _Recorder(), 2, stop)
        (watcher,) = [t for t in set(threading.enumerate()) - before if t.name == "stop-forward"]
    with pytest.raises(OSError):
        worker.send(("stop",))
    stop.set()  # the watcher, and only it, forwards this stop to the closed pipe
    watcher.join(10 * STOP_CHECK)
    assert not watcher.is_alive()


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


def test_every_chunk_is_marked_posted_once_and_answered(
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
    sim, _ = gated
    recorder = _Recorder()
    with one_held_one_queued(gated, recorder, threading.Event()) as (_, dispatcher):
        assert dispatcher.halt() == _chunk(3, 2)
        sim.gate.set()
        dispatcher.drain()
    assert [rows for rows, _ in recorder.answered] == [[1, 2]]
    assert sim.arrivals == 1


def test_a_child_that_dies_leaves_the_started_request_unknown_the_rest_pending(
    gated: tuple[GatedSimulator, SandboxServer],
) -> None:
    recorder = _Recorder()
    with one_held_one_queued(gated, recorder, threading.Event()) as (worker, dispatcher):
        # The first request reached the provider: it may be sent; the second never began.
        worker._proc.kill()
        dispatcher.drain()
        dispatcher.submit(_chunk(5, 1), {})  # after the end: never marked, never posted
    results = {tuple(rows): r for rows, r in recorder.answered}
    assert set(results) == {(1, 2), (3, 4), (5,)}
    statuses = {row: r.outcomes[row].status for rows, r in results.items() for row in rows}
    assert statuses == {
        1: Status.UNKNOWN,
        2: Status.UNKNOWN,
        3: Status.PENDING,
        4: Status.PENDING,
        5: Status.PENDING,
    }
    for result in results.values():  # each stops the run (exit 1), with the reason
        assert "sending process ended unexpectedly (exit code -9)" in str(result.internal)
    assert recorder.marked == [[1, 2], [3, 4]]


def test_a_child_that_died_with_nothing_in_flight_stops_the_run_at_the_next_chunk(
    server: SandboxServer,
) -> None:
    """Between chunks (or before the first), nothing is in flight: the next chunk learns of
    the end (before its mark, or when the write fails), comes back `pending` and stops the
    run (it used to go on, every later chunk `pending`, and exit 0)."""
    recorder = _Recorder()
    with SenderProcess(_start(server)) as worker:
        dispatcher = _dispatcher(worker, recorder, 2, threading.Event())
        worker._proc.kill()
        worker._proc.wait()
        dispatcher.submit(_chunk(1, 2), {})
    [(rows, result)] = recorder.answered
    assert {result.outcomes[row].status for row in rows} == {Status.PENDING}
    assert result.internal is not None  # the run stops: exit 1, not 0
    assert sends(server.sim) == []


def test_marks_come_before_the_request_leaves(server: SandboxServer) -> None:
    """At each mark, the provider has not seen any number of that chunk yet."""
    seen_at_mark: list[set[str]] = []

    class Marking(_Recorder):
        def before_post(self, messages: Sequence[Message]) -> None:
            posted = {item["Number"] for r in sends(server.sim) for item in r.body["Input"]}
            seen_at_mark.append(posted & {m.number for m in messages})
            super().before_post(messages)

    recorder = Marking()
    with SenderProcess(_start(server)) as worker:
        dispatcher = _dispatcher(worker, recorder, 2, threading.Event())
        for first in range(1, 40, 3):
            dispatcher.submit(_chunk(first, 3), {})
        dispatcher.drain()
    assert len(seen_at_mark) == 13 and all(not seen for seen in seen_at_mark)
    assert len(sends(server.sim)) == 13


def test_a_stop_reaches_the_child_at_once_even_while_answers_keep_coming(
    gated: tuple[GatedSimulator, SandboxServer],
) -> None:
    """Ctrl-C, then drain, while answers arrive faster than the stop check's timeout: the
    queued chunks must not start (they did, when the stop was passed on only on a timeout)."""
    sim, server = gated
    recorder, stop = _Recorder(), threading.Event()
    with SenderProcess(_start(server, concurrency=4)) as worker:
        dispatcher = _dispatcher(worker, recorder, 4, stop)
        for first in range(1, 17, 2):
            dispatcher.submit(_chunk(first, 2), {})  # 4 at the provider, 4 queued in the child
        sim.wait_for_arrivals(4)
        stop.set()
        threading.Timer(0.02, sim.gate.set).start()  # the answers, well within 0.1 s
        dispatcher.drain()
    statuses = [r.outcomes[row].status for rows, r in recorder.answered for row in rows]
    assert statuses.count(Status.SENT) == 8 and statuses.count(Status.PENDING) == 8
    assert sim.arrivals == 4  # only the requests already on their way


def test_the_child_keeps_the_pace_the_run_left(server: SandboxServer) -> None:
    """With a rate limit, the run's own AccountStatus counts: the child's first request waits
    for the moment the run's pace allows."""
    recorder = _Recorder()
    start = time.monotonic()
    with SenderProcess(_start(server)) as worker:
        worker.wait_ready()
        dispatcher = ProcessDispatcher(
            worker,
            2,
            stop=threading.Event(),
            before_post=recorder.before_post,
            after_answer=recorder.after_answer,
            not_before=start + 0.5,
        )
        dispatcher.submit(_chunk(1, 1), {})
        dispatcher.drain()
    assert time.monotonic() - start >= 0.5
    assert len(recorder.answered) == 1


def test_modules_in_the_current_folder_are_not_imported_by_the_child(
    campaign: Campaign, server: SandboxServer
) -> None:
    """Cron runs in $HOME: a stray queue.py there must not replace the standard library's."""
    marker = campaign.folder.parent / "imported"
    (campaign.folder.parent / "queue.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nfrom _queue import *\n"
    )
    numbers = [f"0912{i:07d}" for i in range(1, 4)]
    campaign.contacts([(n, "نام", f"C{i}") for i, n in enumerate(numbers)])
    campaign.write_config(live_provider(server))
    done = run_main(campaign.config)  # its current folder: the one holding queue.py
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr
    assert not marker.exists()


# What the run needs and the child must not import: the config (pydantic, YAML), the data
# stack, the number rules, the templates, the journal and the simulator.
HEAVY_FOR_THE_CHILD = (
    "pandas",
    "pydantic",
    "yaml",
    "phonenumbers",
    "jinja2",
    "pipeline.config",
    "pipeline.deliveries",
    "pipeline.journal",
    "pipeline.sandbox",
)


def test_the_child_imports_only_what_posting_needs() -> None:
    """The child's imports are the wait before the first request: what only the run needs
    stays in the run."""
    done = subprocess.run(
        [
            sys.executable,
            "-P",
            "-c",
            "import sys, pipeline.sender_process; "
            "print(sorted(set(sys.argv[1:]) & set(sys.modules)))",
            *HEAVY_FOR_THE_CHILD,
        ],
        env=_child_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"


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


def test_an_error_while_settling_the_end_leaves_nothing_unsettled(
    gated: tuple[GatedSimulator, SandboxServer],
) -> None:
    """If recording one chunk fails (a full disk) as the child's end is settled, the run's
    abort still settles the others: drain() neither spins nor loses them."""
    sim, server = gated
    recorder = _Recorder()
    failed: list[bool] = []

    def after_answer(messages: Sequence[Message], result: ChunkResult) -> None:
        if not failed:
            failed.append(True)
            raise OSError(28, "No space left on device")
        recorder.after_answer(messages, result)

    with SenderProcess(_start(server, concurrency=1)) as worker:
        worker.wait_ready()
        dispatcher = ProcessDispatcher(
            worker,
            1,
            stop=threading.Event(),
            before_post=recorder.before_post,
            after_answer=after_answer,
        )
        dispatcher.submit(_chunk(1, 2), {})
        dispatcher.submit(_chunk(3, 2), {})
        sim.wait_for_arrivals(1)
        worker._proc.kill()
        with pytest.raises(OSError):
            dispatcher.drain()
        assert dispatcher.halt() == []
        dispatcher.drain()  # returns: the second chunk is settled
    assert [rows for rows, _ in recorder.answered] == [[3, 4]]


def test_a_stop_reaches_the_child_while_the_run_is_busy_elsewhere(
    gated: tuple[GatedSimulator, SandboxServer],
) -> None:
    """Ctrl-C while the main thread renders rows (no call into the dispatcher): the queued
    chunk must not start when the request before it is answered."""
    sim, _ = gated
    recorder, stop = _Recorder(), threading.Event()
    with one_held_one_queued(gated, recorder, stop) as (_, dispatcher):
        stop.set()  # the signal handler
        time.sleep(0.3)  # the main thread busy elsewhere
        sim.gate.set()  # the first answer comes back; the child is free for the next chunk
        time.sleep(0.3)
        dispatcher.drain()
    statuses = {row: r.outcomes[row].status for rows, r in recorder.answered for row in rows}
    assert statuses == {1: Status.SENT, 2: Status.SENT, 3: Status.PENDING, 4: Status.PENDING}
    assert sim.arrivals == 1


def test_a_child_that_fails_says_how(server: SandboxServer) -> None:
    """A bug in the child (here a malformed frame) ends it with its own exit code and last
    words in the run's message, not a kill by the run."""
    recorder = _Recorder()
    with SenderProcess(_start(server)) as worker:
        dispatcher = _dispatcher(worker, recorder, 2, threading.Event())
        worker.send(("chunk",))  # cannot be unpacked
        worker._proc.wait(timeout=10)
        dispatcher.submit(_chunk(1, 1), {})
    [(_, result)] = recorder.answered
    assert "exit code 1: ValueError" in str(result.internal)
