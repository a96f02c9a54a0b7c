"""`flask export schema check | generate | diff | plan` on the shipped tables, against the
BigQuery emulator."""
from __future__ import annotations

import json

from google.cloud.bigquery import SchemaField

from bq_etl.extension import state

SHIPPED = ["appointments", "members", "messages", "practitioners", "product_events"]


def invoke(app, *args):
    return app.test_cli_runner().invoke(args=["export", "schema", *args])


def test_every_shipped_schema_file_agrees_with_its_query(app):
    result = invoke(app, "check")

    assert result.exit_code == 0, result.output
    for table in SHIPPED:
        assert f"{table}: schema file agrees with the query" in result.output
    # members reshapes its rows in records(): what the query cannot show is reported, not failed.
    assert "members: not derivable: field 'care_tracks': built by records()" in result.output
    assert "members: not derivable: query column 'organization_id' is not a field" in result.output


def test_generate_reproduces_a_shipped_schema_file_with_its_descriptions(app):
    shipped = state().tables.get("messages").schema_path().read_text(encoding="utf-8")

    result = invoke(app, "generate", "messages", "--stdout")

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == json.loads(shipped)


def run(app, table):
    result = app.test_cli_runner().invoke(args=["export", "run", table])
    assert result.exit_code == 0, result.output


def test_diff_is_clean_after_a_run_and_shows_what_others_changed(app):
    never_run = invoke(app, "diff", "practitioners")
    assert never_run.exit_code == 1
    assert "practitioners: table does not exist: the next run creates it" in never_run.output
    run(app, "practitioners")
    assert invoke(app, "diff", "practitioners").output == "practitioners: in sync\n"
    warehouse = state().warehouse
    table = warehouse.client.get_table(warehouse.table_id("practitioners"))
    # Labels and descriptions the repository does not declare are the warehouse team's: not drift.
    table.labels = {**table.labels, "team": "analytics"}
    table.schema = [SchemaField("id", "INTEGER", "REQUIRED", description="changed in the console")] + [
        SchemaField(f.name, f.field_type, f.mode, description="theirs" if f.name == "rating" else f.description)
        for f in table.schema[1:]]
    warehouse.client.update_table(table, ["labels", "schema"])

    result = invoke(app, "diff", "practitioners")
    as_json = json.loads(invoke(app, "diff", "practitioners", "--json").output)

    assert result.exit_code == 1
    assert result.output == ("practitioners: description of column id: 'changed in the console' -> "
                             "'Practitioner id (shard key).'\n")
    assert as_json[0]["drift"] is True
    assert as_json[0]["changes"] == [{"kind": "description", "column": "id", "before": "changed in the console",
                                      "after": "Practitioner id (shard key).", "breaking": False}]


def test_plan_shows_a_breaking_change_and_the_run_refuses_it(app):
    warehouse = state().warehouse
    warehouse.ensure_dataset()
    manager = state().tables.get("practitioners")()
    # The live table as an older schema file made it: rating was a STRING, a column since removed.
    older = [SchemaField("rating", "STRING") if f.name == "rating" else f for f in manager.schema]
    bucket = state().bucket
    bucket.write("old/00000.json", [])
    warehouse.replace("practitioners", [bucket.uri("old/00000.json")], older + [SchemaField("fax", "STRING")],
                      expected_rows=0, staging_suffix="old")

    plan = invoke(app, "plan", "practitioners")
    refused = app.test_cli_runner().invoke(args=["export", "run", "practitioners"])

    assert plan.exit_code == 1
    assert "practitioners: BREAKING retyped column rating: 'STRING' -> 'FLOAT'" in plan.output
    assert "practitioners: BREAKING removed column fax: 'STRING NULLABLE' -> (none)" in plan.output
    assert 'REFUSED: the next run fails and leaves the table as it is; set "schema_version": 2 in ' in plan.output
    assert "practitioners.options.json" in plan.output
    assert refused.exit_code == 1
    assert "the schema file asks for a breaking change" in refused.output
    assert [f.name for f in warehouse.live_schema("practitioners")][-1] == "fax"
