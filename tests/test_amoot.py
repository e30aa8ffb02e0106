"""Reading SendPeerToPeer answers: titles, campaigns, number forms, the documented invalid JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import amoot
from pipeline.amoot import Kind
from pipeline.models import Message, Status

MESSAGES = [Message(1, "09121111111", "الف"), Message(2, "09122222222", "ب")]


def _answer(campaigns: list[dict[str, object]], status: str = "Success") -> bytes:
    return json.dumps({"Status": status, "Data": {"Campaigns": campaigns}}).encode()


@pytest.mark.parametrize(
    "number", [9121111111, "9121111111", "09121111111", 989121111111, "+989121111111"]
)
def test_numbers_match_by_last_ten_digits(number):
    """Whatever form the provider echoes a number in, it maps back to the right row."""
    body = _answer(
        [
            {
                "ID": 7,
                "Status": "Success",
                "SMSPagesCount": 1,
                "Numbers": [{"ID": 70, "Number": number}, {"ID": 71, "Number": 9122222222}],
            },
        ]
    )
    reply = amoot.read_send_answer(body, MESSAGES)
    assert reply.kind is Kind.SUCCESS
    assert reply.outcomes["9121111111"].status is Status.SENT
    assert reply.outcomes["9121111111"].message_id == "70"
    assert reply.outcomes["9121111111"].campaign_id == "7"


def test_documented_leading_zero_number_is_read():
    """The docs' example body `"Number": 09120000000` is not JSON; it is still read correctly."""
    body = (
        b'{"Data":{"CampaignsCreated":1,"Campaigns":[{"Numbers":[{"ID":12345678,'
        b'"Number": 09121111111},{"ID":12345679,"Number":09122222222}],"Status":"Success",'
        b'"MessageText":"x: \\"Number\\": 0912","ID":555,"SMSPagesCount":1}]},"Status":"Success"}'
    )
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    reply = amoot.read_send_answer(body, MESSAGES)
    assert reply.outcomes["9121111111"].message_id == "12345678"
    assert reply.outcomes["9122222222"].message_id == "12345679"


def test_failed_campaign_fails_its_numbers_only():
    """A campaign whose Status is a recipient title fails those rows; the others are sent."""
    body = _answer(
        [
            {"ID": 7, "Status": "Success", "Numbers": [{"ID": 70, "Number": 9121111111}]},
            {"ID": 0, "Status": "Mobile_Invalid", "Numbers": [{"ID": 0, "Number": 9122222222}]},
        ]
    )
    reply = amoot.read_send_answer(body, MESSAGES)
    assert reply.outcomes["9121111111"].status is Status.SENT
    assert reply.outcomes["9122222222"].status is Status.FAILED
    assert reply.outcomes["9122222222"].error == "Mobile_Invalid"


def test_number_missing_from_answer_is_unknown():
    """A posted number the answer does not mention may or may not be sent: unknown."""
    body = _answer([{"ID": 7, "Status": "Success", "Numbers": [{"ID": 70, "Number": 9121111111}]}])
    reply = amoot.read_send_answer(body, MESSAGES)
    assert reply.outcomes["9122222222"].status is Status.UNKNOWN


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("Token_NotExists", Kind.FATAL),
        (-201, Kind.FATAL),
        ("-201", Kind.FATAL),
        ("CreditNotEnough", Kind.FATAL),
        ("AccountIsDemo", Kind.FATAL),
        ("LineNumber_NotExist", Kind.FATAL),
        ("User_Disabled", Kind.FATAL),
        ("ServerError", Kind.AMBIGUOUS),
        ("System_Disabled", Kind.RETRY),
        ("Failed", Kind.RETRY),
        ("Mobiles_Invalid", Kind.RECIPIENT),
        ("Something_New", Kind.AMBIGUOUS),
    ],
)
def test_top_level_titles_are_classified(status, kind):
    """A top-level title with Data null is classified by the table (ints and strings alike)."""
    body = json.dumps({"Status": status, "Data": None}).encode()
    reply = amoot.read_send_answer(body, MESSAGES)
    assert reply.kind is kind
    assert reply.outcomes == {}


@pytest.mark.parametrize(
    "body",
    [b"<html><body>Server Error in '/' Application.</body></html>", b"", b"[1,2]", b"\xff\xfe"],
)
def test_unreadable_answer_is_ambiguous(body):
    """A body that is not a JSON answer may hide a processed request: ambiguous."""
    assert amoot.read_send_answer(body, MESSAGES).kind is Kind.AMBIGUOUS


def test_account_status_is_read_with_credit_prices_and_lines():
    body = json.dumps(
        {
            "Status": "Success",
            "RemaindCredit": 1250000.0,
            "BaseSMS_PersianPrice": 1080,
            "BaseSMS_EnglishPrice": 2340,
            "ListLineNumbers": ["public", 50001234],
        }
    ).encode()
    assert amoot.read_account_status(body) == amoot.Account(
        credit=1_250_000,
        prices={"BaseSMS_PersianPrice": 1080, "BaseSMS_EnglishPrice": 2340},
        lines=("public", "50001234"),
    )


@pytest.mark.parametrize(
    ("body", "kind", "title"),
    [
        (b"", Kind.AMBIGUOUS, "the answer was not a JSON AccountStatus reply"),
        (b"[]", Kind.AMBIGUOUS, "the answer was not a JSON AccountStatus reply"),
        (b'{"Status": "Token_Expired"}', Kind.FATAL, "Token_Expired"),
        (b'{"Status": "Failed"}', Kind.RETRY, "Failed"),
        (b'{"Status": "Success"}', Kind.AMBIGUOUS, "AccountStatus gave no RemaindCredit"),
    ],
)
def test_account_status_that_is_not_a_success_says_why(body, kind, title):
    """A fatal title stops the run as it is (not as a missing credit, retried as unreachable)."""
    assert amoot.read_account_status(body) == amoot.SendReply(kind, title)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (200, None),
        (429, Kind.RETRY),
        (503, Kind.RETRY),
        (500, Kind.AMBIGUOUS),
        (502, Kind.AMBIGUOUS),
        (504, Kind.AMBIGUOUS),
        (404, Kind.FATAL),
        (401, Kind.FATAL),
        (302, Kind.AMBIGUOUS),
        (307, Kind.AMBIGUOUS),
    ],
)
def test_http_status_classes(code, kind):
    """Only 429 and 503 promise the request was not processed; a redirect (never followed)
    may come from a proxy after the server had it."""
    assert amoot.classify_http(code) is kind


def test_send_body_shape():
    """The body is the documented JSON: SendDateTime, LineNumber, Input of Number/MessageText."""
    body = json.loads(amoot.build_send_body(MESSAGES, "2026-03-21 10:00:00", "public"))
    assert body == {
        "SendDateTime": "2026-03-21 10:00:00",
        "LineNumber": "public",
        "Input": [
            {"Number": "09121111111", "MessageText": "الف"},
            {"Number": "09122222222", "MessageText": "ب"},
        ],
    }


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(st.text(), min_size=1, max_size=5),
    send_at=st.text(),
    line_number=st.text(),
)
def test_send_body_is_what_json_writes(texts, send_at, line_number):
    """Any text (quotes, backslashes, control characters, Persian, emoji) gives the same
    bytes as json.dumps writes them: valid JSON, keys in the documented order, UTF-8."""
    messages = [Message(i, f"0912{i:07d}", text) for i, text in enumerate(texts)]
    expected = {
        "SendDateTime": send_at,
        "LineNumber": line_number,
        "Input": [{"Number": m.number, "MessageText": m.text} for m in messages],
    }
    body = amoot.build_send_body(messages, send_at, line_number)
    assert body == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode()


def test_page_mismatch_is_counted():
    """SMSPagesCount that differs from our own count is noticed."""
    body = _answer(
        [
            {
                "ID": 7,
                "Status": "Success",
                "SMSPagesCount": 2,
                "Numbers": [{"ID": 70, "Number": 9121111111}, {"ID": 71, "Number": 9122222222}],
            }
        ]
    )
    reply = amoot.read_send_answer(body, MESSAGES, {"9121111111": 1, "9122222222": 2})
    assert reply.page_mismatches == 1
