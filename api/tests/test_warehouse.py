"""Replacing a BigQuery table from files: the official client against the BigQuery emulator."""
from __future__ import annotations

import pytest
from google.cloud.bigquery import SchemaField

from bq_etl.errors import LoadError, RowCountMismatch
from bq_etl.extension import state

SCHEMA = [SchemaField("id", "INTEGER", "REQUIRED"), SchemaField("name", "STRING")]


def upload(name: str, lines: list[bytes]) -> str:
    bucket = state().bucket
    bucket.write(name, lines)
    return bucket.uri(name)


def rows(table: str) -> list[tuple]:
    warehouse = state().warehouse
    query = f"SELECT * FROM `{warehouse.table_id(table)}` ORDER BY id"
    return [tuple(row.values()) for row in warehouse.client.query(query).result()]


@pytest.fixture
def warehouse(app):
    warehouse = state().warehouse
    warehouse.ensure_dataset()
    return warehouse


def test_replace_loads_exactly_the_given_files(warehouse):
    first = upload("t/run1/00000.json", [b'{"id":1,"name":"a"}\n', b'{"id":2}\n'])
    second = upload("t/run1/00001.json", [b'{"id":3,"name":"c"}\n'])
    upload("t/run1/stray.json", [b'{"id":99}\n'])  # in the prefix but not named: must not load

    assert warehouse.replace("t", [first, second], SCHEMA, expected_rows=3, staging_suffix="run1") == 3
    assert rows("t") == [(1, "a"), (2, None), (3, "c")]


def test_a_count_mismatch_fails_and_leaves_the_live_table_as_it_was(warehouse):
    good = upload("t/run1/00000.json", [b'{"id":1,"name":"a"}\n'])
    warehouse.replace("t", [good], SCHEMA, expected_rows=1, staging_suffix="run1")
    newer = upload("t/run2/00000.json", [b'{"id":5,"name":"e"}\n', b'{"id":6,"name":"f"}\n'])

    with pytest.raises(RowCountMismatch, match="table 't': the shards wrote 3 rows but 2 loaded from 1 files"):
        warehouse.replace("t", [newer], SCHEMA, expected_rows=3, staging_suffix="run2")

    assert rows("t") == [(1, "a")]
    assert warehouse.live_schema("t__staging_run2") is None  # the staging table is dropped


def test_a_file_bigquery_rejects_leaves_the_live_table_as_it_was(warehouse):
    good = upload("t/run1/00000.json", [b'{"id":1,"name":"a"}\n'])
    warehouse.replace("t", [good], SCHEMA, expected_rows=1, staging_suffix="run1")
    bad = upload("t/run2/00000.json", [b'{"id":"not a number"}\n'])

    with pytest.raises(LoadError, match="loading table 't__staging_run2' from 1 files failed"):
        warehouse.replace("t", [bad], SCHEMA, expected_rows=1, staging_suffix="run2")

    assert rows("t") == [(1, "a")]


def test_a_column_added_to_the_schema_file_reaches_the_live_table(warehouse):
    first = upload("t/run1/00000.json", [b'{"id":1,"name":"a"}\n'])
    warehouse.replace("t", [first], SCHEMA, expected_rows=1, staging_suffix="run1")
    wider = SCHEMA + [SchemaField("score", "FLOAT")]
    second = upload("t/run2/00000.json", [b'{"id":1,"name":"a","score":0.5}\n'])

    warehouse.replace("t", [second], wider, expected_rows=1, staging_suffix="run2")

    assert [f.name for f in warehouse.live_schema("t")] == ["id", "name", "score"]
    assert rows("t") == [(1, "a", 0.5)]


def test_a_second_replace_with_the_same_schema_replaces_every_row(warehouse):
    first = upload("t/run1/00000.json", [b'{"id":1,"name":"a"}\n', b'{"id":2,"name":"b"}\n'])
    warehouse.replace("t", [first], SCHEMA, expected_rows=2, staging_suffix="run1")
    second = upload("t/run2/00000.json", [b'{"id":2,"name":"b2"}\n', b'{"id":3,"name":"c"}\n'])

    warehouse.replace("t", [second], SCHEMA, expected_rows=2, staging_suffix="run2")

    assert rows("t") == [(2, "b2"), (3, "c")]


def test_a_column_dropped_and_one_retyped_reach_the_live_table(warehouse):
    wide = SCHEMA + [SchemaField("score", "FLOAT")]
    first = upload("t/run1/00000.json", [b'{"id":1,"name":"a","score":0.5}\n'])
    warehouse.replace("t", [first], wide, expected_rows=1, staging_suffix="run1")
    narrow = [SchemaField("id", "INTEGER", "REQUIRED"), SchemaField("name", "INTEGER")]
    second = upload("t/run2/00000.json", [b'{"id":1,"name":7}\n'])

    warehouse.replace("t", [second], narrow, expected_rows=1, staging_suffix="run2")

    assert [(f.name, f.field_type) for f in warehouse.live_schema("t")] == [("id", "INTEGER"), ("name", "INTEGER")]
    assert rows("t") == [(1, 7)]


def test_a_first_replace_reads_the_files_once_and_copies_the_counted_rows(warehouse):
    first = upload("t/run1/00000.json", [b'{"id":1,"name":"a"}\n'])
    before = {job.job_id for job in warehouse.client.list_jobs()}

    warehouse.replace("t", [first], SCHEMA, expected_rows=1, staging_suffix="run1")

    jobs = [job for job in warehouse.client.list_jobs() if job.job_id not in before]
    assert sorted(job.job_type for job in jobs if job.job_type != "query") == ["copy", "load"]
    assert rows("t") == [(1, "a")]
    assert [(f.name, f.mode) for f in warehouse.live_schema("t")] == [("id", "REQUIRED"), ("name", "NULLABLE")]
