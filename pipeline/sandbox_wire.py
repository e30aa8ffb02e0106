"""The simulator's parts: requests recorded and read, answers and faults written out, numbers
and pages read as the server reads them."""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field, replace
from http.client import responses
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx

FaultKind = Literal[
    "http_status", "drop_before", "drop_after", "slow_after", "trickle", "title", "html"
]
Action = Literal["answer", "drop_before", "drop_after", "slow_after", "trickle"]
MOVED = "/moved"  # a scripted 3xx's Location: recorded, never served, so a follow would show

TARIFFS = {  # rials per page, the AccountStatus example values
    "BaseSMS_PersianPrice": 1000,
    "BaseSMS_EnglishPrice": 5000,
    "ServiceSMS_PersianPrice": 2050,
    "ServiceSMS_EnglishPrice": 6670,
    "AdsSMS_PersianPrice": 3870,
    "AdsSMS_EnglishPrice": 11560,
}
_LIST_METHODS = frozenset({"GetDeliveries", "GetDeliveriesByCampaignID", "RecieveNewMessages"})
_GSM_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM_ALL = _GSM_EXTENSION | frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_MOBILE = re.compile(r"9[0-9]{9}")


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
    delay: float = 0.0  # slow_after: seconds before the answer; trickle: between its bytes


@dataclass(frozen=True, slots=True)
class Reply:
    """What to do with one request: answer it, or break the connection before or after."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    action: Action = "answer"
    delay: float = 0.0  # slow_after and trickle only


def record(method: str, request: httpx.Request) -> RecordedRequest:
    headers = {k: v for k, v in request.headers.items() if k != "authorization"}
    text = request.read().decode("utf-8", errors="replace")
    content_type = request.headers.get("Content-Type", "")
    body: Any = text or None
    if text and "json" in content_type:
        with contextlib.suppress(ValueError):
            body = json.loads(text)
    elif text and "form-urlencoded" in content_type:
        body = dict(parse_qsl(text, keep_blank_values=True))
    return RecordedRequest(method, headers, body)


def json_body(request: httpx.Request) -> dict[str, Any]:
    """The JSON object posted; anything else binds to an empty model, as ASP.NET's would."""
    model = None
    if "json" in request.headers.get("Content-Type", ""):
        with contextlib.suppress(ValueError):
            model = json.loads(request.content)
    return model if isinstance(model, dict) else {}


def form(request: httpx.Request) -> dict[str, str]:
    if "form-urlencoded" not in request.headers.get("Content-Type", ""):
        return {}
    return dict(parse_qsl(request.content.decode("utf-8", errors="replace")))


def text_of(value: Any) -> str:
    """A JSON scalar as the server's string property would bind it (numbers become digits)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def positive_int(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() and int(value) > 0 else None


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
    gsm = is_gsm7(text)
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


def is_gsm7(text: str) -> bool:
    return _GSM_ALL.issuperset(text)


def error(method: str, title: str) -> dict[str, Any]:
    """`title` in the envelope `method` uses for errors (see amoot-api.md §1 and §2)."""
    if method == "AccountStatus":  # the flat envelope, every other field zero or empty
        zeros = {"AccountName": "", "RemaindCredit": 0, **dict.fromkeys(TARIFFS, 0)}
        return {"Status": title, **zeros, "Avanak_SecondPrice": 0, "ListLineNumbers": []}
    return {"Data": [] if method in _LIST_METHODS else None, "Status": title}


def json_reply(payload: dict[str, Any]) -> Reply:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return Reply(200, {"Content-Type": "application/json; charset=utf-8"}, body)


def html_reply(status: int, page: str, headers: dict[str, str] | None = None) -> Reply:
    headers = {"Content-Type": "text/html; charset=utf-8", **(headers or {})}
    return Reply(status, headers, page.encode())


def misbehave(fault: Fault, reply: Reply, method: str) -> Reply:
    """What `fault` makes of the request to `method`, whose processed answer was `reply`."""
    match fault.kind:
        case "drop_before" | "drop_after":
            return Reply(action=fault.kind)
        case "slow_after" | "trickle":
            return replace(reply, action=fault.kind, delay=fault.delay)
        case "title":
            return json_reply(error(method, fault.title))
        case "html":
            return html_reply(200, RUNTIME_ERROR_PAGE)
        case "http_status":
            status = fault.http_status
            headers = {"Location": MOVED} if 300 <= status < 400 else {}
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            page = _STATUS_PAGE.format(status=status, phrase=responses.get(status, "Error"))
            return html_reply(status, page, headers)


_STATUS_PAGE = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">\r\n'
    "<HTML><HEAD><TITLE>{phrase}</TITLE>\r\n"
    '<META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii"></HEAD>\r\n'
    "<BODY><h2>{phrase}</h2>\r\n<hr><p>HTTP Error {status}. {phrase}.</p>\r\n</BODY></HTML>\r\n"
)


NOT_FOUND_PAGE = (
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
    '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\r\n'
    '<html xmlns="http://www.w3.org/1999/xhtml">\r\n<head>\r\n'
    "<title>404 - File or directory not found.</title>\r\n</head>\r\n<body>\r\n"
    '<div id="header"><h1>Server Error</h1></div>\r\n<div id="content">\r\n'
    "<fieldset><h2>404 - File or directory not found.</h2>\r\n<h3>The resource you are looking "
    "for might have been removed, had its name changed, or is temporarily unavailable.</h3>\r\n"
    "</fieldset></div>\r\n</body>\r\n</html>\r\n"
)

RUNTIME_ERROR_PAGE = (
    "<!DOCTYPE html>\r\n<html>\r\n<head>\r\n<title>Runtime Error</title>\r\n</head>\r\n"
    '<body bgcolor="white">\r\n'
    "<span><H1>Server Error in '/' Application.<hr width=100% size=1 color=silver></H1>\r\n"
    "<h2> <i>Runtime Error</i> </h2></span>\r\n"
    "<b> Description: </b>An application error occurred on the server.\r\n</body>\r\n</html>\r\n"
)
