"""The AmootSMS protocol: build SendPeerToPeer requests, read the answers, classify every outcome.

With no idempotency key, an outcome's class answers: could the server have processed the
request? `TITLES` and `classify_http` say; docs/design.md draws the table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeGuard

from pipeline.models import Message, Outcome, Status
from pipeline.segments import UCS2

SANDBOX_TOKEN = "sandbox"
DEFAULT_BASE_URL = "https://portal.amootsms.com/rest"  # config.py's default, named in advice
"""The token the sandbox provider accepts when provider.token is empty (config and simulator)."""


class Kind(Enum):
    """What a title or HTTP outcome means for the rows of the request that got it."""

    SUCCESS = "success"
    RETRY = "retry"  # provably not processed: safe to send again
    FATAL = "fatal"  # stop the whole run; this request was not processed
    RECIPIENT = "recipient"  # about one recipient (or, top-level, the list): that row fails
    AMBIGUOUS = "ambiguous"  # may have been processed: rows unknown, never resent automatically


@dataclass(frozen=True, slots=True)
class Title:
    code: int
    kind: Kind
    meaning: str


# DOC docs/Utils/status_codes.md, with the bulk class from amoot-api.md §3.
TITLES: dict[str, Title] = {
    "Success": Title(1, Kind.SUCCESS, "OK"),
    # Generic, nothing created: retried, at most FAILED_ATTEMPTS times (amoot-api.md §3).
    "Failed": Title(0, Kind.RETRY, "the operation failed"),
    "System_Disabled": Title(-300, Kind.RETRY, "the provider's system is disabled for now"),
    "ServerError": Title(500, Kind.AMBIGUOUS, "the provider had a server error"),
    "AccountIsDemo": Title(2, Kind.FATAL, "the account is a demo account"),
    "CreditNotEnough": Title(4, Kind.FATAL, "not enough credit"),
    "LineNumber_NotExist": Title(5, Kind.FATAL, "the sending line does not exist"),
    "BackupLineNumber_NotExist": Title(6, Kind.FATAL, "the backup line does not exist"),
    "UserName_Empty": Title(10, Kind.FATAL, "username empty"),
    "Password_Empty": Title(11, Kind.FATAL, "password empty"),
    "LineNumber_Empty": Title(12, Kind.FATAL, "the sending line is empty"),
    "BackupLineNumber_Empty": Title(13, Kind.FATAL, "the backup line is empty"),
    "SMSMessageText_Empty": Title(14, Kind.RECIPIENT, "the message text is empty"),
    "Mobile_Empty": Title(16, Kind.RECIPIENT, "the mobile number is empty"),
    "Mobiles_Empty": Title(17, Kind.FATAL, "the recipient list is empty (a bug)"),
    "URLAddress_Empty": Title(20, Kind.FATAL, "the URL is empty"),
    "UserNameOrPassword_Invalid": Title(100, Kind.FATAL, "wrong username or password"),
    "Mobile_Invalid": Title(101, Kind.RECIPIENT, "the number is invalid or blacklisted"),
    "Mobiles_Invalid": Title(102, Kind.RECIPIENT, "the list has invalid or blacklisted numbers"),
    "Count_Invalid": Title(103, Kind.FATAL, "count invalid"),
    "FromRow_Invalid": Title(104, Kind.FATAL, "start row invalid"),
    "FromDate_Invalid": Title(105, Kind.FATAL, "start date invalid"),
    "FromDateTime_Invalid": Title(106, Kind.FATAL, "the SendDateTime was refused"),
    "ToDate_Invalid": Title(107, Kind.FATAL, "end date invalid"),
    "ToDateTime_Invalid": Title(108, Kind.FATAL, "end date-time invalid"),
    "FromDateIsAfterThanToDate": Title(109, Kind.FATAL, "start date after end date"),
    "FromDateTimeIsAfterThanToDateTime": Title(110, Kind.FATAL, "start time after end time"),
    "MessageID_Invalid": Title(111, Kind.RECIPIENT, "message ID wrong"),
    "BulkID_Invalid": Title(112, Kind.RECIPIENT, "campaign ID wrong"),
    "Length_Invalid": Title(120, Kind.RECIPIENT, "length invalid"),
    "Length_Exceeded": Title(121, Kind.RECIPIENT, "length over the maximum"),
    "Token_NotAllowMethod": Title(-208, Kind.FATAL, "the token may not call this method"),
    "Token_NotAllowIP": Title(-207, Kind.FATAL, "the token does not allow this machine's IP"),
    "Token_Expired": Title(-204, Kind.FATAL, "the token has expired"),
    "Token_Disabled": Title(-203, Kind.FATAL, "the token is disabled"),
    "Token_Invalid": Title(-202, Kind.FATAL, "the token is malformed or wrong"),
    "Token_NotExists": Title(-201, Kind.FATAL, "the token does not exist or was deleted"),
    "User_NotAllowHttp": Title(-109, Kind.FATAL, "the user may not use plain HTTP"),
    "User_NotAllowMethod": Title(-108, Kind.FATAL, "the method is not allowed for the user"),
    "User_NotAllowIP": Title(-107, Kind.FATAL, "this IP is not allowed for the user"),
    "User_NotAllowWebService": Title(-106, Kind.FATAL, "the user has no web-service permission"),
    "User_WebServiceBanned": Title(-105, Kind.FATAL, "web-service access is banned"),
    "User_Expired": Title(-104, Kind.FATAL, "the user account has expired"),
    "User_Disabled": Title(-103, Kind.FATAL, "the user account is disabled"),
    "User_MobileNotVerified": Title(-102, Kind.FATAL, "the account owner is not verified"),
    "User_NotExists": Title(-1, Kind.FATAL, "unknown user (with tokens: an invalid token)"),
}
_BY_CODE = {title.code: name for name, title in TITLES.items()}
_INTEGER = re.compile(r"-?\d+")
_ASCII_INTEGER = re.compile(r"-?[0-9]+")  # a MessageID or DeliveryType
_NON_DIGIT = re.compile(r"\D")
_UNMENTIONED = Outcome(Status.UNKNOWN, "the provider's answer did not mention this number")
FAILED_ATTEMPTS = 2  # the most times a chunk answered "Failed" is sent (see TITLES["Failed"])
# The documented `"Number": 09120000000` is not JSON: quote such values (after the "Number" key,
# and "Mobile" in replies, which the docs say comes "in any form": one unreadable destructive
# read loses every reply in it; outside strings only: the lookbehind skips an escaped `\"`).
_LEADING_ZERO_NUMBER = re.compile(r'(?<!\\)("(?:Number|Mobile)"\s*:\s*)(0\d+)')


def title_of(status: Any) -> str:
    """The Status title, also when the provider sends the integer code (1, "1", -201)."""
    if status == "Success":
        return "Success"  # nearly every campaign of every answer: skip the rest
    if isinstance(status, int) and not isinstance(status, bool):
        return _BY_CODE.get(status, str(status))
    text = str(status).strip()
    return _BY_CODE.get(int(text), text) if _INTEGER.fullmatch(text) else text


def kind_of(title: str) -> Kind:
    """The class of a title; a title we do not know is ambiguous (and stops the run)."""
    return TITLES[title].kind if title in TITLES else Kind.AMBIGUOUS


def describe(title: str) -> str:
    """`Token_Expired (the token has expired)` for messages to the operator."""
    meaning = TITLES[title].meaning if title in TITLES else "a status this tool does not know"
    return f"{title} ({meaning})"


def last10(number: Any) -> str:
    """The last 10 digits: how answers are matched to recipients (0, 98 and int/str forms vary)."""
    text = str(number)
    if not text.isdigit():  # a fast path: answers carry bare digits (int or str) a million times
        text = _NON_DIGIT.sub("", text)
    return text[-10:]


def build_send_body(messages: Sequence[Message], send_at: str, line_number: str) -> bytes:
    """The SendPeerToPeer JSON body (UTF-8, Persian kept as is, no spaces between tokens)."""
    # json.dumps: 1.1 us a message in a 100-message Persian chunk (a hand-written join: 0.5 us),
    # under 2 % of a send's ~60 us CPU a message, so the standard library writes it.
    body = {
        "SendDateTime": send_at,
        "LineNumber": line_number,
        "Input": [{"Number": m.number, "MessageText": m.text} for m in messages],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def read_json(body: bytes) -> Any:
    """Parse an answer, tolerating the documented leading-zero numbers; None if unreadable."""
    try:
        text = body.decode("utf-8-sig")
        try:
            return json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or a number too long to parse
            return json.loads(_LEADING_ZERO_NUMBER.sub(r'\1"\2"', text))
    except (ValueError, RecursionError):  # not UTF-8 either, or not JSON even so
        return None


@dataclass(slots=True)
class SendReply:
    """A SendPeerToPeer answer: with kind SUCCESS, `outcomes` has every posted number (by
    last10); any other kind is about the whole request, and `title` names why."""

    kind: Kind
    title: str
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    page_mismatches: int = 0  # campaigns whose SMSPagesCount differs from our count
    fatal_title: str = ""  # a campaign-level fatal title inside a Success answer
    unknown_title: bool = False  # a Status this tool does not know: the run must stop


def classify_http(status_code: int) -> Kind | None:
    """The class of a non-200 HTTP answer (None for 200: read the body)."""
    if status_code == 200:
        return None
    if status_code in (429, 503):
        return Kind.RETRY
    return Kind.FATAL if 400 <= status_code < 500 else Kind.AMBIGUOUS


def read_send_answer(
    body: bytes, messages: Sequence[Message], local_pages: dict[str, int] | None = None
) -> SendReply:
    """Read a 200 answer to SendPeerToPeer; `local_pages` (last10 -> pages) checks SMSPagesCount."""
    data = read_json(body)
    if not isinstance(data, dict) or "Status" not in data:
        return SendReply(Kind.AMBIGUOUS, "the answer was not a JSON SendPeerToPeer reply")
    title = title_of(data["Status"])
    listed = data["Data"].get("Campaigns") if isinstance(data.get("Data"), dict) else None
    campaigns = [c for c in listed if isinstance(c, dict)] if isinstance(listed, list) else None
    if title != "Success" and campaigns is None:
        kind = kind_of(title)
        if kind is Kind.RECIPIENT and data.get("Data") is not None:
            # A list-level rejection is "nothing processed" only with Data null; with data we
            # cannot read, some of it may have gone out: never split and resend it.
            return SendReply(Kind.AMBIGUOUS, title)
        return SendReply(kind, title, unknown_title=title not in TITLES)
    if campaigns is None:
        return SendReply(Kind.AMBIGUOUS, "the answer said Success but listed no campaigns")
    posted = {last10(m.number) for m in messages}
    reply = SendReply(Kind.SUCCESS, title)
    for campaign in campaigns:
        _read_campaign(campaign, posted, reply, local_pages or {})
    reply.outcomes.update(dict.fromkeys(posted - reply.outcomes.keys(), _UNMENTIONED))
    if title != "Success" and kind_of(title) is Kind.FATAL:
        reply.fatal_title = title
    return reply


def _read_campaign(
    campaign: dict[str, Any], posted: set[str], reply: SendReply, local_pages: dict[str, int]
) -> None:
    title = title_of(campaign.get("Status", ""))
    kind, numbers = kind_of(title), campaign.get("Numbers")
    campaign_id = str(campaign.get("ID", "") or "")
    provider_pages = campaign.get("SMSPagesCount")
    for item in numbers if isinstance(numbers, list) else ():
        key = last10(item.get("Number", "")) if isinstance(item, dict) else None
        if key is None or key not in posted:
            continue  # not ours: ignore rather than guess
        if kind is Kind.SUCCESS:
            message_id = str(item.get("ID", "") or "")
            reply.outcomes[key] = Outcome(Status.SENT, "", message_id, campaign_id)
            expected = local_pages.get(key)
            if isinstance(provider_pages, int) and expected and expected != provider_pages:
                reply.page_mismatches += 1
        elif kind is Kind.FATAL:
            reply.outcomes[key] = Outcome(Status.PENDING, describe(title))
            reply.fatal_title = title
        elif kind is Kind.RECIPIENT:
            reply.outcomes[key] = Outcome(Status.FAILED, title)
        else:  # ServerError or an unknown title for one campaign: it may or may not go out
            reply.outcomes[key] = Outcome(Status.UNKNOWN, describe(title))


def _success(body: bytes, method: str) -> dict[str, Any] | SendReply:
    """A flat answer's JSON object when its Status is Success; else a SendReply (kind, title)."""
    data = read_json(body)
    if not isinstance(data, dict) or "Status" not in data:
        return SendReply(Kind.AMBIGUOUS, f"the answer was not a JSON {method} reply")
    title = title_of(data["Status"])
    if title != "Success":
        return SendReply(kind_of(title), title)
    return data


def read_deliveries(body: bytes) -> dict[str, int] | SendReply:
    """DeliveryType by message ID from a 200 GetDeliveries answer, leaving out items without
    Success or a usable MessageID and DeliveryType; a SendReply when the whole is not a success."""
    data = _success(body, "GetDeliveries")
    if isinstance(data, SendReply):
        return data
    items = data.get("Data")
    if not isinstance(items, list):
        return SendReply(Kind.AMBIGUOUS, "the answer said Success but listed no deliveries")
    found: dict[str, int] = {}
    for item in items:
        if not isinstance(item, dict) or title_of(item.get("Status", "")) != "Success":
            continue
        message_id, code = _integer(item.get("MessageID")), _integer(item.get("DeliveryType"))
        if message_id is not None and message_id > 0 and code is not None:
            found[str(message_id)] = code
    return found


def _integer(value: Any) -> int | None:
    """An integer field sent as a number or as digits (the provider does both)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _ASCII_INTEGER.fullmatch(value.strip()):
        return int(value)
    return None


def fix_for(title: str, base_url: str) -> str:
    """What the operator should do about a fatal title (no token is ever echoed); `base_url`:
    the one configured, since a 4xx usually means that URL (or a proxy) is wrong."""
    if title.startswith("Token_") or title in ("User_NotExists", "UserNameOrPassword_Invalid"):
        if title.endswith("NotAllowIP"):
            return "allow this server's IP for the token in the AmootSMS panel (API tokens page)."
        return (
            "check provider.token: create or renew a token at "
            "https://portal.amootsms.com/client/APIToken and export it as the variable "
            "the config names."
        )
    if title.startswith("User_"):
        return "the AmootSMS account needs attention: log in to the panel or call AmootSMS support."
    if title == "CreditNotEnough":
        return "top up the AmootSMS account."
    if title == "AccountIsDemo":
        return "a demo account cannot send bulk SMS; activate the account in the panel."
    if "LineNumber" in title:
        return "check provider.line_number against the lines listed in your panel (or use public)."
    if "Retry-After" in title:
        return "the provider asked to wait before the next request; rerun later (cron will)."
    if title.startswith("HTTP 4"):
        own = "" if base_url == DEFAULT_BASE_URL else f"; AmootSMS's own is {DEFAULT_BASE_URL}"
        return f"check provider.base_url ({base_url}{own}) and any proxy in between."
    return "read the provider's message above; contact AmootSMS support if it persists."


@dataclass(frozen=True, slots=True)
class Account:
    """AccountStatus: credit and per-page prices, all in rials."""

    credit: int
    prices: dict[str, int]  # "<Base|Service|Ads>SMS_<Persian|English>Price" -> rials per page
    lines: tuple[str, ...]

    def page_price(self, tariff: str, encoding: str) -> int:
        """Rials per page for a tariff (base, service, ads) and an encoding (UCS-2 = Persian)."""
        script = "Persian" if encoding == UCS2 else "English"
        return self.prices.get(f"{tariff.capitalize()}SMS_{script}Price", 0)


def read_account_status(body: bytes) -> Account | SendReply:
    """The flat AccountStatus answer; a SendReply (kind and title) when it is not a success."""
    data = _success(body, "AccountStatus")
    if isinstance(data, SendReply):
        return data
    prices = {k: int(v) for k, v in data.items() if k.endswith("Price") and _is_number(v)}
    credit = data.get("RemaindCredit")
    if not _is_number(credit):
        return SendReply(Kind.AMBIGUOUS, "AccountStatus gave no RemaindCredit")
    lines = data.get("ListLineNumbers")
    return Account(int(credit), prices, tuple(map(str, lines)) if isinstance(lines, list) else ())


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class InboundSMS:
    """One reply to the line, from RecieveNewMessages, every field as text as the provider gave
    it: the caller normalises the number and decides about a reply with no MessageID."""

    message_id: str  # as text, whatever JSON type it came as ("123", 123); "" when missing
    mobile: str  # the Mobile value as text, exactly as given (any number form)
    text: str  # MessageText ("" when missing/null)
    received_at: str  # ReceiveDateTime as given (Tehran local time), "" when missing


def read_new_messages(body: bytes) -> list[InboundSMS] | SendReply:
    """The replies in a 200 RecieveNewMessages answer (Data null or missing: none), in the order
    given; a SendReply (kind, title) when the whole is not a success."""
    data = read_json(body)
    # The page's output table says ReturnValue where its sample says Status: read either.
    status = data.get("Status", data.get("ReturnValue")) if isinstance(data, dict) else None
    if status is None or not isinstance(data, dict):
        return SendReply(Kind.AMBIGUOUS, "the answer was not a JSON RecieveNewMessages reply")
    items = data.get("Data")
    items = [items] if isinstance(items, dict) else items if isinstance(items, list) else []
    found = [_inbound(item) for item in items if isinstance(item, dict)]
    title = title_of(status)
    if title != "Success":
        if found:  # an error that still carries replies: they are handed out once, so say so
            return SendReply(Kind.AMBIGUOUS, f"{title} with {len(found)} replies in its Data")
        return SendReply(kind_of(title), title, unknown_title=title not in TITLES)
    return found


def _inbound(item: dict[str, Any]) -> InboundSMS:
    return InboundSMS(
        _as_text(item.get("MessageID")).strip(),
        _as_text(item.get("Mobile")),
        _as_text(item.get("MessageText")),
        _as_text(item.get("ReceiveDateTime")),
    )


def _as_text(value: Any) -> str:
    """A JSON scalar as text: strings as they are, integers as digits, null (or a list) as ""."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 9120000000.0 (a serialiser's double) is the number's digits
    return str(value) if isinstance(value, int | float) else ""
