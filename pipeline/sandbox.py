"""An in-process simulator of the AmootSMS REST API: the sandbox provider and the tests' fake.

It answers as `amoot-api.md` documents the real server (HTTP 200 and a JSON `Status` title,
errors included). `decide` turns a request into a `Reply`; `handle` (httpx.MockTransport) and
sandbox_server (a real socket) act it out, so a scripted fault means the same in both.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime

import httpx

from pipeline import sandbox_reports as reports
from pipeline.amoot import SANDBOX_TOKEN
from pipeline.sandbox_send import (
    FIRST_CAMPAIGN_ID,
    FIRST_MESSAGE_ID,
    TEHRAN,
    Accepted,
    NumberStyle,
    Sent,
    normalise,
    send_peer_to_peer,
)
from pipeline.sandbox_wire import (
    MOVED,
    NOT_FOUND_PAGE,
    Fault,
    RecordedRequest,
    Reply,
    error,
    html_reply,
    json_reply,
    misbehave,
    record,
)

__all__ = [
    "MOVED",
    "SANDBOX_BLACKLIST_RULE",
    "SANDBOX_TOKEN",
    "AmootSimulator",
    "Fault",
    "NumberStyle",
    "RecordedRequest",
    "Reply",
    "shipped_sandbox",
]

SANDBOX_BLACKLIST_RULE = (
    "in the sandbox, mobile numbers ending in 0000 (e.g. 09120000000) are blacklisted "
    "and fail with Mobile_Invalid"
)
"""Why a sandbox run shows a `failed` row: `blacklist_zeros=True` applies this rule."""

Method = Callable[["AmootSimulator", httpx.Request], Reply]
_METHODS: dict[str, tuple[str, Method]] = {
    name.lower(): (name, method)
    for name, method in (
        ("SendPeerToPeer", send_peer_to_peer),
        ("AccountStatus", reports.account_status),
        ("GetDelivery", reports.get_delivery),
        ("GetDeliveries", reports.get_deliveries),
        ("GetDeliveriesByCampaignID", reports.get_deliveries_by_campaign),
    )
}


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
        self.blacklist = {normalise(n) or n for n in blacklist}
        self.blacklist_zeros = blacklist_zeros
        self.number_style: NumberStyle = number_style
        self.line_numbers = list(line_numbers)
        self.account_name = "Sandbox"
        self.status_override: str | None = None  # answered top-level to every authorised request
        self.delivery_codes_by_number: dict[str, int] = {}  # 10-digit number -> DeliveryType
        self.accepted: list[Accepted] = []
        self.requests: list[RecordedRequest] = []
        self.faults: deque[Fault] = deque()
        # The DeliveryType for IDs an earlier instance gave out (the real server remembers
        # them; the in-process sandbox lives for one run); None: MessageID_Invalid.
        self.forgotten_delivery = forgotten_delivery
        # False: no history (requests, accepted), so a million-row sandbox run stays small.
        self.remember = remember
        self.clock = clock or (lambda: datetime.now(TEHRAN))
        # The methods' bookkeeping (sandbox_send, sandbox_reports):
        self.next_campaign_id = FIRST_CAMPAIGN_ID
        self.next_message_id = FIRST_MESSAGE_ID
        self.sent: dict[int, Sent] = {}
        self.campaigns: dict[int, list[int]] = {}
        self.delivery_overrides: dict[int, int] = {}
        # Marks numbers to print as bare `09...` literals; no message text can forge it.
        self.literal = f"lz{uuid.uuid4().hex}:"
        self._lock = threading.Lock()

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
                self.requests.append(record(method, request))
            fault = self._pop_fault(method)
            if fault is None:
                return self._route(request, path, method)
            breaks_after = fault.kind in ("drop_after", "slow_after", "trickle")
            reply = Reply()
            if breaks_after or (fault.process and fault.kind != "drop_before"):
                reply = self._route(request, path, method)
            return misbehave(fault, reply, _METHODS.get(method.lower(), (method,))[0])

    def _pop_fault(self, method: str) -> Fault | None:
        for index, fault in enumerate(self.faults):
            if fault.method.lower() == method.lower():
                del self.faults[index]
                return fault
        return None

    def _route(self, request: httpx.Request, path: str, method: str) -> Reply:
        segments = [s for s in path.split("/") if s]
        entry = _METHODS.get(method.lower())
        # ASP.NET routes case-insensitively, so /REST/sendpeertopeer reaches the method too.
        if entry is None or len(segments) < 2 or segments[-2].lower() != "rest":
            return html_reply(404, NOT_FOUND_PAGE)
        name, run = entry
        if request.method != "POST":
            message = f"The requested resource does not support http method '{request.method}'."
            return replace(json_reply({"Message": message}), status=405)
        if request.headers.get("Authorization") != self.token:
            return json_reply(error(name, "Token_NotExists"))
        if self.status_override is not None:
            return json_reply(error(name, self.status_override))
        return run(self, request)


def shipped_sandbox(token: str = SANDBOX_TOKEN) -> AmootSimulator:
    """The simulator behind `provider.sandbox: true`, alive for one run: SANDBOX_BLACKLIST_RULE
    on, credit for any list, no history, messages of earlier runs reported delivered."""
    return AmootSimulator(
        token=token,
        blacklist_zeros=True,
        credit_rials=10**11,
        forgotten_delivery=1,
        remember=False,
    )
