"""Tests for pipeline.lock: one run per campaign, never a stale lock."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import JournalError, LockHeld
from pipeline.lock import hold_lock, lock_path, shared_lock_path

REPO = Path(__file__).resolve().parents[1]

TRY_LOCK = """
import sys
from pathlib import Path
from pipeline.errors import LockHeld
from pipeline.lock import hold_lock

try:
    with hold_lock(Path(sys.argv[1]), sys.argv[2]):
        print("took it")
except LockHeld as exc:
    print(exc, file=sys.stderr)
    sys.exit(exc.exit_code)
"""

HOLD_LOCK = """
import sys
from pathlib import Path
from pipeline.lock import hold_lock

with hold_lock(Path(sys.argv[1]), sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()
"""


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


ENV = {**os.environ, "PYTHONPATH": str(REPO)}
KEY = "spring"


def test_second_process_gets_lock_held_exit_4(tmp_path: Path) -> None:
    """While one run holds the lock, another process gets LockHeld (exit 4) naming file and PID."""
    journal = tmp_path / "state" / "journal.sqlite"
    with hold_lock(journal, KEY):
        other = subprocess.run(
            python(TRY_LOCK, str(journal), KEY),
            env=ENV,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert other.returncode == 4, other.stderr
    assert other.stdout == ""
    message = other.stderr.strip()
    assert message.startswith(f"{lock_path(journal, KEY)}: another run of campaign 'spring' is ")
    assert f"(PID {os.getpid()})" in message
    assert "this run did nothing" in message


def test_lock_is_free_at_once_after_holder_is_sigkilled(tmp_path: Path) -> None:
    """A holder killed with SIGKILL leaves no stale lock: the next run takes it immediately."""
    journal = tmp_path / "journal.sqlite"
    holder = subprocess.Popen(
        python(HOLD_LOCK, str(journal), KEY),
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(LockHeld, match=rf"\(PID {holder.pid}\)"), hold_lock(journal, KEY):
            pass
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    with hold_lock(journal, KEY):
        assert lock_path(journal, KEY).read_text() == f"{os.getpid()}\n"
    assert lock_path(journal, KEY).exists()  # never deleted


def test_same_process_can_retake_after_release(tmp_path: Path) -> None:
    """After release the same process takes the lock again; while held, even it is refused."""
    journal = tmp_path / "journal.sqlite"
    with hold_lock(journal, KEY), pytest.raises(LockHeld), hold_lock(journal, KEY):
        pass
    with hold_lock(journal, KEY):
        pass
    with pytest.raises(RuntimeError, match="boom"), hold_lock(journal, KEY):
        raise RuntimeError("boom")
    with hold_lock(journal, KEY):
        pass


def test_existing_lock_file_is_not_a_lock(tmp_path: Path) -> None:
    """A lock file left with a dead run's PID does not block: only a held flock does."""
    journal = tmp_path / "journal.sqlite"
    lock_path(journal, KEY).write_text("999999\n")
    with hold_lock(journal, KEY):
        assert lock_path(journal, KEY).read_text() == f"{os.getpid()}\n"
    assert lock_path(journal, KEY).read_text() == ""  # no PID of a finished run is left behind


def test_lock_file_that_cannot_be_created(tmp_path: Path) -> None:
    """A lock file under a path that is a file gives a JournalError (exit 2) naming it."""
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    journal = blocker / "journal.sqlite"
    expected = f"^{re.escape(str(shared_lock_path(journal)))}: cannot create"  # the first taken
    with pytest.raises(JournalError, match=expected) as caught, hold_lock(journal, KEY):
        pass
    assert caught.value.exit_code == 2


def test_the_lock_file_and_its_folder_are_the_owners_alone(tmp_path: Path) -> None:
    """Made under umask 000, the lock file is 0600 and the folders made for it 0700 (the
    lock sits beside the journal, in the folder of customers' numbers)."""
    journal = tmp_path / "state" / "deep" / "journal.sqlite"
    before = os.umask(0)
    try:
        with hold_lock(journal, KEY):
            pass
    finally:
        os.umask(before)
    files = (lock_path(journal, KEY), shared_lock_path(journal), journal.parent)
    assert [stat.S_IMODE(p.stat().st_mode) for p in files] == [0o600, 0o600, 0o700]
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
