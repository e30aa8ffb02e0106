"""The benchmark's own measuring: medians, a child's own peak memory and CPU, the fake's
timeline and single-write answers, and the targets table."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx
import pytest

from benchmarks.bench import (
    CHUNK,
    SHARED,
    TOKEN,
    Results,
    checks,
    floor,
    runs_table,
    targets,
    write_contacts,
)
from benchmarks.measure import Fake, Measure, Run, Window, find_pipeline, timed
from pipeline import sandbox_server
from pipeline.sandbox import AmootSimulator
from pipeline.sandbox_server import SandboxServer

BURN = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass"


def test_a_measure_takes_the_median_time_and_the_highest_peak() -> None:
    runs = [Run(9.0, 3.0, 100.0), Run(12.0, 5.0, 90.0), Run(10.0, 4.0, 120.0)]
    measure = Measure("send", 10, "chunk 100", runs)
    assert (measure.seconds, measure.cpu, measure.peak_mb) == (10.0, 4.0, 120.0)
    assert measure.spread == "9.00-12.00"
    assert Measure("send", 10, "", runs[:1]).spread == ""  # one run: no spread to show


def test_a_measure_reads_a_sends_first_request_and_span_from_the_fakes_window() -> None:
    runs = [
        Run(5.0, 1.0, 1.0, started=100.0, window=Window(200, 101.5, 104.0)),
        Run(5.0, 1.0, 1.0, started=200.0, window=Window(200, 201.0, 203.0)),
        Run(5.0, 1.0, 1.0, started=300.0, window=Window(200, 302.0, 305.0)),
    ]
    measure = Measure("send, latency", 20_000, "", runs)
    assert (measure.first_request, measure.span, measure.requests) == (1.5, 2.5, 200)


def test_timed_reports_the_childs_own_peak_not_the_benchmarks() -> None:
    """Linux carries a process's peak RSS over fork and exec: a child started straight from a
    large benchmark process reported the benchmark's peak. The go-between keeps it out."""
    ballast = b"\x01" * (200 * 1024 * 1024)  # written, so resident: this process is > 200 MB
    run = timed("empty", [sys.executable, "-c", "pass"])
    assert len(ballast) and run.peak_mb < 100
    assert 0 < run.seconds < 30 and run.started <= time.time()


def test_timed_adds_the_peak_of_the_processes_the_child_starts() -> None:
    """A send before issue 14 ran in two processes: both count, summed, each once. (Linux's
    wait4 reports only the larger of the two: 165 MB here, where ~270 MB were resident; and
    that larger one is the child's, not the run's own.)"""
    # the grandchild holds its peak long enough for the go-between's polls on a loaded machine
    grandchild = "b = b'\\x01' * (150 * 1024 * 1024); import time; time.sleep(1.5)"
    child = (
        "import subprocess, sys; b = b'\\x01' * (100 * 1024 * 1024); "
        f"subprocess.run([sys.executable, '-c', {grandchild!r}], check=True)"
    )
    run = timed("two processes", [sys.executable, "-c", child])
    assert 250 < run.peak_mb < 300


def test_timed_counts_the_cpu_of_the_processes_the_child_waited_for() -> None:
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BURN!r}])"
    run = timed("waited", [sys.executable, "-c", child])
    assert run.cpu >= 0.6 and run.cpu >= run.polled_cpu - 0.05
    assert not checks({"send": {"x": Measure("send", 0, "", [run])}})


def test_a_process_the_run_did_not_wait_for_is_flagged() -> None:
    """wait4 counts only waited-for descendants: one left running is seen in /proc only."""
    orphan = f"{BURN}\nprint(flush=True)\ntime.sleep(2)"
    child = (  # the orphan has burnt its CPU; then a second for the go-between to see it
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {orphan!r}], stdout=-1).stdout.readline(); "
        "time.sleep(1)"
    )
    run = timed("orphan", [sys.executable, "-c", child])
    assert run.polled_cpu > run.cpu + 0.2
    assert checks({"dry run": {"x": Measure("dry run", 0, "", [run])}}) == [
        "x dry run: CPU below what /proc showed of its processes"
    ]


def test_timed_stops_the_benchmark_with_the_childs_output_when_it_fails() -> None:
    command = [sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"]
    with pytest.raises(SystemExit, match=r"(?s)broken: exit 3.*boom"):
        timed("broken", command)


def test_a_pipeline_is_found_in_the_checkout_its_interpreter_imports() -> None:
    pipeline = find_pipeline(sys.executable)
    assert pipeline.checkout == Path(__file__).resolve().parent.parent
    assert pipeline.label.startswith(f"{pipeline.checkout.name}@")


def _simulator() -> AmootSimulator:
    return AmootSimulator(token=TOKEN, credit_rials=10**13, remember=False)


def test_the_fakes_timeline_gives_the_sends_window(tmp_path: Path) -> None:
    contacts, timeline = tmp_path / "c.csv", tmp_path / "timeline.txt"
    write_contacts(contacts, 250)
    with SandboxServer(_simulator(), latency=0.05, timeline=timeline) as server:
        fake = Fake(server.base_url, timeline)
        httpx.post(f"{fake.url}/AccountStatus", headers={"Authorization": TOKEN})
        since = fake.mark()
        run = floor(contacts, fake, concurrency=2)
        assert fake.window(fake.mark()) is None  # nothing since
    assert run.window and run.window.requests == 3  # 250 rows in chunks of 100
    # 3 requests of 50 ms, 2 at a time: the last answer ends 100 ms after the first arrival
    assert 0.1 <= run.window.last_end - run.window.first_arrival < run.seconds + 0.01
    every = fake.window(0)
    assert every and every.requests == 3 and since > 0  # the AccountStatus is not a send


def test_the_fake_answers_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """With Nagle's algorithm on, an answer written as headers then body waits for the
    client's delayed ACK: ~40 ms a request on loopback. Written whole, it does not."""
    monkeypatch.setattr(sandbox_server._Handler, "disable_nagle_algorithm", False)
    body = {"SendDateTime": "", "LineNumber": "public", "Input": []}
    times = []
    with SandboxServer(_simulator()) as server, httpx.Client(base_url=server.base_url) as http:
        for _ in range(21):
            start = time.perf_counter()
            http.post("/SendPeerToPeer", json=body, headers={"Authorization": TOKEN}).json()
            times.append(time.perf_counter() - start)
    assert statistics.median(times) < 0.035  # a delayed ACK waits 40 ms at the least


def _results(label: str, *, dry: float, peak: float) -> Results:
    def measure(name: str, n: int, seconds: float, cpu: float, peak_mb: float) -> Measure:
        window = Window(-(-n // CHUNK), 0.0, 1.0) if name.startswith("send") else None
        return Measure(name, n, "", [Run(seconds, cpu, peak_mb, window=window)])

    slow = Run(4.0, 2.0, 150.0, started=0.0, window=Window(200, 2.0, 4.6))
    floor_run = Run(2.6, 0.5, 0.0, window=Window(200, 10.0, 12.6))
    return {
        "bare": {SHARED: measure("bare", 1000, 20.0, 10.0, 100.0)},
        "dry run": {label: measure("dry run", 1000, dry, 9.0, 200.0)},
        "send, 0 ms": {label: measure("send, 0 ms", 1000, 60.0, 40.0, peak)},
        "send, 0 ms, small N": {label: measure("send, 0 ms, small N", 100, 6.0, 4.0, 200.0)},
        "send, 0 ms, shuffled": {label: measure("send, 0 ms, shuffled", 100, 9.0, 6.0, 200.0)},
        "dry run, latency N": {label: measure("dry run, latency N", 20_000, 1.5, 1.0, 150.0)},
        "send, latency": {label: Measure("send, latency", 20_000, "", [slow])},
        "floor": {SHARED: Measure("floor", 20_000, "", [floor_run])},
    }


def test_the_targets_table_has_a_column_a_pipeline() -> None:
    args = argparse.Namespace(n=1000, n_small=100, n_latency=20_000, latency=0.1, concurrency=8)
    before, after = _results("before", dry=25.0, peak=290.0), _results("after", dry=50.0, peak=400)
    results = {name: {**before[name], **after[name]} for name in before}
    lines = targets(results, ["before", "after"], args)
    assert lines[0] == "| target | before | after |"
    rows = {line.split(" | ")[0].removeprefix("| "): line.split(" | ")[1:] for line in lines[2:]}
    assert rows["1. dry run rate / bare rate, 1,000 rows (>= 0.5)"] == [
        "0.80 met",
        "0.40 **missed** |",
    ]
    cpu = "2. CPU a sent message / bare's CPU a row, send at 0 ms (report; aim <= 4)"
    assert rows[cpu][0] == "4.00 (40000 / 10000 us)"
    span = "3. first request to last answer / (requests x latency / 8) (<= 1.1)"
    assert rows[span][0] == "1.04 (2.60 / 2.50 s) met"
    first = "4. first request - dry run, 20,000 rows (<= +1 s)"
    assert rows[first][0] == "+0.50 s (2.00 - 1.50) met"
    assert rows["5. peak RSS, send of 1,000 (<= 300 MB)"] == ["290 MB met", "400 MB **missed** |"]
    assert rows["5. peak RSS, 1,000 / 100 (<= 1.6)"][0] == "1.45 met"
    assert not [line for line in lines if line.startswith("- check")]
    table = runs_table(results, ["before", "after"])
    assert table[0].startswith("| run | N | before: s | CPU s | peak MB | after: s |")
    assert "| bare | 1,000 | 20.00 | 10.0 | 100 | 20.00 | 10.0 | 100 | shared |" in table


def test_a_send_that_did_not_reach_the_fake_whole_is_flagged() -> None:
    short = Run(1.0, 1.0, 1.0, window=Window(9, 0.0, 1.0))
    measure = Measure("send, 0 ms", 10 * CHUNK, "", [short])
    assert checks({"send, 0 ms": {"x": measure}}) == ["x send, 0 ms: 9 requests, not 10"]
