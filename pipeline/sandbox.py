"""The AmootSMS REST API simulated in memory, as amoot-api.md documents it: the sandbox provider
and the tests' fake. `decide` makes a request's `Reply`; `handle` (httpx.MockTransport) and
sandbox_server (a socket) act it out, so a scripted fault means the same in both."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

import httpx

from pipeline import sandbox_wire as wire
from pipeline.amoot import SANDBOX_TOKEN, InboundSMS
from pipeline.clock import TEHRAN, Clock, tehran
from pipeline.sandbox_wire import MOVED, TARIFFS, Fault, RecordedRequest, Reply, error, json_reply

# What sandbox_server and the tests import from here but other modules define.
__all__ = ["MOVED", "SANDBOX_TOKEN", "Fault", "RecordedRequest", "Reply"]

SANDBOX_BLACKLIST_RULE = (
    "in the sandbox, mobile numbers ending in 0000 (e.g. 09120000000) are blacklisted "
    "and fail with Mobile_Invalid"
)
"""Why a sandbox run shows a `failed` row: `blacklist_zeros=True` applies this rule."""
FIRST_CAMPAIGN_ID = 12_345_678
FIRST_MESSAGE_ID = 87_654_321
FIRST_REPLY_ID = 500_000_001
SANDBOX_REPLY = InboundSMS("sandbox-reply-1", "09121234567", "لغو۱۱", "")
"""The reply a `sandbox: true` run reads: the first sample contact opting out (received now)."""
NO_NEW_MESSAGES = "هیچ پیام جدیدی یافت نشد"  # RecieveNewMessages' Message when Data is empty
NumberStyle = Literal["int", "string", "leading_zero_literal", "with_98"]
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


class AmootSimulator:
    """The AmootSMS REST API in memory: one lock around all state, so threads may share it."""

    def __init__(
        self,
        *,
        token: str = SANDBOX_TOKEN,
        credit_rials: int = 10_000_000,
        blacklist: Iterable[str] = (),
        blacklist_zeros: bool = False,
        number_style: NumberStyle = "int",
        line_numbers: Sequence[str] = ("public", "Service", "98"),
        clock: Clock | None = None,
        forgotten_delivery: int | None = None,
        remember: bool = True,
    ) -> None:
        self.token = token
        self.credit_rials = credit_rials
        self.blacklist = {wire.normalise(n) or n for n in blacklist}
        self.blacklist_zeros = blacklist_zeros
        self.number_style: NumberStyle = number_style
        self.line_numbers = list(line_numbers)
        self.status_override: str | None = None  # answered top-level to every authorised request
        self.delivery_codes_by_number: dict[str, int] = {}  # 10-digit number -> DeliveryType
        self.accepted: list[Accepted] = []
        self.requests: list[RecordedRequest] = []
        self.faults: deque[Fault] = deque()
        # The DeliveryType of earlier runs' IDs, which a real server keeps; None: MessageID_Invalid.
        self.forgotten_delivery = forgotten_delivery
        self.remember = remember  # False: no history, so a million-row sandbox run stays small
        self.clock = clock or (lambda: datetime.now(TEHRAN))
        self.next_campaign_id = FIRST_CAMPAIGN_ID
        self.next_message_id = FIRST_MESSAGE_ID
        self.sent: dict[int, Accepted] = {}  # by message ID
        self.campaign_times: dict[int, tuple[str, str]] = {}  # ID -> RegDateTime, SendDateTime
        self.delivery_overrides: dict[int, int] = {}
        self.inbox: deque[InboundSMS] = deque()  # replies not yet read, in arrival order
        self.next_reply_id = FIRST_REPLY_ID
        self._lock = threading.Lock()

    def add_reply(
        self,
        mobile: str,
        text: str,
        *,
        message_id: str | None = None,
        received_at: str | None = None,
    ) -> str:
        """A recipient's SMS to the line, for RecieveNewMessages to hand out once; its ID."""
        with self._lock:
            if message_id is None:
                message_id = str(self.next_reply_id)
            self.next_reply_id += 1  # IDs given by default stay unique beside explicit ones
            if received_at is None:
                received_at = _tehran_now(self).strftime("%Y-%m-%dT%H:%M:%S")
            self.inbox.append(InboundSMS(message_id, mobile, text, received_at))
            return message_id

    def set_delivery(self, message_id: int, code: int) -> None:
        """Make the delivery reports show DeliveryType `code` for `message_id`."""
        with self._lock:
            self.delivery_overrides[message_id] = code

    def handle(self, request: httpx.Request) -> httpx.Response:
        """The `httpx.MockTransport` handler: a broken connection becomes the httpx error."""
        reply = self.decide(request)
        match reply.action:
            case "drop_before":
                raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
            case "drop_after":
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                )
            case "slow_after" | "trickle":  # as the socket server's client sees it
                raise httpx.ReadTimeout("The read operation timed out", request=request)
            case "answer":
                return httpx.Response(reply.status, headers=reply.headers, content=reply.body)

    def decide(self, request: httpx.Request) -> Reply:
        """Record `request`, apply the first matching fault and process it as the server would."""
        path = request.url.path
        method = path.rstrip("/").rsplit("/", 1)[-1]
        with self._lock:
            if self.remember:
                self.requests.append(wire.record(method, request))
            fault = next((f for f in self.faults if f.method.lower() == method.lower()), None)
            if fault is None:
                return self._route(request, path, method)
            self.faults.remove(fault)  # the first equal one: the faults before it differ in method
            breaks_after = fault.kind in ("drop_after", "slow_after", "trickle")
            reply = Reply()
            if breaks_after or (fault.process and fault.kind != "drop_before"):
                reply = self._route(request, path, method)
            return wire.misbehave(fault, reply, _METHODS.get(method.lower(), (method,))[0])

    def _route(self, request: httpx.Request, path: str, method: str) -> Reply:
        segments = [s for s in path.split("/") if s]
        entry = _METHODS.get(method.lower())
        # ASP.NET routes case-insensitively, so /REST/sendpeertopeer reaches the method too.
        if entry is None or len(segments) < 2 or segments[-2].lower() != "rest":
            return wire.html_reply(404, wire.NOT_FOUND_PAGE)
        name, run = entry
        if request.method != "POST":
            message = f"The requested resource does not support http method '{request.method}'."
            return replace(json_reply({"Message": message}), status=405)
        if request.headers.get("Authorization") != self.token:
            return json_reply(error(name, "Token_NotExists"))
        if self.status_override is not None:
            return json_reply(error(name, self.status_override))
        return run(self, request)


def shipped_sandbox(token: str = SANDBOX_TOKEN, *, clock: Clock | None = None) -> AmootSimulator:
    """The simulator behind `provider.sandbox: true`, alive for one run: SANDBOX_BLACKLIST_RULE
    on, credit for any list, no history, messages of earlier runs reported delivered, and
    SANDBOX_REPLY waiting in the inbox."""
    sim = AmootSimulator(
        token=token,
        blacklist_zeros=True,
        credit_rials=10**11,
        forgotten_delivery=1,
        remember=False,
        clock=clock,
    )
    # Every run makes a new simulator, so this reply comes back each time: its fixed ID is what
    # lets the replies command see it is the one it already has (it deduplicates by ID).
    sim.add_reply(SANDBOX_REPLY.mobile, SANDBOX_REPLY.text, message_id=SANDBOX_REPLY.message_id)
    return sim


def _tehran_now(sim: AmootSimulator) -> datetime:
    """The simulator's clock as the server's naive Tehran wall time."""
    now = sim.clock()
    return now if now.tzinfo is None else tehran(now).replace(tzinfo=None)


def send_peer_to_peer(sim: AmootSimulator, request: httpx.Request) -> Reply:
    model = wire.json_body(request)
    line, send_at = wire.text_of(model.get("LineNumber")), wire.text_of(model.get("SendDateTime"))
    items = model.get("Input")
    title = _invalid_request(sim, line, items, send_at)
    if title is not None or not isinstance(items, list):
        return json_reply(error("SendPeerToPeer", title or "Mobiles_Empty"))
    good: dict[str, list[str]] = {}  # text -> numbers, in order of first appearance
    bad: dict[tuple[str, str], list[Any]] = {}  # (title, text) -> numbers as answered
    for item in items:
        fields = item if isinstance(item, dict) else {}
        raw, text = wire.text_of(fields.get("Number")), wire.text_of(fields.get("MessageText"))
        number = wire.normalise(raw)
        failure = _recipient_failure(sim, raw, number, text)
        if failure is None and number is not None:
            good.setdefault(text, []).append(number)
        else:
            shown = _as_answered(sim, number) if number else raw
            bad.setdefault((failure or "Mobile_Invalid", text), []).append(shown)
    if not good:
        return json_reply(error("SendPeerToPeer", "Mobiles_Invalid"))
    # Pages once per text: the benchmark serves a million messages from this fake.
    pages = {text: wire.count_pages(text) for text in good}
    tariff = {"service": "ServiceSMS", "98": "AdsSMS"}.get(line.lower(), "BaseSMS")
    cost = 0
    for text, numbers in good.items():
        script = "English" if wire.is_gsm7(text) else "Persian"
        cost += len(numbers) * pages[text] * TARIFFS[f"{tariff}_{script}Price"]
    if cost > sim.credit_rials:
        return json_reply(error("SendPeerToPeer", "CreditNotEnough"))
    sim.credit_rials -= cost
    now = _tehran_now(sim)  # registered in Tehran time, one moment for the whole request
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
        campaigns.append(_campaign(0, status, text, wire.count_pages(text), entries))
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


def _account_status(sim: AmootSimulator, request: httpx.Request) -> Reply:
    account = {"Status": "Success", "AccountName": "Sandbox", "RemaindCredit": sim.credit_rials}
    lines = list(sim.line_numbers)
    return json_reply({**account, **TARIFFS, "Avanak_SecondPrice": 23, "ListLineNumbers": lines})


def _recieve_new_messages(sim: AmootSimulator, request: httpx.Request) -> Reply:
    """Up to Count replies, oldest first, each handed out once (popped: a lost answer loses
    them, as on the real server)."""
    count = wire.positive_int(wire.form(request).get("Count", "").strip())
    if count is None:
        return json_reply(error("RecieveNewMessages", "Count_Invalid"))
    taken = [sim.inbox.popleft() for _ in range(min(count, len(sim.inbox)))]
    data = [
        {
            "MessageID": reply.message_id,
            "Mobile": reply.mobile,
            "MessageText": reply.text,
            "ReceiveDateTime": reply.received_at,
        }
        for reply in taken
    ]
    message = f"{len(data)} پیام جدید" if data else NO_NEW_MESSAGES
    return json_reply({"Status": "Success", "Message": message, "Data": data})


def _get_delivery(sim: AmootSimulator, request: httpx.Request) -> Reply:
    message_id = wire.positive_int(wire.form(request).get("MessageID", ""))
    if message_id is None or message_id not in sim.sent:
        return json_reply(error("GetDelivery", "Failed" if message_id else "MessageID_Invalid"))
    return json_reply({"Status": "Success", "Data": _delivery(sim, message_id)})


def _get_deliveries(sim: AmootSimulator, request: httpx.Request) -> Reply:
    parts = wire.form(request).get("ListMessageID", "").split(",")
    ids = [wire.positive_int(part.strip()) for part in parts]
    if not any(ids) or None in ids:
        return json_reply(error("GetDeliveries", "Failed"))
    data = [_delivery_item(sim, i) for i in ids if i is not None]
    return json_reply({"Status": "Success", "Data": data})


def _get_deliveries_by_campaign(sim: AmootSimulator, request: httpx.Request) -> Reply:
    campaign_id = wire.positive_int(wire.form(request).get("CampaignID", ""))
    data = [
        {"Number": message.number, **_delivery(sim, i), "Status": "Success"}
        for i, message in sim.sent.items()
        if message.campaign_id == campaign_id
    ]
    if not data:
        return json_reply(error("GetDeliveriesByCampaignID", "BulkID_Invalid"))
    return json_reply({"Status": "Success", "Data": data})


def _delivery_item(sim: AmootSimulator, message_id: int) -> dict[str, Any]:
    if message_id in sim.sent:
        return {**_delivery(sim, message_id), "Status": "Success"}
    # An unknown ID: a zero-initialised .NET object (its DateTimes 0001-01-01) but for Status.
    code, status, when = 0, "MessageID_Invalid", "0001-01-01T00:00:00"
    if sim.forgotten_delivery is not None and message_id >= FIRST_MESSAGE_ID:
        code, status = sim.forgotten_delivery, "Success"
        when = sim.clock().strftime("%Y-%m-%dT%H:%M:%S.000")
    return _item(message_id, code, when, when) | {"Status": status}


def _delivery(sim: AmootSimulator, message_id: int) -> dict[str, Any]:
    message = sim.sent[message_id]
    by_number = sim.delivery_codes_by_number.get(message.number, 1)
    code = sim.delivery_overrides.get(message_id, by_number)
    return _item(message_id, code, *sim.campaign_times[message.campaign_id])


def _item(id_: int, code: int, registered: str, sent: str) -> dict[str, Any]:
    # The docs say Cost is always 0 in this implementation.
    return dict(MessageID=id_, DeliveryType=code, Cost=0, RegDateTime=registered, SendDateTime=sent)


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
    zeros = sim.blacklist_zeros and number is not None and number.endswith("0000")
    if number is None or number in sim.blacklist or zeros:
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


_METHODS: dict[str, tuple[str, Callable[[AmootSimulator, httpx.Request], Reply]]] = {
    name.lower(): (name, method)
    for name, method in (
        ("SendPeerToPeer", send_peer_to_peer),
        ("AccountStatus", _account_status),
        ("GetDelivery", _get_delivery),
        ("GetDeliveries", _get_deliveries),
        ("GetDeliveriesByCampaignID", _get_deliveries_by_campaign),
        ("RecieveNewMessages", _recieve_new_messages),
    )
}
