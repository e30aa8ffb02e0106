"""`status CONFIG`: what the journal knows of one campaign, read only (issue 15: to be built)."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.config import Config


def status_command(config: Config, *, as_json: bool, out: Callable[[str], None]) -> int:
    raise NotImplementedError
