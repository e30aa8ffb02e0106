"""The opt-out list: numbers never to message, read in any format, grown from blacklist answers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.clock import tehran
from pipeline.errors import InputError
from pipeline.models import InvalidNumber
from pipeline.phones import normalise_mobile
from pipeline.private import create_private, private_folder

HEADER = (
    "# Numbers that must never be messaged, one per line, in any format "
    "(0912..., +98..., ۰۹۱۲...).\n"
    "# Anything after '#' is a comment. The pipeline adds numbers the provider reports "
    "as blacklisted.\n"
)


@dataclass(slots=True)
class Suppression:
    """The numbers on the list (normalised), and the lines that were not numbers."""

    path: Path
    numbers: set[str]
    unreadable: int  # non-empty lines that are not a mobile number (reported, not fatal)

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
    """Read the list; a missing file is an empty list (it is created on the first addition)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return Suppression(path, set(), 0)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{shown}: cannot read the suppression list ({exc}). "
            "Fix: save it as UTF-8 text, one number per line."
        ) from None
    numbers: set[str] = set()
    unreadable = 0
    for line in text.splitlines():
        # A line may be a bare number or the first cell of a CSV export.
        value = line.split("#", 1)[0].split(",", 1)[0].strip()
        if not value:
            continue
        number = normalise_mobile(value)
        if isinstance(number, InvalidNumber):
            unreadable += 1
        else:
            numbers.add(number)
    return Suppression(path, numbers, unreadable)
