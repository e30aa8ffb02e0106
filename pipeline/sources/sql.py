"""A SQL query (SQLAlchemy, `pipeline[sql]`), its rows read from a server-side cursor."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import InputError
from pipeline.sources.common import ContactSource, Rows, cell_text, contact_source

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection

_QUERY = "contacts.query"
_URL_FORM = (
    "Write it as dialect+driver://user:${DB_PASSWORD}@host:port/database, such as "
    "postgresql+psycopg://app:${DB_PASSWORD}@127.0.0.1:5432/shop or sqlite:////srv/contacts.db."
)
# The pip package of a driver module SQLAlchemy may ask for, where the names differ.
_DRIVER_PACKAGES = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "pymysql": "PyMySQL",
    "MySQLdb": "mysqlclient",
}
# Seconds to wait for a connection: a hung server would otherwise hold a cron run, and its
# lock, forever. `?connect_timeout=N` in the URL overrides; other drivers keep their own.
CONNECT_TIMEOUT = 30
_TIMEOUT_DRIVERS = frozenset({"psycopg", "psycopg2", "pymysql", "mysqldb"})
# URL query options that carry credentials (?password=..., ?sslpassword=..., ?token=...).
_SECRET_OPTION = re.compile(r"pass|pwd|secret|token|key", re.IGNORECASE)


def open_sql(url: str, query: str, phone_column: str, *, batch_size: int = 1_000) -> ContactSource:
    """Run the query now (a bad URL, login or SQL stops the run before anything is sent); no
    message holds the URL's secrets, even quoting the database's own text."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    try:
        import sqlalchemy  # noqa: F401, PLC0415 - optional: a file source never pays for it
    except ImportError as exc:
        raise InputError(
            "contacts.url: reading contacts from a database needs SQLAlchemy, "
            "which is not installed. Install it with: pip install 'pipeline[sql]'"
        ) from exc
    target = _Target.parse(url)
    rows = _rows(_connect(target), query, target, batch_size)
    rename = "Give every column its own name with AS in contacts.query."
    return contact_source(None, rows, phone_column, _QUERY, batch_size, rename=rename)


@dataclass(frozen=True, slots=True)
class _Target:
    url: URL
    where: str
    secrets: tuple[str, ...]  # longest first, so a secret that contains another goes whole

    @classmethod
    def parse(cls, raw: str) -> _Target:
        from sqlalchemy.engine import make_url  # noqa: PLC0415
        from sqlalchemy.exc import ArgumentError  # noqa: PLC0415

        try:
            url = make_url(raw)
        except (ArgumentError, ValueError):
            # from None, and no echo of the text: it is the URL, password and all.
            raise InputError(
                f"contacts.url: is not a database URL that SQLAlchemy can read. {_URL_FORM}"
            ) from None
        options = dict(url.query)
        hidden = {key: "***" for key in options if _SECRET_OPTION.search(key)}
        secrets = [url.password or "", raw]
        for key in hidden:
            value = options[key]
            secrets.extend([value] if isinstance(value, str) else value)
        masked = url.update_query_dict(hidden).render_as_string(hide_password=True)
        masked = masked.replace("%2A%2A%2A", "***")  # the URL quoting of the stand-in
        kept = sorted({secret for secret in secrets if secret}, key=len, reverse=True)
        return cls(url, f"contacts.url ({masked})", tuple(kept))

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def said(self, error: BaseException | None) -> str:
        """The error's first line (not the caret diagram, LINE 1: ... ^), secrets scrubbed."""
        text = str(error).strip()
        return self.scrub(text.splitlines()[0].strip() if text else "no message")


def _connect(target: _Target) -> Connection:
    from sqlalchemy import create_engine  # noqa: PLC0415
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError  # noqa: PLC0415
    from sqlalchemy.pool import NullPool  # noqa: PLC0415

    url, database = target.url, target.url.database or ":memory:"
    # SQLite creates a missing file on connect: a typo in the path would read an empty database.
    sqlite_file = url.get_backend_name() == "sqlite" and database != ":memory:"
    if sqlite_file and not (database.startswith("file:") or Path(database).is_file()):
        raise InputError(
            f"{target.where}: there is no SQLite file {database}. Check the path in contacts.url: "
            "sqlite:////srv/contacts.db is absolute, sqlite:///contacts.db is relative to the "
            "folder the command runs in."
        )
    # Every failure here is raised `from None`: the foreign text can quote the URL.
    try:
        driver = url.get_driver_name().lower()  # loads the dialect
        timed = driver in _TIMEOUT_DRIVERS and "connect_timeout" not in url.query
        timeout = {"connect_timeout": CONNECT_TIMEOUT} if timed else {}
        # NullPool: closing the connection really closes it; nothing outlives the source.
        engine = create_engine(url, poolclass=NullPool, connect_args=timeout)
    except ImportError as exc:
        module = (exc.name or url.get_driver_name()).split(".")[0]
        raise InputError(
            f"{target.where}: the database driver '{module}' is not installed. "
            f"Install it with: pip install '{_DRIVER_PACKAGES.get(module, module)}'"
        ) from None
    except NoSuchModuleError:  # before ArgumentError, its parent
        raise InputError(
            f"{target.where}: SQLAlchemy knows no database kind '{url.drivername}'. {_URL_FORM}"
        ) from None
    except ArgumentError as exc:
        raise InputError(f"{target.where}: {target.said(exc)} {_URL_FORM}") from None
    try:
        return engine.connect()
    except DBAPIError as exc:
        # libpq gives one line per address it tried: joined into one.
        lines = [" ".join(line.split()) for line in str(exc.orig).splitlines()]
        host, port = url.host or "localhost", url.port
        server = f"{host}:{port}" if port else f"{host} (its default port)"
        if url.get_backend_name() == "sqlite":
            server = f"the SQLite database {url.database or '(in memory)'}"
        raise InputError(
            f"{target.where}: cannot connect to {server} "
            f"({target.scrub('; '.join(line for line in lines if line) or 'no message')}). "
            "Check that the database server is running and that the host, port, user, password "
            "and database name in contacts.url are right (the password comes from the ${VAR} "
            "you set in the environment)."
        ) from None


def _rows(connection: Connection, query: str, target: _Target, batch_size: int) -> Rows:
    from sqlalchemy.exc import DBAPIError  # noqa: PLC0415

    with connection:  # closed at the end, and the cursor before it
        try:
            result = connection.execution_options(
                stream_results=True,  # a server-side cursor where the driver has one
                yield_per=batch_size,  # fetched from the server this many rows at a time
                no_parameters=True,  # the query goes to the driver as written: '%' and ':x' stay
            ).exec_driver_sql(query)
        except DBAPIError as exc:
            raise InputError(
                f"{_QUERY}: the database refused the query "
                f"({target.said(exc.orig)}) on {target.where}. "
                "Fix the SQL in contacts.query: one SELECT statement "
                "(try it in the database's own client first)."
            ) from exc
        try:
            if not result.returns_rows:
                raise InputError(
                    f"{_QUERY}: returns no rows (it is not a SELECT); nothing it changed was kept. "
                    "Write a query such as SELECT mobile, name FROM customers."
                )
            keys = list(map(str, result.keys()))  # a result is not a dict: iterating reads rows
            if not keys:
                raise InputError(
                    f"{_QUERY}: returns no columns. Name the columns to read, "
                    "such as SELECT mobile, name FROM customers."
                )
            yield keys
            for values in result:
                yield [cell_text(value) for value in values]
        except DBAPIError as exc:  # part-way: a bad cast in some row, a dropped connection
            raise InputError(
                f"{_QUERY}: reading the rows stopped ({target.said(exc.orig)}) on {target.where}. "
                "Fix the query or the data it reads, then run again."
            ) from exc
        finally:
            result.close()
