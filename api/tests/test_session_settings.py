"""Values arrive exactly whatever the database session's settings (`session_settings`): a
server's, a database's or role's defaults, or the app's own on its connections.

Each test exports a table of its own through both paths (the fast path and the Python path, each
through `ExportShardManager.lines`) from sessions set otherwise, compares the records with the
stored values, and checks that the app's pooled connections have their own settings back after.
PostgreSQL's defaults are set on a database of this module's own (`ALTER DATABASE ... SET`).
"""
from __future__ import annotations

import math
import random
import struct
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Callable, Iterator

import orjson
import pytest
import sqlalchemy as sa
from google.cloud.bigquery import SchemaField
from sqlalchemy import event
from sqlalchemy.dialects import mysql, postgresql

from api.db import db
from api.tests.conftest import PG_SERVER, SCRATCH_DB, _run_sql
from api.tests.fast_paths import UTC, WHOLE_TABLE, assert_same_records, export_of, metadata  # noqa: F401
from bq_etl.manager import ExportShardManager
from bq_etl.mysql_lines import mysql_lines
from bq_etl.postgres_lines import postgres_lines
from bq_etl.session_settings import reading_settings

on_mariadb = pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
on_postgresql = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
# A PostgreSQL database of this module's own: its defaults are altered.
SETTINGS_DB = f"{SCRATCH_DB}_settings"
_F32 = struct.Struct("<f")


@pytest.fixture(scope="module")
def settings_database() -> Iterator[str]:
    _run_sql(PG_SERVER, f"DROP DATABASE IF EXISTS {SETTINGS_DB}")
    _run_sql(PG_SERVER, f"CREATE DATABASE {SETTINGS_DB}")
    yield f"{PG_SERVER}/{SETTINGS_DB}"
    _run_sql(PG_SERVER, f"DROP DATABASE IF EXISTS {SETTINGS_DB}")


@pytest.fixture
def database_url(request, database_urls, settings_database) -> str:
    """The conftest's databases, but on PostgreSQL the database of this module's own."""
    return settings_database if request.param == "postgresql" else database_urls[request.param]


@pytest.fixture
def database_defaults(app) -> Iterator[Callable[..., None]]:
    """Set PostgreSQL defaults for every new connection to the test's database, as
    `ALTER DATABASE ... SET` does (new connections only: the engine's pool is emptied)."""

    def alter(**settings: str) -> None:
        for name, value in settings.items():
            _run_sql(PG_SERVER, f"ALTER DATABASE {SETTINGS_DB} SET {name} = '{value}'")
        _fresh_connections()

    yield alter
    _run_sql(PG_SERVER, f"ALTER DATABASE {SETTINGS_DB} RESET ALL")
    _fresh_connections()


@pytest.fixture
def every_connection(app) -> Iterator[Callable[..., None]]:
    """Run SQL on every new connection of the app's engine, as an app's connect hook would."""
    statements: list[str] = []

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        dbapi_connection.commit()

    event.listen(db.engine, "connect", on_connect)

    def use(*sql: str) -> None:
        statements[:] = sql
        _fresh_connections()

    yield use
    event.remove(db.engine, "connect", on_connect)
    _fresh_connections()


def _fresh_connections() -> None:
    db.session.remove()
    db.engine.dispose()


def exported(manager: ExportShardManager, database_lines: bool) -> list[dict[str, Any]]:
    """The records of the lines `manager.lines` writes on the fast path or the Python path."""
    manager.database_lines = database_lines
    try:
        return [orjson.loads(line) for item in manager.lines(WHOLE_TABLE) for line in item.splitlines()]
    finally:
        del manager.database_lines


def both_paths(manager: ExportShardManager, applies: Callable[..., Any]) -> list[dict[str, Any]]:
    """The records both paths write, which must be the same; the fast path (`applies`) must
    build them."""
    try:
        assert applies(manager, WHOLE_TABLE) is not None, "the fast path did not apply"
    finally:
        db.session.rollback()
    fast = exported(manager, True)
    assert_same_records(fast, exported(manager, False))
    return fast


def pooled_settings(query: str) -> set[tuple[Any, ...]]:
    """`query`'s row on each connection the app's pool holds, and on the session's."""
    engine = db.engine
    connections = [engine.connect() for _ in range(max(engine.pool.checkedin(), 1))]
    try:
        rows = {tuple(connection.exec_driver_sql(query).one()) for connection in connections}
    finally:
        for connection in connections:
            connection.close()
    rows.add(tuple(db.session.execute(sa.text(query)).one()))
    db.session.rollback()
    return rows


def created(table: sa.Table, rows: list[dict[str, Any]], setup: str | None = None) -> None:
    """Create `table` and commit `rows`, after `setup` on the same connection."""
    with db.engine.begin() as connection:
        if setup:
            connection.exec_driver_sql(setup)
        table.create(connection)
        for row in rows:
            connection.execute(table.insert().values(row))


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=False)


# --- MariaDB ---------------------------------------------------------------------------------

INSTANTS = ["2024-06-01 12:00:00", "1970-01-01 00:00:01", "2038-01-19 03:14:07.999999"]


@on_mariadb
@pytest.mark.parametrize("zone", ["+05:45", "-03:00", "SYSTEM"])
def test_mariadb_timestamps_arrive_as_their_instants_whatever_the_session_zone(metadata, every_connection, zone):
    # SYSTEM is the server's default; this host's system zone is UTC, so it is the control.
    table = sa.Table("instants", metadata, _id(), sa.Column("at", mysql.TIMESTAMP(fsp=6), nullable=True),
                     sa.Column("wall", mysql.DATETIME(fsp=6)))
    created(table, [{"id": index, "at": sa.literal(text), "wall": sa.literal(text)}
                    for index, text in enumerate(INSTANTS, 1)], setup="SET time_zone = '+00:00'")
    every_connection(f"SET time_zone = '{zone}'")
    manager = export_of(table, [SchemaField("at", "TIMESTAMP"), SchemaField("wall", "DATETIME")])

    records = both_paths(manager, mysql_lines)

    assert records == [
        {"id": 1, "at": "2024-06-01T12:00:00.000000Z", "wall": "2024-06-01T12:00:00.000000"},
        {"id": 2, "at": "1970-01-01T00:00:01.000000Z", "wall": "1970-01-01T00:00:01.000000"},
        {"id": 3, "at": "2038-01-19T03:14:07.999999Z", "wall": "2038-01-19T03:14:07.999999"},
    ]
    assert pooled_settings("SELECT @@session.time_zone") == {(zone,)}


@on_mariadb
def test_a_mariadb_timestamp_shard_key_cuts_the_same_shards_in_any_session_zone(metadata, every_connection):
    table = sa.Table("keyed_by_instant", metadata, sa.Column("at", mysql.TIMESTAMP(fsp=6), primary_key=True))
    created(table, [{"at": sa.literal(text)} for text in INSTANTS], setup="SET time_zone = '+00:00'")
    every_connection("SET time_zone = '+05:45'")

    class ByInstant(ExportShardManager):
        table_name = "keyed_by_instant"
        shard_key = table.c.at
        schema = [SchemaField("at", "TIMESTAMP", "REQUIRED")]
        shard_size = 1

        def query(self) -> sa.Select:
            return sa.select(table.c.at)

    manager = ByInstant()
    shards, total = manager.plan()
    records = [orjson.loads(line) for shard in shards for item in manager.lines(shard) for line in item.splitlines()]

    assert total == 3
    assert [shard.upper for shard in shards] == [datetime(1970, 1, 1, 0, 0, 1), datetime(2024, 6, 1, 12), None]
    assert records == [{"at": "1970-01-01T00:00:01.000000Z"}, {"at": "2024-06-01T12:00:00.000000Z"},
                       {"at": "2038-01-19T03:14:07.999999Z"}]


# MariaDB's FLOAT is single precision; it keeps no negative zero. Each value is written as the
# shortest decimal that reads back as the same float32, as PostgreSQL writes a REAL.
FLOAT32_EDGES = [
    ("281914.34375", 281914.34), ("16777216", 16777216.0), ("3.1415927", 3.1415927), ("0.1", 0.1),
    ("-0.0", 0.0), ("3.4028234663852886e38", 3.4028235e38), ("1.401298464324817e-45", 1e-45),
    ("1.1754943508222875e-38", 1.1754944e-38), ("-123456.703125", -123456.7), ("4192393.25", 4192393.2),
]


@on_mariadb
def test_mariadb_single_precision_floats_arrive_exactly_and_doubles_unchanged(metadata):
    # `Float` makes a FLOAT column; the export reads the DOUBLE column as `Float` too.
    table = sa.Table("floats", metadata, _id(), sa.Column("f", sa.Float), sa.Column("d", mysql.DOUBLE))
    created(table, [{"id": index, "f": sa.literal_column(text), "d": sa.literal_column(text)}
                    for index, (text, _) in enumerate(FLOAT32_EDGES, 1)]
            + [{"id": 100, "d": 0.1 + 0.2}, {"id": 101, "d": 281914.34375}])
    read_as_float = sa.Table("floats", sa.MetaData(), _id(), sa.Column("f", sa.Float), sa.Column("d", sa.Float))
    manager = export_of(read_as_float, [SchemaField("f", "FLOAT"), SchemaField("d", "FLOAT")])

    records = both_paths(manager, mysql_lines)

    assert [(record.get("f"), record["d"]) for record in records] == [
        *((expected, 0.0 if text == "-0.0" else float(text)) for text, expected in FLOAT32_EDGES),
        (None, 0.30000000000000004), (None, 281914.34375),
    ]
    assert orjson.dumps([record.get("f") for record in records][:5]) == b"[281914.34,16777216.0,3.1415927,0.1,0.0]"


@on_mariadb
def test_mariadb_single_precision_floats_read_as_decimals_are_exact(metadata):
    table = sa.Table("decimal_floats", metadata, _id(), sa.Column("f", sa.Float(asdecimal=True)))
    created(table, [{"id": 1, "f": sa.literal_column("281914.34375")}, {"id": 2, "f": sa.literal_column("0.1")}])
    manager = export_of(table, [SchemaField("f", "NUMERIC")])

    assert exported(manager, False) == [{"id": 1, "f": "281914.34"}, {"id": 2, "f": "0.1"}]


def _float32(value: float) -> float:
    return _F32.unpack(_F32.pack(value))[0]


@on_mariadb
def test_random_mariadb_floats_are_the_shortest_decimal_of_their_float32_on_both_paths(metadata):
    generator = random.Random(32)
    values = []
    while len(values) < 3000:
        value = _F32.unpack(generator.getrandbits(32).to_bytes(4, "little"))[0]
        if math.isfinite(value) and (len(values) % 2 or 1e-4 <= abs(value) < 1e15):  # half in the SQL's range
            values.append(value)
    table = sa.Table("random_floats", metadata, _id(), sa.Column("f", mysql.FLOAT))
    with db.engine.begin() as connection:
        table.create(connection)
        connection.execute(table.insert(), [{"id": index, "f": value} for index, value in enumerate(values, 1)])
    manager = export_of(table, [SchemaField("f", "FLOAT")])

    written = [record["f"] for record in both_paths(manager, mysql_lines)]

    stored = [0.0 if value == 0 else value for value in values]  # MariaDB keeps no negative zero
    assert len(written) == len(stored)
    assert [(number, value) for number, value in zip(written, stored) if _float32(number) != value] == []
    # No decimal a digit shorter reads back as the stored float32 (the nearest one would).
    assert [number for number, value in zip(written, stored)
            if _digits(number) > 1 and _float32(float(f"{value:.{_digits(number) - 1}g}")) == value] == []


def _digits(number: float) -> int:
    """The significant digits of `number`'s shortest decimal."""
    return len(repr(abs(number)).split("e")[0].replace(".", "").strip("0")) or 1


@on_mariadb
def test_a_mariadb_select_limit_on_the_session_drops_no_row(metadata, every_connection):
    table = sa.Table("limited", metadata, _id(), sa.Column("n", sa.Integer))
    created(table, [{"id": index, "n": index * 10} for index in (1, 2, 3)])
    every_connection("SET sql_select_limit = 1")

    records = both_paths(export_of(table, [SchemaField("n", "INTEGER")]), mysql_lines)

    assert records == [{"id": 1, "n": 10}, {"id": 2, "n": 20}, {"id": 3, "n": 30}]
    assert pooled_settings("SELECT @@session.sql_select_limit") == {(1,)}


@on_mariadb
def test_a_mariadb_session_sending_results_in_another_character_set_changes_no_string(metadata, every_connection):
    table = sa.Table("texts", metadata, _id(), sa.Column("s", sa.String(20)), mysql_charset="utf8mb4")
    created(table, [{"id": 1, "s": "é 🙏"}, {"id": 2, "s": "🙏"}])
    every_connection("SET character_set_results = latin1")

    records = both_paths(export_of(table, [SchemaField("s", "STRING")]), mysql_lines)

    assert records == [{"id": 1, "s": "é 🙏"}, {"id": 2, "s": "🙏"}]
    assert pooled_settings("SELECT @@session.character_set_results") == {("latin1",)}


@on_mariadb
def test_an_oracle_mode_mariadb_session_keeps_the_python_path(metadata, every_connection):
    # In ORACLE mode CONCAT skips a NULL: the database's lines would hold empty values.
    table = sa.Table("oracle_mode", metadata, _id(), sa.Column("s", sa.String(20)), sa.Column("n", sa.Integer))
    created(table, [{"id": 1, "s": "a", "n": 1}, {"id": 2, "s": "", "n": None}, {"id": 3, "s": None, "n": 3}])
    every_connection("SET sql_mode = 'ORACLE'")
    manager = export_of(table, [SchemaField("s", "STRING"), SchemaField("n", "INTEGER")])

    assert mysql_lines(manager, WHOLE_TABLE) is None
    db.session.rollback()
    assert exported(manager, True) == exported(manager, False) == [
        {"id": 1, "s": "a", "n": 1}, {"id": 2, "s": ""}, {"id": 3, "n": 3}]


# --- PostgreSQL ------------------------------------------------------------------------------

def _pg_floats(metadata: sa.MetaData) -> ExportShardManager:
    table = sa.Table("floats", metadata, _id(), sa.Column("f8", sa.Double), sa.Column("f4", sa.REAL))
    created(table, [
        {"id": 1, "f8": 0.1 + 0.2, "f4": sa.literal_column("'0.1'")},
        {"id": 2, "f8": 1.7976931348623157e308, "f4": sa.literal_column("'16777216'")},
        {"id": 3, "f8": 5e-324, "f4": sa.literal_column("'3.4028235e38'")},
        {"id": 4, "f8": 123456789.12345678, "f4": sa.literal_column("'3.1415927'")},
        {"id": 5, "f8": -0.0, "f4": sa.literal_column("'1e-45'")},
    ])
    return export_of(table, [SchemaField("f8", "FLOAT"), SchemaField("f4", "FLOAT")])


PG_FLOATS = [
    {"id": 1, "f8": 0.30000000000000004, "f4": 0.1}, {"id": 2, "f8": 1.7976931348623157e308, "f4": 16777216.0},
    {"id": 3, "f8": 5e-324, "f4": 3.4028235e38}, {"id": 4, "f8": 123456789.12345678, "f4": 3.1415927},
    {"id": 5, "f8": -0.0, "f4": 1e-45},
]


@on_postgresql
@pytest.mark.parametrize("digits", ["0", "-15"])
def test_postgresql_floats_arrive_exactly_whatever_extra_float_digits(metadata, database_defaults, digits):
    manager = _pg_floats(metadata)
    database_defaults(extra_float_digits=digits)

    records = both_paths(manager, postgres_lines)

    assert orjson.dumps(records) == orjson.dumps(PG_FLOATS)
    assert pooled_settings("SELECT current_setting('extra_float_digits')") == {(digits,)}


PG_INSTANTS = [
    "'0001-01-01 00:00:00+00'", "'0001-01-01 03:00:00+02'", "'9999-12-31 23:59:59.999999+00'",
    "'9999-12-31 22:00:00-01'", "'2024-03-04 05:06:07.123456+00'",
]
PG_INSTANT_RECORDS = [
    {"id": 1, "ts": "0001-01-01T00:00:00.000000Z", "dt": "0001-01-01T00:00:00.000000", "d": "0001-01-01", "t": "00:00:00.000000"},
    {"id": 2, "ts": "0001-01-01T01:00:00.000000Z", "dt": "0001-01-01T03:00:00.000000", "d": "0001-01-01", "t": "03:00:00.000000"},
    {"id": 3, "ts": "9999-12-31T23:59:59.999999Z", "dt": "9999-12-31T23:59:59.999999", "d": "9999-12-31", "t": "23:59:59.999999"},
    {"id": 4, "ts": "9999-12-31T23:00:00.000000Z", "dt": "9999-12-31T22:00:00.000000", "d": "9999-12-31", "t": "22:00:00.000000"},
    {"id": 5, "ts": "2024-03-04T05:06:07.123456Z", "dt": "2024-03-04T05:06:07.123456", "d": "2024-03-04", "t": "05:06:07.123456"},
]


def _pg_instants(metadata: sa.MetaData) -> ExportShardManager:
    table = sa.Table("instants", metadata, _id(), sa.Column("ts", sa.DateTime(timezone=True)),
                     sa.Column("dt", sa.DateTime), sa.Column("d", sa.Date), sa.Column("t", sa.Time))
    # The wall clock, date and time of each literal as written (its offset dropped).
    created(table, [
        {"id": index, "ts": sa.literal_column(text), "dt": sa.literal_column(f"{text}::timestamp"),
         "d": sa.literal_column(f"{text}::timestamp::date"), "t": sa.literal_column(f"{text}::timestamp::time")}
        for index, text in enumerate(PG_INSTANTS, 1)
    ], setup="SET TIME ZONE 'UTC'")
    return export_of(table, [SchemaField("ts", "TIMESTAMP"), SchemaField("dt", "DATETIME"),
                             SchemaField("d", "DATE"), SchemaField("t", "TIME")])


@on_postgresql
@pytest.mark.parametrize("zone", ["Asia/Kathmandu", "America/St_Johns"])
def test_postgresql_instants_near_the_ends_of_time_arrive_exactly_in_any_time_zone(metadata, database_defaults, zone):
    manager = _pg_instants(metadata)
    database_defaults(TimeZone=zone)

    records = both_paths(manager, postgres_lines)

    assert records == PG_INSTANT_RECORDS
    assert pooled_settings("SELECT current_setting('TimeZone')") == {(zone,)}


@on_postgresql
def test_a_time_zone_set_on_the_sessions_connection_alone_changes_no_instant(metadata):
    manager = _pg_instants(metadata)
    records = []
    for database_lines in (True, False):
        db.session.execute(sa.text("SET TIME ZONE 'Asia/Kathmandu'"))  # undone when the read rolls back
        records.append(exported(manager, database_lines))

    assert records == [PG_INSTANT_RECORDS, PG_INSTANT_RECORDS]


@on_postgresql
@pytest.mark.parametrize("style", ["SQL, DMY", "German", "Postgres, MDY"])
def test_postgresql_timestamps_arrive_exactly_in_any_date_style(metadata, database_defaults, style):
    manager = _pg_instants(metadata)
    database_defaults(DateStyle=style)

    records = both_paths(manager, postgres_lines)

    assert records == PG_INSTANT_RECORDS
    assert pooled_settings("SELECT current_setting('DateStyle')") == {(style if "," in style else f"{style}, DMY",)}


@on_postgresql
def test_postgresql_settings_an_app_sets_on_its_connections_are_theirs_again_after_an_export(metadata, every_connection):
    floats, instants = _pg_floats(metadata), _pg_instants(metadata)
    every_connection("SET TIME ZONE 'America/St_Johns'", "SET DateStyle = 'German'", "SET extra_float_digits = 0",
                     "SET IntervalStyle = 'sql_standard'")

    records = both_paths(floats, postgres_lines), both_paths(instants, postgres_lines)

    assert orjson.dumps(records[0]) == orjson.dumps(PG_FLOATS)
    assert records[1] == PG_INSTANT_RECORDS
    assert pooled_settings(
        "SELECT current_setting('TimeZone'), current_setting('DateStyle'), current_setting('extra_float_digits'), "
        "current_setting('IntervalStyle')"
    ) == {("America/St_Johns", "German, DMY", "0", "sql_standard")}


# --- the settings themselves -----------------------------------------------------------------

@on_postgresql
def test_postgresql_settings_on_an_autocommit_connection_hold_for_the_read_and_are_put_back(app):
    engine = db.engine.execution_options(isolation_level="AUTOCOMMIT")
    show = ("SELECT current_setting('TimeZone'), current_setting('DateStyle'), current_setting('IntervalStyle'), "
            "current_setting('extra_float_digits')")
    with engine.connect() as connection:
        connection.exec_driver_sql("SET TIME ZONE 'Asia/Kathmandu'; SET DateStyle = 'German'; "
                                   "SET IntervalStyle = 'iso_8601'; SET extra_float_digits = -15")
        with reading_settings(connection):
            during = tuple(connection.exec_driver_sql(show).one())
            value = connection.exec_driver_sql("SELECT '9999-12-31 23:59:59.999999+00'::timestamptz, 0.1 + 0.2::float8").one()
        after = tuple(connection.exec_driver_sql(show).one())

    assert during == ("UTC", "ISO, DMY", "postgres", "1")
    assert tuple(value) == (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), 0.30000000000000004)
    assert after == ("Asia/Kathmandu", "German, DMY", "iso_8601", "-15")


@on_mariadb
def test_a_mariadb_connection_its_settings_cannot_be_put_back_on_is_discarded(app):
    with db.engine.connect() as connection, db.engine.connect() as other:
        connection.exec_driver_sql("SET time_zone = '+05:45'")
        with reading_settings(connection):
            other.exec_driver_sql(f"KILL CONNECTION {connection.exec_driver_sql('SELECT CONNECTION_ID()').scalar()}")

        assert connection.invalidated
