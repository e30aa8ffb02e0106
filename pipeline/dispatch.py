"""Chunks in flight from a pool of sender threads, and the run's HTTP client."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import httpx

from pipeline.errors import InternalFailure
from pipeline.models import Message, Status
from pipeline.send import ChunkResult, Sender
from pipeline.transport import DeadlineTransport


class Dispatcher:
    """`concurrency` chunks in flight, as many queued; callbacks on the main thread (one writer)."""

    def __init__(
        self,
        sender: Sender,
        concurrency: int,
        *,
        before_post: Callable[[Sequence[Message]], None],
        after_answer: Callable[[Sequence[Message], ChunkResult], None],
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="send")
        # A finishing thread starts a queued chunk at once (marked: a kill leaves it `unknown`).
        self._limit = concurrency * 2
        self._sender, self._before_post, self._after_answer = sender, before_post, after_answer
        self._inflight: dict[Future[ChunkResult], Sequence[Message]] = {}

    def submit(self, messages: Sequence[Message], pages: dict[int, int]) -> None:
        """Post a chunk once a slot is free (settling finished chunks meanwhile)."""
        while len(self._inflight) >= self._limit:
            self._settle(block=True)
        self._before_post(messages)
        self._inflight[self._pool.submit(self._sender.send, messages, pages)] = messages

    def halt(self) -> list[Message]:
        """Start no queued chunk; the messages of those no thread picked up (never posted)."""
        self._sender.halt()
        cancelled = [future for future in self._inflight if future.cancel()]
        return [m for future in cancelled for m in self._inflight.pop(future)]

    def poll(self) -> None:  # settle what has finished, without waiting
        if self._inflight:
            self._settle(block=False)

    def drain(self) -> None:
        while self._inflight:
            self._settle(block=True)
        self._pool.shutdown(wait=True)

    def _settle(self, *, block: bool) -> None:
        done, _ = wait(self._inflight, timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for future in done:
            messages = self._inflight.pop(future)
            try:
                result = future.result()
            except Exception as exc:  # a bug in a sender thread: the run stops (exit 1)
                name = type(exc).__name__
                result = ChunkResult(
                    internal=InternalFailure(
                        f"internal error in a sender thread ({name}: {exc}); the rows of that "
                        "request are `unknown`, nothing else was lost. Please report this bug."
                    )
                )
                why = f"an internal error while sending ({name}): it may have gone out"
                result.settle(messages, Status.UNKNOWN, why)
            self._after_answer(messages, result)


def http_client(
    concurrency: int, timeout: float, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """`concurrency` connections, no retries or redirects, each request within `timeout`."""
    limits = httpx.Limits(
        max_connections=concurrency,
        max_keepalive_connections=concurrency,
        keepalive_expiry=5.0,  # shorter than servers' idle close: fewer "dropped" keep-alive races
    )
    return httpx.Client(
        transport=transport or DeadlineTransport(limits, whole=timeout),
        limits=limits,
        timeout=timeout,
        follow_redirects=False,  # a redirect on a POST would resend it: never silently
    )
