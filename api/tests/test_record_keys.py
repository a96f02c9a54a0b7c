"""Records name each column by its key, as `schema generate` names its field: a column whose
attribute differs from its database name (`extra = mapped_column("metadata", JSON)`, or Core's
`Column("metadata", key="extra")`) is `extra` on every path: the Python path, both fast paths,
`to_record`'s rows and the errors of values the driver cannot read."""
from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from google.cloud.bigquery import SchemaField

from api.tests.fast_paths import (ID, built_records, created, export_of, metadata,  # noqa: F401
                                  python_records)
from bq_etl.errors import RecordError
from bq_etl.mysql_lines import mysql_lines
from bq_etl.postgres_lines import postgres_lines
from bq_etl.schema_generate import derive_fields

ALL_DATABASES = pytest.mark.parametrize("database_url", ["sqlite", "postgresql", "mariadb"], indirect=True)
FIELDS = [SchemaField("extra", "STRING"), SchemaField("pages", "INTEGER")]


def books(metadata: sa.MetaData) -> sa.Table:
    """`books`, whose columns `metadata` and `pages_total` have the keys `extra` and `pages`."""
    table = sa.Table("books", metadata, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("metadata", sa.Text, key="extra"), sa.Column("pages_total", sa.Integer, key="pages"))
    created(table, [{"id": 1, "extra": "signed", "pages": 412}, {"id": 2}])
    return table


@ALL_DATABASES
def test_the_python_path_names_a_column_by_its_key(metadata):
    manager = export_of(books(metadata), FIELDS)

    assert python_records(manager) == [{"id": 1, "extra": "signed", "pages": 412}, {"id": 2}]


@pytest.mark.parametrize("database_url, build", [("postgresql", postgres_lines), ("mariadb", mysql_lines)],
                         indirect=["database_url"], ids=["postgresql", "mariadb"])
def test_the_fast_paths_name_a_column_by_its_key(metadata, build):
    manager = export_of(books(metadata), FIELDS)

    assert built_records(build, manager) == [{"id": 1, "extra": "signed", "pages": 412}, {"id": 2}]


@ALL_DATABASES
def test_to_record_gets_rows_whose_columns_are_named_by_their_keys(metadata):
    class Reshaped(type(export_of(books(metadata), FIELDS))):
        def to_record(self, row: Any) -> dict[str, Any]:
            assert list(row._mapping) == ["id", "extra", "pages"]
            return {"id": row.id, "extra": row.extra and row.extra.upper(), "pages": row.pages}

    assert python_records(Reshaped()) == [{"id": 1, "extra": "SIGNED", "pages": 412}, {"id": 2}]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_generated_schema_fits_the_records(metadata):
    manager = export_of(books(metadata), [])
    manager.schema = [SchemaField.from_api_repr(field) for field in derive_fields(manager)]

    assert [field.name for field in manager.schema] == ["id", "extra", "pages"]
    assert python_records(manager) == [{"id": 1, "extra": "signed", "pages": 412}, {"id": 2}]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_value_the_driver_cannot_read_is_named_by_its_columns_key(metadata):
    table = sa.Table("instants", metadata, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("seen_at_utc", sa.DateTime(timezone=True), key="seen"))
    created(table, sql_rows=["VALUES (1, now()), (2, timestamptz 'infinity')"])
    manager = export_of(table, [SchemaField("seen", "TIMESTAMP")])

    with pytest.raises(RecordError) as caught:
        python_records(manager)

    assert (caught.value.key, caught.value.column, caught.value.value) == (2, "seen", "infinity")
    assert caught.value.expected == "TIMESTAMP"
