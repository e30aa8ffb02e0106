"""Reading replies from the provider: RecieveNewMessages read, asked for, and faked (in-process
and over a socket). The read is destructive, so what is not retried matters as much as what is."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import httpx
import pytest

from pipeline import amoot
from pipeline.amoot import InboundSMS, Kind, SendReply
from pipeline.dispatch import http_client
from pipeline.errors import ProviderFatal
from pipeline.sandbox import (
    FIRST_REPLY_ID,
    NO_NEW_MESSAGES,
    SANDBOX_REPLY,
    SANDBOX_TOKEN,
    AmootSimulator,
    Fault,
    shipped_sandbox,
)
from pipeline.sandbox_server import SandboxServer
from pipeline.send import Sender, SenderSettings
from pipeline.throttle import Throttle
from tests.conftest import REPO, FakeSleep, make_sender

TOKEN = "replies-token"
METHOD = "RecieveNewMessages"
SAMPLE = (  # amoot-api.md §2.9, the page's sample
    '{"Status":"Success","Message":"…","Data":[{"MessageID":"123456789","Mobile":"09120000000",'
    '"MessageText":"…","ReceiveDateTime":"2024-11-20T12:19:00"}]}'
)


def _answer(data: object, status: object = "Success") -> bytes:
    return json.dumps({"Status": status, "Message": "", "Data": data}, ensure_ascii=False).encode()


def _item(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "MessageID": "1",
        "Mobile": "09121234567",
        "MessageText": "۱۱",
        "ReceiveDateTime": "2024-11-20T12:19:00",
    }
    return {**base, **fields}


@pytest.fixture
def sim() -> AmootSimulator:
    return AmootSimulator(token=TOKEN)


def _asked(sim: AmootSimulator) -> list[dict[str, str]]:
    return [r.body for r in sim.requests if r.method == METHOD]


# --- amoot.read_new_messages -------------------------------------------------------------------


def test_the_documented_sample_is_read_field_by_field():
    """The page's sample gives one InboundSMS, every field as the text the provider sent."""
    assert amoot.read_new_messages(SAMPLE.encode()) == [
        InboundSMS("123456789", "09120000000", "…", "2024-11-20T12:19:00")
    ]


@pytest.mark.parametrize(
    "body",
    [
        '{"Status":"Success","Message":"هیچ پیام جدیدی یافت نشد","Data":[]}'.encode(),
        b'{"Status":"Success","Data":null}',
        b'{"Status":"Success"}',
        b'{"Status":1,"Data":[]}',  # the integer code of Success
        b'{"Status":"Success","Data":"none"}',
    ],
    ids=["empty", "null", "missing", "code-1", "not-a-list"],
)
def test_a_success_without_items_is_no_replies(body):
    """Nothing new (Data empty, null, missing or not a list) is an empty list, not an error."""
    assert amoot.read_new_messages(body) == []


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("MessageID", 123456789, "123456789"),
        ("MessageID", " 77 ", "77"),
        ("MessageID", None, ""),
        ("Mobile", 9121234567, "9121234567"),
        ("Mobile", 989121234567, "989121234567"),
        ("Mobile", 9121234567.0, "9121234567"),
        ("Mobile", "+98 912 123 4567", "+98 912 123 4567"),
        ("Mobile", "۰۹۱۲۱۲۳۴۵۶۷", "۰۹۱۲۱۲۳۴۵۶۷"),
        ("MessageText", None, ""),
        ("MessageText", 11, "11"),
        ("ReceiveDateTime", None, ""),
        ("ReceiveDateTime", True, ""),
    ],
)
def test_each_field_comes_back_as_text(field, value, expected):
    """Numbers become their digits, null becomes "", and text stays exactly as given (the
    caller normalises the number: Persian digits and +98 forms are kept raw here)."""
    [reply] = _replies(_answer([_item(**{field: value})]))
    assert getattr(reply, _ATTRIBUTE[field]) == expected


_ATTRIBUTE = {
    "MessageID": "message_id",
    "Mobile": "mobile",
    "MessageText": "text",
    "ReceiveDateTime": "received_at",
}


def test_missing_fields_are_empty_and_an_item_without_an_id_is_kept():
    """An item with no MessageID is kept with message_id "" (the caller decides); items that
    are not objects are ignored; the order is the provider's."""
    body = _answer([{"Mobile": "09121111111"}, "junk", 7, None, _item(MessageID="2")])
    assert amoot.read_new_messages(body) == [
        InboundSMS("", "09121111111", "", ""),
        InboundSMS("2", "09121234567", "۱۱", "2024-11-20T12:19:00"),
    ]


def test_a_leading_zero_mobile_literal_is_read_as_its_digits():
    """`"Mobile": 09121234567` (the docs print such literals for Number; replies come "in any
    form") is not JSON: it is read as the text 09121234567, not lost with the whole answer."""
    body = (
        '{"Status":"Success","Data":[{"MessageID":5,"Mobile": 09121234567,'
        '"MessageText":"\\"Mobile\\": 0912 لغو","ReceiveDateTime":"2024-11-20T12:19:00"}]}'
    ).encode()
    assert amoot.read_new_messages(body) == [
        InboundSMS("5", "09121234567", '"Mobile": 0912 لغو', "2024-11-20T12:19:00")
    ]


def test_a_single_object_as_data_is_one_reply():
    """Data as one object (the output table calls it an Object elsewhere) is not dropped."""
    assert [r.message_id for r in _replies(_answer(_item(MessageID=9)))] == ["9"]


def test_a_bom_and_return_value_instead_of_status_are_tolerated():
    """A UTF-8 BOM is skipped; the page's output table names ReturnValue where the sample says
    Status, so either is read."""
    body = b"\xef\xbb\xbf" + json.dumps({"ReturnValue": "Success", "Data": [_item()]}).encode()
    assert [r.message_id for r in _replies(body)] == ["1"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_answer(None, "Token_Expired"), SendReply(Kind.FATAL, "Token_Expired")),
        (_answer([], -201), SendReply(Kind.FATAL, "Token_NotExists")),
        (_answer([], "Count_Invalid"), SendReply(Kind.FATAL, "Count_Invalid")),
        (_answer(None, "Failed"), SendReply(Kind.RETRY, "Failed")),
        (_answer(None, "ServerError"), SendReply(Kind.AMBIGUOUS, "ServerError")),
        (
            _answer(None, "Brand_New"),
            SendReply(Kind.AMBIGUOUS, "Brand_New", unknown_title=True),
        ),
        (
            _answer([_item(), _item()], "Failed"),
            SendReply(Kind.AMBIGUOUS, "Failed with 2 replies in its Data"),
        ),
    ],
    ids=["fatal", "code", "count", "failed", "server-error", "unknown", "error-with-data"],
)
def test_a_title_other_than_success_is_a_send_reply(body, expected):
    """A non-Success Status is a SendReply of its title's kind, as for the other readers; an
    error that still carries replies is ambiguous (they are handed out only once)."""
    assert amoot.read_new_messages(body) == expected


@pytest.mark.parametrize(
    "body",
    [b"<html>Runtime Error</html>", b"", b"\xff\xfe", b"[]", b'{"Data":[]}', b"null"],
    ids=["html", "empty", "not-utf8", "a-list", "no-status", "null"],
)
def test_an_answer_that_is_not_a_json_reply_is_ambiguous(body):
    """What is not a JSON object with a Status is ambiguous, as read_json's other callers say."""
    assert amoot.read_new_messages(body) == SendReply(
        Kind.AMBIGUOUS, "the answer was not a JSON RecieveNewMessages reply"
    )


# --- the simulator -----------------------------------------------------------------------------


def test_add_reply_gives_unique_increasing_ids_and_tehran_time():
    """Default IDs increase (also past an explicit one); received_at is the clock's Tehran wall
    time (UTC+03:30), formatted YYYY-MM-DDTHH:MM:SS."""
    sim = AmootSimulator(clock=lambda: datetime(2026, 3, 20, 20, 30, 5, tzinfo=UTC))
    first = sim.add_reply("09121234567", "۱۱")
    given = sim.add_reply("09121234568", "hi", message_id="x-1", received_at="2024-01-01T00:00:00")
    third = sim.add_reply("09121234569", "۱۲")
    assert (first, given, third) == (str(FIRST_REPLY_ID), "x-1", str(FIRST_REPLY_ID + 2))
    assert [r.received_at for r in sim.inbox] == [
        "2026-03-21T00:00:05",
        "2024-01-01T00:00:00",
        "2026-03-21T00:00:05",
    ]


@pytest.mark.parametrize("count", ["", "0", "-3", "abc", "۵", None])
def test_the_simulator_refuses_a_missing_or_bad_count(sim, count):
    """Count missing, not a number or under 1: Count_Invalid with Data empty; nothing taken."""
    sim.add_reply("09121234567", "۱۱")
    content = b"" if count is None else f"Count={count}".encode()
    response = sim.handle(
        httpx.Request(
            "POST",
            f"https://portal.amootsms.com/rest/{METHOD}",
            headers={"Authorization": TOKEN, "Content-Type": "application/x-www-form-urlencoded"},
            content=content,
        )
    )
    assert response.json() == {"Data": [], "Status": "Count_Invalid"}
    assert len(sim.inbox) == 1


def test_nothing_new_is_the_documented_empty_success(sim):
    """An empty inbox answers `Success`, the documented Message, `Data: []`."""
    response = sim.handle(
        httpx.Request(
            "POST",
            f"https://portal.amootsms.com/rest/{METHOD}",
            headers={"Authorization": TOKEN, "Content-Type": "application/x-www-form-urlencoded"},
            content=b"Count=10",
        )
    )
    assert response.json() == {"Status": "Success", "Message": NO_NEW_MESSAGES, "Data": []}


def test_the_shipped_sandbox_holds_the_sample_contacts_opt_out():
    """A `sandbox: true` run finds one reply: 09121234567 (data/contacts.csv's first row)
    answering «لغو۱۱», under the same fixed ID every run, received at the sim's now."""
    moment = datetime(2026, 3, 20, 20, 30, tzinfo=UTC)
    for _ in range(2):  # a new simulator per run: the same reply, the same ID
        sim = shipped_sandbox(clock=lambda: moment)
        assert list(sim.inbox) == [
            InboundSMS("sandbox-reply-1", "09121234567", "لغو۱۱", "2026-03-21T00:00:00")
        ]
    assert SANDBOX_REPLY.message_id == "sandbox-reply-1"
    first_row = (REPO / "data" / "contacts.csv").read_text("utf-8-sig").splitlines()[1]
    assert first_row.split(",")[0] == SANDBOX_REPLY.mobile


# --- Sender.receive_new_messages ----------------------------------------------------------------


def test_count_is_posted_as_a_form_and_each_reply_comes_once(sim):
    """Count goes as a form field with the token header; replies come oldest first, at most
    Count at a time, each only once; then nothing."""
    ids = [sim.add_reply(f"0912123456{i}", f"پیام {i}") for i in range(3)]
    sender, sleep = make_sender(sim, token=TOKEN)
    assert [r.message_id for r in sender.receive_new_messages(2)] == ids[:2]
    assert [r.message_id for r in sender.receive_new_messages()] == ids[2:]
    assert sender.receive_new_messages() == []
    assert _asked(sim) == [{"Count": "2"}, {"Count": "100"}, {"Count": "100"}]
    recorded = next(r for r in sim.requests if r.method == METHOD)
    assert recorded.headers["content-type"] == "application/x-www-form-urlencoded"
    assert sleep.calls == []


@pytest.mark.parametrize("title", ["Token_Expired", "Token_NotAllowIP", "User_Disabled"])
def test_a_fatal_title_raises_at_once_and_takes_nothing(sim, title):
    """A fatal title is ProviderFatal (exit 3) naming it and the fix, asked once; the token
    never shows; the fake's inbox keeps the reply (a title fault does not process)."""
    sim.add_reply("09121234567", "۱۱")
    sim.faults.append(Fault(kind="title", method=METHOD, title=title))
    sender, sleep = make_sender(sim, token=TOKEN)
    with pytest.raises(ProviderFatal) as caught:
        sender.receive_new_messages()
    message = str(caught.value)
    assert caught.value.title == title and caught.value.exit_code == 3
    assert "no replies were read" in message and "Fix: " in message and TOKEN not in message
    assert len(_asked(sim)) == 1 and sleep.calls == [] and len(sim.inbox) == 1


def test_a_wrong_token_is_refused(sim):
    """The simulator checks the token as for every method: Token_NotExists, exit 3."""
    sim.add_reply("09121234567", "۱۱")
    sender, _ = make_sender(sim, token="wrong")
    with pytest.raises(ProviderFatal, match="Token_NotExists") as caught:
        sender.receive_new_messages()
    assert "APIToken" in str(caught.value) and len(sim.inbox) == 1


@pytest.mark.parametrize(
    "fault",
    [
        Fault(kind="drop_before", method=METHOD),
        Fault(kind="http_status", method=METHOD, http_status=503, retry_after="2"),
        Fault(kind="http_status", method=METHOD, http_status=429),
        Fault(kind="title", method=METHOD, title="Failed"),
        Fault(kind="title", method=METHOD, title="System_Disabled"),
    ],
    ids=["connect-refused", "503", "429", "failed", "system-disabled"],
)
def test_what_provably_was_not_processed_is_asked_again(sim, fault):
    """A refused connection, 429/503 and a Failed title never took a reply: asked again, and
    the second answer has the reply (Retry-After honoured)."""
    reply_id = sim.add_reply("09121234567", "۱۱")
    sim.faults.append(fault)
    sender, sleep = make_sender(sim, token=TOKEN)
    assert [r.message_id for r in sender.receive_new_messages()] == [reply_id]
    assert len(_asked(sim)) == 2
    if fault.retry_after:
        assert 2.0 in sleep.calls


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault(kind="drop_after", method=METHOD), "RemoteProtocolError"),
        (Fault(kind="slow_after", method=METHOD), "no complete answer within 5s"),
        (Fault(kind="http_status", method=METHOD, http_status=500, process=True), "HTTP 500"),
        (Fault(kind="html", method=METHOD, process=True), "not a JSON RecieveNewMessages"),
        (Fault(kind="title", method=METHOD, title="ServerError", process=True), "ServerError"),
    ],
    ids=["dropped-after", "timeout", "http-500", "html", "server-error"],
)
def test_an_answer_lost_after_processing_is_not_asked_again(sim, fault, reason):
    """The fake took the replies, then the answer was lost: exactly one request, and the error
    says replies may be lost and the panel's inbox still shows them."""
    sim.add_reply("09121234567", "۱۱")
    sim.add_reply("09121234568", "۱۱")
    sim.faults.append(fault)
    sender, sleep = make_sender(sim, token=TOKEN)
    with pytest.raises(ProviderFatal) as caught:
        sender.receive_new_messages()
    message = str(caught.value)
    assert len(_asked(sim)) == 1 and sleep.calls == []
    assert len(sim.inbox) == 0  # gone on the server: a second call would return nothing
    assert reason in message and caught.value.exit_code == 3
    assert "may be lost" in message and "panel's inbox" in message and TOKEN not in message


def test_a_provider_that_stays_busy_raises_after_max_attempts(sim):
    """503 on every attempt: max_attempts requests, then ProviderFatal saying nothing was lost."""
    sim.add_reply("09121234567", "۱۱")
    sim.faults.extend(Fault(kind="http_status", method=METHOD) for _ in range(3))
    sender, _ = make_sender(sim, token=TOKEN, max_attempts=3)
    with pytest.raises(ProviderFatal, match="nothing was lost") as caught:
        sender.receive_new_messages()
    assert caught.value.exit_code == 3 and len(_asked(sim)) == 3 and len(sim.inbox) == 1


def test_the_shipped_sandbox_serves_its_reply_through_the_sender():
    """The in-process sandbox a `sandbox: true` config uses answers with its one reply."""
    sender, _ = make_sender(shipped_sandbox(), token=SANDBOX_TOKEN)
    [reply] = sender.receive_new_messages()
    assert (reply.message_id, reply.mobile, reply.text) == (
        "sandbox-reply-1",
        "09121234567",
        "لغو۱۱",
    )
    assert sender.receive_new_messages() == []


# --- over a socket -----------------------------------------------------------------------------


def _socket_sender(server: SandboxServer, client: httpx.Client) -> tuple[Sender, FakeSleep]:
    """A Sender on the run's own HTTP client (pipeline.dispatch.http_client), over TCP."""
    sleep = FakeSleep()
    settings = SenderSettings(server.base_url, TOKEN, "public", 5, 3)
    sender = Sender(
        client,
        settings,
        throttle=Throttle(None, sleep=sleep),
        stop=threading.Event(),
        sleep=sleep,
        send_at=lambda: datetime.now(UTC),
    )
    return sender, sleep


def test_the_socket_fake_serves_replies_over_tcp(sim):
    """Over 127.0.0.1 the real client reads the replies the same way, each once."""
    ids = [sim.add_reply("09121234567", "لغو۱۱"), sim.add_reply("+989121234568", "سلام")]
    with SandboxServer(sim) as server, http_client(1, 5) as client:
        sender, _ = _socket_sender(server, client)
        found = sender.receive_new_messages(5)
        assert [(r.message_id, r.mobile, r.text) for r in found] == [
            (ids[0], "09121234567", "لغو۱۱"),
            (ids[1], "+989121234568", "سلام"),
        ]
        assert sender.receive_new_messages(5) == []
    assert _asked(sim) == [{"Count": "5"}, {"Count": "5"}]


def test_a_connection_reset_after_processing_over_tcp_is_not_retried(sim):
    """The socket fake takes the replies, then resets the connection: one request only."""
    sim.add_reply("09121234567", "۱۱")
    sim.faults.append(Fault(kind="drop_after", method=METHOD))
    with SandboxServer(sim) as server, http_client(1, 5) as client:
        sender, sleep = _socket_sender(server, client)
        with pytest.raises(ProviderFatal, match="may be lost"):
            sender.receive_new_messages()
    assert len(_asked(sim)) == 1 and sleep.calls == [] and not sim.inbox


def _replies(body: bytes) -> list[amoot.InboundSMS]:
    """The replies `body` holds; a SendReply (a refused answer) fails the test."""
    read = amoot.read_new_messages(body)
    assert isinstance(read, list), read
    return read
