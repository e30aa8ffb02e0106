"""The simulator's read-only methods: AccountStatus and the delivery reports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from pipeline.sandbox_send import FIRST_MESSAGE_ID
from pipeline.sandbox_wire import TARIFFS, Reply, error, form, json_reply, positive_int

if TYPE_CHECKING:
    from pipeline.sandbox import AmootSimulator

AVANAK_SECOND_PRICE = 23
_NEVER = "0001-01-01T00:00:00"  # .NET's default DateTime, what the server shows for "no time"


def account_status(sim: AmootSimulator, request: httpx.Request) -> Reply:
    return json_reply(
        {
            "Status": "Success",
            "AccountName": sim.account_name,
            "RemaindCredit": sim.credit_rials,
            **TARIFFS,
            "Avanak_SecondPrice": AVANAK_SECOND_PRICE,
            "ListLineNumbers": list(sim.line_numbers),
        }
    )


def get_delivery(sim: AmootSimulator, request: httpx.Request) -> Reply:
    message_id = positive_int(form(request).get("MessageID", ""))
    if message_id is None:
        return json_reply(error("GetDelivery", "MessageID_Invalid"))
    if message_id not in sim.sent:
        return json_reply(error("GetDelivery", "Failed"))
    return json_reply({"Status": "Success", "Data": _delivery(sim, message_id)})


def get_deliveries(sim: AmootSimulator, request: httpx.Request) -> Reply:
    parts = form(request).get("ListMessageID", "").split(",")
    ids = [positive_int(part.strip()) for part in parts]
    if not any(ids) or None in ids:
        return json_reply(error("GetDeliveries", "Failed"))
    data = [_delivery_item(sim, i) for i in ids if i is not None]
    return json_reply({"Status": "Success", "Data": data})


def get_deliveries_by_campaign(sim: AmootSimulator, request: httpx.Request) -> Reply:
    campaign_id = positive_int(form(request).get("CampaignID", ""))
    if campaign_id is None or campaign_id not in sim.campaigns:
        return json_reply(error("GetDeliveriesByCampaignID", "BulkID_Invalid"))
    data = [
        {"Number": sim.sent[i].accepted.number, **_delivery(sim, i), "Status": "Success"}
        for i in sim.campaigns[campaign_id]
    ]
    return json_reply({"Status": "Success", "Data": data})


def _delivery_item(sim: AmootSimulator, message_id: int) -> dict[str, Any]:
    if message_id in sim.sent:
        return {**_delivery(sim, message_id), "Status": "Success"}
    if sim.forgotten_delivery is not None and message_id >= FIRST_MESSAGE_ID:
        now = sim.clock().strftime("%Y-%m-%dT%H:%M:%S.000")
        return {
            "MessageID": message_id,
            "DeliveryType": sim.forgotten_delivery,
            "Cost": 0,
            "RegDateTime": now,
            "SendDateTime": now,
            "Status": "Success",
        }
    return {
        "MessageID": message_id,
        "DeliveryType": 0,  # a zero-initialised .NET object: only its Status tells the truth
        "Cost": 0,
        "RegDateTime": _NEVER,
        "SendDateTime": _NEVER,
        "Status": "MessageID_Invalid",
    }


def _delivery(sim: AmootSimulator, message_id: int) -> dict[str, Any]:
    sent = sim.sent[message_id]
    code = sim.delivery_overrides.get(
        message_id, sim.delivery_codes_by_number.get(sent.accepted.number, 1)
    )
    return {
        "MessageID": message_id,
        "DeliveryType": code,
        "Cost": 0,  # the docs say Cost is always 0 in this implementation
        "RegDateTime": sent.reg_datetime,
        "SendDateTime": sent.send_datetime,
    }
