"""config.yaml: validated once; every problem names the file, line and key, and exits 2."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.errors import ConfigError

BASE = """\
campaign: spring-1405
contacts:
  path: data/contacts.csv
template:
  path: templates/t.j2
provider:
  sandbox: true
"""


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert info.value.exit_code == 2
    return str(info.value)


def test_valid_config_resolves_paths_against_its_folder(tmp_path, state_home):
    """Relative paths are joined to the config's folder, not the working directory; an unset
    journal or list is the shared state folder's, a set one is the config's own."""
    config = load_config_ok(tmp_path, BASE)
    assert config.contacts.path == tmp_path / "data/contacts.csv"
    assert config.template.path == tmp_path / "templates/t.j2"
    assert config.journal.path == state_home / "journal.sqlite"
    assert config.suppression.path == state_home / "optout.txt"
    own = BASE + "journal:\n  path: state/journal.sqlite\nsuppression:\n  path: null\n"
    config = load_config_ok(tmp_path, own)
    assert config.journal.path == tmp_path / "state/journal.sqlite"
    assert config.suppression.path is None
    assert config.report.path.startswith(str(tmp_path))
    assert config.contacts.phone_column == "mobile"
    assert config.provider.chunk_size == 100


def load_config_ok(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_unknown_key_suggests_the_closest(tmp_path):
    """A typo is an error naming the line and the key it probably meant."""
    message = _error(tmp_path, BASE + "  chunksize: 50\n")
    assert "config.yaml:8" in message
    assert "provider.chunksize" in message
    assert "did you mean 'chunk_size'" in message


def test_unknown_top_level_key(tmp_path):
    """Unknown keys at the top level are rejected too."""
    message = _error(tmp_path, BASE + "contact:\n  path: x.csv\n")
    assert "contact" in message and "did you mean 'contacts'" in message


def test_unset_environment_variable_is_named(tmp_path, monkeypatch):
    """${VAR} that is not set stops with its name and line."""
    monkeypatch.delenv("AMOOT_TOKEN_X", raising=False)
    text = BASE.replace("sandbox: true", "sandbox: false\n  token: ${AMOOT_TOKEN_X}")
    message = _error(tmp_path, text)
    assert "AMOOT_TOKEN_X" in message and "config.yaml:8" in message and "export" in message


def test_environment_variable_expands(tmp_path, monkeypatch):
    """${VAR} in any string is replaced by its value."""
    monkeypatch.setenv("AMOOT_TOKEN_X", "secret-value")
    monkeypatch.setenv("LIST", "vip")
    text = BASE.replace("sandbox: true", "sandbox: false\n  token: ${AMOOT_TOKEN_X}")
    text = text.replace("data/contacts.csv", "data/${LIST}.csv")
    config = load_config_ok(tmp_path, text)
    assert config.token == "secret-value"
    assert config.contacts.path.name == "vip.csv"
    assert "secret-value" not in repr(config)


def test_yaml_syntax_error_names_the_line(tmp_path):
    """Broken YAML is reported with its line number, not a traceback."""
    message = _error(tmp_path, BASE + "report:\n  path: [unclosed\n")
    assert "config.yaml:" in message and "YAML" in message


def test_wrong_value_type_names_key_and_value(tmp_path):
    """A value of the wrong type or range names the key, the line and what was given."""
    message = _error(tmp_path, BASE + "  chunk_size: 0\n")
    assert "provider.chunk_size" in message and "config.yaml:8" in message and "0" in message
    message = _error(tmp_path, BASE + "  concurrency: many\n")
    assert "provider.concurrency" in message and "'many'" in message


def test_missing_required_key(tmp_path):
    """campaign is required."""
    message = _error(tmp_path, BASE.replace("campaign: spring-1405\n", ""))
    assert "campaign" in message and "required" in message


def test_token_required_for_live_sending_and_never_echoed(tmp_path):
    """sandbox false without a token is an error; a bad value near the token never prints it."""
    message = _error(tmp_path, BASE.replace("sandbox: true", "sandbox: false"))
    assert "token" in message
    message = _error(
        tmp_path, BASE.replace("sandbox: true", "sandbox: false\n  token: [abc-secret]")
    )
    assert "abc-secret" not in message


def test_duplicate_key_is_an_error(tmp_path):
    """YAML would silently keep the last of two equal keys; we refuse."""
    message = _error(tmp_path, BASE + "  sandbox: false\n")
    assert "provider.sandbox" in message and "twice" in message


def test_template_needs_exactly_one_source(tmp_path):
    """template.path and template.text together (or neither) is an error."""
    message = _error(tmp_path, BASE.replace("  path: templates/t.j2", "  path: t.j2\n  text: hi"))
    assert "template" in message


def test_campaign_name_is_one_path_segment(tmp_path):
    """A campaign name with a slash or space would break report file names."""
    message = _error(tmp_path, BASE.replace("spring-1405", "spring/1405"))
    assert "campaign" in message


def test_missing_config_file(tmp_path):
    """A wrong path says so."""
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")


def test_relative_sqlite_url_is_relative_to_the_config(tmp_path):
    """sqlite:///shop.db means the file beside config.yaml, not in cron's working directory."""
    text = BASE.replace(
        "  path: data/contacts.csv\n", "  query: SELECT 1\n  url: sqlite:///shop.db\n"
    )
    config = load_config_ok(tmp_path, text)
    assert config.contacts.url == f"sqlite:///{tmp_path}/shop.db"
    text = BASE.replace(
        "  path: data/contacts.csv\n", "  query: SELECT 1\n  url: sqlite:////srv/x.db\n"
    )
    assert load_config_ok(tmp_path, text).contacts.url == "sqlite:////srv/x.db"
    text = BASE.replace(
        "  path: data/contacts.csv\n", "  query: SELECT 1\n  url: sqlite+pysqlite:///shop.db\n"
    )
    assert load_config_ok(tmp_path, text).contacts.url == f"sqlite+pysqlite:///{tmp_path}/shop.db"


def test_a_token_with_a_carriage_return_is_refused_without_echoing_it(tmp_path, monkeypatch):
    """An env file with Windows line endings adds a hidden \\r to the token: exit 2, not a run
    whose every request fails."""
    monkeypatch.setenv("AMOOT_TOKEN_X", "secret-value\r")
    message = _error(
        tmp_path, BASE.replace("sandbox: true", "sandbox: false\n  token: ${AMOOT_TOKEN_X}")
    )
    assert "provider.token" in message and "line break" in message
    assert "secret-value" not in message


def test_an_unquoted_impossible_date_is_a_config_error_naming_the_key(tmp_path):
    """YAML reads `2026-02-30 10:00:00` as a timestamp and its constructor raised ValueError (a
    traceback, exit 1): the value now stays text and send_at's own check names it and the fix."""
    message = _error(tmp_path, BASE + "schedule:\n  send_at: 2026-02-30 10:00:00\n")
    assert message.startswith(
        f"{tmp_path / 'config.yaml'}:9: schedule.send_at: '2026-02-30 10:00:00' is not a real "
        "date and time "
        "(day is out of range for month). Fix: correct it;"
    )


def test_an_unquoted_jalali_date_that_gregorian_lacks_is_read_as_jalali(tmp_path):
    """31 Ordibehesht 1405 is a real Jalali date but no Gregorian one: it is read, not refused."""
    config = load_config_ok(tmp_path, BASE + "schedule:\n  send_at: 1405-02-31 10:00:00\n")
    assert config.schedule.send_at == "1405-02-31 10:00:00"


def _billion_laughs(levels: int = 9) -> str:
    lines = ['  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, levels + 1):
        lines.append(f"  l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]")
    return "laughs:\n" + "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    """Nine levels of nine aliases (387 million values once written out) took the ${VAR} walk
    hours; the expansion is counted while loading (each node once) and refused in well under a
    second, before any key is looked at."""
    started = time.monotonic()
    message = _error(tmp_path, BASE + _billion_laughs())
    assert time.monotonic() - started < 1
    assert message == (
        f"{tmp_path / 'config.yaml'}: its aliases (*name) expand to more than 10,000 values "
        "(aliases that repeat aliases multiply). Fix: write the values out; a config needs no "
        "aliases."
    )


def test_an_alias_inside_its_own_value_and_deep_nesting_are_config_errors(tmp_path):
    """`&x [*x]` never ends when walked (a RecursionError); nor may nesting deeper than PyYAML
    composes. Both are named, with the file."""
    message = _error(tmp_path, BASE + "x: &x [*x]\n")
    assert message.startswith(f"{tmp_path / 'config.yaml'}:8: an alias (*name) refers to a value")
    message = _error(tmp_path, BASE + "x: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested inside each other too deeply" in message


def test_a_few_aliases_are_still_fine(tmp_path):
    """An anchor used a couple of times (a shared value) loads as before."""
    text = BASE.replace("campaign: spring-1405", "campaign: &name spring-1405")
    config = load_config_ok(tmp_path, text + "report:\n  path: reports/x.csv\n")
    assert config.campaign == "spring-1405"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("reports/{campain}.csv", "{campain} is not a field it can hold."),
        ("reports/{started:%Y}.csv", "{started:%Y} is not a field it can hold."),
        ("reports/{}.csv", "{} is not a field it can hold."),
        ("reports/{campaign.csv", "a stray brace (expected '}' before end of string)."),
        ("reports/x}.csv", "a stray brace (Single '}' encountered in format string)."),
    ],
)
def test_report_path_with_an_unknown_field_or_a_stray_brace_is_refused(tmp_path, path, reason):
    """str.format raised KeyError or ValueError when the run started (exit 1); now the config
    names the line and the two fields it may hold."""
    message = _error(tmp_path, BASE + f'report:\n  path: "{path}"\n')
    where = f"{tmp_path / 'config.yaml'}:9: report.path:"
    assert message.startswith(f"{where} {reason} Fix: use only {{campaign}} and {{started}}")


def test_report_path_may_write_a_brace_itself(tmp_path):
    """`{{` is a literal brace, as in str.format."""
    config = load_config_ok(tmp_path, BASE + 'report:\n  path: "r/{{x}}-{campaign}.csv"\n')
    assert config.report.path.endswith("r/{{x}}-{campaign}.csv")


@pytest.mark.parametrize(
    "value", ["!!float abc", "!!int 12x", "!!timestamp nonsense", "!!python/object:os.system x"]
)
def test_a_value_with_an_explicit_tag_it_cannot_be_is_a_config_error(tmp_path, value):
    """An explicit YAML tag on a value that is not of that type (or a tag a safe loader
    refuses) is a ConfigError naming the file and the fix, not a traceback."""
    message = _error(tmp_path, BASE.replace("campaign: spring-1405", f"campaign: {value}"))
    assert message.startswith(str(tmp_path / "config.yaml"))
    assert message.endswith("Fix: write the value plainly, without a `!!` tag.")


def test_importing_the_config_does_not_import_the_simulator():
    """pipeline.config takes the sandbox token from pipeline.amoot: loading a config never
    pulls in the simulator's modules (checked in a fresh interpreter)."""
    code = (
        "import sys, pipeline.config; "
        "print(sorted(m for m in sys.modules if m.startswith('pipeline.sandbox')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
