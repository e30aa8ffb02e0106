"""The SQL contacts source against a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import csv
import gc
import importlib.util
import os
import socket
import sqlite3
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from pipeline.errors import InputError
from pipeline.models import Contact
from pipeline.sources import ContactSource, open_sql
from pipeline.sources import sql as sql_source
from tests.conftest import run_cli

SECRET = "S3cret-pw-7781"  # put in URLs; must never appear in a message or traceback
DEFAULT_PG_URL = "postgresql+psycopg://pipeline:pipeline@127.0.0.1:5432/pipeline"


def read_all(source: ContactSource) -> list[Contact]:
    return [contact for batch in source.batches for contact in batch]


def refusal(url: str, query: str = "SELECT 1 AS mobile", phone: str = "mobile") -> InputError:
    with pytest.raises(InputError) as caught:
        open_sql(url, query, phone)
    return caught.value


def assert_hidden(error: BaseException, *secrets: str) -> None:
    """Neither the message nor anything chained to it holds a secret."""
    shown = "".join(traceback.format_exception(error))
    for secret in secrets:
        assert secret not in str(error)
        assert secret not in shown


# --- SQLite ------------------------------------------------------------------------------------


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A SQLite file with a customers table of awkward values."""
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE customers ("
            "id INTEGER PRIMARY KEY, mobile TEXT, name TEXT, code INTEGER, balance REAL, note TEXT)"
        )
        db.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)",
            [
                (1, "09121234567", "سارا", 42, 1500.5, None),
                (2, "00989121234568", "علی", 7, 9123456789.0, "VIP"),
                (3, "0912", "", None, None, ""),
            ],
        )
    db.close()
    return path


def test_sqlite_columns_and_values_are_text(shop: Path):
    """Columns come in query order; TEXT keeps leading zeros, INTEGER and whole REAL are plain
    digits, NULL is "", and rows are numbered 1.. in result order."""
    source = open_sql(
        f"sqlite:///{shop}",
        "SELECT mobile, name, code, balance, note FROM customers ORDER BY id",
        "mobile",
    )
    assert source.path is None
    assert source.columns == ("mobile", "name", "code", "balance", "note")
    assert read_all(source) == [
        Contact(1, {"mobile": "09121234567", "name": "سارا", "code": "42", "balance": "1500.5",
                    "note": ""}),
        Contact(2, {"mobile": "00989121234568", "name": "علی", "code": "7",
                    "balance": "9123456789", "note": "VIP"}),
        Contact(3, {"mobile": "0912", "name": "", "code": "", "balance": "", "note": ""}),
    ]  # fmt: skip


def test_sqlite_rows_come_in_batches(tmp_path: Path):
    """25 rows with batch_size 10 arrive as 10, 10, 5, numbered 1..25 in result order."""
    path = tmp_path / "many.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (mobile TEXT)")
        db.executemany("INSERT INTO t VALUES (?)", [(f"0912{i:07d}",) for i in range(25)])
    db.close()
    source = open_sql(f"sqlite:///{path}", "SELECT mobile FROM t ORDER BY mobile", "mobile",
                      batch_size=10)  # fmt: skip
    batches = list(source.batches)
    assert [len(batch) for batch in batches] == [10, 10, 5]
    contacts = [contact for batch in batches for contact in batch]
    assert [c.row for c in contacts] == list(range(1, 26))
    assert [c.values["mobile"] for c in contacts] == [f"0912{i:07d}" for i in range(25)]


def test_sqlite_row_of_nulls_is_counted_not_yielded(shop: Path):
    """A row whose every value is NULL or blank is skipped, as a blank line in a file, and the
    rows after it keep their true positions."""
    source = open_sql(
        f"sqlite:///{shop}",
        "SELECT mobile FROM customers WHERE id = 1 UNION ALL SELECT NULL "
        "UNION ALL SELECT mobile FROM customers WHERE id = 2",
        "mobile",
    )
    assert [(c.row, c.values["mobile"]) for c in read_all(source)] == [
        (1, "09121234567"),
        (3, "00989121234568"),
    ]


def test_each_open_runs_the_query_afresh(shop: Path):
    """Two opens are two reads of the database: rows added in between are in the second."""
    url, query = f"sqlite:///{shop}", "SELECT mobile FROM customers ORDER BY id"
    first = open_sql(url, query, "mobile")
    assert len(read_all(first)) == 3
    with sqlite3.connect(shop) as db:
        db.execute("INSERT INTO customers (id, mobile) VALUES (4, '09125555555')")
    db.close()
    assert [c.values["mobile"] for c in read_all(open_sql(url, query, "mobile"))][-1] == (
        "09125555555"
    )


def test_query_text_reaches_the_database_as_written(shop: Path):
    """'%' and ':name' inside the SQL are SQL, not parameter placeholders."""
    source = open_sql(
        f"sqlite:///{shop}",
        "SELECT mobile, 'at 10:30 :x' AS note FROM customers WHERE mobile LIKE '0912%' ORDER BY id",
        "mobile",
    )
    assert [(c.values["mobile"], c.values["note"]) for c in read_all(source)] == [
        ("09121234567", "at 10:30 :x"),
        ("0912", "at 10:30 :x"),
    ]


@pytest.fixture
def secret_sqlite_url(shop: Path) -> str:
    """The shop file, read-only, by a URL with a password option (SQLite has no login, so a
    credential can only ride in an option: SQLite ignores it, the messages must hide it)."""
    return f"sqlite:///file:{shop}?mode=ro&uri=true&password={SECRET}"


def test_bad_table_names_the_query_and_hides_the_password(secret_sqlite_url: str):
    """An SQL error names contacts.query, quotes the database's message, masks the URL."""
    error = refusal(secret_sqlite_url, "SELECT mobile FROM nope")
    assert str(error).startswith("contacts.query: the database refused the query")
    assert "no such table: nope" in str(error)
    assert "contacts.url (sqlite:///file" in str(error) and "password=***" in str(error)
    assert_hidden(error, SECRET)


def test_missing_phone_column_suggests_the_closest(secret_sqlite_url: str):
    """A query without the phone column is refused at open time, with the likely name."""
    error = refusal(secret_sqlite_url, "SELECT mobile AS Mobile_No, name FROM customers", "mobile")
    message = str(error)
    assert message.startswith("contacts.query: there is no column 'mobile'")
    assert "'Mobile_No', 'name'" in message and "Did you mean 'Mobile_No'?" in message
    assert "contacts.phone_column" in message
    assert_hidden(error, SECRET)


def test_same_name_twice_asks_for_as(shop: Path):
    """Two result columns of one name cannot both be template variables: AS is the fix."""
    error = refusal(f"sqlite:///{shop}", "SELECT mobile, name AS mobile FROM customers")
    assert "'mobile' more than once" in str(error) and "AS" in str(error)


def test_non_select_is_refused_and_rolled_back(shop: Path):
    """A statement that returns no rows is refused, and what it changed is not kept."""
    error = refusal(f"sqlite:///{shop}", "DELETE FROM customers")
    assert "not a SELECT" in str(error)
    with sqlite3.connect(shop) as db:
        assert db.execute("SELECT COUNT(*) FROM customers").fetchone() == (3,)
    db.close()


def test_missing_sqlite_file_is_refused_not_created(tmp_path: Path):
    """SQLite would create a mistyped file empty; the source refuses it and creates nothing."""
    missing = tmp_path / "typo.db"
    error = refusal(f"sqlite:///{missing}")
    assert f"there is no SQLite file {missing}" in str(error)
    assert not missing.exists()


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://app:{SECRET}@127.0.0.1:port/shop",  # a port that is no number
        f"app:{SECRET}@127.0.0.1/shop",  # no dialect
        f"{SECRET}",
    ],
)
def test_bad_url_is_refused_without_echoing_it(url: str):
    """A URL SQLAlchemy cannot parse is refused with the expected form and no part of it."""
    error = refusal(url)
    assert str(error).startswith("contacts.url: is not a database URL")
    assert "dialect+driver://" in str(error)
    assert_hidden(error, SECRET, url)


def test_unknown_database_kind(tmp_path: Path):
    """A dialect SQLAlchemy does not know is named, with the password masked."""
    error = refusal(f"nosuchdb://app:{SECRET}@127.0.0.1/shop")
    assert "knows no database kind 'nosuchdb'" in str(error)
    assert "nosuchdb://app:***@127.0.0.1/shop" in str(error)
    assert_hidden(error, SECRET)


def test_missing_driver_says_which_package_to_install():
    """A URL whose driver module is absent names the pip package that brings it."""
    if importlib.util.find_spec("pymysql") is not None:
        pytest.skip("pymysql is installed here, so it cannot be found missing")
    error = refusal(f"mysql+pymysql://app:{SECRET}@127.0.0.1:3306/shop")
    assert "the database driver 'pymysql' is not installed" in str(error)
    assert "pip install 'PyMySQL'" in str(error)
    assert_hidden(error, SECRET)


def test_cannot_connect_names_host_and_port():
    """A server that is not there is named by host and port; the password stays hidden."""
    error = refusal(f"postgresql+psycopg://app:{SECRET}@127.0.0.1:9/shop?sslmode=disable")
    message = str(error)
    assert message.startswith("contacts.url (postgresql+psycopg://app:***@127.0.0.1:9/shop")
    assert "cannot connect to 127.0.0.1:9" in message and "refused" in message
    assert_hidden(error, SECRET)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that takes TCP connections and never says a word (a hung database server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # never accepted: the kernel completes the handshake regardless
        yield listener.getsockname()[1]


def test_a_server_that_never_answers_fails_after_the_connect_timeout(
    silent_server: int, monkeypatch: pytest.MonkeyPatch
):
    """Without a timeout a hung server would hold a cron run, and the journal's lock, forever."""
    monkeypatch.setattr(sql_source, "CONNECT_TIMEOUT", 2)  # libpq's smallest
    started = time.monotonic()
    error = refusal(f"postgresql+psycopg://app:{SECRET}@127.0.0.1:{silent_server}/shop")
    assert time.monotonic() - started < 20
    message = str(error)
    assert f"cannot connect to 127.0.0.1:{silent_server}" in message and "timeout" in message
    assert_hidden(error, SECRET)


def test_connect_timeout_in_the_url_wins(silent_server: int, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sql_source, "CONNECT_TIMEOUT", 40)  # what the URL must override
    started = time.monotonic()
    url = f"postgresql+psycopg://app:{SECRET}@127.0.0.1:{silent_server}/shop?connect_timeout=2"
    assert "timeout" in str(refusal(url))
    assert time.monotonic() - started < 20


def test_password_in_url_options_is_masked_too():
    """A credential passed as a URL option (?password=...) is hidden like the password."""
    error = refusal(f"postgresql+psycopg://app@127.0.0.1:9/shop?password={SECRET}")
    assert "postgresql+psycopg://app@127.0.0.1:9/shop?password=***" in str(error)
    assert_hidden(error, SECRET)


def test_sqlite_url_with_a_login_is_refused_without_it(shop: Path, monkeypatch: pytest.MonkeyPatch):
    """SQLite has no login: a user and password in its URL are refused, the password hidden."""
    monkeypatch.chdir(shop.parent)  # the file is there: the refusal is for the login
    error = refusal(f"sqlite://reader:{SECRET}@/{shop.name}")
    assert str(error).startswith(f"contacts.url (sqlite://reader:***@/{shop.name}): ")
    assert "Invalid SQLite URL" in str(error) and "\n" not in str(error)
    assert_hidden(error, SECRET)


def test_without_sqlalchemy_the_fix_is_the_extra(monkeypatch: pytest.MonkeyPatch, shop: Path):
    """Where SQLAlchemy is not installed, the message says to install pipeline[sql]."""
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)  # what a failed import leaves
    error = refusal(f"sqlite:///{shop}")
    assert "pip install 'pipeline[sql]'" in str(error)


def test_run_reads_a_sqlite_query_end_to_end(tmp_path: Path):
    """`python -m pipeline` sends to every row of a SQL query, the URL's path from ${DB_PATH}."""
    folder = tmp_path / "campaign"
    folder.mkdir()
    db_path = tmp_path / "crm.db"
    with sqlite3.connect(db_path) as db:
        db.execute("CREATE TABLE customers (mobile TEXT, first_name TEXT, active INTEGER)")
        db.executemany(
            "INSERT INTO customers VALUES (?, ?, ?)",
            [("09121111111", "سارا", 1), ("09122222222", "علی", 0), ("09123333333", "مریم", 1)],
        )
    db.close()
    config = folder / "config.yaml"
    config.write_text(
        """\
campaign: sql-campaign
contacts:
  query: SELECT mobile, first_name FROM customers WHERE active = 1 ORDER BY mobile
  url: "sqlite:///${DB_PATH}"
template:
  text: "{{ first_name }} عزیز، سلام"
provider:
  sandbox: true
report:
  path: reports/report.csv
journal:
  path: state/journal.sqlite
""",
        encoding="utf-8",
    )
    result = run_cli(config, env={"DB_PATH": str(db_path)})
    assert result.returncode == 0, result.stderr
    with (folder / "reports" / "report.csv").open(encoding="utf-8-sig", newline="") as f:
        report = list(csv.DictReader(f))
    assert [(r["row"], r["number"], r["status"]) for r in report] == [
        ("1", "09121111111", "sent"),
        ("2", "09123333333", "sent"),
    ]
    assert "سارا عزیز" in report[0]["text"]


# --- PostgreSQL --------------------------------------------------------------------------------


@dataclass
class Postgres:
    """A reachable PostgreSQL server and a scratch table name for one test."""

    url: str
    engine: Engine
    table: str

    def execute(self, sql: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(text(sql))

    def url_named(self, application: str) -> str:
        """The URL with an application_name, so pg_stat_activity shows this source's session."""
        named = make_url(self.url).update_query_dict({"application_name": application})
        return named.render_as_string(hide_password=False)

    def sessions(self, application: str) -> list[str]:
        """The last statement of each open session of `application`."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT query FROM pg_stat_activity WHERE application_name = :name"),
                {"name": application},
            )
            return [row.query for row in rows]


@pytest.fixture(scope="module")
def pg_engine() -> Iterator[tuple[str, Engine]]:
    url = os.environ.get("PIPELINE_TEST_PG_URL", DEFAULT_PG_URL)
    shown = make_url(url).render_as_string(hide_password=True)
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # no server, no driver, refused login: all mean "cannot test"
        engine.dispose()
        reason = " ".join(str(getattr(exc, "orig", exc)).split())[:200]
        pytest.skip(
            f"PostgreSQL not reachable at {shown} ({reason}): the PostgreSQL tests did NOT run. "
            "Run scripts/start-postgres (as root) or set PIPELINE_TEST_PG_URL."
        )
    yield url, engine
    engine.dispose()


@pytest.fixture
def pg(pg_engine: tuple[str, Engine]) -> Iterator[Postgres]:
    url, engine = pg_engine
    server = Postgres(url, engine, f"contacts_{uuid.uuid4().hex[:12]}")
    yield server
    server.execute(f"DROP TABLE IF EXISTS {server.table}")


def test_pg_streams_25000_rows_in_batches_of_10000(pg: Postgres):
    """25,000 rows arrive as 10,000 + 10,000 + 5,000, fetched from a server-side cursor
    10,000 at a time, and the connection is closed once the last batch is read."""
    pg.execute(
        f"CREATE TABLE {pg.table} AS SELECT g AS id, '0912' || lpad(g::text, 7, '0') AS mobile "
        "FROM generate_series(1, 25000) AS g"
    )
    application = f"stream-{pg.table}"
    source = open_sql(
        pg.url_named(application),
        f"SELECT mobile FROM {pg.table} ORDER BY id",
        "mobile",
        batch_size=10_000,
    )
    sizes = []
    for batch in source.batches:
        sizes.append(len(batch))
        if len(sizes) == 1:
            # The server holds the cursor; what the client asked for last is one batch of rows.
            [statement] = pg.sessions(application)
            assert statement.startswith("FETCH FORWARD 10000 FROM")
        assert batch[0].values["mobile"] == f"0912{batch[0].row:07d}"
    assert sizes == [10_000, 10_000, 5_000]
    assert pg.sessions(application) == []


def test_pg_dropped_source_closes_its_connection(pg: Postgres):
    """A source whose batches are never read, or read in part, closes its session when dropped."""
    pg.execute(f"CREATE TABLE {pg.table} AS SELECT g::text AS mobile FROM generate_series(1, 50) g")
    application = f"drop-{pg.table}"
    url, query = pg.url_named(application), f"SELECT mobile FROM {pg.table}"
    unread = open_sql(url, query, "mobile")
    assert len(pg.sessions(application)) == 1
    del unread
    gc.collect()
    assert pg.sessions(application) == []
    part_read = open_sql(url, query, "mobile", batch_size=10)
    next(part_read.batches)
    del part_read
    gc.collect()
    assert pg.sessions(application) == []


def test_pg_values_and_persian_text_round_trip(pg: Postgres):
    """Persian text (ZWNJ, Arabic ي/ك as stored) comes back exactly; numerics, bigints and dates
    as plain text; NULL as ""."""
    name = "زهرا\u200cسادات كريمي"  # ZWNJ, and Arabic kaf/yeh as a CRM may hold them
    pg.execute(
        f"CREATE TABLE {pg.table} (mobile text, name text, total numeric(20, 2), "
        "code bigint, joined date, note text)"
    )
    with pg.engine.begin() as connection:
        connection.execute(
            text(f"INSERT INTO {pg.table} VALUES (:m, :n, 9123456789.00, 42, '2026-03-21', NULL)"),
            {"m": "09121234567", "n": name},
        )
    source = open_sql(pg.url, f"SELECT * FROM {pg.table}", "mobile")
    assert source.columns == ("mobile", "name", "total", "code", "joined", "note")
    [contact] = read_all(source)
    assert contact == Contact(
        1,
        {
            "mobile": "09121234567",
            "name": name,
            "total": "9123456789",
            "code": "42",
            "joined": "2026-03-21",
            "note": "",
        },
    )


def test_pg_error_part_way_is_an_input_error(pg: Postgres):
    """A row that fails while streaming (a division by zero in row 15,000) stops the read with
    an InputError naming the query, after the rows before it, and closes the session."""
    application = f"fail-{pg.table}"
    source = open_sql(
        pg.url_named(application),
        "SELECT g::text AS mobile, 1 / (g - 15000) AS x FROM generate_series(1, 20000) AS g",
        "mobile",
        batch_size=10_000,
    )
    batches = iter(source.batches)
    assert len(next(batches)) == 10_000
    with pytest.raises(InputError, match=r"^contacts\.query: reading the rows stopped") as caught:
        next(batches)
    assert "division by zero" in str(caught.value)
    assert pg.sessions(application) == []


def test_pg_wrong_password_hides_it(pg: Postgres):
    """A refused login is an InputError naming the server, and the wrong password is not in it."""
    wrong = make_url(pg.url).set(password=SECRET).render_as_string(hide_password=False)
    error = refusal(wrong, f"SELECT 1 AS mobile FROM {pg.table}")
    message = str(error)
    assert "password authentication failed" in message
    host, port = make_url(pg.url).host, make_url(pg.url).port
    assert f"cannot connect to {host}:{port}" in message
    assert_hidden(error, SECRET)


def test_pg_missing_table_quotes_the_database(pg: Postgres):
    """An SQL error carries PostgreSQL's one-line message, without its caret diagram."""
    error = refusal(pg.url, f"SELECT mobile FROM {pg.table}")
    assert f'relation "{pg.table}" does not exist' in str(error)
    assert "LINE 1" not in str(error)
