"""What both fast paths (`postgres_lines` on PostgreSQL, `mysql_lines` on MariaDB) share: the
shipped exports get the Python path's records, the exports a fast path cannot serve keep the
Python path, chunks count as their lines, and a violation stops the export with the session still
usable. Each fast path's own types, suspects and batches are tested in test_postgres_lines.py and
test_mysql_lines.py.
"""
from __future__ import annotations

import sys

import pytest
import sqlalchemy as sa
from google.cloud.bigquery import SchemaField

from api.db import db
from api.demo.seed import seed
from api.events_join_data.export_event_join_tables import (
    AppointmentsExport,
    MembersExport,
    MessagesExport,
    PractitionersExport,
    ProductEventsExport,
)
from api.tests.fast_paths import (WHOLE_TABLE, assert_same_records, built_records, created,  # noqa: F401
                                  export_of, metadata, python_records)
from bq_etl.errors import RecordError
from bq_etl.mysql_lines import mysql_lines
from bq_etl.postgres_lines import postgres_lines
from bq_etl.run import ExportRun, new_run_id

#: Each fast path on the database it serves.
on_its_database = pytest.mark.parametrize(
    "database_url, build", [("postgresql", postgres_lines), ("mariadb", mysql_lines)],
    indirect=["database_url"], ids=["postgres_lines", "mysql_lines"],
)


@on_its_database
@pytest.mark.parametrize("export", [AppointmentsExport, PractitionersExport, MessagesExport, ProductEventsExport])
def test_shipped_exports_get_the_python_paths_records_from_the_database(app, build, export):
    seed(rows=300)
    manager = export()

    records = built_records(build, manager)

    assert len(records) > 0
    assert_same_records(records, python_records(manager))


@on_its_database
def test_members_keep_the_python_path_for_their_nested_records(app, build):
    assert build(MembersExport(), WHOLE_TABLE) is None


@on_its_database
def test_an_export_that_reshapes_rows_keeps_the_python_path(app, build):
    class Reshaped(PractitionersExport):
        def to_record(self, row):
            return {**row._mapping, "first_name": row.first_name.upper()}

    assert build(Reshaped(), WHOLE_TABLE) is None


@on_its_database
def test_database_lines_can_be_turned_off(app, build):
    manager = PractitionersExport()
    manager.database_lines = False

    assert build(manager, WHOLE_TABLE) is None


@pytest.mark.parametrize(
    "database_url, build",
    [("sqlite", postgres_lines), ("mariadb", postgres_lines), ("sqlite", mysql_lines), ("postgresql", mysql_lines)],
    indirect=["database_url"],
    ids=["postgres_lines-sqlite", "postgres_lines-mariadb", "mysql_lines-sqlite", "mysql_lines-postgresql"],
)
def test_other_databases_keep_their_own_path(app, build):
    assert build(PractitionersExport(), WHOLE_TABLE) is None


@on_its_database
def test_a_chunk_of_many_lines_counts_as_that_many_rows(app, build, monkeypatch):
    seed(rows=300)
    items = []
    monkeypatch.setattr(MessagesExport, "deliver", lambda self, bucket, name, lines, level: items.extend(lines))

    result = MessagesExport().export_shard(ExportRun("messages", new_run_id()), WHOLE_TABLE, None)

    assert result.rows == 600
    assert len(items) == 1  # 600 lines in one chunk


@on_its_database
def test_a_violation_mid_stream_stops_the_export_and_leaves_the_session_usable(metadata, build):
    table = sa.Table("long_table", metadata, sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("v", sa.Text))
    rows = 3 * sys.modules[build.__module__].CHUNK_ROWS
    created(table, [{"id": key, "v": None if key == 5 else "x"} for key in range(1, rows + 1)])
    manager = export_of(table, [SchemaField("v", "STRING", "REQUIRED")])

    with pytest.raises(RecordError) as raised:
        list(manager.lines(WHOLE_TABLE))

    assert raised.value.key == 5
    assert db.session.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == rows
