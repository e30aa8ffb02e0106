"""Delivery reports: the DeliveryType table, GetDeliveries answers, the lookup loop in-process."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.amoot import Kind, SendReply, read_deliveries
from pipeline.deliveries import (
    DELIVERY_TYPES,
    FINAL_DELIVERIES,
    SUPPRESS_CODES,
    Delivery,
    DeliveryReport,
    check_deliveries,
    delivery_type,
)
from pipeline.errors import InputError, ProviderFatal
from pipeline.journal import Journal, State
from pipeline.models import Message, Outcome, Status
from pipeline.sandbox import AmootSimulator, Fault
from pipeline.send import Sender
from pipeline.suppression import Suppression, load_suppression
from tests.conftest import SEND_MOMENT as MOMENT
from tests.conftest import FakeSleep
from tests.conftest import make_sender as shared_sender

TOKEN = "deliveries-token-7c1e"

# amoot-api.md §4, written out again so that a change to the module's table shows up here.
EXPECTED = {
    0: ("SendToTci", "pending", False),
    1: ("RecievedPhone", "delivered", True),
    2: ("NotRecievedPhone", "not_delivered", True),
    3: ("TciError", "not_delivered", True),
    5: ("UnknownError", "not_delivered", True),
    8: ("TciReceived", "pending", False),
    16: ("NotTciReceived", "not_delivered", True),
    35: ("BlackList", "blacklisted", True),
    100: ("Unknown", "unknown", False),
    200: ("Sent", "pending", False),
    300: ("Filtered", "filtered", True),
    400: ("SendingList", "pending", False),
    500: ("NoReceipt", "not_delivered", True),
    501: ("SendWithAvanak", "delivered", True),
    502: ("SendWithBackupVtel", "delivered", True),
    900: ("SendingQueue", "pending", False),
    950: ("WrongNumber", "wrong_number", True),
    951: ("EmptyMessage", "not_delivered", True),
    952: ("ShortCodeInvalid", "wrong_number", True),
}


def make_sender(sim: AmootSimulator, **kwargs: Any) -> tuple[Sender, FakeSleep]:
    return shared_sender(sim, token=TOKEN, **kwargs)


def numbers(count: int) -> list[str]:
    return [f"0912{n:07d}" for n in range(1, count + 1)]


def send_all(sim: AmootSimulator, journal: Journal, to: Sequence[str]) -> dict[str, str]:
    """Send one message to each number through the simulator and journal it: number -> ID."""
    sender, _ = make_sender(sim)
    messages = [Message(i, number, f"سلام {i}") for i, number in enumerate(to, 1)]
    journal.mark_inflight([(m.number, m.text) for m in messages])
    result = sender.send(messages, {m.row: 1 for m in messages})
    journal.record([(m.number, result.outcomes[m.row]) for m in messages])
    assert {o.status for o in result.outcomes.values()} == {Status.SENT}
    return {m.number: result.outcomes[m.row].message_id for m in messages}


def asked(sim: AmootSimulator, since: int = 0) -> list[list[str]]:
    """The ID lists of the GetDeliveries requests the simulator received, in order."""
    return [
        r.body["ListMessageID"].split(",")
        for r in sim.requests[since:]
        if r.method == "GetDeliveries"
    ]


@pytest.fixture
def sim() -> AmootSimulator:
    return AmootSimulator(token=TOKEN)


@pytest.fixture
def journal(tmp_path: Path):
    with Journal.open(tmp_path / "journal.sqlite", "spring") as opened:
        yield opened


@pytest.fixture
def suppression(tmp_path: Path) -> Suppression:
    return load_suppression(tmp_path / "suppression.txt", "suppression.txt")


def ten_digits(number: str) -> str:
    return number[1:]


# --- the table ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_every_delivery_type_has_its_documented_class_and_finality(code):
    """Each DeliveryType of amoot-api.md §4 maps to its name, delivery class and finality."""
    meaning = delivery_type(code)
    assert (meaning.name, meaning.delivery.value, meaning.final) == EXPECTED[code]


def test_the_table_holds_exactly_the_documented_codes():
    """No code was left out of the table and none was invented."""
    assert set(DELIVERY_TYPES) == set(EXPECTED)


def test_blacklisted_and_wrong_numbers_are_the_codes_to_suppress():
    """35, 950 and 952 (blacklisted, wrong number) are suppressed, and only those."""
    assert {35, 950, 952} == SUPPRESS_CODES
    suppressed_classes = {"blacklisted", "wrong_number"}
    assert {c for c, (_, cls, _) in EXPECTED.items() if cls in suppressed_classes} == SUPPRESS_CODES


@settings(max_examples=200)
@given(st.integers(min_value=-(2**63), max_value=2**63))
def test_any_code_has_a_meaning_and_unlisted_ones_stay_open(code):
    """Every integer has a meaning; one the table lacks is unknown and asked about again."""
    meaning = delivery_type(code)
    assert meaning.final == (meaning.delivery in FINAL_DELIVERIES)
    if code not in EXPECTED:
        assert (meaning.delivery, meaning.final) == (Delivery.UNKNOWN, False)
        assert str(code) in meaning.name


def test_rate_counts_only_final_deliveries():
    """The rate is delivered over final rows; pending and unknown rows are not in it."""
    counts = {"delivered": 3, "not_delivered": 1, "blacklisted": 1, "pending": 7, "unknown": 2}
    report = DeliveryReport(0, Counter(counts), 0, None, 9)
    assert report.rate == pytest.approx(3 / 5)
    assert DeliveryReport(0, Counter({"pending": 4}), 0, None, 4).rate is None


# --- the reader --------------------------------------------------------------------------------


def body(payload: object) -> bytes:
    return json.dumps(payload).encode()


def item(message_id: object, code: object, status: object = "Success") -> dict[str, object]:
    return {
        "MessageID": message_id,
        "DeliveryType": code,
        "Cost": 0,
        "RegDateTime": "2025-10-25T15:16:59.590",
        "SendDateTime": "2025-10-25T15:16:59.590",
        "Status": status,
    }


def test_reader_takes_the_documented_success_answer():
    """`Data[]` items with Status Success give DeliveryType by message ID (as text)."""
    answer = {"Status": "Success", "Data": [item(123, 1), item(124, 2), item(125, 35)]}
    assert read_deliveries(body(answer)) == {"123": 1, "124": 2, "125": 35}


def test_reader_leaves_items_whose_lookup_failed():
    """An item whose own Status is not Success (MessageID_Invalid) is left for the next call,
    even though it carries a DeliveryType (0, a zero-initialised object)."""
    answer = {
        "Status": "Success",
        "Data": [
            item(123, 1),
            item(7, 0, "MessageID_Invalid"),
            item(8, 1, 111),  # the same title as its integer code
            item(9, 1, "Failed"),
        ],
    }
    assert read_deliveries(body(answer)) == {"123": 1}


@pytest.mark.parametrize("status", [1, "1", "Success", " Success "])
def test_reader_accepts_the_item_status_as_title_or_code(status):
    """The item Status may come as the title or as its integer code, a number or digits."""
    answer = {"Status": 1, "Data": [item(123, 35, status)]}
    assert read_deliveries(body(answer)) == {"123": 35}


def test_reader_accepts_ids_and_codes_sent_as_digits():
    """MessageID and DeliveryType sent as strings of digits read as the same numbers."""
    answer = {"Status": "Success", "Data": [item("123", "950"), item(" 124", 1)]}
    assert read_deliveries(body(answer)) == {"123": 950, "124": 1}


def test_reader_skips_items_without_usable_fields():
    """Items without a positive MessageID or an integer DeliveryType are left open."""
    answer = {
        "Status": "Success",
        "Data": [
            item(None, 1),
            item(0, 1),
            item(125, None),
            item(126, "x"),
            item(127, True),
            "junk",
            {"MessageID": 128, "DeliveryType": 1},  # no Status: the lookup is not confirmed
            item(129, 200),
        ],
    }
    assert read_deliveries(body(answer)) == {"129": 200}


@pytest.mark.parametrize(
    ("payload", "kind", "title"),
    [
        ({"Status": "Failed", "Data": []}, Kind.RETRY, "Failed"),
        ({"Status": "Token_Expired", "Data": []}, Kind.FATAL, "Token_Expired"),
        ({"Status": -204, "Data": []}, Kind.FATAL, "Token_Expired"),
        ({"Status": "ServerError", "Data": []}, Kind.AMBIGUOUS, "ServerError"),
        ({"Status": "Brand_New_Title", "Data": []}, Kind.AMBIGUOUS, "Brand_New_Title"),
        ({"Status": "MessageID_Invalid", "Data": []}, Kind.RECIPIENT, "MessageID_Invalid"),
    ],
)
def test_reader_classifies_a_top_level_title(payload, kind, title):
    """A non-Success top-level Status is classified like any other title (code or text)."""
    assert read_deliveries(body(payload)) == SendReply(kind, title)


@pytest.mark.parametrize(
    "raw",
    [
        b"<html><body>Runtime Error</body></html>",
        b"",
        body([item(1, 1)]),
        body({"Status": "Success", "Data": None}),
    ],
)
def test_reader_calls_an_unreadable_answer_ambiguous(raw):
    """HTML, an empty body, a bare list or Success without Data are ambiguous (retried)."""
    reply = read_deliveries(raw)
    assert isinstance(reply, SendReply) and reply.kind is Kind.AMBIGUOUS


def test_reader_tolerates_a_byte_order_mark():
    """A UTF-8 BOM before the JSON does not make the answer unreadable."""
    raw = b"\xef\xbb\xbf" + body({"Status": "Success", "Data": [item(5, 8)]})
    assert read_deliveries(raw) == {"5": 8}


def test_reader_leaves_out_ids_and_codes_written_in_other_digits():
    """Arabic-Indic or Persian digits are no MessageID or DeliveryType: read as ASCII, "١٢"
    would tie a report to message 12."""
    answer = {
        "Status": "Success",
        "Data": [item("١٢", 1), item(13, "۱"), item("۱۴", "۲"), item(15, "1")],
    }
    assert read_deliveries(body(answer)) == {"15": 1}


# --- Sender.get_deliveries ---------------------------------------------------------------------


def test_get_deliveries_posts_the_id_list_as_a_form(sim, journal):
    """One POST to GetDeliveries, form-encoded `ListMessageID=1,2,3` with literal commas; only
    the IDs asked about come back, and one the provider does not know is left out."""
    ids = list(send_all(sim, journal, numbers(2)).values())
    raw: list[httpx.Request] = []
    sender, _ = make_sender(sim, raw=raw)
    sim.delivery_codes_by_number[ten_digits(numbers(2)[1])] = 35
    found = sender.get_deliveries([*ids, "424242"])
    assert found == {ids[0]: 1, ids[1]: 35}
    assert len(raw) == 1
    assert raw[0].url.path == "/rest/GetDeliveries"
    assert raw[0].headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert raw[0].headers["Authorization"] == TOKEN
    assert raw[0].content == f"ListMessageID={ids[0]},{ids[1]},424242".encode()


def test_get_deliveries_of_nothing_asks_nothing(sim):
    """An empty ID list sends no request (the provider answers Failed to an empty list)."""
    sender, _ = make_sender(sim)
    assert sender.get_deliveries([]) == {}
    assert sim.requests == []


@pytest.mark.parametrize(
    "fault",
    [
        Fault(kind="http_status", method="GetDeliveries", http_status=503, retry_after="4"),
        Fault(kind="http_status", method="GetDeliveries", http_status=429, retry_after="4"),
        Fault(kind="drop_after", method="GetDeliveries"),
        Fault(kind="slow_after", method="GetDeliveries"),
        Fault(kind="html", method="GetDeliveries"),
        Fault(kind="http_status", method="GetDeliveries", http_status=502),
        Fault(kind="title", method="GetDeliveries", title="ServerError"),
        Fault(kind="title", method="GetDeliveries", title="Failed"),
    ],
    ids=lambda f: f"{f.kind}-{f.http_status}-{f.title}",
)
def test_get_deliveries_retries_what_would_be_unknown_for_a_send(sim, journal, fault):
    """A lookup changes nothing, so a busy, dropped, slow or garbled answer is simply asked
    again (Retry-After honoured) and the second answer counts."""
    ids = list(send_all(sim, journal, numbers(1)).values())
    sender, sleep = make_sender(sim)
    sim.faults.append(fault)
    assert sender.get_deliveries(ids) == {ids[0]: 1}
    assert len(asked(sim)) == 2
    if fault.retry_after:
        assert 4.0 in sleep.calls  # then the throttle's shared pause, on the real clock


def test_get_deliveries_raises_a_fatal_title_without_retrying(sim, journal):
    """A fatal title raises ProviderFatal (exit 3) naming the title and the fix, at once."""
    ids = list(send_all(sim, journal, numbers(1)).values())
    sender, sleep = make_sender(sim)
    sim.faults.append(Fault(kind="title", method="GetDeliveries", title="Token_Expired"))
    with pytest.raises(ProviderFatal) as caught:
        sender.get_deliveries(ids)
    assert caught.value.title == "Token_Expired" and caught.value.exit_code == 3
    assert "APIToken" in str(caught.value) and TOKEN not in str(caught.value)
    assert len(asked(sim)) == 1 and sleep.calls == []


def test_get_deliveries_gives_up_after_max_attempts(sim, journal):
    """A provider that stays unreachable raises ProviderFatal after max_attempts tries."""
    ids = list(send_all(sim, journal, numbers(1)).values())
    sender, sleep = make_sender(sim, max_attempts=3)
    sim.faults.extend(Fault(kind="drop_before", method="GetDeliveries") for _ in range(3))
    with pytest.raises(ProviderFatal, match="after 3 attempts"):
        sender.get_deliveries(ids)
    assert len(asked(sim)) == 3 and len(sleep.calls) == 2


def test_get_deliveries_learns_nothing_from_a_top_level_recipient_title(sim, journal):
    """A list-level MessageID_Invalid answers nothing for the batch: not retried, not fatal."""
    ids = list(send_all(sim, journal, numbers(1)).values())
    sender, _ = make_sender(sim)
    sim.faults.append(Fault(kind="title", method="GetDeliveries", title="MessageID_Invalid"))
    assert sender.get_deliveries(ids) == {}
    assert len(asked(sim)) == 1


# --- check_deliveries --------------------------------------------------------------------------

CODES = [1, 2, 0, 200, 35, 950, 952, 300, 100, 777]  # one row each, in number order


def test_second_call_asks_only_about_what_is_not_final(sim, journal, suppression):
    """Each row gets its class and raw code; blacklisted and wrong numbers join the
    suppression list; the next call asks only about pending and unknown rows, and once
    every row is final no request is sent at all."""
    to = numbers(len(CODES))
    for number, code in zip(to, CODES, strict=True):
        sim.delivery_codes_by_number[ten_digits(number)] = code
    ids = send_all(sim, journal, to)
    sender, _ = make_sender(sim)

    first = check_deliveries(
        journal, sender.get_deliveries, batch_size=3, suppression=suppression, clock=lambda: MOMENT
    )
    assert [len(batch) for batch in asked(sim)] == [3, 3, 3, 1]
    assert sorted(i for batch in asked(sim) for i in batch) == sorted(ids.values())
    assert (first.checked, first.suppressed_added, first.stopped, first.still_open) == (
        10,
        3,
        None,
        4,
    )
    assert first.counts == {
        "delivered": 1,
        "not_delivered": 1,
        "pending": 2,
        "blacklisted": 1,
        "wrong_number": 2,
        "filtered": 1,
        "unknown": 2,
    }
    assert first.rate == pytest.approx(1 / 6)
    entries = journal.lookup(to)
    assert [(entries[n].delivery, entries[n].delivery_code) for n in to] == [
        ("delivered", "1"),
        ("not_delivered", "2"),
        ("pending", "0"),
        ("pending", "200"),
        ("blacklisted", "35"),
        ("wrong_number", "950"),
        ("wrong_number", "952"),
        ("filtered", "300"),
        ("unknown", "100"),
        ("unknown", "777"),
    ]
    assert {e.state for e in entries.values()} == {State.SENT}
    assert load_suppression(suppression.path, "s").numbers == {to[4], to[5], to[6]}
    lines = suppression.path.read_text(encoding="utf-8").splitlines()
    assert f"{to[4]}  # delivery report BlackList (35), 2026-03-21 00:00 Tehran" in lines

    seen = len(sim.requests)
    second = check_deliveries(
        journal, sender.get_deliveries, batch_size=3, suppression=suppression, clock=lambda: MOMENT
    )
    open_ids = [ids[to[i]] for i in (2, 3, 8, 9)]
    assert asked(sim, seen) == [open_ids[:3], open_ids[3:]]
    assert (second.checked, second.suppressed_added, second.still_open) == (4, 0, 4)
    assert second.counts == first.counts

    for message_id in open_ids:
        sim.set_delivery(int(message_id), 1)
    third = check_deliveries(
        journal, sender.get_deliveries, batch_size=3, suppression=suppression, clock=lambda: MOMENT
    )
    assert (third.checked, third.still_open, third.counts["delivered"]) == (4, 0, 5)
    assert third.rate == pytest.approx(5 / 10)
    assert journal.awaiting_delivery() == []

    seen = len(sim.requests)
    fourth = check_deliveries(
        journal, sender.get_deliveries, batch_size=3, suppression=suppression, clock=lambda: MOMENT
    )
    assert sim.requests[seen:] == []
    assert (fourth.checked, fourth.still_open, fourth.counts) == (0, 0, third.counts)


def test_items_the_provider_cannot_look_up_stay_open(sim, journal, suppression):
    """A sent row whose ID the provider answers MessageID_Invalid for stays unclassified and
    is asked about again; a row without a usable ID is never put in a request."""
    a, b, c, d = numbers(4)
    ids = send_all(sim, journal, [a])
    journal.mark_inflight([(b, "x"), (c, "y"), (d, "z")])
    journal.record(
        [
            (b, Outcome(Status.SENT, message_id="99999999", campaign_id="1")),
            (c, Outcome(Status.SENT, message_id="", campaign_id="1")),
            (d, Outcome(Status.SENT, message_id="abc", campaign_id="1")),
        ]
    )
    sender, _ = make_sender(sim)
    report = check_deliveries(
        journal, sender.get_deliveries, suppression=suppression, clock=lambda: MOMENT
    )
    assert asked(sim) == [[ids[a], "99999999"]]
    assert (report.checked, report.still_open) == (1, 2)  # b and d; c has no ID at all
    assert report.counts == {"delivered": 1}
    entries = journal.lookup([b, d])
    assert (entries[b].delivery, entries[b].delivery_code) == ("", "")
    assert [e.number for e in journal.awaiting_delivery()] == [b, d]
    assert journal.delivery_counts() == {"delivered": 1, "": 3}


def test_a_fatal_title_mid_lookup_stops_and_keeps_what_was_learnt(sim, journal, suppression):
    """A fatal title on the second batch stops the check without raising: the first batch is
    recorded (suppression too), nothing more is asked, and the next call resumes there."""
    to = numbers(5)
    sim.delivery_codes_by_number[ten_digits(to[0])] = 35
    ids = send_all(sim, journal, to)
    sender, _ = make_sender(sim)

    def lookup(message_ids: Sequence[str]) -> dict[str, int]:
        found = sender.get_deliveries(message_ids)
        sim.status_override = "Token_Expired"  # the token expires between two batches
        return found

    report = check_deliveries(
        journal, lookup, batch_size=2, suppression=suppression, clock=lambda: MOMENT
    )
    assert report.stopped is not None and report.stopped.title == "Token_Expired"
    assert len(asked(sim)) == 2  # the fatal answer is not retried, the third batch not asked
    assert (report.checked, report.still_open, report.suppressed_added) == (2, 3, 1)
    assert report.counts == {"blacklisted": 1, "delivered": 1}
    assert to[0] in load_suppression(suppression.path, "s")

    sim.status_override = None
    seen = len(sim.requests)
    resumed = check_deliveries(
        journal, sender.get_deliveries, batch_size=2, suppression=suppression, clock=lambda: MOMENT
    )
    assert asked(sim, seen) == [[ids[to[2]], ids[to[3]]], [ids[to[4]]]]
    assert (resumed.stopped, resumed.still_open, resumed.counts["delivered"]) == (None, 0, 4)


def test_an_unreachable_provider_stops_the_check_after_its_attempts(sim, journal, suppression):
    """When every attempt of a batch fails to connect, the check stops with the reason."""
    send_all(sim, journal, numbers(2))
    sender, _ = make_sender(sim, max_attempts=2)
    sim.faults.extend(Fault(kind="drop_before", method="GetDeliveries") for _ in range(2))
    report = check_deliveries(
        journal, sender.get_deliveries, suppression=suppression, clock=lambda: MOMENT
    )
    assert report.stopped is not None and "after 2 attempts" in str(report.stopped)
    assert (report.checked, report.still_open) == (0, 2)


def test_a_503_mid_lookup_is_retried(sim, journal, suppression):
    """A 503 with Retry-After on a batch is waited out and asked again; nothing is lost."""
    to = numbers(4)
    ids = send_all(sim, journal, to)
    sender, sleep = make_sender(sim)
    sim.faults.append(
        Fault(kind="http_status", method="GetDeliveries", http_status=503, retry_after="9")
    )
    report = check_deliveries(
        journal, sender.get_deliveries, batch_size=2, suppression=suppression, clock=lambda: MOMENT
    )
    first, second = [ids[n] for n in to[:2]], [ids[n] for n in to[2:]]
    assert asked(sim) == [first, first, second]
    assert 9.0 in sleep.calls
    assert (report.stopped, report.checked, report.still_open) == (None, 4, 0)


def test_a_set_stop_event_ends_the_check_between_batches(sim, journal, suppression):
    """Ctrl-C between batches: the batch answered is kept, no further batch is asked, and the
    interrupt is not reported as a provider stop."""
    to = numbers(4)
    send_all(sim, journal, to)
    stop = threading.Event()
    sender, _ = make_sender(sim, stop=stop)

    def lookup(message_ids: Sequence[str]) -> dict[str, int]:
        found = sender.get_deliveries(message_ids)
        stop.set()
        return found

    report = check_deliveries(
        journal, lookup, batch_size=2, suppression=suppression, clock=lambda: MOMENT, stop=stop
    )
    assert len(asked(sim)) == 1
    assert (report.stopped, report.checked, report.still_open) == (None, 2, 2)

    seen = len(sim.requests)
    again = check_deliveries(
        journal, sender.get_deliveries, suppression=suppression, clock=lambda: MOMENT, stop=stop
    )
    assert sim.requests[seen:] == []  # a stop already set: not one batch is asked
    assert (again.stopped, again.still_open) == (None, 2)


def test_without_a_suppression_list_rows_are_still_classified(sim, journal, tmp_path):
    """With no suppression list configured, a blacklisted row is recorded and nothing written."""
    to = numbers(1)
    sim.delivery_codes_by_number[ten_digits(to[0])] = 35
    send_all(sim, journal, to)
    sender, _ = make_sender(sim)
    report = check_deliveries(
        journal, sender.get_deliveries, suppression=None, clock=lambda: MOMENT
    )
    assert (report.counts, report.suppressed_added, report.rate) == ({"blacklisted": 1}, 0, 0.0)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("journal")) == []


def test_a_failed_suppression_write_leaves_the_row_to_ask_again(sim, journal, tmp_path):
    """If the suppression list cannot be written, the blacklisted row is not made final, so
    the next call asks about it (and lists it) again: the opt-out is never lost."""
    to = numbers(2)
    sim.delivery_codes_by_number[ten_digits(to[1])] = 950
    send_all(sim, journal, to)
    sender, _ = make_sender(sim)
    blocked_path = tmp_path / "folder-not-file"
    blocked_path.mkdir()
    broken = Suppression(blocked_path, set())
    with pytest.raises(InputError, match="cannot add to the suppression list"):
        check_deliveries(journal, sender.get_deliveries, suppression=broken, clock=lambda: MOMENT)
    assert [e.number for e in journal.awaiting_delivery()] == to

    working = load_suppression(tmp_path / "ok.txt", "ok.txt")
    report = check_deliveries(
        journal, sender.get_deliveries, suppression=working, clock=lambda: MOMENT
    )
    assert (report.suppressed_added, report.still_open) == (1, 0)
    assert working.numbers == {to[1]}


def test_other_campaigns_are_neither_asked_nor_counted(sim, tmp_path):
    """Only the journal's own campaign is looked up and counted."""
    path = tmp_path / "journal.sqlite"
    with Journal.open(path, "autumn") as other:
        send_all(sim, other, numbers(2))
    with Journal.open(path, "spring") as journal:
        ids = send_all(sim, journal, numbers(3)[2:])
        sender, _ = make_sender(sim)
        report = check_deliveries(
            journal, sender.get_deliveries, suppression=None, clock=lambda: MOMENT
        )
    with Journal.open(path, "autumn") as other:
        assert len(other.awaiting_delivery()) == 2
    assert asked(sim) == [list(ids.values())]
    assert report.counts == {"delivered": 1}


def test_batch_size_must_be_positive(journal):
    """A batch size below one is a caller bug, refused before anything is asked."""
    with pytest.raises(ValueError, match="batch_size"):
        check_deliveries(
            journal, lambda ids: {}, batch_size=0, suppression=None, clock=lambda: MOMENT
        )
