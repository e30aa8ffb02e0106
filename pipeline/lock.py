"""One run per campaign: an exclusive flock on `<journal>.<campaign>.lock` that the kernel frees
when we die, so campaigns sharing a journal run side by side and a campaign never twice."""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from pipeline.errors import JournalError, LockHeld
from pipeline.private import create_private, private_folder

_KEY = re.compile(r"(?:sandbox:)?[\w.\-]+")  # campaign.journal_key: the name, maybe `sandbox:`
# A lock file without a PID is held for microseconds only: by `status` probing it, or by a run
# between taking it and writing its PID. Asked again for this long before calling it a run.
_SETTLE = 0.2


def lock_path(journal_path: Path, key: str) -> Path:
    """The lock of campaign `key` on this journal, beside it. `:` (sandbox keys) becomes `+`,
    which no campaign name holds, so the name stays unique: a `:` in a file name is read as
    `host:` by scp and rsync, and refused by SMB and FAT mounts."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"{key!r} is not a campaign's journal key")
    return journal_path.with_name(f"{journal_path.name}.{key.replace(':', '+')}.lock")


def shared_lock_path(journal_path: Path) -> Path:
    """The lock of the whole journal, as versions before per-campaign locks took it (exclusive):
    a run takes it shared, so it runs beside other campaigns' runs but never beside an older
    pipeline's run, which would recover every campaign's rows in flight as `unknown`."""
    return journal_path.with_name(journal_path.name + ".lock")


@contextmanager
def hold_lock(journal_path: Path, key: str) -> Iterator[None]:
    """Hold campaign `key`'s lock for the block, or raise LockHeld at once; not re-entrant. The
    lock is the flock (SIGKILL leaves none stale); the file, for the PID, is never deleted (a run
    holding the old file and one that made a new one would both hold "the" lock)."""
    with ExitStack() as stack:
        shared = stack.enter_context(_opened(shared_lock_path(journal_path)))
        try:
            fcntl.flock(shared, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(
                f"{shared_lock_path(journal_path)}: a run of an older version of the pipeline "
                f"holds this journal (PID {_pid(shared) or 'unknown'}); this run did nothing. "
                "Wait for it to finish (or stop it), then run the same command again"
            ) from None
        path = lock_path(journal_path, key)
        fd = stack.enter_context(_opened(path))
        _take(fd, path, key)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            # Still locked, so no other run reads it: leave no PID of a finished run.
            os.ftruncate(fd, 0)
    # Closing the last descriptor of each file released its flock.


def holder(journal_path: Path, key: str) -> int | None:
    """The PID of the run holding campaign `key`'s lock (0 if it wrote none yet), or None when
    no run holds it. Creates nothing and writes nothing: a missing lock file is no run."""
    try:
        fd = os.open(lock_path(journal_path, key), os.O_RDONLY)
    except OSError:  # missing: no run ever took it; unreadable: not ours to tell
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _pid(fd)
        return None  # closing the descriptor lets it go at once
    finally:
        os.close(fd)


def _take(fd: int, path: Path, key: str) -> None:
    deadline = time.monotonic() + _SETTLE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pid = _pid(fd)
            if pid or time.monotonic() > deadline:
                break
            time.sleep(0.005)
    by = f" (PID {pid})" if pid else ""
    name = key.removeprefix("sandbox:")
    named = f"{name!r} (sandbox)" if name != key else repr(name)
    raise LockHeld(
        f"{path}: another run of campaign {named} is in progress{by}; this run did nothing. "
        "Wait for it to finish (or stop it), then run the same command again"
    )


def _pid(fd: int) -> int:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()  # "" until written
    return int(text) if text.isdigit() else 0


def cap_lock_path(journal_path: Path) -> Path:
    """Held by every sending run that applies a frequency cap (`+`: no campaign is named so)."""
    return journal_path.with_name(journal_path.name + "+cap.lock")


@contextmanager
def hold_cap_lock(
    journal_path: Path, stop: Callable[[float], bool], log: Callable[[str], None]
) -> Iterator[None]:
    """Capped runs on one journal one at a time, each from its plan to its end: a cap counts
    what other campaigns sent, and two planning at once would each count none of the other's
    (both send). Waits (cron's 10:00 lines run one after the other); `stop(seconds)` waits and
    says whether to give up (Ctrl-C, SIGTERM), which ends the wait as an interrupt."""
    path = cap_lock_path(journal_path)
    with _opened(path) as fd:
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not said:
                    log(
                        f"waiting: another run with a frequency cap is sending on {journal_path}; "
                        "this one plans when it ends, counting what it sent"
                    )
                    said = True
                if stop(_CAP_POLL):
                    raise KeyboardInterrupt from None
        yield


_CAP_POLL = 0.2  # seconds between tries of a held cap lock


@contextmanager
def _opened(path: Path) -> Iterator[int]:
    try:
        private_folder(path.parent)
        create_private(path)
        fd = os.open(path, os.O_RDWR)
    except OSError as exc:
        raise JournalError(
            f"{path}: cannot create the journal's lock file ({exc.strerror}); "
            "make its folder writable by this user, or point journal.path elsewhere"
        ) from exc
    try:
        yield fd
    finally:
        os.close(fd)
