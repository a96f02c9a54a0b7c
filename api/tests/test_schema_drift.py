"""plan_schema_change: which differences between the repository and the live table are
additive, which breaking, and the table a run makes of them (no BigQuery needed: the live
table is a `bigquery.Table` resource as `get_table` returns it)."""
from __future__ import annotations

import pytest
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField

from bq_etl.schema_drift import BreakingSchemaChange, plan_schema_change
from bq_etl.table_options import Partitioning, TableOptions

TAG = {"names": ["projects/clinic/locations/eu/taxonomies/1/policyTags/2"]}


def live_table(fields, labels=None, clustering=None, partitioning=None, description=None) -> bigquery.Table:
    table = bigquery.Table("p.d.visits", schema=[SchemaField.from_api_repr(f) for f in fields])
    table.labels = labels or {}
    table.clustering_fields = clustering
    table.time_partitioning = partitioning
    table.description = description
    return table


def schema(*fields):
    return [SchemaField.from_api_repr(f) for f in fields]


LIVE = [
    {"name": "id", "type": "INTEGER", "mode": "REQUIRED", "description": "set in the console"},
    {"name": "email", "type": "STRING", "mode": "NULLABLE", "policyTags": TAG},
    {"name": "clinic", "type": "RECORD", "mode": "NULLABLE",
     "fields": [{"name": "name", "type": "STRING", "mode": "REQUIRED"}]},
]


def test_no_difference_when_the_repository_declares_less_than_the_live_table_has():
    plan = plan_schema_change("visits", live_table(LIVE, labels={"bq_etl_run": "r1", "team": "bi"}), schema(
        {"name": "id", "type": "INT64", "mode": "REQUIRED"},
        {"name": "email", "type": "STRING"},
        {"name": "clinic", "type": "STRUCT", "fields": [{"name": "name", "type": "STRING", "mode": "REQUIRED"}]},
    ), TableOptions())

    assert plan.changes == []
    assert [f.to_api_repr() for f in plan.target_schema] == [
        {"name": "id", "type": "INT64", "mode": "REQUIRED", "description": "set in the console"},
        {"name": "email", "type": "STRING", "mode": "NULLABLE", "policyTags": TAG},
        {"name": "clinic", "type": "STRUCT", "mode": "NULLABLE",
         "fields": [{"name": "name", "type": "STRING", "mode": "REQUIRED"}]},
    ]
    assert plan.labels == {"bq_etl_run": "r1", "team": "bi", "bq_etl_schema_version": "1"}


def test_additive_changes_keep_the_live_order_and_need_no_version():
    plan = plan_schema_change("visits", live_table(LIVE, clustering=["id"]), schema(
        {"name": "score", "type": "FLOAT"},
        {"name": "id", "type": "INTEGER", "mode": "NULLABLE", "description": "Visit id."},
        {"name": "email", "type": "STRING", "policyTags": {"names": ["projects/c/locations/eu/taxonomies/1/policyTags/3"]}},
        {"name": "clinic", "type": "RECORD", "fields": [{"name": "name", "type": "STRING", "mode": "REQUIRED"},
                                                        {"name": "city", "type": "STRING"}]},
    ), TableOptions(labels={"owner": "data-eng"}, clustering=("email",), description="Visits."))

    assert [(c.kind, c.column, c.breaking) for c in plan.changes] == [
        ("mode", "id", False), ("description", "id", False), ("policy tags", "email", False),
        ("added", "clinic.city", False), ("added", "score", False), ("table description", None, False),
        ("clustering", None, False), ("label", "owner", False),
    ]
    assert plan.allowed and not plan.recreate
    assert [f.name for f in plan.target_schema] == ["id", "email", "clinic", "score"]
    assert [f.name for f in plan.target_schema[2].fields] == ["name", "city"]


@pytest.mark.parametrize("declared, described", [
    ({"name": "id", "type": "STRING", "mode": "REQUIRED"}, "BREAKING retyped column id: 'INTEGER' -> 'STRING'"),
    ({"name": "email", "type": "STRING", "mode": "REQUIRED"}, "BREAKING mode of column email: 'NULLABLE' -> 'REQUIRED'"),
    ({"name": "email", "type": "STRING", "mode": "REPEATED"}, "BREAKING mode of column email: 'NULLABLE' -> 'REPEATED'"),
    ({"name": "born", "type": "DATE", "mode": "REQUIRED"}, "BREAKING added column born: (none) -> 'DATE REQUIRED'"),
])
def test_breaking_changes_are_refused_until_the_schema_version_is_raised(declared, described):
    fields = {f["name"]: f for f in LIVE}
    fields[declared["name"]] = declared
    live = live_table(LIVE, labels={"bq_etl_schema_version": "3"})

    refused = plan_schema_change("visits", live, schema(*fields.values()), TableOptions(schema_version=3),
                                 "/app/schemas/visits.json")
    allowed = plan_schema_change("visits", live, schema(*fields.values()), TableOptions(schema_version=4))

    assert described in [c.describe() for c in refused.changes]
    with pytest.raises(BreakingSchemaChange) as caught:
        refused.require_allowed()
    assert '"schema_version": 4 in /app/schemas/visits.options.json' in str(caught.value)
    assert allowed.allowed
    assert allowed.labels["bq_etl_schema_version"] == "4"


def test_a_removed_column_is_breaking_and_undeclared_partitioning_is_kept():
    live = live_table(LIVE, partitioning=bigquery.TimePartitioning(type_="DAY"))

    plan = plan_schema_change("visits", live, schema(LIVE[0], LIVE[2]), TableOptions())

    assert [(c.kind, c.column, c.breaking) for c in plan.changes] == [("removed", "email", True)]
    assert plan.partitioning == Partitioning("DAY", None)
    assert not plan.recreate


def test_other_partitioning_makes_the_table_anew():
    live = live_table(LIVE, partitioning=bigquery.TimePartitioning(type_="DAY"))

    plan = plan_schema_change("visits", live, schema(*LIVE), TableOptions(partitioning=Partitioning("MONTH"),
                                                                          schema_version=2))

    assert [c.describe() for c in plan.changes] == [
        "BREAKING partitioning: 'DAY on _PARTITIONTIME' -> 'MONTH on _PARTITIONTIME'",
        "schema version: 1 -> 2"]
    assert plan.allowed and plan.recreate


def test_a_missing_table_is_created_with_the_declared_options():
    plan = plan_schema_change("visits", None, schema(*LIVE), TableOptions(
        labels={"owner": "x"}, schema_version=2, default_description="Visits, from the docstring."))
    later = plan_schema_change("visits", live_table(LIVE, description="theirs"), schema(*LIVE),
                               TableOptions(default_description="Visits, from the docstring."))

    assert [c.describe() for c in plan.changes] == ["table does not exist: the next run creates it"]
    assert plan.labels == {"owner": "x", "bq_etl_schema_version": "2"}
    assert plan.target_schema == schema(*LIVE)
    assert plan.to_json()["drift"] is True
    assert plan.description == "Visits, from the docstring."
    assert (later.changes, later.description) == ([], "theirs")
