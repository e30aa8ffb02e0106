"""config.yaml's text to plain values: the safe YAML load, each key's line, ${VAR} expansion."""

from __future__ import annotations

import os
import re
from typing import Any

import yaml

from pipeline.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Values once every alias (*name) is written out; a real config has under a hundred. Aliases of
# aliases multiply (the "billion laughs": nine levels of nine make 387 million, hours to walk).
MAX_VALUES = 10_000


def read_yaml(text: str, shown: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The mapping `text` holds, ${VAR}s expanded, and each dotted key's 1-based line."""
    lines = _key_lines(text, shown)
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader: builds plain values only
    except yaml.YAMLError as exc:  # a tag SafeLoader refuses (!!python/object ...)
        raise ConfigError(
            f"{shown}: {exc}. Fix: write the value plainly, without a `!!` tag."
        ) from None
    except (ValueError, TypeError, AttributeError) as exc:  # `!!float abc`, `!!timestamp x`
        raise ConfigError(
            f"{shown}: a value with an explicit tag cannot be read as that type ({exc}). "
            "Fix: write the value plainly, without a `!!` tag."
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{shown}: expected a mapping of keys (campaign:, contacts:, template:, ...). "
            "Fix: start from the commented config.yaml in the repository."
        )
    return _expand(data, "", lines, shown), lines


def where(shown: str, lines: dict[str, int], key: str) -> str:
    """`config.yaml:12` when the key's line is known, else the file alone."""
    line = lines.get(key)
    return f"{shown}:{line}" if line else shown


class _Loader(yaml.SafeLoader):
    """SafeLoader, but a timestamp that is no Gregorian date stays text: maybe Jalali."""


def _date_or_text(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    assert isinstance(node, yaml.ScalarNode)  # the timestamp tag is only ever resolved on scalars
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _date_or_text)


def _check_aliases(root: yaml.Node, shown: str) -> None:
    """Refuse aliases that expand past MAX_VALUES or refer to themselves (each counted once)."""
    sizes: dict[int, int] = {}  # id(node) -> expanded size; -1 while its children are counted

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known == -1:
            raise ConfigError(
                f"{shown}:{node.start_mark.line + 1}: an alias (*name) refers to a value that "
                "holds it, which never ends. Fix: write the value out without the alias."
            )
        if known is not None:
            return known
        sizes[id(node)] = -1
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_VALUES:
                raise ConfigError(
                    f"{shown}: its aliases (*name) expand to more than {MAX_VALUES:,} values "
                    "(aliases that repeat aliases multiply). Fix: write the values out; a "
                    "config needs no aliases."
                )
        sizes[id(node)] = total
        return total

    size(root)


def _key_lines(text: str, shown: str) -> dict[str, int]:
    """Map each dotted key path to its 1-based line, rejecting YAML errors and duplicate keys."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f"{shown}:{mark.line + 1}" if mark is not None else shown
        raise ConfigError(
            f"{at}: YAML syntax error: {exc.problem}. "
            "Fix: check indentation (spaces, not tabs) and quote values containing ': ' or '#'."
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{shown}: YAML error: {exc}") from None
    except RecursionError:  # PyYAML composes nested values by recursion
        raise ConfigError(
            f"{shown}: values are nested inside each other too deeply to read. "
            "Fix: start from the commented config.yaml in the repository."
        ) from None
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, prefix: str) -> None:
        if not isinstance(node, yaml.MappingNode):
            return
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            if key in lines:
                raise ConfigError(
                    f"{shown}:{key_node.start_mark.line + 1}: {key}: given twice "
                    f"(first on line {lines[key]}). Fix: keep one."
                )
            lines[key] = key_node.start_mark.line + 1
            walk(value_node, key + ".")

    if root is not None:
        _check_aliases(root, shown)
        walk(root, "")
    return lines


def _expand(value: Any, key: str, lines: dict[str, int], shown: str) -> Any:
    """Replace ${NAME} in every string from the environment; an unset NAME is an error."""
    if isinstance(value, dict):
        return {
            k: _expand(v, f"{key}.{k}" if key else str(k), lines, shown) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expand(v, key, lines, shown) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        found = os.environ.get(name)
        if found is None:
            raise ConfigError(
                f"{where(shown, lines, key)}: {key}: the environment variable {name} is not set. "
                f"Fix: `export {name}=...` (in cron, set it on the crontab line or in the script "
                "that runs the pipeline)."
            )
        return found

    return _VAR.sub(substitute, value)
