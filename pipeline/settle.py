"""`settle CONFIG --as sent|unsent`: the operator closes `unknown` rows (issue 15: to be built)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.config import Config


def settle_command(
    config: Config, *, as_state: str, numbers: Path | None, out: Callable[[str], None]
) -> int:
    raise NotImplementedError
