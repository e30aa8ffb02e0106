"""The opt-out list: numbers never to message, read in any format, grown from blacklist answers."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pipeline.clock import tehran
from pipeline.errors import InputError
from pipeline.models import InvalidNumber
from pipeline.phones import find_mobiles, is_header_line
from pipeline.private import FILE_MODE, create_private, private_folder

HEADER = (
    "# Numbers that must never be messaged, one per line, in any format "
    "(0912..., +98..., ۰۹۱۲...);\n"
    "# other words on a line are fine. Anything after '#' is a comment. The pipeline adds "
    "numbers the provider reports as blacklisted.\n"
)
LISTED = "on the suppression list"  # a suppressed row's error
REPLIED = "replied «"  # how the comment of a line written for an opt-out reply starts
_LOCK_WAIT = 30.0  # seconds: a list change takes milliseconds; longer is a hung process
_LOCK_POLL = 0.05


@dataclass(slots=True)
class Suppression:
    path: Path | None  # None: in memory only (a sandbox run with no list)
    numbers: set[str]
    # Why a number held only in memory is suppressed (a sandbox opt-out): the row's error.
    notes: dict[str, str] = field(default_factory=dict)

    def __contains__(self, number: str) -> bool:
        return number in self.numbers

    def why(self, number: str) -> str:
        return self.notes.get(number, LISTED)

    def add(self, numbers: Iterable[tuple[str, str]], *, moment: datetime) -> int:
        """Append (number, why) pairs not yet listed; returns how many were added."""
        fresh = [(n, why) for n, why in numbers if n not in self.numbers]
        if not fresh or self.path is None:  # None: a sandbox run's, never written
            return 0
        stamp = tehran(moment).strftime("%Y-%m-%d %H:%M")
        # Not fsynced (10x the cost of the append): a blacklisted number lost to a power cut
        # is rejected, and listed, again by the next campaign that tries it.
        with edit_list(self.path, durable=False) as edit:
            for number, why in fresh:
                edit.append(number, f"{why}, {stamp} Tehran")
        self.numbers.update(number for number, _ in fresh)
        return len(fresh)


def list_lock(path: Path) -> Path:
    """The sidecar whose flock serialises every change to the list at `path`."""
    return path.with_name(path.name + ".lock")


@contextmanager
def locked(path: Path) -> Iterator[Path]:
    """Hold the list's flock (another process holds it for milliseconds: wait for it, within a
    bound); yields the list's real path, so two configs naming it through links share one lock."""
    real = Path(os.path.realpath(path))
    lock = list_lock(real)
    try:
        private_folder(lock.parent)
        create_private(lock)
        fd = os.open(lock, os.O_RDWR)
    except OSError as exc:
        raise _unwritable(path, exc) from None
    try:
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise InputError(
                        f"{lock}: another process has held the suppression list's lock for "
                        f"{_LOCK_WAIT:.0f} s. Fix: find it (fuser {lock}) and let it finish "
                        "or stop it, then run the same command again."
                    ) from None
                time.sleep(_LOCK_POLL)
        yield real
    finally:
        os.close(fd)  # frees the flock


class ListEdit:
    """The list's lines, under its lock: read when first asked, written once at the end (an
    append, or an atomic rewrite when a line goes)."""

    def __init__(self, path: Path, *, durable: bool = True) -> None:
        self.path = path
        self.durable = durable  # fsync what is appended (an opt-out is marked applied after it)
        self._lines: list[str] | None = None  # the file's lines, read lazily
        self._listed: Counter[str] = Counter()  # lines per number, the added ones too
        self._replied: dict[str, list[int]] = {}  # number -> its lines written for a reply
        self._dropped: set[int] = set()  # lines to leave out of the rewrite
        self._added: list[tuple[str, str]] = []  # (number, line) to append

    def _read(self) -> list[str]:
        if self._lines is None:  # most edits only append: a big list is not parsed for them
            try:
                with self.path.open(encoding="utf-8-sig", newline="") as f:  # CRLF kept
                    self._lines = f.read().splitlines(keepends=True)
            except FileNotFoundError:
                self._lines = []
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(
                    f"{self.path}: cannot read the suppression list ({exc}). "
                    "Fix: save it as UTF-8 text, one number per line."
                ) from None
            for index, line in enumerate(self._lines):
                if (number := _number_of(line)) is not None:
                    self._listed[number] += 1
                    if _written_for_reply(line):
                        self._replied.setdefault(number, []).append(index)
            self._listed.update(number for number, _ in self._added)
        return self._lines

    def listed(self, number: str) -> bool:
        self._read()
        return self._listed[number] > 0

    def append(self, number: str, comment: str) -> None:
        if self._lines is not None:  # else the first read counts it
            self._listed[number] += 1
        self._added.append((number, f"{number}  # {comment}\n"))

    def remove_replied(self, number: str) -> tuple[int, bool]:
        """Drop the lines this pipeline wrote for `number`'s opt-out replies; returns how many
        went and whether another line (the operator's, the provider's) still lists it."""
        self._read()
        gone = self._replied.pop(number, [])
        self._dropped.update(gone)
        added = [
            (n, line) for n, line in self._added if n != number or not _written_for_reply(line)
        ]
        removed = len(gone) + len(self._added) - len(added)
        self._added = added
        self._listed[number] -= removed
        return removed, self._listed[number] > 0

    def save(self) -> None:
        """Put the changes on disk, fsynced (the caller marks replies applied after this);
        what is asked afterwards is read from the file again."""
        try:
            if self._dropped:
                lines = [line for i, line in enumerate(self._read()) if i not in self._dropped]
                self._rewrite(lines + [line for _, line in self._added])
            elif self._added:
                self._append()
        except OSError as exc:
            raise _unwritable(self.path, exc) from None
        self._lines, self._added = None, []
        self._listed.clear()
        self._replied.clear()
        self._dropped.clear()

    def _append(self) -> None:
        new_file = not self.path.exists()
        private_folder(self.path.parent)
        create_private(self.path)  # a new list is 0600; an existing one keeps its mode
        with self.path.open("a+b") as f:
            f.seek(0, os.SEEK_END)
            at_end = f.tell()
            text = HEADER if new_file or at_end == 0 else ""
            if at_end:
                f.seek(at_end - 1)
                if f.read(1) not in (b"\n", b"\r"):  # a last line typed without its newline
                    text = "\n"
            f.write((text + "".join(line for _, line in self._added)).encode())
            f.flush()
            if self.durable:
                os.fsync(f.fileno())

    def _rewrite(self, lines: list[str]) -> None:
        """The whole list anew: a temporary file in its folder, fsynced, renamed over it, so a
        crash leaves the old list or the new one, never half of one. The mode is kept."""
        folder = self.path.parent
        try:
            mode = self.path.stat().st_mode & 0o7777
            bom = self.path.read_bytes()[:3] == b"\xef\xbb\xbf"
        except FileNotFoundError:
            mode, bom = FILE_MODE, False
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += "\n"
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".{self.path.name}.", suffix=".new")
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(("\ufeff" if bom else "") + "".join(lines))
                f.flush()
                os.fsync(f.fileno())
            os.replace(name, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
        folder_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(folder_fd)  # the rename survives a power cut
        finally:
            os.close(folder_fd)


@contextmanager
def edit_list(path: Path, *, durable: bool = True) -> Iterator[ListEdit]:
    """Change the list under its lock; the changes are saved when the block ends without error.
    Every change to a list goes through here, so processes never interleave theirs."""
    with locked(path) as real:
        edit = ListEdit(real, durable=durable)
        yield edit
        edit.save()


def _unwritable(path: Path, exc: OSError) -> InputError:
    return InputError(
        f"{path}: cannot add to the suppression list ({exc.strerror}). "
        "Fix: make the file and its folder writable by the user that runs the pipeline."
    )


def _number_of(line: str) -> str | None:
    """The one number a line lists (the pipeline's notes stand after '#'), else None."""
    found = find_mobiles(line.split("#", 1)[0])
    return found[0] if isinstance(found, list) and len(found) == 1 else None


def _written_for_reply(line: str) -> bool:
    _, hash_, comment = line.partition("#")
    return bool(hash_) and comment.lstrip().startswith(REPLIED)


def load_suppression(path: Path, shown: str) -> Suppression:
    """Read the list (a missing file: empty). A line suppresses the one mobile number in it;
    blank lines, comments ('#' on) and a CSV header (the first other line, no
    number and under 7 digits: phones.is_header_line) are skipped.
    A line with no readable number or two stops the run: it must never be messaged unnoticed."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return Suppression(path, set())
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{shown}: cannot read the suppression list ({exc}). "
            "Fix: save it as UTF-8 text, one number per line."
        ) from None
    return Suppression(path, set(read_numbers(text, shown)))


def read_numbers(text: str, shown: str) -> list[str]:
    """The mobile numbers of a file of numbers (the opt-out list, settle's --numbers), in order,
    once each: one a line, anywhere on it; blank lines, comments ('#' on) and a CSV header (the
    first other line, `is_header_line`) skipped. A line with no readable number or two is an
    InputError naming it (and the next bad ones): it must never be skipped unnoticed."""
    numbers: dict[str, None] = {}
    problems: list[tuple[int, str]] = []  # (line number, text)
    first = True
    for line_number, line in enumerate(text.splitlines(), 1):
        # The pipeline's own notes (a date, a quoted reply) stand after '#': never a number.
        value = line.split("#", 1)[0]
        if not value.strip():
            continue
        header, first = first and is_header_line(value), False
        found = find_mobiles(value)
        if isinstance(found, list) and len(found) == 1:
            numbers[found[0]] = None
        elif not header:
            problems.append((line_number, value))
    if problems:
        raise InputError(_unreadable(shown, problems))
    return list(numbers)


_SHOWN_CHARS = 60  # of a bad line in the message: enough to find it, not a screenful
_SHOWN_LINES = 5  # further bad lines named by number


def _unreadable(shown: str, problems: list[tuple[int, str]]) -> str:
    line_number, value = problems[0]
    found = find_mobiles(value)
    text = value.strip()
    text = text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"
    if isinstance(found, InvalidNumber):
        what = f"no mobile number on this line ({found.reason})"
        fix = (
            "write the number on the line in full (such as 09121234567), or start the line "
            "with '#' to keep it as a comment"
        )
    else:
        what = f"{len(found)} mobile numbers on one line ({', '.join(found)})"
        fix = "put each number on its own line"
    others = [str(number) for number, _ in problems[1:]]
    if others:
        listed = ", ".join(others[:_SHOWN_LINES]) + (", ..." if len(others) > _SHOWN_LINES else "")
        what += f"; {'lines' if len(others) > 1 else 'line'} {listed} cannot be read either"
    return f"{shown}:{line_number}: «{text}»: {what}. Fix: {fix}."
