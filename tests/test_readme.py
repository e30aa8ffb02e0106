"""The README shows the shipped config.yaml as it is: a newcomer reads what the file says."""

from __future__ import annotations

from tests.conftest import REPO


def test_the_readme_shows_the_shipped_config_word_for_word() -> None:
    """The `yaml` block under "The config, commented" is config.yaml itself."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The config, commented", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```\n", 1)[0]
    assert block == (REPO / "config.yaml").read_text(encoding="utf-8")
