"""Replacing a BigQuery table from files: the official client against the BigQuery emulator."""
from __future__ import annotations

import json
import time
import uuid

import pytest
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField

from bq_etl.errors import LoadError, RowCountMismatch, SchemaError
from bq_etl.extension import state
from bq_etl.schema_drift import BreakingSchemaChange
from bq_etl.table_options import Partitioning, TableOptions
from bq_etl.warehouse import Warehouse

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


class Recorder:
    """Every HTTP request the BigQuery client sends, as sent (a requests response hook on the
    client's own session: the emulator answers as usual). The emulator cannot show policy tags,
    row access policies, staging expiration or WRITE_TRUNCATE_DATA, so tests read what the
    warehouse asked BigQuery for here."""

    def __init__(self, client: bigquery.Client):
        self.requests: list[tuple[str, str, dict]] = []
        client._http.hooks["response"].append(self._seen)

    def _seen(self, response, *args, **kwargs):
        request = response.request
        body = json.loads(request.body) if request.body and request.method in ("POST", "PATCH", "PUT") else {}
        self.requests.append((request.method, request.url.split("?")[0], body))

    def mark(self) -> None:
        """Note a call of `before_write` among the requests."""
        self.requests.append(("BEFORE_WRITE", "", {}))

    def writes_to(self, table: str) -> list[tuple[str, str, dict]]:
        """The requests that write `table`: its creation, patch, deletion, copy jobs into it."""
        found = []
        for method, url, body in self.requests:
            copy = body.get("configuration", {}).get("copy", {})
            if (copy.get("destinationTable", {}).get("tableId") == table
                    or (method == "POST" and url.endswith("/tables") and body["tableReference"]["tableId"] == table)
                    or (method in ("PATCH", "PUT", "DELETE") and url.endswith(f"/tables/{table}"))):
                found.append((method, url, body))
        return found


def live(warehouse, table: str = "t") -> bigquery.Table:
    return warehouse.client.get_table(warehouse.table_id(table))


def test_metadata_others_set_on_the_live_table_survives_every_run(warehouse):
    first = upload("t/run1/00000.json", [b'{"id":1,"name":"a"}\n'])
    warehouse.replace("t", [first], SCHEMA, expected_rows=1, staging_suffix="run1")
    table = live(warehouse)
    table.description = "set by the warehouse team"
    table.labels = {**table.labels, "bq_etl_run": "run1", "team": "analytics"}
    table.schema = [SchemaField("id", "INTEGER", "REQUIRED", description="their words"), SCHEMA[1]]
    warehouse.client.update_table(table, ["description", "labels", "schema"])
    second = upload("t/run2/00000.json", [b'{"id":2,"name":"b"}\n'])
    wider = SCHEMA + [SchemaField("score", "FLOAT", description="new column")]
    third = upload("t/run3/00000.json", [b'{"id":3,"name":"c","score":1.5}\n'])

    warehouse.replace("t", [second], SCHEMA, expected_rows=1, staging_suffix="run2")
    warehouse.replace("t", [third], wider, expected_rows=1, staging_suffix="run3",
                      options=TableOptions(labels={"owner": "data-eng"}))

    table = live(warehouse)
    assert rows("t") == [(3, "c", 1.5)]
    assert table.description == "set by the warehouse team"
    assert table.labels == {"bq_etl_run": "run1", "team": "analytics", "owner": "data-eng",
                            "bq_etl_schema_version": "1"}
    assert [(f.name, f.description) for f in table.schema] == [
        ("id", "their words"), ("name", None), ("score", "new column")]


def test_a_breaking_change_is_refused_unless_the_schema_version_is_raised(warehouse):
    wide = SCHEMA + [SchemaField("score", "FLOAT")]
    first = upload("t/run1/00000.json", [b'{"id":1,"name":"a","score":0.5}\n'])
    warehouse.replace("t", [first], wide, expected_rows=1, staging_suffix="run1")
    narrow = [SchemaField("id", "INTEGER", "REQUIRED"), SchemaField("name", "INTEGER")]
    second = upload("t/run2/00000.json", [b'{"id":1,"name":7}\n'])
    before = {job.job_id for job in warehouse.client.list_jobs()}

    with pytest.raises(BreakingSchemaChange) as refused:
        warehouse.replace("t", [second], narrow, expected_rows=1, staging_suffix="run2")

    assert isinstance(refused.value, SchemaError)
    assert "retyped column name: 'STRING' -> 'INTEGER'" in str(refused.value)
    assert "removed column score" in str(refused.value)
    assert '"schema_version": 2' in str(refused.value)
    assert rows("t") == [(1, "a", 0.5)]
    assert not [job for job in warehouse.client.list_jobs() if job.job_id not in before and job.job_type != "query"]

    warehouse.replace("t", [second], narrow, expected_rows=1, staging_suffix="run3",
                      options=TableOptions(schema_version=2))

    assert [(f.name, f.field_type) for f in warehouse.live_schema("t")] == [("id", "INTEGER"), ("name", "INTEGER")]
    assert rows("t") == [(1, 7)]
    assert live(warehouse).labels["bq_etl_schema_version"] == "2"


def test_a_relaxed_mode_is_additive_and_a_required_one_breaking(warehouse):
    first = upload("t/run1/00000.json", [b'{"id":1,"name":"a"}\n'])
    warehouse.replace("t", [first], SCHEMA, expected_rows=1, staging_suffix="run1")
    relaxed = [SchemaField("id", "INTEGER"), SCHEMA[1]]

    warehouse.replace("t", [first], relaxed, expected_rows=1, staging_suffix="run2")

    assert [f.mode for f in warehouse.live_schema("t")] == ["NULLABLE", "NULLABLE"]
    with pytest.raises(BreakingSchemaChange, match="mode of column id: 'NULLABLE' -> 'REQUIRED'"):
        warehouse.replace("t", [first], SCHEMA, expected_rows=1, staging_suffix="run3")


def test_the_first_run_creates_the_table_with_the_declared_options(warehouse):
    schema = [SchemaField("id", "INTEGER", "REQUIRED", description="visit id"),
              SchemaField("seen_at", "TIMESTAMP", "REQUIRED")]
    options = TableOptions(description="Visits.", labels={"owner": "data-eng"},
                           partitioning=Partitioning("DAY", "seen_at"), clustering=("id",))
    first = upload("t/run1/00000.json", [b'{"id":1,"seen_at":"2024-01-08T09:30:00Z"}\n'])

    warehouse.replace("t", [first], schema, expected_rows=1, staging_suffix="run1", options=options)

    table = live(warehouse)
    assert (table.description, table.labels) == ("Visits.", {"owner": "data-eng", "bq_etl_schema_version": "1"})
    assert (table.time_partitioning.type_, table.time_partitioning.field) == ("DAY", "seen_at")
    assert table.clustering_fields == ["id"]
    assert table.schema[0].description == "visit id"


def test_what_the_warehouse_asks_bigquery_for(warehouse):
    """Against BigQuery (emulated=False): the live table is created with the declared options and
    policy tags, the staging table expires, rows are replaced by a copy with WRITE_TRUNCATE_DATA,
    and an additive change is a patch that keeps policy tags; every write comes right after
    before_write."""
    real = Warehouse(warehouse.client, warehouse.dataset, emulated=False)
    recorder = Recorder(real.client)
    tag = {"names": ["projects/p/locations/us/taxonomies/1/policyTags/2"]}
    schema = [SchemaField("id", "INTEGER", "REQUIRED"),
              SchemaField.from_api_repr({"name": "email", "type": "STRING", "policyTags": tag})]
    options = TableOptions(description="People.", staging_expiration_hours=3)
    first = upload("t/run1/00000.json", [b'{"id":1,"email":"a@example.com"}\n'])
    real.replace("t", [first], schema, expected_rows=1, staging_suffix="run1", options=options,
                 before_write=recorder.mark)
    wider = schema + [SchemaField("score", "FLOAT")]
    second = upload("t/run2/00000.json", [b'{"id":1,"email":"a@example.com","score":2.5}\n'])

    def stop_at_the_copy():
        recorder.mark()
        # The emulator cannot copy into a table whose columns were patched (BigQuery can): the
        # run stops at its last write, which also shows that before_write can abort it.
        if sum(method == "BEFORE_WRITE" for method, _, _ in recorder.requests) == 4:
            raise LoadError("stopped before the copy")

    with pytest.raises(LoadError, match="stopped before the copy"):
        real.replace("t", [second], wider, expected_rows=1, staging_suffix="run2", options=options,
                     before_write=stop_at_the_copy)

    inserts = {body["tableReference"]["tableId"]: body for method, url, body in recorder.requests
               if method == "POST" and url.endswith("/tables")}
    assert inserts["t"]["description"] == "People."
    assert inserts["t"]["labels"] == {"bq_etl_schema_version": "1"}
    assert inserts["t"]["schema"]["fields"][1]["policyTags"] == tag
    staged = inserts["t__staging_run2"]
    assert staged["schema"]["fields"][1]["policyTags"] == tag  # staging rows are protected too
    assert int(staged["expirationTime"]) / 1000 - time.time() == pytest.approx(3 * 3600, abs=600)
    writes = recorder.writes_to("t")
    assert [(method, body.get("configuration", {}).get("copy", {}).get("writeDisposition")) for method, _, body
            in writes] == [("POST", None), ("POST", "WRITE_TRUNCATE_DATA"), ("PATCH", None)]
    assert writes[1][2]["configuration"]["copy"]["createDisposition"] == "CREATE_NEVER"
    patch = writes[2][2]
    assert [f["name"] for f in patch["schema"]["fields"]] == ["id", "email", "score"]
    assert patch["schema"]["fields"][1]["policyTags"] == tag
    assert patch["labels"] == {"bq_etl_schema_version": "1"}
    for write in writes:
        assert recorder.requests[recorder.requests.index(write) - 1][0] == "BEFORE_WRITE"
    assert rows("t") == [(1, "a@example.com")]


def test_before_write_aborts_the_replace_and_leaves_the_live_table(warehouse):
    first = upload("t/run1/00000.json", [b'{"id":1,"name":"a"}\n'])
    warehouse.replace("t", [first], SCHEMA, expected_rows=1, staging_suffix="run1")
    second = upload("t/run2/00000.json", [b'{"id":2,"name":"b"}\n'])

    def refuse():
        raise LoadError("a newer run loaded meanwhile")

    with pytest.raises(LoadError, match="a newer run loaded meanwhile"):
        warehouse.replace("t", [second], SCHEMA, expected_rows=1, staging_suffix="run2", before_write=refuse)

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

    assert warehouse.mark_loaded("t", newer, 2) == newer
    assert warehouse.mark_loaded("t", older, 1) == newer  # an older run never moves it back

    assert warehouse.loaded_run("t") == newer
    assert warehouse.loaded_mark("t") == (newer, 2)
    assert warehouse.client.get_table(warehouse.table_id("t")).labels == {
        "owner": "clinic", "bq_etl_run": "20261130t020000000000z-bbbbbb", "bq_etl_rows": "2"}
    assert warehouse.live_rows("t") == 2


def test_new_partitioning_is_breaking_and_makes_the_table_anew_with_its_metadata(warehouse):
    real = Warehouse(warehouse.client, warehouse.dataset, emulated=False)
    schema = [SchemaField("id", "INTEGER", "REQUIRED"), SchemaField("seen_at", "TIMESTAMP", "REQUIRED")]
    first = upload("t/run1/00000.json", [b'{"id":1,"seen_at":"2024-01-08T09:30:00Z"}\n'])
    real.replace("t", [first], schema, expected_rows=1, staging_suffix="run1")
    table = live(warehouse)
    table.labels = {**table.labels, "bq_etl_run": "run1"}
    warehouse.client.update_table(table, ["labels"])
    daily = TableOptions(partitioning=Partitioning("DAY", "seen_at"))

    with pytest.raises(BreakingSchemaChange, match="BREAKING partitioning: .none. -> 'DAY on seen_at'"):
        real.replace("t", [first], schema, expected_rows=1, staging_suffix="run2", options=daily)
    assert live(warehouse).time_partitioning is None
    recorder = Recorder(real.client)
    real.replace("t", [first], schema, expected_rows=1, staging_suffix="run3",
                 options=TableOptions(partitioning=Partitioning("DAY", "seen_at"), schema_version=2),
                 before_write=recorder.mark)

    writes = recorder.writes_to("t")
    assert [method for method, _, _ in writes] == ["DELETE", "POST", "POST"]
    # One check, before the delete; none between it and the copy, which would leave the table
    # missing or empty if it stopped the run there.
    first, last = recorder.requests.index(writes[0]), recorder.requests.index(writes[-1])
    assert recorder.requests[first - 1][0] == "BEFORE_WRITE"
    assert "BEFORE_WRITE" not in [method for method, _, _ in recorder.requests[first:last]]
    assert writes[1][2]["timePartitioning"] == {"type": "DAY", "field": "seen_at"}
    assert writes[1][2]["labels"] == {"bq_etl_run": "run1", "bq_etl_schema_version": "2"}
    assert writes[2][2]["configuration"]["copy"]["writeDisposition"] == "WRITE_TRUNCATE_DATA"
    staged = [body for method, _, body in recorder.writes_to("t__staging_run3") if method == "POST"]
    assert staged[0]["timePartitioning"] == {"type": "DAY", "field": "seen_at"}  # a copy needs them alike
    table = live(warehouse)
    assert (table.time_partitioning.field, table.labels["bq_etl_run"]) == ("seen_at", "run1")
    assert [row[0] for row in rows("t")] == [1]


def test_an_allowed_breaking_change_is_one_copy_that_takes_the_new_schema_then_a_patch(warehouse):
    """Against BigQuery (emulated=False): WRITE_TRUNCATE replaces schema and rows in one job; the
    staging table already carries the merged descriptions and policy tags, and labels are set
    again after it. (A mode change: the emulator can copy between tables that differ in modes.)"""
    real = Warehouse(warehouse.client, warehouse.dataset, emulated=False)
    loose = [SchemaField("id", "INTEGER", "REQUIRED"), SchemaField("name", "STRING", description="theirs")]
    first = upload("t/run1/00000.json", [b'{"id":1,"name":"a"}\n'])
    real.replace("t", [first], loose, expected_rows=1, staging_suffix="run1")
    table = live(warehouse)
    table.labels = {**table.labels, "bq_etl_run": "run1"}
    warehouse.client.update_table(table, ["labels"])
    real.client.query(f"DELETE FROM `{real.table_id('t')}` WHERE TRUE").result()  # WRITE_TRUNCATE_DATA appended
    strict = [SchemaField("id", "INTEGER", "REQUIRED"), SchemaField("name", "STRING", "REQUIRED")]
    recorder = Recorder(real.client)

    real.replace("t", [first], strict, expected_rows=1, staging_suffix="run2", options=TableOptions(schema_version=2),
                 before_write=recorder.mark)

    writes = recorder.writes_to("t")
    assert [(method, body.get("configuration", {}).get("copy", {}).get("writeDisposition"))
            for method, _, body in writes] == [("POST", "WRITE_TRUNCATE"), ("PATCH", None)]
    staged = [body for method, _, body in recorder.writes_to("t__staging_run2") if method == "POST"][0]
    assert staged["schema"]["fields"][1] == {"name": "name", "type": "STRING", "mode": "REQUIRED",
                                             "description": "theirs"}
    assert writes[1][2]["labels"] == {"bq_etl_run": "run1", "bq_etl_schema_version": "2"}
    for write in writes:
        assert recorder.requests[recorder.requests.index(write) - 1][0] == "BEFORE_WRITE"
    assert [(f.name, f.mode) for f in live(warehouse).schema] == [("id", "REQUIRED"), ("name", "REQUIRED")]
    assert rows("t") == [(1, "a")]


def test_the_copy_into_the_live_table_takes_the_job_id_the_loader_recorded(warehouse):
    """The loader records the copy job's id before the copy, so a run killed right after it can
    be asked about: BigQuery says whether that job completed."""
    first = upload("t/run1/00000.json", [b'{"id":1,"name":"a"}\n'])
    job_id = f"bq_etl_copy_{uuid.uuid4().hex}"
    recorder = Recorder(warehouse.client)
    assert not warehouse.copy_succeeded(job_id)

    warehouse.replace("t", [first], SCHEMA, expected_rows=1, staging_suffix="run1", copy_job_id=job_id)

    copies = [body for _, _, body in recorder.writes_to("t") if "configuration" in body]
    assert [body["jobReference"]["jobId"] for body in copies] == [job_id]
    assert warehouse.copy_succeeded(job_id)
    assert job_id in warehouse.job_ids
