"""An in-process simulator of the AmootSMS REST API: the sandbox provider and the tests' fake.

It answers the way `amoot-api.md` documents the real server: HTTP 200 with a JSON `Status`
title for every answer, errors included. `AmootSimulator.decide` turns one request into a
`Reply`; `AmootSimulator.handle` (for `httpx.MockTransport`) and `sandbox_server` (a real
socket) each act that reply out, so scripted faults mean the same thing in both places.

Covered methods: SendPeerToPeer, AccountStatus, GetDelivery, GetDeliveries and
GetDeliveriesByCampaignID. Any other path answers an IIS-style 404 page.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import httpx

SANDBOX_TOKEN = "sandbox"
"""The token the simulator accepts unless told otherwise."""

SANDBOX_BLACKLIST_RULE = (
    "in the sandbox, mobile numbers ending in 0000 (e.g. 09120000000) are blacklisted "
    "and fail with Mobile_Invalid"
)
"""Why a sandbox run shows a `failed` row: `blacklist_zeros=True` applies this rule."""

TEHRAN = ZoneInfo("Asia/Tehran")
FIRST_CAMPAIGN_ID = 12_345_678
FIRST_MESSAGE_ID = 87_654_321

TARIFFS = {
    "BaseSMS_PersianPrice": 1000,
    "BaseSMS_EnglishPrice": 5000,
    "ServiceSMS_PersianPrice": 2050,
    "ServiceSMS_EnglishPrice": 6670,
    "AdsSMS_PersianPrice": 3870,
    "AdsSMS_EnglishPrice": 11560,
}
"""Rials per page, the AccountStatus example values."""
AVANAK_SECOND_PRICE = 23

NumberStyle = Literal["int", "string", "leading_zero_literal", "with_98"]
FaultKind = Literal[
    "http_status", "drop_before", "drop_after", "slow_after", "trickle", "title", "html"
]
Action = Literal["answer", "drop_before", "drop_after", "slow_after", "trickle"]

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM_ALL = _GSM_BASIC | _GSM_EXTENSION
_SEND_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_MOBILE = re.compile(r"9[0-9]{9}")
_LIST_METHODS = frozenset({"GetDeliveries", "GetDeliveriesByCampaignID"})
MOVED = "/moved"  # where a scripted 3xx points (see Fault.http_status)
_NEVER = "0001-01-01T00:00:00"  # .NET's default DateTime, what the server shows for "no time"


@dataclass(frozen=True, slots=True)
class Accepted:
    """One message the simulator accepted (the real server would have sent it)."""

    number: str  # 10 digits 9XXXXXXXXX
    text: str
    message_id: int
    campaign_id: int
    send_datetime: str  # as received
    line_number: str  # as received


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as received: the API method, headers (lower-case, no Authorization), body."""

    method: str
    headers: dict[str, str]
    body: Any  # parsed JSON, a dict of form fields, None when empty, else the raw text


@dataclass
class Fault:
    """Scripted misbehaviour for the next request to `method`."""

    kind: FaultKind
    method: str = "SendPeerToPeer"
    http_status: int = 503  # for http_status (429/503/500/502...; a 3xx carries a Location)
    retry_after: str | None = None  # Retry-After header value for http_status
    title: str = "ServerError"  # for kind="title": top-level Status answered
    process: bool = False  # title/html/http_status: accept the messages first, then answer badly
    # slow_after: seconds the socket server waits before answering; trickle: seconds between
    # the bytes of the answer, which it writes one at a time (status line and headers too)
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Reply:
    """What to do with one request: answer it, or break the connection before or after."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    action: Action = "answer"
    delay: float = 0.0  # slow_after and trickle only


@dataclass(frozen=True, slots=True)
class _Sent:
    """An accepted message as the delivery reports see it."""

    accepted: Accepted
    reg_datetime: str
    send_datetime: str


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
        clock: Callable[[], datetime] | None = None,
        forgotten_delivery: int | None = None,
        remember: bool = True,
    ) -> None:
        self.token = token
        self.credit_rials = credit_rials
        self.blacklist = {_normalise(n) or n for n in blacklist}
        self.blacklist_zeros = blacklist_zeros
        self.number_style: NumberStyle = number_style
        self.line_numbers = list(line_numbers)
        self.account_name = "Sandbox"
        self.status_override: str | None = None  # answered top-level to every authorised request
        self.delivery_codes_by_number: dict[str, int] = {}  # 10-digit number -> DeliveryType
        self.accepted: list[Accepted] = []
        self.requests: list[RecordedRequest] = []
        self.faults: deque[Fault] = deque()
        # The in-process sandbox lives for one run: a later --deliveries asks about messages
        # an earlier instance sent. With this set, such IDs answer this DeliveryType instead
        # of MessageID_Invalid (the real server remembers; this one cannot).
        self.forgotten_delivery = forgotten_delivery
        # False: keep no history (requests, accepted messages), only the counters and credit,
        # so a sandbox run of a million contacts does not hold a million records in memory.
        self.remember = remember
        self._clock = clock or (lambda: datetime.now(TEHRAN))
        self._lock = threading.Lock()
        self._next_campaign_id = FIRST_CAMPAIGN_ID
        self._next_message_id = FIRST_MESSAGE_ID
        self._sent: dict[int, _Sent] = {}
        self._campaigns: dict[int, list[int]] = {}
        self._delivery_overrides: dict[int, int] = {}
        # A per-instance nonce marks numbers to print as bare `09...` literals; no message
        # text can forge it.
        self._literal = f"lz{uuid.uuid4().hex}:"
        self._methods: dict[str, tuple[str, Callable[[httpx.Request], Reply]]] = {
            name.lower(): (name, fn)
            for name, fn in (
                ("SendPeerToPeer", self._send_peer_to_peer),
                ("AccountStatus", self._account_status),
                ("GetDelivery", self._get_delivery),
                ("GetDeliveries", self._get_deliveries),
                ("GetDeliveriesByCampaignID", self._get_deliveries_by_campaign),
            )
        }

    def set_delivery(self, message_id: int, code: int) -> None:
        """Make the delivery reports show DeliveryType `code` for `message_id`."""
        with self._lock:
            self._delivery_overrides[message_id] = code

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
            case "slow_after" | "trickle":
                # In-process there is no clock to trickle against: an answer that did not
                # arrive whole in time, as the socket server's client sees it.
                raise httpx.ReadTimeout("The read operation timed out", request=request)
            case "answer":
                return httpx.Response(reply.status, headers=reply.headers, content=reply.body)

    def decide(self, request: httpx.Request) -> Reply:
        """Record `request`, apply the first matching fault and process it as the server would."""
        return self._decide(request)

    def _decide(self, request: httpx.Request) -> Reply:
        path = request.url.path
        method = path.rstrip("/").rsplit("/", 1)[-1]
        with self._lock:
            if self.remember:
                self.requests.append(_record(method, request))
            fault = self._pop_fault(method)
            if fault is None:
                return self._route(request, path, method)
            breaks_after = fault.kind in ("drop_after", "slow_after", "trickle")
            reply = Reply()
            if breaks_after or (fault.process and fault.kind != "drop_before"):
                reply = self._route(request, path, method)
            return _misbehave(fault, reply, self._methods.get(method.lower(), (method,))[0])

    def _pop_fault(self, method: str) -> Fault | None:
        for index, fault in enumerate(self.faults):
            if fault.method.lower() == method.lower():
                del self.faults[index]
                return fault
        return None

    def _route(self, request: httpx.Request, path: str, method: str) -> Reply:
        segments = [s for s in path.split("/") if s]
        entry = self._methods.get(method.lower())
        # ASP.NET routes case-insensitively, so /REST/sendpeertopeer reaches the method too.
        if entry is None or len(segments) < 2 or segments[-2].lower() != "rest":
            return _html_reply(404, _NOT_FOUND_PAGE)
        name, fn = entry
        if request.method != "POST":
            message = f"The requested resource does not support http method '{request.method}'."
            return replace(_json_reply({"Message": message}), status=405)
        if request.headers.get("Authorization") != self.token:
            return _json_reply(_error(name, "Token_NotExists"))
        if self.status_override is not None:
            return _json_reply(_error(name, self.status_override))
        return fn(request)

    def _send_peer_to_peer(self, request: httpx.Request) -> Reply:
        model = _json_body(request)
        line, send_at = _text(model.get("LineNumber")), _text(model.get("SendDateTime"))
        items = model.get("Input")
        title = self._invalid_request(line, items, send_at)
        if title is not None or not isinstance(items, list):
            return _json_reply(_error("SendPeerToPeer", title or "Mobiles_Empty"))

        good: dict[str, list[str]] = {}  # text -> numbers, in order of first appearance
        bad: dict[tuple[str, str], list[Any]] = {}  # (title, text) -> numbers as answered
        for item in items:
            fields = item if isinstance(item, dict) else {}
            raw, text = _text(fields.get("Number")), _text(fields.get("MessageText"))
            number = _normalise(raw)
            failure = self._recipient_failure(raw, number, text)
            if failure is None and number is not None:
                good.setdefault(text, []).append(number)
            else:
                shown = self._render_number(number) if number else raw
                bad.setdefault((failure or "Mobile_Invalid", text), []).append(shown)
        if not good:
            return _json_reply(_error("SendPeerToPeer", "Mobiles_Invalid"))
        # Pages once per text (a personalised list has as many texts as numbers): the benchmark
        # serves a million messages from this fake, on the same cores as the pipeline it measures.
        pages = {text: _pages(text) for text in good}
        cost = sum(
            len(numbers) * pages[text] * self._page_price(text, line)
            for text, numbers in good.items()
        )
        if cost > self.credit_rials:
            return _json_reply(_error("SendPeerToPeer", "CreditNotEnough"))
        self.credit_rials -= cost

        registered = self._registered(send_at)  # one moment for the whole request
        campaigns = [
            self._accept(
                text, pages[text], numbers, send_at=send_at, line=line, registered=registered
            )
            for text, numbers in good.items()
        ]
        campaigns += [
            _campaign(0, title, text, [{"ID": 0, "Number": shown} for shown in shown_numbers])
            for (title, text), shown_numbers in bad.items()
        ]
        data = {
            "CampaignsCreated": len(good),
            "TotalCampaignNumbersCreated": sum(len(n) for n in good.values()),
            "FailedCount": sum(len(n) for n in bad.values()),
            "Campaigns": campaigns,
        }
        body = json.dumps({"Status": "Success", "Data": data}, ensure_ascii=False)
        if self.number_style == "leading_zero_literal":
            # The documented example prints `"Number": 09120000000`, which is not valid JSON.
            body = re.sub(f'"{re.escape(self._literal)}([0-9]+)"', r"\1", body)
        return Reply(200, {"Content-Type": "application/json; charset=utf-8"}, body.encode())

    def _invalid_request(self, line: str, items: Any, send_at: str) -> str | None:
        """The title that rejects the whole request before any recipient is looked at."""
        if not line.strip():
            return "LineNumber_Empty"
        if line.lower() not in {n.lower() for n in self.line_numbers}:
            return "LineNumber_NotExist"
        if not isinstance(items, list) or not items:
            return "Mobiles_Empty"
        if not _valid_send_datetime(send_at):
            return "FromDateTime_Invalid"
        return None

    def _recipient_failure(self, raw: str, number: str | None, text: str) -> str | None:
        if not raw.strip():
            return "Mobile_Empty"
        if number is None or number in self.blacklist:
            return "Mobile_Invalid"
        if self.blacklist_zeros and number.endswith("0000"):
            return "Mobile_Invalid"
        if not text.strip():
            return "SMSMessageText_Empty"
        return None

    def _page_price(self, text: str, line: str) -> int:
        kind = {"service": "ServiceSMS", "98": "AdsSMS"}.get(line.lower(), "BaseSMS")
        script = "English" if _is_gsm7(text) else "Persian"
        return TARIFFS[f"{kind}_{script}Price"]

    def _registered(self, send_at: str) -> tuple[str, str]:
        """Registration time (Tehran) and the send time the reports show for it."""
        now = self._clock()
        if now.tzinfo is not None:
            now = now.astimezone(TEHRAN).replace(tzinfo=None)
        reg = now.isoformat(timespec="milliseconds")
        scheduled = send_at.replace(" ", "T")
        # A time in the past means "now", so the report shows the registration time.
        return reg, max(scheduled, reg[: len(scheduled)])

    def _accept(
        self,
        text: str,
        pages: int,
        numbers: list[str],
        *,
        send_at: str,
        line: str,
        registered: tuple[str, str],
    ) -> dict[str, Any]:
        campaign_id = self._next_campaign_id
        self._next_campaign_id += 1
        first = self._next_message_id
        self._next_message_id += len(numbers)
        if self.remember:
            reg, shown_send = registered
            for message_id, number in enumerate(numbers, first):
                accepted = Accepted(number, text, message_id, campaign_id, send_at, line)
                self.accepted.append(accepted)
                self._sent[message_id] = _Sent(accepted, reg, shown_send)
                self._campaigns.setdefault(campaign_id, []).append(message_id)
        entries = [
            {"ID": message_id, "Number": self._render_number(number)}
            for message_id, number in enumerate(numbers, first)
        ]
        return _campaign(campaign_id, "Success", text, entries, pages)

    def _render_number(self, number: str) -> Any:
        match self.number_style:
            case "int":
                return int(number)
            case "string":
                return number
            case "with_98":
                return int("98" + number)
            case "leading_zero_literal":
                return f"{self._literal}0{number}"

    def _account_status(self, request: httpx.Request) -> Reply:
        return _json_reply(
            {
                "Status": "Success",
                "AccountName": self.account_name,
                "RemaindCredit": self.credit_rials,
                **TARIFFS,
                "Avanak_SecondPrice": AVANAK_SECOND_PRICE,
                "ListLineNumbers": list(self.line_numbers),
            }
        )

    def _get_delivery(self, request: httpx.Request) -> Reply:
        message_id = _positive_int(_form(request).get("MessageID", ""))
        if message_id is None:
            return _json_reply(_error("GetDelivery", "MessageID_Invalid"))
        if message_id not in self._sent:
            return _json_reply(_error("GetDelivery", "Failed"))
        return _json_reply({"Status": "Success", "Data": self._delivery(message_id)})

    def _get_deliveries(self, request: httpx.Request) -> Reply:
        parts = _form(request).get("ListMessageID", "").split(",")
        ids = [_positive_int(part.strip()) for part in parts]
        if not any(ids) or None in ids:
            return _json_reply(_error("GetDeliveries", "Failed"))
        data = [self._delivery_item(i) for i in ids if i is not None]
        return _json_reply({"Status": "Success", "Data": data})

    def _delivery_item(self, message_id: int) -> dict[str, Any]:
        if message_id in self._sent:
            return {**self._delivery(message_id), "Status": "Success"}
        if self.forgotten_delivery is not None and message_id >= FIRST_MESSAGE_ID:
            now = self._clock().strftime("%Y-%m-%dT%H:%M:%S.000")
            return {
                "MessageID": message_id,
                "DeliveryType": self.forgotten_delivery,
                "Cost": 0,
                "RegDateTime": now,
                "SendDateTime": now,
                "Status": "Success",
            }
        return _unknown_item(message_id)

    def _get_deliveries_by_campaign(self, request: httpx.Request) -> Reply:
        campaign_id = _positive_int(_form(request).get("CampaignID", ""))
        if campaign_id is None or campaign_id not in self._campaigns:
            return _json_reply(_error("GetDeliveriesByCampaignID", "BulkID_Invalid"))
        data = [
            {"Number": self._sent[i].accepted.number, **self._delivery(i), "Status": "Success"}
            for i in self._campaigns[campaign_id]
        ]
        return _json_reply({"Status": "Success", "Data": data})

    def _delivery(self, message_id: int) -> dict[str, Any]:
        sent = self._sent[message_id]
        code = self._delivery_overrides.get(
            message_id, self.delivery_codes_by_number.get(sent.accepted.number, 1)
        )
        return {
            "MessageID": message_id,
            "DeliveryType": code,
            "Cost": 0,  # the docs say Cost is always 0 in this implementation
            "RegDateTime": sent.reg_datetime,
            "SendDateTime": sent.send_datetime,
        }


def shipped_sandbox(token: str = SANDBOX_TOKEN) -> AmootSimulator:
    """The simulator behind `provider.sandbox: true`, alive for one run.

    SANDBOX_BLACKLIST_RULE on; credit for any list (it is for trying, not budgeting); no
    history kept (a million-row trial must not hold a million records); messages of earlier
    runs, which it cannot remember, are reported delivered.
    """
    return AmootSimulator(
        token=token,
        blacklist_zeros=True,
        credit_rials=10**11,
        forgotten_delivery=1,
        remember=False,
    )


def _normalise(raw: str) -> str | None:
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


def _pages(text: str) -> int:
    """Pages (segments) of `text`: GSM-7 160/153, else UCS-2 70/67, pairs never split."""
    # A one-page text is counted without a per-character loop (the benchmark serves a million
    # messages from this fake, on the same cores as the pipeline it measures).
    if _is_gsm7(text):
        units = len(text) + sum(text.count(c) for c in _GSM_EXTENSION)
        single = 160
    else:
        units = len(text.encode("utf-16-le", "surrogatepass")) // 2  # a lone surrogate: 1 unit
        single = 70
    if units <= single:
        return 1 if units else 0
    if _is_gsm7(text):
        sizes = [2 if c in _GSM_EXTENSION else 1 for c in text]
        multi = 153
    else:
        sizes = [2 if ord(c) > 0xFFFF else 1 for c in text]
        multi = 67
    pages, used = 1, 0
    for size in sizes:
        if used + size > multi:
            pages, used = pages + 1, 0
        used += size
    return pages


def _is_gsm7(text: str) -> bool:
    return _GSM_ALL.issuperset(text)


def _record(method: str, request: httpx.Request) -> RecordedRequest:
    headers = {k: v for k, v in request.headers.items() if k != "authorization"}
    content = request.read()
    body: Any = None
    if content:
        text = content.decode("utf-8", errors="replace")
        if "json" in request.headers.get("Content-Type", ""):
            try:
                body = json.loads(text)
            except ValueError:
                body = text
        elif "form-urlencoded" in request.headers.get("Content-Type", ""):
            body = dict(parse_qsl(text, keep_blank_values=True))
        else:
            body = text
    return RecordedRequest(method, headers, body)


def _json_body(request: httpx.Request) -> dict[str, Any]:
    """The JSON object posted; anything else binds to an empty model, as ASP.NET's would."""
    if "json" not in request.headers.get("Content-Type", ""):
        return {}
    try:
        model = json.loads(request.content)
    except ValueError:
        return {}
    return model if isinstance(model, dict) else {}


def _form(request: httpx.Request) -> dict[str, str]:
    if "form-urlencoded" not in request.headers.get("Content-Type", ""):
        return {}
    return dict(parse_qsl(request.content.decode("utf-8", errors="replace")))


def _text(value: Any) -> str:
    """A JSON scalar as the server's string property would bind it (numbers become digits)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def _positive_int(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() and int(value) > 0 else None


def _valid_send_datetime(value: str) -> bool:
    if not _SEND_DATETIME.fullmatch(value):
        return False
    try:
        datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return False
    return True


def _campaign(
    campaign_id: int,
    status: str,
    text: str,
    numbers: list[dict[str, Any]],
    pages: int | None = None,
) -> dict[str, Any]:
    return {
        "ID": campaign_id,
        "Status": status,
        "MessageText": text,
        "SMSPagesCount": _pages(text) if pages is None else pages,
        "Numbers": numbers,
    }


def _misbehave(fault: Fault, reply: Reply, method: str) -> Reply:
    """What `fault` makes of the request to `method`, whose processed answer was `reply`."""
    match fault.kind:
        case "drop_before" | "drop_after":
            return Reply(action=fault.kind)
        case "slow_after" | "trickle":
            return replace(reply, action=fault.kind, delay=fault.delay)
        case "title":
            return _json_reply(_error(method, fault.title))
        case "html":
            return _html_reply(200, _RUNTIME_ERROR_PAGE)
        case "http_status":
            page = _html_reply(fault.http_status, _status_page(fault.http_status))
            headers = dict(page.headers)
            if 300 <= fault.http_status < 400:
                # A redirect (a proxy's http -> https, a moved API): to a path this fake
                # records (as method "moved") but never serves, so a client that followed
                # it would show.
                headers["Location"] = MOVED
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            return replace(page, headers=headers)


def _unknown_item(message_id: int) -> dict[str, Any]:
    return {
        "MessageID": message_id,
        "DeliveryType": 0,  # a zero-initialised .NET object: only its Status tells the truth
        "Cost": 0,
        "RegDateTime": _NEVER,
        "SendDateTime": _NEVER,
        "Status": "MessageID_Invalid",
    }


def _error(method: str, title: str) -> dict[str, Any]:
    """`title` in the envelope `method` uses for errors (see amoot-api.md §1 and §2)."""
    if method == "AccountStatus":
        return {
            "Status": title,
            "AccountName": "",
            "RemaindCredit": 0,
            **dict.fromkeys(TARIFFS, 0),
            "Avanak_SecondPrice": 0,
            "ListLineNumbers": [],
        }
    return {"Data": [] if method in _LIST_METHODS else None, "Status": title}


def _json_reply(payload: dict[str, Any]) -> Reply:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return Reply(200, {"Content-Type": "application/json; charset=utf-8"}, body)


def _html_reply(status: int, page: str) -> Reply:
    return Reply(status, {"Content-Type": "text/html; charset=utf-8"}, page.encode())


def _status_page(status: int) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">\r\n'
        f"<HTML><HEAD><TITLE>{phrase}</TITLE>\r\n"
        '<META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii"></HEAD>\r\n'
        f"<BODY><h2>{phrase}</h2>\r\n<hr><p>HTTP Error {status}. {phrase}.</p>\r\n"
        "</BODY></HTML>\r\n"
    )


_NOT_FOUND_PAGE = (
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
    '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\r\n'
    '<html xmlns="http://www.w3.org/1999/xhtml">\r\n<head>\r\n'
    "<title>404 - File or directory not found.</title>\r\n</head>\r\n<body>\r\n"
    '<div id="header"><h1>Server Error</h1></div>\r\n<div id="content">\r\n'
    "<fieldset><h2>404 - File or directory not found.</h2>\r\n"
    "<h3>The resource you are looking for might have been removed, had its name changed, "
    "or is temporarily unavailable.</h3>\r\n</fieldset></div>\r\n</body>\r\n</html>\r\n"
)

_RUNTIME_ERROR_PAGE = (
    "<!DOCTYPE html>\r\n<html>\r\n<head>\r\n<title>Runtime Error</title>\r\n</head>\r\n"
    '<body bgcolor="white">\r\n'
    "<span><H1>Server Error in '/' Application.<hr width=100% size=1 color=silver></H1>\r\n"
    "<h2> <i>Runtime Error</i> </h2></span>\r\n"
    "<b> Description: </b>An application error occurred on the server.\r\n"
    "</body>\r\n</html>\r\n"
)
