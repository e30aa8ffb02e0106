"""Replies to the line: read once from the provider, journalled first, then honoured (issue 15:
to be built)."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.config import Config


def replies_command(
    config: Config, *, out: Callable[[str], None], log: Callable[[str], None]
) -> int:
    raise NotImplementedError
