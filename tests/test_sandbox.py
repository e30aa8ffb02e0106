"""The AmootSMS simulator answers as amoot-api.md documents, in-process and over a real socket."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.sandbox import (
    FIRST_CAMPAIGN_ID,
    FIRST_MESSAGE_ID,
    MOVED,
    SANDBOX_BLACKLIST_RULE,
    SANDBOX_TOKEN,
    Accepted,
    AmootSimulator,
    Fault,
    shipped_sandbox,
)
from pipeline.sandbox_server import SandboxServer
from pipeline.sandbox_wire import count_pages as fake_pages
from pipeline.segments import count_pages

SEND_AT = "2025-10-21 15:10:00"
PERSIAN = "س"  # one UCS-2 unit
START_CREDIT = 10_000_000


def fixed_clock() -> datetime:
    return datetime(2025, 10, 21, 15, 0, 0, 123_000)


def make_sim(**kwargs: Any) -> AmootSimulator:
    kwargs.setdefault("clock", fixed_clock)
    return AmootSimulator(**kwargs)


def client(sim: AmootSimulator, headers: dict[str, str] | None = None) -> httpx.Client:
    return httpx.Client(
        transport=httpx.MockTransport(sim.handle),
        base_url="https://portal.amootsms.com/rest",
        headers={"Authorization": SANDBOX_TOKEN} if headers is None else headers,
    )


def p2p(items: list[tuple[Any, str]], line: str = "public", send_at: str = SEND_AT) -> Any:
    return {
        "SendDateTime": send_at,
        "LineNumber": line,
        "Input": [{"Number": number, "MessageText": text} for number, text in items],
    }


def send(http: httpx.Client, items: list[tuple[Any, str]], **kwargs: Any) -> httpx.Response:
    return http.post("/SendPeerToPeer", json=p2p(items, **kwargs))


def credit(http: httpx.Client) -> int:
    remaining: int = http.post("/AccountStatus").json()["RemaindCredit"]
    return remaining


# --- SendPeerToPeer: success -------------------------------------------------------------


def test_success_shape_groups_campaigns_by_text_with_increasing_ids() -> None:
    """One campaign per distinct text; campaign and message IDs count up from separate bases."""
    sim = make_sim()
    with client(sim) as http:
        answer = send(
            http,
            [("09121111111", "سلام علی"), ("09122222222", "سلام رضا"), ("09123333333", "سلام علی")],
        )
    assert answer.status_code == 200
    assert answer.json() == {
        "Status": "Success",
        "Data": {
            "CampaignsCreated": 2,
            "TotalCampaignNumbersCreated": 3,
            "FailedCount": 0,
            "Campaigns": [
                {
                    "ID": FIRST_CAMPAIGN_ID,
                    "Status": "Success",
                    "MessageText": "سلام علی",
                    "SMSPagesCount": 1,
                    "Numbers": [
                        {"ID": FIRST_MESSAGE_ID, "Number": 9121111111},
                        {"ID": FIRST_MESSAGE_ID + 1, "Number": 9123333333},
                    ],
                },
                {
                    "ID": FIRST_CAMPAIGN_ID + 1,
                    "Status": "Success",
                    "MessageText": "سلام رضا",
                    "SMSPagesCount": 1,
                    "Numbers": [{"ID": FIRST_MESSAGE_ID + 2, "Number": 9122222222}],
                },
            ],
        },
    }
    assert sim.accepted == [
        Accepted("9121111111", "سلام علی", FIRST_MESSAGE_ID, FIRST_CAMPAIGN_ID, SEND_AT, "public"),
        Accepted(
            "9123333333", "سلام علی", FIRST_MESSAGE_ID + 1, FIRST_CAMPAIGN_ID, SEND_AT, "public"
        ),
        Accepted(
            "9122222222", "سلام رضا", FIRST_MESSAGE_ID + 2, FIRST_CAMPAIGN_ID + 1, SEND_AT, "public"
        ),
    ]


def test_ids_keep_counting_across_requests() -> None:
    """A second request gets the next campaign and message IDs, never reusing one."""
    sim = make_sim()
    with client(sim) as http:
        send(http, [("09121111111", "a")])
        second = send(http, [("09122222222", "a")]).json()["Data"]["Campaigns"][0]
    assert second["ID"] == FIRST_CAMPAIGN_ID + 1
    assert second["Numbers"][0]["ID"] == FIRST_MESSAGE_ID + 1


@pytest.mark.parametrize(
    "raw", ["09121234567", "9121234567", "989121234567", "+989121234567", "00989121234567"]
)
def test_every_documented_number_form_is_normalised(raw: str) -> None:
    """09…, 9…, 98…, +98… and 0098… all reach the same 10-digit number."""
    sim = make_sim()
    with client(sim) as http:
        answer = send(http, [(raw, "hi")]).json()
    assert answer["Data"]["Campaigns"][0]["Numbers"][0]["Number"] == 9121234567
    assert [a.number for a in sim.accepted] == ["9121234567"]


def test_a_json_integer_number_is_accepted() -> None:
    """`Number` posted as a JSON integer binds like the digits string."""
    sim = make_sim()
    with client(sim) as http:
        assert send(http, [(9121234567, "hi")]).json()["Status"] == "Success"
    assert sim.accepted[0].number == "9121234567"


# --- pages and credit ----------------------------------------------------------------------


def test_pages_and_credit_deduction_follow_the_tariff_of_the_script() -> None:
    """Each page costs the Persian tariff for UCS-2 text and the English one for GSM-7 text."""
    sim = make_sim()
    texts = {PERSIAN * 70: 1, PERSIAN * 71: 2, "a" * 160: 1, "b" * 161: 2}
    with client(sim) as http:
        answer = send(http, [(f"0912000{i:04d}", text) for i, text in enumerate(texts, 1)])
        pages = {c["MessageText"]: c["SMSPagesCount"] for c in answer.json()["Data"]["Campaigns"]}
        remaining = credit(http)
    assert pages == texts
    assert remaining == START_CREDIT - (1 * 1000 + 2 * 1000 + 1 * 5000 + 2 * 5000)


@pytest.mark.parametrize(
    ("line", "text", "price"),
    [
        ("public", PERSIAN, 1000),
        ("Service", PERSIAN, 2050),
        ("Service", "a", 6670),
        ("98", PERSIAN, 3870),
        ("98", "a", 11560),
    ],
)
def test_the_line_picks_base_service_or_ads_tariff(line: str, text: str, price: int) -> None:
    """`Service` charges the service tariff, `98` the advertising one, `public` the base one."""
    sim = make_sim()
    with client(sim) as http:
        send(http, [("09121234567", text)], line=line)
        assert credit(http) == START_CREDIT - price


@settings(max_examples=40, deadline=None)
@given(length=st.integers(1, 400), persian=st.booleans())
def test_pages_follow_the_single_and_multipart_limits(length: int, persian: bool) -> None:
    """GSM-7 fits 160 in one page and 153 per part; UCS-2 fits 70 and 67."""
    single, multi = (70, 67) if persian else (160, 153)
    expected = 1 if length <= single else -(-length // multi)
    sim = make_sim()
    with client(sim) as http:
        text = (PERSIAN if persian else "x") * length
        campaign = send(http, [("09121234567", text)]).json()["Data"]["Campaigns"][0]
    assert campaign["SMSPagesCount"] == expected


@pytest.mark.parametrize(
    ("text", "pages"),
    [
        ("€" * 80, 1),  # 160 septets: an extension character costs two
        ("€" * 80 + "a", 2),
        ("a" * 152 + "€" + "a" * 152, 3),  # the escape pair moves whole to part two
        (PERSIAN * 66 + "😀" + PERSIAN * 66, 3),  # so does a surrogate pair
        ("😀" * 35, 1),  # 70 UTF-16 units
    ],
)
def test_two_unit_characters_are_counted_twice_and_never_split(text: str, pages: int) -> None:
    """Extension characters and astral characters take two units and stay in one part."""
    sim = make_sim()
    with client(sim) as http:
        campaign = send(http, [("09121234567", text)]).json()["Data"]["Campaigns"][0]
    assert campaign["SMSPagesCount"] == pages


def test_credit_not_enough_accepts_nothing_from_that_request() -> None:
    """When a request would overdraw the credit it fails whole, and the credit is untouched."""
    sim = make_sim(credit_rials=3000)
    with client(sim) as http:
        first = send(http, [("09121111111", PERSIAN), ("09122222222", PERSIAN)])
        second = send(http, [("09123333333", PERSIAN), ("09124444444", PERSIAN)])
        remaining = credit(http)
    assert first.json()["Status"] == "Success"
    assert second.json() == {"Data": None, "Status": "CreditNotEnough"}
    assert [a.number for a in sim.accepted] == ["9121111111", "9122222222"]
    assert remaining == 1000


# --- SendPeerToPeer: failures ---------------------------------------------------------------


def test_a_blacklisted_number_is_a_failed_campaign_beside_the_sent_ones() -> None:
    """A blacklisted recipient shows as a campaign with Status Mobile_Invalid and ID 0."""
    sim = make_sim(blacklist=["09129999999"])
    with client(sim) as http:
        data = send(http, [("09121111111", "hi"), ("+989129999999", "hi")]).json()
        remaining = credit(http)
    assert data["Status"] == "Success"
    assert data["Data"]["CampaignsCreated"] == 1
    assert data["Data"]["TotalCampaignNumbersCreated"] == 1
    assert data["Data"]["FailedCount"] == 1
    assert data["Data"]["Campaigns"][1] == {
        "ID": 0,
        "Status": "Mobile_Invalid",
        "MessageText": "hi",
        "SMSPagesCount": 1,
        "Numbers": [{"ID": 0, "Number": 9129999999}],
    }
    assert [a.number for a in sim.accepted] == ["9121111111"]
    assert remaining == START_CREDIT - 5000


def test_the_shipped_sandbox_blacklists_numbers_ending_in_0000() -> None:
    """`shipped_sandbox()` applies SANDBOX_BLACKLIST_RULE, so a demo shows a failed row."""
    sim = shipped_sandbox()
    with client(sim) as http:
        data = send(http, [("09120000000", "hi"), ("09121230000", "hi"), ("09121230001", "hi")])
    failed = data.json()["Data"]["Campaigns"][1]
    assert failed["Status"] == "Mobile_Invalid"
    assert [n["Number"] for n in failed["Numbers"]] == [9120000000, 9121230000]
    accepted = data.json()["Data"]["Campaigns"][0]
    assert [n["Number"] for n in accepted["Numbers"]] == [9121230001]
    assert sim.accepted == []  # it keeps no history: a long sandbox run stays small
    assert "0000" in SANDBOX_BLACKLIST_RULE
    assert not make_sim().blacklist_zeros


def test_bad_numbers_and_empty_texts_fail_per_recipient() -> None:
    """A malformed number, a missing number and a blank text each fail only their recipient."""
    sim = make_sim()
    with client(sim) as http:
        data = send(
            http,
            [("12345", "hi"), ("", "hi"), ("09121111111", "  "), ("09122222222", "hi")],
        ).json()["Data"]
    failures = {c["Status"]: c["Numbers"] for c in data["Campaigns"] if c["ID"] == 0}
    assert failures == {
        "Mobile_Invalid": [{"ID": 0, "Number": "12345"}],
        "Mobile_Empty": [{"ID": 0, "Number": ""}],
        "SMSMessageText_Empty": [{"ID": 0, "Number": 9121111111}],
    }
    assert data["FailedCount"] == 3
    assert [a.number for a in sim.accepted] == ["9122222222"]


def test_when_every_recipient_fails_the_answer_is_mobiles_invalid() -> None:
    """No valid recipient at all: top-level Mobiles_Invalid, nothing accepted or charged."""
    sim = make_sim(blacklist=["9121111111"])
    with client(sim) as http:
        answer = send(http, [("09121111111", "hi"), ("0912", "hi")])
        remaining = credit(http)
    assert answer.json() == {"Data": None, "Status": "Mobiles_Invalid"}
    assert sim.accepted == []
    assert remaining == START_CREDIT


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "not-the-token"}, {"Authorization": f"Bearer {SANDBOX_TOKEN}"}],
)
def test_a_missing_or_wrong_token_is_token_not_exists(headers: dict[str, str]) -> None:
    """Only the raw token is accepted; a Bearer prefix is a wrong token (HTTP 200 regardless)."""
    sim = make_sim()
    with client(sim, headers) as http:
        answer = send(http, [("09121111111", "hi")])
        status = http.post("/AccountStatus").json()
    assert answer.status_code == 200
    assert answer.json() == {"Data": None, "Status": "Token_NotExists"}
    assert status["Status"] == "Token_NotExists"
    assert status["RemaindCredit"] == 0
    assert sim.accepted == []


def test_a_custom_token_is_the_one_accepted() -> None:
    """`token=` replaces the default sandbox token."""
    sim = make_sim(token="s3cret")
    with client(sim, {"Authorization": "s3cret"}) as http:
        assert send(http, [("09121111111", "hi")]).json()["Status"] == "Success"
    with client(sim) as http:
        assert send(http, [("09121111111", "hi")]).json()["Status"] == "Token_NotExists"


def test_status_override_answers_that_title_in_each_methods_envelope() -> None:
    """A set `status_override` (expired token, demo account...) answers every method."""
    sim = make_sim()
    sim.status_override = "Token_Expired"
    with client(sim) as http:
        sent = send(http, [("09121111111", "hi")]).json()
        listed = http.post("/GetDeliveries", data={"ListMessageID": "1"}).json()
        account = http.post("/AccountStatus").json()
    assert sent == {"Data": None, "Status": "Token_Expired"}
    assert listed == {"Data": [], "Status": "Token_Expired"}
    assert account["Status"] == "Token_Expired"
    assert account["ListLineNumbers"] == []
    assert sim.accepted == []


@pytest.mark.parametrize(
    ("body", "title"),
    [
        (p2p([("09121111111", "hi")], line="30001234"), "LineNumber_NotExist"),
        (p2p([("09121111111", "hi")], line=""), "LineNumber_Empty"),
        (p2p([]), "Mobiles_Empty"),
        ({"SendDateTime": SEND_AT, "LineNumber": "public"}, "Mobiles_Empty"),
        (p2p([("09121111111", "hi")], send_at="2025-10-21T15:10:00"), "FromDateTime_Invalid"),
        (p2p([("09121111111", "hi")], send_at="2025-10-21T11:40:00.000Z"), "FromDateTime_Invalid"),
        (p2p([("09121111111", "hi")], send_at="2025-02-30 10:00:00"), "FromDateTime_Invalid"),
        (p2p([("09121111111", "hi")], send_at=""), "FromDateTime_Invalid"),
    ],
)
def test_a_malformed_request_is_rejected_whole(body: Any, title: str) -> None:
    """An unknown line, an empty Input or a SendDateTime not `yyyy-MM-dd HH:mm:ss` fail all."""
    sim = make_sim()
    with client(sim) as http:
        answer = http.post("/SendPeerToPeer", json=body)
    assert answer.json() == {"Data": None, "Status": title}
    assert sim.accepted == []


def test_line_numbers_match_case_insensitively() -> None:
    """`PUBLIC` and `service` are the lines `public` and `Service`."""
    sim = make_sim()
    with client(sim) as http:
        assert send(http, [("09121111111", "hi")], line="PUBLIC").json()["Status"] == "Success"
        assert send(http, [("09121111111", "hi")], line="service").json()["Status"] == "Success"


def test_a_form_encoded_send_binds_nothing() -> None:
    """SendPeerToPeer reads JSON only; a form body is an empty model (LineNumber_Empty)."""
    sim = make_sim()
    with client(sim) as http:
        answer = http.post("/SendPeerToPeer", data={"LineNumber": "public"})
    assert answer.json()["Status"] == "LineNumber_Empty"


# --- Number styles ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "shown"),
    [("int", 9121234567), ("string", "9121234567"), ("with_98", 989121234567)],
)
def test_number_style_sets_how_numbers_come_back(style: Any, shown: object) -> None:
    """Numbers come back as an int, a string or an int with 98, as configured."""
    sim = make_sim(number_style=style, blacklist=["09129999999"])
    with client(sim) as http:
        data = send(http, [("09121234567", "hi"), ("09129999999", "hi")]).json()["Data"]
    assert data["Campaigns"][0]["Numbers"][0]["Number"] == shown
    assert isinstance(data["Campaigns"][1]["Numbers"][0]["Number"], type(shown))


def test_leading_zero_literal_is_the_documented_invalid_json() -> None:
    """The `"Number": 09…` body of the documented example is reproduced byte for byte."""
    sim = make_sim(number_style="leading_zero_literal")
    text = 'he said "Number": 09 ok'
    with client(sim) as http:
        answer = send(http, [("9121234567", text), ("+989122222222", text)])
    assert '"Number": 09121234567' in answer.text
    assert '"Number": 09122222222' in answer.text
    with pytest.raises(json.JSONDecodeError):
        json.loads(answer.text)
    repaired = json.loads(re.sub(r'("Number": )(0[0-9]+)', r'\1"\2"', answer.text))
    campaign = repaired["Data"]["Campaigns"][0]
    assert campaign["MessageText"] == text
    assert [n["Number"] for n in campaign["Numbers"]] == ["09121234567", "09122222222"]


# --- faults, in-process ------------------------------------------------------------------------


def test_http_status_fault_answers_html_with_retry_after_and_processes_nothing() -> None:
    """A 503 with Retry-After carries an HTML body; the messages were not accepted."""
    sim = make_sim()
    sim.faults.append(Fault("http_status", http_status=503, retry_after="2"))
    with client(sim) as http:
        answer = send(http, [("09121111111", "hi")])
        after = send(http, [("09121111111", "hi")])
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "2"
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "Service Unavailable" in answer.text
    assert after.json()["Status"] == "Success"
    assert [a.message_id for a in sim.accepted] == [FIRST_MESSAGE_ID]


def test_a_processing_http_status_fault_accepts_first() -> None:
    """`process=True`: the messages are accepted, then a 500 comes back with no Retry-After."""
    sim = make_sim()
    sim.faults.append(Fault("http_status", http_status=500, process=True))
    with client(sim) as http:
        answer = send(http, [("09121111111", "hi")])
    assert answer.status_code == 500
    assert "Retry-After" not in answer.headers
    assert [a.number for a in sim.accepted] == ["9121111111"]


@pytest.mark.parametrize("process", [False, True])
def test_title_fault_answers_the_title_top_level(process: bool) -> None:
    """A title fault answers `{"Status": title, "Data": null}`, after accepting if asked to."""
    sim = make_sim()
    sim.faults.append(Fault("title", title="ServerError", process=process))
    with client(sim) as http:
        answer = send(http, [("09121111111", "hi")])
    assert answer.status_code == 200
    assert answer.json() == {"Data": None, "Status": "ServerError"}
    assert len(sim.accepted) == int(process)


def test_html_fault_is_http_200_with_a_page_that_is_not_json() -> None:
    """An html fault answers 200 with an ASP.NET error page instead of JSON."""
    sim = make_sim()
    sim.faults.append(Fault("html"))
    with client(sim) as http:
        answer = send(http, [("09121111111", "hi")])
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        answer.json()
    assert sim.accepted == []


def test_drop_before_is_a_connect_error_and_nothing_is_accepted() -> None:
    """drop_before raises httpx.ConnectError: the request never reached the server."""
    sim = make_sim()
    sim.faults.append(Fault("drop_before", process=True))  # process cannot apply before
    with client(sim) as http, pytest.raises(httpx.ConnectError):
        send(http, [("09121111111", "hi")])
    assert sim.accepted == []
    assert [r.method for r in sim.requests] == ["SendPeerToPeer"]


def test_drop_after_is_a_disconnect_after_the_messages_were_accepted() -> None:
    """drop_after raises RemoteProtocolError, yet the server kept the messages."""
    sim = make_sim()
    sim.faults.append(Fault("drop_after"))
    with client(sim) as http, pytest.raises(httpx.RemoteProtocolError):
        send(http, [("09121111111", "hi")])
    assert [a.number for a in sim.accepted] == ["9121111111"]


def test_slow_after_is_a_read_timeout_after_the_messages_were_accepted() -> None:
    """slow_after raises ReadTimeout in-process, yet the server kept the messages."""
    sim = make_sim()
    sim.faults.append(Fault("slow_after", delay=30))
    started = time.monotonic()
    with client(sim) as http, pytest.raises(httpx.ReadTimeout):
        send(http, [("09121111111", "hi")])
    assert time.monotonic() - started < 1  # in-process never really waits
    assert [a.number for a in sim.accepted] == ["9121111111"]


def test_faults_go_to_their_method_first_in_first_out() -> None:
    """Each request consumes the oldest fault scripted for its own method, and only that."""
    sim = make_sim()
    sim.faults.extend(
        [
            Fault("title", method="GetDeliveries", title="Failed"),
            Fault("http_status", http_status=429),
            Fault("http_status", http_status=502),
        ]
    )
    with client(sim) as http:
        codes = [send(http, [("09121111111", "hi")]).status_code for _ in range(3)]
        listed = http.post("/GetDeliveries", data={"ListMessageID": str(FIRST_MESSAGE_ID)})
    assert codes == [429, 502, 200]
    assert listed.json() == {"Data": [], "Status": "Failed"}
    assert not sim.faults


# --- other methods -----------------------------------------------------------------------------


def test_account_status_is_the_documented_flat_object() -> None:
    """AccountStatus answers the current credit, the six tariffs and the usable lines."""
    sim = make_sim(credit_rials=25_000)
    with client(sim) as http:
        answer = http.post("/AccountStatus")
    assert answer.json() == {
        "Status": "Success",
        "AccountName": "Sandbox",
        "RemaindCredit": 25_000,
        "BaseSMS_PersianPrice": 1000,
        "BaseSMS_EnglishPrice": 5000,
        "ServiceSMS_PersianPrice": 2050,
        "ServiceSMS_EnglishPrice": 6670,
        "AdsSMS_PersianPrice": 3870,
        "AdsSMS_EnglishPrice": 11560,
        "Avanak_SecondPrice": 23,
        "ListLineNumbers": ["public", "Service", "98"],
    }


def test_get_deliveries_reports_each_message_and_flags_unknown_ids() -> None:
    """Item Status reports the lookup; DeliveryType carries the delivery (settable per message)."""
    sim = make_sim()
    sim.delivery_codes_by_number["9122222222"] = 35
    with client(sim) as http:
        send(http, [("09121111111", "a"), ("09122222222", "a"), ("09123333333", "a")])
        sim.set_delivery(FIRST_MESSAGE_ID + 2, 2)
        ids = [FIRST_MESSAGE_ID + i for i in range(3)]
        answer = http.post("/GetDeliveries", data={"ListMessageID": ",".join(map(str, ids)) + ",7"})
    data = answer.json()
    assert data["Status"] == "Success"
    assert data["Data"][0] == {
        "MessageID": FIRST_MESSAGE_ID,
        "DeliveryType": 1,
        "Cost": 0,
        "RegDateTime": "2025-10-21T15:00:00.123",
        "SendDateTime": "2025-10-21T15:10:00",
        "Status": "Success",
    }
    assert [(i["DeliveryType"], i["Status"]) for i in data["Data"]] == [
        (1, "Success"),
        (35, "Success"),
        (2, "Success"),
        (0, "MessageID_Invalid"),
    ]
    assert data["Data"][3]["MessageID"] == 7


@pytest.mark.parametrize("ids", ["", "abc", "1,,2", "0"])
def test_a_malformed_message_id_list_is_failed(ids: str) -> None:
    """GetDeliveries with no usable ID list answers the documented `Failed` with empty Data."""
    sim = make_sim()
    with client(sim) as http:
        answer = http.post("/GetDeliveries", data={"ListMessageID": ids})
    assert answer.json() == {"Data": [], "Status": "Failed"}


def test_get_deliveries_by_campaign_lists_numbers_as_strings() -> None:
    """The campaign report lists each number as a 10-digit string with its delivery."""
    sim = make_sim(blacklist=["09129999999"])
    sim.delivery_codes_by_number["9122222222"] = 35
    with client(sim) as http:
        send(http, [("09121111111", "a"), ("09122222222", "a"), ("09129999999", "a")])
        report = http.post("/GetDeliveriesByCampaignID", data={"CampaignID": FIRST_CAMPAIGN_ID})
        unknown = http.post("/GetDeliveriesByCampaignID", data={"CampaignID": "0"})
        other = http.post("/GetDeliveriesByCampaignID", data={"CampaignID": "999"})
    data = report.json()
    assert data["Status"] == "Success"
    assert [
        (i["Number"], i["MessageID"], i["DeliveryType"], i["Status"]) for i in data["Data"]
    ] == [
        ("9121111111", FIRST_MESSAGE_ID, 1, "Success"),
        ("9122222222", FIRST_MESSAGE_ID + 1, 35, "Success"),
    ]
    assert unknown.json() == {"Data": [], "Status": "BulkID_Invalid"}
    assert other.json() == {"Data": [], "Status": "BulkID_Invalid"}


def test_get_delivery_answers_one_message() -> None:
    """GetDelivery answers one Data object; an unknown ID is Failed, a malformed one invalid."""
    sim = make_sim()
    with client(sim) as http:
        send(http, [("09121111111", "a")], send_at="2020-01-01 12:00:00")
        found = http.post("/GetDelivery", data={"MessageID": FIRST_MESSAGE_ID}).json()
        unknown = http.post("/GetDelivery", data={"MessageID": "5"}).json()
        malformed = http.post("/GetDelivery", data={"MessageID": "x"}).json()
    assert found == {
        "Status": "Success",
        "Data": {
            "MessageID": FIRST_MESSAGE_ID,
            "DeliveryType": 1,
            "Cost": 0,
            "RegDateTime": "2025-10-21T15:00:00.123",
            "SendDateTime": "2025-10-21T15:00:00",  # a past schedule is sent on arrival
        },
    }
    assert unknown == {"Data": None, "Status": "Failed"}
    assert malformed == {"Data": None, "Status": "MessageID_Invalid"}


def test_registration_time_is_tehran_local_time() -> None:
    """An aware clock is shown as naive Asia/Tehran time, whatever zone it is in."""
    sim = AmootSimulator(clock=lambda: datetime(2025, 10, 21, 11, 30, tzinfo=UTC))
    with client(sim) as http:
        send(http, [("09121111111", "a")])
        found = http.post("/GetDelivery", data={"MessageID": FIRST_MESSAGE_ID}).json()
    assert found["Data"]["RegDateTime"] == "2025-10-21T15:00:00.000"


def test_an_unknown_method_is_an_html_404_and_get_is_405() -> None:
    """Unknown paths get IIS's HTML 404; a known method by GET is refused (POST only)."""
    sim = make_sim()
    with client(sim) as http:
        missing = http.post("/SendPeer2Peer")
        outside = http.post("https://portal.amootsms.com/api/SendPeerToPeer")
        by_get = http.get("/AccountStatus")
    assert missing.status_code == 404
    assert "404 - File or directory not found." in missing.text
    assert outside.status_code == 404
    assert by_get.status_code == 405


def test_requests_are_recorded_without_the_token() -> None:
    """`requests` keeps each method, its headers minus Authorization, and the parsed body."""
    sim = make_sim()
    with client(sim) as http:
        send(http, [("09121111111", "hi")])
        http.post("/GetDeliveries", data={"ListMessageID": "1,2"})
        http.post("/AccountStatus")
    first, second, third = sim.requests
    assert first.method == "SendPeerToPeer"
    assert first.body == p2p([("09121111111", "hi")])
    assert "authorization" not in first.headers
    assert first.headers["content-type"] == "application/json"
    assert SANDBOX_TOKEN not in repr(sim.requests)
    assert second.body == {"ListMessageID": "1,2"}
    assert third.body is None


def test_concurrent_sends_from_threads_get_unique_ids_and_exact_credit() -> None:
    """Requests posted from many threads at once never share an ID or lose a charge."""
    sim = make_sim()
    with client(sim) as http, ThreadPoolExecutor(8) as pool:
        numbers = [f"0912{i:07d}" for i in range(1, 121)]
        chunks = [numbers[i : i + 3] for i in range(0, len(numbers), 3)]
        answers = list(pool.map(lambda chunk: send(http, [(n, PERSIAN) for n in chunk]), chunks))
        remaining = credit(http)
    assert all(a.json()["Status"] == "Success" for a in answers)
    assert sorted(a.message_id for a in sim.accepted) == list(
        range(FIRST_MESSAGE_ID, FIRST_MESSAGE_ID + 120)
    )
    assert sorted(a.number for a in sim.accepted) == sorted(n[1:] for n in numbers)
    assert remaining == START_CREDIT - 120 * 1000


def test_an_async_client_works_through_the_same_handler() -> None:
    """`sim.handle` also serves httpx.AsyncClient through MockTransport, faults included."""
    sim = make_sim()
    sim.faults.append(Fault("drop_after"))

    async def scenario() -> tuple[str, str]:
        async with httpx.AsyncClient(
            transport=httpx.MockTransport(sim.handle),
            base_url="https://portal.amootsms.com/rest",
            headers={"Authorization": SANDBOX_TOKEN},
        ) as http:
            try:
                await http.post("/SendPeerToPeer", json=p2p([("09121111111", "a")]))
            except httpx.RemoteProtocolError as exc:
                dropped = type(exc).__name__
            answer = await http.post("/SendPeerToPeer", json=p2p([("09121111111", "a")]))
            return dropped, answer.json()["Status"]

    assert asyncio.run(scenario()) == ("RemoteProtocolError", "Success")
    assert len(sim.accepted) == 2


# --- over a real socket ------------------------------------------------------------------------


def socket_client(server: SandboxServer, timeout: float = 5.0) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url, headers={"Authorization": SANDBOX_TOKEN}, timeout=timeout
    )


def test_the_socket_server_answers_what_the_simulator_decides(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Over 127.0.0.1 the answers are the in-process ones, and nothing is logged to stderr."""
    sim = make_sim(number_style="leading_zero_literal")
    with SandboxServer(sim) as server, socket_client(server) as http:
        assert re.fullmatch(r"http://127\.0\.0\.1:[0-9]+/rest", server.base_url)
        answer = send(http, [("09121111111", "سلام")])
        missing = http.post("/Nope")
    assert answer.status_code == 200
    assert '"Number": 09121111111' in answer.text
    assert "سلام" in answer.text
    assert missing.status_code == 404
    assert [a.number for a in sim.accepted] == ["9121111111"]
    assert capfd.readouterr().err == ""


def test_socket_http_status_fault_sends_the_status_and_retry_after() -> None:
    """A scripted 429 with Retry-After reaches the client over the wire."""
    sim = make_sim()
    sim.faults.append(Fault("http_status", http_status=429, retry_after="7"))
    with SandboxServer(sim) as server, socket_client(server) as http:
        answer = send(http, [("09121111111", "hi")])
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"
    assert sim.accepted == []


def test_socket_drop_before_breaks_the_connection_and_accepts_nothing() -> None:
    """drop_before reads the request, resets the connection, and processes nothing."""
    sim = make_sim()
    sim.faults.append(Fault("drop_before"))
    with SandboxServer(sim) as server, socket_client(server) as http:
        with pytest.raises(httpx.TransportError):
            send(http, [("09121111111", "hi")])
        assert sim.accepted == []
        assert send(http, [("09122222222", "hi")]).json()["Status"] == "Success"
    assert [a.number for a in sim.accepted] == ["9122222222"]


def test_socket_drop_after_breaks_the_connection_after_accepting() -> None:
    """drop_after processes the request, then resets the connection without an answer."""
    sim = make_sim()
    sim.faults.append(Fault("drop_after"))
    with (
        SandboxServer(sim) as server,
        socket_client(server) as http,
        pytest.raises(httpx.TransportError),
    ):
        send(http, [("09121111111", "hi")])
    assert [a.number for a in sim.accepted] == ["9121111111"]


def test_socket_slow_after_times_out_a_short_client_after_accepting() -> None:
    """slow_after processes, then waits: a client with a short timeout gets ReadTimeout.

    Leaving the server wakes the waiting answer, so the test never waits the delay.
    """
    sim = make_sim()
    sim.faults.append(Fault("slow_after", delay=30))
    started = time.monotonic()
    with (
        SandboxServer(sim) as server,
        socket_client(server, timeout=0.05) as http,
        pytest.raises(httpx.ReadTimeout),
    ):
        send(http, [("09121111111", "hi")])
    assert time.monotonic() - started < 10
    assert [a.number for a in sim.accepted] == ["9121111111"]


def test_socket_slow_after_within_the_timeout_still_answers() -> None:
    """A slow answer that beats the client's timeout arrives whole."""
    sim = make_sim()
    sim.faults.append(Fault("slow_after", delay=0.005))
    with SandboxServer(sim) as server, socket_client(server) as http:
        answer = send(http, [("09121111111", "hi")])
    assert answer.json()["Status"] == "Success"


def test_socket_trickle_writes_the_processed_answer_a_byte_at_a_time() -> None:
    """trickle processes the request, then sends status line, headers and body one byte per
    `delay`: a patient client gets the whole answer, and the connection stays usable."""
    sim = make_sim()
    sim.faults.append(Fault("trickle", delay=0.002))
    with SandboxServer(sim) as server, socket_client(server) as http:
        started = time.monotonic()
        answer = send(http, [("09121111111", "hi")])
        took = time.monotonic() - started
        assert answer.json()["Status"] == "Success"
        assert took > 0.002 * len(answer.content)  # the body alone, a byte per delay
        assert send(http, [("09122222222", "hi")]).json()["Status"] == "Success"
    assert [a.number for a in sim.accepted] == ["9121111111", "9122222222"]


@pytest.mark.parametrize("status", [302, 307])
def test_socket_redirect_fault_points_elsewhere_and_is_not_followed(status: int) -> None:
    """A 3xx fault carries a Location (a path the fake does not serve); with process=True the
    messages were accepted first. httpx does not follow it unless asked."""
    sim = make_sim()
    sim.faults.append(Fault("http_status", http_status=status, process=True))
    with SandboxServer(sim) as server, socket_client(server) as http:
        answer = send(http, [("09121111111", "hi")])
    assert answer.status_code == status
    assert answer.headers["Location"] == MOVED
    assert [r.method for r in sim.requests] == ["SendPeerToPeer"]
    assert [a.number for a in sim.accepted] == ["9121111111"]


def test_the_command_line_server_prints_its_base_url_and_serves() -> None:
    """`python -m pipeline.sandbox_server --port 0` prints the base URL and answers on it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.sandbox_server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:[0-9]+/rest", base_url)
        with httpx.Client(base_url=base_url, headers={"Authorization": SANDBOX_TOKEN}) as http:
            answer = send(http, [("09120000000", "hi"), ("09121111111", "hi")]).json()
        assert answer["Data"]["FailedCount"] == 1  # the shipped blacklist rule is on
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert err == ""


@settings(max_examples=300)
@given(
    st.text(
        alphabet=st.sampled_from([*"aZ09 @€^{}[]~|\\\n", "س", "ی", "ک", "😀", "۲"]),
        max_size=400,
    )
)
def test_fake_counts_pages_as_the_pipeline_does(text: str) -> None:
    """The fake's own page count (kept apart from pipeline.segments on purpose, so each checks
    the other) agrees with the pipeline's for any mix of GSM-7, extension, Persian and emoji."""
    assert fake_pages(text) == count_pages(text).pages


# --- latency (benchmarks) and the long-lived server's memory -------------------------------


def test_latency_counts_from_the_requests_arrival_its_processing_included() -> None:
    """--latency 1 means the answer leaves 1 s after the request came in: the fake's own
    processing (on the cores it shares with the pipeline it measures) is part of it."""
    # Arrival at 10.0; the processing "took" 0.9 s, then 1.5 s (longer than the latency).
    ticks = iter([10.0, 10.9, 20.0, 21.5])
    server = SandboxServer(make_sim(), latency=1.0, monotonic=lambda: next(ticks))
    held = []
    with server, httpx.Client(base_url=server.base_url, timeout=10) as http:
        for _ in range(2):
            start = time.perf_counter()
            answer = http.post(
                "/SendPeerToPeer",
                json=p2p([("09120000001", PERSIAN)]),
                headers={"Authorization": SANDBOX_TOKEN},
            )
            held.append(time.perf_counter() - start)
            assert answer.json()["Status"] == "Success"
    assert 0.1 <= held[0] < 0.6  # the 0.1 s left of the latency, not the whole second
    assert held[1] < 0.5  # nothing left to wait


def test_latency_holds_each_answer_that_long() -> None:
    server = SandboxServer(make_sim(), latency=0.3)
    with server, httpx.Client(base_url=server.base_url, timeout=10) as http:
        start = time.perf_counter()
        http.post("/AccountStatus", headers={"Authorization": SANDBOX_TOKEN})
        assert time.perf_counter() - start >= 0.3


def test_without_history_the_answers_are_the_same() -> None:
    """The socket server keeps no history (remember=False); its answers must not change."""
    items = [("09120000001", "a"), ("9120000002", "b"), ("+989120000003", "a"), ("0912", "c")]
    remembering, forgetful = make_sim(), make_sim(remember=False)
    with client(remembering) as left, client(forgetful) as right:
        for _ in range(2):  # IDs keep counting across requests in both
            assert send(left, items).content == send(right, items).content
    assert len(remembering.accepted) == 6 and not forgetful.accepted
