"""Serve an AmootSimulator on 127.0.0.1 (`python -m pipeline.sandbox_server --port 8080`): it
decides; this acts it out: answer, abort the connection, answer late, or a byte at a time."""

from __future__ import annotations

import argparse
import contextlib
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, get_args

import httpx

from pipeline.sandbox import (
    SANDBOX_BLACKLIST_RULE,
    SANDBOX_TOKEN,
    AmootSimulator,
    NumberStyle,
    Reply,
)


class SandboxServer:
    """Serves `sim` in a daemon thread. `latency`: seconds from a request's arrival to its answer
    (the simulator's work included); `timeline` gets `path arrived ended` (wall clock) a request."""

    def __init__(
        self,
        sim: AmootSimulator,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
        timeline: Path | None = None,
    ) -> None:
        self.sim = sim
        self._server = _Server((host, port), sim, max(latency, 0.0), monotonic, timeline)
        self.base_url = f"http://{host}:{self._server.server_address[1]}/rest"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def __enter__(self) -> SandboxServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving: wake slow answers, end open connections, wait for their threads."""
        self._server.stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.end_connections()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    # Handler threads are joined on close: every request sent is processed once `with` is left.
    daemon_threads = False
    block_on_close = True

    def __init__(
        self,
        address: tuple[str, int],
        sim: AmootSimulator,
        latency: float,
        monotonic: Callable[[], float],
        timeline: Path | None,
    ) -> None:
        super().__init__(address, _Handler)
        self.sim, self.latency, self.monotonic = sim, latency, monotonic
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._aborted: set[socket.socket] = set()
        self._guard = threading.Lock()
        self._timeline = timeline.open("a", encoding="utf-8") if timeline else None

    def record(self, path: str, arrived: float, ended: float) -> None:
        if self._timeline:
            with self._guard:
                self._timeline.write(f"{path} {arrived:.6f} {ended:.6f}\n")
                self._timeline.flush()  # read by another process while this one serves

    def server_close(self) -> None:
        super().server_close()
        if self._timeline:
            self._timeline.close()

    def process_request(self, request: Any, client_address: Any) -> None:
        # In the serving thread: once shutdown() returns, end_connections() knows every one.
        with self._guard:
            self._connections.add(request)
        super().process_request(request, client_address)

    def abort(self, connection: socket.socket) -> None:
        """Reset `connection` instead of closing it politely: no FIN, no answer."""
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._guard:
            self._aborted.add(connection)

    def end_connections(self) -> None:
        with self._guard:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # the peer may already be gone
                connection.shutdown(socket.SHUT_RDWR)

    def shutdown_request(self, request: Any) -> None:
        with self._guard:
            aborted = request in self._aborted
            self._aborted.discard(request)
            self._connections.discard(request)
        if aborted:
            self.close_request(request)  # with SO_LINGER 0 this sends RST
        else:
            super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is normal here (timeouts are tested on purpose).
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx's connection pool expects
    # An answer is one write (_wire), so no Nagle delay (~40 ms); and a trickled byte a segment.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """No request log on stderr."""

    def do_POST(self) -> None:  # also GET, answered 405: the docs say only POST is supported
        arrived = self.server.monotonic()  # the request line and headers are in
        arrived_wall = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host, port = self.server.server_address[:2]
        url = f"http://{host!s}:{port}{self.path}"
        request = httpx.Request(self.command, url, headers=list(self.headers.items()), content=body)
        reply = self.server.sim.decide(request)
        if self.server.latency:
            held = self.server.latency - (self.server.monotonic() - arrived)
            self.server.stopping.wait(max(held, 0.0))
        match reply.action:
            case "drop_before" | "drop_after":
                self.server.abort(self.connection)
                self.close_connection = True
            case "slow_after":
                self.server.stopping.wait(reply.delay)
                self._answer(reply)
            case "trickle":
                self._trickle(reply)
            case "answer":
                # Noted as it leaves (one write): a client that reads the timeline once
                # answered finds its line there.
                self.server.record(self.path, arrived_wall, time.time())
                self._answer(reply)
                return
        self.server.record(self.path, arrived_wall, time.time())

    def _wire(self, reply: Reply, *first: tuple[str, str]) -> bytes:
        """The whole answer: status line, `first` headers, the reply's, blank line, body."""
        phrase = self.responses.get(reply.status, ("",))[0]
        head = [f"{self.protocol_version} {reply.status} {phrase}"]
        head += [f"{name}: {value}" for name, value in (*first, *reply.headers.items())]
        head.append(f"Content-Length: {len(reply.body)}")
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body

    def _answer(self, reply: Reply) -> None:
        dated = ("Server", self.version_string()), ("Date", self.date_time_string())
        try:
            self.wfile.write(self._wire(reply, *dated))
        except OSError:
            self.close_connection = True  # the client gave up waiting (a slow_after timeout)

    def _trickle(self, reply: Reply) -> None:
        """The whole answer a byte every `reply.delay` s: each client read gets one in time."""
        for byte in self._wire(reply):
            try:
                self.wfile.write(bytes((byte,)))  # unbuffered, and no Nagle: a segment each
            except OSError:
                self.close_connection = True  # the client gave up on the answer
                return
            if self.server.stopping.wait(reply.delay):
                self.close_connection = True
                return

    do_GET = do_POST  # noqa: N815


def main(argv: Sequence[str] | None = None) -> int:
    """Run the shipped sandbox on a port until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.sandbox_server",
        description="Serve the AmootSMS simulator on a local port (nothing leaves the machine).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--token", default=SANDBOX_TOKEN, help="token to accept")
    parser.add_argument("--credit", type=int, default=10_000_000, help="credit in rials")
    parser.add_argument("--number-style", choices=get_args(NumberStyle), default="int")
    latency = "seconds from each request's arrival to its answer (benchmarks)"
    parser.add_argument("--latency", type=float, default=0.0, help=latency)
    timeline = "append each request's path, arrival and end (wall clock) to this file"
    parser.add_argument("--timeline", type=Path, help=timeline)
    args = parser.parse_args(argv)
    sim = AmootSimulator(
        token=args.token,
        credit_rials=args.credit,
        blacklist_zeros=True,
        number_style=args.number_style,
        remember=False,  # a long-lived server: keep counters, not every message
        forgotten_delivery=1,
    )
    try:
        with SandboxServer(
            sim, args.host, args.port, latency=args.latency, timeline=args.timeline
        ) as server:
            print(server.base_url, flush=True)
            print(f"token: {args.token}; {SANDBOX_BLACKLIST_RULE}; Ctrl-C stops.", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
