"""The bench data set in MariaDB: the PostgreSQL `visits` table copied row for row.

Each size lives in its own MariaDB database (`bq_etl_bench_rows_1000000`, ...), filled once from
the PostgreSQL table of that size (COPY out as tab-separated text, LOAD DATA in: both read the
same escapes) and reused while its row count and fill version match. MariaDB has no arrays:
`tags` is a JSON array there (and a JSON field in the schema, `visits_mariadb.json`).
"""
from __future__ import annotations

import os
import tempfile
import time

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from .table import FILL_VERSION, database_url, schema_name

SERVER_URL = os.environ.get("BENCH_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")

metadata = sa.MetaData()

visits = sa.Table(
    "visits", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("member_id", sa.BigInteger, nullable=False),
    sa.Column("practitioner_id", sa.BigInteger),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(64)),
    sa.Column("notes", sa.Text),
    sa.Column("scheduled_start", sa.DateTime, nullable=False),
    sa.Column("created_at", mysql.DATETIME(fsp=6), nullable=False),  # UTC, naive
    sa.Column("cancelled_at", mysql.DATETIME(fsp=6)),
    sa.Column("date_of_birth", sa.Date),
    sa.Column("price", sa.Numeric(10, 2), nullable=False),
    sa.Column("is_virtual", sa.Boolean, nullable=False),
    sa.Column("details", sa.JSON),
    sa.Column("tags", sa.JSON),
    mysql_charset="utf8mb4",
    comment=FILL_VERSION,
)

# The PostgreSQL table's rows as LOAD DATA reads them: instants as UTC wall clocks, the flag as
# 0/1, the array as JSON text.
_COPY_OUT = """COPY (SELECT id, member_id, practitioner_id, status, reason, notes, scheduled_start,
    created_at AT TIME ZONE 'UTC', cancelled_at AT TIME ZONE 'UTC', date_of_birth, price, is_virtual::int,
    details::text, to_json(tags)::text FROM visits ORDER BY id) TO STDOUT"""


def mariadb_url(rows: int) -> str:
    """The SQLAlchemy URL of the MariaDB database holding the `rows`-row table."""
    return f"{SERVER_URL}/bq_etl_bench_{schema_name(rows)}?charset=utf8mb4"


def ensure_mariadb_table(rows: int) -> float:
    """Copy the `rows`-row PostgreSQL table into MariaDB unless it is there with that many rows;
    return the seconds spent (0.0 when reused). The PostgreSQL table must exist."""
    database = f"bq_etl_bench_{schema_name(rows)}"
    server = sa.create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {database} CHARACTER SET utf8mb4")
    server.dispose()
    engine = sa.create_engine(mariadb_url(rows), connect_args={"local_infile": True})
    try:
        with engine.begin() as connection:
            if _is_built(connection, rows):
                return 0.0
        started = time.perf_counter()
        with engine.begin() as connection, tempfile.NamedTemporaryFile(suffix=".tsv") as data:
            metadata.drop_all(connection)
            metadata.create_all(connection)
            _copy_out(rows, data)
            connection.exec_driver_sql(
                f"LOAD DATA LOCAL INFILE '{data.name}' INTO TABLE visits CHARACTER SET utf8mb4"
            )
            connection.exec_driver_sql("ANALYZE TABLE visits")
        return time.perf_counter() - started
    finally:
        engine.dispose()


def _copy_out(rows: int, file) -> None:
    engine = sa.create_engine(database_url(rows))
    connection = engine.raw_connection()
    try:
        cursor = connection.driver_connection.cursor()
        with cursor.copy(_COPY_OUT) as copy:
            for chunk in copy:
                file.write(chunk)
        file.flush()
    finally:
        connection.close()
        engine.dispose()


def _is_built(connection: sa.Connection, rows: int) -> bool:
    comment = connection.execute(sa.text(
        "SELECT table_comment FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'visits'"
    )).scalar()
    if comment != FILL_VERSION:
        return False
    return connection.execute(sa.select(sa.func.count()).select_from(visits)).scalar_one() == rows
