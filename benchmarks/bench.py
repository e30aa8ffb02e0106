"""Measure the pipeline side by side with the floor a hand-written script pays.

    .venv/bin/python -m benchmarks.bench              # N = 1,000,000 (about 16 minutes)
    .venv/bin/python -m benchmarks.bench --n 100000   # a quicker look

Every pipeline and bare run is a fresh `python` process (imports included, as cron pays
them), timed from the outside; the floor and the sample approach run in this process. Peak
memory is the run's own peak plus that of every process it starts (the sending process),
read by a small go-between process (see _GO_BETWEEN).
Each measurement runs --repeat times (3; the slow sample approach once) and the median time is
shown: one run on a shared machine can be 25 % off its median. The fake provider is the
project's simulator served on 127.0.0.1 in its own process, with a per-request latency.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import jinja2
import pandas as pd

from pipeline.clock import send_datetime, utc_now

TOKEN = "bench-token"
TEMPLATE = "{{ first_name }} عزیز، کد تخفیف ۲۰٪ بهاره شما: {{ code }}\nفروشگاه نمونه"
NAMES = ("سارا", "علی", "مریم", "رضا", "زهرا", "حسین", "فاطمه", "محمد", "نرگس", "امیر")
PREFIXES = ("12", "13", "19", "35", "36", "01", "02", "03", "90", "21")
CITIES = ("تهران", "مشهد", "اصفهان", "شیراز", "تبریز", "کرج", "قم", "اهواز")

BARE = textwrap.dedent(
    """
    import sys

    import jinja2
    import pandas as pd

    template = jinja2.Environment().from_string(sys.argv[2])
    n = 0
    for chunk in pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False, chunksize=10_000):
        for record in chunk.to_dict("records"):
            template.render(record)
            n += 1
    print(n)
    """
)


# Children run as an installed program does: with its compiled bytecode cached. (Some
# sandboxes set PYTHONDONTWRITEBYTECODE, which makes every start compile every module again.)
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


@contextmanager
def fake_provider(latency: float) -> Iterator[str]:
    """The simulator on a socket, in its own process (its CPU and memory are not ours)."""
    command = [
        sys.executable,
        "-m",
        "pipeline.sandbox_server",
        "--port",
        "0",
        "--token",
        TOKEN,
        "--credit",
        str(10**13),
        "--latency",
        str(latency),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=_ENV)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait()


@dataclass
class Measure:
    name: str
    n: int
    seconds: float
    peak_mb: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.n / self.seconds


def write_contacts(path: Path, n: int, *, shuffled: bool = False) -> None:
    """N contacts; numbers nearly in order (as generated ids are), or `shuffled` across the
    mobile ranges, as a real export sorted by customer holds them."""
    rng = random.Random(1405)
    numbers = (
        [
            f"09{prefix}{tail:07d}"
            for prefix, tail in zip(
                rng.choices(PREFIXES, k=n), rng.sample(range(10**7), n), strict=True
            )
        ]
        if shuffled
        else [f"09{rng.choice('0123')}{i:08d}" for i in range(n)]
    )
    with path.open("w", encoding="utf-8") as f:
        f.write("mobile,first_name,code,city\n")
        for i, number in enumerate(numbers):
            f.write(f"{number},{rng.choice(NAMES)},C{i:07d},{rng.choice(CITIES)}\n")


def write_config(
    folder: Path, contacts: Path, base_url: str, *, chunk: int, concurrency: int
) -> Path:
    """A config of its own campaign and journal: every repetition sends every row afresh,
    into an empty journal (a journal grown by earlier runs would make later ones dearer)."""
    stamp = time.monotonic_ns()
    config = folder / f"config-{contacts.stem}-{chunk}-{concurrency}-{stamp}.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            campaign: bench-{stamp}
            contacts:
              path: {contacts}
            template:
              text: {json.dumps(TEMPLATE, ensure_ascii=False)}
            provider:
              sandbox: false
              base_url: {base_url}
              token: {TOKEN}
              chunk_size: {chunk}
              concurrency: {concurrency}
              timeout: 60
            report:
              path: {folder}/report-{stamp}.csv
            journal:
              path: {folder}/journal-{stamp}.sqlite
            """
        ),
        encoding="utf-8",
    )
    return config


# Children start from a small go-between process, which times them and reads their peak RSS.
# Linux carries a process's peak RSS over fork and exec: a child started from this process
# (which holds the generated contacts, ~180 MB) would report at least this process's peak,
# and a small run's own peak would never be seen. A run sends from a process of its own
# (pipeline.sender_process), whose memory counts too: the go-between adds the peak of every
# other process under the child (VmHWM, polled), as if all peaks fell at the same moment.
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

def peak_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

def watch():
    while not done.wait(0.2):
        peaks[proc.pid] = max(peaks.get(proc.pid, 0), peak_kb(proc.pid))
        todo = children(proc.pid)
        while todo:
            pid = todo.pop()
            peaks[pid] = max(peaks.get(pid, 0), peak_kb(pid))
            todo += children(pid)

start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:])
peaks, done = {}, threading.Event()
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
print(json.dumps([seconds, own + sum(others), os.waitstatus_to_exitcode(status)]))
"""


def timed(name: str, n: int, command: list[str], note: str = "") -> Measure:
    """Run a command to the end; its wall time and its own peak RSS."""
    go_between = [sys.executable, "-I", "-S", "-c", _GO_BETWEEN]
    proc = subprocess.run([*go_between, *command], capture_output=True, env=_ENV, check=False)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    try:
        seconds, peak_kb, code = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SystemExit(f"{name}: the go-between failed\n{out}\n{err}") from None
    if code != 0:
        raise SystemExit(f"{name}: exit {code}\n{out}\n{err}")
    return Measure(name, n, seconds, peak_kb / 1024, note)


def median_of(runs: list[Measure]) -> Measure:
    """The run of median time, with the highest peak memory of them all (memory is not noisy
    the way time is on a shared machine, and the highest is the one to plan for)."""
    ordered = sorted(runs, key=lambda m: m.seconds)
    middle = ordered[len(ordered) // 2]
    spread = f"{ordered[0].seconds:.1f}-{ordered[-1].seconds:.1f}s" if len(runs) > 1 else ""
    note = "; ".join(part for part in (middle.note, spread and f"runs {spread}") if part)
    return Measure(middle.name, middle.n, middle.seconds, max(m.peak_mb for m in runs), note)


def sequential(contacts: Path, base_url: str, chunk: int) -> Measure:
    """The provider's sample approach: render, then post one request after another."""
    template = jinja2.Environment().from_string(TEMPLATE)
    start = time.perf_counter()
    n = 0
    with httpx.Client(timeout=60) as client:
        batch: list[dict[str, str]] = []

        def post() -> None:
            body = {
                "SendDateTime": send_datetime(utc_now()),
                "LineNumber": "public",
                "Input": batch,
            }
            client.post(f"{base_url}/SendPeerToPeer", json=body, headers={"Authorization": TOKEN})

        for frame in pd.read_csv(contacts, dtype=str, keep_default_na=False, chunksize=10_000):
            for record in frame.to_dict("records"):
                batch.append({"Number": record["mobile"], "MessageText": template.render(record)})
                n += 1
                if len(batch) == chunk:
                    post()
                    batch = []
        if batch:
            post()
    return Measure(
        "sequential sample", n, time.perf_counter() - start, 0.0, "one request at a time"
    )


def floor(contacts: Path, base_url: str, chunk: int, concurrency: int) -> Measure:
    """What the fake and httpx cost before a single row is read or written: the bodies built
    beforehand, posted from `concurrency` threads (no journal, no report, no retries)."""
    template = jinja2.Environment().from_string(TEMPLATE)
    records = pd.read_csv(contacts, dtype=str, keep_default_na=False).to_dict("records")
    send_at = send_datetime(utc_now())
    bodies = [
        json.dumps(
            {
                "SendDateTime": send_at,
                "LineNumber": "public",
                "Input": [
                    {"Number": r["mobile"], "MessageText": template.render(r)}
                    for r in records[start : start + chunk]
                ],
            },
            ensure_ascii=False,
        ).encode()
        for start in range(0, len(records), chunk)
    ]
    headers = {"Authorization": TOKEN, "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency)
    with httpx.Client(timeout=60, limits=limits) as client:

        def post(body: bytes) -> None:
            client.post(f"{base_url}/SendPeerToPeer", content=body, headers=headers).json()

        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(post, bodies))
        seconds = time.perf_counter() - start
    return Measure(
        "floor: httpx alone",
        len(records),
        seconds,
        0.0,
        f"bodies built beforehand, {concurrency} threads",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="contacts for the large runs")
    parser.add_argument("--n-latency", type=int, default=100_000, help="contacts at 50 ms latency")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each measurement; the median is shown"
    )
    args = parser.parse_args(argv)
    python = sys.executable
    results: list[Measure] = []
    repeat = max(args.repeat, 1)
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        folder = Path(tmp)
        big, small = folder / f"c{args.n}.csv", folder / f"c{args.n_latency}.csv"
        shuffled = folder / f"s{args.n_latency}.csv"
        write_contacts(big, args.n)
        write_contacts(small, args.n_latency)
        write_contacts(shuffled, args.n_latency, shuffled=True)

        def pipeline(
            name: str, contacts: Path, url: str, n: int, *extra: str, concurrency: int, note: str
        ) -> Measure:
            runs = []
            for _ in range(repeat):
                config = write_config(folder, contacts, url, chunk=100, concurrency=concurrency)
                command = [python, "-m", "pipeline", str(config), "-q", *extra]
                runs.append(timed(name, n, command, note))
            return median_of(runs)

        # Warm up: the first start of a fresh install writes the bytecode caches.
        subprocess.run(
            [python, "-c", "import pipeline.cli, pipeline.sandbox_server"], env=_ENV, check=True
        )
        startup = [python, "-c", "import pipeline.cli"]
        start_runs = [timed("start-up", 1, startup, "python + imports") for _ in range(repeat)]
        results.append(median_of(start_runs))
        bare_command = [python, "-c", BARE, str(big), TEMPLATE]
        bare_runs = [timed("bare", args.n, bare_command, "pandas + jinja2") for _ in range(repeat)]
        results.append(median_of(bare_runs))
        with fake_provider(0.0) as fast:
            for name, contacts, n, extra, note in (
                ("dry run", big, args.n, ("--dry-run",), ""),
                ("send, 0 ms", big, args.n, (), "chunk 100, concurrency 4"),
                ("send, 0 ms, small N", small, args.n_latency, (), ""),
                ("send, 0 ms, shuffled", shuffled, args.n_latency, (), "numbers in random order"),
            ):
                results.append(pipeline(name, contacts, fast, n, *extra, concurrency=4, note=note))
        with fake_provider(args.latency) as slow:
            note = f"{args.latency * 1000:.0f} ms a request, chunk 100, concurrency 8"
            results.append(
                pipeline("send, latency", small, slow, args.n_latency, concurrency=8, note=note)
            )
            results.append(median_of([floor(small, slow, 100, 8) for _ in range(repeat)]))
            results.append(sequential(small, slow, 100))

    print(table(results, args))
    return 0


def table(results: list[Measure], args: argparse.Namespace) -> str:
    by = {m.name: m for m in results}
    bare = by["bare"]
    lines = [f"{'run':<28}{'N':>11}{'seconds':>10}{'msg/s':>10}{'peak MB':>9}  note"]
    lines += [
        f"{m.name:<28}{m.n:>11,}{m.seconds:>10.2f}{m.rate:>10,.0f}{m.peak_mb:>9.0f}  {m.note}"
        for m in results
    ]
    dry, send, small = by["dry run"], by["send, 0 ms"], by["send, 0 ms, small N"]
    latency, seq = by["send, latency"], by["sequential sample"]
    requests = -(-args.n_latency // 100)
    ideal = max(requests * args.latency / 8, bare.seconds * args.n_latency / args.n)
    lines += [
        "",
        f"dry run rate / bare rate       {dry.rate / bare.rate:6.2f}  (target >= 0.60)",
        f"send (0 ms) rate / bare rate   {send.rate / bare.rate:6.2f}  (target >= 0.30)",
        f"send (latency) / ideal time    {latency.seconds / ideal:6.2f}  "
        f"(target <= 1.30; ideal {ideal:.1f}s)",
        f"floor (httpx alone) / ideal    {by['floor: httpx alone'].seconds / ideal:6.2f}"
        "  (no target: the fake and httpx, with no pipeline at all)",
        f"sequential / send (latency)    {seq.seconds / latency.seconds:6.2f}  (target >= 5)",
        f"peak MB of send at N={args.n:,}  {send.peak_mb:6.0f}  (target <= 350)",
        f"peak MB ratio, N={args.n:,} / {args.n_latency:,}  "
        f"{send.peak_mb / small.peak_mb:5.2f}  (target <= 1.6)",
        f"shuffled / in-order numbers    {by['send, 0 ms, shuffled'].seconds / small.seconds:6.2f}"
        "  (no target: what random keys cost the journal)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
