"""`python -m pipeline init DIR`: a campaign folder that runs as it is, in the sandbox."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pipeline.config import CAMPAIGN_MAX, CAMPAIGN_NAME
from pipeline.errors import ScaffoldError
from pipeline.private import FILE_MODE, private_folder
from pipeline.sources.common import yaml_scalar

Log = Callable[[str], None]

_UNSAFE = re.compile(r"[^\w.\-]+")
_CAMPAIGN_LINE = re.compile(r"^campaign: .*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Part:
    """One file of the scaffold: where it goes in the folder, what it is, who may read it."""

    name: str  # relative to the campaign folder, and to pipeline/scaffold/
    what: str
    private: bool  # it holds customers' numbers: 0600 in a 0700 folder (see private.py)


PARTS = (
    Part("config.yaml", "the campaign's settings (sandbox: nothing is sent)", private=False),
    Part("templates/message.j2", "the message (Persian, with the opt-out footer)", private=False),
    Part("data/contacts.csv", "sample contacts: replace with your export", private=True),
)
_CONFIG, _OTHERS = PARTS[0], PARTS[1:]


def init_command(folder: Path, *, out: Log) -> int:
    """Make the folder (refusing before any write when it would overwrite), then say what next."""
    name = campaign_name(folder)
    make_campaign_folder(folder, name)
    out(f"made campaign folder {folder}:")
    for part in PARTS:
        out(f"  {part.name:<24}{part.what}")
    if name != Path(os.path.abspath(folder)).name:
        out(
            f"note: the campaign is named {name} (a campaign name holds letters, digits, "
            "'-', '_' and '.' only); change `campaign:` in config.yaml if you like."
        )
    config = shlex.quote(str(folder / _CONFIG.name))
    out("next:")
    out(f"  python -m pipeline {config} --dry-run")
    out(f"  python -m pipeline {config}")
    return 0


def campaign_name(folder: Path) -> str:
    """The folder's own name when it is a valid campaign name, else a safe form of it."""
    name = Path(os.path.abspath(folder)).name  # `.` and `..` name real folders
    if CAMPAIGN_NAME.fullmatch(name) and len(name) <= CAMPAIGN_MAX:
        return name
    safe = _UNSAFE.sub("-", name)[:CAMPAIGN_MAX].strip("-.")
    return safe or "campaign"


def scaffold_text(part: Part) -> bytes:
    return resources.files("pipeline").joinpath("scaffold", part.name).read_bytes()


def scaffold_config(campaign: str) -> str:
    """The scaffold's config.yaml (the shipped one's twin, tests/test_init.py compares them)
    with the campaign's name; quoted where YAML would read it as something else (`1405`, `no`)."""
    text = scaffold_text(_CONFIG).decode("utf-8")
    value = yaml_scalar(campaign)
    text, count = _CAMPAIGN_LINE.subn(lambda _: f"campaign: {value}", text)
    if count != 1:
        raise AssertionError(f"the scaffold's config.yaml has {count} campaign lines, not 1")
    return text


def make_campaign_folder(folder: Path, campaign: str) -> None:
    """Write the scaffold into `folder` (made with its parents if missing). Everything that
    could stop it is checked first; a write that fails anyway is undone: all or nothing."""
    _check(folder)
    made: list[Path] = []  # what this call created, undone in reverse if a later write fails
    target = folder
    try:
        for missing in reversed([p for p in [folder, *folder.parents] if not p.exists()]):
            target = missing
            private_folder(missing)  # it will hold reports (customers' numbers) too
            made.append(missing)
        for part in PARTS:
            target = folder / part.name
            if not target.parent.exists():  # `_check` saw no file in its place
                if part.private:
                    private_folder(target.parent)
                else:
                    target.parent.mkdir()
                made.append(target.parent)
            data = scaffold_config(campaign).encode() if part is _CONFIG else scaffold_text(part)
            _write_new(target, data, private=part.private)
            made.append(target)
    except OSError as exc:
        left = _undo(made)
        where = exc.filename or target  # a failed write() names no file
        error = ScaffoldError(
            f"{where}: cannot be written ({exc.strerror or exc}). "
            "Fix: choose a folder this user may write to, with room on its disk."
        )
        if left:  # rare: the undo failed too (the disk went read-only meanwhile)
            error.unchanged = f"Some of it was made; remove it: {', '.join(map(str, left))}."
        raise error from exc


def _check(folder: Path) -> None:
    """Refuse, before anything is written, what would overwrite or cannot work."""
    fix = f"Fix: choose a new folder, e.g. `python -m pipeline init {folder}-2`"
    existing = next((p for p in [folder, *folder.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        what = "is a file" if existing == folder else f"cannot be made: {existing} is a file"
        raise ScaffoldError(f"{folder} {what}, not a folder. {fix}.")
    config = folder / _CONFIG.name
    if os.path.lexists(config):
        raise ScaffoldError(
            f"{config}: the folder already holds a campaign; init never overwrites one. "
            f"{fix}, or edit {config} to change this one."
        )
    taken = [folder / p.name for p in _OTHERS if os.path.lexists(folder / p.name)]
    blocked = [  # `templates` or `data` there as a file: the part cannot go inside it
        folder / p.name
        for p in _OTHERS
        if (parent := (folder / p.name).parent).exists() and not parent.is_dir()
    ]
    if taken or blocked:
        listed = ", ".join(map(str, taken + blocked))
        raise ScaffoldError(
            f"{folder}: init would overwrite {listed}; it never replaces a file. "
            f"{fix}, or move {'that file' if len(taken + blocked) == 1 else 'those files'} "
            "aside first."
        )


def _write_new(path: Path, data: bytes, *, private: bool) -> None:
    """Create `path` (never replacing one that appeared meanwhile: O_EXCL) holding `data`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE if private else 0o666)
    try:
        if private:
            os.fchmod(fd, FILE_MODE)  # os.open's mode is filtered by the umask
        with os.fdopen(fd, "wb", closefd=False) as handle:
            handle.write(data)
    except BaseException:
        os.unlink(path)  # ours (O_EXCL): a half-written file is not left behind
        raise
    finally:
        os.close(fd)


def _undo(made: list[Path]) -> list[Path]:
    """Remove what this call made, newest first; returns what could not be removed."""
    left = []
    for path in reversed(made):
        try:
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink()
        except OSError:
            left.append(path)
    return left
