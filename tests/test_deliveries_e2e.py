"""`--deliveries` end to end against the socket-served fake: states, reruns, suppression, stops."""

from __future__ import annotations

from urllib.parse import parse_qs

from pipeline.deliveries import DELIVERY_TYPES
from pipeline.sandbox import AmootSimulator
from pipeline.sandbox_server import SandboxServer
from tests.conftest import Campaign, live_provider, run_cli, run_main

CODES = sorted(DELIVERY_TYPES)


def _numbers(n: int) -> list[str]:
    return [f"0912{i:07d}" for i in range(1, n + 1)]


def _asked(simulator: AmootSimulator) -> list[list[str]]:
    """The message IDs of each GetDeliveries request, in order."""
    asked = []
    for request in simulator.requests:
        if request.method == "GetDeliveries":
            body = request.body
            ids = (
                body["ListMessageID"]
                if isinstance(body, dict)
                else parse_qs(body)["ListMessageID"][0]
            )
            asked.append(str(ids).split(","))
    return asked


def test_every_delivery_type_lands_in_the_report_and_only_open_ones_are_asked_again(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """Send, then --deliveries twice: each DeliveryType maps to its class; the second call
    asks only for the rows whose state was not final."""
    numbers = _numbers(len(CODES))
    campaign.contacts([(n, "نام", "C") for n in numbers])
    for number, code in zip(numbers, CODES, strict=True):
        simulator.delivery_codes_by_number[number[1:]] = code
    # No list: the blacklisted ones stay `already_sent` rows, not `suppressed` ones.
    campaign.write_config(
        live_provider(server, chunk_size=10), extra="suppression:\n  path: null\n"
    )
    sent = run_main(campaign.config)
    assert sent.returncode == 0, sent.stderr
    assert {r["delivery"] for r in campaign.read_report()} == {""}

    first = run_main(campaign.config, "--deliveries")
    assert first.returncode == 0, first.stderr
    report = campaign.read_report()
    for row, code in zip(report, CODES, strict=True):
        assert row["status"] == "already_sent"
        assert row["delivery_code"] == str(code)
        assert row["delivery"] == DELIVERY_TYPES[code].delivery.value, (code, row)
    assert "deliveries (looked up 19 now)" in first.stdout
    assert "rate" in first.stdout
    assert len(simulator.accepted) == len(CODES)  # looking up sends nothing

    second = run_main(campaign.config, "--deliveries")
    assert second.returncode == 0, second.stderr
    codes = simulator.delivery_codes_by_number  # by number: chunks may be accepted in any order
    open_ids = {
        str(a.message_id) for a in simulator.accepted if not DELIVERY_TYPES[codes[a.number]].final
    }
    asked = _asked(simulator)
    assert set(asked[-1]) == open_ids and len(asked[-1]) == len(open_ids)
    assert set().union(*asked[:-1]) == {str(a.message_id) for a in simulator.accepted}


def test_blacklisted_and_wrong_numbers_are_suppressed_in_the_next_campaign(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """DeliveryType 35 / 950 / 952 put the number on the suppression list: the next
    campaign reports it `suppressed` and never sends to it."""
    numbers = _numbers(4)
    campaign.contacts([(n, "نام", "C") for n in numbers])
    simulator.delivery_codes_by_number.update(
        {numbers[0][1:]: 35, numbers[1][1:]: 950, numbers[2][1:]: 952}
    )
    extra = "suppression:\n  path: optout.txt\n"
    campaign.write_config(live_provider(server), extra=extra)
    assert run_main(campaign.config).returncode == 0
    looked = run_main(campaign.config, "--deliveries")
    assert looked.returncode == 0, looked.stderr
    listed = (campaign.folder / "optout.txt").read_text("utf-8")
    assert all(n in listed for n in numbers[:3]) and numbers[3] not in listed

    campaign.write_config(live_provider(server), campaign="next-campaign", extra=extra)
    before = len(simulator.accepted)
    nxt = run_main(campaign.config)
    assert nxt.returncode == 0, nxt.stderr
    assert [r["status"] for r in campaign.read_report()] == ["suppressed"] * 3 + ["sent"]
    assert [a.number for a in simulator.accepted[before:]] == [numbers[3][1:]]


def test_fatal_title_during_lookups_exits_3_and_keeps_what_was_learnt(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """A token that expires mid-lookup: exit 3; batches answered before stay recorded and
    are not asked again; after the fix the rest are looked up."""
    numbers = _numbers(150)  # two GetDeliveries batches of at most 100
    campaign.contacts([(n, "نام", "C") for n in numbers])
    campaign.write_config(live_provider(server, chunk_size=50, concurrency=2))
    assert run_main(campaign.config).returncode == 0

    original = simulator.decide
    lookups = []

    def decide(request):  # the second GetDeliveries meets an expired token
        if request.url.path.endswith("GetDeliveries"):
            lookups.append(request)
            if len(lookups) == 2:
                simulator.status_override = "Token_Expired"
        return original(request)

    simulator.decide = decide  # type: ignore[method-assign]
    stopped = run_main(campaign.config, "--deliveries")
    assert stopped.returncode == 3, stopped.stdout + stopped.stderr
    assert "Token_Expired" in stopped.stderr
    known = [r for r in campaign.read_report() if r["delivery"]]
    assert len(known) == 100  # the first batch was kept

    simulator.status_override = None
    resumed = run_main(campaign.config, "--deliveries")
    assert resumed.returncode == 0, resumed.stderr
    assert all(r["delivery"] == "delivered" for r in campaign.read_report())
    assert len(_asked(simulator)[-1]) == 50  # only what the stopped call had not learnt


def test_deliveries_from_the_command_line(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """`python -m pipeline config.yaml --deliveries` as a subprocess, as cron runs it."""
    campaign.contacts([(n, "نام", "C") for n in _numbers(3)])
    campaign.write_config(live_provider(server))
    assert run_cli(campaign.config).returncode == 0
    result = run_cli(campaign.config, "--deliveries")
    assert result.returncode == 0, result.stderr
    assert "delivered" in result.stdout and "100.0%" in result.stdout
    assert {r["delivery"] for r in campaign.read_report()} == {"delivered"}
