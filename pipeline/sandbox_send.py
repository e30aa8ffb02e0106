"""The simulator's SendPeerToPeer: recipients checked, pages counted and priced, IDs given out."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import httpx

from pipeline.sandbox_wire import TARIFFS, Reply, error, json_body, json_reply, text_of

if TYPE_CHECKING:
    from pipeline.sandbox import AmootSimulator

TEHRAN = ZoneInfo("Asia/Tehran")
FIRST_CAMPAIGN_ID = 12_345_678
FIRST_MESSAGE_ID = 87_654_321
NumberStyle = Literal["int", "string", "leading_zero_literal", "with_98"]

_GSM_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM_ALL = _GSM_EXTENSION | frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_MOBILE = re.compile(r"9[0-9]{9}")
_SEND_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")  # zero-padded, unlike strptime
# Marks a number to print as a bare `09...` literal; no message text can forge it.
_LITERAL = f"lz{uuid.uuid4().hex}:"


@dataclass(frozen=True, slots=True)
class Accepted:
    """One message the simulator accepted (the real server would have sent it)."""

    number: str  # 10 digits 9XXXXXXXXX
    text: str
    message_id: int
    campaign_id: int
    send_datetime: str  # as received
    line_number: str  # as received


def send_peer_to_peer(sim: AmootSimulator, request: httpx.Request) -> Reply:
    model = json_body(request)
    line, send_at = text_of(model.get("LineNumber")), text_of(model.get("SendDateTime"))
    items = model.get("Input")
    title = _invalid_request(sim, line, items, send_at)
    if title is not None or not isinstance(items, list):
        return json_reply(error("SendPeerToPeer", title or "Mobiles_Empty"))
    good: dict[str, list[str]] = {}  # text -> numbers, in order of first appearance
    bad: dict[tuple[str, str], list[Any]] = {}  # (title, text) -> numbers as answered
    for item in items:
        fields = item if isinstance(item, dict) else {}
        raw, text = text_of(fields.get("Number")), text_of(fields.get("MessageText"))
        number = normalise(raw)
        failure = _recipient_failure(sim, raw, number, text)
        if failure is None and number is not None:
            good.setdefault(text, []).append(number)
        else:
            shown = _as_answered(sim, number) if number else raw
            bad.setdefault((failure or "Mobile_Invalid", text), []).append(shown)
    if not good:
        return json_reply(error("SendPeerToPeer", "Mobiles_Invalid"))
    # Pages once per text: the benchmark serves a million messages from this fake.
    pages = {text: count_pages(text) for text in good}
    tariff = {"service": "ServiceSMS", "98": "AdsSMS"}.get(line.lower(), "BaseSMS")
    cost = 0
    for text, numbers in good.items():
        script = "English" if _GSM_ALL.issuperset(text) else "Persian"
        cost += len(numbers) * pages[text] * TARIFFS[f"{tariff}_{script}Price"]
    if cost > sim.credit_rials:
        return json_reply(error("SendPeerToPeer", "CreditNotEnough"))
    sim.credit_rials -= cost
    now = sim.clock()  # registered in Tehran time, one moment for the whole request
    now = now if now.tzinfo is None else now.astimezone(TEHRAN).replace(tzinfo=None)
    reg, scheduled = now.isoformat(timespec="milliseconds"), send_at.replace(" ", "T")
    shown_send = max(scheduled, reg[: len(scheduled)])  # a time in the past means "now"
    campaigns = []
    for text, numbers in good.items():
        campaign_id, first = sim.next_campaign_id, sim.next_message_id
        sim.next_campaign_id += 1
        sim.next_message_id += len(numbers)
        if sim.remember:
            sim.campaign_times[campaign_id] = (reg, shown_send)
            for message_id, number in enumerate(numbers, first):
                accepted = Accepted(number, text, message_id, campaign_id, send_at, line)
                sim.accepted.append(accepted)
                sim.sent[message_id] = accepted
        entries = [{"ID": i, "Number": _as_answered(sim, n)} for i, n in enumerate(numbers, first)]
        campaigns.append(_campaign(campaign_id, "Success", text, pages[text], entries))
    for (status, text), shown_numbers in bad.items():
        entries = [{"ID": 0, "Number": shown} for shown in shown_numbers]
        campaigns.append(_campaign(0, status, text, count_pages(text), entries))
    data = {
        "CampaignsCreated": len(good),
        "TotalCampaignNumbersCreated": sum(len(n) for n in good.values()),
        "FailedCount": sum(len(n) for n in bad.values()),
        "Campaigns": campaigns,
    }
    body = json.dumps({"Status": "Success", "Data": data}, ensure_ascii=False)
    if sim.number_style == "leading_zero_literal":
        # The documented example prints `"Number": 09120000000`, which is not valid JSON.
        body = re.sub(f'"{re.escape(_LITERAL)}([0-9]+)"', r"\1", body)
    return Reply(200, {"Content-Type": "application/json; charset=utf-8"}, body.encode())


def normalise(raw: str) -> str | None:
    """`9XXXXXXXXX` from 09…, 9…, 98…, +98… or 0098… forms, or None when it is not a mobile."""
    number = raw.strip()
    for prefix in ("+98", "0098"):
        if number.startswith(prefix):
            number = number[len(prefix) :]
    if len(number) == 12 and number.startswith("98"):
        number = number[2:]
    elif len(number) == 11 and number.startswith("0"):
        number = number[1:]
    return number if _MOBILE.fullmatch(number) else None


def count_pages(text: str) -> int:
    """Pages of `text`: GSM-7 160/153, else UCS-2 70/67, pairs never split (apart from
    pipeline.segments on purpose, so each checks the other)."""
    gsm = _GSM_ALL.issuperset(text)
    if gsm:
        units, single, multi = len(text) + sum(text.count(c) for c in _GSM_EXTENSION), 160, 153
    else:  # a lone surrogate is one unit
        units, single, multi = len(text.encode("utf-16-le", "surrogatepass")) // 2, 70, 67
    if units <= single:  # a one-page text is counted without a per-character loop
        return 1 if units else 0
    pages, used = 1, 0
    for char in text:
        size = 2 if (char in _GSM_EXTENSION if gsm else ord(char) > 0xFFFF) else 1
        if used + size > multi:
            pages, used = pages + 1, 0
        used += size
    return pages


def _invalid_request(sim: AmootSimulator, line: str, items: Any, send_at: str) -> str | None:
    """The title that rejects the whole request before any recipient is looked at."""
    if not line.strip():
        return "LineNumber_Empty"
    if line.lower() not in {n.lower() for n in sim.line_numbers}:
        return "LineNumber_NotExist"
    if not isinstance(items, list) or not items:
        return "Mobiles_Empty"
    if not _SEND_DATETIME.fullmatch(send_at):
        return "FromDateTime_Invalid"
    try:
        datetime.strptime(send_at, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return "FromDateTime_Invalid"
    return None


def _recipient_failure(sim: AmootSimulator, raw: str, number: str | None, text: str) -> str | None:
    if not raw.strip():
        return "Mobile_Empty"
    if number is None or number in sim.blacklist:
        return "Mobile_Invalid"
    if sim.blacklist_zeros and number.endswith("0000"):
        return "Mobile_Invalid"
    if not text.strip():
        return "SMSMessageText_Empty"
    return None


def _as_answered(sim: AmootSimulator, number: str) -> Any:
    match sim.number_style:
        case "int":
            return int(number)
        case "string":
            return number
        case "with_98":
            return int("98" + number)
        case "leading_zero_literal":
            return f"{_LITERAL}0{number}"


def _campaign(id_: int, status: str, text: str, pages: int, numbers: list[Any]) -> dict[str, Any]:
    return dict(ID=id_, Status=status, MessageText=text, SMSPagesCount=pages, Numbers=numbers)
