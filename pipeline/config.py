"""config.yaml, validated by pydantic: typed sections, errors with line and fix, paths resolved."""

from __future__ import annotations

import difflib
import os
import re
import string
import typing
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline import schedule
from pipeline.amoot import SANDBOX_TOKEN
from pipeline.config_yaml import read_yaml, where
from pipeline.errors import ConfigError

CAMPAIGN_NAME = re.compile(r"[\w.\-]+")  # one path segment: it goes into file names
CAMPAIGN_MAX = 100


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContactsConfig(_Section):
    path: Path | None = None  # a file; or query + url for a SQL source
    query: str | None = None  # SQL (SELECT ...) run through SQLAlchemy, `pipeline[sql]`
    url: str | None = Field(default=None, repr=False)  # may hold a password: never shown
    phone_column: str = Field(default="mobile", min_length=1)
    normalise_text: bool = True  # Arabic ي/ك in contact data become Persian ی/ک before rendering
    # .xlsx only: the sheet (its name, or its number from 1; default: the first) and the row
    # holding the column names (rows above it, a title or a note, are skipped).
    sheet: str | int | None = None
    header_row: int = Field(default=1, ge=1, le=1_048_576)  # Excel's last row

    @field_validator("sheet", mode="before")
    @classmethod
    def _sheet(cls, value: object) -> object:
        if isinstance(value, bool) or (isinstance(value, int) and value < 1):
            raise ValueError("give a sheet's name, or its number counting from 1")
        if isinstance(value, str) and not value.strip():
            raise ValueError("give a sheet's name, or its number counting from 1 (or leave it out)")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ContactsConfig:
        if self.path is not None and (self.query is not None or self.url is not None):
            raise ValueError(
                "give contacts.path (a file) or contacts.query + contacts.url, not both"
            )
        if self.path is None and (self.query is None or self.url is None):
            raise ValueError(
                "give contacts.path (a file), or contacts.query with contacts.url (a database)"
            )
        return self

    @model_validator(mode="after")
    def _excel_only(self) -> ContactsConfig:  # after _one_source: path or query is set
        suffix = self.path.suffix.lower() if self.path is not None else ""
        what = (
            f"contacts.path is a {suffix or 'suffix-less'} file" if self.path else "contacts.query"
        )
        for key, given in (
            ("sheet", self.sheet is not None),
            ("header_row", "header_row" in self.model_fields_set),
        ):
            if given and suffix != ".xlsx":
                raise ValueError(f"contacts.{key} applies to .xlsx files only ({what}); remove it")
        return self


class TemplateConfig(_Section):
    path: Path | None = None
    text: str | None = None
    column: str | None = None  # a contacts column naming the template file for its row
    optout_footer: str = ""  # appended on its own line, e.g. لغو۱۱
    max_pages: int = Field(default=3, ge=1, le=20)

    @model_validator(mode="after")
    def _one_source(self) -> TemplateConfig:
        if self.path is not None and self.text is not None:
            raise ValueError("give one of template.path or template.text, not both")
        if self.path is None and self.text is None and self.column is None:
            raise ValueError("give template.path (a file) or template.text (inline)")
        return self


class ScheduleConfig(_Section):
    send_at: str = "now"  # or a Tehran date-time, Gregorian or Jalali: 1405-01-15 10:00
    window: str | None = None  # a daily Tehran window such as "08:00-21:00"
    outside_window: Literal["wait", "schedule"] = "wait"
    max_lateness: str | None = None  # e.g. "2h": refuse a campaign started this long after send_at

    @field_validator("send_at", mode="before")
    @classmethod
    def _yaml_datetime(cls, value: object) -> object:  # unquoted in YAML: Tehran wall time
        if isinstance(value, datetime):
            return value.isoformat(sep=" ") if value.tzinfo else f"{value:%Y-%m-%d %H:%M:%S}"
        return value

    @field_validator("send_at", "window", "max_lateness")
    @classmethod
    def _readable(cls, value: str | None, info: pydantic.ValidationInfo) -> str | None:
        parse: dict[str | None, Callable[[str], object]] = {
            "send_at": schedule.parse_send_at,
            "window": schedule.parse_window,
            "max_lateness": schedule.parse_duration,
        }
        if value is not None:
            parse[info.field_name](value)  # its ValueError says what is wrong
        return value


class FrequencyCap(_Section):
    messages: int = Field(ge=1, le=1000)  # live messages a number may get, all campaigns together
    days: int = Field(ge=1, le=3650)  # ... in this many days back from the run

    @field_validator("messages", "days", mode="before")
    @classmethod
    def _no_booleans(cls, value: object) -> object:  # pydantic reads `true` as 1: refuse it
        if isinstance(value, bool):
            raise ValueError("must be a whole number such as 7, not true or false")
        return value


class SuppressionConfig(_Section):
    # A file of numbers never to message. Unset: the shared state folder's optout.txt (every
    # campaign of the user honours one list); null: no list.
    path: Path | None = None
    add_blacklisted: bool = True  # numbers the provider reports as blacklisted are appended
    # A sending run first reads the line's new replies (11 / لغو opt out): auto = only on a
    # dedicated line (replies to `public` do not reach the account).
    read_replies: Literal["auto"] | bool = "auto"
    frequency_cap: FrequencyCap | None = None

    @field_validator("read_replies", mode="before")
    @classmethod
    def _auto_or_bool(cls, value: object) -> object:  # else pydantic lists the union's insides
        if value == "auto" or isinstance(value, bool):
            return value
        raise ValueError("must be auto, true or false")

    @field_validator("frequency_cap", mode="before")
    @classmethod
    def _mapping(cls, value: object) -> object:  # else the error names the class FrequencyCap
        if value is None or isinstance(value, dict | FrequencyCap):
            return value
        raise ValueError("must be a mapping such as {messages: 1, days: 7}")


class ProviderConfig(_Section):
    sandbox: bool = False
    base_url: str = "https://portal.amootsms.com/rest"
    token: str = Field(default="", repr=False)  # repr=False: never shown in a traceback or log
    line_number: str = Field(default="public", min_length=1)
    chunk_size: int = Field(default=100, ge=1, le=1000)
    concurrency: int = Field(default=4, ge=1, le=64)
    timeout: float = Field(default=30.0, gt=0, le=600)
    max_attempts: int = Field(default=5, ge=1, le=20)
    rate_limit: float | None = Field(default=None, gt=0)  # requests a second, all workers
    tariff: Literal["base", "service", "ads"] = "base"  # which AccountStatus prices the line pays
    max_cost: float | None = Field(default=None, gt=0)  # tomans: refuse a campaign costing more
    preflight: bool = True  # check credit (AccountStatus) against the estimate before sending

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL such as https://portal.amootsms.com/rest")
        return value.rstrip("/")

    @field_validator("token")
    @classmethod
    def _token_shape(cls, value: str) -> str:  # never echoed; a stray CR breaks every request
        if value and (value != value.strip() or not value.isascii() or not value.isprintable()):
            raise ValueError(
                "the token has spaces, line breaks or non-ASCII characters around or in it; "
                "copy it again from the panel (an env file saved with Windows line endings "
                "adds a hidden \\r)"
            )
        return value

    @model_validator(mode="after")
    def _token_when_real(self) -> ProviderConfig:
        if not self.sandbox and not self.token.strip():
            raise ValueError(
                "provider.token is required when provider.sandbox is false; "
                "set token: ${AMOOT_TOKEN} and export AMOOT_TOKEN"
            )
        return self


class ReportConfig(_Section):
    path: str = "reports/{campaign}-{started}.csv"
    xlsx: bool = False  # also <report>.xlsx: right to left, numbers as text, a summary sheet
    keep: int = Field(default=10, ge=1)  # timestamped reports of the campaign kept

    @field_validator("path")
    @classmethod
    def _placeholders(cls, value: str) -> str:  # now, not when the run formats it
        fix = (
            "Fix: use only {campaign} and {started} (write a brace itself as {{ or }}), "
            "e.g. reports/{campaign}-{started}.csv"
        )
        try:
            fields = [part for part in string.Formatter().parse(value) if part[1] is not None]
        except ValueError as exc:  # a { without its }, or a } alone
            raise ValueError(f"a stray brace ({exc}). {fix}") from None
        for _text, name, spec, conversion in fields:
            if name not in ("campaign", "started") or spec or conversion:
                shown = "{" + (name or "") + (f"!{conversion}" if conversion else "")
                shown += (f":{spec}" if spec else "") + "}"
                raise ValueError(f"{shown} is not a field it can hold. {fix}")
        return value


class JournalConfig(_Section):
    path: Path = Path("journal.sqlite")  # unset: the shared state folder's journal.sqlite


class Config(_Section):
    campaign: str = Field(min_length=1, max_length=CAMPAIGN_MAX)
    contacts: ContactsConfig
    template: TemplateConfig
    provider: ProviderConfig = ProviderConfig(sandbox=True)
    report: ReportConfig = ReportConfig()
    journal: JournalConfig = JournalConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    suppression: SuppressionConfig = SuppressionConfig()
    source: Path = Path("config.yaml")  # the file this was loaded from (set by load_config)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: object) -> object:  # `journal:` with only comments under it
        if isinstance(data, dict):
            return {k: {} if v is None and k in _SECTIONS else v for k, v in data.items()}
        return data

    @field_validator("campaign")
    @classmethod
    def _campaign_name(cls, value: str) -> str:  # one path segment: it goes into file names
        if not CAMPAIGN_NAME.fullmatch(value):
            raise ValueError("use letters, digits, '-', '_' or '.' only (no spaces or slashes)")
        return value

    @property
    def token(self) -> str:
        return self.provider.token or SANDBOX_TOKEN

    @property
    def reads_replies(self) -> bool:
        """Whether a sending run reads the line's new replies first (`auto`: a dedicated line)."""
        setting = self.suppression.read_replies
        if setting == "auto":
            return self.provider.line_number.strip().lower() != "public"
        return bool(setting)


_SECTIONS: dict[str, type[BaseModel]] = {"": Config} | {
    name: field.annotation
    for name, field in Config.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
}


def _model_at(loc: list[str]) -> type[BaseModel] | None:
    """The model holding the keys at `loc` (nested too: suppression.frequency_cap), if any."""
    model: type[BaseModel] | None = Config
    for part in loc:
        field = model.model_fields.get(part) if model else None
        if field is None:
            return None
        # `FrequencyCap | None`: the model among the annotation's members
        members = typing.get_args(field.annotation) or (field.annotation,)
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        model = models[0] if models else None
    return model


def load_config(path: Path) -> Config:
    """Read, expand, validate and resolve config.yaml; every problem is a ConfigError (exit 2)."""
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            f"{shown}: no such file. Fix: pass the path of your config, e.g. "
            "`python -m pipeline config.yaml`."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{shown}: cannot read it ({exc}). Fix: save it as UTF-8 text.") from None

    data, lines = read_yaml(text, shown)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, lines, shown)) from None
    return _resolve(config, path)


def _explain(exc: ValidationError, lines: dict[str, int], shown: str) -> str:
    """One line per problem, in file order: where, which key, what is wrong, the fix."""
    messages: list[tuple[int, str]] = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        key, parent = ".".join(loc), ".".join(loc[:-1])
        if error["type"] == "extra_forbidden":
            section = _model_at(loc[:-1])
            # in the order the docs give them: messages, days
            allowed = [n for n in section.model_fields if n != "source"] if section else []
            close = difflib.get_close_matches(loc[-1], allowed, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(allowed)}"
            at, problem = key, f"{key}: unknown key; {hint}"
        elif error["type"] == "missing":
            fix = "Fix: add it (see the commented config.yaml in the repository)."
            at, problem = parent, f"{key}: required. {fix}"
        else:
            reason = str(error["msg"]).removeprefix("Value error, ")
            got = error.get("input")
            secret = "token" in key or key.endswith(".url")
            shown_got = "" if isinstance(got, dict) or secret else f" (got {got!r})"
            at, problem = key, f"{key or 'config'}: {reason}{shown_got}"
        messages.append((lines.get(at, 0), f"{where(shown, lines, at)}: {problem}"))
    return "\n".join(message for _, message in sorted(messages))


_SQLITE_URL = re.compile(r"sqlite(?:\+\w+)?:///")  # also with a driver: sqlite+pysqlite:///


def _resolve(config: Config, path: Path) -> Config:
    """Make relative paths relative to the config file's folder (cron starts in $HOME)."""
    base = path.resolve().parent

    def under(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else base / p

    report = config.report.path
    url = config.contacts.url
    sqlite = _SQLITE_URL.match(url or "")
    if url and sqlite:  # sqlite:///shop.db is relative to the working directory; cron's is $HOME
        database = url[sqlite.end() :]
        if database and not database.startswith(("/", ":memory:", "file:")):
            url = f"{sqlite.group(0)}{base / database}"
    shared = state_dir() if _unset(config.journal) or _unset(config.suppression) else None
    journal = shared / "journal.sqlite" if shared and _unset(config.journal) else None
    optout = shared / "optout.txt" if shared and _unset(config.suppression) else None
    updates: dict[str, dict[str, object]] = {
        "suppression": {"path": optout or under(config.suppression.path)},
        "contacts": {"path": under(config.contacts.path), "url": url},
        "template": {"path": under(config.template.path)},
        "report": {"path": report if Path(report).is_absolute() else str(base / report)},
        "journal": {"path": journal or under(config.journal.path)},
    }
    sections = {name: getattr(config, name).model_copy(update=new) for name, new in updates.items()}
    return config.model_copy(update={**sections, "source": path})


def _unset(section: BaseModel) -> bool:
    """The config does not name this section's path: the shared state folder's file is used."""
    return "path" not in section.model_fields_set


def state_dir() -> Path:
    """The folder every campaign of this user shares (journal.sqlite, optout.txt), by the XDG
    base directory rule: $PIPELINE_STATE_DIR, else $XDG_STATE_HOME/pipeline, else
    ~/.local/state/pipeline. A relative $XDG_STATE_HOME is ignored, as the XDG rule says."""
    chosen = os.environ.get("PIPELINE_STATE_DIR", "")
    if chosen:
        if not Path(chosen).is_absolute():  # cron starts in $HOME: relative to what?
            raise ConfigError(
                f"PIPELINE_STATE_DIR={chosen!r} is not an absolute path. Fix: give the whole "
                "path, such as /home/shop/.local/state/pipeline."
            )
        return Path(chosen)
    xdg = os.environ.get("XDG_STATE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "pipeline"
    try:
        return Path.home() / ".local" / "state" / "pipeline"
    except RuntimeError:  # no $HOME and no password entry for this user
        raise ConfigError(
            "cannot find the shared state folder: $HOME is not set. Fix: set "
            "PIPELINE_STATE_DIR to a folder of your own, or set journal.path and "
            "suppression.path in the config."
        ) from None
