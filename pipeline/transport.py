"""The run's HTTP transport: httpx over httpcore, with one deadline for a whole request.

httpx's timeouts bound each socket operation, not a request: a server (or a proxy) that
trickles its answer a byte at a time, each byte within the read timeout, holds the request,
and the run's lock with it, for as long as it keeps trickling. Here every connect, TLS
handshake, write and read of a request is given no more than the time left until the
request's deadline, `whole` seconds after the request reached the transport; past it the next
socket operation raises httpcore's own timeout (`ReadTimeout` once the request was written,
which the Sender treats as an ambiguous answer, as it treats a read timeout).

So a request ends within `whole` seconds, whatever the server does, plus the CPU time of
reading what arrived. Two waits are outside it: the name lookup (the standard library's
getaddrinfo takes no timeout; it happens before any byte of the request leaves), and a
write the server reads slowly, which may take one `whole` per partial send (a request body
of 100 messages fits the kernel's send buffer in one; a request never written whole is safe
to retry anyway). Waiting for a free connection does not happen: a run posts from as many
threads as the pool has connections.

httpx cannot hand its own transport a network backend (encode/httpx discussion #3180), so
this is httpx.HTTPTransport's plain HTTP/1.1 path, on httpcore's public ConnectionPool and
NetworkBackend: the same connection pool, keep-alive checks and error classes, and httpcore
errors become the httpx errors `Sender._post` classifies, as httpx.HTTPTransport maps them.
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

# The deadline of the request the current thread is making. A sync request runs on one thread
# from the pool's connect to its body's last read (httpx reads the body in the same call),
# and the next request on the thread sets its own deadline before any socket operation.
_request = threading.local()


class DeadlineTransport(httpx.BaseTransport):
    """httpx.HTTPTransport(retries=0, limits=limits) without proxies, each request ending
    within `whole` seconds (see the module docstring)."""

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
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


# httpcore's errors and the httpx errors they become, the most specific first (the classes
# of httpx's own mapping; a proxy's errors cannot happen here).
_HTTPX_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
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


def _left(
    timeout: float | None, expired: type[httpcore.TimeoutException], step: str
) -> float | None:
    """The timeout for one socket operation: no longer than what is left of the request's."""
    deadline: float | None = getattr(_request, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired(f"{step}: the request did not end within provider.timeout")
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
        stream = self._sockets.connect_tcp(
            host,
            port,
            _left(timeout, httpcore.ConnectTimeout, "connecting"),
            local_address,
            socket_options,
        )
        return _DeadlineStream(stream)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout, "the answer"))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            # httpcore ends every body with an empty write, when the whole request is already
            # on the wire: a timeout there would make a request the server has look unsent
            # (WriteTimeout is safe to retry), and it would be posted twice.
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
        tls = self._stream.start_tls(
            ssl_context,
            server_hostname,
            _left(timeout, httpcore.ConnectTimeout, "the TLS handshake"),
        )
        return _DeadlineStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)
