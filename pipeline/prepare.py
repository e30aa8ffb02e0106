"""Turn one contact into a row to send (or a settled one): number, opt-out, dedupe, text, pages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import TemplateError
from pipeline.models import Contact, InvalidNumber, Row, Status
from pipeline.persian import normalise_text
from pipeline.phones import normalise_mobile
from pipeline.render import Renderer, RenderFailure
from pipeline.segments import count_pages
from pipeline.suppression import Suppression


class Templates:
    """The default template, and the files beside it a contacts column names per row, each
    compiled and checked against the columns when first used: the plan uses each before anything
    is sent, so a wrong variable stops the run (TemplateError, exit 2)."""

    def __init__(
        self,
        default: Renderer | None,
        *,
        folder: Path,
        column: str | None,
        columns: tuple[str, ...],
        filters: Mapping[str, Callable[..., Any]],
        globals: Mapping[str, Any],
        written: tuple[Path, ...] = (),
    ) -> None:
        self.default, self.folder, self.column, self._columns = default, folder, column, columns
        self._filters, self._globals = filters, globals
        # Files the run writes (the report and its companion): never a template it reads.
        self._written = {written_path.resolve() for written_path in written}
        self._named: dict[str, Renderer | str] = {}  # file name -> renderer, or why it is unusable
        if default is not None:
            default.check_columns(columns)

    def for_row(self, values: Mapping[str, str]) -> Renderer | str:  # or why there is none
        name = values.get(self.column, "").strip() if self.column else ""
        if not name:
            if self.default is None:
                return f"the column '{self.column}' is empty and template.path gives no default"
            return self.default
        if name not in self._named:
            self._named[name] = self._load(name)
        return self._named[name]

    def _load(self, name: str) -> Renderer | str:
        path = (self.folder / name).resolve()
        if not path.is_relative_to(self.folder.resolve()):
            return f"template '{name}' is outside the templates folder"
        if path in self._written:
            raise TemplateError(
                f"{path}: the column '{self.column}' names this file as a template, and "
                "report.path writes the report there: the run would overwrite it. Fix: give "
                "the report a file of its own, such as reports/{campaign}-{started}.csv."
            )
        try:
            source = read_template(path, f"template file '{name}'")
        except FileNotFoundError:
            return f"template file '{name}' not found in {self.folder}"
        except TemplateError as exc:  # a folder, unreadable, not UTF-8: the row says why
            return str(exc)
        renderer = Renderer(source, name=str(path), filters=self._filters, globals=self._globals)
        renderer.check_columns(self._columns)  # TemplateError: the caller stops the run
        return renderer


_SAVE_AS_UTF8 = "Fix: save it as UTF-8 (in Notepad: File > Save As, Encoding: UTF-8)."
_LOOKS_ANSI = '; it looks like Windows-1256 ("ANSI", as Notepad saves on Persian Windows)'


def read_template(path: Path, shown: str) -> str:
    """A template file's text (UTF-8, a BOM is fine), or a TemplateError with the fix;
    FileNotFoundError is the caller's to word (its fix differs)."""
    try:
        data = path.read_bytes()
    except IsADirectoryError as exc:
        raise TemplateError(
            f"{shown}: is a folder, not a template file. Fix: name the file itself, not its folder."
        ) from exc
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise TemplateError(
            f"{shown}: cannot be read ({exc.strerror or exc}). "
            "Fix: let this user read it (chmod u+r), or copy it to a readable file."
        ) from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        # Notepad's "ANSI" on Persian Windows is cp1256: Persian letters when read as that.
        ansi = any("\u0600" <= c <= "\u06ff" for c in data.decode("cp1256", errors="replace"))
        raise TemplateError(
            f"{shown}:{line}: the file is not UTF-8 text (byte 0x{data[exc.start]:02X})"
            f"{_LOOKS_ANSI if ansi else ''}. {_SAVE_AS_UTF8}"
        ) from exc


@dataclass(kw_only=True, slots=True, eq=False)
class Preparer:
    """The per-contact stages, in order; a row that cannot be sent leaves with its status set."""

    phone_column: str
    templates: Templates
    footer: str
    max_pages: int
    suppression: Suppression | None
    normalise: bool
    # number as int (32 bytes a key, the str 60; a large run has a million) -> its first row
    seen: dict[int, int] = field(default_factory=dict, init=False, repr=False)

    def prepare(self, contact: Contact) -> Row:
        phone = contact.values.get(self.phone_column, "")
        row = Row(row=contact.row, phone=phone, values=contact.values)
        number = normalise_mobile(phone)
        if isinstance(number, InvalidNumber):
            return _settled(row, Status.INVALID, number.reason)
        row.number = number
        if self.suppression is not None and number in self.suppression:
            return _settled(row, Status.SUPPRESSED, self.suppression.why(number))
        key = int(number)
        if (first := self.seen.get(key)) is not None:
            return _settled(row, Status.DUPLICATE, f"same number as row {first}")
        renderer = self.templates.for_row(contact.values)
        if isinstance(renderer, str):
            return _settled(row, Status.INVALID, renderer)
        text = renderer.render(self._normalised(contact.values, renderer))
        if isinstance(text, RenderFailure):
            return _settled(row, Status.INVALID, text.reason)
        if self.footer:
            text = f"{text}\n{self.footer}"
        pages = count_pages(text)
        row.text, row.pages, row.encoding = text, pages.pages, pages.encoding
        if pages.pages > self.max_pages:
            why = f"{pages.pages} pages ({pages.units} {pages.encoding} units), more than "
            why += f"template.max_pages ({self.max_pages}); shorten the text or raise max_pages"
            return _settled(row, Status.INVALID, why)
        # Only a row really tried claims its number: a later row gets it if this one failed.
        self.seen[key] = row.row
        return row

    def _normalised(self, values: dict[str, str], renderer: Renderer) -> Mapping[str, str]:
        """Arabic letters as Persian, in the columns the template names (all if it reads `row`)."""
        if not self.normalise:
            return values
        if renderer.reads_row:
            return {k: normalise_text(v) for k, v in values.items()}
        changed: dict[str, str] = {}
        for key in renderer.variables:
            value = values.get(key)
            if value is not None and (clean := normalise_text(value)) != value:
                changed[key] = clean
        return values | changed if changed else values  # most rows need no copy


def _settled(row: Row, status: Status, error: str) -> Row:
    row.status, row.error = status, error
    return row
