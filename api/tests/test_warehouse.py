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


class Refused(Exception):
    pass


@pytest.mark.parametrize("schema_changes", [False, True], ids=["copy", "load"])
def test_before_write_runs_right_before_the_write_and_can_abort_it(warehouse, schema_changes):
    first = upload("t/run1/00000.json", [b'{"id":1,"name":"a"}\n'])
    warehouse.replace("t", [first], SCHEMA, expected_rows=1, staging_suffix="run1")
    second = upload("t/run2/00000.json", [b'{"id":2,"name":"b"}\n'])
    schema = [*SCHEMA, SchemaField("extra", "STRING")] if schema_changes else SCHEMA
    seen = []

    def refuse():
        # By now the staging table is loaded and counted; the live table is untouched.
        seen.append((warehouse.row_count("t__staging_run2"), rows("t")))
        raise Refused

    with pytest.raises(Refused):
        warehouse.replace("t", [second], schema, expected_rows=1, staging_suffix="run2", before_write=refuse)

    assert seen == [(1, [(1, "a")])]
    assert rows("t") == [(1, "a")]
    assert warehouse.live_schema("t__staging_run2") is None


def test_the_loaded_run_label_only_moves_forward_and_keeps_other_labels(warehouse):
    older, newer = "20261130T010000000000Z-aaaaaa", "20261130T020000000000Z-bbbbbb"
    assert warehouse.loaded_run("t") is None and warehouse.live_rows("t") is None
    warehouse.replace("t", [upload("t/run1/00000.json", [b'{"id":1}\n', b'{"id":2}\n'])], SCHEMA,
                      expected_rows=2, staging_suffix="run1")
    table = warehouse.client.get_table(warehouse.table_id("t"))
    table.labels = {"owner": "clinic"}
    warehouse.client.update_table(table, ["labels"])

    assert warehouse.mark_loaded("t", newer) == newer
    assert warehouse.mark_loaded("t", older) == newer  # an older run never moves it back

    assert warehouse.loaded_run("t") == newer
    assert warehouse.client.get_table(warehouse.table_id("t")).labels == {
        "owner": "clinic", "bq_etl_run": "20261130t020000000000z-bbbbbb"}
    assert warehouse.live_rows("t") == 2
