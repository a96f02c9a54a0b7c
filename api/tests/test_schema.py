"""load_schema: BigQuery JSON schema files (as `bq show --schema` prints them) to SchemaFields."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.cloud.bigquery import SchemaField

from bq_etl.errors import SchemaError
from bq_etl.schema import check_schema, load_schema, schema_to_json


def write(tmp_path: Path, content: object, name: str = "visits.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def schema_error(path: Path) -> str:
    with pytest.raises(SchemaError) as caught:
        load_schema(path)
    message = str(caught.value)
    assert str(path) in message
    return message


def test_loads_flat_fields_with_types_modes_and_descriptions(tmp_path):
    path = write(tmp_path, [
        {"name": "id", "type": "INTEGER", "mode": "REQUIRED", "description": "visit id"},
        {"name": "reason", "type": "STRING", "mode": "NULLABLE"},
        {"name": "tags", "type": "STRING", "mode": "REPEATED"},
    ])

    assert load_schema(path) == [
        SchemaField("id", "INTEGER", "REQUIRED", description="visit id"),
        SchemaField("reason", "STRING", "NULLABLE"),
        SchemaField("tags", "STRING", "REPEATED"),
    ]


def test_mode_defaults_to_nullable(tmp_path):
    path = write(tmp_path, [{"name": "reason", "type": "STRING"}])

    assert load_schema(path)[0].mode == "NULLABLE"


def test_loads_nested_record_fields(tmp_path):
    path = write(tmp_path, [{
        "name": "organization", "type": "RECORD", "mode": "NULLABLE",
        "fields": [{"name": "name", "type": "STRING", "mode": "REQUIRED"}],
    }])

    assert load_schema(path) == [
        SchemaField("organization", "RECORD", "NULLABLE", fields=[SchemaField("name", "STRING", "REQUIRED")]),
    ]


def test_accepts_standard_sql_type_names_and_any_case(tmp_path):
    path = write(tmp_path, [
        {"name": "a", "type": "INT64"}, {"name": "b", "type": "float64"}, {"name": "c", "type": "BOOL"},
        {"name": "d", "type": "STRUCT", "mode": "repeated", "fields": [{"name": "e", "type": "json"}]},
    ])

    fields = load_schema(path)

    assert [(f.name, f.field_type, f.mode) for f in fields] == [
        ("a", "INT64", "NULLABLE"), ("b", "FLOAT64", "NULLABLE"),
        ("c", "BOOL", "NULLABLE"), ("d", "STRUCT", "REPEATED"),
    ]
    assert fields[3].fields[0].field_type == "JSON"


def test_schema_to_json_gives_back_the_file_content(tmp_path):
    content = [
        {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
        {"name": "org", "type": "RECORD", "mode": "NULLABLE",
         "fields": [{"name": "name", "type": "STRING", "mode": "NULLABLE"}]},
    ]

    assert schema_to_json(load_schema(write(tmp_path, content))) == content


def test_missing_file_is_a_schema_error_naming_it(tmp_path):
    message = schema_error(tmp_path / "absent.json")

    assert "not found" in message


def test_a_file_of_no_fields_is_a_schema_error_naming_the_file(tmp_path):
    message = schema_error(write(tmp_path, []))

    assert "holds no fields; a table needs at least one" in message


def test_invalid_json_is_a_schema_error_naming_the_file(tmp_path):
    message = schema_error(write(tmp_path, '[{"name": "id", "type": "INTEGER"'))

    assert "invalid JSON" in message


def test_a_json_object_instead_of_an_array_is_refused(tmp_path):
    message = schema_error(write(tmp_path, {"fields": []}))

    assert "expected a JSON array of fields" in message


def test_a_field_without_a_name_is_refused(tmp_path):
    message = schema_error(write(tmp_path, [{"type": "STRING"}]))

    assert "field #1 has no name" in message


def test_unknown_type_is_refused_naming_field_and_type(tmp_path):
    message = schema_error(write(tmp_path, [{"name": "id", "type": "INTEGR"}]))

    assert "field 'id' has unknown type 'INTEGR'" in message


def test_missing_type_is_refused(tmp_path):
    message = schema_error(write(tmp_path, [{"name": "id"}]))

    assert "field 'id' has unknown type None" in message


def test_unknown_mode_is_refused(tmp_path):
    message = schema_error(write(tmp_path, [{"name": "id", "type": "INTEGER", "mode": "OPTIONAL"}]))

    assert "field 'id' has unknown mode 'OPTIONAL'" in message


def test_record_without_fields_is_refused(tmp_path):
    message = schema_error(write(tmp_path, [{"name": "organization", "type": "RECORD"}]))

    assert "RECORD field 'organization' has no fields" in message


def test_record_with_an_empty_field_list_is_refused(tmp_path):
    message = schema_error(write(tmp_path, [{"name": "organization", "type": "STRUCT", "fields": []}]))

    assert "RECORD field 'organization' has no fields" in message


def test_fields_on_a_scalar_type_are_refused(tmp_path):
    content = [{"name": "id", "type": "INTEGER", "fields": [{"name": "x", "type": "STRING"}]}]

    message = schema_error(write(tmp_path, content))

    assert "field 'id' of type INTEGER cannot have fields" in message


def test_duplicate_names_are_refused(tmp_path):
    message = schema_error(write(tmp_path, [{"name": "id", "type": "INTEGER"}, {"name": "id", "type": "STRING"}]))

    assert "duplicate field name 'id'" in message


def test_names_differing_only_in_case_are_duplicates(tmp_path):
    # BigQuery column names are case-insensitive.
    message = schema_error(write(tmp_path, [{"name": "Id", "type": "INTEGER"}, {"name": "id", "type": "STRING"}]))

    assert "duplicate field name 'id'" in message


def test_errors_inside_a_record_name_the_dotted_path(tmp_path):
    message = schema_error(write(tmp_path, [{
        "name": "organization", "type": "RECORD",
        "fields": [{"name": "kind", "type": "ENUM"}],
    }]))

    assert "field 'organization.kind' has unknown type 'ENUM'" in message


def test_duplicate_names_inside_a_record_are_refused(tmp_path):
    message = schema_error(write(tmp_path, [{
        "name": "organization", "type": "RECORD",
        "fields": [{"name": "name", "type": "STRING"}, {"name": "name", "type": "STRING"}],
    }]))

    assert "duplicate field name 'organization.name'" in message


def test_same_name_at_different_levels_is_not_a_duplicate(tmp_path):
    path = write(tmp_path, [
        {"name": "name", "type": "STRING"},
        {"name": "organization", "type": "RECORD", "fields": [{"name": "name", "type": "STRING"}]},
    ])

    assert [f.name for f in load_schema(path)] == ["name", "organization"]


def test_numeric_precision_and_scale_are_loaded(tmp_path):
    path = write(tmp_path, [{"name": "amount", "type": "NUMERIC", "precision": "10", "scale": "2"}])

    field = load_schema(path)[0]

    assert (field.precision, field.scale) == (10, 2)


def test_numeric_scale_beyond_nine_is_refused(tmp_path):
    message = schema_error(write(tmp_path, [{"name": "amount", "type": "NUMERIC", "precision": "12", "scale": "10"}]))

    assert "field 'amount': NUMERIC(12, 10) is out of range" in message


def test_precision_on_a_string_is_refused(tmp_path):
    message = schema_error(write(tmp_path, [{"name": "code", "type": "STRING", "precision": "3"}]))

    assert "field 'code': precision and scale need a NUMERIC or BIGNUMERIC field" in message


def test_check_schema_refuses_hand_built_fields_naming_where(tmp_path):
    with pytest.raises(SchemaError) as caught:
        check_schema([SchemaField("id", "UUID")], "schema of table 'visits'")

    assert str(caught.value).startswith("schema of table 'visits': field 'id' has unknown type 'UUID'")


def test_keeps_descriptions_and_policy_tags(tmp_path):
    tag = "projects/clinic/locations/eu/taxonomies/7/policyTags/9"
    path = write(tmp_path, [{"name": "email", "type": "STRING", "description": "PII",
                             "policyTags": {"names": [tag]}}])

    field = load_schema(path)[0]

    assert (field.description, field.policy_tags.names) == ("PII", (tag,))
    assert schema_to_json([field])[0]["policyTags"] == {"names": [tag]}


@pytest.mark.parametrize("tags", [["x"], {"names": "x"}, {"names": ["not-a-tag"]},
                                  {"names": ["projects/a/locations/b/taxonomies/c/policyTags/1"] * 2}])
def test_refuses_malformed_policy_tags(tmp_path, tags):
    path = write(tmp_path, [{"name": "email", "type": "STRING", "policyTags": tags}])

    assert "field 'email': policyTags must be" in schema_error(path)


def test_refuses_a_description_that_is_not_text(tmp_path):
    path = write(tmp_path, [{"name": "email", "type": "STRING", "description": 7}])

    assert "field 'email': description must be a string" in schema_error(path)
