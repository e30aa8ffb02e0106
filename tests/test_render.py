"""Tests for pipeline.render: sandboxed Jinja2, exact Persian text, failures as data."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import TemplateError
from pipeline.render import Renderer, RenderFailure

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
