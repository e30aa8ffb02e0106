"""`python -m pipeline init DIR`: a campaign folder that runs as it is, and never overwrites."""

from __future__ import annotations

import csv
import os
import resource
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import load_config
from pipeline.init import PARTS, campaign_name, scaffold_text
from tests.conftest import REPO, cli_env, run_cli, unstamped

SCAFFOLD = REPO / "pipeline" / "scaffold"


def run_init(cwd: Path, folder: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`python -m pipeline init FOLDER` as an operator types it, from `cwd`."""
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "init", folder],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **kwargs,
    )
    done.stderr = unstamped(done.stderr)
    return done


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for a folder): to compare before/after."""
    return {
        str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
        for p in sorted(folder.rglob("*"))
    }


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_then_a_sandbox_run_of_the_new_folder(tmp_path: Path) -> None:
    """The folder init makes runs as it is: sent rows, the sandbox's blacklisted 0000 number
    failed, a landline and a short number invalid, the repeated number a duplicate; contacts
    are private (0600 in 0700 folders), and the printed next commands are the ones that work."""
    made = run_init(tmp_path, "shop/yalda-1405")
    assert made.returncode == 0, made.stderr
    assert made.stdout == (
        "made campaign folder shop/yalda-1405:\n"
        "  config.yaml             the campaign's settings (sandbox: nothing is sent)\n"
        "  templates/message.j2    the message (Persian, with the opt-out footer)\n"
        "  data/contacts.csv       sample contacts: replace with your export\n"
        "next:\n"
        "  python -m pipeline shop/yalda-1405/config.yaml --dry-run\n"
        "  python -m pipeline shop/yalda-1405/config.yaml\n"
    )
    assert made.stderr == ""
    folder = tmp_path / "shop" / "yalda-1405"
    assert list(tree(folder)) == [
        "config.yaml",
        "data",
        "data/contacts.csv",
        "templates",
        "templates/message.j2",
    ]
    for part in PARTS[1:]:
        assert (folder / part.name).read_bytes() == scaffold_text(part)
    assert mode(tmp_path / "shop") == mode(folder) == mode(folder / "data") == 0o700
    assert mode(folder / "data" / "contacts.csv") == 0o600

    dry = run_cli(folder / "config.yaml", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "لغو۱۱" in dry.stdout  # the opt-out footer is on every message

    result = run_cli(folder / "config.yaml")
    assert result.returncode == 0, result.stderr
    assert "campaign yalda-1405 (sandbox: nothing left this machine)" in result.stdout
    written = sorted((folder / "reports").glob("yalda-1405-*.csv"))
    report = next(p for p in reversed(written) if not p.name.endswith("-attention.csv"))
    with report.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    by_status: dict[str, list[str]] = {}
    for row in rows:
        by_status.setdefault(row["status"], []).append(row["row"])
    assert by_status == {
        "sent": [
            "1",
            "2",
            "3",
            "4",
            "5",
            "6",
        ],  # 09..., +98, Persian and Arabic digits, 0098, 9.1E+09
        "duplicate": ["8"],  # row 7 is blank
        "invalid": ["9", "11"],  # a landline and a short number
        "failed": ["10"],  # 09120000000: the sandbox's blacklisted number
    }
    sent = {r["row"]: r for r in rows if r["status"] == "sent"}
    assert sent["4"]["number"] == "09015551234"  # ٠٩٠١... in Arabic-Indic digits
    assert sent["6"]["number"] == "09191112233"  # Excel's 9.191112233E+09
    assert all(r["text"].endswith("\nلغو۱۱") for r in sent.values()), sent
    assert "مشتری عزیز" in sent["5"]["text"]  # an empty first_name reads as «مشتری»


def test_init_refuses_a_folder_that_holds_a_config(tmp_path: Path) -> None:
    """A folder with a config.yaml is a campaign: exit 2, every byte as it was, with the fix."""
    folder = tmp_path / "yalda"
    (folder / "data").mkdir(parents=True)
    (folder / "config.yaml").write_text("campaign: mine\n", encoding="utf-8")
    (folder / "data" / "customers.xlsx").write_bytes(b"not touched")
    before = tree(folder)
    result = run_init(tmp_path, "yalda")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: yalda/config.yaml: the folder already holds a campaign; init never overwrites "
        "one. Fix: choose a new folder, e.g. `python -m pipeline init yalda-2`, or edit "
        "yalda/config.yaml to change this one.\n"
        "Nothing was changed.\n"
    )
    assert tree(folder) == before


def test_init_refuses_to_replace_a_template_or_contacts_file(tmp_path: Path) -> None:
    """Another file where the template or the contacts would go: exit 2 naming it, and nothing
    written at all (no config.yaml either)."""
    folder = tmp_path / "yalda"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "contacts.csv").write_text("mobile\n09121234567\n", encoding="utf-8")
    (folder / "templates").write_text("a file, not a folder", encoding="utf-8")
    before = tree(folder)
    result = run_init(tmp_path, "yalda")
    assert result.returncode == 2
    assert result.stderr.startswith(
        "error: yalda: init would overwrite yalda/data/contacts.csv, yalda/templates/message.j2;"
    )
    assert "move those files aside first." in result.stderr
    assert result.stderr.endswith("Nothing was changed.\n")
    assert tree(folder) == before


def test_init_refuses_a_file_for_a_folder(tmp_path: Path) -> None:
    """DIR that is a file, or a path under one: exit 2, the file untouched."""
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    for given, said in (
        ("notes.txt", "error: notes.txt is a file, not a folder."),
        ("notes.txt/yalda", "error: notes.txt/yalda cannot be made: notes.txt is a file,"),
    ):
        result = run_init(tmp_path, given)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(said), result.stderr
        assert "Traceback" not in result.stderr
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_init_into_an_existing_folder_with_other_files(tmp_path: Path) -> None:
    """An existing folder (its mode kept) with the operator's own files: they stay, the scaffold
    goes beside them; `data/` already there keeps its files."""
    folder = tmp_path / "yalda"
    (folder / "data").mkdir(parents=True)
    folder.chmod(0o750)
    (folder / "notes.txt").write_text("plan", encoding="utf-8")
    (folder / "data" / "export.xlsx").write_bytes(b"xlsx")
    result = run_init(tmp_path, str(folder))  # an absolute path works as well
    assert result.returncode == 0, result.stderr
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "plan"
    assert (folder / "data" / "export.xlsx").read_bytes() == b"xlsx"
    assert mode(folder) == 0o750
    assert load_config(folder / "config.yaml").campaign == "yalda"


def test_init_into_a_new_nested_path(tmp_path: Path) -> None:
    """Missing parents are made (0700), in process too: the config loads and names the folder."""
    from pipeline.cli import main

    folder = tmp_path / "a" / "b" / "spring.sale_1405"
    assert main(["init", str(folder)]) == 0
    assert mode(tmp_path / "a") == mode(tmp_path / "a" / "b") == mode(folder) == 0o700
    config = load_config(folder / "config.yaml")
    assert config.campaign == "spring.sale_1405"
    assert config.provider.sandbox is True
    assert config.template.optout_footer == "لغو۱۱"
    assert config.contacts.path == folder / "data" / "contacts.csv"
    # journal and suppression are the shared state folder's, as in the shipped config
    state = Path(os.environ["PIPELINE_STATE_DIR"])
    assert config.journal.path == state / "journal.sqlite"
    assert config.suppression.path == state / "optout.txt"


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        ("yalda-1405", "yalda-1405"),
        ("یلدا-۱۴۰۵", "یلدا-۱۴۰۵"),  # Persian letters and digits are letters and digits
        ("فروش یلدا (ویژه)", "فروش-یلدا-ویژه"),
        ("1405", "1405"),  # YAML would read it as a number: init quotes it
        ("no", "no"),  # ... and this as false
        ("!!!", "campaign"),
        ("x" * 120, "x" * 100),
    ],
)
def test_the_campaign_is_named_after_the_folder(tmp_path: Path, folder: str, name: str) -> None:
    """The folder's name when it is a valid campaign name, else a safe form; the config loads
    with exactly that name (YAML's numbers and booleans quoted)."""
    from pipeline.cli import main

    assert campaign_name(tmp_path / folder) == name
    assert main(["init", str(tmp_path / folder)]) == 0
    assert load_config(tmp_path / folder / "config.yaml").campaign == name


def test_the_scaffold_config_is_the_shipped_one(tmp_path: Path) -> None:
    """One source of truth: pipeline/scaffold/config.yaml is the repository's config.yaml line
    for line, but for the lines that must differ (the name, the template, the footer on)."""
    shipped = (REPO / "config.yaml").read_text(encoding="utf-8").splitlines()
    scaffold = (SCAFFOLD / "config.yaml").read_text(encoding="utf-8").splitlines()
    assert len(shipped) == len(scaffold)
    tail = "counted in pages"
    differ = [(a, b) for a, b in zip(shipped, scaffold, strict=True) if a != b]
    assert differ == [
        ("campaign: spring-sale-1405", "campaign: yalda-1405"),
        ("  path: templates/discount.j2", "  path: templates/message.j2"),
        (
            '  # optout_footer: "لغو۱۱"  # appended on its own line to every message, ' + tail,
            '  optout_footer: "لغو۱۱"    # appended on its own line to every message, ' + tail,
        ),
    ]


def test_the_scaffold_contacts_have_the_shapes_of_real_exports() -> None:
    """The sample is what exports look like: a BOM, Persian and Arabic digits, +98, 0098,
    Excel's float, a blank line, a duplicate, a landline, a blacklisted ...0000 number."""
    raw = (SCAFFOLD / "data" / "contacts.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfmobile,")
    text = raw.decode("utf-8-sig")
    for shape in ("۰۹", "٠٩", "+98 ", "0098-", "E+09", "\n\n", "09120000000", "021"):
        assert shape in text, shape
    numbers = [line.split(",")[0] for line in text.splitlines()[1:] if line]
    assert len(numbers) != len(set(numbers))  # a duplicate row


def test_a_write_that_fails_is_undone(tmp_path: Path) -> None:
    """A disk that refuses a write midway (here: a file size limit) leaves nothing behind:
    exit 2, the folder init was making gone."""

    def small_files() -> None:  # EFBIG instead of a SIGXFSZ kill
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))

    result = run_init(tmp_path, "new/yalda", preexec_fn=small_files)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        "error: new/yalda/config.yaml: cannot be written (File too large). Fix: choose a folder"
    )
    assert result.stderr.endswith("Nothing was changed.\n")
    assert not (tmp_path / "new").exists()


def test_help_lists_init(capsys: pytest.CaptureFixture[str]) -> None:
    """`--help` lists the command; `init --help` names its one argument."""
    from pipeline.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    assert "python -m pipeline init DIR" in listed
    assert "  init     make a campaign folder that runs as it is (sandbox)" in listed
    with pytest.raises(SystemExit):
        main(["init", "--help"])
    assert "DIR" in capsys.readouterr().out
