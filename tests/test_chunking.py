"""Property: whatever the rows, chunk size and concurrency, each sendable row goes out once."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import load_config
from pipeline.models import RunOptions, Status
from pipeline.run import run
from pipeline.sandbox import AmootSimulator

KINDS = st.sampled_from(["ok", "ok", "ok", "dup", "bad", "blank"])


def _write_campaign(folder: Path, kinds: list[str], chunk_size: int, concurrency: int) -> None:
    lines = ["mobile,name"]
    for i, kind in enumerate(kinds, start=1):
        if kind == "ok":
            lines.append(f"0912{i:07d},n{i}")
        elif kind == "dup":
            lines.append("09120000001,again")
        elif kind == "bad":
            lines.append(f"0212{i:07d},landline")
        else:
            lines.append(",")
    (folder / "c.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "config.yaml").write_text(
        "campaign: prop\ncontacts:\n  path: c.csv\ntemplate:\n  text: 'سلام {{ name }}'\n"
        f"provider:\n  sandbox: false\n  token: t\n  chunk_size: {chunk_size}\n"
        f"  concurrency: {concurrency}\nreport:\n  path: r.csv\njournal:\n  path: j.sqlite\n",
        encoding="utf-8",
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kinds=st.lists(KINDS, min_size=1, max_size=60),
    chunk_size=st.integers(1, 12),
    concurrency=st.integers(1, 5),
    limit=st.one_of(st.none(), st.integers(1, 30)),
)
def test_every_sendable_row_is_posted_exactly_once(kinds, chunk_size, concurrency, limit):
    """Requests hold at most chunk_size rows; no number is posted twice; the report keeps order."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write_campaign(folder, kinds, chunk_size, concurrency)
        sim = AmootSimulator(token="t")
        result = run(
            load_config(folder / "config.yaml"),
            RunOptions(limit=limit),
            transport=httpx.MockTransport(sim.handle),
        )
        sends = [r for r in sim.requests if r.method == "SendPeerToPeer"]
        assert all(1 <= len(r.body["Input"]) <= chunk_size for r in sends)
        posted = [item["Number"] for r in sends for item in r.body["Input"]]
        assert len(posted) == len(set(posted))

        report = (folder / "r.csv").read_text(encoding="utf-8-sig").splitlines()[1:]
        rows = [int(line.split(",")[0]) for line in report if line[:1].isdigit()]
        non_blank = [i for i, kind in enumerate(kinds, start=1) if kind != "blank"]
        assert rows == non_blank

        numbers = {f"0912{i:07d}" for i, kind in enumerate(kinds, 1) if kind == "ok"}
        if "dup" in kinds:  # every "dup" row is 09120000001: the first of them is sendable
            numbers.add("09120000001")
        sendable = len(numbers)
        expected_sent = sendable if limit is None else min(limit, sendable)
        assert result.counts[Status.SENT] == len(posted) == expected_sent
        assert result.counts[Status.PENDING] == sendable - expected_sent
