"""provider.timeout bounds a whole request (pipeline.transport), over a real socket.

httpx's own timeouts bound each socket read: a server that trickles its answer a byte at a
time, each byte within the read timeout, would hold a request (and the run's lock) until it
finished. The run's transport gives every socket operation only what is left of the
request's time, and raises the httpx errors the Sender classifies.
"""

from __future__ import annotations

import socket
import time

import httpcore
import httpx
import pytest

from pipeline.dispatch import http_client
from pipeline.sandbox import SANDBOX_TOKEN, AmootSimulator, Fault
from pipeline.sandbox_server import SandboxServer
from tests.conftest import Campaign, live_provider, run_cli, sends

ONE = {
    "SendDateTime": "2026-03-21 10:00:00",
    "LineNumber": "public",
    "Input": [{"Number": "09121111111", "MessageText": "سلام"}],
}


def _post(http: httpx.Client, server: SandboxServer) -> httpx.Response:
    return http.post(
        f"{server.base_url}/SendPeerToPeer", json=ONE, headers={"Authorization": SANDBOX_TOKEN}
    )


@pytest.fixture
def fake() -> AmootSimulator:
    return AmootSimulator(token=SANDBOX_TOKEN)


def test_a_trickled_answer_is_cut_off_at_the_timeout(fake: AmootSimulator):
    """A byte every 50 ms (a read never waits long) is cut at the 0.5 s timeout with a
    ReadTimeout, not minutes later when the last byte comes; the fake did process it."""
    fake.faults.append(Fault("trickle", delay=0.05))
    with SandboxServer(fake) as server, http_client(1, 0.5) as http:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            _post(http, server)
        elapsed = time.monotonic() - started
        assert 0.45 < elapsed < 0.9, elapsed
        assert _post(http, server).json()["Status"] == "Success"  # the client still works
    assert len(fake.accepted) == 2


def test_an_answer_trickled_within_the_timeout_arrives_whole(fake: AmootSimulator):
    """The deadline is for the whole request: a slow answer that ends in time is read."""
    fake.faults.append(Fault("trickle", delay=0.001))
    with SandboxServer(fake) as server, http_client(1, 10) as http:
        answer = _post(http, server)
    assert answer.json()["Status"] == "Success"
    assert [a.number for a in fake.accepted] == ["9121111111"]


def test_socket_failures_are_the_httpx_errors_the_sender_classifies(fake: AmootSimulator):
    """Refused: ConnectError (safe to retry); a reset after processing: a TransportError that
    is neither a connect error nor a timeout (ambiguous); a late answer: ReadTimeout."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again at once: connecting there is refused
    with http_client(1, 0.5) as http, pytest.raises(httpx.ConnectError):
        http.post(f"http://127.0.0.1:{port}/rest/SendPeerToPeer", json=ONE)

    fake.faults.extend([Fault("drop_after"), Fault("slow_after", delay=30)])
    with SandboxServer(fake) as server, http_client(1, 0.5) as http:
        with pytest.raises(httpx.TransportError) as dropped:
            _post(http, server)
        assert not isinstance(dropped.value, httpx.ConnectError | httpx.TimeoutException)
        with pytest.raises(httpx.ReadTimeout):
            _post(http, server)
    assert len(fake.accepted) == 2


def test_trickled_answer_ends_at_the_timeout_with_its_rows_unknown(
    campaign: Campaign, server: SandboxServer, simulator: AmootSimulator
):
    """The fake processes the request, then writes its answer a byte every 0.2 s, each well
    within the 1 s read timeout: the request ends at provider.timeout (1 s) instead of when
    the last byte comes (minutes later), its rows `unknown` (exit 5), and the run, with the
    lock, is over within a few seconds."""
    numbers = ["09121111111", "09122222222", "09123333333"]
    campaign.contacts([(n, "نام", f"C{i}") for i, n in enumerate(numbers, 1)])
    campaign.write_config(live_provider(server, chunk_size=3, concurrency=1, timeout=1))
    simulator.faults.append(Fault("trickle", delay=0.2))
    started = time.monotonic()
    result = run_cli(campaign.config, timeout=30)
    elapsed = time.monotonic() - started
    assert result.returncode == 5, result.stdout + result.stderr
    report = campaign.read_report()
    assert {r["status"] for r in report} == {"unknown"}
    assert {r["error"] for r in report} == {"HTTP: no complete answer within 1s"}
    assert sorted("0" + a.number for a in simulator.accepted) == numbers  # it was processed
    assert elapsed < 10, elapsed  # interpreter and imports included; the trickle takes ~2 min

    again = run_cli(campaign.config, timeout=30)  # the lock is free, nothing is resent
    assert again.returncode == 5, again.stdout + again.stderr
    assert len(sends(simulator)) == 1


class _Recording(httpcore.NetworkStream):
    """A network stream that keeps what it was asked to write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.writes.append(buffer)


def test_the_empty_write_that_ends_a_body_never_times_out():
    """httpcore ends every request body with an empty write, when the whole request is already
    on the wire. Past the deadline that write must not raise WriteTimeout: the Sender retries a
    WriteTimeout (the request was not written whole), and would post it a second time. A
    write with bytes still to send, past the deadline, does raise it."""
    from pipeline import transport

    wire = _Recording()
    stream = transport._DeadlineStream(wire)
    transport._request.deadline = time.monotonic() - 1.0
    try:
        stream.write(b"")
        with pytest.raises(httpcore.WriteTimeout, match="sending the request"):
            stream.write(b"more of the body")
    finally:
        del transport._request.deadline
    assert wire.writes == []
