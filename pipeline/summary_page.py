"""The run's HTML summary page: facts gathered row by row as the report is written, one page."""

from __future__ import annotations

import html
import os
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.models import Row, Status
from pipeline.persian import fa_digits, jalali
from pipeline.private import open_private

SAMPLES = 3
TOP_REASONS = 5
# Distinct reasons counted one by one; past this, a new reason joins "other" (a reason that
# names its row would otherwise grow the counter with the contacts file).
MAX_REASONS = 1000
REASON_CHARS = 160
LABEL_CHARS = 50  # a longer label is cut in the chart; its whole text is the bar's tooltip
OTHER = "سایر دلیل‌ها"

LABELS = {  # the statuses as a Persian reader says them
    Status.SENT: "ارسال‌شده",
    Status.ALREADY_SENT: "قبلاً ارسال‌شده",
    Status.DRY_RUN: "آزمایشی (ارسال نشد)",
    Status.FAILED: "ناموفق",
    Status.INVALID: "نامعتبر",
    Status.DUPLICATE: "تکراری",
    Status.SUPPRESSED: "فهرست انصراف",
    Status.UNKNOWN: "نامعلوم",
    Status.PENDING: "در انتظار",
}
COLOURS = {  # the same colours as the .xlsx fills, darker for a bar on white
    Status.SENT: "#2e9e50",
    Status.ALREADY_SENT: "#5fb3a1",
    Status.DRY_RUN: "#4a7fd1",
    Status.FAILED: "#d64541",
    Status.INVALID: "#b03a3a",
    Status.DUPLICATE: "#9a9a9a",
    Status.SUPPRESSED: "#7a7a7a",
    Status.UNKNOWN: "#ef8a17",
    Status.PENDING: "#e8c21c",
}
DELIVERIES = (  # (label, colour, the delivery classes it gathers)
    ("رسیده", "#2e9e50", ("delivered",)),
    ("نرسیده", "#d64541", ("not_delivered", "blacklisted", "filtered", "wrong_number")),
    ("در انتظار گزارش", "#e8c21c", ("pending", "unknown", "")),
)
_DELIVERY_OF = {name: label for label, _colour, names in DELIVERIES for name in names}


_TALLIED = frozenset({Status.SENT, Status.ALREADY_SENT, Status.DRY_RUN})
_SAMPLED = frozenset({Status.SENT, Status.DRY_RUN})
_REASONED = frozenset({Status.FAILED, Status.INVALID})


class Facts:
    """What the page shows, fed every row as the report writes it: counts and a bounded
    counter, never the rows (a million-row report stays a few kilobytes here). Per row, one
    dict update or two: the pages and deliveries are worked out from the tally when asked."""

    def __init__(self) -> None:
        self.counts: Counter[Status] = Counter()
        self._tally: dict[tuple[Status, int, str], int] = {}  # (status, pages, delivery)
        self.reasons: dict[Status, Counter[str]] = {s: Counter() for s in _REASONED}
        self.samples: list[tuple[str, str]] = []  # (masked number, text)
        self._sampling = True

    def add(self, row: Row, status: Status) -> None:
        self.counts[status] += 1
        if status in _TALLIED:
            key, tally = (status, row.pages, row.delivery), self._tally
            tally[key] = tally.get(key, 0) + 1
            if self._sampling and status in _SAMPLED:
                self.samples.append((mask(row.number), row.text))
                self._sampling = len(self.samples) < SAMPLES
        elif status in _REASONED:
            reasons = self.reasons[status]
            reason = (row.error or "بی‌دلیل")[:REASON_CHARS]
            if reason in reasons or len(reasons) < MAX_REASONS:
                reasons[reason] += 1
            else:
                reasons[OTHER] += 1

    @property
    def page_sizes(self) -> Counter[int]:
        """Messages sent (a dry run: to send) by their page count."""
        sizes: Counter[int] = Counter()
        for (status, pages, _delivery), n in self._tally.items():
            if status in _SAMPLED:
                sizes[pages] += n
        return sizes

    @property
    def deliveries(self) -> Counter[str]:
        """Sent rows (this run's and earlier ones) by DELIVERIES label."""
        found: Counter[str] = Counter()
        for (status, _pages, delivery), n in self._tally.items():
            if status is not Status.DRY_RUN:
                found[_DELIVERY_OF.get(delivery, DELIVERIES[2][0])] += n
        return found


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What the page says of the run besides the rows."""

    campaign: str
    mode: str  # "sandbox", "live" or "dry run"
    finished: datetime  # Tehran time
    report: str  # the CSV's file name
    cost_rials: int | None  # None: the account's prices were not known
    stopped: str = ""  # why the run stopped early, when it did
    held: str = ""


def mask(number: str) -> str:
    """0912***4567: enough to tell messages apart, not enough to call anyone."""
    return f"{number[:4]}***{number[-4:]}" if len(number) > 8 else "***"


def page_path(report: Path) -> Path:
    """`<report stem>.html` beside the report (`<name>.html` if the report is itself .html)."""
    if report.suffix.lower() == ".html":
        return report.with_name(f"{report.name}.html")
    return report.with_suffix(".html")


def write_page(path: Path, facts: Facts, run: RunFacts) -> None:
    """The page as `<path>.<pid>.partial`, renamed into place: a page that exists is whole."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        with open_private(partial, "w", encoding="utf-8") as file:  # names and texts: 0600
            file.write(render_page(facts, run))
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def render_page(facts: Facts, run: RunFacts) -> str:
    """One self-contained page: its style inline, charts as inline SVG, nothing fetched."""
    e = html.escape
    pages = sum(n * size for size, n in facts.page_sizes.items())
    cost = "نامعلوم" if run.cost_rials is None else f"{num(run.cost_rials // 10)} تومان"
    dry = run.mode == "dry run"
    done = facts.counts[Status.DRY_RUN if dry else Status.SENT]
    cards = (
        ("ردیف‌ها", num(sum(facts.counts.values()))),
        ("قابل ارسال" if dry else "ارسال‌شده", num(done)),
        ("صفحه‌های قابل ارسال" if dry else "صفحه‌ها", num(pages)),
        ("هزینه (برآورد)", cost),
    )
    when = jalali(run.finished, "%Y/%m/%d ساعت %H:%M")
    parts = [
        "<!doctype html>",
        '<html dir="rtl" lang="fa"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>گزارش کمپین {e(run.campaign)}</title><style>{_STYLE}</style></head><body>",
        f'<header><h1>گزارش کمپین <bdi dir="ltr">{e(run.campaign)}</bdi></h1>',
        f'<p class="meta">{e(_MODES.get(run.mode, "ارسال واقعی"))} · {e(when)} به وقت تهران<br>',
        f'فایل گزارش: <bdi class="file" dir="ltr">{e(run.report)}</bdi></p></header>',
        '<section class="cards">',
        *(f'<div class="card"><div class="k">{e(k)}</div><div class="v">{e(v)}</div></div>'
          for k, v in cards),
        "</section>",
        *(f'<p class="note">{e(note)}</p>' for note in (run.stopped, run.held) if note),
    ]  # fmt: skip
    statuses = [(LABELS[s], s.value, facts.counts[s], COLOURS[s]) for s in Status]
    parts.append(_section("وضعیت ردیف‌ها", "", [bar for bar in statuses if bar[2]]))
    found = facts.deliveries
    delivered = [(label, "", found[label], colour) for label, colour, _ in DELIVERIES]
    if any(n for _l, _c, n, _col in delivered):
        parts.append(_section("تحویل پیامک‌های ارسال‌شده", "", delivered))
    sizes = sorted(facts.page_sizes.items())
    if sizes:
        said = f"{num(pages)} صفحه، هزینه: {cost}"
        bars = [(f"{num(size)} صفحه‌ای", "", n, "#4a7fd1") for size, n in sizes]
        parts.append(_section("صفحه‌ها و هزینه", said, bars))
    for status, counter in facts.reasons.items():
        top = [(r, "", n, COLOURS[status]) for r, n in counter.most_common(TOP_REASONS)]
        if top:
            parts.append(_section(f"دلیل‌های پرتکرار «{LABELS[status]}»", "", top))
    if facts.samples:
        parts.append("<section><h2>نمونهٔ پیامک‌ها</h2>")
        parts += [
            f'<figure class="sms"><figcaption dir="ltr">{e(number)}</figcaption>'
            f'<p dir="auto">{e(text)}</p></figure>'
            for number, text in facts.samples
        ]
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


_MODES = {"sandbox": "آزمایشگاه (چیزی ارسال نشد)", "dry run": "اجرای آزمایشی (چیزی ارسال نشد)"}


def _section(title: str, said: str, bars: list[tuple[str, str, int, str]]) -> str:
    e = html.escape
    text = f"<p>{e(said)}</p>" if said else ""
    return f"<section><h2>{e(title)}</h2>{text}{bar_chart(bars, title)}</section>"


def bar_chart(bars: list[tuple[str, str, int, str]], title: str) -> str:
    """Horizontal bars read right to left: (label, code, count, colour) each; the label at the
    right, the bar growing leftwards from it, the count at its end. The SVG itself is laid out
    left to right (its x axis), so "end" is the right edge whatever the page's direction."""
    e = html.escape
    width, row_h = 760, 34
    longest = max((len(label) for label, *_ in bars), default=0)
    codes = max((len(code) for _l, code, *_ in bars), default=0)
    label_w = min(440, 24 + 8 * min(longest, LABEL_CHARS) + (8 * codes + 16 if codes else 0))
    top = max((n for _l, _c, n, _col in bars), default=0) or 1
    right = width - label_w
    span = right - 90  # room for the count at the bar's far end
    height = row_h * len(bars) + 8
    out = [
        f'<svg class="chart" role="img" aria-label="{e(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" direction="ltr">'
    ]
    for i, (label, code, n, colour) in enumerate(bars):
        y = 4 + i * row_h
        length = max(2, round(span * n / top)) if n else 0
        shown = label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"
        out.append(
            f'<text x="{width - 4}" y="{y + 21}" text-anchor="end">'
            f"<title>{e(label)}</title>{e(shown)}</text>"
        )
        if code:
            out.append(f'<text class="code" x="{right}" y="{y + 21}">{e(code)}</text>')
        out.append(
            f'<rect x="{right - length - 8}" y="{y + 4}" width="{length}" height="{row_h - 10}" '
            f'rx="3" fill="{colour}"/>'
        )
        out.append(
            f'<text class="n" x="{right - length - 14}" y="{y + 21}" text-anchor="end">'
            f"{num(n)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def num(n: int) -> str:
    """A count as a Persian reader writes it: ۱۲٬۳۴۵."""
    return fa_digits(f"{n:,}").replace(",", "٬")


_STYLE = """
:root { color-scheme: light; }
body { font-family: Vazirmatn, Tahoma, "Noto Sans Arabic", "DejaVu Sans", sans-serif;
  margin: 0 auto; padding: 24px; max-width: 820px; color: #222; background: #f6f7f9;
  line-height: 1.7; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.15em; margin: 0 0 10px; }
.meta { color: #555; margin: 0 0 16px; }
.file { white-space: nowrap; }
section { background: #fff; border-radius: 10px; padding: 16px 20px; margin: 0 0 16px;
  box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.cards { display: flex; gap: 12px; background: none; box-shadow: none; padding: 0; }
.card { flex: 1; background: #fff; border-radius: 10px; padding: 12px 16px;
  box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.card .k { color: #666; font-size: .9em; }
.card .v { font-size: 1.5em; font-weight: bold; }
.note { background: #fff4d6; border-radius: 8px; padding: 8px 12px; }
svg.chart { max-width: 100%; height: auto; font: inherit; font-size: 15px; }
svg.chart .code { fill: #888; font-size: 12px; font-family: monospace; }
svg.chart .n { font-weight: bold; }
.sms { margin: 0 0 12px; padding: 10px 14px; background: #eef3ea; border-radius: 12px; }
.sms figcaption { color: #666; font-family: monospace; text-align: left; }
.sms p { margin: 4px 0 0; white-space: pre-wrap; }
"""
