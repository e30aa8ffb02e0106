"""The opt-out list: numbers never to message, read in any format, grown from blacklist answers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.clock import tehran
from pipeline.errors import InputError
from pipeline.models import InvalidNumber
from pipeline.phones import find_mobiles
from pipeline.private import create_private, private_folder

HEADER = (
    "# Numbers that must never be messaged, one per line, in any format "
    "(0912..., +98..., ۰۹۱۲...);\n"
    "# other words on a line are fine. Anything after '#' is a comment. The pipeline adds "
    "numbers the provider reports as blacklisted.\n"
)


@dataclass(slots=True)
class Suppression:
    path: Path
    numbers: set[str]

    def __contains__(self, number: str) -> bool:
        return number in self.numbers

    def add(self, numbers: Iterable[tuple[str, str]], *, moment: datetime) -> int:
        """Append (number, why) pairs not yet listed; returns how many were added."""
        fresh = [(n, why) for n, why in numbers if n not in self.numbers]
        if not fresh:
            return 0
        stamp = tehran(moment).strftime("%Y-%m-%d %H:%M")
        new_file = not self.path.exists()
        try:
            private_folder(self.path.parent)
            create_private(self.path)  # a new list is 0600; an existing one keeps its mode
            with self.path.open("a", encoding="utf-8") as f:
                if new_file:
                    f.write(HEADER)
                for number, why in fresh:
                    f.write(f"{number}  # {why}, {stamp} Tehran\n")
                    self.numbers.add(number)
        except OSError as exc:
            raise InputError(
                f"{self.path}: cannot add to the suppression list ({exc.strerror}). "
                "Fix: make the file writable by the user that runs the pipeline."
            ) from None
        return len(fresh)


def load_suppression(path: Path, shown: str) -> Suppression:
    """Read the list (a missing file: empty). A line suppresses the one mobile number in it;
    blank lines, comments ('#' on) and a CSV header (the first other line, no digit) are skipped.
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
    numbers: set[str] = set()
    problems: list[tuple[int, str]] = []  # (line number, text)
    first = True
    for line_number, line in enumerate(text.splitlines(), 1):
        # The pipeline's own notes (a date, a quoted reply) stand after '#': never a number.
        value = line.split("#", 1)[0]
        if not value.strip():
            continue
        header, first = first and not any(char.isdigit() for char in value), False
        found = find_mobiles(value)
        if isinstance(found, list) and len(found) == 1:
            numbers.add(found[0])
        elif not header:
            problems.append((line_number, value))
    if problems:
        raise InputError(_unreadable(shown, problems))
    return Suppression(path, numbers)


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
