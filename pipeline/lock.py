"""One run per journal: an exclusive flock on `<journal>.lock` that the kernel frees when we die."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import JournalError, LockHeld
from pipeline.private import create_private, private_folder


def lock_path(journal_path: Path) -> Path:
    return journal_path.with_name(journal_path.name + ".lock")


@contextmanager
def hold_lock(journal_path: Path) -> Iterator[None]:
    """Hold the lock for the block, or raise LockHeld at once; not re-entrant. The lock is the
    flock (SIGKILL leaves none stale); the file, for the PID, is never deleted (a run holding the
    old file and one that made a new one would both hold "the" lock)."""
    path = lock_path(journal_path)
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
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()  # "" until written
            by = f" (PID {int(text)})" if text.isdigit() and int(text) else ""
            raise LockHeld(
                f"{path}: another run of this campaign's journal is in progress{by}; this run did "
                "nothing. Wait for it to finish (or stop it), then run the same command again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            # Still locked, so no other run reads it: leave no PID of a finished run.
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the last descriptor releases the flock
