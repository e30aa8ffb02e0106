"""How one run is measured: a fresh process, its time, CPU and peak memory, and the requests
the fake provider saw from it."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# Children run as an installed program does: with its compiled bytecode cached. (Some
# sandboxes set PYTHONDONTWRITEBYTECODE, which makes every start compile every module again.)
# No PYTHONPATH: it would make every interpreter import the same checkout's pipeline.
_DROPPED = ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
CHILD_ENV = {k: v for k, v in os.environ.items() if k not in _DROPPED}


@dataclass(frozen=True)
class Pipeline:
    python: str
    checkout: Path
    label: str


def find_pipeline(python: str) -> Pipeline:
    """The checkout whose `pipeline` `python` imports, asked from a neutral folder (`-m` and
    `-c` put the current folder first on sys.path: runs start in the checkout for that)."""
    python = str(Path(shutil.which(python) or python).absolute())  # not resolved: a venv's
    with tempfile.TemporaryDirectory() as neutral:
        asked = [python, "-c", "import pipeline; print(pipeline.__file__)"]
        out = subprocess.run(
            asked, cwd=neutral, env=CHILD_ENV, capture_output=True, text=True, check=True
        )
    checkout = Path(out.stdout.strip()).resolve().parent.parent
    describe = ["git", "-C", str(checkout), "describe", "--always", "--dirty"]
    commit = subprocess.run(describe, capture_output=True, text=True, check=False).stdout
    return Pipeline(python, checkout, f"{checkout.name}@{commit.strip() or '?'}")


@dataclass(frozen=True)
class Window:
    """A run's SendPeerToPeer requests as the fake saw them, in wall-clock seconds."""

    requests: int
    first_arrival: float
    last_end: float


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu: float  # user + system: the run and every process it waited for (wait4)
    peak_mb: float
    started: float = 0.0  # wall clock, just before the run's process started
    polled_cpu: float = 0.0  # every process's CPU as last seen in /proc: a lower bound of cpu
    window: Window | None = None


@dataclass
class Measure:
    name: str
    n: int
    note: str = ""
    runs: list[Run] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)

    @property
    def peak_mb(self) -> float:
        """The highest: memory is not noisy the way time is, and the highest is planned for."""
        return max(r.peak_mb for r in self.runs)

    @property
    def spread(self) -> str:
        low, high = min(r.seconds for r in self.runs), max(r.seconds for r in self.runs)
        return f"{low:.2f}-{high:.2f}" if len(self.runs) > 1 else ""

    def _windowed(self, of: Callable[[Run, Window], float]) -> float:
        return statistics.median(of(r, r.window) for r in self.runs if r.window)

    @property
    def first_request(self) -> float:
        """Seconds from the run's start to its first request's arrival at the fake."""
        return self._windowed(lambda run, w: w.first_arrival - run.started)

    @property
    def span(self) -> float:
        """Seconds from the first request's arrival to the last answer's end."""
        return self._windowed(lambda run, w: w.last_end - w.first_arrival)

    @property
    def requests(self) -> int:
        return max((r.window.requests for r in self.runs if r.window), default=0)


@dataclass(frozen=True)
class Fake:
    """The simulator on a socket, in its own process (its CPU and memory are not the run's)."""

    url: str
    timeline: Path

    def mark(self) -> int:
        return self.timeline.stat().st_size if self.timeline.exists() else 0

    def window(self, since: int) -> Window | None:
        """The SendPeerToPeer requests written to the timeline after byte `since`."""
        with self.timeline.open("rb") as f:
            f.seek(since)
            lines = [line.split() for line in f.read().decode().splitlines()]
        sends = [(float(a), float(e)) for path, a, e in lines if path.endswith("/SendPeerToPeer")]
        if not sends:
            return None
        return Window(len(sends), min(a for a, _ in sends), max(e for _, e in sends))


@contextmanager
def fake_provider(folder: Path, latency: float, token: str) -> Iterator[Fake]:
    timeline = folder / f"timeline-{latency}.txt"
    command = [sys.executable, "-m", "pipeline.sandbox_server", "--port", "0", "--token", token]
    command += ["--credit", str(10**13), "--latency", str(latency), "--timeline", str(timeline)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=CHILD_ENV)
    try:
        assert proc.stdout is not None
        yield Fake(proc.stdout.readline().strip(), timeline)
    finally:
        proc.terminate()
        proc.wait()


# Children start from a small go-between process, which times them and reads their peak RSS
# and CPU. Linux carries a process's peak RSS over fork and exec: a child started from this
# process (which holds the generated contacts, ~180 MB) would report at least this process's
# peak. A run may start processes of its own (before issue 14, a sending process), whose memory
# counts too: the go-between adds the peak of every other process under the child (VmHWM,
# polled), as if all peaks fell at the same moment. wait4's CPU counts the child and every
# descendant it waited for; the polled CPU of every process seen checks that none was missed.
_GO_BETWEEN = """
import json, os, subprocess, sys, threading, time

def children(pid):
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return found

def look(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            kb = next((int(l.split()[1]) for l in f if l.startswith("VmHWM:")), None)
        with open(f"/proc/{pid}/stat") as f:
            ticks = f.read().rsplit(")", 1)[1].split()[11:13]
        if kb is not None:  # gone once the process is exiting
            peaks[pid] = kb  # the last: a vfork()ed child shows its parent's until its exec
        cpus[pid] = max(cpus.get(pid, 0), sum(map(int, ticks)) / os.sysconf("SC_CLK_TCK"))
    except (OSError, IndexError, ValueError):
        pass

def watch():
    while not done.wait(0.2):
        todo = [proc.pid]
        while todo:
            pid = todo.pop()
            look(pid)
            todo += children(pid)

peaks, cpus, done = {}, {}, threading.Event()
started, start = time.time(), time.perf_counter()
proc = subprocess.Popen(sys.argv[1:])
watcher = threading.Thread(target=watch, daemon=True)
watcher.start()
_, status, usage = os.wait4(proc.pid, 0)
seconds = time.perf_counter() - start
done.set()
watcher.join()
others = [kb for pid, kb in peaks.items() if pid != proc.pid]
# wait4 reports the larger of the run's own peak and its children's: it is the run's own
# only when no child peaked higher; else the last polled high-water mark stands in.
own = usage.ru_maxrss if usage.ru_maxrss > max(others, default=0) else peaks.get(proc.pid, 0)
cpu = usage.ru_utime + usage.ru_stime
code = os.waitstatus_to_exitcode(status)
print(json.dumps([seconds, own + sum(others), code, cpu, started, sum(cpus.values())]))
"""


def timed(name: str, command: list[str], cwd: Path | None = None) -> Run:
    """Run a command to the end, in `cwd`: its wall time, CPU and peak RSS."""
    go_between = [sys.executable, "-I", "-S", "-c", _GO_BETWEEN]
    proc = subprocess.run(
        [*go_between, *command], capture_output=True, env=CHILD_ENV, cwd=cwd, check=False
    )
    out, err = proc.stdout.decode(), proc.stderr.decode()
    try:
        seconds, peak_kb, code, cpu, started, polled = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SystemExit(f"{name}: the go-between failed\n{out}\n{err}") from None
    if code != 0:
        raise SystemExit(f"{name}: exit {code}\n{out}\n{err}")
    return Run(seconds, cpu, peak_kb / 1024, started, polled)
