"""Campaigns running beside each other: an opt-out another one read is honoured, the cap holds."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.sandbox import AmootSimulator, Reply
from pipeline.sandbox_server import SandboxServer
from tests.conftest import TOKEN, Campaign, live_provider, run_main, start_cli
from tests.test_replies import LINE, optout_lines, replies_cli


class OtherCampaignReadsFirst(AmootSimulator):
    """The first RecieveNewMessages that arrives is held while another campaign's `replies`
    command (`other`, a subprocess) reads the inbox and writes the shared opt-out list: the
    two cron lines at 10:00 of the README, with the other one a moment ahead."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.other: Path | None = None
        self.other_output = ""
        self._fired = threading.Event()

    def decide(self, request: httpx.Request) -> Reply:
        if request.url.path.endswith("/RecieveNewMessages") and not self._fired.is_set():
            self._fired.set()
            assert self.other is not None
            done = replies_cli(self.other)
            self.other_output = done.stdout + done.stderr
        return super().decide(request)


@pytest.fixture
def racing() -> Iterator[tuple[OtherCampaignReadsFirst, SandboxServer]]:
    sim = OtherCampaignReadsFirst(token=TOKEN, line_numbers=("public", LINE))
    with SandboxServer(sim) as served:
        yield sim, served


def test_an_opt_out_applied_by_another_campaign_during_this_runs_start_is_honoured(
    tmp_path: Path,
    campaign: Campaign,
    racing: tuple[OtherCampaignReadsFirst, SandboxServer],
    state_home: Path,
) -> None:
    """Two campaigns share the default opt-out list. Campaign B's `replies` reads «۱۱» from
    09121234568 and lists it after campaign A loaded the list but before A read the replies
    (A's read then brings nothing new). A must still suppress the number: it is on the list
    on disk before A plans. Today A sends to it (open_campaign loads the list before the lock
    and the replies read; _honour_replies adds only the opt-outs A itself applied)."""
    sim, server = racing
    provider = live_provider(server, line_number=f'"{LINE}"')
    campaign.contacts([("09121234567", "علی", "A1"), ("09121234568", "سارا", "B2")])
    campaign.write_config(provider, campaign="camp-a")
    other = Campaign(tmp_path / "other")
    other.folder.mkdir()
    (other.folder / "message.j2").write_text("{{ first_name }}\n", "utf-8")
    other.contacts([("09121234569", "رضا", "C3")])
    other.write_config(provider, campaign="camp-b")
    sim.other = other.config
    sim.add_reply("09121234568", "۱۱")

    done = run_main(campaign.config)

    assert "1 new" in sim.other_output, sim.other_output  # B read and listed it
    assert [line.split()[0] for line in optout_lines(state_home)] == ["09121234568"]
    statuses = {r["number"]: r["status"] for r in campaign.read_report()}
    assert done.returncode == 0, done.stdout + done.stderr
    assert statuses["09121234568"] == "suppressed", statuses


def test_the_frequency_cap_holds_for_two_campaigns_sending_at_once(
    tmp_path: Path, campaign: Campaign, gated: tuple[Any, SandboxServer]
) -> None:
    """cap {messages: 1, days: 7}, all campaigns together: campaign B starts while campaign A's
    message to 09121234567 is in flight (accepted, not yet answered). B's plan reads the sent
    rows only once, sees none (A's row is `inflight`), and sends too: the number gets two
    messages (the README's "two cron lines at 10:00")."""
    sim, server = gated
    extra = "suppression:\n  frequency_cap: {messages: 1, days: 7}\n"
    provider = live_provider(server)
    folders = []
    for name in ("cap-a", "cap-b"):
        each = campaign if name == "cap-a" else Campaign(tmp_path / name)
        each.folder.mkdir(exist_ok=True)
        (each.folder / "message.j2").write_text("{{ first_name }} {{ code }}\n", "utf-8")
        each.contacts([("09121234567", "علی", "A1")])
        each.write_config(provider, campaign=name, extra=extra)
        each.journal.parent.mkdir(exist_ok=True)
        folders.append(each)
    for each in folders[1:]:  # one journal for both, as the shared state folder would be
        each.config.write_text(
            each.config.read_text("utf-8").replace(
                "path: state/journal.sqlite", f"path: {campaign.journal}"
            ),
            "utf-8",
        )
    first = start_cli(folders[0].config)
    try:
        sim.wait_for_arrivals(1)
        second = start_cli(folders[1].config)
        try:
            with contextlib.suppress(AssertionError):
                sim.wait_for_arrivals(2, timeout=15)  # B sent too (the bug); else it capped
        finally:
            sim.gate.set()
            second.communicate(timeout=60)
    finally:
        sim.gate.set()
        first.communicate(timeout=60)
    sent = [a for a in sim.accepted if a.number.endswith("9121234567")]
    assert len(sent) == 1, f"{len(sent)} messages to 09121234567 with a cap of 1"


def test_an_opt_out_read_by_a_campaign_with_its_own_list_reaches_the_shared_one(
    tmp_path: Path, campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
) -> None:
    """One journal (the state folder's), two lists: campaign B names its own suppression.path.
    B's `replies` reads «۱۱» from 09121234567 and marks it applied in the shared journal, so
    campaign A (the shared list) never hears of it and messages the number."""
    simulator.line_numbers.append(LINE)
    provider = live_provider(server, line_number=f'"{LINE}"')
    for each, name, extra in (
        (campaign, "list-a", ""),
        (Campaign(tmp_path / "b"), "list-b", "suppression:\n  path: b-optout.txt\n"),
    ):
        each.folder.mkdir(exist_ok=True)
        (each.folder / "message.j2").write_text("{{ first_name }}\n", "utf-8")
        each.contacts([("09121234567", "علی", "A1")])
        each.write_config(provider, campaign=name, extra=extra)
        text = each.config.read_text("utf-8").replace(
            "journal:\n  path: state/journal.sqlite\n", ""
        )
        each.config.write_text(text, "utf-8")  # no journal.path: the shared journal
        if name == "list-b":
            simulator.add_reply("09121234567", "۱۱")
            assert "1 new" in replies_cli(each.config).stdout
    done = run_main(campaign.config)
    assert done.returncode == 0, done.stdout + done.stderr
    statuses = {r["number"]: r["status"] for r in campaign.read_report()}
    assert statuses["09121234567"] == "suppressed", statuses
