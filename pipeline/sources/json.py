"""JSON (a list of objects) and JSON Lines (one object a line), numbers kept as their text."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.sources.common import Rows, cell_text, check_utf8, decimal_text

_KINDS = {dict: "an object", list: "a list", type(None): "null"}  # else "a single value"
_EXAMPLE = '{"mobile": "09121234567", "name": "..."}'
_AS_UTF8 = "JSON must be UTF-8: save the file again as UTF-8 in a text editor."
_TOO_DEEP = (
    "lists or objects are nested inside each other too deeply to read (hundreds of levels). "
    f"Fix: write each contact as an object of plain values, like {_EXAMPLE}."
)


def read_array(path: Path, shown: str, _read_rows: int) -> Rows:  # one value: read whole
    check_utf8(path, shown, _AS_UTF8)
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise InputError(f"{shown}: the file is empty. Write the contacts as [{_EXAMPLE}, ...].")
    data = _parsed(text, shown)
    if not isinstance(data, list):
        raise InputError(
            f"{shown}: the top level is {_KINDS.get(type(data), 'a single value')}, not a list. "
            f"Write the contacts as a list of objects: [{_EXAMPLE}, ...]."
        )
    records = [_record(item, f"{shown}: item {index}") for index, item in enumerate(data, 1)]
    empty = f"{shown}: no contact has any field. Write the contacts as [{_EXAMPLE}, ...]."
    yield from _header_then_rows(lambda: records, empty)


def read_lines(path: Path, shown: str, _read_rows: int) -> Rows:  # a line at a time
    check_utf8(path, shown, _AS_UTF8)
    empty = f"{shown}: the file has no contacts. Write one object per line, like {_EXAMPLE}."
    yield from _header_then_rows(lambda: _line_records(path, shown), empty)


def _header_then_rows(records: Callable[[], Iterable[dict[str, str]]], empty: str) -> Rows:
    """Every key (first seen first), then the rows. JSON Lines is read twice: the header needs
    every line, and so a broken line stops the run at open."""
    header = list(dict.fromkeys(key for record in records() for key in record))
    if not header:
        raise InputError(empty)
    yield header
    for record in records():
        yield [record.get(key, "") for key in header]


def _line_records(path: Path, shown: str) -> Iterator[dict[str, str]]:
    with path.open(encoding="utf-8-sig") as handle:
        for line, text in enumerate(handle, 1):
            if not text.strip():
                yield {}  # a blank line: a blank row, so rows stay line numbers
            else:
                yield _record(_parsed(text, shown, line), f"{shown}:{line}: the line")


def _parsed(text: str, shown: str, line: int | None = None) -> Any:
    """JSON with numbers kept as text from the start: no float ever holds a phone."""
    where = shown if line is None else f"{shown}:{line}"

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        record: dict[str, Any] = {}
        for key, value in pairs:
            if key in record:  # json would keep the last of the two
                raise InputError(f"{where}: an object has the key '{key}' twice. Keep one.")
            record[key] = value
        return record

    try:
        return json.loads(
            text,
            parse_int=str,
            parse_float=lambda number: decimal_text(Decimal(number)),
            parse_constant=str,
            object_pairs_hook=unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{shown}:{exc.lineno if line is None else line}: not valid JSON "
            f"({exc.msg}, column {exc.colno}). "
            "Fix the JSON there (a text editor or a JSON checker shows the spot)."
        ) from exc
    except RecursionError as exc:  # json's C parser counts its depth against Python's limit
        raise InputError(f"{where}: {_TOO_DEEP}") from exc


def _record(item: object, where: str) -> dict[str, str]:
    if not isinstance(item, dict):
        raise InputError(
            f"{where} is {_KINDS.get(type(item), 'a single value')}, not an object. "
            f"Make every contact an object like {_EXAMPLE}."
        )
    try:
        record = {
            key.replace("\ufeff", "").strip(): cell_text(value) for key, value in item.items()
        }
    except RecursionError as exc:  # a nested value just within the parser's depth, written back
        raise InputError(f"{where}: {_TOO_DEEP}") from exc
    if len(record) < len(item):
        twice = Counter(key.replace("\ufeff", "").strip() for key in item).most_common(1)[0][0]
        raise InputError(
            f"{where} has the key '{twice}' more than once (spaces around keys do not count). "
            "Keep one."
        )
    return record
