"""The benchmark's own measuring: medians of repeated runs, and a child's own peak memory."""

from __future__ import annotations

import sys

import pytest

from benchmarks.bench import Measure, median_of, timed


def test_median_of_repeats_takes_the_middle_time_and_the_highest_peak() -> None:
    runs = [
        Measure("send", 10, 9.0, 100.0, "chunk 100"),
        Measure("send", 10, 12.0, 90.0, "chunk 100"),
        Measure("send", 10, 10.0, 120.0, "chunk 100"),
    ]
    median = median_of(runs)
    assert (median.seconds, median.peak_mb) == (10.0, 120.0)
    assert median.note == "chunk 100; runs 9.0-12.0s"
    assert median_of(runs[:1]).note == "chunk 100"  # one run: no spread to show


def test_timed_reports_the_childs_own_peak_not_the_benchmarks() -> None:
    """Linux carries a process's peak RSS over fork and exec: a child started straight from a
    large benchmark process reported the benchmark's peak. The go-between keeps it out."""
    ballast = b"\x01" * (200 * 1024 * 1024)  # written, so resident: this process is > 200 MB
    measure = timed("empty", 1, [sys.executable, "-c", "pass"])
    assert len(ballast) and measure.peak_mb < 100
    assert 0 < measure.seconds < 30


def test_timed_adds_the_peak_of_the_processes_the_child_starts() -> None:
    """A send runs in two processes (pipeline.sender_process): both count, summed, each once.
    (Linux's wait4 reports only the larger of the two: 165 MB here, where ~270 MB were
    resident; and that larger one is the child's, not the run's own.)"""
    grandchild = "b = b'\\x01' * (150 * 1024 * 1024); import time; time.sleep(0.5)"
    child = (
        "import subprocess, sys; b = b'\\x01' * (100 * 1024 * 1024); "
        f"subprocess.run([sys.executable, '-c', {grandchild!r}], check=True)"
    )
    measure = timed("two processes", 1, [sys.executable, "-c", child])
    assert 250 < measure.peak_mb < 300


def test_timed_stops_the_benchmark_with_the_childs_output_when_it_fails() -> None:
    command = [sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"]
    with pytest.raises(SystemExit, match=r"(?s)broken: exit 3.*boom"):
        timed("broken", 1, command)
