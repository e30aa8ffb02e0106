"""The HTML summary page: self-contained, right to left, escaped, built from the rows as they
were written (bounded), and drawn by a real browser (headless Chromium)."""

from __future__ import annotations

import re
import shutil
import stat
import struct
import subprocess
import zlib
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipeline.models import Row, Status
from pipeline.summary_page import MAX_REASONS, OTHER, Facts, RunFacts, mask, render_page
from tests.conftest import Campaign, run_main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
INSTALL = "sudo apt-get install -y chromium (or run scripts/install-chromium)"


def sandbox_run(campaign: Campaign, rows: list[tuple[str, ...]], *args: str) -> Path:
    campaign.contacts(rows)
    campaign.write_config("sandbox: true")
    result = run_main(campaign.config, *args)
    assert result.returncode == 0, result.stderr
    page = campaign.report.with_suffix(".html")
    assert f"summary page: {page}" in result.stdout.splitlines()
    lines = result.stdout.splitlines()
    assert lines.index(f"summary page: {page}") == lines.index(f"report: {campaign.report}") + 1
    return page


def test_the_page_is_self_contained_escaped_and_right_to_left(campaign: Campaign) -> None:
    """A contact named <script> shows as text; no src/href leaves the machine; dir=rtl lang=fa."""
    page = sandbox_run(
        campaign,
        [
            ("09121234567", "<script>alert(1)</script>", "A1"),
            ("09120000000", "Blocked", "B2"),
            ("0912", "Short", "C3"),
            ("09351234567", "<img src=http://evil.example/x>", "D4"),
        ],
    )
    text = page.read_text("utf-8")
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    assert '<html dir="rtl" lang="fa">' in text
    assert "<script" not in text.lower() and "<img" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    tags = Tags()
    tags.feed(text)
    assert "script" not in tags.names and "img" not in tags.names and "link" not in tags.names
    assert not [v for k, v in tags.attributes if k in ("src", "href", "xlink:href")]  # none at all
    assert not re.search(r"@import|url\(", text, re.I)
    assert "0912***4567" in text and "09121234567" not in text  # numbers masked
    assert text.count("<svg") >= 4  # statuses, deliveries, pages, the failed/invalid reasons
    assert "Mobile_Invalid" in text  # the top reason for `failed`
    latest = campaign.report.parent / "test-campaign-latest.html"
    assert latest.read_bytes() == page.read_bytes()


class Tags(HTMLParser):
    """Every tag and attribute of the page, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names.add(tag)
        self.attributes += attrs


def test_a_dry_run_page_says_what_would_be_sent(campaign: Campaign) -> None:
    page = sandbox_run(campaign, [("09121234567", "Sara", "A1")], "--dry-run")
    text = page.read_text("utf-8")
    assert "اجرای آزمایشی" in text and "قابل ارسال" in text
    assert "0912***4567" in text


def row(n: int, status: Status, **fields: str) -> Row:
    values = {"number": f"0912{n:07d}", "text": f"text {n}", **fields}
    r = Row(n, values["number"], number=values["number"], text=values["text"], pages=1)
    r.status, r.error, r.delivery = status, fields.get("error", ""), fields.get("delivery", "")
    return r


def test_the_facts_are_bounded_and_counted_as_written() -> None:
    """Distinct reasons past MAX_REASONS fold into one; three samples; deliveries by class."""
    facts = Facts()
    for n in range(MAX_REASONS + 500):
        facts.add(row(n, Status.INVALID, error=f"bad value {n}"), Status.INVALID)
    for n, delivery in enumerate(["delivered", "not_delivered", "blacklisted", "", "pending"]):
        facts.add(row(n, Status.SENT, delivery=delivery), Status.SENT)
    reasons = facts.reasons[Status.INVALID]
    assert len(reasons) == MAX_REASONS + 1 and reasons[OTHER] == 500
    assert facts.samples == [("0912***0000", "text 0"), ("0912***0001", "text 1"),
                             ("0912***0002", "text 2")]  # fmt: skip
    assert dict(facts.deliveries) == {"رسیده": 1, "نرسیده": 2, "در انتظار گزارش": 2}
    assert facts.counts == {Status.INVALID: MAX_REASONS + 500, Status.SENT: 5}
    html = render_page(
        facts, RunFacts("c", "live", datetime(2026, 3, 20, tzinfo=UTC), "r.csv", None)
    )
    assert "نامعلوم" in html  # the cost, with no prices known
    assert html.count("<rect") == 2 + 3 + 1 + 5  # two statuses, deliveries, pages, top 5 reasons


def test_mask_keeps_the_ends_only() -> None:
    assert mask("09121234567") == "0912***4567"
    assert mask("") == "***"


# --- a real browser -------------------------------------------------------------------------


def png_pixels(data: bytes) -> tuple[int, int, set[bytes]]:
    """Width, height and the distinct colours of an 8-bit RGB/RGBA PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    chunks: dict[bytes, bytes] = {}
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IDAT":
            idat += body
        chunks.setdefault(kind, body)
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert depth == 8 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    previous, colours = bytearray(stride), set[bytes]()
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):  # the PNG filters, undone
            a = line[i - bpp] if i >= bpp else 0
            b, c = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if y % 4 == 0:  # every fourth line is plenty to count colours
            colours.update(bytes(line[i : i + 3]) for i in range(0, stride, bpp * 2))
        previous = line
    return width, height, colours


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        pytest.skip(
            f"!!! chromium is not installed, the page is not checked in a browser: {INSTALL}"
        )
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]  # fmt: skip
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_page_draws_in_headless_chromium(campaign: Campaign, tmp_path: Path) -> None:
    """Rendered by a real browser: a non-blank screenshot, the SVG charts and RTL in its DOM."""
    page = sandbox_run(
        campaign,
        [("09121234567", "سارا", "A1"), ("09120000000", "علی", "B2"), ("0912", "مریم", "C3")],
    )
    shot = tmp_path / "page.png"
    drawn = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri())
    assert shot.exists(), drawn.stderr
    width, height, colours = png_pixels(shot.read_bytes())
    assert (width, height) == (1200, 1600)
    assert len(colours) > 20  # text, bars in several colours, cards: not a blank page
    assert {bytes.fromhex("2e9e50"), bytes.fromhex("d64541")} <= colours  # sent and failed bars

    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr
    assert re.search(r'<html dir="rtl" lang="fa"', dom.stdout)
    assert dom.stdout.count("<svg") >= 4 and dom.stdout.count("<rect") >= 6
    assert "ارسال‌شده" in dom.stdout
