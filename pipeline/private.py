"""Files and folders that hold customers' numbers and names: their owner's alone (0600 / 0700),
set after creation, not left to the umask (cron often runs with 022: readable by every user)."""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(path: Path) -> None:
    """Create `path` and the parents it lacks as 0700; an existing folder is left as it is."""
    missing = list(itertools.takewhile(lambda p: not p.exists(), [path, *path.parents]))
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:  # made by another run meanwhile
            continue
        os.chmod(folder, FOLDER_MODE)  # mkdir's mode is filtered by the umask


def create_private(path: Path) -> None:
    """Make sure `path` exists; a file this call creates is 0600 (an existing one is untouched)."""
    with contextlib.suppress(FileExistsError):
        os.close(_open_0600(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))


def open_private(path: Path, mode: str = "w", **kwargs: Any) -> IO[Any]:
    """`path.open(mode, ...)` for writing, the file 0600 whether it is new or replaced."""
    append_or_truncate = os.O_APPEND if "a" in mode else os.O_TRUNC
    fd = _open_0600(path, os.O_WRONLY | os.O_CREAT | append_or_truncate)
    return os.fdopen(fd, mode, **kwargs)


def _open_0600(path: Path, flags: int) -> int:
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # os.open's mode is filtered by the umask
    except BaseException:
        os.close(fd)
        raise
    return fd
