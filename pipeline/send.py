"""Post chunks to SendPeerToPeer: safe retries (tenacity), splitting, several requests in flight."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar
from urllib.parse import urlencode

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential_jitter,
)

from pipeline import amoot
from pipeline.amoot import Kind
from pipeline.clock import send_datetime
from pipeline.errors import PipelineError, ProviderFatal
from pipeline.models import Message, Outcome, Status
from pipeline.throttle import STORM, Doubt, Throttle, in_doubt, storm_stop

MAX_RETRY_AFTER = 300.0  # seconds: a Retry-After longer than this is treated as "stop for now"
_JSON = "application/json; charset=utf-8"
_FORM = "application/x-www-form-urlencoded"
_T = TypeVar("_T")
_backoff = wait_exponential_jitter(initial=1, max=60, jitter=1)


@dataclass(slots=True)
class ChunkResult:
    """What became of each message of one chunk, and whether the run must stop."""

    outcomes: dict[int, Outcome] = field(default_factory=dict)  # by Message.row
    attempts: dict[int, int] = field(default_factory=dict)  # requests that carried each row
    stop: ProviderFatal | None = None
    page_mismatches: int = 0
    internal: PipelineError | None = None  # a sender thread crashed (see Dispatcher._settle)

    def settle(self, messages: Sequence[Message], status: Status, why: str) -> None:
        outcome = Outcome(status, why)
        for m in messages:
            self.outcomes[m.row] = outcome


class _SafeToRetry(Exception):
    """The request provably was not processed; tenacity may send it again."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class SenderSettings:
    base_url: str
    token: str
    line_number: str
    timeout: float
    max_attempts: int


class Sender:
    """Sends one chunk at a time (thread-safe: many chunks may be in flight at once)."""

    def __init__(
        self,
        client: httpx.Client,
        settings: SenderSettings,
        *,
        throttle: Throttle,
        stop: threading.Event,
        sleep: Callable[[float], object],
        send_at: Callable[[], datetime],
    ) -> None:
        self._client, self._settings, self._throttle = client, settings, throttle
        self._stop, self._send_at = stop, send_at
        self._halted = threading.Event()  # a fatal answer or a crash: start no other chunk
        self._doubt = Doubt()
        self._retrying = Retrying(
            stop=stop_after_attempt(settings.max_attempts) | stop_when_event_set(stop),
            wait=_wait_retry_after,
            retry=retry_if_exception_type(_SafeToRetry),
            sleep=sleep,  # type: ignore[arg-type]  # Event.wait in a run: Ctrl-C wakes it
            reraise=True,
        )
        self._urls: dict[str, httpx.URL] = {}
        self._timeout = httpx.Timeout(settings.timeout)
        self._headers = {
            kind: {"Authorization": settings.token, "Content-Type": kind} for kind in (_JSON, _FORM)
        }

    def send(self, messages: Sequence[Message], pages: dict[int, int]) -> ChunkResult:
        """Post `messages`, retrying only what is safe; every message gets an outcome."""
        result = ChunkResult()
        try:
            self._send_part(list(messages), pages, result)
        except BaseException:
            self._halted.set()  # a bug: the main thread will stop the run; start nothing more
            raise
        if result.stop is not None:  # the chunks queued behind this one must not start
            self._halted.set()
        return result

    def halt(self) -> None:  # start no other chunk (one already posting finishes)
        self._halted.set()

    def _stopping(self) -> bool:
        return self._stop.is_set() or self._halted.is_set()

    def _send_part(
        self, messages: list[Message], pages: dict[int, int], result: ChunkResult
    ) -> None:
        # After an ambiguous answer, this waits for the requests on their way (see throttle.Doubt).
        with self._doubt.turn(give_up=self._stopping) as answered:
            if self._stopping() or result.stop is not None:
                result.settle(messages, Status.PENDING, "the run stopped before this was sent")
                return
            by_key = {amoot.last10(m.number): m for m in messages}  # as answers name them
            local_pages = {key: pages.get(m.row, 0) for key, m in by_key.items()}
            try:
                reply = self._post_with_retries(messages, local_pages, result)
            except _SafeToRetry as exc:
                if self._stop.is_set():
                    result.settle(messages, Status.PENDING, "the run was interrupted")
                    return
                result.settle(messages, Status.PENDING, f"not accepted: {exc.reason}")
                result.stop = self._unreachable(exc.reason)
                return
            storm = answered(in_doubt(reply)) >= STORM
            if storm:
                self._halted.set()  # before the turn ends: the requests waiting start none

        self._apply(reply, messages, by_key, pages, result)
        if storm and result.stop is None:
            result.stop = storm_stop(reply)

    def _apply(
        self,
        reply: amoot.SendReply,
        messages: list[Message],
        by_key: dict[str, Message],
        pages: dict[int, int],
        result: ChunkResult,
    ) -> None:
        """Turn one answered request into row outcomes (and a stop, when the run must stop)."""
        if reply.kind is Kind.SUCCESS:
            for key, outcome in reply.outcomes.items():
                result.outcomes[by_key[key].row] = outcome
            result.page_mismatches += reply.page_mismatches
            if reply.fatal_title:
                result.stop = _fatal(reply.fatal_title, self._settings.base_url)
        elif reply.kind is Kind.RECIPIENT and len(messages) > 1:
            # A list-level "invalid number" with no data: nothing was processed; halves are safe.
            half = len(messages) // 2
            self._send_part(messages[:half], pages, result)
            self._send_part(messages[half:], pages, result)
        elif reply.kind is Kind.RECIPIENT:
            result.outcomes[messages[0].row] = Outcome(Status.FAILED, reply.title)
        elif reply.kind is Kind.RETRY:  # a Failed retried FAILED_ATTEMPTS times counts per row
            result.settle(messages, Status.FAILED, reply.title)
        elif reply.kind is Kind.FATAL:
            result.settle(messages, Status.PENDING, amoot.describe(reply.title))
            result.stop = _fatal(reply.title, self._settings.base_url)
        else:  # AMBIGUOUS: it may have gone out; never send it again automatically
            result.settle(messages, Status.UNKNOWN, reply.title)
            if reply.unknown_title:
                result.stop = ProviderFatal(
                    reply.title,
                    f"the provider answered {amoot.describe(reply.title)}; the run stopped. "
                    "Fix: ask AmootSMS support what it means; the rows of that request are "
                    "`unknown` until you decide (--resend-unknown).",
                )

    def _post_with_retries(
        self, messages: list[Message], local_pages: dict[str, int], result: ChunkResult
    ) -> amoot.SendReply:
        failed_seen = 0

        def attempt() -> amoot.SendReply:
            nonlocal failed_seen
            for m in messages:
                result.attempts[m.row] = result.attempts.get(m.row, 0) + 1
            body = amoot.build_send_body(
                messages, send_datetime(self._send_at()), self._settings.line_number
            )
            answer = self._post("SendPeerToPeer", body, _JSON, idempotent=False)
            if isinstance(answer, amoot.SendReply):
                return answer
            reply = amoot.read_send_answer(answer.content, messages, local_pages)
            if reply.kind is Kind.RETRY:
                failed_seen += reply.title == "Failed"
                if failed_seen >= amoot.FAILED_ATTEMPTS:
                    return reply  # the caller fails these rows
                raise _SafeToRetry(reply.title)
            return reply

        return self._retrying(attempt)

    def account_status(self) -> amoot.Account:
        """AccountStatus (credit and tariffs), retried freely: it changes nothing."""
        found = self._query("AccountStatus", b"", amoot.read_account_status)
        if isinstance(found, amoot.SendReply):
            raise _fatal(found.title, self._settings.base_url)
        return found

    def get_deliveries(self, message_ids: Sequence[str]) -> dict[str, int]:
        """DeliveryType by message ID (retried freely); MessageID_Invalid: none, asked again."""
        if not message_ids:
            return {}
        # Commas stay literal, as the provider's samples send `ListMessageID`.
        body = urlencode({"ListMessageID": ",".join(message_ids)}, safe=",").encode("ascii")
        found = self._query("GetDeliveries", body, amoot.read_deliveries)
        if isinstance(found, amoot.SendReply):
            if found.kind is Kind.RECIPIENT:
                return {}
            raise _fatal(found.title, self._settings.base_url)
        asked = set(message_ids)
        return {message_id: code for message_id, code in found.items() if message_id in asked}

    def receive_new_messages(self, count: int = 100) -> list[amoot.InboundSMS]:
        """Up to `count` new replies to the line, each of which the provider hands out only once.

        So only what provably did not reach the server is retried (a failed connect, HTTP
        429/503, a Failed title): an answer lost after the request left (a timeout, a dropped
        connection, HTTP 500, an unreadable body) held replies no second call returns, and
        retrying it would hide that. That raises ProviderFatal saying so."""
        body = urlencode({"Count": count}).encode("ascii")
        found = self._query("RecieveNewMessages", body, amoot.read_new_messages, destructive=True)
        if isinstance(found, amoot.SendReply):
            if found.kind is Kind.AMBIGUOUS:
                raise _replies_lost(found.title)
            raise _replies_refused(found.title, self._settings.base_url)
        return found

    def _query(
        self,
        method: str,
        body: bytes,
        read: Callable[[bytes], _T | amoot.SendReply],
        *,
        destructive: bool = False,
    ) -> _T | amoot.SendReply:
        """A read-only call, retried freely; ProviderFatal when the provider stays unreachable.
        `destructive` (the answer cannot be asked for again): ambiguous outcomes are returned
        as a SendReply of kind AMBIGUOUS instead of retried."""

        def attempt() -> _T | amoot.SendReply:
            answer = self._post(method, body, _FORM, idempotent=not destructive)
            if isinstance(answer, amoot.SendReply):
                return answer
            found = read(answer.content)
            if not isinstance(found, amoot.SendReply):
                return found
            if found.kind is Kind.RETRY or (found.kind is Kind.AMBIGUOUS and not destructive):
                raise _SafeToRetry(found.title)
            return found

        try:
            return self._retrying(attempt)
        except _SafeToRetry as exc:
            raise self._unreachable(exc.reason) from None

    def _url(self, method: str) -> httpx.URL:
        url = self._urls.get(method)
        if url is None:  # parsed at first use, so a URL httpx refuses fails where it did
            url = self._urls[method] = httpx.URL(f"{self._settings.base_url}/{method}")
        return url

    def _unreachable(self, reason: str) -> ProviderFatal:
        return ProviderFatal(
            reason,
            f"the provider did not accept requests ({reason}) after "
            f"{self._settings.max_attempts} attempts; nothing was lost. "
            "Fix: rerun the same command later (cron will).",
        )

    def _post(
        self, method: str, body: bytes, content_type: str, *, idempotent: bool
    ) -> httpx.Response | amoot.SendReply:
        """One POST: _SafeToRetry when it did not reach the server (or repeating it is harmless);
        a SendReply for a final non-200 outcome; else the 200 response to read."""
        if not self._throttle.acquire():
            raise _SafeToRetry("the run was interrupted")
        try:
            response = self._client.post(
                self._url(method),
                content=body,
                headers=self._headers[content_type],
                timeout=self._timeout,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _SafeToRetry(f"cannot connect: {type(exc).__name__}") from exc
        except (httpx.WriteError, httpx.WriteTimeout) as exc:  # never received whole: not acted on
            raise _SafeToRetry(f"connection lost while sending: {type(exc).__name__}") from exc
        except httpx.TimeoutException as exc:
            # The whole request's deadline (pipeline.transport): a trickling answer is none.
            late = f"no complete answer within {self._settings.timeout:g}s"
            if idempotent:
                raise _SafeToRetry(late) from exc
            return amoot.SendReply(Kind.AMBIGUOUS, f"HTTP: {late}")
        except (httpx.LocalProtocolError, httpx.UnsupportedProtocol) as exc:  # refused here
            return amoot.SendReply(Kind.FATAL, f"HTTP: the request could not be sent ({exc})")
        except httpx.HTTPError as exc:
            # A dropped connection, or an undecodable answer: it may have been processed.
            reason = f"HTTP: no usable answer after sending ({type(exc).__name__})"
            if idempotent:
                raise _SafeToRetry(reason) from exc
            return amoot.SendReply(Kind.AMBIGUOUS, reason)

        http_kind = amoot.classify_http(response.status_code)
        if http_kind is Kind.RETRY:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            if retry_after is not None and retry_after > MAX_RETRY_AFTER:  # stop for now: pending
                return amoot.SendReply(
                    Kind.FATAL, f"HTTP {response.status_code}, Retry-After {retry_after:g}s"
                )
            # One overrun answer slows every worker down, not only this request.
            self._throttle.pause(retry_after if retry_after is not None else 1.0)
            raise _SafeToRetry(f"HTTP {response.status_code}", retry_after)
        if http_kind is Kind.AMBIGUOUS and idempotent:
            raise _SafeToRetry(f"HTTP {response.status_code}")
        if http_kind is not None:
            return amoot.SendReply(http_kind, f"HTTP {response.status_code}")
        return response


def _fatal(title: str, base_url: str) -> ProviderFatal:
    return ProviderFatal(
        title,
        f"the provider answered {amoot.describe(title)}; nothing more was sent. "
        f"Fix: {amoot.fix_for(title, base_url)} "
        "Then rerun the same command: it continues where it stopped.",
    )


def _replies_refused(title: str, base_url: str) -> ProviderFatal:
    shown = amoot.describe(title) if title in amoot.TITLES else title  # e.g. "HTTP 403"
    return ProviderFatal(
        title,
        f"the provider answered {shown} to RecieveNewMessages; no replies were read. "
        f"Fix: {amoot.fix_for(title, base_url)} Then rerun the same command.",
    )


def _replies_lost(reason: str) -> ProviderFatal:
    return ProviderFatal(
        reason,
        f"the answer to RecieveNewMessages was lost ({reason}); the replies in it, if any, "
        "may be lost: the provider hands each reply out only once, so it was not asked "
        "again. They still show in the AmootSMS panel's inbox (received messages): honour any "
        "opt-out among them by hand. Fix: rerun the same command to read the replies after them.",
    )


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds; an HTTP date falls back to backoff)."""
    try:
        return None if value is None else max(float(value.strip()), 0.0)
    except ValueError:
        return None


def _wait_retry_after(state: RetryCallState) -> float:
    """Retry-After when the provider gave one, else exponential backoff with jitter."""
    outcome = state.outcome
    if outcome is not None and outcome.failed:
        exc = outcome.exception()
        if isinstance(exc, _SafeToRetry) and exc.retry_after is not None:
            return exc.retry_after
    return float(_backoff(state))
