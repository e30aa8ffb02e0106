"""Measure the pipeline side by side with the floor a hand-written script pays.

    .venv/bin/python -m benchmarks.bench              # N = 1,000,000 (about 10 minutes)
    .venv/bin/python -m benchmarks.bench --n 100000   # a quicker look

Every measurement is a fresh `python` process (imports included, as cron pays them), timed
from the outside; peak memory is the child's own ru_maxrss. The fake provider is the
project's simulator served on 127.0.0.1 from this process, with a per-request latency.
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
    config = folder / f"config-{contacts.stem}-{chunk}-{concurrency}.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            campaign: bench-{time.monotonic_ns()}
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
              path: {folder}/report-{{started}}.csv
            journal:
              path: {folder}/journal.sqlite
            """
        ),
        encoding="utf-8",
    )
    return config


def timed(name: str, n: int, command: list[str], note: str = "") -> Measure:
    """Run a command to the end; its wall time and its own peak RSS."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{name}: exit {code}\n{out}\n{err}")
    return Measure(name, n, seconds, usage.ru_maxrss / 1024, note)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="contacts for the large runs")
    parser.add_argument("--n-latency", type=int, default=100_000, help="contacts at 50 ms latency")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    args = parser.parse_args(argv)
    python = sys.executable
    results: list[Measure] = []
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        folder = Path(tmp)
        big, small = folder / f"c{args.n}.csv", folder / f"c{args.n_latency}.csv"
        write_contacts(big, args.n)
        write_contacts(small, args.n_latency)

        # Warm up: the first start of a fresh install writes the bytecode caches.
        subprocess.run(
            [python, "-c", "import pipeline.cli, pipeline.sandbox_server"], env=_ENV, check=True
        )
        bare = timed("bare", args.n, [python, "-c", BARE, str(big), TEMPLATE], "pandas + jinja2")
        results.append(bare)
        with fake_provider(0.0) as fast:
            config = write_config(folder, big, fast, chunk=100, concurrency=4)
            cmd = [python, "-m", "pipeline", str(config), "-q"]
            results.append(timed("dry run", args.n, [*cmd, "--dry-run"]))
            results.append(timed("send, 0 ms", args.n, cmd, "chunk 100, concurrency 4"))
            small_config = write_config(folder, small, fast, chunk=100, concurrency=4)
            small_cmd = [python, "-m", "pipeline", str(small_config), "-q"]
            results.append(timed("send, 0 ms, small N", args.n_latency, small_cmd))
            shuffled = folder / f"s{args.n_latency}.csv"
            write_contacts(shuffled, args.n_latency, shuffled=True)
            shuffled_config = write_config(folder, shuffled, fast, chunk=100, concurrency=4)
            shuffled_cmd = [python, "-m", "pipeline", str(shuffled_config), "-q"]
            note = "numbers in random order"
            results.append(timed("send, 0 ms, shuffled", args.n_latency, shuffled_cmd, note))
        with fake_provider(args.latency) as slow:
            config = write_config(folder, small, slow, chunk=100, concurrency=8)
            latency_cmd = [python, "-m", "pipeline", str(config), "-q"]
            note = f"{args.latency * 1000:.0f} ms a request, chunk 100, concurrency 8"
            results.append(timed("send, latency", args.n_latency, latency_cmd, note))
            results.append(sequential(small, slow, 100))

    print(table(results, args))
    return 0


def table(results: list[Measure], args: argparse.Namespace) -> str:
    by = {m.name: m for m in results}
    bare = by["bare"]
    lines = [f"{'run':<28}{'N':>11}{'seconds':>10}{'msg/s':>10}{'peak MB':>9}  note"]
    lines += [
        f"{m.name:<28}{m.n:>11,}{m.seconds:>10.1f}{m.rate:>10,.0f}{m.peak_mb:>9.0f}  {m.note}"
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
