"""Measure issue 14's speed and memory targets for one pipeline, or two side by side.

    .venv/bin/python -m benchmarks.bench                           # this checkout, N = 1,000,000
    .venv/bin/python -m benchmarks.bench --n 100000 --repeat 1     # a quicker look
    .venv/bin/python -m benchmarks.bench --python BEFORE/.venv/bin/python \\
        --python AFTER/.venv/bin/python                            # paired, one table

Every pipeline run is a fresh process of its interpreter, started in its checkout (imports
included, as cron pays them), from a small go-between process that times it and reads its CPU
(wait4: the run and every process it waited for) and its peak RSS (its own plus every process
it starts). Two pipelines alternate run by run, in ABBA order. The fake provider (this
checkout's simulator on 127.0.0.1, in its own process) and the bare loop are the same for
both; the fake writes each request's arrival and end to a timeline, which gives a send's first
request and last answer. Each measurement runs --repeat times: the median time is shown (one
run on a shared machine can be 25 % off its median) and the highest peak.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import jinja2
import pandas as pd

from benchmarks.measure import (
    CHILD_ENV,
    Fake,
    Measure,
    Pipeline,
    Run,
    fake_provider,
    find_pipeline,
    timed,
)
from pipeline.clock import send_datetime, utc_now

TOKEN = "bench-token"
TEMPLATE = "{{ first_name }} عزیز، کد تخفیف ۲۰٪ بهاره شما: {{ code }}\nفروشگاه نمونه"
NAMES = ("سارا", "علی", "مریم", "رضا", "زهرا", "حسین", "فاطمه", "محمد", "نرگس", "امیر")
PREFIXES = ("12", "13", "19", "35", "36", "01", "02", "03", "90", "21")
CITIES = ("تهران", "مشهد", "اصفهان", "شیراز", "تبریز", "کرج", "قم", "اهواز")
CHUNK = 100
SHARED = "shared"  # the label of what does not depend on the pipeline: bare loop, fake, floor

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


def write_config(folder: Path, contacts: Path, base_url: str, *, concurrency: int) -> Path:
    """A config of its own campaign and journal: every repetition sends every row afresh,
    into an empty journal (a journal grown by earlier runs would make later ones dearer)."""
    stamp = time.monotonic_ns()
    config = folder / f"config-{contacts.stem}-{concurrency}-{stamp}.yaml"
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
              chunk_size: {CHUNK}
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


def send_body(records: list[dict[Hashable, Any]], template: jinja2.Template, send_at: str) -> bytes:
    items = [{"Number": r["mobile"], "MessageText": template.render(r)} for r in records]
    body = {"SendDateTime": send_at, "LineNumber": "public", "Input": items}
    return json.dumps(body, ensure_ascii=False).encode()


def floor(contacts: Path, fake: Fake, concurrency: int) -> Run:
    """What the fake and httpx cost before a single row is read or written: the bodies built
    beforehand, posted from `concurrency` threads (no journal, no report, no retries)."""
    template = jinja2.Environment().from_string(TEMPLATE)
    records = pd.read_csv(contacts, dtype=str, keep_default_na=False).to_dict("records")
    send_at = send_datetime(utc_now())
    bodies = [
        send_body(records[i : i + CHUNK], template, send_at) for i in range(0, len(records), CHUNK)
    ]
    headers = {"Authorization": TOKEN, "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency)
    with httpx.Client(timeout=60, limits=limits) as client:

        def post(body: bytes) -> None:
            client.post(f"{fake.url}/SendPeerToPeer", content=body, headers=headers).json()

        since, start, cpu = fake.mark(), time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(post, bodies))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Run(seconds, cpu, 0.0, window=fake.window(since))


def round_trip(contacts: Path, fake: Fake, count: int = 200) -> Run:
    """One request of CHUNK messages after another: the median time of one (seconds)."""
    template = jinja2.Environment().from_string(TEMPLATE)
    records = pd.read_csv(contacts, dtype=str, keep_default_na=False, nrows=CHUNK)
    body = send_body(records.to_dict("records"), template, send_datetime(utc_now()))
    headers = {"Authorization": TOKEN, "Content-Type": "application/json"}
    times = []
    with httpx.Client(timeout=60) as client:
        for _ in range(count):
            start = time.perf_counter()
            client.post(f"{fake.url}/SendPeerToPeer", content=body, headers=headers).json()
            times.append(time.perf_counter() - start)
    return Run(statistics.median(times), 0.0, 0.0)


def progress(name: str, run: Run) -> None:
    print(
        f"{name}: {run.seconds:.2f} s, CPU {run.cpu:.1f} s, {run.peak_mb:.0f} MB", file=sys.stderr
    )


Results = dict[str, dict[str, Measure]]  # measurement -> pipeline label (or SHARED) -> Measure


def measure_all(args: argparse.Namespace, pipelines: list[Pipeline], folder: Path) -> Results:
    """Every measurement --repeat times; the pipelines' runs alternate, in ABBA order, so that
    a drift of the machine's load hits each alike."""
    results: Results = {}
    repeat = max(args.repeat, 1)

    def each(name: str, n: int, note: str, run: Callable[[Pipeline], Run]) -> None:
        for i in range(repeat):
            for pipe in pipelines if i % 2 == 0 else pipelines[::-1]:
                by = results.setdefault(name, {})
                by.setdefault(pipe.label, Measure(name, n, note)).runs.append(run(pipe))
                progress(f"{name}, {pipe.label}", by[pipe.label].runs[-1])

    def shared(name: str, n: int, note: str, run: Callable[[], Run]) -> None:
        results[name] = {SHARED: Measure(name, n, note)}
        for _ in range(repeat):
            results[name][SHARED].runs.append(run())
            progress(name, results[name][SHARED].runs[-1])

    def pipeline(
        contacts: Path, fake: Fake, *extra: str, concurrency: int = 4
    ) -> Callable[[Pipeline], Run]:
        def run(pipe: Pipeline) -> Run:
            config = write_config(folder, contacts, fake.url, concurrency=concurrency)
            since = fake.mark()
            command = [pipe.python, "-m", "pipeline", str(config), "-q", *extra]
            return replace(timed(config.name, command, pipe.checkout), window=fake.window(since))

        return run

    big, small = folder / f"c{args.n}.csv", folder / f"c{args.n_small}.csv"
    shuffled, slow_file = folder / f"s{args.n_small}.csv", folder / f"c{args.n_latency}.csv"
    for path, n in ((big, args.n), (small, args.n_small), (slow_file, args.n_latency)):
        write_contacts(path, n)
    write_contacts(shuffled, args.n_small, shuffled=True)
    # Warm up: the first start of a fresh install writes the bytecode caches.
    for pipe in pipelines:
        warm = [pipe.python, "-c", "import pipeline.cli"]
        subprocess.run(warm, cwd=pipe.checkout, env=CHILD_ENV, check=True)
    subprocess.run(
        [sys.executable, "-c", "import pipeline.sandbox_server"], env=CHILD_ENV, check=True
    )

    startup = "import pipeline.cli"
    each(
        "start-up",
        0,
        "python + imports",
        lambda p: timed("start-up", [p.python, "-c", startup], p.checkout),
    )
    bare = [sys.executable, "-c", BARE, str(big), TEMPLATE]
    shared("bare", args.n, "pandas + jinja2 alone", lambda: timed("bare", bare))
    with fake_provider(folder, 0.0, TOKEN) as fast:
        note = f"the fake's: one request of {CHUNK} after another"
        shared("round trip, 0 ms", 0, note, lambda: round_trip(small, fast))
        each("dry run", args.n, "", pipeline(big, fast, "--dry-run"))
        each("send, 0 ms", args.n, "chunk 100, concurrency 4", pipeline(big, fast))
        each("send, 0 ms, small N", args.n_small, "", pipeline(small, fast))
        note = "numbers in random order"
        each("send, 0 ms, shuffled", args.n_small, note, pipeline(shuffled, fast))
        each("dry run, latency N", args.n_latency, "", pipeline(slow_file, fast, "--dry-run"))
    with fake_provider(folder, args.latency, TOKEN) as slow:
        note = f"{args.latency * 1000:.0f} ms a request, concurrency {args.concurrency}"
        run = pipeline(slow_file, slow, concurrency=args.concurrency)
        each("send, latency", args.n_latency, note, run)
        note = f"httpx alone, bodies built beforehand, {args.concurrency} threads"
        shared("floor", args.n_latency, note, lambda: floor(slow_file, slow, args.concurrency))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--python", action="append", help="a pipeline's interpreter (twice: paired)"
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="contacts for the large runs")
    parser.add_argument("--n-small", type=int, default=100_000, help="contacts, small sends")
    parser.add_argument("--n-latency", type=int, default=20_000, help="contacts, slow sends")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds a request")
    parser.add_argument("--concurrency", type=int, default=8, help="of the slow sends")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement")
    args = parser.parse_args(argv)
    pipelines = [find_pipeline(python) for python in args.python or [sys.executable]]
    if len({p.label for p in pipelines}) < len(pipelines):  # the same checkout twice
        pipelines = [replace(p, label=f"{i}:{p.label}") for i, p in enumerate(pipelines, 1)]
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        results = measure_all(args, pipelines, Path(tmp))
    labels = [p.label for p in pipelines]
    print("\n".join([*runs_table(results, labels), "", *targets(results, labels, args)]))
    return 0


def runs_table(results: Results, labels: list[str]) -> list[str]:
    """Markdown: a row a measurement, three columns a pipeline (median seconds and the
    spread, median CPU seconds, highest peak); a shared row shows the same in each."""
    lines = [
        "| run | N |" + "".join(f" {label}: s | CPU s | peak MB |" for label in labels) + " note |",
        "|---|---:|" + "---:|---:|---:|" * len(labels) + "---|",
    ]
    for name, by in results.items():
        cells = []
        for m in (by.get(label) or by[SHARED] for label in labels):
            seconds = f"{m.seconds * 1000:.1f} ms" if m.seconds < 0.1 else f"{m.seconds:.2f}"
            seconds += f" ({m.spread})" if m.spread and m.seconds >= 0.1 else ""
            cells += [
                seconds,
                f"{m.cpu:.1f}" if m.cpu else "",
                f"{m.peak_mb:.0f}" if m.peak_mb else "",
            ]
        first = next(iter(by.values()))
        n = f"{first.n:,}" if first.n else ""
        note = "; ".join(part for part in (first.note, SHARED if SHARED in by else "") if part)
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + f" | {note} |")
    return lines


def targets(results: Results, labels: list[str], args: argparse.Namespace) -> list[str]:
    """Markdown: a row a target of issue 14, a column a pipeline; then what looks wrong."""
    lines = ["| target | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for text, cell in _targets(args):
        cells = [
            cell({name: by.get(label) or by[SHARED] for name, by in results.items()})
            for label in labels
        ]
        lines.append(f"| {text} | " + " | ".join(cells) + " |")
    return lines + [f"- check: {problem}" for problem in checks(results)]


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _targets(args: argparse.Namespace) -> list[tuple[str, Callable[[dict[str, Measure]], str]]]:
    def ideal(m: Measure) -> float:  # every request's latency, `concurrency` at a time
        return m.requests * float(args.latency) / int(args.concurrency)

    def dry(m: dict[str, Measure]) -> str:
        ratio = m["bare"].seconds / m["dry run"].seconds * m["dry run"].n / m["bare"].n
        return f"{ratio:.2f} {_met(ratio >= 0.5)}"

    def cpu(m: dict[str, Measure]) -> str:
        send, bare = m["send, 0 ms"], m["bare"]
        per_message, per_row = send.cpu / send.n * 1e6, bare.cpu / bare.n * 1e6
        ratio = per_message / per_row
        return (
            f"{ratio:.2f} ({per_message:.0f} / {per_row:.0f} us){'' if ratio <= 4 else ' above 4'}"
        )

    def span(m: dict[str, Measure]) -> str:
        send = m["send, latency"]
        ratio = send.span / ideal(send)
        return f"{ratio:.2f} ({send.span:.2f} / {ideal(send):.2f} s) {_met(ratio <= 1.1)}"

    def first(m: dict[str, Measure]) -> str:
        send, plan = m["send, latency"], m["dry run, latency N"]
        late = send.first_request - plan.seconds
        return f"{late:+.2f} s ({send.first_request:.2f} - {plan.seconds:.2f}) {_met(late <= 1.0)}"

    def peak(m: dict[str, Measure]) -> str:
        return f"{m['send, 0 ms'].peak_mb:.0f} MB {_met(m['send, 0 ms'].peak_mb <= 300)}"

    def growth(m: dict[str, Measure]) -> str:
        ratio = m["send, 0 ms"].peak_mb / m["send, 0 ms, small N"].peak_mb
        return f"{ratio:.2f} {_met(ratio <= 1.6)}"

    def shuffled(m: dict[str, Measure]) -> str:
        return f"{m['send, 0 ms, shuffled'].seconds / m['send, 0 ms, small N'].seconds:.2f}"

    def floor_span(m: dict[str, Measure]) -> str:
        return f"{m['floor'].span / ideal(m['floor']):.2f}"

    n, n_small, n_latency = f"{args.n:,}", f"{args.n_small:,}", f"{args.n_latency:,}"
    return [
        (f"1. dry run rate / bare rate, {n} rows (>= 0.5)", dry),
        ("2. CPU a sent message / bare's CPU a row, send at 0 ms (report; aim <= 4)", cpu),
        (
            f"3. first request to last answer / (requests x latency / {args.concurrency}) (<= 1.1)",
            span,
        ),
        (f"4. first request - dry run, {n_latency} rows (<= +1 s)", first),
        (f"5. peak RSS, send of {n} (<= 300 MB)", peak),
        (f"5. peak RSS, {n} / {n_small} (<= 1.6)", growth),
        ("no target: shuffled / in-order numbers, send at 0 ms", shuffled),
        ("no target: the floor's first request to last answer / ideal", floor_span),
    ]


def checks(results: Results) -> list[str]:
    """What would make a number wrong: a send whose rows did not all reach the fake, or a run
    whose CPU (wait4) is below what /proc showed of its processes (one it did not wait for)."""
    problems = []
    for name, by in results.items():
        for label, m in by.items():
            if name.startswith("send") and m.requests != math.ceil(m.n / CHUNK):
                problems.append(f"{label} {name}: {m.requests} requests, not {m.n / CHUNK:.0f}")
            if any(r.cpu < r.polled_cpu - 0.05 for r in m.runs):
                problems.append(f"{label} {name}: CPU below what /proc showed of its processes")
    return problems


if __name__ == "__main__":
    raise SystemExit(main())
