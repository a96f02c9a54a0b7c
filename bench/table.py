"""The bench data set: a `visits` table shaped like a clinic app's, generated in SQL.

Each size lives in its own PostgreSQL schema (`rows_1000000`, `rows_5000000`, ...) of the
`bq_etl_bench` database, and a size's URL sets `search_path` to it: the one `visits` Table and
the one export definition serve every size, and each size is built once and then reused.
"""
from __future__ import annotations

import hashlib
import os
import time

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

SERVER_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
DATABASE = "bq_etl_bench"

metadata = sa.MetaData()

visits = sa.Table(
    "visits", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("member_id", sa.BigInteger, nullable=False),
    sa.Column("practitioner_id", sa.BigInteger),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("notes", sa.Text),
    sa.Column("scheduled_start", sa.DateTime(timezone=False), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("cancelled_at", sa.DateTime(timezone=True)),
    sa.Column("date_of_birth", sa.Date),
    sa.Column("price", sa.Numeric(10, 2), nullable=False),
    sa.Column("is_virtual", sa.Boolean, nullable=False),
    sa.Column("details", JSONB),
    sa.Column("tags", ARRAY(sa.Text)),
)
"""One row per clinic visit: keys, short and long text with NULLs, instants, a wall-clock time,
a date, money, a flag, a JSON document and an array."""

# Everything derives from the row number (md5 of it where it must look random; never random()),
# so a size is the same data every time.
# The notes are slices of 256 paragraphs of word salad (~256 kB in all, longer than gzip's 32 kB
# window), picked by a hash of the row number: neighbouring rows do not repeat each other, so
# gzip sees prose-like text. (Short paragraphs: substr on UTF-8 text walks from the start.)
# The NULL rates differ per column so rows vary in shape.
_FILL = """
WITH words AS (
    SELECT string_to_array(
        'patient reports mild headache since tuesday no fever advised hydration and rest '
        'follow up in two weeks blood pressure stable continue current dose discussed sleep '
        'hygiene anxiety improving with therapy referred to nutritionist for diet review '
        'labs ordered lipid panel a1c vitamin d naïve to insulin Zoë São Paulo café '
        'postpartum check normal healing breastfeeding going well mood screening negative '
        'medication refill approved pharmacy notified member asked about coverage', ' ') AS w
), paragraphs AS (
    SELECT n, string_agg(w[1 + ('x' || left(md5((n * 1000 + k)::text), 7))::bit(28)::int % array_length(w, 1)],
                         ' ' ORDER BY k) AS text
    FROM words, generate_series(0, 255) AS n, generate_series(1, 150) AS k
    GROUP BY n
), salad AS (
    SELECT array_agg(text ORDER BY n) AS texts FROM paragraphs
), hashed AS (
    SELECT i, ('x' || left(md5(i::text), 7))::bit(28)::int AS h FROM generate_series(1, CAST(:rows AS bigint)) AS i
)
INSERT INTO visits
SELECT
    i,
    1 + i * 7919 % 200000,
    CASE WHEN i % 10 = 0 THEN NULL ELSE 1 + i * 104729 % 5000 END,
    (ARRAY['scheduled', 'completed', 'completed', 'completed', 'cancelled', 'no_show'])[1 + i::int % 6],
    CASE WHEN i % 5 = 0 THEN NULL
         ELSE (ARRAY['follow-up', 'new patient', 'prescription refill', 'lab results',
                     'mental health check-in', 'nutrition', 'postpartum', 'urgent care'])[1 + (i / 7 % 8)::int] END,
    CASE WHEN i % 3 = 0 THEN NULL ELSE substr(salad.texts[1 + h % 256], 1 + h / 256 % 500, (40 + i * 17 % 360)::int) END,
    timestamp '2024-01-01 08:00' + (i % 200000) * interval '15 minutes',
    timestamptz '2022-01-01 00:00+00' + i * interval '61.234567 seconds',
    CASE WHEN i % 6 = 4 THEN timestamptz '2022-01-03 00:00+00' + i * interval '61.234567 seconds' END,
    CASE WHEN i % 20 = 0 THEN NULL ELSE date '1940-01-01' + (i * 37 % 25000)::int END,
    (i * 7907 % 4000000)::numeric(10, 2) / 100,
    i % 4 = 0,
    CASE WHEN i % 4 = 1 THEN NULL ELSE jsonb_build_object(
        'source', (ARRAY['web', 'ios', 'android', 'phone'])[1 + i::int % 4],
        'duration_min', 15 + i % 46,
        'vitals', jsonb_build_object('hr', 55 + i % 50, 'bp', (100 + i % 40) || '/' || (60 + i % 30),
                                     'temp_c', round(36.1 + (i % 20) / 10.0, 1)),
        'follow_up', i % 2 = 0) END,
    CASE WHEN i % 7 = 0 THEN NULL
         ELSE (ARRAY['diabetes', 'hypertension', 'pregnancy', 'anxiety', 'asthma', 'postpartum'])
              [1 + i::int % 6 : i::int % 6 + i::int % 4] END
FROM salad, hashed
"""


#: Stored as the table's comment: a table filled by another version of `_FILL` is rebuilt.
FILL_VERSION = hashlib.sha1(_FILL.encode()).hexdigest()[:12]


def schema_name(rows: int) -> str:
    """The PostgreSQL schema holding the table of `rows` rows."""
    return f"rows_{rows}"


def database_url(rows: int) -> str:
    """The SQLAlchemy URL of the bench database with `visits` resolving to the `rows`-row table."""
    return f"{SERVER_URL}/{DATABASE}?options=-csearch_path%3D{schema_name(rows)}"


def ensure_table(rows: int) -> float:
    """Create the bench database and the `rows`-row table unless they exist with that many rows;
    return the seconds spent building (0.0 when reused)."""
    _ensure_database()
    engine = sa.create_engine(database_url(rows), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            if _is_built(connection, rows):
                return 0.0
            started = time.perf_counter()
            schema = schema_name(rows)
            connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
            # Autocommit: a fill cut short leaves a table whose count is wrong, so it is rebuilt.
            metadata.create_all(connection)
            connection.execute(sa.text(_FILL), {"rows": rows})
            # Set hint bits and statistics now, so the first case measured does not pay for them.
            connection.exec_driver_sql("VACUUM ANALYZE visits")
            connection.exec_driver_sql(f"COMMENT ON TABLE visits IS '{FILL_VERSION}'")
            return time.perf_counter() - started
    finally:
        engine.dispose()


def _ensure_database() -> None:
    engine = sa.create_engine(f"{SERVER_URL}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            exists = connection.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": DATABASE}
            ).first()
            if not exists:
                connection.exec_driver_sql(f"CREATE DATABASE {DATABASE}")
    finally:
        engine.dispose()


def _is_built(connection: sa.Connection, rows: int) -> bool:
    comment = connection.execute(
        sa.text("SELECT obj_description(to_regclass('visits'), 'pg_class')")
    ).scalar_one()
    if comment != FILL_VERSION:
        return False
    return connection.execute(sa.select(sa.func.count()).select_from(visits)).scalar_one() == rows
