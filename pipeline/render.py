"""Render one SMS text per contact row from a Jinja2 template, in a bounded sandbox."""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError

from pipeline import bounds
from pipeline.errors import RenderOverrun, TemplateError

ROW = "row"
_MAX_REASON = 200
_BATCH = 32  # chunks of rendered text joined at a time (a real SMS has fewer)


@dataclass(frozen=True, slots=True)
class RenderFailure:
    """Why one row's text could not be rendered (a plain sentence for the report)."""

    reason: str


class Renderer:
    """A template compiled once and rendered for each row. Each column is a variable, and `row`
    maps them all, for names that are not identifiers: ``{{ row["نام"] }}``. StrictUndefined:
    a misspelt name is an error, not a gap in the SMS; no HTML, so no autoescape."""

    def __init__(
        self,
        source: str,
        *,
        name: str,
        filters: Mapping[str, Callable[..., Any]] | None = None,
        globals: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        environment = bounds.Sandbox(undefined=StrictUndefined, autoescape=False)
        environment.filters.update(filters or {})
        # The globals go in with each row's values: from environment.globals, Jinja would copy
        # them out of a ChainMap into every row's context, 8 us a row (more than the render).
        self._globals = {**environment.globals, **(globals or {})}
        environment.globals.clear()
        try:
            tree = environment.parse(source, name=name)
            undeclared = meta.find_undeclared_variables(tree) - set(self._globals)
            self._template = environment.from_string(tree)
        except TemplateSyntaxError as exc:
            message = exc.message or "syntax error"
            raise TemplateError(
                f"{name}:{exc.lineno}: {message.rstrip('.')}. Fix the template."
            ) from exc
        self.variables: frozenset[str] = _columns_used(tree, undeclared)
        self.reads_row = ROW in undeclared  # then any column may reach the text

    def check_columns(self, columns: Sequence[str]) -> None:
        known = set(columns)
        missing = sorted(variable for variable in self.variables if variable not in known)
        if not missing:
            return
        named = ", ".join(_with_suggestion(variable, columns) for variable in missing)
        listed = ", ".join(f"'{column}'" for column in columns)
        noun = "a column" if len(missing) == 1 else "columns"
        raise TemplateError(
            f"{self.name}: uses {named}, not {noun} of the contacts; the columns are {listed}. "
            "Fix the name in the template, or add the column to the contacts."
        )

    def render(self, values: Mapping[str, str]) -> str | RenderFailure:
        """The row's text, stripped of surrounding whitespace; a failure is returned, not raised."""
        clock = bounds.CLOCK
        if clock.thread != threading.get_ident():  # no render timer in force in this thread
            return self._render(values)
        # A tick raises only past a bound, TICK apart: one as _render returns (or in end()) is
        # caught here, and the next is far off.
        try:
            clock.begin()
            try:
                return self._render(values)
            finally:
                clock.end()  # also when a BaseException (Ctrl-C in a dry run) passes through
        except RenderOverrun as exc:
            clock.end()
            return RenderFailure(str(exc))

    def _render(self, values: Mapping[str, str]) -> str | RenderFailure:
        chunks = self._template.generate({**self._globals, **values, ROW: values})
        try:
            text = "".join(islice(chunks, _BATCH))
            # A template writing without end stops just past MAX_TEXT (writing nothing: the timer).
            for more in chunks:
                text += more + "".join(islice(chunks, _BATCH))
                if len(text) > bounds.MAX_TEXT:
                    break
            if len(text) > bounds.MAX_TEXT:
                raise RenderOverrun(
                    f"the template rendered {len(text):,} characters, more than {bounds.MAX_TEXT:,}"
                )
            text = text.strip()
        except Exception as exc:  # a bad row must become data, never stop the run
            return RenderFailure(_reason(exc))
        if not text:
            return RenderFailure("the template rendered an empty message")
        return text


def _columns_used(tree: nodes.Template, names: set[str]) -> frozenset[str]:
    """The undeclared `names`, with `row` replaced by the literal keys read under it."""
    if ROW not in names:
        return frozenset(names)
    keys = {
        item.arg.value
        for item in tree.find_all(nodes.Getitem)
        if isinstance(item.node, nodes.Name)
        and item.node.name == ROW
        and isinstance(item.arg, nodes.Const)
        and isinstance(item.arg.value, str)
    }
    return frozenset((names - {ROW}) | keys)


def _with_suggestion(variable: str, columns: Sequence[str]) -> str:
    by_folded = {column.casefold(): column for column in columns}
    found = difflib.get_close_matches(variable.casefold(), list(by_folded), n=1, cutoff=0.6)
    close = by_folded.get(variable.casefold()) or (by_folded[found[0]] if found else None)
    return f"'{variable}' (did you mean '{close}'?)" if close else f"'{variable}'"


def _reason(exc: Exception) -> str:
    if isinstance(exc, RenderOverrun):
        return str(exc)
    if isinstance(exc, UndefinedError):
        detail = f"the template uses something this row does not have: {exc}"
    elif isinstance(exc, SecurityError):
        detail = f"the template tried something the sandbox forbids: {exc}"
    else:
        detail = f"the template failed on this row: {type(exc).__name__}: {exc}"
    return detail if len(detail) <= _MAX_REASON else detail[: _MAX_REASON - 3] + "..."
