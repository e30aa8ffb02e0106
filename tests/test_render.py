"""Tests for pipeline.render: sandboxed Jinja2, exact Persian text, failures as data."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import bounds
from pipeline.bounds import time_limit
from pipeline.errors import TemplateError
from pipeline.render import Renderer, RenderFailure
from tests.conftest import REPO

ZWNJ = "\u200c"


def render(source: str, values: dict[str, str], **kwargs: Any) -> str | RenderFailure:
    return Renderer(source, name="templates/t.j2", **kwargs).render(values)


def test_renders_persian_with_zwnj_intact() -> None:
    """Persian text and the zero-width non-joiner inside it come out unchanged."""
    text = render(
        f"{{{{ name }}}} عزیز، کد تخفیف شما {{{{ code }}}} است. می{ZWNJ}خواهید؟",
        {"name": f"زهرا{ZWNJ}سادات", "code": "00123"},
    )
    assert text == f"زهرا{ZWNJ}سادات عزیز، کد تخفیف شما 00123 است. می{ZWNJ}خواهید؟"


def test_surrounding_whitespace_is_stripped_inside_kept() -> None:
    """Newlines, tabs and Unicode spaces around the text go; inner line breaks stay."""
    text = render("\n\u00a0 {{ a }}\n\n{{ b }}\u2009\t\n\n", {"a": "سلام", "b": "خداحافظ"})
    assert text == "سلام\n\nخداحافظ"


def test_zwnj_at_the_edges_is_not_whitespace() -> None:
    """ZWNJ is a joiner control, not a space: it is never stripped, even at the edges."""
    assert render(f"{ZWNJ}{{{{ a }}}}{ZWNJ}", {"a": "x"}) == f"{ZWNJ}x{ZWNJ}"


def test_variables_lists_columns_used_without_globals_and_loop_names() -> None:
    """Only names that must come from the contacts are variables; row["..."] keys count too."""
    renderer = Renderer(
        '{{ first_name }} {% for i in range(2) %}{{ i }}{% endfor %} {{ shop }} {{ row["نام"] }}'
        "{% set x = 1 %}{{ x }}",
        name="t.j2",
        globals={"shop": "Kala"},
    )
    assert renderer.variables == frozenset({"first_name", "نام"})


def test_missing_variable_names_it_lists_columns_and_suggests() -> None:
    """A variable that is no column is a TemplateError with the columns and a close match."""
    renderer = Renderer("{{ frist_name }} {{ code }} {{ zzz }}", name="templates/t.j2")
    with pytest.raises(TemplateError) as caught:
        renderer.check_columns(["mobile", "first_name", "code"])
    message = str(caught.value)
    assert message.startswith(
        "templates/t.j2: uses 'frist_name' (did you mean 'first_name'?), 'zzz', "
        "not columns of the contacts; the columns are 'mobile', 'first_name', 'code'."
    )
    assert message.endswith("Fix the name in the template, or add the column to the contacts.")


def test_missing_row_key_is_found_before_sending() -> None:
    """row["..."] with a literal key that is not a column is caught by check_columns."""
    renderer = Renderer('{{ row["نام "] }}', name="t.j2")
    with pytest.raises(TemplateError, match="'نام ' \\(did you mean 'نام'\\?\\), not a column"):
        renderer.check_columns(["نام", "mobile"])


def test_present_columns_pass_the_check() -> None:
    """A template that uses only existing columns (and row) passes the check."""
    renderer = Renderer('{{ name }} {{ row["first name"] }} {{ row | length }}', name="t.j2")
    renderer.check_columns(["name", "first name", "mobile"])


def test_row_mapping_reaches_columns_that_are_not_identifiers() -> None:
    """Columns like "first name" or a Persian header are reachable as row["..."]."""
    text = render(
        '{{ row["first name"] }} / {{ row["نام خانوادگی"] }} / {{ row.mobile }}',
        {"first name": "Sara", "نام خانوادگی": "رضایی", "mobile": "0912"},
    )
    assert text == "Sara / رضایی / 0912"


def test_syntax_error_names_template_and_line() -> None:
    """A template that does not compile names the file, the line and says to fix it."""
    with pytest.raises(TemplateError) as caught:
        Renderer("سلام\n{{ name }}\n{% if x %}\n{{ oops }\n", name="templates/x.j2")
    message = str(caught.value)
    assert message.startswith("templates/x.j2:4: ")
    assert message.endswith(". Fix the template.")
    assert ".. Fix" not in message


def test_unknown_filter_is_a_template_error_at_compile_time() -> None:
    """A misspelt filter is found when the template is compiled, not on the first row."""
    with pytest.raises(
        TemplateError, match=r"^t.j2:2: No filter named 'uper'\. Fix the template\.$"
    ):
        Renderer("hi\n{{ name | uper }}", name="t.j2")


def test_custom_filters_and_globals_are_available() -> None:
    """Filters and globals given to the Renderer work in the template."""
    text = render(
        "{{ name | shout }} {{ shop }}",
        {"name": "ali"},
        filters={"shout": lambda value: value.upper() + "!"},
        globals={"shop": "کالا"},
    )
    assert text == "ALI! کالا"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ name.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ row.update({'x': 1}) }}",
        "{{ row.clear() }}",
        "{{ '{0.__class__}'.format(name) }}",
    ],
)
def test_sandbox_blocks_internals_and_mutation(source: str) -> None:
    """Reaching Python internals or changing the row fails the row; nothing leaks or changes."""
    values = {"name": "ali"}
    result = render(source, values)
    assert isinstance(result, RenderFailure)
    assert result.reason.startswith("the template tried something the sandbox forbids: ")
    assert values == {"name": "ali"}


def test_undefined_value_at_render_is_a_failure_not_an_exception() -> None:
    """A name missing from one row becomes a RenderFailure naming it."""
    result = render("{{ name }} {{ code }}", {"name": "ali"})
    assert result == RenderFailure(
        "the template uses something this row does not have: 'code' is undefined"
    )


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ name + 1 }}", "TypeError"),
        ("{{ range(10**9) | list | length }}", "OverflowError"),
    ],
)
def test_errors_while_rendering_become_failures(source: str, kind: str) -> None:
    """Any exception while rendering one row is reported as that row's reason."""
    result = render(source, {"name": "ali"})
    assert isinstance(result, RenderFailure)
    assert result.reason.startswith(f"the template failed on this row: {kind}")


def test_long_reasons_are_cut_short() -> None:
    """A reason stays short enough for a report cell."""
    result = render(
        "{{ boom(name) }}",
        {"name": "x" * 1000},
        globals={"boom": int},
    )
    assert isinstance(result, RenderFailure)
    assert len(result.reason) <= 200
    assert result.reason.endswith("...")


@pytest.mark.parametrize("source", ["", "   ", "{{ name }}", "{% if false %}x{% endif %}\n\n"])
def test_empty_result_is_a_failure(source: str) -> None:
    """A message that renders to nothing (or only spaces) is a failure, never an empty SMS."""
    assert render(source, {"name": " \u00a0 "}) == RenderFailure(
        "the template rendered an empty message"
    )


def test_renderer_is_reusable_across_rows() -> None:
    """One compiled template renders many rows independently."""
    renderer = Renderer("{{ name }}", name="t.j2")
    assert [renderer.render({"name": n}) for n in ("a", "b", "c")] == ["a", "b", "c"]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40))
def test_any_value_renders_as_itself_stripped(value: str) -> None:
    """Whatever a cell holds is output verbatim (no escaping), only stripped at the edges."""
    result = render("{{ v }}", {"v": value})
    if value.strip():
        assert result == value.strip()
    else:
        assert result == RenderFailure("the template rendered an empty message")


# -- bounds: a runaway template costs one row ---------------------------------------------


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{{ 'x' * 10**9 }}", "would build a value of 1,000,000,000 characters, more than 100,000"),
        ("{{ 'ab' * 999999999 }}", "would build a value of 1,999,999,998 characters"),
        ("{{ range(99999)|join * 9999 }}", "would build a value of more than 100,000 characters"),
        ("{{ [1, 2] * 99999 }}", "would build a value of more than 100,000 items and characters"),
        ("{{ 9 ** (9 ** 9) }}", "would build a value of 369,693,100 digits"),
        ("{{ '%0999999999d'|format(1) }}", "pads a value to 999,999, more than 100,000"),
        ("{{ '%s%s'|format(name, name) * 99999999 }}", "would build a value of 599,999,994 char"),
        ("{{ '%*d' % (999999999, 1) }}", "pads a value to 999,999,999"),
        ("{{ '{:>999999999}'.format(1) }}", "pads a value to 999,999"),
        ("{{ '{:>{w}}'.format(1, w=999999999) }}", "pads a value to 999,999,999"),
        ("{{ name|center(999999999) }}", "pads a value to 999,999,999"),
        ("{{ name.ljust(999999999) }}", "would build a value of more than 100,000 characters"),
        ("{{ name|indent(999999999, true) }}", "would build a value of more than 100,000 char"),
        ("{{ range(99999)|join('y' * 9999) }}", "would build a value of more than 100,000 char"),
        ("{{ ('a' * 9999)|replace('', 'b' * 9999) }}", "would build a value of 99,999,999 char"),
        ("{{ ('a' * 9999)|wordwrap(1, wrapstring='b' * 99) }}", "would build a value of more"),
        ("{{ [1]|batch(999999999, 'x')|list }}", "would build a value of 999,999,999 items"),
        ("{{ [1]|slice(999999999)|list }}", "would build a value of 999,999,999 items"),
        ("{{ [1]|tojson(999999999) }}", "pads a value to 999,999,999"),
        ("{{ '\t'.expandtabs(999999999) }}", "would build a value of more than 100,000 char"),
        ("{{ name.center(999999999) }}", "would build a value of more than 100,000 characters"),
        ("{{ name.rjust(999999999) }}", "would build a value of more than 100,000 characters"),
        ("{{ name.zfill(999999999) }}", "would build a value of more than 100,000 characters"),
        ("{{ ('y' * 99999).join(['a'] * 99) }}", "would build a value of more than 100,000 char"),
        ("{{ ('a' * 9999).replace('a', 'b' * 9999) }}", "would build a value of more than 100,000"),
        ("{{ ('a' * 9999).translate({97: 'b' * 9999}) }}", "would build a value of more than 100,"),
        ("{{ ('x' * 60000) + ('y' * 60000) }}", "would build a value of 120,000 characters"),
        ("{{ (range(60000)|list) + (range(60000)|list) }}", "more than 100,000 items and char"),
        ("{{ '{x:>999999999}'.format_map({'x': 1}) }}", "pads a value to 999,999"),
        ("{{ '{x:>{w}}'.format_map({'x': 1, 'w': 999999999}) }}", "pads a value to 999,999,999"),
        # doubled at each step: through a namespace, a macro's argument, a recursive loop
        (
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
            "built a value of 131,072 characters, more than 100,000",
        ),
        (  # the same namespace read as an item
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
            "{% set ns.s = ns['s'] ~ ns['s'] %}{% endfor %}{{ ns.s }}",
            "built a value of 131,072 characters, more than 100,000",
        ),
        (
            "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% endif %}{% endmacro %}"
            "{{ d('x', 64) }}",
            "built a value of 131,072 characters, more than 100,000",
        ),
        (
            "{% for x in ['x'] recursive %}{{ loop([x ~ x]) }}{% endfor %}",
            "built a list of more than 100,000 items and characters",
        ),
        (
            "{% set ns = namespace(n=7) %}{% for i in range(64) %}"
            "{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n }}",
            "would build a value of 110,769 digits, more than 100,000",
        ),
    ],
)
def test_a_value_too_large_is_refused_before_it_is_built(source: str, reason: str) -> None:
    """What could build a huge value from a small one (a count from a column, a width, a
    value doubled in a loop) fails the row at once, saying how large, and allocates nothing."""
    result = render(source, {"name": "ali"})
    assert isinstance(result, RenderFailure)
    assert result.reason.startswith("the template ") and reason in result.reason


def test_a_template_writing_without_end_is_stopped_past_10000_characters() -> None:
    """Output is taken a few chunks at a time: an endless writer stops just past MAX_TEXT."""
    result = render(
        "{% set r = range(99999) %}{% for i in r %}{% for j in r %}{{ name }}{% endfor %}"
        "{% endfor %}",
        {"name": "ali"},
    )
    assert isinstance(result, RenderFailure)
    assert re.fullmatch(
        r"the template rendered 10,\d{3} characters, more than 10,000", result.reason
    )
    assert isinstance(render("{{ name * 3333 }}", {"name": "abc"}), str)  # 9,999: allowed
    assert render("{{ name * 3334 }}", {"name": "abc"}) == RenderFailure(
        "the template rendered 10,002 characters, more than 10,000"
    )


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("{{ 'ب' * 3 }}", "ببب"),
        ("{{ '%05d'|format(42) }} {{ '%-4s|' % name }}", "00042 ali |"),
        ("{{ '{:>6}'.format(name) }}|{{ '{:{w}}'.format(name, w=4) }}|", "ali|ali |"),
        ("{{ [name, name]|join('، ') }} {{ name|replace('a', 'aa') }}", "ali، ali aali"),
        (
            "{{ name|center(7) }}|{{ name.zfill(5) }}|{{ name|indent(2, true) }}",
            "ali  |00ali|  ali",
        ),
        (
            "{{ (range(3)|list) + [7] }} {{ 2 ** 10 }} {{ 125000 * 12 }}",
            "[0, 1, 2, 7] 1024 1500000",
        ),
        (
            "{% set ns = namespace(n=0) %}{% for i in range(100) %}{% set ns.n = ns.n + i %}"
            "{% endfor %}{{ ns.n }}",
            "4950",
        ),
        ("{% macro hi(n) %}سلام {{ n }}{% endmacro %}{{ hi(name) }}", "سلام ali"),
    ],
)
def test_the_bounds_leave_ordinary_templates_alone(source: str, text: str) -> None:
    """Repetition, padding, joins, formats, namespaces and macros of SMS size still render."""
    assert render(source, {"name": "ali"}) == text


SPIN = "{% set r = range(99999) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}"


def test_a_render_past_its_time_fails_the_row_and_the_next_row_renders() -> None:
    """A loop that writes nothing (no check of size can see it) is stopped by the timer; the
    timer then stops ticking when the rows are done, and is gone after the block."""
    spin = Renderer(f"{{% if name == 'bomb' %}}{SPIN}{{% endif %}}{{{{ name }}}}", name="t.j2")
    before = signal.getsignal(signal.SIGALRM)
    with time_limit(seconds=0.3):
        started = time.monotonic()
        assert spin.render({"name": "bomb"}) == RenderFailure("the template took longer than 0.3 s")
        assert time.monotonic() - started < 1.5
        assert spin.render({"name": "ali"}) == "ali"
        assert signal.getitimer(signal.ITIMER_REAL) != (0.0, 0.0)  # ticking while rows render
        bounds.CLOCK.rest()
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # a batch done: no signal
    assert signal.getsignal(signal.SIGALRM) == before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_ctrl_c_inside_a_render_leaves_no_timer_behind() -> None:
    """A KeyboardInterrupt (Ctrl-C in a dry run) passes through a render untouched, and the
    render is over for the timer: its ticks raise nothing into the code that handles it."""

    def interrupt() -> str:
        raise KeyboardInterrupt

    renderer = Renderer("{{ stop() }}", name="t.j2", globals={"stop": interrupt})
    with time_limit(seconds=0.1):
        with pytest.raises(KeyboardInterrupt):
            renderer.render({})
        time.sleep(0.35)  # three ticks, past the bound: none may raise here
        bounds.CLOCK.rest()


def test_no_timer_outside_the_main_thread() -> None:
    """Only the main thread takes signals: elsewhere time_limit() times nothing and the size
    bounds still hold."""
    results: list[object] = []

    def other() -> None:
        with time_limit(seconds=0.1):
            results.append(signal.getitimer(signal.ITIMER_REAL))
            results.append(render("{{ 'x' * 10**9 }}", {}))
            results.append(render("{{ name }}", {"name": "ali"}))

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert results[0] == (0.0, 0.0)
    assert isinstance(results[1], RenderFailure) and results[2] == "ali"


# Writes into a buffer (a macro's body, a block `set`) that no size check sees while it grows.
BUFFERED = (
    "{% set r = range(99999) %}{% macro m() %}{% for i in r %}{% for j in r %}xy{% endfor %}"
    "{% endfor %}{% endmacro %}{{ m()|length }}",
    "{% set r = range(99999) %}{% set big %}{% for i in r %}{% for j in r %}xyz{% endfor %}"
    "{% endfor %}{% endset %}{{ big|length }}",
)
BOMBS = (
    "{{ 'x' * 200000000 }}",
    "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s|length }}",
    "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% endif %}{% endmacro %}{{ d('x', 40) }}",
    "{% set r = range(99999) %}{% for i in r %}{% for j in r %}x{% endfor %}{% endfor %}",
    *BUFFERED * 3,  # one after the other: the bound is on each render, not only the first
)


def test_runaway_templates_leave_memory_bounded() -> None:
    """In a fresh process, each bomb fails its row (within a second) and together they raise
    the process's peak memory by well under 100 MB: values and text are refused before they
    are built, and a render that only buffers is stopped by the timer once it has used 50 MB
    more than when it began."""
    program = textwrap.dedent(
        """
        import json, resource, sys
        from pipeline.bounds import time_limit
        from pipeline.render import Renderer

        bombs = json.loads(sys.argv[1])
        renderers = [Renderer(source, name="t.j2") for source in bombs]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with time_limit(seconds=1.0):
            reasons = [getattr(r.render({}), "reason", "rendered") for r in renderers]
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(json.dumps({"reasons": reasons, "grown_mb": grown / 1024}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program, json.dumps(BOMBS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO,
    )
    measured = json.loads(done.stdout)
    assert all(reason.startswith("the template ") for reason in measured["reasons"]), measured
    assert measured["grown_mb"] < 100, measured
