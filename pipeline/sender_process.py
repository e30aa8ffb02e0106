"""Post the chunks from a child process: the same Sender, with an interpreter lock of its own.

A run prepares, journals and reports rows on its main thread, and sender threads read and parse
the provider's answers. In one process they share one interpreter lock: each answer waited for
the main thread, and the main thread for the answers (see README, "Speed and memory"). Here the
Sender and its threads live in a child process (`main` below), and the run's process keeps only
what must stay in it: the journal mark before a chunk leaves, the answers into the journal and
the report.

The contract is the Dispatcher's (pipeline.send): every callback runs on the main thread, a chunk
is marked in the journal before it is written to the child, every chunk gets a ChunkResult.

Frames: a 4-byte big-endian length, then a pickle, over the child's stdin and stdout.
    parent -> child  Start, then ("chunk", id, messages, pages), ("stop",), ("halt",)
    parent -> child  ("pace", monotonic): no request before then (the run's own rate limit)
    child -> parent  ("ready",), ("posting", id) before a chunk's first request,
                     ("result", id, ChunkResult), ("crash", id, text), ("halted", ids)
The end of the parent's frames (it closed the pipe once every chunk was answered, or it died)
makes the child start nothing more and end after the requests in flight.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from pipeline.clock import utc_now
from pipeline.errors import WorkerFailed
from pipeline.models import Message, Status
from pipeline.send import ChunkResult, Sender, SenderSettings, http_client, unanswered
from pipeline.throttle import Throttle

READY_TIMEOUT = 60.0  # seconds for the child to import and report ready (normally ~0.2 s)
STOP_CHECK = 0.1  # seconds between looks at the run's stop event while waiting for answers
_LENGTH = 4
# The frames leave on a copy of stdout; stdout itself then points at stderr, so that nothing
# printed (a warning from an import, say) can land in the middle of a frame.
_CHILD = (
    "import os, sys; frames = os.dup(1); os.dup2(2, 1); sys.stdout = sys.stderr; "
    "from pipeline.sender_process import main; raise SystemExit(main(frames))"
)
_STDERR_KEPT = 4000  # characters of the child's stderr kept for the message if it dies


@dataclass(frozen=True, slots=True)
class Start:
    """What the child needs to build the Sender the run would have built."""

    settings: SenderSettings
    concurrency: int
    rate_limit: float | None
    send_at: datetime | None  # a fixed schedule.send_at; None: the moment of each request


# -- framing ----------------------------------------------------------------------------------


def write_frame(stream: IO[bytes], frame: object) -> None:
    data = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(_LENGTH, "big") + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """The next frame, or None at the end of the stream (also after a partial frame)."""
    head = stream.read(_LENGTH)
    if len(head) < _LENGTH:
        return None
    size = int.from_bytes(head, "big")
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)  # our own child, over its own pipes


# -- the run's side ---------------------------------------------------------------------------


def _child_env() -> dict[str, str]:
    """The run's environment; PYTHONPATH names this package's folder only when the child would
    not find it otherwise (a source checkout run as `python -m pipeline` from its folder).
    An installed package is found where the run found it, after the standard library."""
    env = dict(os.environ)
    package_root = Path(__file__).resolve().parent.parent
    # sys.path[0] is the folder `python -m` started in ('' with -c): the only place the run
    # searched that the child (-P) does not. Installed copies, editable ones included, are
    # found by the same site setup in both.
    if Path(sys.path[0] or os.getcwd()).resolve() == package_root:
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(package_root), env.get("PYTHONPATH")])
        )
    return env


class SenderProcess:
    """The child, started early (its imports overlap the run's census), ended on close."""

    def __init__(self, start: Start) -> None:
        self._start = start
        try:
            self._proc = subprocess.Popen(
                # Not `-m pipeline.sender_process`: as __main__, its classes would be a second
                # copy, and the frames (pickles of pipeline.sender_process.Start...) would not
                # match it.
                # -P: the current folder (cron's $HOME, anywhere) is not searched for modules.
                [sys.executable, "-P", "-c", _CHILD],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=_child_env(),
                # A group of its own: Ctrl-C in a terminal reaches only the run, which tells
                # this process to stop (even while it is still importing).
                process_group=0,
            )
        except OSError as exc:
            raise WorkerFailed(f"cannot start the sending process: {exc}") from exc
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdin, self._stdout = self._proc.stdin, self._proc.stdout
        self.frames: queue.Queue[Any] = queue.Queue()
        self._stderr: deque[str] = deque()
        self._stderr_size = 0
        self._ready = threading.Event()  # set on "ready", or when the child's output ends
        self.ready = False
        self.broken = False  # a frame could not be read: what followed it is unknown
        self._reader = threading.Thread(target=self._read, name="sender-process", daemon=True)
        self._errors = threading.Thread(target=self._read_stderr, daemon=True)
        self._write_lock = threading.Lock()
        with contextlib.suppress(OSError):  # the child is already gone: wait_ready says so
            self.send(start)
        self._reader.start()
        self._errors.start()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Block until the child reports ready; WorkerFailed if it ended or took too long."""
        if self._ready.wait(timeout) and self.ready:
            return
        self.close(wait=0)
        raise WorkerFailed(f"the sending process did not start: {self.exit_text()}")

    def send(self, frame: object) -> None:
        """Write one frame to the child; OSError when it is gone, or closed by the run."""
        with self._write_lock:
            # After close() (the run's end), the stop watcher can still wake and forward a
            # stop: a closed pipe is a gone child, not a ValueError in a daemon thread.
            if self._stdin.closed:
                raise BrokenPipeError("the sending process's input is closed")
            write_frame(self._stdin, frame)

    def exit_text(self) -> str:
        """How the child ended (its last stderr line too), for messages."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=2)  # its output can end a moment before it can be reaped
        self._errors.join(timeout=1)  # and its last words be still unread
        code = self._proc.poll()
        said = "".join(self._stderr).strip().splitlines()
        last = f": {said[-1]}" if said else ""
        return f"exit code {code}{last}" if code is not None else f"still running{last}"

    def close(self, wait: float = 5.0) -> None:
        """End the child: no more frames; it finishes what it holds, or is killed after `wait`."""
        with contextlib.suppress(OSError), self._write_lock:
            self._stdin.close()
        try:
            self._proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join(timeout=5)
        self._errors.join(timeout=5)
        self._stdout.close()
        assert self._proc.stderr is not None
        self._proc.stderr.close()

    def __enter__(self) -> SenderProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        # Normally drained already (Dispatcher.drain); otherwise the requests it still holds
        # end within the provider's timeout.
        self.close(wait=self._start.settings.timeout + 5)

    def _read(self) -> None:
        while True:
            try:
                frame = read_frame(self._stdout)
            except Exception:  # a frame that cannot be read: nothing after it can be trusted
                self.broken = True
                self._proc.kill()
                frame = None
            if frame is None:
                self._ready.set()  # wake a waiter: the child is gone, not ready
                self.frames.put(None)
                return
            if frame == ("ready",):
                self.ready = True
                self._ready.set()
                continue
            self.frames.put(frame)

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in iter(self._proc.stderr.readline, b""):
            text = line.decode("utf-8", "replace")
            self._stderr.append(text)
            self._stderr_size += len(text)
            while self._stderr_size > _STDERR_KEPT and len(self._stderr) > 1:
                self._stderr_size -= len(self._stderr.popleft())


class ProcessDispatcher:
    """pipeline.send.Dispatcher's contract, with the requests posted by a SenderProcess."""

    def __init__(
        self,
        worker: SenderProcess,
        concurrency: int,
        *,
        stop: threading.Event,
        before_post: Callable[[Sequence[Message]], None],
        after_answer: Callable[[Sequence[Message], ChunkResult], None],
        not_before: float = 0.0,
    ) -> None:
        """`not_before`: the time.monotonic() before which no request may start (the pace the
        run's own requests, such as AccountStatus, left for `provider.rate_limit`)."""
        self._worker = worker
        self._stop = stop
        self._stop_sent = False
        self._limit = concurrency * 2  # as the threaded Dispatcher: posting and queued
        self._before_post = before_post
        self._after_answer = after_answer
        self._inflight: dict[int, Sequence[Message]] = {}
        self._started: set[int] = set()  # chunks the child began to post ("posting")
        self._ids = itertools.count()
        self._held: deque[Any] = deque()  # frames read while waiting for "halted"
        self._ended = ""  # how the child ended, once its output has ended
        # Ctrl-C must reach the child at once, not when the main thread next comes by (it may
        # be rendering a batch while a child thread starts a queued chunk).
        self._finished = threading.Event()
        self._stop_lock = threading.Lock()
        threading.Thread(target=self._watch_stop, name="stop-forward", daemon=True).start()
        if not_before:
            with contextlib.suppress(OSError):
                self._worker.send(("pace", not_before))

    def submit(self, messages: Sequence[Message], pages: dict[int, int]) -> None:
        """Post a chunk once a slot is free (settling finished chunks meanwhile)."""
        self._settle(block=False)  # also learns of a child that ended with nothing in flight
        while len(self._inflight) >= self._limit:
            self._settle(block=True)
        if not self._ended:
            self._before_post(messages)  # the journal's mark, committed before it leaves
            try:
                self._worker.send(("chunk", chunk_id := next(self._ids), list(messages), pages))
            except OSError:
                pass  # the child is gone (its end is read next): it never had this chunk
            else:
                self._inflight[chunk_id] = messages
                return
            while not self._ended:  # read up to its end, which says why
                self._settle(block=True)
        self._after_answer(messages, _unposted(messages, self._ended))

    def halt(self) -> list[Message]:
        """Start no chunk that is still queued; the messages of the chunks never posted."""
        if self._ended:
            return []
        try:
            self._worker.send(("halt",))
        except OSError:
            return []
        while True:
            frame = self._worker.frames.get()
            if frame is None:
                self._held.append(frame)
                return []
            if frame[0] == "halted":
                return [m for chunk_id in frame[1] for m in self._inflight.pop(chunk_id, ())]
            self._held.append(frame)

    def poll(self) -> None:
        """Settle whatever has finished, without waiting."""
        self._settle(block=False)

    def drain(self) -> None:
        """Wait for every chunk in flight and settle it; the child then ends."""
        while self._inflight:
            self._settle(block=True)
        self._finished.set()

    def _forward_stop(self) -> None:
        with self._stop_lock:
            if self._stop.is_set() and not self._stop_sent:
                self._stop_sent = True
                with contextlib.suppress(OSError):
                    self._worker.send(("stop",))

    def _watch_stop(self) -> None:
        while not self._finished.is_set():
            if self._stop.wait(STOP_CHECK):
                self._forward_stop()
                return

    def _settle(self, *, block: bool) -> None:
        """Settle the frames that have arrived; with `block`, wait for at least one."""
        self._forward_stop()  # before anything else: queued chunks must not start after it
        frame = self._next(block=block)
        while frame is not _NOTHING:
            self._handle(frame)
            frame = self._next(block=False)

    def _next(self, *, block: bool) -> Any:
        if self._held:
            return self._held.popleft()
        if self._ended:  # chunks left by an error while settling the end: settle them now
            return None if self._inflight else _NOTHING
        while True:
            try:
                return self._worker.frames.get(timeout=STOP_CHECK if block else None, block=block)
            except queue.Empty:
                if not block:
                    return _NOTHING
                self._forward_stop()  # a signal came while waiting for answers

    def _handle(self, frame: Any) -> None:
        if frame is None:  # the child ended
            self._ended = f"the sending process ended unexpectedly ({self._worker.exit_text()})"
            for chunk_id in list(self._inflight):
                messages = self._inflight.pop(chunk_id)
                if chunk_id in self._started or self._worker.broken:  # may have gone out
                    self._after_answer(messages, _unanswered(messages, self._ended))
                else:  # it never left the child's queue
                    self._after_answer(messages, _unposted(messages, self._ended))
            return
        kind = frame[0]
        if kind == "posting":
            self._started.add(frame[1])
        elif kind == "result":
            self._started.discard(frame[1])
            self._after_answer(self._inflight.pop(frame[1]), frame[2])
        elif kind == "crash":
            self._started.discard(frame[1])
            messages = self._inflight.pop(frame[1])
            reason = f"an internal error in the sending process ({frame[2]})"
            self._after_answer(messages, _unanswered(messages, reason))


_NOTHING = object()


def _unanswered(messages: Sequence[Message], reason: str) -> ChunkResult:
    """A chunk whose request may have gone out, with no answer: `unknown`, and the run stops."""
    return unanswered(messages, Status.UNKNOWN, f"{reason}: it may have gone out", _failure(reason))


def _unposted(messages: Sequence[Message], reason: str) -> ChunkResult:
    """A chunk no request carried (the child was gone first): `pending`, and the run stops."""
    return unanswered(messages, Status.PENDING, f"not sent: {reason}", _failure(reason))


def _failure(reason: str) -> str:
    return (
        f"{reason}; the rows of the requests it had started are `unknown`, the rest `pending`: "
        "nothing else was lost. Rerun to send the pending rows. Please report this bug."
    )


# -- the child's side -------------------------------------------------------------------------


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """Post the chunks read from `stdin`, answering on `stdout`, until `stdin` ends."""
    start = read_frame(stdin)
    if not isinstance(start, Start):
        return
    stop = threading.Event()
    write_lock = threading.Lock()
    gone = threading.Event()  # the parent stopped reading: answers have nowhere to go

    def answer(frame: object) -> None:
        if gone.is_set():
            return
        try:
            with write_lock:
                write_frame(stdout, frame)
        except OSError:
            gone.set()
            stop.set()

    fixed = start.send_at
    throttle = Throttle(start.rate_limit, sleep=stop.wait)
    with http_client(start.concurrency, start.settings.timeout) as client:
        sender = Sender(
            client,
            start.settings,
            throttle=throttle,
            stop=stop,
            sleep=stop.wait,
            send_at=(lambda: fixed) if fixed is not None else utc_now,
        )

        def post(chunk_id: int, messages: list[Message], pages: dict[int, int]) -> None:
            # Before any request: if this process dies later, the run knows this chunk may
            # have gone out (`unknown`), while those never begun stay `pending`.
            answer(("posting", chunk_id))
            try:
                answer(("result", chunk_id, sender.send(messages, pages)))
            except BaseException as exc:  # a bug: the parent stops the run, rows `unknown`
                answer(("crash", chunk_id, f"{type(exc).__name__}: {exc}"))
                if not isinstance(exc, Exception):
                    raise

        answer(("ready",))
        queued: dict[int, Future[None]] = {}
        with ThreadPoolExecutor(start.concurrency, thread_name_prefix="send") as pool:
            while True:
                frame = read_frame(stdin)
                if frame is None:
                    # The run closed the pipe: after its last answer, or because it died (then
                    # what is queued is not posted, and the requests in flight end).
                    stop.set()
                    break
                kind = frame[0]
                if kind == "chunk":
                    _, chunk_id, messages, pages = frame
                    queued = {k: f for k, f in queued.items() if not f.done()}
                    queued[chunk_id] = pool.submit(post, chunk_id, messages, pages)
                elif kind == "stop":
                    stop.set()
                elif kind == "pace":
                    throttle.not_before(frame[1])
                elif kind == "halt":
                    sender.halt()
                    cancelled = [k for k, f in queued.items() if f.cancel()]
                    answer(("halted", cancelled))


def main(frames_fd: int) -> int:
    """The child: frames go out on `frames_fd` (the original stdout; see _CHILD)."""
    # The run decides how to stop and tells this process ("stop"), so the requests in flight
    # still finish and are recorded (a SIGTERM or SIGHUP to every process, from systemd
    # ending a service or a login session, say, too).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    with os.fdopen(frames_fd, "wb") as frames:
        serve(sys.stdin.buffer, frames)
    return 0
