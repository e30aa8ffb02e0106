"""The run's HTTP transport: httpx over httpcore, with one deadline for a whole request.

httpx bounds each socket operation, so a trickled answer would hold the request (and the run's
lock) while it trickles: here each connect, handshake, write and read gets what is left of `whole`
seconds. Unbounded: the name lookup; a slowly read write gets `whole` per partial send (safe to
retry); no pool waits (a thread per connection). httpx takes no network backend (encode/httpx
discussion #3180): this is HTTPTransport's HTTP/1.1 path on httpcore's public API.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

# The thread's request deadline: a sync request stays on one thread; each sets its own first.
_request = threading.local()


class DeadlineTransport(httpx.BaseTransport):
    """httpx.HTTPTransport(retries=0, limits=limits), no proxies, each request within `whole` s."""

    def __init__(self, limits: httpx.Limits, whole: float) -> None:
        self._whole = whole
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            retries=0,
            network_backend=_DeadlineBackend(),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _request.deadline = time.monotonic() + self._whole
        assert isinstance(request.stream, httpx.SyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            answer = self._pool.handle_request(core)
        assert isinstance(answer.stream, Iterable)
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_Body(answer.stream),
            extensions=answer.extensions,
        )

    def close(self) -> None:
        with _as_httpx_errors():
            self._pool.close()


class _Body(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_errors():
            yield from self._stream

    def close(self) -> None:
        if hasattr(self._stream, "close"):
            self._stream.close()


# httpcore's errors as the httpx errors of the same name (httpx's mapping), most specific first.
_HTTPX_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = tuple(
    (getattr(httpcore, name), getattr(httpx, name))
    for name in (
        *("ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout", "TimeoutException"),
        *("ConnectError", "ReadError", "WriteError", "NetworkError"),
        *("RemoteProtocolError", "LocalProtocolError", "ProtocolError", "UnsupportedProtocol"),
    )
)


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for core_error, httpx_error in _HTTPX_ERRORS:
            if isinstance(exc, core_error):
                raise httpx_error(str(exc)) from exc
        raise


def _left(timeout: float | None, error: type[httpcore.TimeoutException], step: str) -> float | None:
    """The timeout for one socket operation: no longer than what is left of the request's."""
    deadline: float | None = getattr(_request, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error(f"{step}: the request did not end within provider.timeout")
    return left if timeout is None else min(timeout, left)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own sockets (SyncBackend), each operation held to the request's deadline."""

    def __init__(self) -> None:
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout, "connecting")
        stream = self._sockets.connect_tcp(host, port, left, local_address, socket_options)
        return _DeadlineStream(stream)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout, "the answer"))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            # httpcore ends every body with an empty write: a WriteTimeout there would make a
            # request the server has look unsent (safe to retry), and it would be posted twice.
            return
        self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout, "sending the request"))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout, "the TLS handshake")
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)
