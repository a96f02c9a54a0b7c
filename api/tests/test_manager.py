"""How `ExportShardManager.lines` hands a shard's rows to `records` and the encoder: in batches
of FETCH_ROWS where `records` is overridden (one side query per batch), in smaller ones
otherwise, and every row exactly once, in key order; each value read exactly (`raw_values`), and
a value the driver cannot read named by its row (`driver_errors`)."""
from __future__ import annotations

import enum
from datetime import timedelta
from decimal import Decimal
from typing import Any, Iterable, Sequence

import orjson
import pytest
import sqlalchemy as sa
from google.cloud.bigquery import SchemaField
from sqlalchemy import Row
from sqlalchemy.exc import DBAPIError

from api.db import db
from bq_etl.errors import RecordError, SchemaError
from bq_etl.manager import ENCODE_ROWS, FETCH_ROWS, ExportShardManager
from bq_etl.run import Shard
from api.models import CareTrack
from api.tests import fast_paths
from api.tests.fast_paths import created, metadata  # noqa: F401
from api.tests.fault_exports import TracksExport

ALL_DATABASES = pytest.mark.parametrize("database_url", ["sqlite", "postgresql", "mariadb"], indirect=True)

ROWS = FETCH_ROWS + ENCODE_ROWS + 1


class PlainTracksExport(TracksExport):
    """Care tracks, column for column."""

    table_name = "tracks"


class ReshapedTracksExport(PlainTracksExport):
    """Care tracks reshaped row by row."""

    def to_record(self, row: Row) -> dict[str, Any]:
        return {"id": row.id, "name": row.name.upper()}


class BatchedTracksExport(PlainTracksExport):
    """Care tracks reshaped a batch at a time, as an export that looks related rows up would."""

    def __init__(self):
        self.batches: list[int] = []

    def records(self, rows: Sequence[Row]) -> Iterable[dict[str, Any]]:
        self.batches.append(len(rows))
        return [{"id": row.id, "name": row.name.upper()} for row in rows]


@pytest.fixture
def tracks(app):
    db.session.execute(CareTrack.__table__.insert(), [{"id": i, "name": f"t{i}"} for i in range(1, ROWS + 1)])
    db.session.commit()


def records_of(manager: ExportShardManager) -> list[dict[str, Any]]:
    return [orjson.loads(line) for item in manager.lines(Shard(0)) for line in item.splitlines()]


@ALL_DATABASES
def test_an_overridden_records_gets_batches_of_fetch_rows_for_its_side_queries(tracks):
    manager = BatchedTracksExport()

    records = records_of(manager)

    assert manager.batches == [FETCH_ROWS, ENCODE_ROWS + 1]
    assert records == [{"id": i, "name": f"T{i}"} for i in range(1, ROWS + 1)]


@ALL_DATABASES
@pytest.mark.parametrize("export, name", [(PlainTracksExport, "t{}"), (ReshapedTracksExport, "T{}")])
def test_every_row_is_written_once_in_key_order_whatever_the_batching(tracks, export, name):
    assert records_of(export()) == [{"id": i, "name": name.format(i)} for i in range(1, ROWS + 1)]


def test_a_column_the_schema_file_lacks_is_refused_naming_the_file(app):
    db.session.add_all([CareTrack(id=1, name="t1"), CareTrack(id=2, name="t2")])
    db.session.commit()

    class WiderTracksExport(PlainTracksExport):
        def query(self) -> sa.Select:
            return sa.select(CareTrack.id, CareTrack.name, CareTrack.description)

    with pytest.raises(RecordError) as caught:
        records_of(WiderTracksExport())

    assert str(caught.value).startswith(
        f"table 'tracks', row key 1, column 'description': the column is not in the table's schema file "
        f"{WiderTracksExport.schema_path()} (fields: id, name); add the field to the schema file, or leave the "
        "column out of the query")


def test_a_run_refuses_a_column_with_no_name_before_reading_a_row(app):
    class ComputedTracksExport(PlainTracksExport):
        def query(self) -> sa.Select:
            return sa.select(CareTrack.id, CareTrack.name, sa.func.length(CareTrack.name) * 2, sa.literal(1))

    with pytest.raises(SchemaError) as caught:
        ComputedTracksExport().plan()

    assert str(caught.value) == (
        "table 'tracks': query() selects length(care_tracks.name) * 2; 1 with no name; give each "
        "one the name of the schema field it fills with .label('field_name')")


# --- reading each value exactly, or naming the row it cannot be read from ------------------------

def export_of(table: sa.Table, fields: list[SchemaField], reshaped: bool = False) -> ExportShardManager:
    """An export of every column of `table` (keyed by `id`) on the Python path; with `reshaped`,
    through `to_record`."""
    return fast_paths.export_of(table, fields, database_lines=False, reshaped=reshaped)


def filled(table: sa.Table, sql_rows: str) -> None:
    created(table, sql_rows=[sql_rows])


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("reshaped", [False, True], ids=["columns", "to_record"])
def test_a_value_the_driver_cannot_read_deep_in_a_shard_is_named_by_its_row(metadata, reshaped):
    table = sa.Table("instants", metadata, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("v", sa.DateTime(timezone=True)))
    filled(table, "SELECT n, CASE WHEN n = 2345 THEN timestamptz 'infinity' ELSE now() END "
                  "FROM generate_series(1, 2500) AS n")

    with pytest.raises(RecordError) as caught:
        records_of(export_of(table, [SchemaField("v", "TIMESTAMP")], reshaped))

    assert (caught.value.key, caught.value.column, caught.value.value) == (2345, "v", "infinity")
    assert "DataError: timestamp too large (after year 10K)" in str(caught.value)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_failure_no_single_value_explains_stays_the_databases_error(metadata):
    table = sa.Table("ratios", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Integer))
    filled(table, "VALUES (1, 1), (2, 0)")
    manager = export_of(table, [SchemaField("v", "INTEGER")])
    manager.query = lambda: sa.select(table.c.id, (1 / table.c.v).label("v"))

    with pytest.raises(DBAPIError, match="division by zero"):
        records_of(manager)


@pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
def test_to_record_still_gets_a_time_and_a_bool_from_mariadb(metadata):
    table = sa.Table("visits", metadata, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("v", sa.Time), sa.Column("flag", sa.Boolean))
    filled(table, "VALUES (1, '23:59:59', 1)")
    manager = export_of(table, [SchemaField("v", "TIME"), SchemaField("flag", "BOOLEAN")], reshaped=True)

    assert records_of(manager) == [{"id": 1, "v": "23:59:59.000000", "flag": True, "seen": "time"}]


@pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
def test_a_mariadb_time_beyond_a_day_is_refused_not_wrapped(metadata):
    table = sa.Table("visits", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Time))
    filled(table, "VALUES (1, '22:59:59'), (2, '838:59:59')")

    with pytest.raises(RecordError) as caught:
        records_of(export_of(table, [SchemaField("v", "TIME")]))

    assert (caught.value.key, caught.value.column, caught.value.value) == (2, "v", timedelta(hours=838, seconds=3599))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_to_record_still_gets_a_decimal_from_a_sqlite_numeric_exact_beyond_2_pow_53(metadata):
    table = sa.Table("amounts", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Numeric))
    filled(table, "VALUES (1, 9007199254740993), (2, 0.1)")
    manager = export_of(table, [SchemaField("v", "NUMERIC")], reshaped=True)

    assert records_of(manager) == [{"id": 1, "v": "9007199254740993", "seen": "Decimal"},
                                   {"id": 2, "v": "0.1", "seen": "Decimal"}]


@ALL_DATABASES
def test_a_float_read_as_decimal_keeps_its_digits(metadata):
    table = sa.Table("ratios", metadata, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("v", sa.Double(asdecimal=True)))
    filled(table, "VALUES (1, 0.1), (2, 0.000000000001)")

    with pytest.raises(RecordError) as caught:  # not 0.0000000000: the ten places of SQLAlchemy's own
        records_of(export_of(table, [SchemaField("v", "NUMERIC")], reshaped=True))

    assert (caught.value.key, caught.value.value) == (2, Decimal("1E-12"))
    assert "more than 9 fractional digits" in caught.value.reason


@ALL_DATABASES
def test_a_numeric_model_of_a_double_column_keeps_its_digits(metadata):
    stored = sa.Table("ratios", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Double))
    filled(stored, "VALUES (1, 0.000000000001)")
    # The model says Numeric: refused (MariaDB's float as it is, the others' as Decimal("1E-12")),
    # not written 0.000000000, the ten places SQLAlchemy rounds a PostgreSQL float to.
    declared = sa.Table("ratios", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Numeric))

    with pytest.raises(RecordError) as caught:
        records_of(export_of(declared, [SchemaField("v", "NUMERIC")]))

    assert (caught.value.key, caught.value.column) == (1, "v")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_json_null_is_written_as_null_unless_to_record_makes_the_record(metadata):
    table = sa.Table("docs", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.JSON))
    filled(table, "VALUES (1, 'null'), (2, NULL), (3, '{\"a\": null}')")
    field = SchemaField("v", "JSON")

    assert records_of(export_of(table, [field])) == [{"id": 1, "v": None}, {"id": 2}, {"id": 3, "v": {"a": None}}]
    assert records_of(export_of(table, [field], reshaped=True)) == [
        {"id": 1, "seen": "NoneType"}, {"id": 2, "seen": "NoneType"}, {"id": 3, "v": {"a": None}, "seen": "dict"}]


class Genre(enum.Enum):
    poetry = "Poetry"
    science_fiction = "Sci-Fi"


@ALL_DATABASES
@pytest.mark.parametrize("stored", ["names", "values"])
def test_an_enum_class_column_is_written_as_the_text_the_database_stores(metadata, stored):
    values = (lambda members: [member.value for member in members]) if stored == "values" else None
    table = sa.Table("books", metadata, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("v", sa.Enum(Genre, name="genre", values_callable=values)))
    with db.engine.begin() as connection:
        table.create(connection)
        connection.execute(table.insert(), [{"id": 1, "v": Genre.poetry}, {"id": 2, "v": Genre.science_fiction},
                                            {"id": 3, "v": None}])

    assert records_of(export_of(table, [SchemaField("v", "STRING")])) == (
        [{"id": 1, "v": "poetry"}, {"id": 2, "v": "science_fiction"}, {"id": 3}] if stored == "names" else
        [{"id": 1, "v": "Poetry"}, {"id": 2, "v": "Sci-Fi"}, {"id": 3}])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_to_record_gets_the_enum_member_and_is_told_to_return_text(metadata):
    table = sa.Table("books", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Enum(Genre)))
    with db.engine.begin() as connection:
        table.create(connection)
        connection.execute(table.insert(), [{"id": 1, "v": Genre.poetry}])

    with pytest.raises(RecordError) as caught:
        records_of(export_of(table, [SchemaField("v", "STRING")], reshaped=True))

    assert (caught.value.key, caught.value.column, caught.value.value) == (1, "v", Genre.poetry)
    assert "make the record hold the text to write (member.name" in caught.value.reason


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_apps_own_type_keeps_its_processing(metadata):
    class Lowered(sa.TypeDecorator):
        impl = sa.Text
        cache_ok = True

        def process_result_value(self, value, dialect):
            return value.lower()

    table = sa.Table("names", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", Lowered))
    filled(table, "VALUES (1, 'ABC')")

    assert records_of(export_of(table, [SchemaField("v", "STRING")])) == [{"id": 1, "v": "abc"}]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("reshaped", [False, True], ids=["columns", "to_record"])
def test_sqlite_text_that_is_not_utf8_is_named_by_its_row_with_its_bytes(metadata, reshaped):
    table = sa.Table("names", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Text))
    filled(table, "VALUES (1, 'fine'), (2, CAST(x'eda080' AS TEXT)), (3, 'fine')")  # a surrogate, CESU-8

    with pytest.raises(RecordError) as caught:
        records_of(export_of(table, [SchemaField("v", "STRING")], reshaped))

    assert (caught.value.key, caught.value.column, caught.value.value) == (2, "v", b"\xed\xa0\x80")
    assert "Could not decode to UTF-8" in caught.value.reason
    assert "the value shown is the database's bytes of it" in caught.value.reason


@ALL_DATABASES
def test_a_json_number_no_float64_holds_is_refused_with_to_record_too(metadata):
    table = sa.Table("docs", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.JSON))
    filled(table, """VALUES (1, '{"pi": 3.14159}'), (2, '{"pi": 3.141592653589793238462643383279}')""")
    manager = export_of(table, [SchemaField("v", "JSON")], reshaped=True)
    seen = []
    manager.to_record = lambda row: seen.append(type(row.v["pi"])) or {"id": row.id, "v": row.v}

    with pytest.raises(RecordError) as caught:
        records_of(manager)

    assert (caught.value.key, caught.value.column, caught.value.value) == (2, "v", "3.141592653589793238462643383279")
    assert all(issubclass(kind, float) for kind in seen)  # to_record sees floats, as json.loads gives
