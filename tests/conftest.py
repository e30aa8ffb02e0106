"""Test helpers: a campaign folder in tmp_path, the socket-served fake, the CLI as a subprocess."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.sandbox import AmootSimulator
from pipeline.sandbox_server import SandboxServer

REPO = Path(__file__).resolve().parent.parent
TOKEN = "test-token-5f3a9c"  # the fake's token; tests assert it never leaks into output

CONTACTS_HEADER = "mobile,first_name,code\n"


@dataclass
class Campaign:
    """A campaign folder: config.yaml, contacts.csv, a template, reports/ and state/."""

    folder: Path

    @property
    def config(self) -> Path:
        return self.folder / "config.yaml"

    @property
    def report(self) -> Path:
        return self.folder / "reports" / "report.csv"

    @property
    def journal(self) -> Path:
        return self.folder / "state" / "journal.sqlite"

    def contacts(self, rows: list[tuple[str, ...]], header: str = CONTACTS_HEADER) -> None:
        lines = [",".join(row) for row in rows]
        (self.folder / "contacts.csv").write_text(
            header + "\n".join(lines) + "\n", encoding="utf-8"
        )

    def write_config(
        self, provider: str, *, campaign: str = "test-campaign", extra: str = ""
    ) -> None:
        text = f"""\
campaign: {campaign}
contacts:
  path: contacts.csv
template:
  path: message.j2
provider:
{textwrap.indent(textwrap.dedent(provider).strip(), "  ")}
report:
  path: reports/report.csv
journal:
  path: state/journal.sqlite
{extra}"""
        self.config.write_text(text, encoding="utf-8")

    def read_report(self) -> list[dict[str, str]]:
        with self.report.open(encoding="utf-8-sig", newline="") as f:
            return list(csv.DictReader(f))


@pytest.fixture
def campaign(tmp_path: Path) -> Campaign:
    folder = tmp_path / "campaign"
    folder.mkdir()
    (folder / "message.j2").write_text("{{ first_name }} عزیز، کد تخفیف شما {{ code }}\n", "utf-8")
    return Campaign(folder)


@pytest.fixture
def simulator() -> AmootSimulator:
    return AmootSimulator(token=TOKEN)


@pytest.fixture
def server(simulator: AmootSimulator) -> Iterator[SandboxServer]:
    with SandboxServer(simulator) as served:
        yield served


def live_provider(server: SandboxServer, **overrides: object) -> str:
    """The provider section pointing at the socket-served fake."""
    settings: dict[str, object] = {
        "sandbox": "false",
        "base_url": server.base_url,
        "token": "${AMOOT_TOKEN}",
        "chunk_size": 3,
        "concurrency": 2,
        "timeout": 5,
        "max_attempts": 3,
    }
    settings.update(overrides)
    return "\n".join(f"{key}: {value}" for key, value in settings.items())


def run_cli(
    config: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m pipeline CONFIG ...` as an operator runs it: another cwd, TZ=UTC, real env."""
    full_env = {**os.environ, "TZ": "UTC", "AMOOT_TOKEN": TOKEN, "PYTHONPATH": str(REPO)}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pipeline", str(config), *args],
        cwd=config.parent.parent,  # not the config's folder: relative paths must still resolve
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
