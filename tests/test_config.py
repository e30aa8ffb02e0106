"""config.yaml: validated once; every problem names the file, line and key, and exits 2."""

from __future__ import annotations

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


def test_valid_config_resolves_paths_against_its_folder(tmp_path):
    """Relative paths are joined to the config's folder, not the working directory."""
    config = load_config_ok(tmp_path, BASE)
    assert config.contacts.path == tmp_path / "data/contacts.csv"
    assert config.template.path == tmp_path / "templates/t.j2"
    assert config.journal.path == tmp_path / "state/journal.sqlite"
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
