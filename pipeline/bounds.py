"""The bounds on rendering one row: a template's mistake (a loop over the wrong range, a macro
calling itself) must cost one row, not the run. What builds much from little (* ** + %, filters
and str methods with a width, count or separator) is refused past MAX_VALUE before it runs;
namespace attributes and call arguments are checked, so nothing doubles unseen from one loop
pass or call to the next. SIGALRM stops a render past MAX_SECONDS or MAX_MEMORY (time_limit).
Each stop raises RenderOverrun, the row's error (`invalid`)."""

from __future__ import annotations

import gc
import math
import re
import resource
import signal
import string
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from itertools import chain
from types import FrameType
from typing import Any

from jinja2 import pass_environment, pass_eval_context
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from pipeline.errors import RenderOverrun

MAX_TEXT = 10_000  # characters of a row's text; template.max_pages allows 3,060 (20 GSM-7 pages)
MAX_VALUE = 100_000  # characters (items, digits) of a value the template builds; range() too
MAX_SECONDS = 2.0  # one row's render; a real SMS renders in a few microseconds
MAX_MEMORY = 50 * 2**20  # bytes a render may add to the process's memory
TICK = 0.1  # seconds between two looks at a render still running

_LOG10_2 = math.log10(2)
_MORE = f"more than {MAX_VALUE:,}"


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, with the size bounds on its override points and filters."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})  # what can grow far past its operands

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters.update(_checked_filters(self.filters))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _refuse_times(left, right)
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
                exponent = min(right, 10**15)  # past any bound already, and still a float
                digits = _digits(exponent * math.log2(abs(left)))
                _refuse_over(digits, "digits", exact=right == exponent)
        elif operator == "+":
            if isinstance(left, str | bytes) and isinstance(right, type(left)):
                _refuse_over(len(left) + len(right))
            elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
                _refuse_over(size(left) + size(right), "items and characters", exact=False)
        elif operator == "%" and isinstance(left, str):
            _check_percent(left, right)
        return super().call_binop(context, operator, left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        # Every call's arguments: recursion (a macro, loop(...)) can double a value unbounded.
        owner, name = getattr(obj, "__self__", None), getattr(obj, "__name__", "")
        if isinstance(owner, str | bytes) and name == "join" and args:
            args = (tuple(args[0]), *args[1:])  # its length is needed before it is joined
        for value in chain(args, kwargs.values()):
            checked(value)
        predict = _STR_METHODS.get(name) if isinstance(owner, str | bytes) else None
        if predict is not None:
            _refuse_over(predict(owner, *args, **kwargs), exact=False)
        return super().call(context, obj, *args, **kwargs)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, Namespace):  # a loop's way to carry a value to its next pass
            checked(value)
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:  # .format, .format_map
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template, by_name = value.__self__, value.__name__ == "format_map"

        def checked_format(*args: Any, **kwargs: Any) -> str:
            named = args[0] if by_name and args and isinstance(args[0], Mapping) else kwargs
            _check_format(template, (*args, *named.values()))
            return wrapped(*args, **kwargs)

        return checked_format


def checked(value: object) -> None:
    measured = size(value)
    if measured > MAX_VALUE and isinstance(value, str | bytes | int):
        unit = "digits" if isinstance(value, int) else "characters"
        raise RenderOverrun(f"the template built a value of {measured:,} {unit}, {_MORE}")
    if measured > MAX_VALUE:  # the walk stopped early (see size): a lower bound
        raise RenderOverrun(f"the template built a list of {_MORE} items and characters")


def size(value: object, budget: int = MAX_VALUE) -> int:
    """Characters, digits or items and theirs; stops past `budget`: costs at most what it guards."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, int):
        return _digits(abs(value).bit_length())
    if isinstance(value, list | tuple | set | frozenset | dict):
        total = len(value)
        items = chain.from_iterable(value.items()) if isinstance(value, dict) else value
        for item in items:
            if total > budget:
                break
            total += size(item, budget - total)
        return total
    return 0


def _digits(bits: float) -> int:
    return int(bits * _LOG10_2) + 1


def _refuse_over(measured: int, unit: str = "characters", *, exact: bool = True) -> None:
    # exact: `measured` is no lower bound from size()
    if measured > MAX_VALUE:
        value = f"{measured:,} {unit}, {_MORE}" if exact else f"{_MORE} {unit}"
        raise RenderOverrun(f"the template would build a value of {value}")


def _refuse_padding(*widths: object) -> None:
    for width in widths:
        if isinstance(width, int) and width > MAX_VALUE:
            raise RenderOverrun(f"the template pads a value to {width:,}, {_MORE}")


def _refuse_times(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        _refuse_over(_digits(abs(left).bit_length() + abs(right).bit_length()), "digits")
        return
    count, value = (left, right) if isinstance(left, int) else (right, left)
    if isinstance(count, int) and isinstance(value, str | bytes):
        _refuse_over(len(value) * max(count, 0))
    elif isinstance(count, int) and isinstance(value, list | tuple):
        _refuse_over(size(value) * max(count, 0), "items and characters", exact=False)


# `%[(name)][flags][width][.precision]`: the numbers that pad a formatted value.
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_percent(template: str, values: Any) -> None:  # also the `format` filter
    for width, precision in _PERCENT_SPEC.findall(template):
        for number in (width, precision):
            if number == "*":  # the width is one of the values
                _refuse_padding(*(values if isinstance(values, tuple) else (values,)))
            elif number:
                _refuse_padding(int(number[:6]))  # six digits are past MAX_VALUE already


def _check_format(template: str, values: tuple[Any, ...]) -> None:
    for _literal, _field, spec, _conversion in string.Formatter().parse(template):
        if spec and "{" in spec:  # a width taken from the values: {:{width}}
            _refuse_padding(*values)
        elif spec:
            _refuse_padding(*(int(number[:6]) for number in re.findall(r"\d+", spec)))


def _padded(text: str | bytes, width: Any = 0, *_args: Any) -> int:
    return max(len(text), width if isinstance(width, int) else 0)


def _tabs(text: str | bytes, tabsize: Any = 8) -> int:
    tab = "\t" if isinstance(text, str) else b"\t"
    return len(text) + text.count(tab) * (tabsize if isinstance(tabsize, int) else 8)  # type: ignore[arg-type]


def _joined(separator: str | bytes, items: Any = (), *_args: Any) -> int:
    return len(separator) * max(len(items) - 1, 0) + size(items)


def _replaced(text: str | bytes, old: Any = "", new: Any = "", count: Any = -1) -> int:
    if not isinstance(old, str | bytes) or not isinstance(new, str | bytes):
        return len(text)
    found = text.count(old) if old else len(text) + 1  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _translated(text: str | bytes, table: Any = None, *_args: Any) -> int:
    longest = max((size(v) for v in table.values()), default=1) if isinstance(table, dict) else 1
    return len(text) * max(longest, 1)


# The str (and bytes) methods whose result can be far larger than the text: its size, predicted.
_STR_METHODS: dict[str, Callable[..., int]] = dict.fromkeys(
    ("center", "ljust", "rjust", "zfill"), _padded
) | {"expandtabs": _tabs, "join": _joined, "replace": _replaced, "translate": _translated}


def _checked_filters(builtin: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """The filters that pad, repeat or fill, checked (templates call them past Sandbox.call)."""
    center, indent, fmt = builtin["center"], builtin["indent"], builtin["format"]
    join, replace, wordwrap = builtin["join"], builtin["replace"], builtin["wordwrap"]
    batch, slice_, tojson = builtin["batch"], builtin["slice"], builtin["tojson"]

    def do_center(value: Any, width: int = 80) -> Any:
        _refuse_padding(width)
        return center(value, width)

    def do_indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> Any:
        step = width if isinstance(width, int) else len(str(width))
        _refuse_over(len(str(s)) + (str(s).count("\n") + 1) * step, exact=False)
        return indent(s, width, first, blank)

    def do_format(value: Any, *args: Any, **kwargs: Any) -> Any:
        _check_percent(str(value), kwargs or args)
        return fmt(value, *args, **kwargs)

    @pass_eval_context
    def do_join(eval_ctx: EvalContext, value: Any, d: str = "", attribute: Any = None) -> Any:
        items = list(value)
        _refuse_over(_joined(str(d), items), exact=False)
        return join(eval_ctx, items, d, attribute)

    @pass_eval_context
    def do_replace(eval_ctx: EvalContext, s: Any, old: Any, new: Any, count: Any = None) -> Any:
        _refuse_over(_replaced(str(s), str(old), str(new), -1 if count is None else count))
        return replace(eval_ctx, s, old, new, count)

    @pass_environment
    def do_wordwrap(environment: Any, s: Any, width: int = 79, *args: Any, **kwargs: Any) -> Any:
        wrapstring = kwargs.get("wrapstring", args[1] if len(args) > 1 else None) or "\n"
        # Two lines together are longer than `width`, so there are at most 2 n / width + 1.
        lines = 2 * len(str(s)) // max(width, 1) + 1
        _refuse_over(len(str(s)) + lines * len(str(wrapstring)), exact=False)
        return wordwrap(environment, s, width, *args, **kwargs)

    def do_batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
        _refuse_over(linecount, "items")
        return batch(value, linecount, fill_with)

    @pass_eval_context
    def do_slice(eval_ctx: EvalContext, value: Any, slices: int, fill_with: Any = None) -> Any:
        _refuse_over(slices, "items")
        return slice_(eval_ctx, value, slices, fill_with)

    @pass_eval_context
    def do_tojson(eval_ctx: EvalContext, value: Any, indent: Any = None) -> Any:
        _refuse_padding(indent if isinstance(indent, int) else size(indent))
        return tojson(eval_ctx, value, indent)

    padding = (do_center, do_indent, do_format, do_join, do_replace, do_wordwrap, do_batch)
    return {f.__name__.removeprefix("do_"): f for f in (*padding, do_slice, do_tojson)}


# -- time and memory -------------------------------------------------------------------------


class _Clock:
    """SIGALRM every TICK from a batch's first render until rest(), raising in a render past its
    time or memory. A batch prepared within TICK sees no signal; a row costs no system call."""

    def __init__(self) -> None:
        self.thread = 0  # the thread whose renders are timed (0: none)
        self.seconds, self.memory = MAX_SECONDS, MAX_MEMORY
        self.armed = False
        self.started = 0.0  # time.monotonic() when the render in progress began; 0.0: none
        self.baseline = 0  # the process's memory at this render's first tick (0: no tick yet)
        self.stopped = False  # a tick stopped the render in progress

    @contextmanager
    def limit(self, seconds: float = MAX_SECONDS, memory: int = MAX_MEMORY) -> Iterator[None]:
        """Bound this thread's renders in the block, if the main thread and SIGALRM is free."""
        free = (
            threading.current_thread() is threading.main_thread()
            and not self.thread
            and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
            and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        )
        if not free:
            yield
            return
        previous = signal.signal(signal.SIGALRM, self.tick)
        self.seconds, self.memory, self.thread = seconds, memory, threading.get_ident()
        try:
            yield
        finally:
            self.thread = 0
            self.rest()
            signal.signal(signal.SIGALRM, previous)

    def begin(self) -> None:  # a render starts in `thread`
        if not self.armed:
            signal.setitimer(signal.ITIMER_REAL, TICK, TICK)
            self.armed = True
        self.started, self.baseline = time.monotonic(), 0

    def end(self) -> None:
        self.started = 0.0
        if self.stopped:
            # Jinja's rewritten traceback of the stop is a reference cycle through the render's
            # frames, and so holds what the render built (up to MAX_MEMORY): collect it now.
            self.stopped = False
            gc.collect()

    def rest(self) -> None:  # no render for a while (a batch is prepared): no ticks
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.armed = False

    def tick(self, _signum: int, _frame: FrameType | None) -> None:
        if not self.started:  # between two renders
            return
        if time.monotonic() - self.started >= self.seconds:
            self.stopped = True
            raise RenderOverrun(f"the template took longer than {self.seconds:g} s")
        memory = _memory()
        if not self.baseline:
            self.baseline = memory
        elif memory - self.baseline > self.memory:
            self.stopped = True
            raise RenderOverrun(f"the template used more than {self.memory >> 20} MB of memory")


CLOCK = _Clock()  # the one render timer: SIGALRM is one per process
time_limit = CLOCK.limit

_PAGE = resource.getpagesize()


def _memory() -> int:  # resident bytes; where /proc is missing, the peak so far
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:  # not Linux: the peak (macOS counts it in bytes, others in KiB)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
